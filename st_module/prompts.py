"""MMEB task instructions, read from `mmeb_instructions.csv` (the table, its sources and the mteb names are there).

Each instruction is the instruction alone (no image tag, no trailing space); `VLM2VecProcessor.format_prompt` places
it the way the reference does. Image candidates use the target instruction `"Represent the given image."`.

A model folder saves, as named prompts, `query` / `document` (empty: raw input) and the instructions of the MMEB
tasks that mteb also has, under mteb's name for them (`model.encode(x, prompt_name="VisualNewsT2IRetrieval-query")`),
so that mteb accepts every saved name and applies the instruction by itself. The other MMEB instructions are not
saved as names (mteb would warn about each); pass them with `prompt=`: `prompt=MMEB_INSTRUCTIONS["A-OKVQA"]`.
"""

from __future__ import annotations

import csv
from pathlib import Path

IMAGE_TARGET_INSTRUCTION = "Represent the given image."
TABLE = Path(__file__).with_name("mmeb_instructions.csv")


def _read_table(path: Path = TABLE) -> list[dict[str, str]]:
    """The table's rows (`mmeb_task`, `instruction`, `mteb_prompt_name`); `#` lines are comments."""
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(line for line in stream if not line.startswith("#")))
    tasks, saved = set(), {"query", "document"}
    for number, row in enumerate(rows, start=1):
        if None in row or None in row.values() or not row.get("mmeb_task") or not row.get("instruction"):
            raise ValueError(f"{path}: data row {number} needs mmeb_task, instruction, mteb_prompt_name: {row}")
        task, name = row["mmeb_task"], row["mteb_prompt_name"]
        if task in tasks or name in saved:
            raise ValueError(f"{path}: data row {number} repeats the name {task if task in tasks else name!r}")
        tasks.add(task)
        saved |= {name} - {""}
    return rows


_ROWS = _read_table()

MMEB_INSTRUCTIONS: dict[str, str] = {row["mmeb_task"]: row["instruction"] for row in _ROWS}
"""The 36 MMEB datasets' query instructions, by MMEB name (`"A-OKVQA"`, `"VisualNews_t2i"`, ...)."""

MTEB_PROMPT_NAMES: dict[str, str] = {
    row["mmeb_task"]: row["mteb_prompt_name"] for row in _ROWS if row["mteb_prompt_name"]
}
"""MMEB name -> the name its instruction is saved under (mteb's task name, `-query` on the retrieval ones)."""


def default_prompts() -> dict[str, str]:
    """The prompts saved with every model: `query` / `document` (empty: raw input) plus the MMEB instructions that
    mteb has a task for, under mteb's names (see `MTEB_PROMPT_NAMES`)."""
    return {"query": "", "document": "", **{name: MMEB_INSTRUCTIONS[task] for task, name in MTEB_PROMPT_NAMES.items()}}
