"""The published MMEB-V2 video eval tables (`VLM2Vec/<dataset>` and the QA sets' own Hub repos) in the video eval
layout of [`video_data`], and `vlm2vec data video-eval`.

Each raw table has its dataset's own columns; the reference's parsers (`src/data/eval_dataset/*.py`, v2.0.1) read
them into queries and candidates. One [`VideoTableSpec`] per dataset records what they read: the columns, the clip
folder of a row under its set's frame folder (`experiments/public/eval/video.yaml`'s `frame_root`, relative to the
`TIGER-Lab/MMEB-V2` root), the query text, the candidates and the gold. [`convert_video_table`] applies it; the
prompts are [`prompts_video`]'s, added when the table is loaded, so candidates stay the raw strings the dataset gives
(QA: the options as the parser lists them, e.g. Video-MME's `"A. a dog"`; MVBench's and NExTQA's letters are added
by `prompts_video`).

Covered: all 18.

* Retrieval (`video_ret`; query = caption, candidate = the row's clip, one global pool): MSR-VTT (`video_id`,
  `caption`), MSVD (`video_id`, `caption[0]`), DiDeMo (`caption`; the clip is the file stem of `video`), VATEX
  (`videoID`, `enCap[0]`), YouCook2 (`id`, `sentence`).
* Classification (`video_cls`; query = clip): K700 (the Hub's `VLM2Vec/Kinetics-700`), HMDB51, UCF101, Breakfast
  (`video_id`, label `pos_text`; ranked over the rows' labels plus the dataset's whole label list, which the
  reference keeps in its code: pass it as `labels`, else the pool is the labels the table holds and a warning says
  how many are missing), SmthSmthV2 (`video_id`, candidates `neg_text`, gold `pos_text`; first 1000 rows, as
  `num_sample_per_subset: 1000`).
* QA (`video_qa`; query = clip + question): NExTQA (`video`, `question`, options `a0`..`a4`, `answer` an index),
  Video-MME (`videoID`, `question`, `options`, `answer` a letter A-D), EgoSchema (`video_idx`, `question`, `option`,
  `answer` an index), ActivityNetQA (`video_name` -> clip `v_<video_name>`, `question`, `answer` yes / no), MVBench
  (`subset`, `video` -> clip `<subset>/<video>`, `question`, `candidates`, `answer` the candidate text; the Hub's
  per-task configs carry no `subset` column: add it, as the reference's loader does).
* Moment retrieval (`video_mret`): QVHighlight, Charades-STA (`query`, `video_path`; the candidates are not in the
  table: they are the clip folders of `<frames>/<stem of video_path>/` other than `query/`, the query clip, so
  `root` must be the MMEB-V2 root; gold the one whose name starts with `positive`), MomentSeeker (`query`,
  `positive_frames` / `negative_frames` `[{"output_path": ...}]`, clip `output_path` with `/` -> `_` and `.mp4`
  dropped; gold every positive clip).

v2.0.1 reads ActivityNetQA, Charades-STA and MomentSeeker from the MMEB-V2 root's `video-tasks/data/*.jsonl`
(`video.yaml`'s `data_path`), the same columns as their Hub tables. The moment sets' clips are listed in sorted order
(the reference's `os.listdir` order is the file system's; the order only matters for ties).

Not covered: MomentSeeker's image and video queries. The v2.0.1 loader keeps only the rows with an empty
`input_frames` (text queries), so the others are skipped here too (the CLI says how many); later reference releases
read them from another frame layout (`<frame_root>/video_frames/`).

Golds follow the reference's rule: a candidate is relevant when its name equals the row's label (`label_name` in
`cand_names`), so an option listed twice is relevant twice; MVBench's label is the last matching candidate's
lettered name. A row the rule cannot resolve (no such column, an answer that is not an option, a letter outside
A-D) is an [`EvalDataError`] naming dataset, row and column.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from vlm2vec_hf.evaluation import prompts_video
from vlm2vec_hf.evaluation.task_tables import VIDEO_TABLES

# `datasets` (and `evaluation.data`, which imports it) load when a table is read or written: the CLI's parser
# imports this module for the `video-eval` sub-command and must start at once.
if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

FRAMES = "video-tasks/frames"
# The Hub repos name K700 by its full name; our datasets use the published scores' names.
ALIASES: dict[str, str] = VIDEO_TABLES["hub_aliases"]
TABLE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}


@functools.cache
def table_features() -> datasets.Features:
    """The columns of a converted table (the video eval layout)."""
    import datasets

    return datasets.Features(
        {
            "qry_text": datasets.Value("string"),
            "qry_video": datasets.Value("string"),
            "tgt_text": datasets.List(datasets.Value("string")),
            "tgt_video": datasets.List(datasets.Value("string")),
            "gold_index": datasets.List(datasets.Value("int64")),
        }
    )


class Row:
    """One raw row with checked access: every problem is an `EvalDataError` naming dataset, row and column."""

    def __init__(self, dataset: str, index: int, record: dict):
        self.dataset, self.index, self.record = dataset, index, record

    def fail(self, column: str, problem: str) -> NoReturn:
        from vlm2vec_hf.evaluation.data import EvalDataError

        raise EvalDataError(f"{self.dataset} row {self.index}: column {column!r}: {problem}")

    def value(self, column: str) -> Any:
        if column not in self.record:
            self.fail(column, f"missing (the row has {sorted(self.record)})")
        if self.record[column] is None:
            self.fail(column, "empty (None)")
        return self.record[column]

    def text(self, column: str) -> str:
        value = self.value(column)
        if not isinstance(value, str):
            self.fail(column, f"expected a string, got {type(value).__name__} {value!r}")
        return value

    def key(self, column: str) -> str:
        """A video id: a string, or an integer id written as one (NExTQA's `video`, SmthSmthV2's `video_id`)."""
        value = self.value(column)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            self.fail(column, f"expected a video id (string or integer), got {value!r}")
        return str(value)

    def texts(self, column: str) -> list[str]:
        value = self.value(column)
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            self.fail(column, f"expected a non-empty list of strings, got {value!r}")
        return list(value)

    def index_of(self, column: str, count: int) -> int:
        """An integer answer index (an int or its decimal string), checked against `count` options."""
        value = self.value(column)
        try:
            index = int(value) if not isinstance(value, (bool, float)) else None
        except (TypeError, ValueError):
            index = None
        if index is None or not 0 <= index < count:
            self.fail(column, f"answer {value!r} is not an option index 0..{count - 1}")
        return index


# ---- the rules a spec combines (each reads one row) --------------------------------------------------------------


def folder(template: str) -> Callable[[Row], str]:
    """A clip folder name from columns, e.g. `"{video_id}"`, `"v_{video_name}"`, `"{subset}/{video}"`."""
    columns = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return lambda row: template.format(**{column: row.key(column) for column in columns})


def file_stem(column: str) -> Callable[[Row], str]:
    """The file name of a path column without its extension (`didemo/123.mp4` -> `123`)."""
    return lambda row: os.path.splitext(os.path.basename(row.text(column)))[0]


def text(column: str) -> Callable[[Row], str]:
    return lambda row: row.text(column)


def first_text(column: str) -> Callable[[Row], str]:
    """The first of a list of captions (MSVD, VATEX query with their first caption)."""
    return lambda row: row.texts(column)[0]


def option_list(column: str) -> Callable[[Row], list[str]]:
    return lambda row: row.texts(column)


def option_columns(*columns: str) -> Callable[[Row], list[str]]:
    return lambda row: [row.text(column) for column in columns]


def fixed_options(*options: str) -> Callable[[Row], list[str]]:
    return lambda row: list(options)


Gold = Callable[[Row, list[str]], list[int]]


def _named(label: str, options: list[str]) -> list[int]:
    """Every position whose name is the label (the reference's `label_name in cand_names`)."""
    return [index for index, option in enumerate(options) if option == label]


def gold_at_index(column: str) -> Gold:
    """`answer` is an option index; the label is that option (NExTQA, EgoSchema)."""
    return lambda row, options: _named(options[row.index_of(column, len(options))], options)


def gold_at_letter(column: str, letters: str) -> Gold:
    """`answer` is a letter of `letters`; the label is the option at its position (Video-MME: A-D)."""

    def gold(row: Row, options: list[str]) -> list[int]:
        letter = row.text(column)
        if len(letter) != 1 or letter not in letters or letters.index(letter) >= len(options):
            row.fail(column, f"answer {letter!r} is not one of {list(letters[: len(options)])}")
        return _named(options[letters.index(letter)], options)

    return gold


def gold_named(column: str, last: bool = False) -> Gold:
    """`answer` is the text of an option: every option of that text, or with `last` only the last one (MVBench's
    `qa_template` keeps the last match)."""

    def gold(row: Row, options: list[str]) -> list[int]:
        matches = _named(row.text(column), options)
        if not matches:
            row.fail(column, f"answer {row.text(column)!r} is not among the options {options}")
        return matches[-1:] if last else matches

    return gold


# ---- the specs ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoTableSpec:
    """How one published video dataset's raw table becomes our layout.

    Attributes:
        name: our dataset name (the published scores' and [`prompts_video`]'s).
        source: the table the reference reads (Hub `repo [config] split`, or a file under the MMEB-V2 root).
        parser: the reference parser (`src/data/eval_dataset/<parser>`).
        frames: the set's frame folder, relative to the MMEB-V2 root (`video.yaml`'s `frame_root`).
        clip: the row's clip folder name under `frames` (retrieval: the candidate; otherwise the query clip).
        text: the query text (caption, question, moment description); None for classification.
        options: QA options / SmthSmthV2's candidates as the table lists them.
        label: classification label column (K700, HMDB51, UCF101, Breakfast: ranked over the label pool).
        gold: which of `options` are relevant.
        first_rows: the reference evaluates only the first rows (`num_sample_per_subset`).
        label_count: the size of the reference's label pool (its label list in `video_classification_utils.py`).
    """

    name: str
    source: str
    parser: str
    frames: str
    clip: Callable[[Row], str] | None = None
    text: Callable[[Row], str] | None = None
    options: Callable[[Row], list[str]] | None = None
    label: str | None = None
    gold: Gold | None = None
    first_rows: int | None = None
    label_count: int | None = None

    @property
    def task_type(self) -> str:
        return prompts_video.VIDEO_TASK_TYPE[self.name]


def _retrieval(name: str, source: str, parser: str, clip, query) -> VideoTableSpec:
    return VideoTableSpec(name, source, parser, f"{FRAMES}/video_ret/{name}", clip=clip, text=query)


def _classification(name: str, set_folder: str, count: int) -> VideoTableSpec:
    source = f"VLM2Vec/{'Kinetics-700' if name == 'K700' else name} test"
    frames = f"{FRAMES}/video_cls/{set_folder}"
    return VideoTableSpec(
        name,
        source,
        "video_classification_datasets.py",
        frames,
        folder("{video_id}"),
        label="pos_text",
        label_count=count,
    )


def _qa(name: str, source: str, parser: str, clip, options, gold, question: str = "question") -> VideoTableSpec:
    frames = f"{FRAMES}/video_qa/{name}"
    return VideoTableSpec(name, source, parser, frames, clip, text(question), options=options, gold=gold)


# MVBench's tasks (`subset_meta`): the reference fails on any other `subset`.
MVBENCH_SUBSETS = frozenset(VIDEO_TABLES["mvbench_subsets"])


def _mvbench_clip(row: Row) -> str:
    """`<subset>/<video>` (the file name, extension included, is the folder name); the subset must be a task."""
    subset = row.key("subset")
    if subset not in MVBENCH_SUBSETS:
        row.fail("subset", f"{subset!r} is not an MVBench task {sorted(MVBENCH_SUBSETS)}")
    return f"{subset}/{row.key('video')}"


SPECS: dict[str, VideoTableSpec] = {
    spec.name: spec
    for spec in [
        _retrieval(
            "MSR-VTT", "VLM2Vec/MSR-VTT test_1k test", "msrvtt_dataset.py", folder("{video_id}"), text("caption")
        ),
        _retrieval("MSVD", "VLM2Vec/MSVD test", "msvd_dataset.py", folder("{video_id}"), first_text("caption")),
        _retrieval("DiDeMo", "VLM2Vec/DiDeMo test", "didemo_dataset.py", file_stem("video"), text("caption")),
        _retrieval("VATEX", "VLM2Vec/VATEX test", "vatex_dataset.py", folder("{videoID}"), first_text("enCap")),
        _retrieval("YouCook2", "VLM2Vec/YouCook2 val", "youcook2_dataset.py", folder("{id}"), text("sentence")),
        _classification("K700", "K700", 700),
        _classification("HMDB51", "HMDB51", 51),
        _classification("UCF101", "UCF101", 101),
        _classification("Breakfast", "Breakfast", 10),
        VideoTableSpec(
            "SmthSmthV2",
            "VLM2Vec/SmthSmthV2 test",
            "ssv2_dataset.py",
            f"{FRAMES}/video_cls/SSv2",
            folder("{video_id}"),
            options=option_list("neg_text"),
            gold=gold_named("pos_text"),
            first_rows=1000,
        ),
        _qa(
            "NExTQA",
            "lmms-lab/NExTQA MC test",
            "nextqa_dataset.py",
            folder("{video}"),
            option_columns("a0", "a1", "a2", "a3", "a4"),
            gold_at_index("answer"),
        ),
        _qa(
            "Video-MME",
            "lmms-lab/Video-MME test",
            "videomme_dataset.py",
            folder("{videoID}"),
            option_list("options"),
            gold_at_letter("answer", "ABCD"),
        ),
        _qa(
            "EgoSchema",
            "lmms-lab/egoschema Subset test",
            "egoschema_dataset.py",
            folder("{video_idx}"),
            option_list("option"),
            gold_at_index("answer"),
        ),
        _qa(
            "ActivityNetQA",
            "video-tasks/data/activitynetqa.jsonl (the Hub: VLM2Vec/ActivityNetQA test)",
            "activitynetqa_dataset.py",
            folder("v_{video_name}"),
            fixed_options(*prompts_video.ACTIVITYNET_OPTIONS),
            gold_named("answer"),
        ),
        _qa(
            "MVBench",
            "OpenGVLab/MVBench <subset> train",
            "mvbench_dataset.py",
            _mvbench_clip,
            option_list("candidates"),
            gold_named("answer", last=True),
        ),
        VideoTableSpec(
            "QVHighlight",
            "VLM2Vec/QVHighlight test",
            "moment_retrieval_datasets.py",
            f"{FRAMES}/video_mret/QVHighlight",
            file_stem("video_path"),
            text("query"),
        ),
        VideoTableSpec(
            "Charades-STA",
            "video-tasks/data/charades_sta.jsonl (the Hub: VLM2Vec/Charades-STA test)",
            "moment_retrieval_datasets.py",
            f"{FRAMES}/video_mret/Charades_STA",
            file_stem("video_path"),
            text("query"),
        ),
        VideoTableSpec(
            "MomentSeeker",
            "video-tasks/data/momentseeker.jsonl (the Hub: VLM2Vec/MomentSeeker test)",
            "momentseeker_dataset.py",
            f"{FRAMES}/video_mret/MomentSeeker",
            text=text("query"),
        ),
    ]
}


def spec_for(dataset: str) -> VideoTableSpec:
    """The spec of a published dataset (our name, or the Hub's `Kinetics-700`); a `ValueError` listing the names."""
    name = ALIASES.get(dataset, dataset)
    if name not in SPECS:
        raise ValueError(f"{dataset!r} is not a published MMEB-V2 video dataset; expected one of {sorted(SPECS)}")
    return SPECS[name]


# ---- conversion --------------------------------------------------------------------------------------------------


def _moment_clip(path: str) -> str:
    """MomentSeeker's clip folder name: `output_path` with `/` -> `_`, cut at `.mp4`."""
    return path.replace("/", "_").split(".mp4")[0]


def _moment_clips(spec: VideoTableSpec, row: Row, frames: str, root: Path | None) -> tuple[str, list[str], list[int]]:
    """QVHighlight / Charades-STA: the query clip `<video>/query` and the video's other clip folders (sorted), gold
    the one named `positive*`. The clips are listed from the frames under `root`."""
    video = spec.clip(row)
    if root is None:
        raise ValueError(
            f"{spec.name}: its candidate clips are the frame folders on disk; give the MMEB-V2 root (--image-dir)"
        )
    folder = root / frames / video
    if not folder.is_dir():
        row.fail("video_path", f"no clip folder {str(folder)!r}")
    clips = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and entry.name != "query")
    positives = [index for index, clip in enumerate(clips) if clip.startswith("positive")]
    if len(positives) != 1:
        row.fail("video_path", f"{str(folder)!r} holds {len(positives)} 'positive*' clip folders, expected 1")
    return f"{frames}/{video}/query", [f"{frames}/{video}/{clip}" for clip in clips], positives


