"""What `encode` accepts beyond plain values: chat-style messages, mixed batches; what it refuses: directories.
Also how other tools see a model folder: its modalities (mteb) and the image-feature-extraction pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TOLERANCE, case_image, case_image_path
from sentence_transformers import SentenceTransformer

INSTRUCTION = "Represent the given image with the following question:"


@pytest.mark.parametrize("as_path", [False, True])
def test_a_directory_is_an_error_not_text(sentence_model, tmp_path, as_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    value = folder if as_path else f"{folder}/"
    with pytest.raises(ValueError, match=r"names a directory"):
        sentence_model.encode(["a cat", value])
    with pytest.raises(ValueError, match=r"names a directory"):
        sentence_model.encode([{"image": value, "text": "what is this"}])


def test_a_word_that_is_also_a_folder_name_is_still_text(sentence_model, tmp_path, monkeypatch):
    (tmp_path / "cats").mkdir()
    monkeypatch.chdir(tmp_path)
    text = sentence_model.encode("cats", convert_to_tensor=True)
    assert torch.isfinite(text).all()


def test_chat_messages_embed_like_the_structured_input(sentence_model):
    image = case_image("p01")
    conversation = [
        {"role": "system", "content": INSTRUCTION},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "What is this?"}]},
    ]
    as_messages = sentence_model.encode([conversation], convert_to_tensor=True)
    structured = sentence_model.encode(
        [{"image": image, "text": "What is this?"}], prompt=INSTRUCTION, convert_to_tensor=True
    )
    assert (as_messages - structured).abs().max() < TOLERANCE
    user_only = sentence_model.encode({"role": "user", "content": "a cat"}, convert_to_tensor=True)
    assert (user_only - sentence_model.encode("a cat", convert_to_tensor=True)).abs().max() < TOLERANCE


def test_an_instruction_given_twice_is_an_error(sentence_model):
    conversation = [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": "a cat"}]
    with pytest.raises(ValueError, match="give the instruction once"):
        sentence_model.encode([conversation], prompt=INSTRUCTION)


def test_a_mixed_batch_equals_its_items_alone(sentence_model):
    inputs = ["a cat", case_image_path("p01"), {"image": case_image("p01"), "text": "What is this?"}]
    batch = sentence_model.encode(inputs, convert_to_tensor=True)
    alone = torch.stack([sentence_model.encode(item, convert_to_tensor=True) for item in inputs])
    assert (batch - alone).abs().max() < TOLERANCE


def _mteb_modalities(sbert_config: dict | None) -> list[str]:
    # mteb 2.x (ModelMeta._detect_modalities_from_sbert_config): the known modalities among modality_config's keys.
    detected = {"text", "image", "audio", "video"} & set((sbert_config or {}).get("modality_config", {}))
    return sorted(detected) if detected else ["text"]


def test_the_folder_declares_its_modalities_for_mteb(fixture_model_dir):
    config = json.loads((fixture_model_dir / "sentence_bert_config.json").read_text())
    assert _mteb_modalities(config) == ["image", "text", "video"]  # Qwen2-VL takes video
    assert config["module_output_name"] == "sentence_embedding"
    assert not (fixture_model_dir / "vlm2vec_st_config.json").exists()


def test_a_folder_with_the_old_config_name_still_loads(fixture_model_dir, tmp_path):
    old = tmp_path / "old-folder"
    shutil.copytree(fixture_model_dir, old)
    (old / "sentence_bert_config.json").unlink()
    (old / "vlm2vec_st_config.json").write_text(json.dumps({"padding_side": "left"}))
    model = SentenceTransformer(str(old), trust_remote_code=True, device="cpu")
    assert model[0].padding_side == "left"


def test_image_feature_extraction_pipeline_returns_the_image_embedding(fixture_model_dir, sentence_model):
    from transformers import pipeline

    extractor = pipeline("image-feature-extraction", model=str(fixture_model_dir), trust_remote_code=True)
    for image in (case_image("p01"), case_image_path("p10")):
        embedding = extractor(image, return_tensors=True)
        expected = sentence_model.encode(image, convert_to_tensor=True)
        assert embedding.shape == (1, expected.shape[0])
        assert (embedding[0] - expected).abs().max() < TOLERANCE
    listed = extractor([case_image("p01")])
    assert len(listed) == 1 and len(listed[0][0]) == expected.shape[0]


def test_the_pipeline_needs_trust_remote_code(fixture_model_dir):
    from transformers import pipeline

    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("image-feature-extraction", model=str(fixture_model_dir), trust_remote_code=False)


def test_folder_files_name_the_pipeline(fixture_model_dir):
    config = json.loads((Path(fixture_model_dir) / "config.json").read_text())
    module, name = config["custom_pipelines"]["image-feature-extraction"]["impl"].split(".")
    assert f"class {name}(" in (Path(fixture_model_dir) / f"{module}.py").read_text()  # shipped in the folder
