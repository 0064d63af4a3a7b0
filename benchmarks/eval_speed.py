"""MMEB evaluation speed: `MMEBEvaluator` (each distinct item encoded once) against the naive protocol (every query's
candidate list encoded as given, row by row), side by side in one run, on the same model.

Two sets: the offline mini-MMEB eval set (`vlm2vec data mini-mmeb`), and a synthetic classification set shaped like
ImageNet-1K: 1000 image queries (mini-MMEB images), each ranked against the same 1000 label strings. Both paths must
give the same hit@1 (checked). The naive path's cost per query is constant, so with `--naive-queries N` it runs on
the first N queries of the large set and its time and item count are scaled to all queries (said in the output).

    python benchmarks/eval_speed.py [--naive-queries N] [--out DIR]

Writes `results/eval_speed.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).parent / "results"
WORDS = (
    "tench goldfish shark ray cock hen ostrich finch junco bunting robin bulbul jay magpie chickadee dipper kite eagle "
    "vulture owl salamander newt frog turtle terrapin gecko iguana lizard agama chameleon monitor crocodile alligator "
    "triceratops snake boa python cobra mamba viper trilobite spider tick centipede grouse peacock quail partridge "
    "parrot macaw cockatoo lorikeet coucal hornbill hummingbird toucan duck goose swan tusker echidna platypus"
).split()


def imagenet_shaped(data_dir: Path, queries: int = 1000, labels: int = 1000, seed: int = 0):
    """1000 image queries against 1000 shared label candidates (the query's own label first)."""
    from vlm2vec_hf.evaluation.data import EvalDataset
    from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_IMAGE_TAG

    rng = random.Random(seed)
    images = sorted(str(path) for path in (data_dir / "images").rglob("*.png"))
    names = list(dict.fromkeys(", ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(5 * labels)))[:labels]
    query_text = f"{MMEB_IMAGE_TAG} Represent the given image for classification."
    rows, candidates, relevance = [], [], []
    for index in range(queries):
        gold = index % labels
        rows.append((query_text, images[index % len(images)]))
        candidates.append([(names[gold], "")] + [(name, "") for i, name in enumerate(names) if i != gold])
        relevance.append({0: 1.0})
    return EvalDataset("ImageNet-shaped", rows, candidates, relevance)


def naive_hit_at_1(model, dataset, batch_size: int, limit: int | None = None) -> tuple[float, int, float]:
    """Row by row: encode the query and its candidates as given, score, argmax. Returns (hit@1, items, seconds)."""
    from vlm2vec_hf.evaluation.evaluator import encoder_input
    from vlm2vec_hf.evaluation.metrics import hit_at_1_gold_first

    start, hits, items = time.perf_counter(), [], 0
    for query, row in list(zip(dataset.queries, dataset.candidates))[:limit]:
        inputs = [encoder_input(query)] + [encoder_input(item) for item in row]
        vectors = model.encode(inputs, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
        hits.append(hit_at_1_gold_first(vectors[1:] @ vectors[0]))
        items += len(inputs)
    return float(np.mean(hits)), items, time.perf_counter() - start


def ours_hit_at_1(model, datasets, batch_size: int) -> tuple[dict[str, float], int, float]:
    from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator

    evaluator = MMEBEvaluator(datasets, protocol="v1", batch_size=batch_size)
    start = time.perf_counter()
    evaluator(model)
    seconds = time.perf_counter() - start
    scores = {name: result["score"] for name, result in evaluator.results["datasets"].items()}
    return scores, evaluator.results["encoding"]["encoded"], seconds


def run(naive_queries: int | None, batch_size: int = 64) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.cli import main as vlm2vec
    from vlm2vec_hf.evaluation.data import load_mmeb_eval
    from vlm2vec_hf.evaluation.evaluator import encoder_input

    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        model_dir, data_dir = Path(workdir) / "tiny", Path(workdir) / "mini-mmeb"
        assert vlm2vec(["init", "--out", str(model_dir)]) == 0
        assert vlm2vec(["data", "mini-mmeb", "--out", str(data_dir)]) == 0
        model = SentenceTransformer(str(model_dir), trust_remote_code=True, device="cpu")
        mini = load_mmeb_eval(data_dir / "eval", data_dir / "images")
        large = imagenet_shaped(data_dir)
        warm_up = [large.queries[0], mini[0].queries[0], mini[0].candidates[0][0]]
        model.encode([encoder_input(item) for item in warm_up * 8], batch_size=batch_size)  # first-call costs
        for label, datasets, limit in (
            ("mini-MMEB (6 datasets)", mini, None),
            ("ImageNet-shaped", [large], naive_queries),
        ):
            scores, ours_items, ours_seconds = ours_hit_at_1(model, datasets, batch_size)
            naive_items, naive_seconds, naive_scores = 0, 0.0, {}
            for dataset in datasets:
                hit, items, seconds = naive_hit_at_1(model, dataset, batch_size, limit)
                measured = min(limit or len(dataset.queries), len(dataset.queries))
                scale = len(dataset.queries) / measured
                naive_items += round(items * scale)
                naive_seconds += seconds * scale
                naive_scores[dataset.name] = hit
                if measured == len(dataset.queries):
                    assert abs(hit - scores[dataset.name]) < 1e-9, (dataset.name, hit, scores[dataset.name])
                else:  # the same rows, scored the naive way, must agree with ours on those rows
                    ours_subset = ours_hit_at_1(
                        model,
                        [
                            type(dataset)(
                                dataset.name,
                                dataset.queries[:measured],
                                dataset.candidates[:measured],
                                dataset.relevance[:measured],
                            )
                        ],
                        batch_size,
                    )[0][dataset.name]
                    assert abs(hit - ours_subset) < 1e-9, (dataset.name, hit, ours_subset)
            row = {
                "set": label,
                "queries": sum(len(d.queries) for d in datasets),
                "ours_items": ours_items,
                "ours_seconds": ours_seconds,
                "naive_items": naive_items,
                "naive_seconds": naive_seconds,
                "naive_measured_queries": limit,
                "speedup": naive_seconds / ours_seconds,
                "items_ratio": naive_items / ours_items,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"batch_size": batch_size, "device": "cpu", "threads": 2, "model": "tiny random Qwen2-VL", "rows": rows}


def to_markdown(results: dict) -> str:
    lines = [
        f"CPU, {results['threads']} threads, {results['model']} (`vlm2vec init`), batch {results['batch_size']}; "
        "hit@1 of both paths checked equal.",
        "",
        "| set | queries | naive items | our items | naive time (s) | our time (s) | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["rows"]:
        note = f" ({row['naive_measured_queries']} queries measured, scaled)" if row["naive_measured_queries"] else ""
        lines.append(
            f"| {row['set']} | {row['queries']} | {row['naive_items']:,}{note} | {row['ours_items']:,} | "
            f"{row['naive_seconds']:.1f} | {row['ours_seconds']:.1f} | {row['speedup']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-queries", type=int, default=0, help="0 = run the naive path on every query")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(args.naive_queries or None)
    print(write_result(args.out, "eval_speed", results, to_markdown))


if __name__ == "__main__":
    sys.exit(main())
