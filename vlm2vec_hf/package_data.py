"""Reading the package's data files (task tables, published scores, presets): YAML through the project's one YAML
reader (`yaml_files`), and CSV with `#` comment lines. Each table has its own loader next to the code that uses it;
this module only parses."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from vlm2vec_hf.yaml_files import YAMLFileError
from vlm2vec_hf.yaml_files import read_yaml as read_yaml_file

__all__ = ["DataFileError", "read_csv", "read_yaml"]


class DataFileError(ValueError):
    """A package data file that does not parse into the table its loader expects."""


def read_yaml(path: str | os.PathLike) -> Any:
    """The YAML document at `path`, read by the project's one YAML reader ([`yaml_files.read_yaml`]: duplicate keys
    refused); a `DataFileError` names the file and the problem."""
    try:
        return read_yaml_file(path)
    except YAMLFileError as error:
        raise DataFileError(str(error)) from None


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of the CSV file at `path` as dicts keyed by its header; lines starting with `#` are comments."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(line for line in stream if not line.startswith("#")))
    for number, row in enumerate(rows, start=1):
        if None in row or None in row.values():
            raise DataFileError(f"{path}: data row {number} does not have one cell per header column: {row}")
    return rows
