"""MMEB-train data as sentence-transformers training columns, with images left as paths until a batch needs them.

Input layout (REFERENCE.md section 3.4): one table per subset with `qry`, `qry_image_path`, `pos_text`,
`pos_image_path` and optionally `neg_text`, `neg_image_path`; prompts carry MMEB's `<|image_1|>` tag; image paths
are relative to an image root. Read from a local folder (`<root>/<subset>/<split>.parquet|.jsonl`,
`<root>/<subset>/<split>/*.parquet|*.jsonl`, or a `datasets.save_to_disk` folder `<root>/<subset>/<split>/`) or,
when online, from a Hub dataset (`TIGER-Lab/MMEB-train`, one config per subset).

Output columns, each value `{"text": str | None, "image": absolute path | None}`: `query`, `positive` and, with
hard negatives, `negative`. The texts keep MMEB's `<|image_1|>` tag; the model's processor swaps it for its
backbone's image token.

MMEB-V2's video subsets (REFERENCE.md section 3.5; the reference's `llavahound_dataset_caption.py` /
`llavahound_dataset_qa.py`) are LLaVA-Hound tables in the same folder layout: columns `id`, `video` (a frame folder
or video file, relative to a video root) and `conversations` (`[{"from": "human", "value": "<video>\\n..."},
{"from": "gpt", "value": ...}]`). One table serves several tasks, chosen by the subset name (the reference's files go
in as `<root>/video_caption_300k/original.jsonl` and `<root>/video_qa_240k/original.jsonl`, the latter being its
`video_240k_caption_15k.jsonl`):

* `<folder>` or `<folder>-caption` (reference: `video_caption_300k`), video -> caption: query = the human turn with
  `<video>` -> MMEB's video tag `<|video_1|>`, plus the clip; positive = the gpt turn (text).
* `<folder>-video` (`video_caption_300k-video`), caption -> video: query = `VRET_QUERY_PROMPT` + the gpt turn (text);
  positive = `VRET_TARGET_PROMPT` + the video tag, plus the clip.
* `<folder>-qa` (`video_qa_240k`), video QA: query = `QA_QUERY_PROMPT` + the human turn (`<video>` -> tag), plus the
  clip; positive = the gpt turn (the answer).

Video sides are `{"text": str | None, "video": absolute path | None}`; the prompts are the reference's, with the video
tag where it puts its video token (so they are complete prompts; the processor maps the tag to its video token). The
reference's video rows have no hard negatives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import datasets

from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_IMAGE_TAG, MMEB_VIDEO_TAG

# Frame listing as the model reads clips (moves to the media-loading module with the core refactor).
from vlm2vec_hf.modeling_vlm2vec.media_loading import FRAME_FILE_EXTENSIONS, list_frame_files
from vlm2vec_hf.package_data import read_yaml

REQUIRED_COLUMNS = ("qry", "qry_image_path", "pos_text", "pos_image_path")
NEGATIVE_COLUMNS = ("neg_text", "neg_image_path")
SPLITS = ("original", "diverse_instruction", "train")
# (output column, text column, image column)
SIDES = (("query", "qry", "qry_image_path"), ("positive", "pos_text", "pos_image_path"))
NEGATIVE_SIDE = ("negative", "neg_text", "neg_image_path")
SIDE_FEATURES = datasets.Features({"text": datasets.Value("string"), "image": datasets.Value("string")})
VIDEO_SIDE_FEATURES = datasets.Features({"text": datasets.Value("string"), "video": datasets.Value("string")})

# LLaVA-Hound video rows (the reference's `llavahound_dataset_caption.py` / `llavahound_dataset_qa.py`).
LLAVA_HOUND_COLUMNS = ("video", "conversations")
VIDEO_TASKS = ("caption", "video", "qa")  # video -> caption, caption -> video, video QA
VIDEO_TASKS_FILE = Path(__file__).with_name("video_train_tasks.yaml")


def read_video_tasks(path: Path = VIDEO_TASKS_FILE) -> dict:
    """The reference's video training prompts and subset names (`video_train_tasks.yaml`)."""
    return read_yaml(path)


_VIDEO_TASK_TABLES = read_video_tasks()
LLAVA_HOUND_VIDEO_TAG: str = _VIDEO_TASK_TABLES["llava_hound_video_tag"]
VRET_QUERY_PROMPT: str = _VIDEO_TASK_TABLES["prompts"]["vret_query"]
VRET_TARGET_PROMPT: str = _VIDEO_TASK_TABLES["prompts"]["vret_target"]
QA_QUERY_PROMPT: str = _VIDEO_TASK_TABLES["prompts"]["qa_query"]
# The reference's subset names (its train yaml keys) -> (folder, task); other names follow `<folder>[-<task>]`.
REFERENCE_VIDEO_SUBSETS: dict[str, tuple[str, str]] = {
    name: tuple(entry) for name, entry in _VIDEO_TASK_TABLES["reference_subsets"].items()
}


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


def _side(text: str | None, image: str | None, image_root: Path) -> dict:
    return {"text": text or None, "image": str(image_root / image) if image else None}