def _momentseeker_clips(row: Row, frames: str) -> tuple[list[str], list[int]]:
    clips = []
    for column in ("positive_frames", "negative_frames"):
        entries = row.value(column)
        if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("output_path") for e in entries):
            row.fail(column, f"expected a list of {{'output_path': ...}}, got {entries!r}")
        clips.append([f"{frames}/{_moment_clip(entry['output_path'])}" for entry in entries])
    positives, negatives = clips
    if not positives:
        row.fail("positive_frames", "no positive clip")
    return positives + negatives, list(range(len(positives)))


def _convert_row(spec: VideoTableSpec, row: Row, frames: str, root: Path | None, pool: list[str]) -> dict:
    task_type = spec.task_type
    out = {"qry_text": spec.text(row) if spec.text else "", "qry_video": "", "tgt_text": [], "tgt_video": []}
    if task_type == "video_ret":
        out |= {"tgt_video": [f"{frames}/{spec.clip(row)}"], "gold_index": [0]}
    elif spec.name == "MomentSeeker":
        out["tgt_video"], out["gold_index"] = _momentseeker_clips(row, frames)
    elif task_type == "video_mret":
        out["qry_video"], out["tgt_video"], out["gold_index"] = _moment_clips(spec, row, frames, root)
    else:  # classification and QA: the query is the clip
        out["qry_video"] = f"{frames}/{spec.clip(row)}"
        if spec.label:
            out |= {"tgt_text": pool, "gold_index": [pool.index(row.text(spec.label))]}
        else:
            options = spec.options(row)
            out |= {"tgt_text": options, "gold_index": spec.gold(row, options)}
    return out


