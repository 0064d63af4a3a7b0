"""Quantized search against exact search on 100k vectors: recall@10, index memory and query latency, side by side.

The corpus: `--corpus` unit vectors of `--dim` dimensions around `--clusters` random centres (a stand-in for a
model-made collection: neighbours are close, but not trivially), written as a float32 `vlm2vec embed` folder
(`retrieval/store.py`); the queries: corpus points plus Gaussian noise, renormalised. Everything goes through
`vlm2vec search`'s engine (`retrieval/search.py`): each index is built and saved in `FOLDER/index`, then loaded as
`vlm2vec search` loads it (usearch memory-mapped view, binary mode's float vectors memory-mapped), and searched.

Rows: exact (float32, the reference), int8 (sentence-transformers' rescoring: float query against the dequantized
int8 corpus) and binary at several rescore multipliers, both with this project's rescoring (the Hamming candidates
rescored against the float vectors memory-mapped from disk) and with the helper's own (float query against the bits).
Recall@10: the share of numpy's exact top-10 (float32 matmul) found. Memory: the index's usearch `memory_usage` (what
it holds in RAM when loaded fully; the vectors plus a minimal graph, never walked since every search is exact), and
the disk beside it. Latency: wall time per query in one batch of `--queries`.

    python benchmarks/search_quantized.py [--corpus 100000] [--dim 512] [--queries 200] [--out DIR]

Writes `results/search_quantized.{json,md}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).parent / "results"
GOAL = {"recall_at_10": 0.95, "memory_ratio": 10.0}
INT8_MULTIPLIERS = (1, 4)
BINARY_MULTIPLIERS = (1, 2, 4, 8, 10, 16)


def clustered_corpus(n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """`(n, dim)` float32 unit vectors: a random centre each plus `spread` Gaussian noise per dimension."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    points = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim), dtype=np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def write_folder(folder: Path, vectors: np.ndarray, shard_size: int = 20_000) -> None:
    from vlm2vec_hf.retrieval import store

    ids = [f"item-{i}" for i in range(len(vectors))]
    manifest = store.Manifest(
        model={"source": "synthetic", "fingerprint": "synthetic"},
        settings={"prompt": None, "prompt_name": None, "truncate_dim": None, "precision": "float32"},
        input={"source": "synthetic", "kind": "vectors", "num_items": len(ids), "ids_sha256": store.ids_digest(ids)},
        shard_size=shard_size,
    )
    manifest.settings.update(dim=vectors.shape[1], normalize=True)
    store.write_manifest(folder, manifest)
    for shard in range(manifest.num_shards):
        rows = manifest.shard_range(shard)
        store.write_shard(folder, shard, ids[rows.start : rows.stop], ids[rows.start : rows.stop], vectors[rows])


def recall_at_10(rows: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(found) & set(wanted)) / 10 for found, wanted in zip(rows, truth)]))


def measure(prepared, queries: np.ndarray, truth: np.ndarray, multiplier: int | None, label: str) -> dict:
    from vlm2vec_hf.retrieval.search import search_index

    start = time.perf_counter()
    rows, _ = search_index(prepared, queries, top_k=10, rescore_multiplier=multiplier)
    seconds = time.perf_counter() - start
    return {
        "row": label,
        "mode": prepared.mode,
        "rescore_multiplier": multiplier,
        "recall_at_10": recall_at_10(rows, truth),
        "latency_ms_per_query": 1000 * seconds / len(queries),
    }


