"""LLaVA-Next behaviour that is not embedding parity (that is in test_family_parity.py, fixture
`parity-llava-next-public`): the reference's own wrong batch rows, the folder's stock classes, the image-alone prompt,
RGBA, image token counts against stock transformers, rows that do not fit, both checkpoint layouts, the preset,
GradCache mini-batches, and `init` / `train` / `eval` on a random LLaVA-Next."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import LLAVA_NEXT as FIXTURE_DATA
from helpers import TOLERANCE, llava_checkpoint_to_ours, max_abs
from PIL import Image
from safetensors.torch import load_file, save_file

from vlm2vec_hf.cli import main
from vlm2vec_hf.hub_cards.convert import convert_backbone

FIXTURE = FIXTURE_DATA.root
_CASES_FILE = FIXTURE_DATA.data
CASES = FIXTURE_DATA.cases
BATCHES = FIXTURE_DATA.batches
MAX_LENGTH = FIXTURE_DATA.recipe["max_len"]  # 4096
case_image_path = FIXTURE_DATA.image_path


def singles(expected: dict[str, torch.Tensor], case_ids: list[str]) -> torch.Tensor:
    return FIXTURE_DATA.singles(case_ids, expected)


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return FIXTURE_DATA.expected


def test_mmeb_phi_tag_keeps_its_place_with_llavas_token():
    from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

    # MMEB stores the Phi-3 tag; a complete prompt keeps its place, with LLaVA's token.
    assert (
        get_family("llava_next").format_prompt("<|image_1|> Represent the given image.", None, 1)
        == CASES["p06"]["text"]
    )


def test_the_reference_gets_image_rows_after_a_text_row_wrong(expected):
    """The fixture's record of the reference's batches (the parity suite compares our rows with single cases
    instead): rows after a text row are off by 0.07-0.41."""
    errors = _CASES_FILE["batch_vs_single_max_abs_diff"]
    for batch_id, batch in _CASES_FILE["batches"].items():
        reference = (expected[f"batch/{batch_id}"] - singles(expected, batch["cases"])).abs().max(dim=1).values
        assert reference.tolist() == pytest.approx(errors[batch_id]["per_row"], abs=1e-7)
        wrong = {"b4_mixed": [2, 3], "b5_text_first": [1, 2]}.get(batch_id, [])
        assert [row for row, error in enumerate(reference.tolist()) if error > 0.05] == wrong


def test_image_alone_prompt(llava_next_auto, expected):
    model, processor = llava_next_auto
    with torch.no_grad():
        alone = model(**processor(images=[case_image_path("p07")])).embeddings[0]
    assert max_abs(alone, expected["case/p07"]) < TOLERANCE  # the image-alone prompt is "<image>"


def test_structured_inputs_of_three_kinds_in_one_batch(llava_next_sentence_model, expected):
    # text, an image path alone, {image, text}
    question = "Represent the given image with the following question: What is in the image"
    mixed = ["a red bus", case_image_path("p07"), {"image": case_image_path("p01"), "text": question}]
    embeddings = llava_next_sentence_model.encode(mixed, batch_size=3, convert_to_tensor=True)
    assert max_abs(embeddings, singles(expected, ["p13", "p07", "p01"])) < TOLERANCE


def test_folder_uses_stock_llava_next_classes(llava_next_model_dir, llava_next_auto):
    from transformers.models.llava_next import LlavaNextImageProcessorPil

    model, processor = llava_next_auto
    assert type(model.vlm).__name__ == "LlavaNextModel" and type(model.vlm).__module__.startswith("transformers.")
    assert isinstance(processor.image_processor, LlavaNextImageProcessorPil)  # the PIL pipeline, not torchvision
    assert (processor.image_processor.patch_size, processor.image_processor.num_additional_image_tokens) == (14, 1)
    assert processor.tokenizer.padding_side == "left"
    for name in ("backbones.py", "backbone_common.py", "backbone_llava_next.py"):
        assert (llava_next_model_dir / name).is_file(), name
    assert json.loads((llava_next_model_dir / "config.json").read_text())["vlm_config"]["model_type"] == "llava_next"
    assert model.config.embedding_dim == 64


def test_rgba_alpha_is_dropped_not_composited(llava_next_auto, expected):
    """transformers 4.52 dropped alpha (the reference); 5.x composites on white (0.17 off). A semi-transparent
    copy of p02's image must embed like p02."""
    model, processor = llava_next_auto
    rgb = Image.open(case_image_path("p02")).convert("RGB")
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, (rgb.height, rgb.width), dtype=np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    with torch.no_grad():
        embedding = model(**processor(text=[CASES["p02"]["text"]], images=[rgba])).embeddings[0]
    assert max_abs(embedding, expected["case/p02"]) < TOLERANCE


