"""MMEB-eval data: one table per dataset with `qry_text`, `qry_img_path`, `tgt_text` (list), `tgt_img_path` (list);
the first candidate is the gold one. Read from a local folder (`<root>/<dataset>/test.parquet`,
`<root>/<dataset>/test/*.parquet`, or JSON lines) or, when online, a Hub dataset (`TIGER-Lab/MMEB-eval`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import datasets

MMEB_IMAGE_TAG = "<|image_1|>"
EVAL_COLUMNS = ("qry_text", "qry_img_path", "tgt_text", "tgt_img_path")

Item = tuple[str, str]  # (prompt text with the backbone's image token, absolute image path or "")


@dataclass
class EvalDataset:
    """One MMEB-eval dataset: per query, its item and its candidates (gold first)."""

    name: str
    queries: list[Item]
    candidates: list[list[Item]]


def _table(root: Path, name: str, split: str) -> datasets.Dataset:
    folder = root / name
    for pattern, loader in (
        (f"{split}.parquet", "parquet"),
        (f"{split}/*.parquet", "parquet"),
        (f"{split}.jsonl", "json"),
        (f"{split}/*.jsonl", "json"),
    ):
        files = sorted(folder.glob(pattern))
        if files:
            return datasets.load_dataset(loader, data_files=[str(f) for f in files], split="train")
    raise FileNotFoundError(f"no {split!r} data for dataset {name!r} under {folder}")


def _item(text: str | None, image: str | None, image_root: Path, image_token: str) -> Item:
    return (text or "").replace(MMEB_IMAGE_TAG, image_token), str(image_root / image) if image else ""


def load_mmeb_eval(
    source: str | os.PathLike,
    image_root: str | os.PathLike,
    names: list[str] | None = None,
    split: str = "test",
    image_token: str = "<|image_pad|>",
) -> list[EvalDataset]:
    """Load MMEB-eval datasets (all found locally when `names` is None). Raises `ValueError` naming dataset and row
    for a missing image file, an empty candidate list or mismatched candidate lists."""
    root, image_root = Path(source), Path(image_root)
    if names is None:
        if not root.is_dir():
            raise ValueError("name the datasets to load from a Hub dataset")
        names = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    loaded = []
    for name in names:
        table = _table(root, name, split) if root.is_dir() else datasets.load_dataset(str(source), name, split=split)
        missing = [column for column in EVAL_COLUMNS if column not in table.column_names]
        if missing:
            raise ValueError(f"{name}: MMEB-eval data lacks columns {missing}")
        queries, candidates = [], []
        for row, record in enumerate(table):
            texts, images = record["tgt_text"] or [], record["tgt_img_path"] or []
            if not texts:
                raise ValueError(f"{name} row {row}: empty candidate list")
            if len(images) not in (0, len(texts)):
                raise ValueError(f"{name} row {row}: {len(texts)} candidate texts but {len(images)} image paths")
            images = images or [""] * len(texts)
            query = _item(record["qry_text"], record["qry_img_path"], image_root, image_token)
            row_candidates = [_item(t, i, image_root, image_token) for t, i in zip(texts, images)]
            for _, path in [query, *row_candidates]:
                if path and not os.path.isfile(path):
                    raise ValueError(f"{name} row {row}: image file {path!r} does not exist")
            queries.append(query)
            candidates.append(row_candidates)
        loaded.append(EvalDataset(name, queries, candidates))
    return loaded
