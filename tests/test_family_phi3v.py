"""Phi-3.5-V behaviour that is not embedding parity (that is in test_family_parity.py, fixture
`parity-phi3v-public`): the folder's classes, the image-alone prompt, truncation, the converter's key accounting,
foreign adapter keys, LoRA train -> merge on a random Phi-3.5-V, and the HD transform's token count."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import PHI3V, TOLERANCE, max_abs
from PIL import Image
from safetensors.torch import load_file, save_file

from vlm2vec_hf.hub_cards.adapter_conversion import AdapterConversionError
from vlm2vec_hf.hub_cards.convert import convert_backbone
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

FIXTURE = PHI3V.root
CASES = PHI3V.cases
MAX_LENGTH = PHI3V.recipe["max_len"]  # 256
PHI3_V = get_family("phi3_v")
case_image_path = PHI3V.image_path


def test_two_images_get_numbered_tags():
    assert PHI3_V.format_prompt("caption", None, 2) == "<|image_1|> <|image_2|> caption"


def test_image_alone_prompt(phi3v_auto):
    model, processor = phi3v_auto
    with torch.no_grad():
        alone = model(**processor(images=[case_image_path("p07")])).embeddings[0]
    assert max_abs(alone, PHI3V.expected["case/p07"]) < TOLERANCE  # the image-alone prompt is "<|image_1|>"


def test_foreign_adapter_keys_are_errors_naming_them(tmp_path):
    from vlm2vec_hf.hub_cards.adapter_conversion import merge_adapter_into_model, read_adapter
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel

    model = VLM2VecModel.from_backbone(FIXTURE / "backbone", dtype=torch.float32)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(FIXTURE / "adapter" / "adapter_config.json", foreign)
    weights = load_file(FIXTURE / "adapter" / "adapter_model.safetensors")
    weights["base_model.model.model.vision_embed_tokens.img_projection.0.lora_A.weight"] = torch.zeros(8, 128)
    save_file(weights, foreign / "adapter_model.safetensors")
    with pytest.raises(AdapterConversionError, match=r"img_projection\.0"):
        merge_adapter_into_model(model, read_adapter(foreign), PHI3_V.adapter_key_mapping)


def test_folder_uses_phi_classes(phi3v_model_dir, phi3v_auto):
    model, processor = phi3v_auto
    assert type(processor.image_processor).__name__ == "Phi3VImageProcessor"
    assert type(processor.tokenizer).__name__ == "TokenizersBackend"  # not LlamaTokenizer (README trap 3)
    assert type(model.vlm.language_model).__name__ == "Phi3Model"
    assert type(model.vlm.vision_embed_tokens.img_processor).__name__ == "CLIPVisionModel"
    for name in ("backbones.py", "backbone_common.py", "backbone_qwen2_vl.py", "backbone_phi3_v.py"):
        assert (phi3v_model_dir / name).is_file(), name
    assert json.loads((phi3v_model_dir / "config.json").read_text())["vlm_config"]["model_type"] == "phi3_v"


def test_text_rows_truncate_and_image_rows_do_not(phi3v_auto):
    _, processor = phi3v_auto
    encoding = processor(text=[CASES["p10"]["text"], CASES["p01"]["text"]], images=[case_image_path("p01")])
    lengths = encoding["attention_mask"].sum(dim=1).tolist()
    assert lengths == [MAX_LENGTH, CASES["p01"]["n_tokens"]]  # 778 > max_length: image rows are never cut
    with pytest.raises(TypeError, match="unexpected keyword"):
        processor(text=["a"], not_a_keyword=1)


def test_unmapped_checkpoint_key_is_an_error_naming_it(tmp_path):
    base = tmp_path / "backbone"
    shutil.copytree(FIXTURE / "backbone", base)
    weights = load_file(base / "model.safetensors")
    weights["model.vision_embed_tokens.extra_thing.weight"] = torch.zeros(2)
    save_file(weights, base / "model.safetensors")
    with pytest.raises(KeyError, match=r"model\.vision_embed_tokens\.extra_thing\.weight"):
        convert_backbone(base, tmp_path / "out", dtype=torch.float32)


@pytest.mark.slow
def test_lora_training_merge_and_reload_on_a_random_phi3v(tmp_path, mini_mmeb):
    """`init --family phi3_v` -> `train --lora` (GradCache mini-batches of 2 over 5-D pixel values) -> `merge`: the
    merged folder embeds like the adapter folder, and the adapter moved the embeddings."""
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.cli import main

    model_dir, run, merged_dir = tmp_path / "phi", tmp_path / "run", tmp_path / "merged"
    assert main(["init", "--out", str(model_dir), "--family", "phi3_v"]) == 0
    train = ["train", "--model", str(model_dir), "--data", str(mini_mmeb / "train"), "--image-dir"]
    train += [str(mini_mmeb / "images"), "--output-dir", str(run), "--max-steps", "2", "--learning-rate", "1e-2"]
    train += ["--per-device-train-batch-size", "4", "--gc-mini-batch-size", "2", "--warmup-steps", "0"]
    train += ["--save-steps", "1000", "--seed", "7", "--lora", "--lora-r", "4"]
    assert main(train) == 0
    assert main(["merge", "--adapter", str(run / "final"), "--out", str(merged_dir)]) == 0

    def load(folder: Path) -> SentenceTransformer:
        return SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")

    inputs = ["a red bus", {"image": case_image_path("p01"), "text": "What is in the image"}, case_image_path("p14")]
    adapted = load(run / "final").encode(inputs)
    assert abs(load(merged_dir).encode(inputs) - adapted).max() < TOLERANCE
    assert abs(load(model_dir).encode(inputs) - adapted).max() > 1e-3


@pytest.mark.parametrize("size", [(150, 100), (20, 36), (233, 351), (1000, 90), (90, 1000), (336, 336), (2000, 700)])
@pytest.mark.parametrize("num_crops", [4, 16])
def test_image_token_count_is_computed_without_resizing(size, num_crops):
    from vlm2vec_hf.modeling_vlm2vec.image_processing_phi3_v import Phi3VImageProcessor, hd_transform

    image = Image.new("RGB", size)
    width, height = hd_transform(image, num_crops).size
    assert Phi3VImageProcessor().hd_size(image, num_crops) == (height, width)
    assert height % 336 == 0 and width % 336 == 0 and (height // 336) * (width // 336) <= num_crops


def test_too_extreme_aspect_ratio_is_an_input_error(phi3v_auto):
    _, processor = phi3v_auto
    with pytest.raises(ValueError, match="image 0: .*too extreme") as error:
        processor(images=[Image.new("RGB", (3000, 2))])
    assert type(error.value).__name__ == "ImageInputError"  # the folder's own class (remote code)
