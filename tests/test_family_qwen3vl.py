"""What only the Qwen3-VL family does (its parity is a row of `test_family_parity.py`): the Qwen3-VL-Embedding chat
prompt, qwen-vl-utils' image and video preparation (RGBA on white, factor from the image processor, the factor-64
frame pass, timestamps), the folder's defaults (native M-RoPE, right padding, 8192 tokens) and random init."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import QWEN3VL, TOLERANCE, load_auto, max_abs, qwen3vl_images, qwen3vl_video, run_isolated
from PIL import Image

from vlm2vec_hf.modeling_vlm2vec.backbone_qwen3_vl import DEFAULT_INSTRUCTION, embedding_instruction, smart_resize
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family
from vlm2vec_hf.modeling_vlm2vec.media_loading import load_image

FAMILY = get_family("qwen3_vl")
QWEN3VL_LAYERS = 3  # the fixture backbone's LLM layers
FFN = ("gate_proj", "up_proj", "down_proj")


@pytest.mark.parametrize("case_id", sorted(QWEN3VL.cases))
def test_prompt_builder_reproduces_the_official_chat_prompt(case_id):
    """Instruction in the system turn (stripped, `.` added unless it ends in punctuation, the default when none),
    videos, then images, then the text in the user turn, the generation prompt at the end."""
    case = QWEN3VL.cases[case_id]
    prompt = FAMILY.format_prompt(
        case.get("text"),
        case.get("instruction"),
        len(qwen3vl_images(case_id)),
        "qwen3_vl_embedding",
        num_videos=int(qwen3vl_video(case_id) is not None),
    )
    assert prompt == case["prompt"]


def test_instruction_rule_and_empty_input():
    assert embedding_instruction("  Find the matching caption:  ") == "Find the matching caption:"
    assert embedding_instruction("Retrieve images") == "Retrieve images."
    assert embedding_instruction("Was ist das？") == "Was ist das？"  # fullwidth question mark: Unicode punctuation
    assert embedding_instruction("   ") == DEFAULT_INSTRUCTION
    assert "user\nNULL<|im_end|>" in FAMILY.format_prompt(None, None, 0)


def test_vlm2vec_placeholders_become_vision_blocks():
    """MMEB-style texts (`<|image_1|>` swapped for `<|image_pad|>` by the processor) go into the user turn as
    vision blocks in front of the text, as the official embedder places its images."""
    prompt = FAMILY.format_prompt("<|image_pad|>\nWhat is in the cup?", "Represent the image", 0)
    assert prompt == FAMILY.format_prompt("What is in the cup?", "Represent the image", 1)
    with pytest.raises(ValueError, match="complete chat prompt"):
        FAMILY.format_prompt(QWEN3VL.cases["c01"]["prompt"], "an instruction", 0)


def test_rgba_is_composited_on_white_for_this_family_only():
    """qwen-vl-utils pastes an RGBA image on white (alpha as mask); other families drop the alpha channel."""
    path = qwen3vl_images("c05")[0]
    rgba = Image.open(path)
    assert rgba.mode == "RGBA"
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba, mask=rgba.getchannel("A"))
    ours = load_image(path, FAMILY.resize_small_images, FAMILY.rgba_background)
    assert ours.tobytes() == white.tobytes()
    dropped = load_image(path, True, get_family("qwen2_vl").rgba_background)
    assert dropped.tobytes() == rgba.convert("RGB").tobytes() != white.tobytes()


def test_image_sizes_follow_qwen_vl_utils_with_the_processor_factor(qwen3vl_model_dir):
    """Every image case is resized to the size the reference fetched; the factor is `patch_size * merge_size` read
    from the image processor (32 here, 28 for a 14-px-patch processor), never a constant."""
    _, processor = load_auto(qwen3vl_model_dir)
    for case_id, case in QWEN3VL.cases.items():
        for path, (width, height) in zip(qwen3vl_images(case_id), case.get("fetched_image_sizes_wh", [])):
            image = FAMILY.resize_for_model(processor.image_processor, processor.prepare_image(path))
            assert image.size == (width, height), case_id
    assert smart_resize(12, 400, 32, 4096, 1843200) == (32, 384)
    assert smart_resize(12, 2000, 32, 4096, 1843200) == (32, 1984)  # a side starts at one factor, not 0
    image_processor = processor.image_processor
    previous = image_processor.patch_size
    image_processor.patch_size = 14
    try:
        height, width = FAMILY.resize_for_model(image_processor, Image.new("RGB", (150, 100))).size[::-1]
    finally:
        image_processor.patch_size = previous
    assert (height % 28, width % 28) == (0, 0) and (height % 32, width % 32) != (0, 0)


def test_video_preparation_and_timestamps(qwen3vl_model_dir):
    """Odd frame counts repeat the last frame, the clip gets the reference's size, and each temporal pair is its
    own `<t seconds>` vision block (transformers 5's processor would keep the template's block around them)."""
    _, processor = load_auto(qwen3vl_model_dir)
    for case_id in ("c11", "c12"):
        case = QWEN3VL.cases[case_id]
        frames = processor.prepare_video(qwen3vl_video(case_id))
        ((count, _, height, width),) = case["fetched_video_shape_tchw"]
        assert (len(frames), frames[0].height, frames[0].width) == (count, height, width)
        encoding = processor(text=[case["prompt"]], videos=[qwen3vl_video(case_id)])
        decoded = processor.tokenizer.decode(encoding["input_ids"][0])
        assert decoded == case["decoded_prompt"]
        assert decoded.count("<|vision_start|>") == count // 2 and "seconds>" in decoded


def test_truncation_that_cuts_media_tokens_names_the_row(qwen3vl_model_dir):
    _, processor = load_auto(qwen3vl_model_dir)
    prompts = [QWEN3VL.cases["c01"]["prompt"], QWEN3VL.cases["c03"]["prompt"]]
    with pytest.raises(ValueError, match=r"row 1: its images need 15 image tokens but \d+ fit in max_length=20"):
        processor(text=prompts, images=qwen3vl_images("c03"), max_length=20)


def test_converted_folder_records_the_recipe(qwen3vl_model_dir, tmp_path):
    """`vlm2vec convert --base B`: native M-RoPE, the embedding prompt format, right padding, 8192 tokens, pixel
    bounds; `--position-ids reference` still overrides the family's default."""
    from vlm2vec_hf.cli import main

    config = json.loads((qwen3vl_model_dir / "config.json").read_text())
    processor_config = json.loads((qwen3vl_model_dir / "processor_config.json").read_text())
    assert config["position_ids_mode"] == "native" and config.get("backbone_family") is None
    assert processor_config["prompt_format"] == "qwen3_vl_embedding" and processor_config["max_length"] == 8192
    _, processor = load_auto(qwen3vl_model_dir)
    assert processor.tokenizer.padding_side == "right"
    assert processor.processor_options == {"min_pixels": 4096, "max_pixels": 1843200}
    assert processor.num_frames == 64  # the embedder's frame budget; VLM2Vec-V2 folders sample 8
    frames = [Image.new("RGB", (64, 64), (shade, 0, 0)) for shade in range(0, 200, 10)]
    assert len(processor.prepare_video(frames)) == 20  # a 20-frame list keeps every frame
    assert (qwen3vl_model_dir / "backbone_qwen3_vl.py").is_file()
    out = tmp_path / "reference-positions"
    assert main(["convert", "--base", str(QWEN3VL.backbone), "--out", str(out), "--position-ids", "reference"]) == 0
    assert json.loads((out / "config.json").read_text())["position_ids_mode"] == "reference"


