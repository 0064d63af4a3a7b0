"""MMEB-V2 video-task prompts (REFERENCE.md §2.7, §4.2): how the reference's video parsers
(`src/data/eval_dataset/{msrvtt, msvd, didemo, vatex, youcook2, video_classification_utils, ssv2, nextqa, mvbench,
videomme, egoschema, activitynetqa, moment_retrieval_datasets}`) build each query and candidate string.

The returned strings are complete prompts with MMEB's video tag `<|video_1|>` (`VID` below; MomentSeeker's image
queries: the image tag `<|image_1|>`) in place; the processor swaps it for its backbone's video token (the token the
reference writes for that backbone). Nothing else is added when they are embedded. Spacing is literal: the
QA prompt ends with `"Question: "` and is joined to the question with one more space (two spaces in the embedded
text), and the Breakfast instruction ends with a space.

Task types (the reference's parser families):

* `video_ret` (DiDeMo, MSR-VTT, MSVD, VATEX, YouCook2): text query `instruction + " " + caption`; candidate
  `VID + " " + "Understand the content of the provided video."` with the clip; ranked over the whole clip pool.
* `video_cls` (K700, SmthSmthV2, HMDB51, UCF101, Breakfast): query `VID + " " + DATASET_INSTRUCTION`; candidates the
  raw label strings; SmthSmthV2 ranks each query's own list, the others the whole label pool.
* `video_qa` (MVBench, Video-MME, NExTQA, EgoSchema, ActivityNetQA): query `VID + " " + TASK_PROMPT + " " + question`
  with the dataset's way of listing the options; candidates the answer strings as the dataset writes them.
* `video_mret` (QVHighlight, Charades-STA, MomentSeeker): query `VID + " " + instruction + " " + query` with the
  whole video; candidates the clips, each `VID + " Understand the content of the provided video."`. MomentSeeker's
  queries are text, text + image or text + video segment, each with its own instruction, and its clips say "video
  clip".
"""

from __future__ import annotations

from vlm2vec_hf.evaluation.task_tables import VIDEO_TABLES
from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_IMAGE_TAG, MMEB_VIDEO_TAG

VIDEO_TASK_TYPES = ("video_ret", "video_cls", "video_qa", "video_mret")
VIDEO_CANDIDATE_INSTRUCTION: str = VIDEO_TABLES["candidate_instruction"]
MOMENT_QUERY_INSTRUCTION: str = VIDEO_TABLES["moment_query_instruction"]
# MomentSeeker: the query is text, text + image, or text + video segment; its clips say "video clip".
MOMENTSEEKER_INSTRUCTIONS: dict[str, str] = VIDEO_TABLES["momentseeker_instructions"]
MOMENTSEEKER_CANDIDATE_INSTRUCTION: str = VIDEO_TABLES["momentseeker_candidate_instruction"]
QA_TASK_PROMPT: str = VIDEO_TABLES["qa_task_prompt"]
RETRIEVAL_INSTRUCTIONS: dict[str, str] = VIDEO_TABLES["retrieval_instructions"]  # text-to-video, per dataset
CLASSIFICATION_INSTRUCTIONS: dict[str, str] = VIDEO_TABLES["classification_instructions"]
QA_DATASETS = tuple(VIDEO_TABLES["qa_datasets"])
MOMENT_DATASETS = tuple(VIDEO_TABLES["moment_datasets"])
# Classification sets ranked over their whole label pool (`eval_type: global`); SmthSmthV2 is local.
GLOBAL_CLASSIFICATION = frozenset(VIDEO_TABLES["global_classification"])
ACTIVITYNET_OPTIONS = tuple(VIDEO_TABLES["activitynet_options"])

VIDEO_TASK_TYPE = {
    **dict.fromkeys(RETRIEVAL_INSTRUCTIONS, "video_ret"),
    **dict.fromkeys(CLASSIFICATION_INSTRUCTIONS, "video_cls"),
    **dict.fromkeys(QA_DATASETS, "video_qa"),
    **dict.fromkeys(MOMENT_DATASETS, "video_mret"),
}


def ranks_globally(task_type: str, dataset: str) -> bool:
    """Whether the reference ranks `dataset` against its whole de-duplicated candidate pool (REFERENCE.md §4.2)."""
    return task_type == "video_ret" or (task_type == "video_cls" and dataset in GLOBAL_CLASSIFICATION)


def video_prompt_rule(instruction: str, text: str | None = None, tag: str | None = MMEB_VIDEO_TAG) -> str:
    """`process_input_text` for video: `instruction [+ " " + text]`, then `tag + " "` first when there is a visual
    input (`tag`: MMEB's video or image tag, None for none; an empty instruction gives `"<|video_1|> "`, trailing
    space included)."""
    prompt = f"{instruction} {text}" if text else instruction
    return f"{tag} {prompt}" if tag else prompt


