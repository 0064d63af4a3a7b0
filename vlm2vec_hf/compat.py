"""Start-up version checks: a peft too old for the installed transformers, and versions outside the tested ranges.

transformers' `add_adapter` (LoRA / DoRA training, loading a training adapter, `vlm2vec merge`) needs
`transformers.integrations.peft.MIN_PEFT_VERSION`; a transformers minor newer than the tested one can raise that
above every released peft, which used to surface as a failure deep inside training. `check_peft_compatible()`
raises one `IncompatibleVersionsError` up front instead, naming both versions and the fix.

The tested ranges have one source of truth: the `dependencies` of pyproject.toml, read here from the installed
distribution's metadata (`importlib.metadata.requires("vlm2vec-hf")`). This module imports no heavy package at
import time; `check_peft_compatible` imports `transformers.integrations.peft`, which callers that attach an adapter
import anyway.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

DISTRIBUTION = "vlm2vec-hf"
# The packages whose API moves under the project from one minor to the next: warned about outside their range.
WATCHED = ("transformers", "sentence-transformers", "peft")


class IncompatibleVersionsError(RuntimeError, ValueError):
    """Installed packages that cannot work together (a ValueError too, so the CLI reports it as one line)."""


class UntestedVersionWarning(UserWarning):
    """An installed package is outside the range vlm2vec-hf is tested with."""


def installed_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def declared_requirements() -> list[str]:
    """The installed vlm2vec-hf's requirement strings (pyproject.toml's, as installed); [] when not installed."""
    try:
        return list(metadata.requires(DISTRIBUTION) or [])
    except metadata.PackageNotFoundError:
        return []


def tested_ranges() -> dict[str, SpecifierSet]:
    """The runtime dependency ranges (no extras) by canonical name."""
    ranges = {}
    for line in declared_requirements():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        ranges[canonicalize_name(requirement.name)] = requirement.specifier
    return ranges


def tested_range(name: str) -> str:
    """`name`'s tested range as pip takes it, lower bound first (e.g. ">=5.23,<5.24"); "" when unknown."""
    specifier = tested_ranges().get(canonicalize_name(name))
    if specifier is None:
        return ""
    return ",".join(str(s) for s in sorted(specifier, key=lambda s: (s.operator.startswith("<"), s.operator)))


def _pip_install(name: str) -> str:
    return f'pip install "{name}{tested_range(name)}"'


def peft_problem(required: bool = True) -> str | None:
    """Why peft cannot attach adapters with the installed transformers, or None when it can (or there is nothing to
    check: no peft and `required` False, or a transformers without a minimum peft version)."""
    peft = installed_version("peft")
    if peft is None:
        if not required:
            return None
        return f"LoRA/DoRA adapters need peft, and peft is not installed. Fix: {_pip_install('peft')}."
    import transformers.integrations.peft as transformers_peft
    from transformers.utils.versions import require_version

    minimum = getattr(transformers_peft, "MIN_PEFT_VERSION", None)
    if minimum is None:
        return None
    try:
        require_version(f"peft>={minimum}")
    except ImportError:  # require_version's own message names neither transformers nor the tested range
        transformers = installed_version("transformers")
        return (
            f"transformers {transformers} needs peft >= {minimum} for LoRA/DoRA, but peft {peft} is installed. "
            f"Fix: {_pip_install('transformers')} (the range vlm2vec-hf is tested with), or upgrade peft."
        )
    return None


def check_peft_compatible(required: bool = True) -> None:
    """Raise `IncompatibleVersionsError` when the installed peft is older than transformers needs for adapters.

    Call it before attaching or merging an adapter. Without peft it raises only when `required` (the default:
    callers need an adapter).
    """
    problem = peft_problem(required)
    if problem:
        raise IncompatibleVersionsError(problem)


def untested_versions(names: tuple[str, ...] = WATCHED) -> list[str]:
    """One line per installed package among `names` outside its tested range (missing packages are skipped)."""
    ranges = tested_ranges()
    reports = []
    for name in names:
        version = installed_version(name)
        specifier = ranges.get(canonicalize_name(name))
        # packaging's SpecifierSet rather than transformers' require_version: this runs before every command, and
        # importing transformers here would make a config error as slow as a model load.
        if version is None or specifier is None or specifier.contains(version, prereleases=True):
            continue
        reports.append(
            f"{name} {version} is installed, but vlm2vec-hf is tested with {name}{tested_range(name)}; "
            f"if something fails, {_pip_install(name)} (or install with -c constraints.txt, see the README)."
        )
    return reports


def warn_untested_versions() -> None:
    """Emit an `UntestedVersionWarning` for each package `untested_versions` reports."""
    for report in untested_versions():
        warnings.warn(report, UntestedVersionWarning, stacklevel=2)


def _needs_peft(args: argparse.Namespace) -> bool:
    command = getattr(args, "command", None)
    if command == "merge":
        return True
    if command == "train":
        from vlm2vec_hf.training.cli_options import config_from_args

        return bool(config_from_args(args).lora)  # --lora on the command line or `lora: true` in --config
    # Every adapter, published or trained, is merged through peft.
    return command == "convert" and bool(getattr(args, "adapter", None))


def check_command(args: argparse.Namespace) -> None:
    """The CLI's start-up check: a warning line on stderr for each version outside the tested ranges; fail fast
    (`IncompatibleVersionsError`) when the command needs peft and the installed peft is too old for transformers."""
    for report in untested_versions():
        print(f"vlm2vec: warning: {report}", file=sys.stderr)
    if _needs_peft(args):
        check_peft_compatible()
