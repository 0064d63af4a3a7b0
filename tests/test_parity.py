"""Parity with the reference VLM2Vec embeddings (fixture: reference code at 6e1e1d42, fp32, CPU), 1e-5 max-abs."""

from __future__ import annotations

import pytest
import torch
from conftest import BATCHES, CASES, TOLERANCE, case_image, case_image_path, max_abs

from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

PLAIN_TEXT = ["p03", "p04", "p15", "p16"]
_P11_INSTRUCTION = "Represent the following passage:"
# (instruction, text, has_image): the reference's prompt builder turns each into the case's stored prompt.
V1_STRUCTURED = {
    "p01": ("Represent the given image with the following question:", "What is in the image", True),
    "p02": ("Represent the given image for classification", None, True),
    "p05": ("Find me an everyday image that matches the given caption:", "a red bus.", False),
    "p06": ("Represent the given image.", None, True),
    "p07": (None, None, True),
    "p10": ("Find a day-to-day image that looks similar to the provided image.", None, True),
    "p11": (_P11_INSTRUCTION, CASES["p11"]["text"][len(_P11_INSTRUCTION) + 1 :], False),
    "p12": ("Find an image caption describing the given everyday image.", None, True),
    "p14": ("Represent the given image.", None, True),
    **{case: (None, CASES[case]["text"], False) for case in PLAIN_TEXT},
}
V2_STRUCTURED = {
    "p08": ("Represent the given image for classification", None, True),
    "p09": ("Represent the given image with the following question:", "What is on the table?", True),
    "p13": ("Find me an everyday image that matches the given caption:", "Two dogs playing in the snow.", False),
    "p17": ("Represent the given image.", None, True),
}


def structured_input(case_id: str, text: str | None, has_image: bool):
    if not has_image:
        return text
    item = {"image": case_image(case_id)}
    if text is not None:
        item["text"] = text
    return item


@pytest.mark.parametrize("prompt_format,table", [("v1", V1_STRUCTURED), ("v2", V2_STRUCTURED)])
def test_prompt_builder_reproduces_reference_strings(prompt_format, table):
    for case_id, (instruction, text, has_image) in table.items():
        prompt = get_family("qwen2_vl").format_prompt(text, instruction, int(has_image), prompt_format)
        assert prompt == CASES[case_id]["text"], case_id


def test_tokenisation_matches_reference_ids(auto_model_and_processor):
    _, processor = auto_model_and_processor
    for case_id, case in CASES.items():
        image = case_image_path(case_id)
        encoding = processor(text=[case["text"]], images=[image] if image else None)
        assert encoding["input_ids"][0].tolist() == case["input_ids"], case_id


def test_auto_model_single_cases(auto_model_and_processor, expected):
    model, processor = auto_model_and_processor
    for case_id, case in CASES.items():
        image = case_image_path(case_id)
        with torch.no_grad():
            embedding = model(**processor(text=[case["text"]], images=[image] if image else None)).embeddings[0]
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id


@pytest.mark.parametrize("batch_id", sorted(BATCHES))
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_auto_model_batches(auto_model_and_processor, expected, batch_id, padding_side):
    model, processor = auto_model_and_processor
    case_ids = BATCHES[batch_id]["cases"]
    texts = [CASES[case]["text"] for case in case_ids]
    images = [path for case in case_ids if (path := case_image_path(case))]
    encoding = processor(text=texts, images=images, padding_side=padding_side)
    assert encoding["input_ids"].shape[1] == BATCHES[batch_id]["padded_len"]
    with torch.no_grad():
        embeddings = model(**encoding).embeddings
    assert max_abs(embeddings, expected[f"batch/{batch_id}"]) < TOLERANCE
    singles = torch.stack([expected[f"case/{case}"] for case in case_ids])
    assert max_abs(embeddings, singles) < TOLERANCE


def test_sentence_transformer_structured_inputs_one_by_one(sentence_model, expected):
    for case_id, (instruction, text, has_image) in V1_STRUCTURED.items():
        embedding = sentence_model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_sentence_transformer_batches_equal_reference(sentence_model, expected, padding_side):
    sentence_model[0].padding_side = padding_side
    try:
        # Several instructions cannot share one encode call, so batch the cases that share one.
        groups: dict[str | None, list[str]] = {}
        for case_id, (instruction, _, _) in V1_STRUCTURED.items():
            groups.setdefault(instruction, []).append(case_id)
        groups[None] += ["p06"]  # the same image case twice in one batch, once with and once without instruction
        for instruction, case_ids in groups.items():
            inputs = [structured_input(case, *V1_STRUCTURED[case][1:]) for case in case_ids]
            embeddings = sentence_model.encode(inputs, prompt=instruction, batch_size=len(inputs))
            for case_id, embedding in zip(case_ids, embeddings):
                if instruction is None and case_id == "p06":
                    reference = sentence_model.encode({"image": case_image("p06")})
                    assert max_abs(embedding, torch.as_tensor(reference)) < TOLERANCE
                    continue
                assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id
        # Raw prompt strings (placeholders included) in the fixture's own mixed batches.
        for batch_id, batch in BATCHES.items():
            inputs = [
                {"image": case_image(case), "text": CASES[case]["text"]}
                if CASES[case]["image"]
                else CASES[case]["text"]
                for case in batch["cases"]
            ]
            embeddings = sentence_model.encode(inputs, batch_size=len(inputs), convert_to_tensor=True)
            assert max_abs(embeddings, expected[f"batch/{batch_id}"]) < TOLERANCE, batch_id
    finally:
        sentence_model[0].padding_side = None


def test_v2_prompt_format_model(fixture_model_dir_v2, expected):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(fixture_model_dir_v2), trust_remote_code=True, device="cpu")
    for case_id, (instruction, text, has_image) in V2_STRUCTURED.items():
        embedding = model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id
    # Without an instruction the V2 format embeds raw candidates exactly like V1.
    assert max_abs(model.encode("A cat and a dog"), expected["case/p03"]) < TOLERANCE


def test_mmeb_instruction_by_name_and_encode_query(sentence_model, expected):
    # MMEB's "MSCOCO_t2i" instruction (case p05's query) is saved under mteb's name for the same task.
    by_name = sentence_model.encode("a red bus.", prompt_name="MSCOCOT2IRetrieval-query")
    assert max_abs(by_name, expected["case/p05"]) < TOLERANCE
    # encode_query / encode_document use the (empty) "query" / "document" prompts: raw strings, like the reference.
    assert max_abs(sentence_model.encode_query("A cat and a dog"), expected["case/p03"]) < TOLERANCE
    assert max_abs(sentence_model.encode_document("A cat and a tiger"), expected["case/p04"]) < TOLERANCE


def test_save_and_reload_give_identical_embeddings(sentence_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    inputs = ["A cat and a dog", {"image": case_image("p01"), "text": "What is in the image"}, case_image_path("p07")]
    before = sentence_model.encode(inputs, prompt="Represent the given image with the following question:")
    sentence_model.save(str(tmp_path / "resaved"))
    reloaded = SentenceTransformer(str(tmp_path / "resaved"), trust_remote_code=True, device="cpu")
    after = reloaded.encode(inputs, prompt="Represent the given image with the following question:")
    assert (before == after).all()
    assert (tmp_path / "resaved" / "vlm2vec_st.py").is_file()
    assert '"vlm2vec_st.VLM2VecEncoder"' in (tmp_path / "resaved" / "modules.json").read_text()
