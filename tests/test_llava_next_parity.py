"""LLaVA-Next parity with the reference VLM2Vec v1 embeddings (fixture `parity-llava-next-public`: reference code at
28fdbdd, transformers 4.52.3, fp32, CPU), 1e-5 max-abs per row; every row of every batch against its single-case
embedding (the reference gets rows after a text row wrong and crashes on mixed patch counts); the converter's key
layouts, the DoRA adapter, the loss, GradCache mini-batches and `init` / `train` / `eval` on a random LLaVA-Next."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TOLERANCE, max_abs, run_isolated
from PIL import Image
from safetensors.torch import load_file, save_file

from vlm2vec_hf.cli import main
from vlm2vec_hf.hub_cards.convert import convert_backbone
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

FIXTURE = Path(__file__).parent / "fixtures" / "parity-llava-next-public"
_CASES_FILE = json.loads((FIXTURE / "cases.json").read_text())
CASES: dict[str, dict] = _CASES_FILE["cases"]
# The reference's batches plus the one it crashes on: ours must give every row its single-case embedding.
BATCHES: dict[str, dict] = {**_CASES_FILE["batches"], **_CASES_FILE["batches_failing_in_reference"]}
REFERENCE_ROW_ERRORS = _CASES_FILE["batch_vs_single_max_abs_diff"]
MAX_LENGTH = _CASES_FILE["recipe"]["max_len"]  # 4096
LLAVA_NEXT = get_family("llava_next")

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
    "p14": ("Represent the given image for classification", None, True),
    "p15": (None, "  ", False),
}
V2_STRUCTURED = {
    "p08": ("Represent the given image for classification", None, True),
    "p11": ("Find me an everyday image that matches the given caption:", "Two dogs playing in the snow.", False),
}
# Hub / vendored checkpoint names -> our `LlavaNextModel` names (an independent spelling of what transformers maps).
CHECKPOINT_TO_OURS = (
    (r"^language_model\.model\.", "language_model."),
    (r"^vision_tower\.vision_model\.", "vision_tower."),
)


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


def batch_inputs(case_ids: list[str]) -> tuple[list[str], list[str]]:
    return [CASES[case]["text"] for case in case_ids], [path for case in case_ids if (path := case_image_path(case))]


def ours(checkpoint_key: str) -> str:
    for pattern, replacement in CHECKPOINT_TO_OURS:
        checkpoint_key = re.sub(pattern, replacement, checkpoint_key)
    return checkpoint_key


def singles(expected: dict[str, torch.Tensor], case_ids: list[str]) -> torch.Tensor:
    return torch.stack([expected[f"case/{case}"] for case in case_ids])


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "expected.safetensors")


@pytest.fixture(scope="module")
def llava_model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "vlm2vec-llava-next"
    return convert_backbone(FIXTURE / "backbone", out, max_length=MAX_LENGTH, dtype=torch.float32)


@pytest.fixture(scope="module")
def llava_auto(llava_model_dir):
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(llava_model_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(llava_model_dir, trust_remote_code=True)
    return model, processor


@pytest.fixture(scope="module")
def llava_sentence_model(llava_model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(llava_model_dir), trust_remote_code=True, device="cpu")


@pytest.mark.parametrize("prompt_format,table", [("v1", V1_STRUCTURED), ("v2", V2_STRUCTURED)])
def test_prompt_builder_places_image_token_as_reference(prompt_format, table):
    for case_id, (instruction, text, has_image) in table.items():
        assert LLAVA_NEXT.format_prompt(text, instruction, int(has_image), prompt_format) == CASES[case_id]["text"]
    # MMEB stores the Phi-3 tag; a complete prompt keeps its place, with LLaVA's token.
    assert LLAVA_NEXT.format_prompt("<|image_1|> Represent the given image.", None, 1) == CASES["p06"]["text"]


def test_folder_uses_stock_llava_next_classes(llava_model_dir, llava_auto):
    from transformers.models.llava_next import LlavaNextImageProcessorPil

    model, processor = llava_auto
    assert type(model.vlm).__name__ == "LlavaNextModel" and type(model.vlm).__module__.startswith("transformers.")
    assert isinstance(processor.image_processor, LlavaNextImageProcessorPil)  # the PIL pipeline, not torchvision
    assert (processor.image_processor.patch_size, processor.image_processor.num_additional_image_tokens) == (14, 1)
    assert processor.tokenizer.padding_side == "left"
    for name in ("backbones.py", "backbone_common.py", "backbone_llava_next.py"):
        assert (llava_model_dir / name).is_file(), name
    assert json.loads((llava_model_dir / "config.json").read_text())["vlm_config"]["model_type"] == "llava_next"
    assert model.config.embedding_dim == 64


def test_tokenisation_and_pixels_match_reference(llava_auto):
    _, processor = llava_auto
    for case_id, case in CASES.items():
        image = case_image_path(case_id)
        encoding = processor(text=[case["text"]], images=[image] if image else None)
        assert encoding["input_ids"][0].tolist() == case["input_ids"], case_id  # <image> expansion, BOS, truncation
        if image:
            assert list(encoding["pixel_values"].shape) == case["pixel_values_shape"], case_id
            assert encoding["image_sizes"][0].tolist() == case["image_sizes_hw"], case_id


def test_auto_model_single_cases(llava_auto, expected):
    model, processor = llava_auto
    for case_id, case in CASES.items():
        image = case_image_path(case_id)
        with torch.no_grad():
            embedding = model(**processor(text=[case["text"]], images=[image] if image else None)).embeddings[0]
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id


# Both paths: length-split sub-batches (each with its rows' images) and one padded batch. The text-only batch runs
# split only: whole, its 4096-token row makes every row pay a 4096 x 4096 mask, and it holds no images.
BATCH_RUNS = [
    (batch, split) for batch in sorted(BATCHES) for split in (True, False) if (batch, split) != ("b2_text", False)
]


@pytest.mark.parametrize("batch_id,split_padded_batches", BATCH_RUNS)
def test_auto_model_batches_are_row_correct(llava_auto, expected, batch_id, split_padded_batches):
    """Every row of every reference batch (and of the one the reference crashes on) equals its single case, also
    the image rows after a text row that the reference gets wrong by 0.07-0.41 (the fixture's record of it)."""
    model, processor = llava_auto
    case_ids = BATCHES[batch_id]["cases"]
    texts, images = batch_inputs(case_ids)
    encoding = processor(text=texts, images=images)
    if "padded_len" in BATCHES[batch_id]:
        assert encoding["input_ids"].shape[1] == BATCHES[batch_id]["padded_len"]
    model.config.split_padded_batches = split_padded_batches
    try:
        with torch.no_grad():
            embeddings = model(**encoding).embeddings
    finally:
        model.config.split_padded_batches = True
    per_row = (embeddings - singles(expected, case_ids)).abs().max(dim=1).values
    assert per_row.max().item() < TOLERANCE, per_row.tolist()
    if f"batch/{batch_id}" in expected:
        reference = (expected[f"batch/{batch_id}"] - singles(expected, case_ids)).abs().max(dim=1).values
        assert reference.tolist() == pytest.approx(REFERENCE_ROW_ERRORS[batch_id]["per_row"], abs=1e-7)
        wrong = {"b4_mixed": [2, 3], "b5_text_first": [1, 2]}.get(batch_id, [])
        assert [row for row, error in enumerate(reference.tolist()) if error > 0.05] == wrong


def test_padding_side_and_image_alone(llava_auto, expected):
    model, processor = llava_auto
    case_ids = BATCHES["b5_text_first"]["cases"]
    texts, images = batch_inputs(case_ids)
    with torch.no_grad():
        right = model(**processor(text=texts, images=images, padding_side="right")).embeddings
        alone = model(**processor(images=[case_image_path("p07")])).embeddings[0]
    assert max_abs(right, singles(expected, case_ids)) < TOLERANCE
    assert max_abs(alone, expected["case/p07"]) < TOLERANCE  # the image-alone prompt is "<image>"


def test_rgba_alpha_is_dropped_not_composited(llava_auto, expected):
    """transformers 4.52 dropped alpha (the reference); 5.x composites on white (0.17 off). A semi-transparent
    copy of p02's image must embed like p02."""
    model, processor = llava_auto
    rgb = Image.open(case_image_path("p02")).convert("RGB")
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, (rgb.height, rgb.width), dtype=np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    with torch.no_grad():
        embedding = model(**processor(text=[CASES["p02"]["text"]], images=[rgba])).embeddings[0]
    assert max_abs(embedding, expected["case/p02"]) < TOLERANCE


@pytest.mark.parametrize("height,width", [(55, 176), (88, 55), (88, 99), (100, 150), (400, 600), (20, 36), (61, 97)])
def test_image_token_count_matches_stock_processor_and_features(llava_auto, height, width):
    """Our `<image>` count equals stock `LlavaNextProcessor`'s (an independent implementation); at (55, 176),
    (88, 55), (88, 99) the reference's `int()` unpadding gives fewer features and crashes, ours embeds."""
    from transformers import LlavaNextProcessor

    model, processor = llava_auto
    image = Image.new("RGB", (width, height), (120, 30, 200))
    stock = LlavaNextProcessor(
        image_processor=processor.image_processor,
        tokenizer=processor.tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    stock_count = stock(text=["<image>"], images=[image])["input_ids"][0].count(processor.image_token_id)
    assert processor.num_image_tokens(image) == stock_count
    if (height, width) in ((55, 176), (88, 55), (88, 99)):
        encoding = processor(text=["<image> a", "text first"][::-1], images=[image])
        with torch.no_grad():
            embeddings = model(**encoding).embeddings  # stock LlavaNextModel checks features == tokens
        assert torch.isfinite(embeddings).all()


def test_image_rows_that_do_not_fit_max_length_are_an_error_naming_the_row(llava_auto, llava_sentence_model):
    _, processor = llava_auto
    with pytest.raises(ValueError, match=r"row 1: its images need 1464 image tokens but 99 fit in max_length=100"):
        processor(text=["a red bus", CASES["p01"]["text"]], images=[case_image_path("p01")], max_length=100)
    llava_sentence_model.max_seq_length = 100
    try:
        with pytest.raises(ValueError, match=r"chelsea_150x100\.png.*its images need 1464 image tokens"):
            llava_sentence_model.encode([case_image_path("p01")])
    finally:
        llava_sentence_model.max_seq_length = MAX_LENGTH


def test_sentence_transformer_inputs_and_mixed_batches(llava_sentence_model, expected):
    # One case of each kind (every case runs alone through AutoModel above): {image, text} + prompt, image +
    # prompt, image alone, long text + prompt (truncated at 4096), plain text, the whitespace-only text.
    for case_id in ("p01", "p02", "p07", "p10", "p13", "p15"):
        instruction, text, has_image = V1_STRUCTURED[case_id]
        embedding = llava_sentence_model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id
    # Every batch through encode (sorted by length, one padded batch), raw prompts with <image> as text.
    for batch_id, batch in BATCHES.items():
        inputs = [
            {"image": Image.open(case_image_path(case)), "text": CASES[case]["text"]}
            if CASES[case]["image"]
            else CASES[case]["text"]
            for case in batch["cases"]
        ]
        embeddings = llava_sentence_model.encode(inputs, batch_size=len(inputs), convert_to_tensor=True)
        assert max_abs(embeddings, singles(expected, batch["cases"])) < TOLERANCE, batch_id
    # Structured inputs of three kinds in one batch: text, an image path alone, {image, text}.
    question = "Represent the given image with the following question: What is in the image"
    mixed = ["a red bus", case_image_path("p07"), {"image": case_image_path("p01"), "text": question}]
    embeddings = llava_sentence_model.encode(mixed, batch_size=3, convert_to_tensor=True)
    assert max_abs(embeddings, singles(expected, ["p13", "p07", "p01"])) < TOLERANCE


def test_v2_prompt_format(tmp_path, expected):
    from sentence_transformers import SentenceTransformer

    folder = convert_backbone(
        FIXTURE / "backbone", tmp_path / "v2", max_length=MAX_LENGTH, dtype=torch.float32, prompt_format="v2"
    )
    model = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    for case_id, (instruction, text, has_image) in V2_STRUCTURED.items():
        embedding = model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id


def test_loads_in_a_process_without_the_project(llava_model_dir, tmp_path):
    out = run_isolated(
        f"""
        import json, torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        cases = json.load(open({str(FIXTURE / "cases.json")!r}))["cases"]
        expected = load_file({str(FIXTURE / "expected.safetensors")!r})
        model, info = AutoModel.from_pretrained({str(llava_model_dir)!r}, trust_remote_code=True,
                                                output_loading_info=True)
        processor = AutoProcessor.from_pretrained({str(llava_model_dir)!r}, trust_remote_code=True)
        case_ids = ["p03", "p02", "p14"]
        images = [{str(FIXTURE / "images")!r} + "/" + cases[c]["image"] for c in case_ids if cases[c]["image"]]
        with torch.no_grad():
            embeddings = model(**processor(text=[cases[c]["text"] for c in case_ids], images=images)).embeddings
        rows = torch.stack([expected["case/" + c] for c in case_ids])
        print(json.dumps({{"worst": (embeddings - rows).abs().max().item(), "missing": sorted(info["missing_keys"]),
                          "unexpected": sorted(info["unexpected_keys"]),
                          "image_processor": type(processor.image_processor).__module__}}))
        """,
        tmp_path,
    )
    assert out["missing"] == [] and out["unexpected"] == []
    assert out["image_processor"].startswith("transformers_modules.")  # the folder's own backbone_llava_next.py
    assert out["worst"] < TOLERANCE


def _write_layout(tmp_path: Path, name: str, rename, extra: dict[str, torch.Tensor] | None = None) -> Path:
    folder = tmp_path / name
    shutil.copytree(FIXTURE / "backbone", folder)
    weights = load_file(FIXTURE / "backbone" / "model.safetensors")
    weights = {rename(key): value for key, value in weights.items()} | (extra or {})
    save_file(weights, folder / "model.safetensors")
    return folder


def test_both_checkpoint_layouts_load_and_unmapped_keys_are_errors(tmp_path):
    """The llava-hf Hub layout (= the vendored class's names) and the transformers 4.52+ module layout
    (`model.language_model.*`, `model.vision_tower.vision_model.*`, `lm_head`) load the same weights."""
    from vlm2vec_hf.modeling_vlm2vec.backbone_llava_next import load_llava_next_checkpoint

    def module_layout(key: str) -> str:
        if key.startswith("language_model.lm_head."):
            return key.removeprefix("language_model.")
        if key.startswith("language_model.model."):
            return "model.language_model." + key.removeprefix("language_model.model.")
        return "model." + key

    weights = load_file(FIXTURE / "backbone" / "model.safetensors")
    wanted = {ours(key): value for key, value in weights.items() if "lm_head" not in key}
    for folder in (FIXTURE / "backbone", _write_layout(tmp_path, "module-layout", module_layout)):
        state = load_llava_next_checkpoint(folder, dtype=torch.float32).state_dict()
        assert set(state) == set(wanted), folder
        assert all(torch.equal(state[name], value) for name, value in wanted.items()), folder

    foreign = _write_layout(
        tmp_path, "foreign", lambda key: key, {"multi_modal_projector.linear_9.weight": torch.zeros(2)}
    )
    with pytest.raises(KeyError, match=r"multi_modal_projector\.linear_9\.weight"):
        convert_backbone(foreign, tmp_path / "out", dtype=torch.float32)


def test_published_dora_adapter_matches_reference(tmp_path):
    """`vlm2vec convert --base B --adapter A`: the published (vendored-class) DoRA keys, 18 modules, merged."""
    from transformers import AutoModel, AutoProcessor

    from vlm2vec_hf.hub_cards.adapter_conversion import merge_adapter_into_model, read_adapter
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel

    base_model = VLM2VecModel.from_backbone(FIXTURE / "backbone", dtype=torch.float32)
    merged = merge_adapter_into_model(base_model, read_adapter(FIXTURE / "adapter"), LLAVA_NEXT.adapter_key_mapping)
    assert len(merged) == len(_CASES_FILE["lora"]["adapted_modules"]) == 18
    assert "vlm.vision_tower.encoder.layers.1.self_attn.out_proj.weight" in merged
    assert "vlm.language_model.layers.0.mlp.down_proj.weight" in merged

    expected_lora = load_file(FIXTURE / "expected_lora.safetensors")
    folder = tmp_path / "lora"
    args = ["convert", "--base", str(FIXTURE / "backbone"), "--adapter", str(FIXTURE / "adapter"), "--out", str(folder)]
    assert main([*args, "--max-length", str(MAX_LENGTH), "--dtype", "float32"]) == 0
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    for case_id, case in CASES.items():
        image = case_image_path(case_id)
        with torch.no_grad():
            embedding = model(**processor(text=[case["text"]], images=[image] if image else None)).embeddings[0]
        assert max_abs(embedding, expected_lora[f"case/{case_id}"]) < TOLERANCE, case_id
    for batch_id, batch in BATCHES.items():
        texts, images = batch_inputs(batch["cases"])
        with torch.no_grad():
            embeddings = model(**processor(text=texts, images=images)).embeddings
        rows = torch.stack([expected_lora[f"case/{case}"] for case in batch["cases"]])
        assert max_abs(embeddings, rows) < TOLERANCE, batch_id


def test_preset_and_processor_source(tmp_path, capsys):
    """`--preset VLM2Vec-LLaVa-Next` (full checkpoint, 1344 x 1344 pre-resize, max_length 4096; the processor from
    llava-hf's repo, here `--processor`): the family is detected from `--base`."""
    from vlm2vec_hf.hub_cards.presets import get_preset

    preset = get_preset("VLM2Vec-LLaVa-Next")
    assert (preset.adapter_repo, preset.processor_source) == (None, "llava-hf/llava-v1.6-mistral-7b-hf")
    base = tmp_path / "weights-only"  # as a checkpoint without processor files: they must come from elsewhere
    base.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(FIXTURE / "backbone" / name, base)
    out = tmp_path / "preset"
    args = ["convert", "--preset", "VLM2Vec-LLaVa-Next", "--base", str(base), "--out", str(out), "--dtype", "float32"]
    assert main(args) == 2  # offline: the preset's processor repo cannot be fetched
    assert "llava-hf/llava-v1.6-mistral-7b-hf" in capsys.readouterr().err
    assert main([*args, "--processor", str(FIXTURE / "backbone")]) == 0
    processor_config = json.loads((out / "processor_config.json").read_text())
    assert processor_config["image_resize"] == [1344, 1344] and processor_config["max_length"] == 4096
    assert processor_config["backbone_model_type"] == "llava_next"
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    encoding = processor(text=["<image> x"], images=[case_image_path("p02")])
    assert list(encoding["pixel_values"].shape) == [1, 5, 3, 336, 336]  # 1344 x 1344 -> the 672 x 672 grid
    assert encoding["input_ids"][0].tolist().count(processor.image_token_id) == 576 + 48 * 48 + 48


@pytest.mark.parametrize("mini_batch_size", [0, 2])
def test_training_loss_and_gradients_match_reference(llava_model_dir, mini_batch_size):
    """In-batch contrastive loss of loss.json's 6 pairs (left padding, train mode), plain and with GradCache
    mini-batches (which slice the `(n_images, patches, 3, 336, 336)` pixel values and `image_sizes` per row), and
    every parameter's gradient norm."""
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import build_loss

    reference = json.loads((FIXTURE / "loss.json").read_text())
    model = SentenceTransformer(str(llava_model_dir), trust_remote_code=True, device="cpu")
    model[0].padding_side = reference["padding_side"]
    model.train()

    def item(case_id: str):
        image = case_image_path(case_id)
        return {"image": Image.open(image), "text": CASES[case_id]["text"]} if image else CASES[case_id]["text"]

    loss_fn = build_loss(model, TrainConfig(temperature=reference["temperature"], gc_mini_batch_size=mini_batch_size))
    queries = model.preprocess([item(pair["query"]) for pair in reference["pairs"]])
    targets = model.preprocess([item(pair["target"]) for pair in reference["pairs"]])
    model.zero_grad()
    loss = loss_fn([queries, targets], labels=None)
    loss.backward()
    assert abs(loss.item() - reference["loss_plain"]) / reference["loss_plain"] < 1e-5
    grads = {name.split("vlm.", 1)[1]: p.grad for name, p in model.named_parameters() if p.grad is not None}
    norm = torch.stack([grad.double().pow(2).sum() for grad in grads.values()]).sum().sqrt().item()
    assert abs(norm - reference["grad_l2_norm_plain"]) / reference["grad_l2_norm_plain"] < 1e-5
    per_parameter = {ours(name): value for name, value in reference["grad_l2_norm_per_parameter"].items()}
    assert set(per_parameter) == set(grads)  # the same parameters get gradients (CLIP's last layer does not)
    for name, value in per_parameter.items():
        assert abs(grads[name].norm().item() - value) <= 1e-4 * max(value, 1.0), name


def test_gradcache_mini_batches_split_image_and_text_rows(llava_sentence_model, expected):
    """sentence-transformers' `_create_minibatch` cuts `pixel_values` / `image_sizes` by `num_images_per_sample`;
    every mini-batch of a text / 3-patch / 5-patch mix embeds its rows as alone."""
    from sentence_transformers.base.losses.gradcache import _create_minibatch

    case_ids = ["p13", "p02", "p14", "p03", "p09"]
    features = llava_sentence_model.preprocess(
        [
            {"image": case_image_path(c), "text": CASES[c]["text"]} if CASES[c]["image"] else CASES[c]["text"]
            for c in case_ids
        ]
    )
    assert features["num_images_per_sample"].tolist() == [0, 1, 1, 0, 1]
    assert list(features["pixel_values"].shape) == [3, 5, 3, 336, 336]
    for begin, end, sizes in ((0, 2, [[80, 120]]), (2, 4, [[400, 600]]), (4, 5, [[36, 20]])):
        mini = _create_minibatch(features, begin, end)  # [text, 3-patch image], [5-patch image, text], [image]
        assert mini["image_sizes"].tolist() == sizes and mini["pixel_values"].shape[0] == 1
        with torch.no_grad():
            embeddings = llava_sentence_model[0](dict(mini))["sentence_embedding"]
        assert max_abs(embeddings, singles(expected, case_ids[begin:end])) < TOLERANCE, (begin, end)
    text_only = _create_minibatch(llava_sentence_model.preprocess(["a red bus", "  "]), 0, 2)
    assert "pixel_values" not in text_only


def test_training_lora_adapts_the_reference_modules(llava_model_dir):
    """`vlm2vec train --lora` with the default target list adapts what the v1 reference adapts on LLaVA-Next:
    Mistral's q/k/v/o/down_proj and CLIP's q/k/v/out_proj (18 modules), not gate/up_proj nor the projector."""
    from vlm2vec_hf.hub_cards.adapter_conversion import rename_adapter_key
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import load_model

    model = load_model(TrainConfig(model=str(llava_model_dir), lora=True, lora_r=8))
    adapted = {name.removeprefix("model.") for name, module in model[0].named_modules() if hasattr(module, "lora_A")}
    reference = {
        rename_adapter_key(f"{name}.lora_A.weight", LLAVA_NEXT.adapter_key_mapping).removesuffix(".lora_A.weight")
        for name in _CASES_FILE["lora"]["adapted_modules"]
    }
    assert adapted == reference and len(adapted) == 18


@pytest.fixture(scope="module")
def random_llava_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("init") / "llava"
    assert main(["init", "--out", str(out), "--family", "llava_next"]) == 0
    return out


def test_init_writes_a_random_llava_next(random_llava_dir):
    from sentence_transformers import SentenceTransformer

    config = json.loads((random_llava_dir / "config.json").read_text())["vlm_config"]
    assert config["model_type"] == "llava_next" and config["vision_config"]["model_type"] == "clip_vision_model"
    assert config["text_config"]["model_type"] == "mistral" and config["text_config"]["hidden_size"] == 64
    model = SentenceTransformer(str(random_llava_dir), trust_remote_code=True, device="cpu")
    assert type(model[0].model.vlm).__name__ == "LlavaNextModel"
    inputs = ["a red bus", case_image_path("p14"), {"image": case_image_path("p01"), "text": "What is in the image"}]
    together = model.encode(inputs, batch_size=3, convert_to_tensor=True)
    alone = torch.cat([model.encode([item], convert_to_tensor=True) for item in inputs])
    assert together.shape == (3, 64) and max_abs(together, alone) < TOLERANCE


def test_train_a_random_llava_next_with_gradcache(random_llava_dir, mini_mmeb, tmp_path):
    """`vlm2vec train` (one step of 4 pairs) with GradCache mini-batches of 2 over image and text rows: the weights
    move."""
    from sentence_transformers import SentenceTransformer

    run = tmp_path / "run"
    train = ["train", "--model", str(random_llava_dir), "--data", str(mini_mmeb / "train"), "--image-dir"]
    train += [str(mini_mmeb / "images"), "--output-dir", str(run), "--max-steps", "1", "--learning-rate", "1e-2"]
    train += ["--per-device-train-batch-size", "4", "--gc-mini-batch-size", "2", "--warmup-steps", "0"]
    train += ["--save-steps", "1000", "--seed", "7", "--num-sample-per-subset", "8"]
    train += ["--subsets", "Digits", "Digits_t2i"]  # image queries -> text, text queries -> images
    assert main(train) == 0

    def load(folder: Path) -> SentenceTransformer:
        return SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")

    inputs = ["a red bus", case_image_path("p02")]
    assert abs(load(run / "final").encode(inputs) - load(random_llava_dir).encode(inputs)).max() > 1e-3


def test_eval_a_random_llava_next(random_llava_dir, mini_mmeb, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", "--model", str(random_llava_dir), "--data", str(mini_mmeb / "eval"), "--subsets", "Faces"]
    assert main([*args, "--image-dir", str(mini_mmeb / "images"), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["datasets"]) == {"Faces"}
    assert results["encoding"]["encoded"] == results["encoding"]["unique_items"] > 50
