"""Reading the package's data files (task tables, published scores, presets): YAML that rejects duplicate keys, and
CSV with `#` comment lines. Each table has its own loader next to the code that uses it; this module only parses."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DataFileError", "read_csv", "read_yaml"]


class DataFileError(ValueError):
    """A package data file that does not parse into the table its loader expects."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping key given twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DataFileError(f"{self.name}: duplicate key {key!r} (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike) -> Any:
    """The YAML document at `path`; a `DataFileError` names the file and the key given twice."""
    path = Path(path)
    with path.open(encoding="utf-8") as stream:
        loader = _UniqueKeyLoader(stream)
        loader.name = str(path)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of the CSV file at `path` as dicts keyed by its header; lines starting with `#` are comments."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(line for line in stream if not line.startswith("#")))
    for number, row in enumerate(rows, start=1):
        if None in row or None in row.values():
            raise DataFileError(f"{path}: data row {number} does not have one cell per header column: {row}")
    return rows