def _kept(spec: VideoTableSpec, row: Row) -> bool:
    """MomentSeeker: v2.0.1 evaluates the text queries only (rows with an empty `input_frames`)."""
    return spec.name != "MomentSeeker" or not row.record.get("input_frames")


def _label_pool(spec: VideoTableSpec, rows: list[Row], labels: list[str] | None) -> list[str]:
    """The rows' labels in row order, then the rest of `labels` (the order of the reference's de-duplicated pool)."""
    pool = list(dict.fromkeys([row.text(spec.label) for row in rows] + list(labels or [])))
    if len(pool) < spec.label_count:
        logger.warning(
            "%s: the label pool has %d labels, the reference ranks %d (its whole label list); pass the label list "
            "(`labels=` / `--labels FILE`) to rank the same pool",
            spec.name,
            len(pool),
            spec.label_count,
        )
    return pool


def convert_video_table(
    dataset_name: str,
    rows_or_table: datasets.Dataset | Iterable[dict],
    root: str | os.PathLike | None = None,
    labels: list[str] | None = None,
    frames: str | None = None,
) -> datasets.Dataset:
    """A published video dataset's raw table (its own columns, as the Hub holds it) in the video eval layout.

    Args:
        dataset_name: one of the 18 (our names; `Kinetics-700` is read as `K700`).
        rows_or_table: the raw rows, a `datasets.Dataset` or any iterable of dicts.
        root: the MMEB-V2 root (the later `--image-dir`); needed by QVHighlight and Charades-STA, whose candidate
            clips are the frame folders under it.
        labels: K700, HMDB51, UCF101, Breakfast: the dataset's whole label list, ranked with the rows' labels.
        frames: the set's frame folder relative to the root (default: the reference's, e.g.
            `video-tasks/frames/video_ret/MSR-VTT`).

    Returns:
        One row per query (skipped: MomentSeeker's image / video queries; past SmthSmthV2's first 1000 rows), with
        `qry_text`, `qry_video`, `tgt_text`, `tgt_video`, `gold_index` (a list), clip paths relative to the root.

    Raises:
        EvalDataError: a row the dataset's rules cannot read, naming dataset, row and column.
        ValueError: an unknown dataset, `labels` for a dataset without a label pool, a moment set without `root`.
    """
    spec = spec_for(dataset_name)
    if labels is not None and not spec.label:
        raise ValueError(f"{spec.name} has no label pool; --labels is for K700, HMDB51, UCF101 and Breakfast")
    frames = (frames or spec.frames).rstrip("/")
    root = Path(root) if root is not None else None
    rows = [Row(spec.name, index, dict(record)) for index, record in enumerate(rows_or_table)]
    rows = [row for row in rows if _kept(spec, row)][: spec.first_rows]
    pool = _label_pool(spec, rows, labels) if spec.label else []
    converted = [_convert_row(spec, row, frames, root, pool) for row in rows]
    import datasets

    return datasets.Dataset.from_list(converted, features=table_features())


