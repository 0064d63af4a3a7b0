"""The on-disk format of an embedded collection (`vlm2vec_hf.retrieval.store`)."""

from __future__ import annotations

import numpy as np
import pytest

from vlm2vec_hf.retrieval import store


def manifest(**settings) -> store.Manifest:
    return store.Manifest(
        model={"source": "m", "fingerprint": "f1"},
        settings={"precision": "float32", "dim": 3, **settings},
        input={"source": "in", "kind": "text", "num_items": 5, "ids_sha256": store.ids_digest(list("abcde"))},
        shard_size=2,
    )


def test_shards_round_trip_through_numpy_and_datasets(tmp_path):
    import datasets

    store.write_manifest(tmp_path, manifest())
    assert store.read_manifest(tmp_path).num_shards == 3 and list(store.read_manifest(tmp_path).shard_range(2)) == [4]
    vectors = np.arange(15, dtype=np.float32).reshape(5, 3)
    store.write_shard(tmp_path, 1, ["c", "d"], ["c.png", "d.png"], vectors[2:4])
    store.write_shard(tmp_path, 0, ["a", "b"], ["a.png", "b.png"], vectors[:2])
    (tmp_path / "shards" / "shard-00002.parquet.tmp").write_bytes(b"half-written")  # a killed write
    assert store.finished_shards(tmp_path) == {0, 1}
    ids, sources, matrix = store.read_embeddings(tmp_path)
    assert ids == list("abcd") and sources[0] == "a.png" and np.array_equal(matrix, vectors[:4])
    table = datasets.load_dataset("parquet", data_files=str(tmp_path / "shards" / "*.parquet"), split="train")
    assert sorted(table["id"]) == list("abcd")
    assert np.array_equal(np.asarray(table.with_format("numpy")["embedding"])[table["id"].index("c")], vectors[2])


def test_an_int8_shard_keeps_its_dtype(tmp_path):
    codes = np.array([[-128, 0, 127]], dtype=np.int8)
    store.write_shard(tmp_path, 0, ["x"], ["x"], codes)
    assert store.read_shard(store.shard_path(tmp_path, 0))[2].dtype == np.int8


def test_a_folder_from_another_run_is_refused_by_name():
    store.check_manifest(manifest(), manifest())
    other = manifest(precision="int8")
    other.model = {"source": "other-model", "fingerprint": "f2"}
    with pytest.raises(store.StoreMismatchError, match=r"model \('m' there, 'other-model' here\); setting precision"):
        store.check_manifest(manifest(), other)
