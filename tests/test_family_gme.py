"""GME behaviour that is not embedding parity (that is in test_family_parity.py, fixture `parity-gme-public`): the
converted folder's recipe and preset, the resize before the processor bounds, the chat prompt around plain texts and
instructions, MMEB prompts as the GME driver sends them, one batch of every case, `vlm2vec eval` on mini-MMEB and a
short training run on a GME folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import GME, TOLERANCE, max_abs
from helpers import gme_chat_prompt as chat_prompt
from helpers import gme_st_input as st_input
from PIL import Image

from vlm2vec_hf.cli import main
from vlm2vec_hf.hub_cards.convert import convert_backbone
from vlm2vec_hf.hub_cards.presets import get_preset

FIXTURE = GME.root
CASES = GME.cases
RECIPE = GME.recipe
case_image = GME.image


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return GME.expected


def embed(gme_auto, prompts: list[str], images: list[Image.Image]) -> tuple[torch.Tensor, dict]:
    model, processor = gme_auto
    inputs = processor(text=prompts, images=images or None)
    with torch.no_grad():
        return model(**inputs).embeddings, inputs


def test_convert_writes_the_gme_recipe(gme_model_dir, gme_auto):
    config = json.loads((gme_model_dir / "config.json").read_text())
    processor_config = json.loads((gme_model_dir / "processor_config.json").read_text())
    assert config["backbone_family"] == "gme" and config["position_ids_mode"] == "reference"
    assert processor_config["backbone_family"] == "gme" and processor_config["prompt_format"] == "gme"
    assert processor_config["max_length"] == RECIPE["max_length"] == 1800
    assert processor_config["image_processor"]["size"] == RECIPE["processor_size"]
    assert (gme_model_dir / "backbone_gme.py").is_file()
    model, processor = gme_auto
    assert processor.tokenizer.padding_side == RECIPE["padding_side"] == "left"
    assert model.config.torch_dtype == torch.float32 or model.dtype == torch.float32
    # The preset carries the same recipe for the published checkpoints.
    preset = get_preset("gme-Qwen2-VL-7B")
    assert (preset.base_model, preset.adapter_repo) == ("Alibaba-NLP/gme-Qwen2-VL-7B-Instruct", None)
    recipe = (preset.prompt_format, preset.max_length, dict(preset.image_processor_options))
    assert recipe == ("gme", 1800, {"min_pixels": 3136, "max_pixels": 1003520})


def test_the_preset_writes_the_same_folder_as_the_prompt_format(gme_model_dir, tmp_path):
    out = tmp_path / "preset"
    assert main(["convert", "--preset", "gme-Qwen2-VL-2B", "--base", str(FIXTURE / "backbone"), "--out", str(out)]) == 0
    for name in ("config.json", "processor_config.json"):
        assert json.loads((out / name).read_text()) == json.loads((gme_model_dir / name).read_text()), name


def test_gme_prompt_format_needs_a_qwen2_vl_backbone(tmp_path):
    phi = Path(__file__).parent / "fixtures" / "parity-phi3v-public" / "backbone"
    with pytest.raises(ValueError, match=r"prompt_format 'gme' does not fit a 'phi3_v' backbone"):
        convert_backbone(phi, tmp_path / "out", prompt_format="gme")


def test_gme_resize_runs_before_the_processor_bounds(gme_auto, fixture_model_dir):
    # A 6030x30 image (ratio 201): GME's smart_resize gives 28x6020 (ratio 215 > 200), clamped to 28x5600 (GME warns
    # and clamps), which the processor takes as is: 2x400 patches. The plain Qwen2-VL processor refuses the image.
    from transformers import AutoProcessor

    wide = Image.new("RGB", (6030, 30), (200, 30, 30))
    assert gme_auto[1](images=[wide])["image_grid_thw"].tolist() == [[1, 2, 400]]
    with pytest.raises(ValueError, match="image 0: 6030x30 image rejected.*aspect ratio"):
        AutoProcessor.from_pretrained(fixture_model_dir, trust_remote_code=True)(images=[wide])


def test_auto_model_plain_texts_get_the_chat_prompt(gme_auto, expected):
    # Plain texts (VLM2Vec's `<|image_pad|>` placeholder for an image) are wrapped in GME's prompt by the processor.
    ids = ["g01", "g05", "g06", "g03", "g09"]
    prompts = [("<|image_pad|> " if i == "g03" else "") + CASES[i]["text"] for i in ids]  # g06: "<|image_pad|>\n..."
    images = [case_image(i) for i in ids if case_image(i)]
    embeddings, _ = embed(gme_auto, prompts, images)
    for row, case_id in enumerate(ids):
        assert max_abs(embeddings[row], expected[f"case/{case_id}"]) < TOLERANCE, case_id


def test_sentence_transformers_one_batch_of_every_case(gme_sentence_model, expected):
    # Text rows before and after image rows, PIL and path images, and the 1800-token row (a sub-batch of its own).
    ids = sorted(CASES)
    inputs = [st_input(i) for i in ids]
    inputs[ids.index("g02")] = case_image("g02")
    embeddings = gme_sentence_model.encode(inputs, batch_size=len(ids), convert_to_tensor=True)
    for row, case_id in enumerate(ids):
        assert max_abs(embeddings[row], expected[f"case/{case_id}"]) < TOLERANCE, case_id


def test_an_instruction_becomes_the_system_prompt(gme_sentence_model, gme_auto):
    # GME's `embed(..., instruction=...)` puts a query instruction in the system turn, replacing the default.
    instruction = "Find an image that matches the given text."
    text = "A cat and a tiger"
    ours = gme_sentence_model.encode([text], prompt=instruction, convert_to_tensor=True)[0]
    reference, _ = embed(gme_auto, [chat_prompt(text, False, system=instruction)], [])
    assert max_abs(ours, reference[0]) < TOLERANCE
    default = gme_sentence_model.encode([text], convert_to_tensor=True)[0]
    assert max_abs(ours, default) > 1e-3
    fused = gme_sentence_model.encode(
        [{"image": case_image("g03"), "text": "What is in the image"}], prompt=instruction
    )[0]
    reference, _ = embed(gme_auto, [chat_prompt("What is in the image", True, system=instruction)], [case_image("g03")])
    assert max_abs(fused, reference[0]) < TOLERANCE


def test_a_complete_chat_prompt_takes_no_instruction(gme_sentence_model):
    with pytest.raises(ValueError, match=r"^Input .*complete GME chat prompt takes no instruction"):
        gme_sentence_model.encode([chat_prompt("A cat", False)], prompt="Find an image.")


def test_mmeb_prompts_reach_the_model_as_the_gme_driver_sends_them(gme_sentence_model, gme_auto, mini_mmeb):
    from vlm2vec_hf.evaluation.data import load_mmeb_eval
    from vlm2vec_hf.evaluation.evaluator import encoder_input
    from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_IMAGE_TAG

    datasets = load_mmeb_eval(mini_mmeb / "eval", mini_mmeb / "images")
    image_query = next(q for d in datasets for q in d.queries if q[1] and q[0].startswith(MMEB_IMAGE_TAG))
    text_query = next(q for d in datasets for q in d.queries if not q[1])
    for text, image in (image_query, text_query):
        features = gme_sentence_model[0].preprocess([encoder_input((text, image))])
        # The eval data holds "<|image_1|> instruction text"; VLM2Vec's GME driver sends instruction + " " + text.
        driver = text[len(MMEB_IMAGE_TAG + " ") :] if image else text
        reference = gme_auto[1](text=[chat_prompt(driver, bool(image))], images=[image] if image else None)
        assert features["input_ids"].tolist() == reference["input_ids"].tolist()


@pytest.mark.slow
def test_eval_on_mini_mmeb_writes_results_beside_the_published_gme(gme_model_dir, mini_mmeb, tmp_path, capsys):
    out = tmp_path / "eval"
    data = ["--data", str(mini_mmeb / "eval"), "--image-dir", str(mini_mmeb / "images")]
    args = ["eval", "--model", str(gme_model_dir), *data]
    # Two of the six sets keep the test short: image queries vs text labels, and text queries vs images.
    assert main([*args, "--subsets", "Digits", "Digits_t2i", "--out", str(out), "--compare", "GME-2B"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["datasets"]) == {"Digits", "Digits_t2i"}
    assert results["published"]["model"] == "GME-2B"
    assert all(0.0 <= d["metrics"]["hit@1"] <= 1.0 for d in results["datasets"].values())
    assert "GME-2B" in capsys.readouterr().out


@pytest.mark.slow
def test_a_gme_folder_trains(gme_model_dir, mini_mmeb, tmp_path):
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import build_trainer

    config = TrainConfig(
        model=str(gme_model_dir),
        data=str(mini_mmeb / "train"),
        image_dir=str(mini_mmeb / "images"),
        output_dir=str(tmp_path / "run"),
        num_sample_per_subset=8,
        per_device_train_batch_size=4,
        max_steps=2,
    )
    trainer = build_trainer(config)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if "layers.0.mlp" in name}
    assert trainer.train().training_loss > 0
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[name], after[name]) for name in before)
    assert trainer.model[0].processor.prompt_format == "gme"
