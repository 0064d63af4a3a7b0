"""`vlm2vec embed` under torchrun (2 CPU processes, gloo): the same ids and vectors as one process, and a rank killed
mid-way leaves a folder that a rerun completes, equal to an uninterrupted one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import torchrun
from PIL import Image

from vlm2vec_hf.cli import main
from vlm2vec_hf.retrieval import store
from vlm2vec_hf.retrieval.embed import KILL_HOOK, EmbedOptions, embed_collection
from vlm2vec_hf.retrieval.inputs import read_collection

pytestmark = pytest.mark.slow
SHARD_SIZE = 2


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """11 rows of skewed cost: long and short texts, images alone and with text (6 shards of 2)."""
    import pandas as pd

    root = tmp_path_factory.mktemp("collection")
    for index in range(5):
        write_image(root / f"im{index}.png", index, height=32 + 8 * index)
    texts = ["short", "word " * 60, "a cat", "", "the quick brown fox " * 5, "", "x", "", "an image and text", "", "z"]
    images = [None, None, None, "im0.png", None, "im1.png", None, "im2.png", "im3.png", "im4.png", None]
    pd.DataFrame({"text": texts, "image": images}).to_parquet(root / "table.parquet")
    return root / "table.parquet"


@pytest.fixture(scope="module")
def one_process(tiny_random_model_dir, table, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("embedded") / "one"
    args = ["embed", str(table), "--model", str(tiny_random_model_dir), "--out", str(out)]
    assert main([*args, "--shard-size", str(SHARD_SIZE), "--batch-size", "2"]) == 0
    return out


def write_image(path: Path, seed: int, height: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, 48, 3), dtype=np.uint8)).save(path)


def torchrun_embed(model_dir: Path, table: Path, out: Path, *flags: str, env: dict[str, str] | None = None):
    command = torchrun(2, "--module", "vlm2vec_hf.cli", "embed", str(table))
    command += ["--model", str(model_dir), "--out", str(out), "--shard-size", str(SHARD_SIZE), "--batch-size", "2"]
    command += flags
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def assert_same_folder(folder: Path, reference: Path) -> None:
    ids, sources, matrix = store.read_embeddings(folder)
    ref_ids, ref_sources, ref_matrix = store.read_embeddings(reference)
    assert ids == ref_ids and sources == ref_sources
    assert np.abs(matrix - ref_matrix).max() <= 1e-6
    assert store.read_manifest(folder) == store.read_manifest(reference)


def test_two_processes_give_the_one_process_ids_and_vectors(tiny_random_model_dir, table, one_process, tmp_path):
    result = torchrun_embed(tiny_random_model_dir, table, tmp_path / "two")
    assert result.returncode == 0, result.stderr[-5000:]
    assert "Embedded 11 items in 6 shard(s) on 2 process(es)" in result.stdout
    assert sorted(store.finished_shards(tmp_path / "two")) == list(range(6))
    assert_same_folder(tmp_path / "two", one_process)


def test_a_killed_rank_leaves_valid_shards_and_a_rerun_completes(tiny_random_model_dir, table, one_process, tmp_path):
    result = torchrun_embed(tiny_random_model_dir, table, tmp_path / "out", env={KILL_HOOK: "1:1"})
    assert result.returncode != 0
    done = store.finished_shards(tmp_path / "out")
    assert 1 <= len(done) < 6, done  # rank 1's first shard at least; not all
    report = embed_collection(
        tiny_random_model_dir,
        read_collection(table),
        tmp_path / "out",
        EmbedOptions(shard_size=SHARD_SIZE, batch_size=2, show_progress_bar=False),
    )
    assert (report.shards_before, report.shards_embedded) == (len(done), 6 - len(done))
    assert_same_folder(tmp_path / "out", one_process)


def test_int8_ranks_quantize_with_rank_0_calibration(tiny_random_model_dir, table, tmp_path):
    args = ["embed", str(table), "--model", str(tiny_random_model_dir), "--out", str(tmp_path / "one")]
    assert main([*args, "--shard-size", str(SHARD_SIZE), "--batch-size", "2", "--precision", "int8"]) == 0
    result = torchrun_embed(tiny_random_model_dir, table, tmp_path / "two", "--precision", "int8")
    assert result.returncode == 0, result.stderr[-5000:]
    ranges = store.load_calibration(tmp_path / "two")
    assert np.abs(ranges - store.load_calibration(tmp_path / "one")).max() <= 1e-6
    (ids, _, two), (ref_ids, _, one) = store.read_embeddings(tmp_path / "two"), store.read_embeddings(tmp_path / "one")
    assert ids == ref_ids and two.dtype == np.int8
    assert np.abs(two.astype(int) - one.astype(int)).max() <= 1  # floats within 1e-6 may tip a rounding edge