# ---- `vlm2vec data video-eval` -----------------------------------------------------------------------------------


def read_raw_table(path: str | os.PathLike) -> datasets.Dataset:
    """A raw table file (`.parquet`, `.jsonl`, or a `.json` list of rows) as a `datasets.Dataset`."""
    path = Path(path)
    builder = TABLE_BUILDERS.get(path.suffix)
    if builder is None:
        raise ValueError(f"{path}: expected a {' / '.join(TABLE_BUILDERS)} table")
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist")
    import datasets

    return datasets.load_dataset(builder, data_files=str(path), split="train")


def _read_labels(path: str | os.PathLike) -> list[str]:
    """A label list file: one label per line (blank lines ignored)."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def add_video_eval_parser(data_commands) -> None:
    """`vlm2vec data video-eval` (added to the `data` sub-commands)."""
    parser = data_commands.add_parser(
        "video-eval", help="convert a published MMEB-V2 video eval table (VLM2Vec/<dataset>) to the video eval layout"
    )
    parser.add_argument("--dataset", required=True, help=f"one of {', '.join(sorted(SPECS))}")
    parser.add_argument("--table", required=True, help="the raw table as downloaded (.parquet, .jsonl, .json)")
    parser.add_argument("--out", required=True, help="eval data folder; writes OUT/<dataset>/test.parquet")
    parser.add_argument(
        "--image-dir", help="MMEB-V2 root holding video-tasks/frames (QVHighlight, Charades-STA: lists their clips)"
    )
    parser.add_argument("--labels", help="K700, HMDB51, UCF101, Breakfast: the whole label list, one per line")
    parser.add_argument("--frames", help="the set's frame folder under the root (default: the reference's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT/<dataset>/test.parquet")


def run_video_eval(args: argparse.Namespace) -> Path:
    """Convert `--table` and write `OUT/<dataset>/test.parquet`; returns its path."""
    spec = spec_for(args.dataset)
    target = Path(args.out) / spec.name / "test.parquet"
    if target.exists() and not args.overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    raw = read_raw_table(args.table)
    labels = _read_labels(args.labels) if args.labels else None
    table = convert_video_table(spec.name, raw, root=args.image_dir, labels=labels, frames=args.frames)
    target.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(str(target))
    skipped = len(raw) - len(table)
    note = f" ({skipped} raw rows skipped as the reference skips them)" if skipped else ""
    print(f"Wrote {len(table)} {spec.name} queries to {target}{note}")
    print(
        f"  eval: vlm2vec eval --model MODEL --data {args.out} --image-dir {args.image_dir or 'MMEB_V2_ROOT'} "
        f"--protocol v2 "
        f"--subsets {spec.name}"
    )
    return target
