"""The evaluation embedding cache never hands one model's vectors to another model or another image."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from sentence_transformers import SentenceTransformer

from vlm2vec_hf.evaluation.embedding_cache import EmbeddingCache, item_key, model_fingerprint
from vlm2vec_hf.evaluation.evaluator import embedding_settings


def fingerprint(folder) -> str:
    model = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    return model_fingerprint(model, embedding_settings(model))


def test_fingerprint_follows_weights_and_processor_settings(tiny_random_model_dir, fixture_model_dir):
    assert fingerprint(tiny_random_model_dir) == fingerprint(tiny_random_model_dir)
    assert fingerprint(tiny_random_model_dir) != fingerprint(fixture_model_dir)
    model = SentenceTransformer(str(tiny_random_model_dir), trust_remote_code=True, device="cpu")
    before = model_fingerprint(model, embedding_settings(model))
    model[0].processor.max_length = 7
    assert model_fingerprint(model, embedding_settings(model)) != before


def test_item_key_changes_when_the_image_file_changes(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (40, 40), "red").save(path)
    first = item_key(("<|image_pad|> x", str(path)))
    Image.new("RGB", (40, 41), "blue").save(path)
    os.utime(path, ns=(1, 10**18))
    assert item_key(("<|image_pad|> x", str(path))) != first
    assert item_key(("x", "")) != item_key(("y", ""))


def test_cache_round_trip(tmp_path):
    cache = EmbeddingCache(tmp_path, "abc")
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache.put([("a", ""), ("b", "")], vectors)
    cache.close()
    found = EmbeddingCache(tmp_path, "abc").get([("a", ""), ("b", ""), ("c", "")])
    assert set(found) == {("a", ""), ("b", "")} and np.array_equal(found[("b", "")], vectors[1])
    assert EmbeddingCache(tmp_path, "other").get([("a", "")]) == {}
