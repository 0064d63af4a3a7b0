"""Every committed benchmark result says what it was measured with: commit, library versions, machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RESULTS = sorted((BENCHMARKS / "results").glob("*.json"))
SCRIPTS = sorted(path for path in BENCHMARKS.glob("*.py") if path.name != "provenance.py")


@pytest.mark.parametrize("path", RESULTS, ids=lambda path: path.name)
def test_each_result_records_commit_versions_and_machine(path):
    provenance = json.loads(path.read_text())["provenance"]
    assert len(provenance["commit"]) == 40
    assert set(provenance["versions"]) == {"torch", "transformers", "sentence-transformers", "peft"}
    assert all(provenance["versions"].values())
    assert provenance["machine"]["cpu_count"] and provenance["machine"]["processor"]
    markdown = path.with_suffix(".md").read_text()
    assert f"Measured at commit {provenance['commit'][:12]}" in markdown


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_each_benchmark_writes_through_write_result(path):
    assert "write_result(" in path.read_text()