@pytest.mark.parametrize("height,width", [(55, 176), (88, 55), (88, 99), (100, 150), (400, 600), (20, 36), (61, 97)])
def test_image_token_count_matches_stock_processor_and_features(llava_next_auto, height, width):
    """Our `<image>` count equals stock `LlavaNextProcessor`'s (an independent implementation); at (55, 176),
    (88, 55), (88, 99) the reference's `int()` unpadding gives fewer features and crashes, ours embeds."""
    from transformers import LlavaNextProcessor

    model, processor = llava_next_auto
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


def test_image_rows_that_do_not_fit_max_length_are_an_error_naming_the_row(llava_next_auto, llava_next_sentence_model):
    _, processor = llava_next_auto
    with pytest.raises(ValueError, match=r"row 1: its images need 1464 image tokens but 99 fit in max_length=100"):
        processor(text=["a red bus", CASES["p01"]["text"]], images=[case_image_path("p01")], max_length=100)
    llava_next_sentence_model.max_seq_length = 100
    try:
        with pytest.raises(ValueError, match=r"chelsea_150x100\.png.*its images need 1464 image tokens"):
            llava_next_sentence_model.encode([case_image_path("p01")])
    finally:
        llava_next_sentence_model.max_seq_length = MAX_LENGTH


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
    wanted = {llava_checkpoint_to_ours(key): value for key, value in weights.items() if "lm_head" not in key}
    for folder in (FIXTURE / "backbone", _write_layout(tmp_path, "module-layout", module_layout)):
        state = load_llava_next_checkpoint(folder, dtype=torch.float32).state_dict()
        assert set(state) == set(wanted), folder
        assert all(torch.equal(state[name], value) for name, value in wanted.items()), folder

    foreign = _write_layout(
        tmp_path, "foreign", lambda key: key, {"multi_modal_projector.linear_9.weight": torch.zeros(2)}
    )
    with pytest.raises(KeyError, match=r"multi_modal_projector\.linear_9\.weight"):
        convert_backbone(foreign, tmp_path / "out", dtype=torch.float32)


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


@pytest.mark.slow
def test_gradcache_mini_batches_split_image_and_text_rows(llava_next_sentence_model, expected):
    """sentence-transformers' `_create_minibatch` cuts `pixel_values` / `image_sizes` by `num_images_per_sample`;
    every mini-batch of a text / 3-patch / 5-patch mix embeds its rows as alone."""
    from sentence_transformers.base.losses.gradcache import _create_minibatch

    case_ids = ["p13", "p02", "p14", "p03", "p09"]
    features = llava_next_sentence_model.preprocess(
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
            embeddings = llava_next_sentence_model[0](dict(mini))["sentence_embedding"]
        assert max_abs(embeddings, singles(expected, case_ids[begin:end])) < TOLERANCE, (begin, end)
    text_only = _create_minibatch(llava_next_sentence_model.preprocess(["a red bus", "  "]), 0, 2)
    assert "pixel_values" not in text_only


@pytest.fixture(scope="module")
def random_llava_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("init") / "llava"
    assert main(["init", "--out", str(out), "--family", "llava_next"]) == 0
    return out


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_eval_a_random_llava_next(random_llava_dir, mini_mmeb, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", "--model", str(random_llava_dir), "--data", str(mini_mmeb / "eval"), "--subsets", "Faces"]
    assert main([*args, "--image-dir", str(mini_mmeb / "images"), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["datasets"]) == {"Faces"}
    assert results["encoding"]["encoded"] == results["encoding"]["unique_items"] > 50
