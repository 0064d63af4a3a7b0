"""MMEB evaluation data, read into one shape: per query, an item and either its own candidate list (local ranking)
or the dataset's shared candidate pool (global ranking), with the relevant candidates.

Four layouts, detected per dataset folder (`<root>/<dataset>/`):

* **MMEB-V1** (`TIGER-Lab/MMEB-eval`): `qry_text`, `qry_img_path`, `tgt_text` (list), `tgt_img_path` (list), the
  first candidate gold (an optional `gold_index` column overrides). Prompts are used as stored, `<|image_1|>`
  swapped for the backbone's image token.
* **MMEB-V2 image** (`ziyjiang/MMEB_Test_Instruct`): the same plus `qry_inst` / `tgt_inst`; prompts are rebuilt
  with the V2 rules of [`prompts_v2`].
* **MMEB-V2 video** (`VLM2Vec/<dataset>` + `TIGER-Lab/MMEB-V2/video-tasks/frames`): `qry_text`, `qry_video`,
  `tgt_text`, `tgt_video`, `gold_index`; prompts per dataset from [`prompts_video`], clips checked up front, local or
  global ranking as the reference ranks each of the 18 tasks ([`video_data`]).
* **Visual documents** (BEIR style, `vidore/*_beir`): `queries.parquet` (`query-id`, `query`), `corpus.parquet`
  (`corpus-id`, `image`: a path under the image root, or the page image itself as the Hub files store it, written
  once to `<dataset>/pages/`), `qrels.parquet` (`query-id`, `corpus-id`, `score`); ranked globally over the whole
  corpus. Each table may also be sharded (`queries-00000-of-00001.parquet`, `data/queries-...`, or the split's
  files in `queries/`, as `push_to_hub(config_name="queries")` writes them).

V1 / V2 data files are found as the `datasets` library finds a split ([`split_files`]): `test.parquet`,
`test/*.parquet`, `test-00000-of-00001.parquet`, `data/test-00000-of-00001.parquet` (what `Dataset.push_to_hub`
writes), `.jsonl` in the same forms. Without dataset names every sub-folder of the root is tried
([`discover_datasets`]); hidden folders (`.cache/` from `snapshot_download`), image folders and folders without
data for the split are skipped and listed.

An optional `<root>/tasks.json` (`{"<dataset>": {"meta_task": ..., "modality": ..., "ood": bool}}`) groups datasets
that are not among the published ones (the offline mini-MMEB set writes one).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import datasets
from datasets.data_files import (
    SPLIT_PATTERN_SHARDED,
    DataFilesDict,
    DataFilesList,
    _get_data_files_patterns,
    resolve_pattern,
    sanitize_patterns,
)

from vlm2vec_hf.evaluation import prompts_system, prompts_v2

V1_COLUMNS = ("qry_text", "qry_img_path", "tgt_text", "tgt_img_path")
VISDOC_FILES = ("queries", "corpus", "qrels")
DATA_BUILDERS = {".parquet": "parquet", ".jsonl": "json"}  # data file suffix -> `datasets` builder
DATA_EXTENSIONS = tuple(DATA_BUILDERS)

logger = logging.getLogger(__name__)

# Inline prompt style: (complete prompt text with MMEB's image / video tag in place, absolute image path or ""[,
# absolute clip path]): text and image items are 2-tuples, clip items `(prompt, "", clip)` (a frame folder or a video
# file). System prompt style: `(text without media tags, image or "", clip or "", instruction or "")` 4-tuples.
Item = tuple[str, str] | tuple[str, str, str] | tuple[str, str, str, str]
# "inline": VLM2Vec's prompts, instruction and media tag inside the text; "system": the instruction apart, for models
# whose prompt gives it its own turn (`VLM2VecProcessor.instruction_turn`).
PROMPT_STYLES = ("inline", "system")


def item_parts(item: Item) -> tuple[str, str, str]:
    """`(text, image, video)` of an item; `""` where it has none."""
    text, image, *video = item
    return text, image, video[0] if video else ""


def item_instruction(item: Item) -> str | None:
    """A system-style item's instruction (`""`: the model's default); None for an inline-style item."""
    return item[3] if len(item) == 4 else None


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
        layout: `"v1"`, `"v2"`, `"video"` or `"visdoc"`.
        task_type: the V2 parser (`image_cls`, ..., `video_ret`, `video_cls`, `video_qa`, `video_mret`, `visdoc`), or
            None for V1 data.
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


@dataclass(frozen=True)
class SkippedFolder:
    """A sub-folder of the data root that is not an evaluation dataset: its name and the reason."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"Skipped {self.name}/: {self.reason}"


