"""Model cards: valid Hub metadata with a model-index, no widget, working usage snippets, the MMEB table."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from PIL import Image

from vlm2vec_hf.cli import main
from vlm2vec_hf.hub_cards import card as card_module
from vlm2vec_hf.hub_cards.card import build_model_card, write_model_card
from vlm2vec_hf.modeling_vlm2vec.backbones import all_families, get_family

RESULTS = {
    "protocol": "v1",
    "datasets": {
        "VOC2007": {
            "headline_metric": "hit@1",
            "score": 0.5,
            "queries": 10,
            "candidates_per_query": 20.0,
            "eval_type": "local",
            "metrics": {"hit@1": 0.5},
        },
        "Digits": {
            "headline_metric": "hit@1",
            "score": 0.25,
            "queries": 10,
            "candidates_per_query": 10.0,
            "eval_type": "local",
            "metrics": {"hit@1": 0.25},
        },
    },
    "groups": {
        "Classification": {
            "name": "Classification",
            "score": 0.375,
            "datasets": ["VOC2007", "Digits"],
            "missing": [],
            "count": 2,
            "expected": 2,
        },
        "Overall": {
            "name": "Overall",
            "score": 0.375,
            "datasets": ["VOC2007", "Digits"],
            "missing": [],
            "count": 2,
            "expected": 2,
        },
    },
    "encoding": {"naive_items": 320, "unique_items": 40, "encoded": 40, "from_cache": 0, "forward_passes_saved": 280},
    "seconds": 1.0,
    "published": {"model": "VLM2Vec-V2.0", "release": "v2.0.1", "scores": {"VOC2007": 84.9}},
}


def front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "no YAML header"
    return yaml.safe_load(match.group(1))


def test_card_metadata_is_valid_hub_yaml_with_a_model_index(tiny_random_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_random_model_dir, folder)
    path = write_model_card(
        folder,
        repo_id="someone/tiny-vlm2vec",
        base_model="Qwen/Qwen2-VL-2B-Instruct",
        eval_results=RESULTS,
        train_config={"data": "TIGER-Lab/MMEB-train", "learning_rate": 5e-5, "temperature": 0.02, "lora": True},
    )
    text = path.read_text()
    assert "!!python" not in text and "PIL" not in text
    meta = front_matter(text)
    assert meta["library_name"] == "sentence-transformers" and meta["pipeline_tag"] == "sentence-similarity"
    assert meta["base_model"] == "Qwen/Qwen2-VL-2B-Instruct" and meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["TIGER-Lab/MMEB-train", "TIGER-Lab/MMEB-eval"]
    assert {"sentence-transformers", "vlm2vec", "custom_code"} <= set(meta["tags"]) and "widget" not in meta
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "tiny-vlm2vec"
    by_dataset = {r.dataset_name: (r.dataset_type, r.metric_value) for r in results}
    assert by_dataset == {"VOC2007": ("TIGER-Lab/MMEB-eval", 50.0), "Digits": ("local", 25.0)}
    card = ModelCard.load(path)  # huggingface_hub's own parser accepts it
    assert card.data.to_dict()["model-index"] == meta["model-index"]
    # the MMEB table, ours beside the published score
    assert "| VLM2Vec-V2.0 (published) |" in text and "| VOC2007 | hit@1 | 10 | 20 | local | 50.0 | 84.9 |" in text
    assert "| `learning_rate` | 5e-05 |" in text and "@article{jiang2024vlm2vec" in text


def test_usage_snippets_run_against_the_model_folder(tiny_random_model_dir, tmp_path, monkeypatch):
    text = str(build_model_card(tiny_random_model_dir, repo_id="org/name"))
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 48), "orange").save("cat.png")
    for block in blocks:
        namespace: dict = {}
        exec(block.replace('"org/name"', json.dumps(str(tiny_random_model_dir))), namespace)  # noqa: S102
    assert namespace["embeddings"].shape == (3, namespace["model"].config.embedding_dim)


def test_random_weights_are_stated(tiny_random_model_dir):
    text = str(build_model_card(tiny_random_model_dir, random_weights=True))
    assert "**The weights are random**" in text and "model-index" not in text


def details_table(text: str) -> dict[str, str]:
    """The "Model details" table of a card, row name -> value."""
    section = text.split("## Model details", 1)[1].split("## ", 1)[0]
    return dict(re.findall(r"^\| ([^|]+?) \| (.*?) \|$", section, re.M)[1:])


@pytest.fixture(scope="module")
def family_folders(tiny_random_model_dir, tmp_path_factory) -> dict[str, Path]:
    """A tiny random folder per registered default family, and the Qwen2-VL folder recorded as the GME recipe."""
    out = tmp_path_factory.mktemp("card-families")
    folders = {"qwen2_vl": tiny_random_model_dir}
    for model_type in ("phi3_v", "llava_next"):
        assert main(["init", "--out", str(out / model_type), "--family", model_type]) == 0
        folders[model_type] = out / model_type
    gme = out / "gme"
    shutil.copytree(tiny_random_model_dir, gme)
    config = json.loads((gme / "config.json").read_text())
    (gme / "config.json").write_text(json.dumps({**config, "backbone_family": "gme"}))
    folders["gme"] = gme
    return folders


@pytest.mark.parametrize("name", ["qwen2_vl", "phi3_v", "llava_next", "gme"])
def test_card_shows_the_familys_own_name_inputs_and_processor_options(family_folders, name):
    folder = family_folders[name]
    config = json.loads((folder / "config.json").read_text())
    model_type = config["vlm_config"]["model_type"]
    family = get_family(model_type, name=config.get("backbone_family"))
    text = str(build_model_card(folder, repo_id="org/name"))
    rows = details_table(text)
    assert rows["Backbone"] == family.display_name_for(model_type) and "None" not in str(rows)
    options = {key.removeprefix("Image processor `").removesuffix("`"): v for key, v in rows.items() if "`" in key}
    saved = family.processor_option_values(family.load_image_processor(folder))
    assert options == {option: str(value) for option, value in saved.items()}
    assert set(options) == set(family.image_processor_options)  # the tiny folders save every option
    assert "not supported by this packaging" not in text
    if family.takes_video:
        assert rows["Inputs"] == "text, images and videos" and "A video is embedded from 8 evenly spaced" in text
    else:
        assert rows["Inputs"] == "text and images" and "Video inputs are not supported: the " in text


def test_card_qwen_rows_show_the_saved_pixel_bounds(tiny_random_model_dir):
    rows = details_table(str(build_model_card(tiny_random_model_dir)))
    assert rows["Image processor `max_pixels`"] == "12544" and rows["Image processor `min_pixels`"] == "3136"


def test_card_leaves_out_an_option_without_a_saved_value(family_folders, tmp_path, monkeypatch):
    folder = family_folders["phi3_v"]
    family = get_family("phi3_v")
    monkeypatch.setattr(type(family), "processor_option_values", lambda self, processor: {"num_crops": None})
    rows = details_table(str(build_model_card(folder)))
    assert not any(key.startswith("Image processor") for key in rows) and "None" not in str(rows)


def test_card_module_names_no_family():
    """Card names come from the registry: no family name or model_type is spelt in hub_cards/card.py."""
    source = Path(card_module.__file__).read_text(encoding="utf-8")
    spelt = set()
    for family in all_families():
        words = {family.name, family.display_name, *family.model_types, *family.display_names.values()}
        spelt |= {word for word in words if re.search(rf"\b{re.escape(word)}\b", source, re.I)}
    assert spelt == set()


def test_adapter_folder_without_its_base_at_hand_names_the_backbone_from_the_processor(family_folders, tmp_path):
    folder = shutil.copytree(family_folders["phi3_v"], tmp_path / "adapter")
    (folder / "config.json").unlink()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "someone/not-here"}))
    rows = details_table(str(build_model_card(folder)))
    assert rows["Backbone"] == get_family("phi3_v").display_name_for("phi3_v") and rows["Inputs"] == "text and images"