def to_training_columns(
    raw: datasets.Dataset,
    image_root: str | os.PathLike,
    hard_negatives: bool = False,
) -> datasets.Dataset:
    """MMEB-train columns -> `query` / `positive` (/ `negative`) columns of `{"text", "image"}` dicts (texts as stored,
    with MMEB's `<|image_1|>` tags, which the model's processor maps to its own image token)."""
    missing = [column for column in REQUIRED_COLUMNS if column not in raw.column_names]
    if missing:
        raise ValueError(f"MMEB-train data lacks columns {missing}; it has {raw.column_names}")
    sides = SIDES + ((NEGATIVE_SIDE,) if hard_negatives else ())
    if hard_negatives and any(column not in raw.column_names for column in NEGATIVE_COLUMNS):
        raise ValueError(f"hard negatives need the columns {NEGATIVE_COLUMNS}; this data has {raw.column_names}")
    root = Path(image_root)

    def convert(batch: dict) -> dict:
        return {name: [_side(t, i, root) for t, i in zip(batch[text], batch[image])] for name, text, image in sides}

    features = datasets.Features({name: SIDE_FEATURES for name, _, _ in sides})
    return raw.map(convert, batched=True, remove_columns=raw.column_names, features=features, desc="MMEB columns")


def video_subset(subset: str, source: str | os.PathLike) -> tuple[str, str | None]:
    """(the folder / Hub config to read, the video task) of a subset name. `<name>-<task>` is `task` on the folder
    `<name>-<task>` if there is one, else on `<name>`; the task is None for other names (the table's columns then
    decide: LLaVA-Hound rows read as video -> caption)."""
    if subset in REFERENCE_VIDEO_SUBSETS:
        return REFERENCE_VIDEO_SUBSETS[subset]
    folder, _, task = subset.rpartition("-")
    if folder and task in VIDEO_TASKS:
        return (subset if (Path(source) / subset).is_dir() else folder), task
    return subset, None


def is_llava_hound(raw: datasets.Dataset) -> bool:
    return all(column in raw.column_names for column in LLAVA_HOUND_COLUMNS)


def _turn(conversations, index: int) -> str | None:
    if isinstance(conversations, list) and len(conversations) > index and isinstance(conversations[index], dict):
        value = conversations[index].get("value")
        return value if isinstance(value, str) and value.strip() else None
    return None


def conversation_problems(subset: str, raw: datasets.Dataset) -> list[DataProblem]:
    """LLaVA-Hound rows without a video name or without a non-empty human turn and gpt turn."""
    problems = []
    for row, (video, conversations) in enumerate(zip(raw["video"], raw["conversations"])):
        if not isinstance(video, str) or not video:
            problems.append(DataProblem(subset, row, "video", f"no video name (got {video!r})"))
        for index, role in ((0, "human"), (1, "gpt")):
            if _turn(conversations, index) is None:
                problems.append(DataProblem(subset, row, "conversations", f"no {role} turn (turn {index}) text"))
    return problems


def to_video_columns(raw: datasets.Dataset, video_root: str | os.PathLike, task: str) -> datasets.Dataset:
    """LLaVA-Hound rows -> `query` / `positive` columns of `{"text", "video"}` dicts for one video `task`
    (`caption`: video -> caption, `video`: caption -> video, `qa`: video QA), with the reference's prompts; the
    `<video>` tag becomes MMEB's `<|video_1|>`, which the model's processor maps to its own video token."""
    if task not in VIDEO_TASKS:
        raise ValueError(f"video task must be one of {VIDEO_TASKS}, got {task!r}")
    root = Path(video_root)

    def convert(batch: dict) -> dict:
        queries, positives = [], []
        for video, conversations in zip(batch["video"], batch["conversations"]):
            human = _turn(conversations, 0).replace(LLAVA_HOUND_VIDEO_TAG, MMEB_VIDEO_TAG)
            answer, clip = _turn(conversations, 1), str(root / video)
            if task == "video":
                queries.append({"text": VRET_QUERY_PROMPT + answer, "video": None})
                positives.append({"text": VRET_TARGET_PROMPT + MMEB_VIDEO_TAG, "video": clip})
            else:
                queries.append({"text": (QA_QUERY_PROMPT if task == "qa" else "") + human, "video": clip})
                positives.append({"text": answer, "video": None})
        return {"query": queries, "positive": positives}

    features = datasets.Features({"query": VIDEO_SIDE_FEATURES, "positive": VIDEO_SIDE_FEATURES})
    return raw.map(convert, batched=True, remove_columns=raw.column_names, features=features, desc=f"video {task}")


def video_problem(path: str) -> str | None:
    """Why a clip cannot be used, or None: a frame folder must hold frame images, a video file a decodable frame."""
    clip = Path(path)
    if clip.is_dir():
        if not list_frame_files(clip):
            return f"frame folder {path!r} holds no frames ({', '.join(FRAME_FILE_EXTENSIONS)} files)"
        return None
    if not clip.is_file():
        return f"video {path!r} does not exist"
    try:
        import av

        with av.open(path) as container:
            if not container.streams.video:
                return f"video file {path!r} has no video stream"
            if next(container.decode(video=0), None) is None:
                return f"video file {path!r} holds no frames"
    except Exception as error:  # PyAV raises its own error types per container / codec problem
        return f"video file {path!r} cannot be decoded: {error}"
    return None