class EvalDatasets(list):
    """What [`load_mmeb_eval`] returns: a list of [`EvalDataset`], plus `skipped`, the sub-folders of the data root
    that were passed over (a list of [`SkippedFolder`]; empty when the datasets were named)."""

    def __init__(self, loaded: list[EvalDataset] = (), skipped: list[SkippedFolder] = ()):
        super().__init__(loaded)
        self.skipped = list(skipped)


def _holds_data_file(folder: Path, extensions: tuple[str, ...]) -> bool:
    """Whether any non-hidden file under `folder` ends in one of `extensions`: one cheap walk that spares an image
    folder of 100,000s of pictures the `datasets` pattern globs (dozens of recursive passes)."""
    for _parent, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith((".", "__"))]
        if any(name.endswith(extensions) and not name.startswith(".") for name in files):
            return True
    return False


def split_files(folder: str | os.PathLike, split: str, extensions: tuple[str, ...] = DATA_EXTENSIONS) -> list[str]:
    """The data files of `split` in `folder` (sorted absolute paths; [] if none), found as `datasets` finds a
    dataset's splits (`<split>.parquet`, `<split>/*`, `data/<split>-00000-of-00001.parquet`,
    `<split>-00000-of-00001.parquet`, the split's synonyms such as `eval` for `test`; hidden files ignored), searching
    only the files ending in one of `extensions`, so a `test/` image folder does not stand for the `test` split."""
    folder = Path(folder)
    if not _holds_data_file(folder, extensions):
        return []
    base = folder.resolve().as_posix()
    # `get_data_patterns` would pick the first pattern group matching any file, so a `test/` image folder beside
    # `test.parquet` hid the table; the same search over data files only takes the table.
    try:
        patterns = sanitize_patterns(
            _get_data_files_patterns(partial(resolve_pattern, base_path=base, allowed_extensions=list(extensions)))
        )
    except FileNotFoundError:
        return []
    if split not in patterns:
        return []
    found = DataFilesDict.from_patterns({split: patterns[split]}, base_path=base, allowed_extensions=list(extensions))
    return sorted({path for path in found[split] if path.endswith(extensions)})  # not `test.parquet.lock`


def _visdoc_part_files(folder: Path, part: str, split: str) -> list[str]:
    """The parquet files of one BEIR table (`queries`, `corpus`, `qrels`) of a visual-document set; [] if none:
    `<part>.parquet`, the shards `<part>-00000-of-00001.parquet` or `data/<part>-00000-of-00001.parquet` (the
    table as a split), or the split's files in `<part>/` (`push_to_hub(config_name=part)`)."""
    if (folder / f"{part}.parquet").is_file():
        return [str(folder / f"{part}.parquet")]
    sharded = SPLIT_PATTERN_SHARDED.format(split=part)
    shards = DataFilesList.from_patterns(
        [sharded, sharded.removeprefix("data/")], base_path=folder.resolve().as_posix(), allowed_extensions=[".parquet"]
    )
    if shards:
        return sorted({path for path in shards if path.endswith(".parquet")})
    return split_files(folder / part, split, (".parquet",)) if (folder / part).is_dir() else []


def _visdoc_files(folder: Path, split: str) -> dict[str, list[str]] | None:
    """Each BEIR table's parquet files when `folder` holds all three (`queries`, `corpus`, `qrels`), else None."""
    files = {part: _visdoc_part_files(folder, part, split) for part in VISDOC_FILES}
    return files if all(files.values()) else None


def _skip_reason(folder: Path, split: str) -> str | None:
    """Why the sub-folder `folder` of the data root is not an evaluation dataset, or None if it is one."""
    if folder.name.startswith("."):
        return "hidden folder"
    if _visdoc_files(folder, split) is None and not split_files(folder, split):
        return f"no {split} data"
    return None


