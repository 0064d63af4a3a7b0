"""The user documentation holds together: README.md and docs/*.md link only to files (and headings) that exist, the
README's benchmark headlines are the committed results' own numbers, and the README's test commands are CI's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[(?:[^\]]|\n)*?\]\(([^)\s]+)\)")  # [text](target) and ![alt](target); text may wrap
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def prose(markdown: str) -> str:
    """The text outside fenced code blocks and inline code spans, where a link is a link."""
    outside_fences = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", outside_fences)


def relative_links(page: Path) -> list[tuple[str, str]]:
    """`(path, anchor)` of every link to a file or heading in this repository; web links are left out."""
    links = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        links.append((path, anchor))
    return links


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces as hyphens, repeats -N."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_that_exists(page):
    missing = [path for path, _ in relative_links(page) if path and not (page.parent / path).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_to_a_heading_names_one_that_exists(page):
    broken = []
    for path, anchor in relative_links(page):
        target = (page.parent / path) if path else page
        if anchor and target.suffix == ".md" and target.is_file() and anchor not in heading_anchors(target):
            broken.append(f"{path}#{anchor}")
    assert not broken, f"{page.relative_to(ROOT)} links headings that do not exist: {broken}"


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / path).resolve() for path, _ in relative_links(README) if path}
    unlinked = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def benchmark_summary() -> list[tuple[str, Path]]:
    """`(headline, result file)` of each row of the README's benchmark table."""
    section = README.read_text().split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[2].startswith("["):
            rows.append((cells[1], README.parent / LINK.search(cells[2]).group(1)))
    return rows


def test_each_benchmark_headline_is_in_the_committed_result_it_links():
    rows = benchmark_summary()
    assert len(rows) >= 5, "the README's benchmark table was not found"
    for headline, result in rows:
        assert result.parent == ROOT / "benchmarks" / "results" and result.is_file(), result
        recorded = set(NUMBER.findall(result.read_text()))
        numbers = NUMBER.findall(headline)
        assert numbers, headline
        absent = [number for number in numbers if number not in recorded]
        assert not absent, f"{headline!r}: {absent} not in {result.relative_to(ROOT)}"


def test_readme_runs_the_suite_as_ci_does_and_its_quick_loop_marker_is_declared():
    readme = README.read_text()
    ci_commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci_commands[-1] == "pytest" and "\npytest " in readme  # the full suite, as CI runs it
    quick = re.search(r'^pytest -m "not (\w+)"', readme, re.M)
    assert quick, "the README shows no quick test loop"
    markers = re.search(r"^markers = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # pytest's own
    assert f'"{quick.group(1)}:' in markers, (
        f"pytest -m 'not {quick.group(1)}' names a marker pyproject does not declare"
    )


def test_readme_stays_short():
    assert len(README.read_bytes()) <= 15 * 1024, "README.md is for a first read: move the depth to docs/"
