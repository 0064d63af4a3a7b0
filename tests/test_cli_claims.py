"""The docs' claims about the `vlm2vec` command (docs/cli.md, docs/training.md, docs/hub.md), each run as a user runs
it (`main([...])`): `merge`, `data mini-mmeb`, `init --size/--family`, `convert` of a Qwen2.5-VL checkpoint, and
`convert --overwrite` failing half-way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import FIXTURE, TOLERANCE
from PIL import Image
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from transformers import AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

from vlm2vec_hf import model_folder
from vlm2vec_hf.cli import main
from vlm2vec_hf.evaluation.data import load_mmeb_eval
from vlm2vec_hf.hub_cards import convert as convert_module
from vlm2vec_hf.tiny import BUNDLED_IMAGES, random_backbone, tiny_tokenizer
from vlm2vec_hf.training.data import load_mmeb_train

SUBSETS = ["Digits", "Digits_VQA", "Digits_t2i", "Faces", "Photos_i2i", "Photos_i2t"]
PEFT_FILES = {"adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"}
SMALL_IMAGES = ["--max-pixels", "12544"]  # at most 16 visual tokens per image: cheap on CPU


def load(folder: Path) -> SentenceTransformer:
    return SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")


@pytest.fixture(scope="module")
def cli_mini_mmeb(tmp_path_factory) -> Path:
    """`vlm2vec data mini-mmeb --out DIR`, as docs/training.md runs it."""
    out = tmp_path_factory.mktemp("cli-data") / "mini-mmeb"
    assert main(["data", "mini-mmeb", "--out", str(out)]) == 0
    return out


def test_data_mini_mmeb_writes_the_train_eval_and_eval_v2_layouts(cli_mini_mmeb, capsys):
    out = cli_mini_mmeb
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == [
        "eval",
        "eval-v2",
        "eval-video",
        "images",
        "manifest.json",
        "train",
        "train-v2",
        "train-video",
        "video-tasks",
    ]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["digits", "faces", "photos"]
    for subset in SUBSETS:
        assert (out / "train" / subset / "original.parquet").is_file()
        assert (out / "eval" / subset / "test.parquet").is_file()
        assert (out / "eval-v2" / subset / "test.parquet").is_file()
    for table in ("queries", "corpus", "qrels"):
        assert (out / "eval-v2" / "Digits_docs" / f"{table}.parquet").is_file()
    assert (out / "eval" / "tasks.json").is_file() and (out / "eval-v2" / "tasks.json").is_file()

    train = load_mmeb_train(out / "train", out / "images")  # checks every image path and tag count
    assert sorted(train) == SUBSETS
    assert {name: len(rows) for name, rows in train.items()} == manifest["train"]
    assert set(train["Faces"].column_names) >= {"query", "positive"}

    v1 = {dataset.name: dataset for dataset in load_mmeb_eval(out / "eval", out / "images")}
    assert sorted(v1) == SUBSETS and {d.layout for d in v1.values()} == {"v1"}
    assert {name: len(d.queries) for name, d in v1.items()} == {n: e["queries"] for n, e in manifest["eval"].items()}
    v2 = {dataset.name: dataset for dataset in load_mmeb_eval(out / "eval-v2", out / "images")}
    assert sorted(v2) == sorted([*SUBSETS, "Digits_docs"])
    assert {d.layout for name, d in v2.items() if name != "Digits_docs"} == {"v2"}
    docs = v2["Digits_docs"]
    assert docs.layout == "visdoc" and docs.eval_type == "global"
    assert (
        (len(docs.queries), len(docs.corpus)) == (20, 49) == tuple(manifest["eval-v2 visdoc"]["Digits_docs"].values())
    )
    # The same datasets in both layouts: V2 rebuilds the prompts, the candidates and the gold stay.
    assert all(v2[name].relevance == v1[name].relevance for name in SUBSETS)

    capsys.readouterr()
    assert main(["data", "mini-mmeb", "--out", str(out)]) == 2  # never written over
    assert "not empty" in capsys.readouterr().err


def test_merge_command_writes_a_full_folder_with_the_adapter_embeddings(tiny_random_model_dir, cli_mini_mmeb, tmp_path):
    run = tmp_path / "run"
    train = [
        "train",
        "--model",
        str(tiny_random_model_dir),
        "--data",
        str(cli_mini_mmeb / "train"),
        "--image-dir",
        str(cli_mini_mmeb / "images"),
        "--output-dir",
        str(run),
        "--subsets",
        "Faces",
        "--num-sample-per-subset",
        "8",
        "--per-device-train-batch-size",
        "4",
        "--gc-mini-batch-size",
        "4",
        "--max-steps",
        "2",
        "--learning-rate",
        "1e-2",
        "--warmup-steps",
        "0",
        "--save-steps",
        "1000",
        "--seed",
        "7",
        "--lora",
        "--lora-r",
        "4",
    ]
    assert main(train) == 0
    adapter = run / "final"
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "model.safetensors").exists()

    merged_dir = tmp_path / "merged"
    assert main(["merge", "--adapter", str(adapter), "--out", str(merged_dir)]) == 0
    files = {p.name for p in merged_dir.iterdir()}
    assert "model.safetensors" in files and not files & PEFT_FILES

    inputs = [
        "a photo of a face",
        {"image": str(cli_mini_mmeb / "images/faces/000.png"), "text": "Is this a face?"},
        str(BUNDLED_IMAGES / "coffee_120x80.png"),
    ]
    merged = load(merged_dir)
    assert not [name for name, _ in merged.named_parameters() if "lora_" in name]
    unmerged_embeddings = load(adapter).encode(inputs)
    assert abs(merged.encode(inputs) - unmerged_embeddings).max() < TOLERANCE
    # The adapter moved the embeddings, so equal embeddings mean the adapter is in the merged weights.
    assert abs(load(tiny_random_model_dir).encode(inputs) - unmerged_embeddings).max() > 1e-3


@pytest.mark.parametrize(
    ("size", "family", "hidden", "layers", "vision_type"),
    [
        ("tiny", "qwen2_5_vl", 64, 2, "qwen2_5_vl_vision"),
        ("mid", "qwen2_vl", 512, 12, "qwen2_vl_vision"),
        ("tiny", "phi3_v", 64, 2, "clip_vision_model"),
    ],
)
def test_init_writes_the_requested_size_and_family(tmp_path, size, family, hidden, layers, vision_type):
    out = tmp_path / "init"
    small_images = SMALL_IMAGES if family != "phi3_v" else []  # Phi-3.5-V has no pixel bounds (an error there)
    assert main(["init", "--out", str(out), "--size", size, "--family", family, *small_images]) == 0
    config = json.loads((out / "config.json").read_text())["vlm_config"]
    assert config["model_type"] == family
    assert config["text_config"]["hidden_size"] == hidden
    assert config["text_config"]["num_hidden_layers"] == layers
    assert config["vision_config"]["model_type"] == vision_type
    model = load(out)
    names = {"qwen2_vl": "Qwen2VLModel", "qwen2_5_vl": "Qwen2_5_VLModel", "phi3_v": "Phi3VModel"}
    assert type(model[0].model.vlm).__name__ == names[family]
    embeddings = model.encode(["a red bus", str(BUNDLED_IMAGES / "flower_90x60.png")])
    assert embeddings.shape == (2, hidden)
    assert torch.isfinite(torch.as_tensor(embeddings)).all()


def write_stock_qwen2_5_vl_checkpoint(folder: Path) -> torch.nn.Module:
    """A random Qwen2.5-VL checkpoint as the Hub stores one: `Qwen2_5_VLForConditionalGeneration` in the legacy key
    layout (`model.layers.*`, `visual.*`, `lm_head.weight`), tokenizer, PIL image processor. Returns the backbone."""
    backbone = random_backbone("tiny", "qwen2_5_vl", seed=3)
    folder.mkdir()
    config = backbone.config
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    config.save_pretrained(folder)
    weights = {
        ("model." + name.removeprefix("language_model.") if name.startswith("language_model.") else name): tensor
        for name, tensor in backbone.state_dict().items()
    }
    assert any(name.startswith("visual.") for name in weights) and any(
        name.startswith("model.layers.") for name in weights
    )
    generator = torch.Generator().manual_seed(4)
    weights["lm_head.weight"] = torch.randn(
        config.text_config.vocab_size, config.text_config.hidden_size, generator=generator
    )
    save_file({name: tensor.contiguous() for name, tensor in weights.items()}, folder / "model.safetensors")
    tiny_tokenizer().save_pretrained(folder)
    Qwen2VLImageProcessorPil().save_pretrained(folder)
    return backbone


def test_convert_a_qwen2_5_vl_checkpoint_matches_the_backbone_by_hand(tmp_path):
    base, out = tmp_path / "qwen2.5-vl", tmp_path / "converted"
    backbone = write_stock_qwen2_5_vl_checkpoint(base)
    assert main(["convert", "--base", str(base), "--out", str(out), "--dtype", "float32", *SMALL_IMAGES]) == 0
    model, info = AutoModel.from_pretrained(out, trust_remote_code=True, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert json.loads((out / "config.json").read_text())["vlm_config"]["model_type"] == "qwen2_5_vl"

    # By hand, from the backbone folder's own tokenizer and image processor: V1 prompt, each <|image_pad|> expanded
    # to the image's merged patch count, 1-D reference positions cumsum(mask) - 1 on all three M-RoPE axes, the
    # last token's final hidden state, L2-normalised.
    image_path = BUNDLED_IMAGES / "chelsea_150x100.png"
    instruction, text = "Represent the given image with the following question:", "What animal is this?"
    image_processor = AutoImageProcessor.from_pretrained(
        base, backend="pil", size={"shortest_edge": 3136, "longest_edge": 12544}
    )
    pixels = image_processor(images=[Image.open(image_path).convert("RGB")], return_tensors="pt")
    tokenizer = AutoTokenizer.from_pretrained(base)

    def by_hand(prompt: str, with_image: bool) -> torch.Tensor:
        if with_image:
            pads = int(pixels["image_grid_thw"].prod()) // 4
            prompt = prompt.replace("<|image_pad|>", "<|image_pad|>" * pads)
        input_ids = tokenizer(prompt, return_tensors="pt").input_ids
        mask = torch.ones_like(input_ids)
        positions = (mask.cumsum(-1) - 1)[None].expand(3, -1, -1)
        visual = {"pixel_values": pixels["pixel_values"], "image_grid_thw": pixels["image_grid_thw"]}
        with torch.no_grad():
            hidden = backbone(
                input_ids=input_ids, attention_mask=mask, position_ids=positions, **(visual if with_image else {})
            ).last_hidden_state
        return F.normalize(hidden[0, -1], dim=-1)

    expected = torch.stack(
        [by_hand(f"<|image_pad|> {instruction} {text}", True), by_hand("a cat on a sofa", False)]
    ).numpy()

    sentence_model = load(out)
    encoded = sentence_model.encode([{"image": str(image_path), "text": text}], prompt=instruction)
    encoded_text = sentence_model.encode(["a cat on a sofa"])
    assert abs(encoded[0] - expected[0]).max() < TOLERANCE
    assert abs(encoded_text[0] - expected[1]).max() < TOLERANCE

    processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    inputs = processor(
        text=[processor.format_prompt(text, instruction, num_images=1), "a cat on a sofa"], images=[str(image_path)]
    )
    with torch.no_grad():
        auto_embeddings = model.eval()(**inputs).embeddings.numpy()
    assert abs(auto_embeddings - expected).max() < TOLERANCE


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_convert_overwrite_that_fails_half_way_leaves_the_old_folder_intact(tmp_path, monkeypatch, capsys):
    out = tmp_path / "model"
    assert main(["convert", "--base", str(FIXTURE / "backbone"), "--out", str(out), "--dtype", "float32"]) == 0
    before = folder_bytes(out)
    overwrite = [
        "convert",
        "--base",
        str(FIXTURE / "backbone"),
        "--adapter",
        str(FIXTURE / "adapter"),
        "--out",
        str(out),
        "--dtype",
        "float32",
        "--overwrite",
    ]

    def assert_untouched():
        assert folder_bytes(out) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or backup folder left

    # 1. Writing fails after the weights and configs are on disk, before the folder is complete.
    def disk_full(folder):
        raise OSError(f"No space left on device: {folder}")

    with monkeypatch.context() as patch:
        patch.setattr(model_folder, "apply_umask_modes", disk_full)
        assert main(overwrite) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert_untouched()

    # 2. The merged weights re-read from the written file are not the merged model's (the merge trap).
    merge = convert_module.merge_adapter_into_model

    def merge_then_change_one_weight(*args, **kwargs):
        merged = merge(*args, **kwargs)
        name = sorted(merged)[0]
        merged[name] = merged[name] + 1.0  # what the check compares against now differs from what was saved
        return merged

    with monkeypatch.context() as patch:
        patch.setattr(convert_module, "merge_adapter_into_model", merge_then_change_one_weight)
        assert main(overwrite) == 2
    assert "differs from the merged weight" in capsys.readouterr().err
    assert_untouched()

    # The same conversion unpatched replaces the folder.
    assert main(overwrite) == 0
    assert folder_bytes(out)["model.safetensors"] != before["model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
