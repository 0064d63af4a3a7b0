"""MMEB-V2 evaluation prompts against REFERENCE.md §2.2 / §2.7 and its examples."""

from __future__ import annotations

from vlm2vec_hf.evaluation import prompts_v2
from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_IMAGE_TAG
from vlm2vec_hf.modeling_vlm2vec.processing_vlm2vec import format_prompt

IMG = MMEB_IMAGE_TAG  # the data layer writes MMEB's tag; the processor maps it to its backbone's image token
QA_INST = "<|image_1|> Represent the given image with the following question: "


def test_qa_query_is_image_newline_instruction_space_question_newline():
    prompt = prompts_v2.query_prompt("image_qa", "OK-VQA", QA_INST, "What is in the image")
    assert prompt == f"{IMG}\nRepresent the given image with the following question: What is in the image\n"
    # the same string the sentence-transformers path builds from instruction + text in the V2 format
    instruction = QA_INST.replace("<|image_1|>", "").strip()
    assert prompt == format_prompt(
        "What is in the image", instruction, num_images=1, prompt_format="v2", image_token=MMEB_IMAGE_TAG
    )


def test_classification_query_keeps_the_space_left_by_the_removed_tag():
    prompt = prompts_v2.query_prompt(
        "image_cls", "ImageNet-1K", "<|image_1|> Represent the given image for classification.", ""
    )
    assert prompt == f"{IMG}  Represent the given image for classification.\n"
    with_text = prompts_v2.query_prompt("image_cls", "N24News", "<|image_1|> Represent the news: \n", "Headline")
    assert with_text == f"{IMG}  Represent the news:\n Headline\n"


def test_t2i_query_and_image_candidates():
    inst = "Find me an everyday image that matches the given caption:"
    assert prompts_v2.query_prompt("image_t2i", "MSCOCO_t2i", inst, "A cat.") == f"{inst} A cat.\n"
    assert prompts_v2.query_prompt("image_t2i", "VisDial", inst, "A cat.") == f"{inst} A cat.\n\n"
    target = " Represent the given image."
    assert (
        prompts_v2.candidate_prompt("image_t2i", "MSCOCO_t2i", target, "", True)
        == f"{IMG} Represent the given image.\n"
    )
    captioned = prompts_v2.candidate_prompt("image_t2i", "WebQA", target, "A red car", True)
    assert captioned == f"{IMG} Represent the given image. A red car\n"
    assert prompts_v2.candidate_prompt("image_t2i", "MSCOCO_t2i", target, "ignored", True).endswith("image.\n")


def test_text_candidates_are_raw_strings():
    assert prompts_v2.candidate_prompt("image_cls", "ImageNet-1K", "", "tabby cat", False) == "tabby cat"
    assert prompts_v2.candidate_prompt("image_qa", "OK-VQA", None, "two", False) == "two"


def test_grounding_candidates_get_a_newline_only_with_a_caption():
    inst = "<|image_1|> Select the portion of the image that follows the language expressions."
    plain = prompts_v2.candidate_prompt("image_i2i_vg", "RefCOCO", inst, "", True)
    assert plain == f"{IMG} Select the portion of the image that follows the language expressions."
    assert prompts_v2.candidate_prompt("image_i2i_vg", "RefCOCO-Matching", inst, "the dog", True).endswith(
        "expressions. the dog\n"
    )
    query = prompts_v2.query_prompt("image_i2i_vg", "RefCOCO", inst, "the dog on the left")
    assert (
        query == f"{IMG}\nSelect the portion of the image that follows the language expressions. the dog on the left\n"
    )


def test_visual_document_prompts():
    assert prompts_v2.visdoc_query_prompt("revenue in 2020") == (
        "Find a document image that matches the given query: revenue in 2020"
    )
    assert prompts_v2.visdoc_candidate_prompt() == f"{IMG} Understand the content of the provided document image."


def test_every_mmeb_image_dataset_has_a_parser():
    from vlm2vec_hf.evaluation.published import V1_META_TASKS

    assert sorted(prompts_v2.IMAGE_TASK_TYPE) == sorted(d for ds in V1_META_TASKS.values() for d in ds)
