"""MMEB-V2 video tasks (REFERENCE.md §4.2) read into [`EvalDataset`]s whose items carry a clip.

Layout of one dataset (`<root>/<dataset>/test.parquet` or `.jsonl`, found like the other layouts): one row per query,

| column | type | what |
| --- | --- | --- |
| `qry_text` | str | caption (retrieval), question (QA) or scene (moment retrieval); unused by classification |
| `qry_video` | str | the query clip, relative to the image root; `""` for a text query (retrieval) |
| `tgt_text` | list[str] | classification labels, or the QA options as the dataset lists them (Video-MME `"A. a dog"`) |
| `tgt_video` | list[str] | candidate clips (retrieval: the row's own video; moment retrieval: its clips); else `[]` |
| `gold_index` | int or list[int] | the relevant candidate(s) (default 0) |
| `qry_image` | str, optional | MomentSeeker's text + image queries: the image, relative to the image root |

A clip is a folder of pre-extracted frames or a video file; the model samples its frames. The published frames
(`TIGER-Lab/MMEB-V2`, the reference's `experiments/public/eval/video.yaml`) lie under
`video-tasks/frames/{video_cls,video_ret,video_mret,video_qa}/<set>/` (sets `K700`, `SSv2`, `Charades_STA`, otherwise
the dataset name), one folder per video of up to 64 frames (`0000.jpeg`, ...); with `--image-dir` at the MMEB-V2 root
the rows name `video-tasks/frames/video_ret/MSR-VTT/<video_id>`. Every clip is checked up front: a missing folder, a
folder without frame images or a missing file is an [`EvalDataError`] naming dataset and row.

Prompts follow [`prompts_video`] per dataset. Datasets outside the 18 published ones name their task type and whose
prompts they use in `tasks.json`: `{"task_type": "video_ret", "prompts_of": "MSR-VTT"}` (plus `"global": bool` to
override the ranking).

Global ranking (video retrieval; K700, HMDB51, UCF101, Breakfast) goes over the de-duplicated pool of every row's
candidates, as the reference's `generate_cand_dataset` builds it; local ranking over each row's own list.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from vlm2vec_hf.evaluation import prompts_system, prompts_video
from vlm2vec_hf.evaluation.data import EvalDataError, EvalDataset, Item, _ImageRoot
from vlm2vec_hf.modeling_vlm2vec.media_loading import FRAME_FILE_EXTENSIONS, list_frame_files

VIDEO_COLUMNS = ("qry_video", "tgt_video")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def is_video_table(table: datasets.Dataset) -> bool:
    """Whether a table is in the video layout (it has a `qry_video` or `tgt_video` column)."""
    return any(column in table.column_names for column in VIDEO_COLUMNS)


class ClipRoot:
    """Resolves clip paths under the image root, checking each distinct clip once (candidate pools and QA rows repeat
    the same clips)."""

    def __init__(self, root: Path):
        self.root = root
        self._found: set[str] = set()

    def resolve(self, name: str, row: int, clip: str | None) -> str:
        """The absolute path of `clip` ("" for none); an `EvalDataError` naming dataset and row if it is unusable."""
        if not clip:
            return ""
        path = str(self.root / clip)
        if path in self._found:
            return path
        if os.path.isdir(path):
            if not list_frame_files(path):
                raise EvalDataError(
                    f"{name} row {row}: clip folder {path!r} holds no frame images {FRAME_FILE_EXTENSIONS}"
                )
        elif not os.path.isfile(path):
            raise EvalDataError(f"{name} row {row}: clip {path!r} does not exist (a frame folder or a video file)")
        elif not path.lower().endswith(VIDEO_EXTENSIONS):
            raise EvalDataError(f"{name} row {row}: clip {path!r} is neither a frame folder nor a video file")
        self._found.add(path)
        return path


def _task(name: str, meta: dict) -> tuple[str, str, bool]:
    """(task type, dataset whose prompts apply, global ranking) of a video dataset."""
    prompts_of = meta.get("prompts_of", name)
    task_type = meta.get("task_type") or prompts_video.VIDEO_TASK_TYPE.get(prompts_of)
    if task_type not in prompts_video.VIDEO_TASK_TYPES or prompts_video.VIDEO_TASK_TYPE.get(prompts_of) != task_type:
        raise EvalDataError(
            f"{name}: not one of the 18 MMEB-V2 video datasets; give it a 'task_type' "
            f"{prompts_video.VIDEO_TASK_TYPES} and 'prompts_of' (a published dataset of that type) in tasks.json"
        )
    ranks_globally = meta.get("global", prompts_video.ranks_globally(task_type, prompts_of))
    return task_type, prompts_of, bool(ranks_globally)


def _golds(name: str, row: int, record: dict, count: int) -> list[int]:
    gold = record.get("gold_index", 0)
    golds = [0] if gold is None else [int(g) for g in gold] if isinstance(gold, list) else [int(gold)]
    for index in golds:
        if not 0 <= index < count:
            raise EvalDataError(f"{name} row {row}: gold index {index} out of range for {count} candidates")
    return golds


def _row_candidates(
    name: str, prompts_of: str, task_type: str, row: int, record: dict, clips: ClipRoot, style: str = "inline"
) -> list[Item]:
    """The candidate items of one row: text items `(text, "")` or clip items `(prompt, "", clip)` (system style:
    `(text, "", "", "")` / `("", "", clip, "")`)."""
    videos = list(record.get("tgt_video") or [])
    texts = list(record.get("tgt_text") or [])
    if task_type in ("video_ret", "video_mret"):
        if not videos:
            raise EvalDataError(f"{name} row {row}: no candidate clip in 'tgt_video'")
        if style == "system":
            return [("", "", clips.resolve(name, row, video), "") for video in videos]
        prompt = prompts_video.candidate_prompt(prompts_of)
        return [(prompt, "", clips.resolve(name, row, video)) for video in videos]
    if not texts:
        raise EvalDataError(f"{name} row {row}: empty candidate list 'tgt_text'")
    if style == "system":
        if task_type == "video_qa":
            texts = prompts_system.video_qa_candidates(prompts_of, texts)
        return [(text, "", "", "") for text in texts]
    if task_type == "video_qa":
        texts = prompts_video.qa_candidates(prompts_of, texts)
    return [(text, "") for text in texts]


def _query(
    name: str,
    prompts_of: str,
    task_type: str,
    row: int,
    record: dict,
    images: _ImageRoot,
    clips: ClipRoot,
    style: str = "inline",
) -> Item:
    """The query item of one row: `(prompt, "")`, `(prompt, image)` (MomentSeeker) or `(prompt, "", clip)`; system
    style: `(text, image, clip, instruction)`."""
    text = record.get("qry_text") or ""
    query_clip = clips.resolve(name, row, record.get("qry_video"))
    query_image = images.resolve(name, row, record.get("qry_image")) if record.get("qry_image") else ""
    if query_image:
        if query_clip or prompts_of != "MomentSeeker":
            raise EvalDataError(
                f"{name} row {row}: 'qry_image' is for MomentSeeker's text + image queries without 'qry_video'"
            )
        if style == "system":
            query_text, instruction = prompts_system.video_query(task_type, prompts_of, text, [], "image")
            return query_text, query_image, "", instruction
        return prompts_video.image_query_prompt(prompts_of, text), query_image
    text_queries = task_type == "video_ret" or prompts_of == "MomentSeeker"
    if not query_clip and not text_queries:
        raise EvalDataError(f"{name} row {row}: a {task_type} query needs a clip in 'qry_video'")
    options = list(record.get("tgt_text") or [])
    if style == "system":
        media = "video" if query_clip else None
        query_text, instruction = prompts_system.video_query(task_type, prompts_of, text, options, media)
        return query_text, "", query_clip, instruction
    prompt = prompts_video.query_prompt(task_type, prompts_of, text, options, bool(query_clip))
    return (prompt, "", query_clip) if query_clip else (prompt, "")


def load_video_table(
    name: str,
    table: datasets.Dataset,
    images: _ImageRoot,
    meta: dict | None = None,
    style: str = "inline",
) -> EvalDataset:
    """A video dataset from its table (layout in the module docstring); every clip and image checked up front.
    `images` resolves image paths under the image root; clips are resolved under the same root. `style`: the items'
    prompt style (`data.PROMPT_STYLES`)."""
    task_type, prompts_of, ranks_globally = _task(name, meta or {})
    clips = ClipRoot(images.root)
    queries, candidates, golds = [], [], []
    for row, record in enumerate(table):
        queries.append(_query(name, prompts_of, task_type, row, record, images, clips, style))
        row_candidates = _row_candidates(name, prompts_of, task_type, row, record, clips, style)
        candidates.append(row_candidates)
        golds.append(_golds(name, row, record, len(row_candidates)))
    if not ranks_globally:
        relevance = [dict.fromkeys(row_golds, 1.0) for row_golds in golds]
        return EvalDataset(name, queries, candidates, relevance, layout="video", task_type=task_type)
    pool: dict[Item, int] = {}  # the reference's `cand_name` de-duplication, first-seen order
    for row_candidates in candidates:
        for item in row_candidates:
            pool.setdefault(item, len(pool))
    relevance = [
        {pool[row_candidates[index]]: 1.0 for index in row_golds}
        for row_candidates, row_golds in zip(candidates, golds)
    ]
    return EvalDataset(
        name, queries, [[] for _ in queries], relevance, corpus=list(pool), layout="video", task_type=task_type
    )
