"""MMEB-train loading: layouts, caps, lazy image paths, tag swap, hard negatives, and clear data errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import datasets
import pytest
import yaml
from helpers import train_config

from vlm2vec_hf.cli import main
from vlm2vec_hf.training.data import MMEBDataError, combine, list_local_subsets, load_mmeb_train


def test_mini_mmeb_layout_and_tasks(mini_mmeb):
    manifest = json.loads((mini_mmeb / "manifest.json").read_text())
    assert set(manifest["train"]) == {"Digits", "Digits_t2i", "Digits_VQA", "Faces", "Photos_i2t", "Photos_i2i"}
    assert set(manifest["eval"]) == set(manifest["train"])
    assert list_local_subsets(mini_mmeb / "train") == sorted(manifest["train"])
    raw = datasets.load_dataset("parquet", data_files=str(mini_mmeb / "train/Digits/original.parquet"), split="train")
    assert raw.column_names == ["qry", "qry_image_path", "pos_text", "pos_image_path", "neg_text", "neg_image_path"]
    assert raw[0]["qry"].startswith("<|image_1|> ")
    # Eval queries never reuse a training image.
    train_images = set()
    for subset in manifest["train"]:
        table = datasets.load_dataset(
            "parquet", data_files=str(mini_mmeb / f"train/{subset}/original.parquet"), split="train"
        )
        train_images |= set(table["qry_image_path"]) | set(table["pos_image_path"])
    for name in manifest["eval"]:
        table = datasets.load_dataset("parquet", data_files=str(mini_mmeb / f"eval/{name}/test.parquet"), split="train")
        assert not (set(table["qry_img_path"]) - {""}) & train_images, name


def test_load_caps_keeps_mmeb_tags_and_paths_lazy(mini_mmeb):
    subsets = load_mmeb_train(
        mini_mmeb / "train", mini_mmeb / "images", subsets=["Digits", "Digits_t2i"], max_per_subset=25
    )
    assert {name: len(data) for name, data in subsets.items()} == {"Digits": 25, "Digits_t2i": 25}
    digits = subsets["Digits"]
    assert digits.column_names == ["query", "positive"]
    first = digits[0]
    assert first["query"]["text"] == "<|image_1|> Represent the given image for classification."
    assert first["query"]["image"].startswith(str(mini_mmeb / "images"))  # a path string, not a decoded image
    assert first["positive"] == {"text": first["positive"]["text"], "image": None}
    raw = datasets.load_dataset("parquet", data_files=str(mini_mmeb / "train/Digits/original.parquet"), split="train")
    assert [row["positive"]["text"] for row in digits] == raw["pos_text"][:25]  # the first N rows, in order
    mixed = combine(subsets, seed=0)
    assert len(mixed) == 50 and mixed.column_names == ["query", "positive"]


def test_hard_negative_column(mini_mmeb):
    data = load_mmeb_train(
        mini_mmeb / "train", mini_mmeb / "images", subsets=["Photos_i2i"], max_per_subset=5, hard_negatives=True
    )["Photos_i2i"]
    assert data.column_names == ["query", "positive", "negative"]
    assert data[0]["negative"]["image"] and data[0]["negative"]["image"] != data[0]["positive"]["image"]


def test_jsonl_and_save_to_disk_layouts(mini_mmeb, tmp_path):
    raw = datasets.load_dataset("parquet", data_files=str(mini_mmeb / "train/Faces/original.parquet"), split="train")
    (tmp_path / "FacesJsonl").mkdir()
    raw.to_json(str(tmp_path / "FacesJsonl" / "original.jsonl"))
    raw.save_to_disk(str(tmp_path / "FacesDisk" / "original"))
    loaded = load_mmeb_train(tmp_path, mini_mmeb / "images")
    assert sorted(loaded) == ["FacesDisk", "FacesJsonl"]
    assert loaded["FacesDisk"][:] == loaded["FacesJsonl"][:]


def test_missing_image_is_reported_with_subset_and_row(mini_mmeb, tmp_path):
    shutil.copytree(mini_mmeb / "train" / "Faces", tmp_path / "train" / "Faces")
    raw = datasets.load_dataset("parquet", data_files=str(tmp_path / "train/Faces/original.parquet"), split="train")
    rows = raw.to_list()
    rows[7]["qry_image_path"] = "faces/gone.png"
    rows[9]["pos_text"] = "<|image_1|> Represent the given image."  # a tag without an image
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "train/Faces/original.parquet"))
    with pytest.raises(MMEBDataError) as error:
        load_mmeb_train(tmp_path / "train", mini_mmeb / "images")
    message = str(error.value)
    assert "2 unusable MMEB-train rows" in message
    assert "Faces row 7 (query): image file" in message and "gone.png" in message
    assert "Faces row 9 (positive): 1 image tags but 0 images" in message
    # The same through the CLI's --check-data pass: exit 2, problems on stderr.
    args = [
        "train",
        "--check-data",
        "--model",
        "unused",
        "--data",
        str(tmp_path / "train"),
        "--image-dir",
        str(mini_mmeb / "images"),
    ]
    assert main(args) == 2


def test_check_data_pass_on_good_data(mini_mmeb, capsys):
    args = [
        "train",
        "--check-data",
        "--model",
        "unused",
        "--data",
        str(mini_mmeb / "train"),
        "--image-dir",
        str(mini_mmeb / "images"),
        "--subsets",
        "Faces",
        "Digits",
    ]
    assert main(args) == 0
    assert "Data OK: Faces 150 rows, Digits 1597 rows" in capsys.readouterr().out


def test_yaml_config_with_flag_overrides(tmp_path):
    import argparse

    from vlm2vec_hf.training.cli_options import add_config_flags, config_from_args

    config_file = tmp_path / "train.yaml"
    config_file.write_text("model: m\ndata: d\nimage_dir: i\nlora: true\nlora_r: 8\nmatryoshka_dims: [64, 32]\n")
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_flags(parser)
    config = config_from_args(
        parser.parse_args(["--config", str(config_file), "--lora_r", "4", "--no-use-dora", "--max-steps", "7"])
    )
    assert (config.model, config.lora, config.lora_r, config.use_dora, config.max_steps) == ("m", True, 4, False, 7)
    assert config.matryoshka_dims == [64, 32] and config.lora_alpha == 64  # YAML kept, defaults kept
    config_file.write_text("model: m\nlora_rank: 8\n")
    with pytest.raises(ValueError, match=r"unknown training options \['lora_rank'\]"):
        config_from_args(parser.parse_args(["--config", str(config_file)]))


EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_config_sets_every_key_it_names(path, tmp_path):
    """Each example YAML loads through `vlm2vec train --config` into a valid config holding every value it writes;
    the same file with one key misspelled is an error naming the file and the key."""
    from vlm2vec_hf.training.config import ConfigError

    written = yaml.safe_load(path.read_text())
    config = train_config(["train", "--config", str(path)])
    config.validate()
    for key, value in written.items():
        assert getattr(config, key) == value, key
    misspelled = tmp_path / path.name
    first = next(iter(written))
    misspelled.write_text(path.read_text().replace(f"{first}:", f"{first}_x:", 1))
    with pytest.raises(ConfigError, match=rf"{re.escape(str(misspelled))}: unknown training options \['{first}_x'\]"):
        train_config(["train", "--config", str(misspelled)])


@pytest.mark.slow
def test_mini_mmeb_example_trains(mini_mmeb, tiny_random_model_dir, tmp_path):
    """`vlm2vec train --config examples/train_mini_mmeb.yaml` as its comment says, pointed at the session's model and
    data and cut to 2 steps: the run writes its final folder."""
    path = next(path for path in EXAMPLES if path.name == "train_mini_mmeb.yaml")
    args = ["train", "--config", str(path), "--model", str(tiny_random_model_dir), "--data", str(mini_mmeb / "train")]
    args += ["--image-dir", str(mini_mmeb / "images"), "--eval-data", str(mini_mmeb / "eval"), "--max-steps", "2"]
    args += ["--output-dir", str(tmp_path / "run"), "--per-device-train-batch-size", "8", "--gc-mini-batch-size", "4"]
    assert main(args) == 0
    assert (tmp_path / "run" / "final" / "modules.json").is_file()