def find_problems(
    subset: str,
    data: datasets.Dataset,
    clip_problems: dict[str, str | None] | None = None,
) -> list[DataProblem]:
    """Rows whose image file or clip is missing (or a clip holds no frames), or whose prompt's image / video tags do
    not match its images / videos. `clip_problems` caches clip checks across subsets sharing clips."""
    problems = []
    clip_problems = {} if clip_problems is None else clip_problems
    for column in data.column_names:
        for row, side in enumerate(data[column]):
            text, image, video = side["text"] or "", side.get("image"), side.get("video")
            if image and not os.path.isfile(image):
                problems.append(DataProblem(subset, row, column, f"image file {image!r} does not exist"))
                continue
            if video:
                if video not in clip_problems:
                    clip_problems[video] = video_problem(video)
                if clip_problems[video]:
                    problems.append(DataProblem(subset, row, column, clip_problems[video]))
                    continue
            tags = text.count(MMEB_IMAGE_TAG)
            if tags > (1 if image else 0):
                problems.append(DataProblem(subset, row, column, f"{tags} image tags but {int(bool(image))} images"))
            video_tags = text.count(MMEB_VIDEO_TAG)
            if video_tags > (1 if video else 0):
                problems.append(
                    DataProblem(subset, row, column, f"{video_tags} video tags but {int(bool(video))} videos")
                )
    return problems


def load_mmeb_train(
    source: str | os.PathLike,
    image_root: str | os.PathLike,
    subsets: list[str] | None = None,
    split: str = "original",
    max_per_subset: int | None = None,
    hard_negatives: bool = False,
    check: bool = True,
    video_root: str | os.PathLike | None = None,
    video_input: bool = True,
) -> dict[str, datasets.Dataset]:
    """Load MMEB-train subsets (and MMEB-V2's LLaVA-Hound video subsets) as training datasets, one per subset.

    Args:
        source: local folder or Hub dataset id.
        image_root: folder the stored image paths are relative to.
        subsets: which subsets; default every subset found locally (required for a Hub id). Video subsets are
            named `<folder>[-caption | -video | -qa]` (see the module docstring).
        max_per_subset: keep the first N rows of each subset, as the reference's `num_sample_per_subset`.
        hard_negatives: add a `negative` column from `neg_text` / `neg_image_path` (image subsets only).
        check: verify every image path, clip and tag count up front; raises `MMEBDataError` naming subset and row.
        video_root: folder the video rows' `video` names are relative to (the reference's `video_frame_basedir`).
        video_input: whether the model takes video input (False: a video subset is an error).

    Texts keep MMEB's `<|image_1|>` / `<|video_1|>` tags; the model's processor maps them to its own tokens.
    """
    if subsets is None:
        if not Path(source).is_dir():
            raise ValueError("name the subsets to load from a Hub dataset")
        subsets = list_local_subsets(source, split)
        if not subsets:
            raise FileNotFoundError(f"no MMEB-train subsets with split {split!r} under {source}")
    loaded, problems, clip_problems = {}, [], {}
    for subset in subsets:
        folder, task = video_subset(subset, source)
        raw = load_raw_subset(source, folder, split)
        if max_per_subset is not None:
            raw = raw.select(range(min(max_per_subset, len(raw))))
        hound = is_llava_hound(raw)
        if task is None and hound:
            task = "caption"
        if task is None:
            if not image_root:
                raise ValueError(f"image subset {subset!r} needs the image root its paths are relative to (image_dir)")
            data = to_training_columns(raw, image_root, hard_negatives)
            if check:
                problems += find_problems(subset, data)
            loaded[subset] = data
            continue
        if not hound:
            raise ValueError(
                f"video subset {subset!r}: {folder!r} needs the LLaVA-Hound columns {LLAVA_HOUND_COLUMNS}; "
                f"it has {raw.column_names}"
            )
        if not video_input:
            raise ValueError(f"video subset {subset!r}: this model takes no video input")
        if not video_root:
            raise ValueError(f"video subset {subset!r} needs the video root its clips are relative to (video_dir)")
        if hard_negatives:
            raise ValueError(f"hard negatives: video subset {subset!r} has none (the reference's video rows have none)")
        row_problems = conversation_problems(subset, raw)
        if row_problems:
            problems += row_problems
            continue
        data = to_video_columns(raw, video_root, task)
        if check:
            problems += find_problems(subset, data, clip_problems)
        loaded[subset] = data
    if problems:
        raise MMEBDataError(problems)
    return loaded


def combine(subsets: dict[str, datasets.Dataset], seed: int = 0) -> datasets.Dataset:
    """All subsets in one shuffled dataset (every batch mixes subsets: the reference's IB0). Image and video
    subsets together get `{"text", "image", "video"}` sides (`datasets` widens the structs, missing keys None)."""
    return datasets.concatenate_datasets(list(subsets.values())).shuffle(seed=seed)
