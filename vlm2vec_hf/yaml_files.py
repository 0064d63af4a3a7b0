"""The one YAML reader of the project: PyYAML's safe loader, with YAML 1.2 floats and duplicate keys refused.

Every YAML file the project reads (training configs, package data) goes through `read_yaml`, so a key given twice is
an error naming the file and the key rather than the last value silently winning.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml


class YAMLFileError(ValueError):
    """A YAML file that is not UTF-8 text or does not parse (a duplicate key included); one line naming the file
    and, when known, the line and column."""


class StrictYAMLLoader(yaml.SafeLoader):
    """`yaml.SafeLoader`, but `5e-5` and `1e3` are floats (YAML 1.2) rather than strings (PyYAML's YAML 1.1), so
    the usual spelling of a learning rate is a number; and a mapping that gives a key twice is a
    `yaml.constructor.ConstructorError` naming the key and both lines. (`add_implicit_resolver` copies the resolvers
    it extends.)"""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            # Only the keys written in this mapping: one may override a key merged in with `<<: *base`.
            for key_node, _ in (pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"):
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # an unhashable key: SafeLoader's own error says so below
                    continue
                if seen is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given at line {seen + 1})",
                        key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


StrictYAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: str | os.PathLike) -> object:
    """The document in the YAML file at `path` (None for an empty file), read with `StrictYAMLLoader`.

    Raises:
        YAMLFileError: `path: not a UTF-8 text file ...` or `path: invalid YAML at line L, column C: <problem>`
            (e.g. `duplicate key 'max_steps' (first given at line 2)`).
    """
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=StrictYAMLLoader)  # noqa: S506 (safe loader)
    except UnicodeDecodeError as error:
        raise YAMLFileError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise YAMLFileError(f"{path}: {yaml_error_text(error)}") from None


def yaml_error_text(error: yaml.YAMLError) -> str:
    """One line: where (line, column, 1-based) and what, from a PyYAML error (whose own text spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is None or problem is None:
        return "invalid YAML: " + " ".join(str(error).split())
    text = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context:
        where = f" that starts at line {context_mark.line + 1}" if context_mark is not None else ""
        text += f" ({context}{where})"
    return text
