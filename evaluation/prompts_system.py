"""MMEB-V2 inputs for models whose prompt holds the instruction in its own (system) turn, as those models' own
evaluation scripts build them (`tables/mmeb_v2_system_instructions.yaml` names the source).

VLM2Vec's rules ([`prompts_v2`], [`prompts_video`]) join instruction, text and MMEB's media tag into one string. Here
each query is `(text, instruction)` instead, with the media passed beside it (no tag in the text), and each candidate
is its bare text or media with no instruction, so the model's default instruction applies. The text rules are
VLM2Vec's where the scripts agree; where they differ (image instructions cleaned of `<|image_1|>`, EgoSchema's
question-options separator, Video-MME's unlettered options), the differences are below.
"""

from __future__ import annotations

from pathlib import Path

from vlm2vec_hf.evaluation import prompts_video
from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_IMAGE_TAG
from vlm2vec_hf.package_data import read_yaml

SYSTEM_INSTRUCTIONS_FILE = Path(__file__).with_name("tables") / "mmeb_v2_system_instructions.yaml"
SYSTEM_INSTRUCTIONS: dict = read_yaml(SYSTEM_INSTRUCTIONS_FILE)
VIDEO_INSTRUCTIONS: dict = SYSTEM_INSTRUCTIONS["video"]
VISDOC_QUERY_INSTRUCTION: str = SYSTEM_INSTRUCTIONS["visdoc_query"]


def image_instruction(qry_inst: str | None) -> str:
    """An image task's query instruction: the row's `qry_inst` without `<|image_1|>`, stripped."""
    return (qry_inst or "").replace(MMEB_IMAGE_TAG, "").strip()


def image_candidate_text(task_type: str, text: str | None) -> str:
    """An image task's candidate text: as stored; text-to-image captions stripped."""
    text = text or ""
    return text.strip() if task_type == "image_t2i" else text


def video_query(task_type: str, dataset: str, text: str, options: list[str], media: str | None) -> tuple[str, str]:
    """`(text, instruction)` of a video task's query; `media` is `"video"`, `"image"` (MomentSeeker's text + image
    queries) or None (a text query)."""
    if task_type == "video_ret":
        return text, VIDEO_INSTRUCTIONS["retrieval"][dataset]
    if task_type == "video_cls":
        return "", VIDEO_INSTRUCTIONS["classification"][dataset]
    if task_type == "video_qa":
        return prompts_video.qa_question(dataset, text, options, egoschema_separator=" "), VIDEO_INSTRUCTIONS["qa"]
    if task_type == "video_mret":
        if dataset == "MomentSeeker":
            return text, VIDEO_INSTRUCTIONS["momentseeker"][media or "text"]
        return text, VIDEO_INSTRUCTIONS["moment"]
    raise ValueError(f"unknown video task type {task_type!r}; expected one of {prompts_video.VIDEO_TASK_TYPES}")


def video_qa_candidates(dataset: str, options: list[str]) -> list[str]:
    """A video-QA row's candidate texts."""
    return prompts_video.qa_candidates(dataset, options, keep_unlettered=True)
