"""MMEB-train data as sentence-transformers training columns, with images left as paths until a batch needs them.

Input layout (REFERENCE.md section 3.4): one table per subset with `qry`, `qry_image_path`, `pos_text`,
`pos_image_path` and optionally `neg_text`, `neg_image_path`; prompts carry MMEB's `<|image_1|>` tag; image paths
are relative to an image root. Read from a local folder (`<root>/<subset>/<split>.parquet|.jsonl`,
`<root>/<subset>/<split>/*.parquet|*.jsonl`, or a `datasets.save_to_disk` folder `<root>/<subset>/<split>/`) or,
when online, from a Hub dataset (`TIGER-Lab/MMEB-train`, one config per subset).

Output columns, each value `{"text": str | None, "image": absolute path | None}`: `query`, `positive` and, with
hard negatives, `negative`. The `<|image_1|>` tag is swapped for the backbone's image token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import datasets

MMEB_IMAGE_TAG = "<|image_1|>"
REQUIRED_COLUMNS = ("qry", "qry_image_path", "pos_text", "pos_image_path")
NEGATIVE_COLUMNS = ("neg_text", "neg_image_path")
SPLITS = ("original", "diverse_instruction", "train")
# (output column, text column, image column)
SIDES = (("query", "qry", "qry_image_path"), ("positive", "pos_text", "pos_image_path"))
NEGATIVE_SIDE = ("negative", "neg_text", "neg_image_path")
SIDE_FEATURES = datasets.Features({"text": datasets.Value("string"), "image": datasets.Value("string")})


@dataclass(frozen=True)
class DataProblem:
    """One unusable row: which subset, which row, which column, and why."""

    subset: str
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.subset} row {self.row} ({self.column}): {self.message}"


class MMEBDataError(ValueError):
    """Raised when MMEB-train rows are unusable; lists the first problems with subset and row."""

    def __init__(self, problems: list[DataProblem], limit: int = 20):
        lines = [str(problem) for problem in problems[:limit]]
        more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
        super().__init__(f"{len(problems)} unusable MMEB-train rows:\n" + "\n".join(lines) + more)
        self.problems = problems


def _local_files(subset_dir: Path, split: str) -> tuple[str, list[str]] | None:
    """(loader, files) for a subset folder: parquet or JSON lines, as one file or a folder of files."""
    for extension, loader in ((".parquet", "parquet"), (".jsonl", "json"), (".json", "json")):
        files = sorted(subset_dir.glob(f"{split}{extension}")) + sorted(subset_dir.glob(f"{split}-*{extension}"))
        files += sorted((subset_dir / split).glob(f"*{extension}")) if (subset_dir / split).is_dir() else []
        if files:
            return loader, [str(path) for path in files]
    return None


def list_local_subsets(root: str | os.PathLike, split: str = "original") -> list[str]:
    """Subset folders under `root` that hold data for `split`, sorted."""
    root = Path(root)
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and (_local_files(entry, split) or (entry / split / "dataset_info.json").is_file())
    )


def load_raw_subset(source: str | os.PathLike, subset: str, split: str = "original") -> datasets.Dataset:
    """One MMEB-train subset as stored (local folder or Hub dataset id)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(source)
    if root.is_dir():
        subset_dir = root / subset
        if (subset_dir / split / "dataset_info.json").is_file():
            return datasets.load_from_disk(str(subset_dir / split))
        found = _local_files(subset_dir, split)
        if found is None:
            raise FileNotFoundError(f"no {split!r} data for subset {subset!r} under {subset_dir}")
        loader, files = found
        return datasets.load_dataset(loader, data_files=files, split="train")
    return datasets.load_dataset(str(source), subset, split=split)


def _side(text: str | None, image: str | None, image_root: Path, image_token: str) -> dict:
    text = text.replace(MMEB_IMAGE_TAG, image_token) if text else None
    return {"text": text or None, "image": str(image_root / image) if image else None}


def to_training_columns(
    raw: datasets.Dataset,
    image_root: str | os.PathLike,
    image_token: str = "<|image_pad|>",
    hard_negatives: bool = False,
) -> datasets.Dataset:
    """MMEB-train columns -> `query` / `positive` (/ `negative`) columns of `{"text", "image"}` dicts."""
    missing = [column for column in REQUIRED_COLUMNS if column not in raw.column_names]
    if missing:
        raise ValueError(f"MMEB-train data lacks columns {missing}; it has {raw.column_names}")
    sides = SIDES + ((NEGATIVE_SIDE,) if hard_negatives else ())
    if hard_negatives and any(column not in raw.column_names for column in NEGATIVE_COLUMNS):
        raise ValueError(f"hard negatives need the columns {NEGATIVE_COLUMNS}; this data has {raw.column_names}")
    root = Path(image_root)

    def convert(batch: dict) -> dict:
        return {
            name: [_side(t, i, root, image_token) for t, i in zip(batch[text], batch[image])]
            for name, text, image in sides
        }

    features = datasets.Features({name: SIDE_FEATURES for name, _, _ in sides})
    return raw.map(convert, batched=True, remove_columns=raw.column_names, features=features, desc="MMEB columns")


def find_problems(subset: str, data: datasets.Dataset, image_token: str = "<|image_pad|>") -> list[DataProblem]:
    """Rows whose image file is missing, or whose prompt's image tags do not match its images."""
    problems = []
    for column in data.column_names:
        for row, side in enumerate(data[column]):
            tags = (side["text"] or "").count(image_token)
            image = side["image"]
            if image and not os.path.isfile(image):
                problems.append(DataProblem(subset, row, column, f"image file {image!r} does not exist"))
            elif tags > (1 if image else 0):
                problems.append(DataProblem(subset, row, column, f"{tags} image tags but {int(bool(image))} images"))
    return problems


def load_mmeb_train(
    source: str | os.PathLike,
    image_root: str | os.PathLike,
    subsets: list[str] | None = None,
    split: str = "original",
    max_per_subset: int | None = None,
    hard_negatives: bool = False,
    image_token: str = "<|image_pad|>",
    check: bool = True,
) -> dict[str, datasets.Dataset]:
    """Load MMEB-train subsets as training datasets, one per subset.

    Args:
        source: local folder or Hub dataset id.
        image_root: folder the stored image paths are relative to.
        subsets: which subsets; default every subset found locally (required for a Hub id).
        max_per_subset: keep the first N rows of each subset, as the reference's `num_sample_per_subset`.
        hard_negatives: add a `negative` column from `neg_text` / `neg_image_path`.
        check: verify every image path and tag count up front; raises `MMEBDataError` naming subset and row.
    """
    if subsets is None:
        if not Path(source).is_dir():
            raise ValueError("name the subsets to load from a Hub dataset")
        subsets = list_local_subsets(source, split)
        if not subsets:
            raise FileNotFoundError(f"no MMEB-train subsets with split {split!r} under {source}")
    loaded, problems = {}, []
    for subset in subsets:
        raw = load_raw_subset(source, subset, split)
        if max_per_subset is not None:
            raw = raw.select(range(min(max_per_subset, len(raw))))
        data = to_training_columns(raw, image_root, image_token, hard_negatives)
        if check:
            problems += find_problems(subset, data, image_token)
        loaded[subset] = data
    if problems:
        raise MMEBDataError(problems)
    return loaded


def combine(subsets: dict[str, datasets.Dataset], seed: int = 0) -> datasets.Dataset:
    """All subsets in one shuffled dataset (every batch mixes subsets: the reference's IB0)."""
    return datasets.concatenate_datasets(list(subsets.values())).shuffle(seed=seed)
