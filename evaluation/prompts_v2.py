"""MMEB-V2 evaluation prompts (REFERENCE.md §2.2 and §2.7): how the reference rebuilds each query and candidate
string from `MMEB_Test_Instruct`'s `qry_inst` / `qry_text` / `tgt_inst` / `tgt_text` columns.

The returned strings are complete prompts with MMEB's image tag `<|image_1|>` in place (the processor swaps it for its
backbone's image token); nothing else is added when they are embedded. `"\\n"` and single spaces are part of the
embedded sequence (the pooled token is often the final newline), so every rule below is literal. The video tasks'
rules are in [`prompts_video`].
"""

from __future__ import annotations

from vlm2vec_hf.evaluation.published import V1_META_TASKS
from vlm2vec_hf.evaluation.task_tables import IMAGE_TABLES, VISDOC_TABLES
from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_IMAGE_TAG

IMAGE_TASK_TYPES = ("image_cls", "image_i2t", "image_qa", "image_t2i", "image_i2i_vg")
VISDOC_QUERY_INSTRUCTION: str = VISDOC_TABLES["query_instruction"]
VISDOC_CANDIDATE_TEXT: str = VISDOC_TABLES["candidate_text"]

T2I_DATASETS = frozenset(IMAGE_TABLES["t2i_datasets"])
I2T_DATASETS = frozenset(IMAGE_TABLES["i2t_datasets"])


def _retrieval_parser(dataset: str) -> str:
    return "image_t2i" if dataset in T2I_DATASETS else "image_i2t" if dataset in I2T_DATASETS else "image_i2i_vg"


# Which parser of the reference (`src/data/eval_dataset/image_*.py`) handles each of the 36 image datasets: the
# I->I / I+T->I retrieval sets (CIRR, NIGHTS, FashionIQ, OVEN) share `image_i2i_vg` with visual grounding.
IMAGE_TASK_TYPE = {
    **dict.fromkeys(V1_META_TASKS["Classification"], "image_cls"),
    **dict.fromkeys(V1_META_TASKS["VQA"], "image_qa"),
    **{dataset: _retrieval_parser(dataset) for dataset in V1_META_TASKS["Retrieval"]},
    **dict.fromkeys(V1_META_TASKS["Visual Grounding"], "image_i2i_vg"),
}
# Text-to-image datasets whose image candidates carry their caption after the target instruction.
T2I_CAPTIONED = frozenset(IMAGE_TABLES["t2i_captioned"])


def prompt_rule(instruction: str, text: str | None, has_image: bool) -> str:
    """REFERENCE.md §2.2: `instruction`, then `" " + text` if there is text, then the image tag and a space first."""
    prompt = instruction
    if text:
        prompt = f"{prompt} {text}"
    if has_image:
        prompt = f"{MMEB_IMAGE_TAG} {prompt}"
    return prompt


def _collapse(prompt: str) -> str:
    return prompt.replace(" \n", "\n")


def query_prompt(task_type: str, dataset: str, instruction: str, text: str | None) -> str:
    """The V2 query string for one row of an image task (`instruction` = `qry_inst`, `text` = `qry_text`)."""
    if task_type in ("image_cls", "image_i2t"):
        return _collapse(prompt_rule(instruction.replace(MMEB_IMAGE_TAG, ""), text, True)) + "\n"
    if task_type in ("image_qa", "image_i2i_vg"):
        instruction = "\n" + instruction.replace(MMEB_IMAGE_TAG, "").strip()
        return _collapse(prompt_rule(instruction, text, True)) + "\n"
    if task_type == "image_t2i":
        prompt = f"{instruction} {text or ''}\n"
        return prompt + "\n" if dataset == "VisDial" else prompt
    raise ValueError(f"unknown image task type {task_type!r}; expected one of {IMAGE_TASK_TYPES}")


def candidate_prompt(task_type: str, dataset: str, instruction: str | None, text: str | None, has_image: bool) -> str:
    """The V2 string for one candidate (`instruction` = `tgt_inst`, `text` = its `tgt_text` entry).

    Text candidates (classification labels, captions, answers) are the raw strings. Image candidates of
    text-to-image tasks are `"<|image_1|>" + tgt_inst` (+ `" " + caption` for WebQA / EDIS), `" \\n"` collapsed, plus
    `"\\n"`; those of `image_i2i_vg` follow the prompt rule, with `"\\n"` only when they carry a caption.
    """
    instruction = (instruction or "").replace(MMEB_IMAGE_TAG, "")
    if not has_image:
        return text or ""
    if task_type == "image_t2i":
        prompt = MMEB_IMAGE_TAG + instruction
        if dataset in T2I_CAPTIONED and text:
            prompt = f"{prompt} {text}"
        return _collapse(prompt) + "\n"
    if task_type == "image_i2i_vg":
        prompt = _collapse(prompt_rule(instruction.strip(), text, True))
        return prompt + "\n" if text else prompt
    return _collapse(prompt_rule(instruction.strip(), text, True))


def visdoc_query_prompt(query: str) -> str:
    """`Find a document image that matches the given query: <query>` (text only)."""
    return f"{VISDOC_QUERY_INSTRUCTION} {query}"


def visdoc_candidate_prompt() -> str:
    """`<|image_1|> Understand the content of the provided document image.` (with the page image)."""
    return f"{MMEB_IMAGE_TAG} {VISDOC_CANDIDATE_TEXT}"
