"""MMEB evaluation data, read into one shape: per query, an item and either its own candidate list (local ranking)
or the dataset's shared candidate pool (global ranking), with the relevant candidates.

Three layouts, detected per dataset folder (`<root>/<dataset>/`):

* **MMEB-V1** (`TIGER-Lab/MMEB-eval`): `qry_text`, `qry_img_path`, `tgt_text` (list), `tgt_img_path` (list), the
  first candidate gold (an optional `gold_index` column overrides). Prompts are used as stored, `<|image_1|>`
  swapped for the backbone's image token. Files: `test.parquet`, `test/*.parquet` or `.jsonl`.
* **MMEB-V2 image** (`ziyjiang/MMEB_Test_Instruct`): the same plus `qry_inst` / `tgt_inst`; prompts are rebuilt
  with the V2 rules of [`prompts_v2`].
* **Visual documents** (BEIR style, `vidore/*_beir`): `queries.parquet` (`query-id`, `query`), `corpus.parquet`
  (`corpus-id`, `image`: a path under the image root, or the page image itself as the Hub files store it, written
  once to `<dataset>/pages/`), `qrels.parquet` (`query-id`, `corpus-id`, `score`); ranked globally over the whole
  corpus.

An optional `<root>/tasks.json` (`{"<dataset>": {"meta_task": ..., "modality": ..., "ood": bool}}`) groups datasets
that are not among the published ones (the offline mini-MMEB set writes one).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from vlm2vec_hf.evaluation import prompts_v2

MMEB_IMAGE_TAG = "<|image_1|>"
V1_COLUMNS = ("qry_text", "qry_img_path", "tgt_text", "tgt_img_path")
VISDOC_FILES = ("queries", "corpus", "qrels")

Item = tuple[str, str]  # (complete prompt text, with the image token in place; absolute image path or "")


class EvalDataError(ValueError):
    """A dataset row that cannot be evaluated; the message names the dataset and row."""


@dataclass
class EvalDataset:
    """One evaluation dataset.

    Attributes:
        name: dataset name (the folder name).
        queries: one item per query.
        candidates: local ranking: each query's own candidate items; global ranking: empty.
        relevance: per query, candidate index (into its own list, or into `corpus`) -> relevance grade (> 0).
        corpus: global ranking: the shared candidate pool; local ranking: None.
        layout: `"v1"`, `"v2"` or `"visdoc"`.
        task_type: the V2 parser (`image_cls`, ..., `visdoc`), or None for V1 data.
    """

    name: str
    queries: list[Item]
    candidates: list[list[Item]]
    relevance: list[dict[int, float]]
    corpus: list[Item] | None = None
    layout: str = "v1"
    task_type: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def eval_type(self) -> str:
        return "global" if self.corpus is not None else "local"

    def items(self) -> list[Item]:
        """Every query and candidate item, in row order, as the naive protocol would encode them."""
        listed = list(self.queries)
        for row in self.candidates:
            listed.extend(row)
        return listed + list(self.corpus or [])


def _table(folder: Path, split: str) -> datasets.Dataset:
    for pattern, loader in (
        (f"{split}.parquet", "parquet"),
        (f"{split}/*.parquet", "parquet"),
        (f"{split}.jsonl", "json"),
        (f"{split}/*.jsonl", "json"),
    ):
        files = sorted(folder.glob(pattern))
        if files:
            return datasets.load_dataset(loader, data_files=[str(f) for f in files], split="train")
    raise FileNotFoundError(f"no {split!r} data for dataset {folder.name!r} under {folder}")


class _ImageRoot:
    """Resolves image paths under the image root, checking each distinct file once: retrieval sets list the same
    candidate images in row after row (up to 1000 per query)."""

    def __init__(self, root: Path):
        self.root = root
        self._found: set[str] = set()

    def resolve(self, name: str, row: int | str, image: str | None) -> str:
        """The absolute path of `image` ("" for none); an `EvalDataError` naming dataset and row if it is missing."""
        if not image:
            return ""
        path = str(self.root / image)
        if path not in self._found:
            if not os.path.isfile(path):
                raise EvalDataError(f"{name} row {row}: image file {path!r} does not exist")
            self._found.add(path)
        return path


def _candidate_lists(name: str, row: int, record: dict) -> tuple[list[str], list[str]]:
    texts, images = list(record["tgt_text"] or []), list(record["tgt_img_path"] or [])
    if not texts and not images:
        raise EvalDataError(f"{name} row {row}: empty candidate list")
    texts = texts or [""] * len(images)
    images = images or [""] * len(texts)
    if len(texts) != len(images):
        raise EvalDataError(f"{name} row {row}: {len(texts)} candidate texts but {len(images)} image paths")
    return texts, images


def _gold(name: str, row: int, record: dict, count: int) -> dict[int, float]:
    gold = record.get("gold_index", 0)
    gold = 0 if gold is None else int(gold)
    if not 0 <= gold < count:
        raise EvalDataError(f"{name} row {row}: gold index {gold} out of range for {count} candidates")
    return {gold: 1.0}


def _load_v1(name: str, table: datasets.Dataset, images: _ImageRoot, image_token: str) -> EvalDataset:
    def text(value: str | None) -> str:
        return (value or "").replace(MMEB_IMAGE_TAG, image_token)

    queries, candidates, relevance = [], [], []
    for row, record in enumerate(table):
        texts, paths = _candidate_lists(name, row, record)
        queries.append((text(record["qry_text"]), images.resolve(name, row, record["qry_img_path"])))
        candidates.append([(text(t), images.resolve(name, row, i)) for t, i in zip(texts, paths)])
        relevance.append(_gold(name, row, record, len(texts)))
    return EvalDataset(name, queries, candidates, relevance, layout="v1")


def _load_v2_image(
    name: str, table: datasets.Dataset, images: _ImageRoot, image_token: str, task_type: str | None = None
) -> EvalDataset:
    task_type = task_type or prompts_v2.IMAGE_TASK_TYPE.get(name)
    if task_type is None:
        raise EvalDataError(f"{name}: not an MMEB-V2 image dataset; name it in tasks.json with a 'task_type'")
    queries, candidates, relevance = [], [], []
    for row, record in enumerate(table):
        texts, paths = _candidate_lists(name, row, record)
        query_image = images.resolve(name, row, record["qry_img_path"])
        queries.append(
            (
                prompts_v2.query_prompt(task_type, name, record["qry_inst"] or "", record["qry_text"], image_token),
                query_image,
            )
        )
        instructions = record.get("tgt_inst")
        if not isinstance(instructions, list):
            instructions = [instructions] * len(texts)
        row_candidates = []
        for text, image, instruction in zip(texts, paths, instructions):
            path = images.resolve(name, row, image)
            prompt = prompts_v2.candidate_prompt(task_type, name, instruction, text, bool(path), image_token)
            row_candidates.append((prompt, path))
        candidates.append(row_candidates)
        relevance.append(_gold(name, row, record, len(texts)))
    return EvalDataset(name, queries, candidates, relevance, layout="v2", task_type=task_type)


def _embedded(tables: dict[str, datasets.Dataset]) -> bool:
    """Whether the corpus holds the page images themselves (the Hub's `vidore/*_beir` files) rather than paths."""
    return isinstance(tables["corpus"].features["image"], datasets.Image)


def _extract_page(folder: Path, corpus_id, page: dict) -> str:
    """Write an embedded page image once to `<folder>/pages/<corpus-id>.<ext>` so it is an item like any other."""
    data = page["bytes"]
    suffix = Path(page.get("path") or "").suffix or ".png"
    path = folder / "pages" / f"{corpus_id}{suffix}"
    if not path.is_file() or path.stat().st_size != len(data):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    return str(path)


def _load_visdoc(name: str, folder: Path, images: _ImageRoot, image_token: str) -> EvalDataset:
    tables = {
        part: datasets.load_dataset("parquet", data_files=str(folder / f"{part}.parquet"), split="train")
        for part in VISDOC_FILES
    }
    corpus_ids = list(tables["corpus"]["corpus-id"])
    position = {str(corpus_id): index for index, corpus_id in enumerate(corpus_ids)}
    embedded = _embedded(tables)
    corpus_table = tables["corpus"]
    if embedded:  # the raw bytes, not decoded images
        corpus_table = corpus_table.cast_column("image", datasets.Image(decode=False))
    pages = corpus_table["image"]
    corpus = []
    for corpus_id, page in zip(corpus_ids, pages):
        if embedded:
            path = _extract_page(folder, corpus_id, page)
        else:
            path = images.resolve(name, f"corpus {corpus_id}", page)
        corpus.append((prompts_v2.visdoc_candidate_prompt(image_token), path))
    qrels: dict[str, dict[int, float]] = {}
    for row, record in enumerate(tables["qrels"]):
        corpus_id = str(record["corpus-id"])
        if corpus_id not in position:
            raise EvalDataError(f"{name} qrels row {row}: corpus-id {corpus_id!r} is not in the corpus")
        qrels.setdefault(str(record["query-id"]), {})[position[corpus_id]] = float(record.get("score", 1) or 0)
    queries, relevance = [], []
    for row, record in enumerate(tables["queries"]):
        judged = {index: grade for index, grade in qrels.get(str(record["query-id"]), {}).items() if grade > 0}
        if not judged:
            raise EvalDataError(f"{name} query row {row} ({record['query-id']!r}): no relevant document in qrels")
        queries.append((prompts_v2.visdoc_query_prompt(record["query"]), ""))
        relevance.append(judged)
    return EvalDataset(
        name, queries, [[] for _ in queries], relevance, corpus=corpus, layout="visdoc", task_type="visdoc"
    )


def read_task_groups(root: str | os.PathLike) -> dict[str, dict]:
    """`<root>/tasks.json` if present: dataset -> {"meta_task", "modality", "ood"} for unpublished datasets."""
    path = Path(root) / "tasks.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def load_mmeb_eval(
    source: str | os.PathLike,
    image_root: str | os.PathLike,
    names: list[str] | None = None,
    split: str = "test",
    image_token: str = "<|image_pad|>",
) -> list[EvalDataset]:
    """Load evaluation datasets (all local dataset folders when `names` is None), each in its detected layout.

    A Hub dataset id (when online) is read in the V1 layout, one config per name. Raises [`EvalDataError`] naming
    the dataset and row for a missing image file, an empty candidate list or a gold index out of range.
    """
    root, images = Path(source), _ImageRoot(Path(image_root))
    if names is None:
        if not root.is_dir():
            raise ValueError(f"{source} is not a local folder: name the datasets to load from the Hub")
        names = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    groups = read_task_groups(root) if root.is_dir() else {}
    loaded = []
    for name in names:
        folder = root / name
        if root.is_dir() and not folder.is_dir():
            raise FileNotFoundError(f"dataset {name!r} not found under {root}")
        if root.is_dir() and all((folder / f"{part}.parquet").is_file() for part in VISDOC_FILES):
            dataset = _load_visdoc(name, folder, images, image_token)
        else:
            table = _table(folder, split) if root.is_dir() else datasets.load_dataset(str(source), name, split=split)
            missing = [column for column in V1_COLUMNS if column not in table.column_names]
            if missing:
                raise EvalDataError(f"{name}: MMEB-eval data lacks columns {missing}")
            if "qry_inst" in table.column_names:
                task_type = groups.get(name, {}).get("task_type")
                dataset = _load_v2_image(name, table, images, image_token, task_type)
            else:
                dataset = _load_v1(name, table, images, image_token)
        dataset.meta = groups.get(name, {})
        loaded.append(dataset)
    return loaded
