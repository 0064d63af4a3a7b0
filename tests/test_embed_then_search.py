"""`vlm2vec embed` then `vlm2vec search`, as a user chains them: each item of an embedded set, queried as it was
embedded (same input, the folder's prompt), is its own top-1 in every search mode."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from vlm2vec_hf.cli import main

TEXTS = ["a red bus on a bridge", "two cats asleep", "the stock market fell", "a recipe for bread", "snow on hills"]


@pytest.mark.slow
def test_each_embedded_item_is_its_own_top_1(tiny_random_model_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    images = tmp_path / "images"
    images.mkdir()
    for index, colour in enumerate(["red", "green", "blue", "yellow"]):
        Image.new("RGB", (48 + 8 * index, 40), colour).save(images / f"{colour}.png")
    model = str(tiny_random_model_dir)
    prompt = "Represent the given text."
    assert main(["embed", str(texts), "--model", model, "--out", str(tmp_path / "t"), "--prompt", prompt]) == 0
    assert main(["embed", str(images), "--model", model, "--out", str(tmp_path / "i"), "--shard-size", "2"]) == 0
    capsys.readouterr()
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(TEXTS) + "\n")
    for mode in ("exact", "int8", "binary"):
        assert main(["search", str(tmp_path / "t"), "--queries", str(queries), "--mode", mode, "--json"]) == 0
        results = json.loads(capsys.readouterr().out)["results"]
        assert [found["hits"][0]["id"] for found in results] == [str(n) for n in range(1, len(TEXTS) + 1)], mode
    for colour in ("red", "green", "blue", "yellow"):
        assert main(["search", str(tmp_path / "i"), "--image", str(images / f"{colour}.png"), "--json"]) == 0
        top = json.loads(capsys.readouterr().out)["results"][0]["hits"][0]
        assert top["id"] == f"{colour}.png" and top["score"] > 0.9999
