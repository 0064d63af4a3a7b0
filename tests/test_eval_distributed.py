"""`vlm2vec eval` across processes (torchrun, 2 CPU processes, gloo): the same numbers as one process, the split
recorded in the report, the embedding cache shared by concurrent runs, and the evaluator inside the trainer under
DDP encoding only its share."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port, torchrun

from vlm2vec_hf.cli import main
from vlm2vec_hf.distributed import equal_count_order
from vlm2vec_hf.evaluation import embedding_cache
from vlm2vec_hf.evaluation.data import load_mmeb_eval
from vlm2vec_hf.evaluation.embedding_cache import EmbeddingCache
from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator, unique_items
from vlm2vec_hf.evaluation.sharding import item_cost, item_shares

SUBSETS = ["Faces", "Digits_t2i", "Digits_VQA"]  # image -> text, text -> image, image + text -> text
VLM2VEC = str(Path(sys.executable).parent / "vlm2vec")


def accelerate_launch(nproc: int, *command: str) -> list[str]:
    # --multi_gpu is accelerate's torchrun launcher; on a machine without GPUs its processes use gloo on the CPU.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc)]
    return [*launch, "--main_process_port", str(free_port()), *command]


def eval_args(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    common = ["--model", str(model_dir), "--data", str(data / "eval"), "--image-dir", str(data / "images")]
    return ["eval", *common, "--subsets", *SUBSETS, "--out", str(out), "--batch-size", "8", *extra]


def run_alone(model_dir: Path, data: Path, out: Path, *extra: str) -> dict:
    assert main(eval_args(model_dir, data, out, *extra)) == 0
    return json.loads((out / "results.json").read_text())


# ---- the split -------------------------------------------------------------------------------------------------


def test_shares_keep_a_clips_items_together_and_balance_cost():
    items = [(f"text {i}", "") for i in range(40)] + [("<|image_1|> x", f"img{i}.png") for i in range(10)]
    items += [("<|video_1|> a", "", "clip_a"), ("<|video_1|> b", "", "clip_a"), ("<|video_1|> c", "", "clip_b")]
    shares = item_shares(items, 2)
    assert sorted(i for share in shares for i in share) == list(range(len(items)))
    clip_a = {rank for rank, share in enumerate(shares) for i in share if items[i][-1] == "clip_a"}
    assert len(clip_a) == 1  # both items of clip_a on one rank
    totals = [sum(item_cost(items[i]) for i in share) for share in shares]
    assert max(totals) / (sum(totals) / 2) <= 1.1
    assert item_cost(items[-1]) > item_cost(items[41]) > item_cost(items[0])  # clip > image > short text


def test_equal_count_order_balances_cost_in_equal_count_slices():
    costs = [1.0] * 30 + [300.0] * 10 + [1000.0] * 3
    for world_size in (2, 3, 4):
        order = equal_count_order(costs, world_size)
        assert sorted(order) == list(range(len(costs)))
        slices = np.array_split(np.asarray(order), world_size)
        assert [len(part) for part in slices] == [len(part) for part in np.array_split(np.arange(43), world_size)]
        totals = [sum(costs[i] for i in part) for part in slices]
        assert max(totals) / (sum(totals) / world_size) <= 1.15, totals
        contiguous = [sum(part) for part in np.array_split(np.asarray(costs), world_size)]
        assert max(contiguous) / (sum(contiguous) / world_size) > 1.5  # the listed order alone is far off


def test_embeddings_are_gathered_in_rounds(monkeypatch):
    from test_eval_metrics import StubModel

    from vlm2vec_hf.distributed import Ranks
    from vlm2vec_hf.evaluation import evaluator as evaluator_module
    from vlm2vec_hf.evaluation.data import EvalDataset

    texts = [f"t{i}" for i in range(7)]
    vectors = {text: [1.0, float(i)] for i, text in enumerate(texts)}
    dataset = EvalDataset(
        "Set", queries=[(t, "") for t in texts], candidates=[[(t, "")] for t in texts], relevance=[{0: 1.0}] * 7
    )
    items = unique_items([dataset])
    whole, _ = MMEBEvaluator([dataset]).embed(StubModel(vectors), items)
    monkeypatch.setattr(evaluator_module, "ROWS_PER_GATHER", 2)  # 4 rounds of at most 2 rows
    rounds, _, shares = MMEBEvaluator([dataset]).embed_shared(StubModel(vectors), items, Ranks())
    assert np.array_equal(rounds, whole) and shares[0]["items"] == 7


# ---- the cache with many writers ---------------------------------------------------------------------------------


def test_cache_keeps_every_row_of_concurrent_writers(tmp_path):
    errors: list[str] = []

    def writer(number: int) -> None:
        try:
            for batch in range(20):
                cache = EmbeddingCache(tmp_path, "fp")
                items = [(f"w{number} b{batch} i{i}", "") for i in range(16)]
                cache.get(items)
                cache.put(items, np.full((16, 4), number, dtype=np.float32))
                cache.close()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [(f"w{n} b{b} i{i}", "") for n in range(6) for b in range(20) for i in range(16)]
    found = EmbeddingCache(tmp_path, "fp").get(every)
    assert len(found) == len(every) and all(found[item][0] == int(item[0][1]) for item in every)


def test_cache_waits_out_a_long_lock_and_reads_during_it(tmp_path, monkeypatch):
    # Another process holds the write lock longer than SQLite's own wait: reads go on (WAL), the write retries.
    monkeypatch.setattr(embedding_cache, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(embedding_cache, "LOCK_WAIT_S", 20.0)
    EmbeddingCache(tmp_path, "fp").put([("old", "")], np.ones((1, 4), np.float32))
    other = sqlite3.connect(tmp_path / "fp.sqlite", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO embeddings VALUES ('x', x'00')")
    threading.Timer(1.0, lambda: other.execute("COMMIT")).start()
    start = time.monotonic()
    cache = EmbeddingCache(tmp_path, "fp")
    assert set(cache.get([("old", ""), ("new", "")])) == {("old", "")}
    assert time.monotonic() - start < 0.5  # not blocked by the writer
    cache.put([("new", "")], np.zeros((1, 4), np.float32))
    assert time.monotonic() - start >= 0.9  # waited for the other writer, then wrote
    assert set(cache.get([("old", ""), ("new", "")])) == {("old", ""), ("new", "")}


# ---- under torchrun ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_process_eval_gives_the_numbers_of_one_process(launcher, tiny_random_model_dir, mini_mmeb, tmp_path):
    alone = run_alone(tiny_random_model_dir, mini_mmeb, tmp_path / "alone")
    args = eval_args(tiny_random_model_dir, mini_mmeb, tmp_path / "two")
    if launcher == "torchrun":
        command = torchrun(2, "--no-python", VLM2VEC, *args)
    else:
        command = accelerate_launch(2, "--no_python", VLM2VEC, *args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["datasets"] == alone["datasets"] and two["groups"] == alone["groups"]
    assert two["encoding"] == alone["encoding"]
    ranks = two["distributed"]["ranks"]
    assert two["distributed"]["world_size"] == 2 and [share["rank"] for share in ranks] == [0, 1]
    assert sum(share["items"] for share in ranks) == alone["encoding"]["unique_items"]
    assert all(0 < share["items"] < alone["encoding"]["unique_items"] and share["seconds"] > 0 for share in ranks)
    tokens = [share["estimated_tokens"] for share in ranks]
    assert max(tokens) / (sum(tokens) / 2) <= 1.1
    assert alone["distributed"]["world_size"] == 1
    markdown = (tmp_path / "two" / "results.md").read_text()
    assert f"Processes: 2 (rank 0: {ranks[0]['items']} items" in markdown
    assert "Reports:" in result.stdout and result.stdout.count("Reports:") == 1  # rank 0 alone prints and writes


@pytest.mark.slow
def test_two_concurrent_evals_share_one_cache(tiny_random_model_dir, mini_mmeb, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    runs = [
        subprocess.Popen(
            [VLM2VEC, *eval_args(tiny_random_model_dir, mini_mmeb, tmp_path / name, *cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for name in ("a", "b")
    ]
    for run in runs:
        _out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-5000:]
    alone = run_alone(tiny_random_model_dir, mini_mmeb, tmp_path / "alone")
    for name in ("a", "b"):
        together = json.loads((tmp_path / name / "results.json").read_text())
        assert together["datasets"] == alone["datasets"], name
    # Nothing lost: a third run finds every item in the cache, and scores the same from it.
    again = run_alone(tiny_random_model_dir, mini_mmeb, tmp_path / "again", *cache)
    assert again["encoding"]["encoded"] == 0 and again["encoding"]["from_cache"] == alone["encoding"]["unique_items"]
    assert again["datasets"] == alone["datasets"]


@pytest.mark.slow
def test_trainer_evaluator_under_ddp_encodes_only_its_share(tiny_random_model_dir, mini_mmeb, tmp_path):
    eval_dir = tmp_path / "eval"
    for name in ("Faces", "Digits_t2i"):
        shutil.copytree(mini_mmeb / "eval" / name, eval_dir / name)
    shutil.copy(mini_mmeb / "eval" / "tasks.json", eval_dir / "tasks.json")
    worker = Path(__file__).parent / "eval_ddp_worker.py"
    command = torchrun(2, str(worker), str(tiny_random_model_dir), str(mini_mmeb), str(eval_dir), str(tmp_path))
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    datasets = load_mmeb_eval(eval_dir, mini_mmeb / "images")
    distinct = len(unique_items(datasets))
    counts = [len(record["encoded"]) for record in records]
    assert sum(counts) == distinct and all(count < distinct for count in counts), counts
    assert not set(records[0]["encoded"]) & set(records[1]["encoded"])  # no input encoded twice
    shares = records[0]["results"]["distributed"]
    assert shares["world_size"] == 2 and [share["items"] for share in shares["ranks"]] == counts
    tokens = [share["estimated_tokens"] for share in shares["ranks"]]
    assert max(tokens) / (sum(tokens) / 2) <= 1.1
    scores = [{name: value for name, value in record["metrics"].items() if "mmeb" in name} for record in records]
    assert scores[0] == scores[1] and len(scores[0]) > 3  # every rank has the same scores (its own runtime)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_random_model_dir), trust_remote_code=True, device="cpu")
    expected = {f"eval_{name}": value for name, value in MMEBEvaluator(datasets)(model).items()}
    assert {name: records[0]["metrics"][name] for name in expected} == expected
