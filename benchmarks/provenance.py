"""What a benchmark result was measured with: the commit, the library versions and the machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

LIBRARIES = ("torch", "transformers", "sentence-transformers", "peft")


def provenance() -> dict:
    """`{"commit", "dirty", "versions": {library: version}, "machine": {...}}` for a result file."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    versions = {}
    for library in LIBRARIES:
        try:
            versions[library] = version(library)
        except PackageNotFoundError:
            versions[library] = None
    return {
        "commit": git("rev-parse", "HEAD") or None,
        # Only code and pins count: result files and README edits made during a run do not change what is measured.
        "dirty": bool(
            git("status", "--porcelain", "--untracked-files=no", "--", "*.py", "pyproject.toml", "constraints.txt")
        ),
        "versions": versions,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
    }


def provenance_markdown(info: dict) -> str:
    """One line for a result's Markdown file."""
    versions = ", ".join(f"{name} {value}" for name, value in info["versions"].items())
    commit = (info["commit"] or "unknown")[:12] + (" (uncommitted changes)" if info["dirty"] else "")
    machine = info["machine"]
    return (
        f"Measured at commit {commit}; {versions}; {machine['processor']}, {machine['cpu_count']} CPU cores, "
        f"Python {machine['python']}."
    )


def write_result(out: Path, stem: str, result: dict, to_markdown) -> str:
    """Write `<out>/<stem>.json` (the result plus its `provenance`) and `<out>/<stem>.md` (`to_markdown(result)`
    plus the provenance line); returns the Markdown. A result read back keeps the provenance it was measured with."""
    result.setdefault("provenance", provenance())
    markdown = to_markdown(result).rstrip("\n") + "\n\n" + provenance_markdown(result["provenance"]) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (out / f"{stem}.md").write_text(markdown)
    return markdown