def qa_options(options: list[str]) -> list[str]:
    """`qa_template`'s lettered options: `["(A) first", "(B) second", ...]`."""
    return [f"({chr(ord('A') + index)}) {option}" for index, option in enumerate(options)]


def _strip_letter(option: str) -> str:
    """Video-MME / EgoSchema candidate text: `"A. a dog"` -> `"a dog"`, as `o[o.find('. '):].strip('. ')`
    (kept literally: without `". "` it keeps the last character only, as the reference does)."""
    return option[option.find(". ") :].strip(". ")


def qa_question(dataset: str, question: str, options: list[str], egoschema_separator: str = "") -> str:
    """A video-QA row's question with its options.

    NExTQA / MVBench: `question + "\\nOptions:\\n(A) ...\\n(B) ..."` (right-stripped, `qa_template`); Video-MME:
    `question + "\\n" + "\\n".join(options)`; EgoSchema: `question + egoschema_separator + " ".join(options)` (VLM2Vec
    puts no separator there); ActivityNetQA: `question + "? (A) yes; (B) no."`.
    """
    if dataset in ("NExTQA", "MVBench"):
        question = (question + "\nOptions:\n" + "\n".join(qa_options(options))).rstrip()
    elif dataset == "Video-MME":
        question = question + "\n" + "\n".join(options)
    elif dataset == "EgoSchema":
        question = question + egoschema_separator + " ".join(options)
    elif dataset == "ActivityNetQA":
        question = question + "? (A) yes; (B) no."
    else:
        raise ValueError(f"{dataset!r} is not a video-QA dataset; expected one of {QA_DATASETS}")
    return question


def qa_query(dataset: str, question: str, options: list[str]) -> str:
    """The query of a video-QA row: `VID + " " + QA_TASK_PROMPT + " " + question-with-options` ([`qa_question`])."""
    return f"{MMEB_VIDEO_TAG} {QA_TASK_PROMPT} {qa_question(dataset, question, options)}"


def qa_candidates(dataset: str, options: list[str], keep_unlettered: bool = False) -> list[str]:
    """The candidate strings of a video-QA row, in option order: MVBench `qa_template`'s lettered options; NExTQA
    the raw options (its parser builds the lettered ones for the query and drops them for the candidates).
    `keep_unlettered`: a Video-MME option without `". "` stays whole (VLM2Vec keeps its last character only)."""
    if dataset == "MVBench":
        return qa_options(options)
    if dataset == "NExTQA":
        return list(options)
    if dataset == "Video-MME" and keep_unlettered:
        return [_strip_letter(option) if ". " in option else option for option in options]
    if dataset in ("Video-MME", "EgoSchema"):
        return [_strip_letter(option) for option in options]
    if dataset == "ActivityNetQA":
        return list(ACTIVITYNET_OPTIONS)
    raise ValueError(f"{dataset!r} is not a video-QA dataset; expected one of {QA_DATASETS}")


def query_prompt(task_type: str, dataset: str, text: str, options: list[str], has_video: bool) -> str:
    """The query string of one row (`text` = caption, question or moment description; `options` = the QA options)."""
    token = MMEB_VIDEO_TAG if has_video else None
    if task_type == "video_ret":
        return video_prompt_rule(RETRIEVAL_INSTRUCTIONS[dataset], text, token)
    if task_type == "video_cls":
        return video_prompt_rule(CLASSIFICATION_INSTRUCTIONS[dataset], None, token)
    if task_type == "video_qa":
        return qa_query(dataset, text, options)
    if task_type == "video_mret":
        if dataset == "MomentSeeker":
            return video_prompt_rule(MOMENTSEEKER_INSTRUCTIONS["video" if has_video else "text"], text, token)
        return video_prompt_rule(MOMENT_QUERY_INSTRUCTION, text, token)
    raise ValueError(f"unknown video task type {task_type!r}; expected one of {VIDEO_TASK_TYPES}")


def image_query_prompt(dataset: str, text: str) -> str:
    """A moment-retrieval query made of text and an image (MomentSeeker only): `IMG + " " + instruction + " " +
    text`."""
    if dataset != "MomentSeeker":
        raise ValueError(f"{dataset!r} has no image queries; only MomentSeeker does")
    return video_prompt_rule(MOMENTSEEKER_INSTRUCTIONS["image"], text, MMEB_IMAGE_TAG)


def candidate_prompt(dataset: str | None = None) -> str:
    """A video candidate (retrieval clip, moment clip): `"<|video_1|> Understand the content of the provided
    video."` (MomentSeeker: `"... provided video clip."`)."""
    instruction = MOMENTSEEKER_CANDIDATE_INSTRUCTION if dataset == "MomentSeeker" else VIDEO_CANDIDATE_INSTRUCTION
    return video_prompt_rule(instruction)