def discover_datasets(root: str | os.PathLike, split: str = "test") -> tuple[list[str], list[SkippedFolder]]:
    """The evaluation datasets under the local folder `root`, as `(names, skipped)`: the sorted names of the
    sub-folders holding `split` data in a known layout, and a [`SkippedFolder`] (name and reason) for every other
    sub-folder: hidden ones (`.cache/` from `snapshot_download`), image folders, folders without `split` data.
    Files directly under `root` (README.md, tasks.json) are neither."""
    names, skipped = [], []
    for folder in sorted(entry for entry in Path(root).iterdir() if entry.is_dir()):
        reason = _skip_reason(folder, split)
        if reason is None:
            names.append(folder.name)
        else:
            skipped.append(SkippedFolder(folder.name, reason))
    return names, skipped


def _read_files(name: str, files: list[str]) -> datasets.Dataset:
    """One table from parquet or JSON-lines `files` (one kind per dataset)."""
    builders = {DATA_BUILDERS[next(e for e in DATA_EXTENSIONS if f.endswith(e))] for f in files}
    if len(builders) > 1:
        raise EvalDataError(f"{name}: data files of different types {sorted(builders)}: keep one kind per dataset")
    return datasets.load_dataset(builders.pop(), data_files=files, split="train")


def _table(folder: Path, split: str) -> datasets.Dataset:
    """The `split` table of the dataset folder `folder`; a `FileNotFoundError` naming the dataset if it has none."""
    files = split_files(folder, split)
    if not files:
        raise FileNotFoundError(f"no {split!r} data for dataset {folder.name!r} under {folder}")
    return _read_files(folder.name, files)


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


def _load_v1(name: str, table: datasets.Dataset, images: _ImageRoot) -> EvalDataset:
    def text(value: str | None) -> str:
        return value or ""

    queries, candidates, relevance = [], [], []
    for row, record in enumerate(table):
        texts, paths = _candidate_lists(name, row, record)
        queries.append((text(record["qry_text"]), images.resolve(name, row, record["qry_img_path"])))
        candidates.append([(text(t), images.resolve(name, row, i)) for t, i in zip(texts, paths)])
        relevance.append(_gold(name, row, record, len(texts)))
    return EvalDataset(name, queries, candidates, relevance, layout="v1")


def _load_v2_image(
    name: str, table: datasets.Dataset, images: _ImageRoot, task_type: str | None = None, style: str = "inline"
) -> EvalDataset:
    task_type = task_type or prompts_v2.IMAGE_TASK_TYPE.get(name)
    if task_type is None:
        raise EvalDataError(f"{name}: not an MMEB-V2 image dataset; name it in tasks.json with a 'task_type'")
    queries, candidates, relevance = [], [], []
    for row, record in enumerate(table):
        texts, paths = _candidate_lists(name, row, record)
        query_image = images.resolve(name, row, record["qry_img_path"])
        if style == "system":
            instruction = prompts_system.image_instruction(record["qry_inst"])
            queries.append((record["qry_text"] or "", query_image, "", instruction))
        else:
            prompt = prompts_v2.query_prompt(task_type, name, record["qry_inst"] or "", record["qry_text"])
            queries.append((prompt, query_image))
        instructions = record.get("tgt_inst")
        if not isinstance(instructions, list):
            instructions = [instructions] * len(texts)
        row_candidates = []
        for text, image, instruction in zip(texts, paths, instructions):
            path = images.resolve(name, row, image)
            if style == "system":
                row_candidates.append((prompts_system.image_candidate_text(task_type, text), path, "", ""))
                continue
            prompt = prompts_v2.candidate_prompt(task_type, name, instruction, text, bool(path))
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


def _load_visdoc(
    name: str, folder: Path, files: dict[str, list[str]], images: _ImageRoot, style: str = "inline"
) -> EvalDataset:
    tables = {part: datasets.load_dataset("parquet", data_files=files[part], split="train") for part in VISDOC_FILES}
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
        corpus.append(("", path, "", "") if style == "system" else (prompts_v2.visdoc_candidate_prompt(), path))
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
        if style == "system":
            queries.append((record["query"], "", "", prompts_system.VISDOC_QUERY_INSTRUCTION))
        else:
            queries.append((prompts_v2.visdoc_query_prompt(record["query"]), ""))
        relevance.append(judged)
    return EvalDataset(
        name, queries, [[] for _ in queries], relevance, corpus=corpus, layout="visdoc", task_type="visdoc"
    )


