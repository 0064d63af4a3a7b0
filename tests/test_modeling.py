"""VLM2VecConfig / VLM2VecModel / VLM2VecProcessor behaviour beyond the reference fixture."""

from __future__ import annotations

import pytest
import torch
from helpers import CASES, FIXTURE, TOLERANCE, case_image_path
from PIL import Image
from transformers import AutoModel

from vlm2vec_hf.model_folder import load_sentence_transformer, make_processor, write_model_folder
from vlm2vec_hf.modeling_vlm2vec import VLM2VecConfig, VLM2VecModel
from vlm2vec_hf.modeling_vlm2vec.modeling_vlm2vec import last_token_positions, reference_position_ids
from vlm2vec_hf.tiny import random_backbone, tiny_tokenizer


def test_config_validates_options():
    with pytest.raises(ValueError, match="pooling"):
        VLM2VecConfig(pooling="mean")
    with pytest.raises(ValueError, match="position_ids_mode"):
        VLM2VecConfig(position_ids_mode="3d")
    assert VLM2VecConfig(pooling="eos").pooling == "eos"


def test_last_token_and_reference_positions_for_both_padding_sides():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_token_positions(right).tolist() == [2, 4]
    assert last_token_positions(left).tolist() == [4, 4]
    assert reference_position_ids(left).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert reference_position_ids(right).tolist() == [[0, 1, 2, 2, 2], [0, 1, 2, 3, 4]]


def test_native_positions_change_image_rows_only(fixture_model_dir, auto_model_and_processor, expected):
    reference_model, processor = auto_model_and_processor
    native = AutoModel.from_pretrained(fixture_model_dir, trust_remote_code=True, position_ids_mode="native").eval()
    assert native.config.position_ids_mode == "native"
    for case_id in ("p01", "p03", "p07"):
        image = case_image_path(case_id)
        inputs = processor(text=[CASES[case_id]["text"]], images=[image] if image else None)
        with torch.no_grad():
            difference = (native(**inputs).embeddings[0] - expected[f"case/{case_id}"]).abs().max().item()
        if image:
            assert difference > 0.03, case_id  # 3-D M-RoPE is not what the published models were trained with
        else:
            assert difference < TOLERANCE, case_id


def test_normalize_false_returns_the_raw_pooled_state(fixture_model_dir, auto_model_and_processor, expected):
    _, processor = auto_model_and_processor
    raw = AutoModel.from_pretrained(fixture_model_dir, trust_remote_code=True, normalize=False).eval()
    with torch.no_grad():
        embedding = raw(**processor(text=[CASES["p03"]["text"]])).embeddings[0]
    assert (embedding - expected["raw/case/p03"]).abs().max().item() < 1e-4


def test_attention_implementation_and_dtype_pass_through(fixture_model_dir, auto_model_and_processor):
    eager, processor = auto_model_and_processor
    sdpa = AutoModel.from_pretrained(fixture_model_dir, trust_remote_code=True, attn_implementation="sdpa").eval()
    assert sdpa.vlm.language_model.config._attn_implementation == "sdpa"
    inputs = processor(text=[CASES["p01"]["text"], CASES["p03"]["text"]], images=[case_image_path("p01")])
    with torch.no_grad():
        assert (sdpa(**inputs).embeddings - eager(**inputs).embeddings).abs().max().item() < TOLERANCE
    half = AutoModel.from_pretrained(fixture_model_dir, trust_remote_code=True, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    with torch.no_grad():
        assert half(**inputs).embeddings.dtype == torch.bfloat16


def test_qwen2_5_vl_backbone_round_trip(tmp_path):
    model = VLM2VecModel.from_backbone(random_backbone("tiny", family="qwen2_5_vl", seed=3))
    folder = write_model_folder(model, make_processor(tiny_tokenizer()), tmp_path / "q25")
    sentence_model = load_sentence_transformer(folder, device="cpu")
    assert sentence_model[0].model.config.vlm_config.model_type == "qwen2_5_vl"
    inputs = ["a cup of coffee", case_image_path("p02"), {"image": case_image_path("p01"), "text": "cat?"}]
    batch = torch.as_tensor(sentence_model.encode(inputs, prompt="Represent the given image."))
    singles = torch.stack(
        [torch.as_tensor(sentence_model.encode(x, prompt="Represent the given image.")) for x in inputs]
    )
    assert (batch - singles).abs().max().item() < TOLERANCE
    with torch.no_grad():
        model.eval()
        processor = make_processor(tiny_tokenizer())
        direct = model(**processor([processor.format_prompt("a cup of coffee", "Represent the given image.")]))
    assert (direct.embeddings[0] - batch[0]).abs().max().item() < TOLERANCE


def test_write_model_folder_never_clobbers_without_overwrite(tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    model = VLM2VecModel.from_backbone(random_backbone("tiny"))
    with pytest.raises(FileExistsError, match="overwrite"):
        write_model_folder(model, make_processor(tiny_tokenizer()), target)
    assert (target / "keep.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]  # no staging folder left behind


def test_processor_settings_can_be_overridden_at_load_time(fixture_model_dir):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(
        fixture_model_dir, trust_remote_code=True, max_pixels=200_704, prompt_format="v2", max_length=None
    )
    assert (
        processor.processor_options["min_pixels"],
        processor.processor_options["max_pixels"],
        processor.prompt_format,
        processor.max_length,
    ) == (
        3136,
        200_704,
        "v2",
        None,
    )
    big = processor(text=["<|image_pad|>"], images=[Image.new("RGB", (2000, 1500))])
    assert int(big["image_grid_thw"][0].prod()) * 14 * 14 <= 200_704
    model = SentenceTransformer(
        str(fixture_model_dir), trust_remote_code=True, device="cpu", processor_kwargs={"max_pixels": 200_704}
    )
    assert model[0].processor.processor_options["max_pixels"] == 200_704


def test_fixed_image_resize_matches_resizing_the_image_first(tmp_path):
    # The V1 protocol: every image resized to a fixed size (PIL bicubic) before the image processor.
    image = Image.open(FIXTURE / "images" / "chelsea_150x100.png").convert("RGB")
    plain = make_processor(tiny_tokenizer())
    fixed = make_processor(tiny_tokenizer(), image_resize=(84, 56))
    prompt = "<|image_pad|> Represent the given image."
    ours = fixed(text=[prompt], images=[image])
    by_hand = plain(text=[prompt], images=[image.resize((84, 56), Image.BICUBIC)])
    assert ours["image_grid_thw"].tolist() == [[1, 4, 6]]
    assert torch.equal(ours["pixel_values"], by_hand["pixel_values"])
    assert torch.equal(ours["input_ids"], by_hand["input_ids"])
    model = VLM2VecModel.from_backbone(random_backbone("tiny", seed=0))
    folder = write_model_folder(model, fixed, tmp_path / "fixed")
    reloaded = load_sentence_transformer(folder)
    assert reloaded[0].processor.image_resize == [84, 56]
    with pytest.raises(ValueError, match="width, height"):
        make_processor(tiny_tokenizer(), image_resize=(84,))