def run(corpus: int, dim: int, num_queries: int, clusters: int, spread: float, noise: float, seed: int) -> dict:
    from vlm2vec_hf.retrieval.search import index_paths, prepare_folder_index

    vectors = clustered_corpus(corpus, dim, clusters, spread, seed)
    rng = np.random.default_rng(seed + 1)
    queries = vectors[rng.choice(corpus, num_queries, replace=False)]
    queries = queries + noise * rng.standard_normal(queries.shape, dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    start = time.perf_counter()
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    numpy_ms = 1000 * (time.perf_counter() - start) / num_queries

    rows, indexes = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "collection"
        write_folder(folder, vectors)
        del vectors
        for mode in ("exact", "int8", "binary"):
            start = time.perf_counter()
            built = prepare_folder_index(folder, mode)
            build_seconds = time.perf_counter() - start
            paths = index_paths(folder, mode, dim)
            indexes[mode] = {
                "build_s": build_seconds,
                "memory_bytes": int(built.index.memory_usage),
                "index_file_bytes": paths["index"].stat().st_size,
                "rescore_file_bytes": paths["rescore"].stat().st_size if paths["rescore"].is_file() else 0,
            }
            del built
            loaded = prepare_folder_index(folder, mode)
            assert not loaded.built, f"the saved {mode} index was not reused"
            if mode == "exact":
                rows.append(measure(loaded, queries, truth, None, "exact (float32)"))
            for multiplier in INT8_MULTIPLIERS if mode == "int8" else ():
                rows.append(measure(loaded, queries, truth, multiplier, f"int8, rescore x{multiplier}"))
            for multiplier in BINARY_MULTIPLIERS if mode == "binary" else ():
                label = f"binary, rescore x{multiplier} (float vectors on disk)"
                rows.append(measure(loaded, queries, truth, multiplier, label))
            if mode == "binary":  # the helper's own rescoring: float query against the corpus bits
                bits_only = dataclasses.replace(loaded, rescore_vectors=None)
                for multiplier in (4, 16):
                    label = f"binary, helper's rescore x{multiplier} (float query . bits)"
                    rows.append(measure(bits_only, queries, truth, multiplier, label))
    exact_row = rows[0]
    for row in rows:
        row["memory_ratio"] = indexes["exact"]["memory_bytes"] / indexes[row["mode"]]["memory_bytes"]
        row["latency_ratio"] = row["latency_ms_per_query"] / exact_row["latency_ms_per_query"]
        row["meets_goal"] = row["recall_at_10"] >= GOAL["recall_at_10"] and row["memory_ratio"] >= GOAL["memory_ratio"]
    return {
        "setup": {
            "corpus": corpus,
            "dim": dim,
            "queries": num_queries,
            "clusters": clusters,
            "spread": spread,
            "query_noise": noise,
            "seed": seed,
            "raw_float32_bytes": corpus * dim * 4,
            "numpy_exact_ms_per_query": numpy_ms,
        },
        "goal": GOAL,
        "indexes": indexes,
        "rows": rows,
    }


def to_markdown(result: dict) -> str:
    setup, indexes = result["setup"], result["indexes"]
    lines = [
        "# Quantized search against exact search",
        "",
        f"{setup['corpus']:,} unit vectors of {setup['dim']} dimensions around {setup['clusters']} random centres "
        f"(spread {setup['spread']} a dimension); {setup['queries']} queries: corpus points plus noise "
        f"{setup['query_noise']} a dimension, renormalised. Recall@10 against numpy's exact top-10. Every search goes "
        "through `vlm2vec search`'s engine on indexes saved in the folder and loaded back. Latency: wall time per "
        "query in one batch, on this machine's shared CPU cores.",
        "",
        "| search | recall@10 | index memory | memory vs exact | ms / query | latency vs exact | goal |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        memory = indexes[row["mode"]]["memory_bytes"] / 2**20
        goal = "n/a" if row["mode"] == "exact" else ("met" if row["meets_goal"] else "not met")
        lines.append(
            f"| {row['row']} | {row['recall_at_10']:.3f} | {memory:.1f} MiB | {row['memory_ratio']:.1f}x less | "
            f"{row['latency_ms_per_query']:.2f} | {row['latency_ratio']:.2f} | {goal} |"
        )
    binary = indexes["binary"]
    lines += [
        "",
        f"Goal: recall@10 >= {result['goal']['recall_at_10']} at >= {result['goal']['memory_ratio']:.0f}x less memory "
        "than exact. Index memory is usearch's `memory_usage` (vectors plus the minimal graph usearch always keeps). "
        f"Binary mode's rescoring reads only the candidates' rows from a float32 file memory-mapped from disk "
        f"({binary['rescore_file_bytes'] / 2**20:.0f} MiB on disk, not held in RAM); the helper's own rescoring needs "
        "no such file but ranks by float query . bits, which caps recall.",
        "",
        "| index | build s | in RAM | index file | rescoring file (disk) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for mode, info in indexes.items():
        lines.append(
            f"| {mode} | {info['build_s']:.1f} | {info['memory_bytes'] / 2**20:.1f} MiB | "
            f"{info['index_file_bytes'] / 2**20:.1f} MiB | {info['rescore_file_bytes'] / 2**20:.1f} MiB |"
        )
    lines.append(f"\nnumpy float32 matmul + argsort: {setup['numpy_exact_ms_per_query']:.2f} ms / query.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=0.6, help="per-dimension noise around a centre")
    parser.add_argument("--noise", type=float, default=0.03, help="per-dimension noise of a query around its point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.corpus, args.dim, args.queries, args.clusters, args.spread, args.noise, args.seed)
    print(write_result(args.out, "search_quantized", result, to_markdown))


if __name__ == "__main__":
    sys.exit(main())
