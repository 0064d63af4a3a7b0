"""Phi-3.5-V parity with the reference VLM2Vec v1 embeddings (fixture `parity-phi3v-public`: reference code at
28fdbdd, transformers 4.52.3, fp32, CPU), 1e-5 max-abs; plus the converter's key accounting and the DoRA adapter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TOLERANCE, max_abs, run_isolated
from PIL import Image
from safetensors.torch import load_file, save_file

from vlm2vec_hf.hub_cards.adapter_conversion import AdapterConversionError
from vlm2vec_hf.hub_cards.convert import convert_backbone
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

FIXTURE = Path(__file__).parent / "fixtures" / "parity-phi3v-public"
_CASES_FILE = json.loads((FIXTURE / "cases.json").read_text())
CASES: dict[str, dict] = _CASES_FILE["cases"]
BATCHES: dict[str, dict] = _CASES_FILE["batches"]
MAX_LENGTH = _CASES_FILE["recipe"]["max_len"]  # 256
PHI3_V = get_family("phi3_v")

_P10_INSTRUCTION = "Represent the following passage:"
# (instruction, text, has_image): the reference's V1 prompt builder turns each into the case's stored prompt.
V1_STRUCTURED = {
    "p01": ("Represent the given image with the following question:", "What is in the image", True),
    "p02": ("Represent the given image for classification", None, True),
    "p03": (None, "A cat and a dog", False),
    "p04": (None, "A cat and a tiger", False),
    "p05": ("Find me an everyday image that matches the given caption:", "a red bus.", False),
    "p06": ("Represent the given image.", None, True),
    "p07": (None, None, True),
    "p09": ("Find a day-to-day image that looks similar to the provided image.", None, True),
    "p10": (_P10_INSTRUCTION, CASES["p10"]["text"][len(_P10_INSTRUCTION) + 1 :], False),
    "p12": ("Represent the given image.", None, True),
    "p13": (None, "a red bus", False),
    "p14": ("Represent the given document image.", None, True),
    "p15": (None, "  ", False),
}
V2_STRUCTURED = {
    "p08": ("Represent the given image for classification", None, True),
    "p11": ("Find me an everyday image that matches the given caption:", "Two dogs playing in the snow.", False),
}


def case_image_path(case_id: str) -> str | None:
    image = CASES[case_id]["image"]
    return str(FIXTURE / "images" / image) if image else None


def structured_input(case_id: str, text: str | None, has_image: bool):
    if not has_image:
        return text
    item = {"image": Image.open(case_image_path(case_id))}
    if text is not None:
        item["text"] = text
    return item


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "expected.safetensors")


@pytest.fixture(scope="module")
def phi_model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "vlm2vec-phi3v"
    return convert_backbone(FIXTURE / "backbone", out, max_length=MAX_LENGTH, dtype=torch.float32)


@pytest.fixture(scope="module")
def phi_auto(phi_model_dir):
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(phi_model_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(phi_model_dir, trust_remote_code=True)
    return model, processor


@pytest.fixture(scope="module")
def phi_sentence_model(phi_model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(phi_model_dir), trust_remote_code=True, device="cpu")


@pytest.mark.parametrize("prompt_format,table", [("v1", V1_STRUCTURED), ("v2", V2_STRUCTURED)])
def test_prompt_builder_places_image_tag_as_reference(prompt_format, table):
    for case_id, (instruction, text, has_image) in table.items():
        prompt = PHI3_V.format_prompt(text, instruction, int(has_image), prompt_format)
        assert prompt == CASES[case_id]["text"], case_id
    assert PHI3_V.format_prompt("caption", None, 2) == "<|image_1|> <|image_2|> caption"


def test_folder_uses_phi_classes(phi_model_dir, phi_auto):
    model, processor = phi_auto
    assert type(processor.image_processor).__name__ == "Phi3VImageProcessor"
    assert type(processor.tokenizer).__name__ == "TokenizersBackend"  # not LlamaTokenizer (README trap 3)
    assert type(model.vlm.language_model).__name__ == "Phi3Model"
    assert type(model.vlm.vision_embed_tokens.img_processor).__name__ == "CLIPVisionModel"
    for name in ("backbones.py", "backbone_common.py", "backbone_qwen2_vl.py", "backbone_phi3_v.py"):
        assert (phi_model_dir / name).is_file(), name
    assert json.loads((phi_model_dir / "config.json").read_text())["vlm_config"]["model_type"] == "phi3_v"


def test_tokenisation_and_pixels_match_reference(phi_auto):
    _, processor = phi_auto
    for case_id, case in CASES.items():
        image = case_image_path(case_id)
        encoding = processor(text=[case["text"]], images=[image] if image else None)
        assert encoding["input_ids"][0].tolist() == case["input_ids"], case_id
        if image:
            assert list(encoding["pixel_values"].shape) == case["pixel_values_shape"], case_id
            assert encoding["image_sizes"][0].tolist() == case["image_hd_size_hw"], case_id


def test_auto_model_single_cases(phi_auto, expected):
    model, processor = phi_auto
    for case_id, case in CASES.items():
        image = case_image_path(case_id)
        with torch.no_grad():
            embedding = model(**processor(text=[case["text"]], images=[image] if image else None)).embeddings[0]
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id


@pytest.mark.parametrize("batch_id", sorted(BATCHES))
@pytest.mark.parametrize("split_padded_batches", [True, False])
def test_auto_model_batches(phi_auto, expected, batch_id, split_padded_batches):
    model, processor = phi_auto
    case_ids = BATCHES[batch_id]["cases"]
    texts = [CASES[case]["text"] for case in case_ids]
    images = [path for case in case_ids if (path := case_image_path(case))]
    encoding = processor(text=texts, images=images)
    assert encoding["input_ids"].shape[1] == BATCHES[batch_id]["padded_len"]
    model.config.split_padded_batches = split_padded_batches
    try:
        with torch.no_grad():
            embeddings = model(**encoding).embeddings
    finally:
        model.config.split_padded_batches = True
    assert max_abs(embeddings, expected[f"batch/{batch_id}"]) < TOLERANCE
    singles = torch.stack([expected[f"case/{case}"] for case in case_ids])
    assert max_abs(embeddings, singles) < TOLERANCE


def test_sdpa_and_bf16_pass_through_to_both_towers(phi_model_dir, phi_auto, expected):
    from transformers import AutoModel

    _, processor = phi_auto
    case_ids = BATCHES["b3_mixed"]["cases"]
    encoding = processor(
        text=[CASES[case]["text"] for case in case_ids],
        images=[path for case in case_ids if (path := case_image_path(case))],
    )
    singles = torch.stack([expected[f"case/{case}"] for case in case_ids])
    sdpa = AutoModel.from_pretrained(phi_model_dir, trust_remote_code=True, attn_implementation="sdpa").eval()
    assert sdpa.vlm.language_model.config._attn_implementation == "sdpa"
    assert sdpa.vlm.vision_embed_tokens.img_processor.config._attn_implementation == "sdpa"
    with torch.no_grad():
        assert max_abs(sdpa(**encoding).embeddings, singles) < TOLERANCE
    half = AutoModel.from_pretrained(phi_model_dir, trust_remote_code=True, dtype=torch.bfloat16).eval()
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        embeddings = half(**encoding).embeddings
    assert embeddings.dtype == torch.bfloat16
    # bf16 keeps 8 mantissa bits: the unit vectors stay close to the fp32 reference, not equal.
    assert torch.nn.functional.cosine_similarity(embeddings.float(), singles).min().item() > 0.99


def test_left_padding_and_image_alone(phi_auto, expected):
    model, processor = phi_auto
    case_ids = BATCHES["b3_mixed"]["cases"]
    texts = [CASES[case]["text"] for case in case_ids]
    images = [path for case in case_ids if (path := case_image_path(case))]
    with torch.no_grad():
        left = model(**processor(text=texts, images=images, padding_side="left")).embeddings
        alone = model(**processor(images=[case_image_path("p07")])).embeddings[0]
    assert max_abs(left, expected["batch/b3_mixed"]) < TOLERANCE
    assert max_abs(alone, expected["case/p07"]) < TOLERANCE  # the image-alone prompt is "<|image_1|>"


def test_text_rows_truncate_and_image_rows_do_not(phi_auto):
    _, processor = phi_auto
    encoding = processor(text=[CASES["p10"]["text"], CASES["p01"]["text"]], images=[case_image_path("p01")])
    lengths = encoding["attention_mask"].sum(dim=1).tolist()
    assert lengths == [MAX_LENGTH, CASES["p01"]["n_tokens"]]  # 778 > max_length: image rows are never cut
    with pytest.raises(TypeError, match="unexpected keyword"):
        processor(text=["a"], not_a_keyword=1)


def test_sentence_transformer_structured_inputs(phi_sentence_model, expected):
    for case_id, (instruction, text, has_image) in V1_STRUCTURED.items():
        embedding = phi_sentence_model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id
    # One mixed batch through encode (sorted by length, one padded batch).
    case_ids = BATCHES["b4_mixed8"]["cases"]
    inputs = [
        {"image": Image.open(case_image_path(case)), "text": CASES[case]["text"]}
        if CASES[case]["image"]
        else CASES[case]["text"]
        for case in case_ids
    ]
    embeddings = phi_sentence_model.encode(inputs, batch_size=len(inputs), convert_to_tensor=True)
    assert max_abs(embeddings, expected["batch/b4_mixed8"]) < TOLERANCE


def test_v2_prompt_format(tmp_path, expected):
    from sentence_transformers import SentenceTransformer

    folder = convert_backbone(
        FIXTURE / "backbone", tmp_path / "v2", max_length=MAX_LENGTH, dtype=torch.float32, prompt_format="v2"
    )
    model = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    for case_id, (instruction, text, has_image) in V2_STRUCTURED.items():
        embedding = model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id


def test_unmapped_checkpoint_key_is_an_error_naming_it(tmp_path):
    base = tmp_path / "backbone"
    shutil.copytree(FIXTURE / "backbone", base)
    weights = load_file(base / "model.safetensors")
    weights["model.vision_embed_tokens.extra_thing.weight"] = torch.zeros(2)
    save_file(weights, base / "model.safetensors")
    with pytest.raises(KeyError, match=r"model\.vision_embed_tokens\.extra_thing\.weight"):
        convert_backbone(base, tmp_path / "out", dtype=torch.float32)


def test_loads_in_a_process_without_the_project(phi_model_dir, tmp_path):
    out = run_isolated(
        f"""
        import json, torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        cases = json.load(open({str(FIXTURE / "cases.json")!r}))["cases"]
        expected = load_file({str(FIXTURE / "expected.safetensors")!r})
        model, info = AutoModel.from_pretrained({str(phi_model_dir)!r}, trust_remote_code=True,
                                                output_loading_info=True)
        processor = AutoProcessor.from_pretrained({str(phi_model_dir)!r}, trust_remote_code=True)
        worst = 0.0
        for case_id in ("p01", "p03", "p09"):
            case = cases[case_id]
            images = [{str(FIXTURE / "images")!r} + "/" + case["image"]] if case["image"] else None
            with torch.no_grad():
                embedding = model(**processor(text=[case["text"]], images=images)).embeddings[0]
            worst = max(worst, (embedding - expected["case/" + case_id]).abs().max().item())
        print(json.dumps({{"worst": worst, "missing": sorted(info["missing_keys"]),
                          "unexpected": sorted(info["unexpected_keys"]),
                          "model_module": type(model).__module__}}))
        """,
        tmp_path,
    )
    assert out["missing"] == [] and out["unexpected"] == []
    assert out["model_module"].startswith("transformers_modules.")
    assert out["worst"] < TOLERANCE


def _adapter_folder(tmp_path: Path, weights_format: str) -> Path:
    """The published-style DoRA adapter as safetensors (as stored) or as a tensors-only `adapter_model.bin`."""
    if weights_format == "safetensors":
        return FIXTURE / "adapter"
    folder = tmp_path / "adapter-bin"
    folder.mkdir()
    shutil.copy(FIXTURE / "adapter" / "adapter_config.json", folder)
    torch.save(load_file(FIXTURE / "adapter" / "adapter_model.safetensors"), folder / "adapter_model.bin")
    return folder


@pytest.mark.parametrize("weights_format", ["safetensors", "bin"])
def test_published_dora_adapter_matches_reference(tmp_path, weights_format):
    from transformers import AutoModel, AutoProcessor

    expected_lora = load_file(FIXTURE / "expected_lora.safetensors")
    folder = convert_backbone(
        FIXTURE / "backbone",
        tmp_path / "lora",
        adapter=_adapter_folder(tmp_path, weights_format),
        max_length=MAX_LENGTH,
        dtype=torch.float32,
    )
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    for case_id, case in CASES.items():
        image = case_image_path(case_id)
        with torch.no_grad():
            embedding = model(**processor(text=[case["text"]], images=[image] if image else None)).embeddings[0]
        assert max_abs(embedding, expected_lora[f"case/{case_id}"]) < TOLERANCE, case_id
    for batch_id, batch in BATCHES.items():
        texts = [CASES[case]["text"] for case in batch["cases"]]
        images = [path for case in batch["cases"] if (path := case_image_path(case))]
        with torch.no_grad():
            embeddings = model(**processor(text=texts, images=images)).embeddings
        assert max_abs(embeddings, expected_lora[f"batch/{batch_id}"]) < TOLERANCE, batch_id


def test_adapter_adapts_the_clip_tower_and_foreign_keys_are_errors(tmp_path):
    from vlm2vec_hf.hub_cards.adapter_conversion import merge_adapter_into_model, read_adapter
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel

    model = VLM2VecModel.from_backbone(FIXTURE / "backbone", dtype=torch.float32)
    merged = merge_adapter_into_model(model, read_adapter(FIXTURE / "adapter"), PHI3_V.adapter_key_mapping)
    assert len(merged) == 16  # 4 LLM + 4 CLIP modules per layer, 2 layers each (fixture README)
    assert "vlm.vision_embed_tokens.img_processor.encoder.layers.1.self_attn.out_proj.weight" in merged
    assert "vlm.language_model.layers.0.self_attn.qkv_proj.weight" in merged
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(FIXTURE / "adapter" / "adapter_config.json", foreign)
    weights = load_file(FIXTURE / "adapter" / "adapter_model.safetensors")
    weights["base_model.model.model.vision_embed_tokens.img_projection.0.lora_A.weight"] = torch.zeros(8, 128)
    save_file(weights, foreign / "adapter_model.safetensors")
    with pytest.raises(AdapterConversionError, match=r"img_projection\.0"):
        merge_adapter_into_model(model, read_adapter(foreign), PHI3_V.adapter_key_mapping)


@pytest.mark.parametrize("mini_batch_size", [0, 2])
def test_training_loss_and_gradients_match_reference(phi_model_dir, mini_batch_size):
    """In-batch contrastive loss of loss.json's 6 pairs, plain and with GradCache mini-batches (which slice the
    `(n_images, crops, 3, 336, 336)` pixel values per row), and every parameter's gradient norm."""
    from sentence_transformers import SentenceTransformer
    from test_loss_parity import expected_forwards, recorded_forwards

    from vlm2vec_hf.modeling_vlm2vec.modeling_phi3_v import map_checkpoint_key
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import build_loss

    reference = json.loads((FIXTURE / "loss.json").read_text())
    model = SentenceTransformer(str(phi_model_dir), trust_remote_code=True, device="cpu")
    model[0].padding_side = reference["padding_side"]
    model.train()

    def item(case_id: str):
        image = case_image_path(case_id)
        return {"image": Image.open(image), "text": CASES[case_id]["text"]} if image else CASES[case_id]["text"]

    loss_fn = build_loss(model, TrainConfig(temperature=reference["temperature"], gc_mini_batch_size=mini_batch_size))
    queries = model.preprocess([item(pair["query"]) for pair in reference["pairs"]])
    targets = model.preprocess([item(pair["target"]) for pair in reference["pairs"]])
    model.zero_grad()
    with recorded_forwards(model) as events:
        loss = loss_fn([queries, targets], labels=None)
        loss.backward()
    batch = len(queries["input_ids"])
    assert [(kind, rows) for kind, rows, _ in events] == expected_forwards(mini_batch_size, batch=batch)
    assert abs(loss.item() - reference["loss_plain"]) / reference["loss_plain"] < 1e-5
    grads = {name.split("vlm.", 1)[1]: p.grad for name, p in model.named_parameters() if p.grad is not None}
    norm = torch.stack([grad.double().pow(2).sum() for grad in grads.values()]).sum().sqrt().item()
    assert abs(norm - reference["grad_l2_norm_plain"]) / reference["grad_l2_norm_plain"] < 1e-5
    per_parameter = {map_checkpoint_key(name): value for name, value in reference["grad_l2_norm_per_parameter"].items()}
    assert set(per_parameter) == set(grads)  # the same parameters get gradients (CLIP's last layer does not)
    for name, value in per_parameter.items():
        assert abs(grads[name].norm().item() - value) <= 1e-4 * max(value, 1.0), name


def test_training_lora_adapts_the_reference_modules(phi_model_dir):
    """`vlm2vec train --lora` on Phi-3.5-V adapts what the v1 reference adapts: the LLM's fused projections and the
    CLIP tower's q/k/v/out_proj (16 modules in the fixture), with the default target list."""
    from vlm2vec_hf.hub_cards.adapter_conversion import rename_adapter_key
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import load_model

    model = load_model(TrainConfig(model=str(phi_model_dir), lora=True, lora_r=8))
    adapted = {name.removeprefix("model.") for name, module in model[0].named_modules() if hasattr(module, "lora_A")}
    reference = {
        rename_adapter_key(f"{name}.lora_A.weight", PHI3_V.adapter_key_mapping).removesuffix(".lora_A.weight")
        for name in _CASES_FILE["lora"]["adapted_modules"]
    }
    assert adapted == reference and len(adapted) == 16


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


def test_too_extreme_aspect_ratio_is_an_input_error(phi_auto):
    _, processor = phi_auto
    with pytest.raises(ValueError, match="image 0: .*too extreme") as error:
        processor(images=[Image.new("RGB", (3000, 2))])
    assert type(error.value).__name__ == "ImageInputError"  # the folder's own class (remote code)