def read_task_groups(root: str | os.PathLike) -> dict[str, dict]:
    """`<root>/tasks.json` if present: dataset -> {"meta_task", "modality", "ood"} for unpublished datasets."""
    path = Path(root) / "tasks.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _no_datasets_message(root: Path, split: str, skipped: list[SkippedFolder]) -> str:
    """The error for a data root without any dataset, listing the sub-folders passed over."""
    listed = ", ".join(f"{entry.name}/ ({entry.reason})" for entry in skipped) or "it has no sub-folders"
    return f"no evaluation dataset (no {split!r} data) under {root}: {listed}"


def _load_table(
    name: str,
    table: datasets.Dataset,
    images: _ImageRoot,
    task_type: str | None,
    meta: dict | None = None,
    style: str = "inline",
) -> EvalDataset:
    """A V1, V2-image or V2-video dataset from its table (V2 when it has `qry_inst`, video when it has `qry_video` or
    `tgt_video`). V1 rows have no separate instruction: they are inline-style in every `style`."""
    from vlm2vec_hf.evaluation import video_data  # it builds on this module's types

    if video_data.is_video_table(table):
        return video_data.load_video_table(name, table, images, meta, style)
    missing = [column for column in V1_COLUMNS if column not in table.column_names]
    if missing:
        raise EvalDataError(f"{name}: MMEB-eval data lacks columns {missing}")
    if "qry_inst" in table.column_names:
        return _load_v2_image(name, table, images, task_type, style)
    return _load_v1(name, table, images)


def _load_local(
    root: Path,
    name: str,
    split: str,
    images: _ImageRoot,
    task_type: str | None,
    meta: dict | None = None,
    style: str = "inline",
) -> EvalDataset:
    """The dataset in `<root>/<name>/`, in its detected layout; a `FileNotFoundError` naming it if it has no data."""
    folder = root / name
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset {name!r} not found under {root}")
    visdoc = _visdoc_files(folder, split)
    if visdoc is not None:
        return _load_visdoc(name, folder, visdoc, images, style)
    return _load_table(name, _table(folder, split), images, task_type, meta, style)


def load_mmeb_eval(
    source: str | os.PathLike,
    image_root: str | os.PathLike,
    names: list[str] | None = None,
    split: str = "test",
    prompt_style: str = "inline",
) -> EvalDatasets:
    """Load evaluation datasets, each in its detected layout: the named ones, or when `names` is None every
    sub-folder of the local folder `source` that holds `split` data ([`discover_datasets`]; the others, such as
    `images/` or `.cache/`, are logged and listed in the result's `skipped`).

    A Hub dataset id (when online) is read in the V1 layout, one config per name. Returns an [`EvalDatasets`] list.
    Raises a `FileNotFoundError` for a named dataset without `split` data or a folder without any dataset, and an
    [`EvalDataError`] naming the dataset and row for a missing image file or clip, an empty candidate list or a gold
    index out of range. `prompt_style` ([`PROMPT_STYLES`]): `"inline"` items hold VLM2Vec's prompts with MMEB's
    `<|image_1|>` / `<|video_1|>` tags, which the model's processor maps to its own image and video tokens;
    `"system"` items hold text and instruction apart ([`prompts_system`]; V1 data stays inline).
    """
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
    root, images = Path(source), _ImageRoot(Path(image_root))
    local = root.is_dir()
    skipped: list[SkippedFolder] = []
    if names is None:
        if not local:
            raise ValueError(f"{source} is not a local folder: name the datasets to load from the Hub")
        names, skipped = discover_datasets(root, split)
        for entry in skipped:
            logger.info("%s", entry)
        if not names:
            raise FileNotFoundError(_no_datasets_message(root, split, skipped))
    groups = read_task_groups(root) if local else {}
    loaded = []
    for name in names:
        meta = groups.get(name, {})
        task_type = meta.get("task_type")
        if local:
            dataset = _load_local(root, name, split, images, task_type, meta, prompt_style)
        else:
            table = datasets.load_dataset(str(source), name, split=split)
            dataset = _load_table(name, table, images, task_type, meta, prompt_style)
        dataset.meta = meta
        loaded.append(dataset)
    return EvalDatasets(loaded, skipped)