def test_init_builds_a_random_qwen3_vl_that_embeds_text_image_and_video(tmp_path):
    from vlm2vec_hf.cli import main
    from vlm2vec_hf.tiny import backbone_config

    out = tmp_path / "tiny-qwen3"
    assert main(["init", "--family", "qwen3_vl", "--out", str(out)]) == 0
    model, processor = load_auto.__wrapped__(out)
    assert model.config.position_ids_mode == "native"
    vision = model.config.vlm_config.vision_config
    assert (vision.patch_size, vision.spatial_merge_size, len(vision.deepstack_visual_indexes)) == (16, 2, 2)
    assert model.config.vlm_config.text_config.rope_parameters["mrope_interleaved"] is True
    images = qwen3vl_images("c04")
    prompts = [
        processor.format_prompt("a cat"),
        processor.format_prompt("the cup", num_images=1),
        processor.format_prompt(None, num_videos=1),
    ]
    with torch.no_grad():
        embeddings = model(**processor(text=prompts, images=images, videos=[qwen3vl_video("c11")])).embeddings
    assert embeddings.shape == (3, 64) and torch.isfinite(embeddings).all()
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
    mid = backbone_config("mid", "qwen3_vl")
    assert (mid.text_config.hidden_size, mid.text_config.num_hidden_layers, mid.vision_config.depth) == (512, 12, 8)
    assert sum(mid.text_config.rope_parameters["mrope_section"]) * 2 == mid.text_config.head_dim


