"""The package's data-file readers: strict YAML (no key given twice) and commented CSV."""

from __future__ import annotations

import pytest

from vlm2vec_hf.package_data import DataFileError, read_csv, read_yaml


def test_yaml_key_given_twice_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "table.yaml"
    path.write_text("groups:\n  a: [1]\n  b: [2]\n  a: [3]\n")
    with pytest.raises(
        DataFileError, match=r"table\.yaml: invalid YAML at line 4, .*duplicate key 'a' \(first given at line 2\)"
    ):
        read_yaml(path)
    path.write_text("groups:\n  a: [1]\n  b: {a: 2}\n")
    assert read_yaml(path) == {"groups": {"a": [1], "b": {"a": 2}}}


def test_csv_skips_comment_lines_and_rejects_ragged_rows(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("# source: a table\nmodel,x,y\n# a note between rows\nm1,1.0,\n")
    assert read_csv(path) == [{"model": "m1", "x": "1.0", "y": ""}]
    path.write_text("model,x\nm1,1.0,2.0\n")
    with pytest.raises(DataFileError, match=r"scores\.csv: data row 1"):
        read_csv(path)


def test_every_data_file_beside_the_code_is_declared_package_data():
    """A wheel carries only what `[tool.setuptools.package-data]` names: each YAML / CSV table the loaders read from
    the package folders must match one of its patterns, or an installed copy fails at import."""
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {package: root / folder for package, folder in config["package-dir"].items()}
    tables = [
        (package, path.relative_to(folder).as_posix())
        for package, folder in folders.items()
        if package != "vlm2vec_hf"  # vlm2vec_hf/ maps the repository's own folder; its data is `assets/`
        for path in folder.rglob("*")
        if path.suffix in (".yaml", ".csv") and "__pycache__" not in path.parts
    ]
    assert {package for package, _ in tables} >= {"vlm2vec_hf.evaluation", "vlm2vec_hf.hub_cards"}
    declared = config["package-data"]
    missing = [
        f"{package}: {name}"
        for package, name in tables
        if not any(fnmatch.fnmatch(name, pattern) for pattern in declared.get(package, []))
    ]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