@pytest.mark.slow
def test_loads_in_a_process_without_the_project(qwen3vl_model_dir, tmp_path):
    """Only the folder's own code runs (remote code): no missing or unexpected weights, the reference rows for a
    text, an image and a video case."""
    case_ids = ["c02", "c04", "c12"]
    prompts = [QWEN3VL.cases[case]["prompt"] for case in case_ids]
    out = run_isolated(
        f"""
        import json, torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        model, info = AutoModel.from_pretrained({str(qwen3vl_model_dir)!r}, trust_remote_code=True,
                                                output_loading_info=True)
        processor = AutoProcessor.from_pretrained({str(qwen3vl_model_dir)!r}, trust_remote_code=True)
        inputs = processor(text={prompts!r}, images={qwen3vl_images("c04")!r}, videos=[{qwen3vl_video("c12")!r}])
        with torch.no_grad():
            embeddings = model(**inputs).embeddings
        rows = load_file({str(QWEN3VL.root / "expected.safetensors")!r})
        rows = torch.stack([rows["case/" + c] for c in {case_ids!r}])
        print(json.dumps({{"worst": (embeddings - rows).abs().max().item(),
                          "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
                          "model_module": type(model).__module__}}))
        """,
        tmp_path,
    )
    assert out["missing"] == [] and out["unexpected"] == []
    assert out["model_module"].startswith("transformers_modules.")
    assert out["worst"] < TOLERANCE


def test_sdpa_and_bf16(qwen3vl_model_dir):
    """SDPA (the folder's default) matches the eager reference; bf16 stays close."""
    from transformers import AutoModel

    _, processor = load_auto(qwen3vl_model_dir)
    case_ids = QWEN3VL.batches["b5_video_mixed"]["cases"]
    media = {"images": qwen3vl_images("c05"), "videos": [qwen3vl_video("c11"), qwen3vl_video("c12")]}
    encoding = processor(text=[QWEN3VL.cases[case]["prompt"] for case in case_ids], **media)
    singles = QWEN3VL.singles(case_ids)
    eager = AutoModel.from_pretrained(qwen3vl_model_dir, trust_remote_code=True, attn_implementation="eager").eval()
    with torch.no_grad():
        assert max_abs(eager(**encoding).embeddings, singles) < TOLERANCE
        half = AutoModel.from_pretrained(qwen3vl_model_dir, trust_remote_code=True, dtype=torch.bfloat16).eval()
        embeddings = half(**encoding).embeddings
    assert torch.nn.functional.cosine_similarity(embeddings.float(), singles).min().item() > 0.99


@pytest.mark.parametrize("preset", ["Qwen3-VL-Embedding-2B", "Qwen3-VL-Embedding-8B"])
def test_preset_with_a_local_base_writes_the_official_recipe(preset, qwen3vl_model_dir, tmp_path):
    """`vlm2vec convert --preset Qwen3-VL-Embedding-2B --base <folder>`: offline, the preset's settings, the same
    folder settings and embeddings as the fixture folder."""
    from vlm2vec_hf.cli import main
    from vlm2vec_hf.hub_cards.presets import get_preset

    assert get_preset(preset).base_model == f"Qwen/{preset}"
    out = tmp_path / preset
    assert main(["convert", "--preset", preset, "--base", str(QWEN3VL.backbone), "--out", str(out)]) == 0
    for name in ("config.json", "processor_config.json"):
        ours, fixture = (json.loads((folder / name).read_text()) for folder in (out, qwen3vl_model_dir))
        assert ours == fixture, name
    model, processor = load_auto.__wrapped__(out)
    with torch.no_grad():
        embedding = model(**processor(text=[QWEN3VL.cases["c04"]["prompt"]], images=qwen3vl_images("c04")))
    assert max_abs(embedding.embeddings[0], QWEN3VL.expected["case/c04"]) < TOLERANCE


def test_training_lora_adapts_the_llm_projections(qwen3vl_model_dir):
    """`vlm2vec train --lora` adapts the LLM's attention and MLP projections (7 per layer), nothing in the vision
    tower or its DeepStack mergers."""
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import load_model

    model = load_model(TrainConfig(model=str(qwen3vl_model_dir), lora=True, lora_r=8))
    adapted = {name.split("vlm.", 1)[1] for name, module in model[0].named_modules() if hasattr(module, "lora_A")}
    expected = {
        f"language_model.layers.{layer}.{block}.{name}"
        for layer in range(QWEN3VL_LAYERS)
        for block, names in (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")), ("mlp", FFN))
        for name in names
    }
    assert adapted == expected
