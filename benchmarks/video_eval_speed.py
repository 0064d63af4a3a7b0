"""Video-retrieval evaluation speed: `MMEBEvaluator` (each distinct clip item encoded once, video items batched in one
length-sorted call) against the naive protocol (every query's candidates encoded for that query), side by side in
one run on the same model.

The set is shaped like MSR-VTT (MMEB-V2 V-RET, global ranking): N text queries (`Find a video that contains the
following visual content: <caption>`), each ranked against the pool of all N clips (`<|video_1|> Understand the
content of the provided video.` + the clip's frame folder, 16 generated frames, 8 sampled by the model). The naive
path encodes the query and the whole pool per query, i.e. N x (N + 1) items; with `--naive-queries K` it runs on the
first K queries and its time and item count are scaled to all N (said in the output). Both paths must give the same
hit@1 on the rows they both score (checked).

    python benchmarks/video_eval_speed.py [--clips N] [--naive-queries K] [--frame-size W H] [--out DIR]

Writes `results/video_eval_speed.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).parent / "results"
SHAPES = ("square", "bar", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}


def write_clips(root: Path, count: int, frames: int, size: tuple[int, int]) -> list[tuple[str, str]]:
    """`count` frame folders of `frames` PNGs: a coloured shape moving across a grey frame. Returns
    `(relative folder, caption)` per clip."""
    from PIL import Image, ImageDraw

    width, height = size
    clips = []
    for index in range(count):
        shape, (colour, rgb) = SHAPES[index % len(SHAPES)], list(COLOURS.items())[(index // 3) % len(COLOURS)]
        speed = 1 + index % 5
        folder = root / "frames" / f"clip{index:05d}"
        folder.mkdir(parents=True)
        for t in range(frames):
            background = (90 + index % 60, 90 + index // 60 % 60, 90)  # no two clips alike (ties would differ)
            image = Image.new("RGB", (width, height), background)
            x = (t * speed * width // frames) % width
            draw = ImageDraw.Draw(image)
            if shape == "square":
                draw.rectangle((x, height // 3, x + width // 6, height // 3 + width // 6), fill=rgb)
            elif shape == "bar":
                draw.rectangle((x, 0, x + width // 12, height), fill=rgb)
            else:
                draw.line((x, 0, x + width // 4, height), fill=rgb, width=4)
                draw.line((x + width // 4, 0, x, height), fill=rgb, width=4)
            image.save(folder / f"{t:04d}.png")
        clips.append((f"frames/{folder.name}", f"a {colour} {shape} moving at speed {speed} (clip {index})"))
    return clips


def retrieval_set(root: Path, clips: list[tuple[str, str]]):
    """The MSR-VTT-shaped dataset, through the real loader (prompts, clip checks, global pool)."""
    from vlm2vec_hf.evaluation.data import load_mmeb_eval

    folder = root / "MSR-VTT"
    folder.mkdir()
    rows = [{"qry_text": caption, "qry_video": "", "tgt_text": [], "tgt_video": [clip]} for clip, caption in clips]
    (folder / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_mmeb_eval(root, root, names=["MSR-VTT"])[0]


def naive(model, dataset, batch_size: int, limit: int | None) -> tuple[list[float], int, float]:
    """Per query: encode the query and every candidate of its pool, rank, hit@1. Returns (hits, items, seconds)."""
    from vlm2vec_hf.evaluation.evaluator import encoder_input
    from vlm2vec_hf.evaluation.metrics import rank, ranking_metrics

    start, hits, items = time.perf_counter(), [], 0
    pool = [encoder_input(item) for item in dataset.corpus]
    for query, relevance in list(zip(dataset.queries, dataset.relevance))[:limit]:
        vectors = model.encode(
            [encoder_input(query)] + pool, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True
        )
        hits.append(ranking_metrics(rank(vectors[1:] @ vectors[0]), relevance)["hit@1"])
        items += 1 + len(pool)
    return hits, items, time.perf_counter() - start


def ours(model, dataset, batch_size: int) -> tuple[list[float], int, float]:
    """`MMEBEvaluator` (v2 protocol). Returns (per-query hit@1, items encoded, seconds)."""
    from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator, unique_items
    from vlm2vec_hf.evaluation.metrics import rank, ranking_metrics

    evaluator = MMEBEvaluator([dataset], protocol="v2", batch_size=batch_size)
    start = time.perf_counter()
    evaluator(model)
    seconds = time.perf_counter() - start
    items = unique_items([dataset])
    embeddings, _ = evaluator.embed(model, items)  # again, outside the timing, for the per-query hits
    index = {item: position for position, item in enumerate(items)}
    pool = embeddings[[index[item] for item in dataset.corpus]]
    hits = [
        ranking_metrics(rank(pool @ embeddings[index[query]]), relevance)["hit@1"]
        for query, relevance in zip(dataset.queries, dataset.relevance)
    ]
    assert abs(np.mean(hits) - evaluator.results["datasets"][dataset.name]["score"]) < 1e-9
    return hits, evaluator.results["encoding"]["encoded"], seconds


def run(clips: int, naive_queries: int | None, frame_size: tuple[int, int], batch_size: int, device: str) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.cli import main as vlm2vec
    from vlm2vec_hf.evaluation.evaluator import encoder_input

    if device == "cpu":
        torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as workdir:
        root, model_dir = Path(workdir) / "data", Path(workdir) / "tiny"
        assert vlm2vec(["init", "--out", str(model_dir)]) == 0
        model = SentenceTransformer(str(model_dir), trust_remote_code=True, device=device)
        dataset = retrieval_set(root, write_clips(root, clips, 16, frame_size))
        warm_up = [encoder_input(item) for item in (dataset.queries[0], dataset.corpus[0])]
        model.encode(warm_up * 4, batch_size=batch_size)  # first-call costs
        processor = model[0].processor
        cache_bytes = processor.clip_cache_bytes
        processor.clip_cache_bytes = 0  # empties the prepared-clip cache (the warm-up's clip)
        processor.clip_cache_bytes = cache_bytes
        our_hits, our_items, our_seconds = ours(model, dataset, batch_size)
        # The naive protocol decodes every clip each time it is listed, as the reference does: no clip cache.
        processor.clip_cache_bytes = 0
        naive_hits, naive_items, naive_seconds = naive(model, dataset, batch_size, naive_queries)
        measured = len(naive_hits)
        assert naive_hits == our_hits[:measured], "the naive and our rankings disagree"
        scale = len(dataset.queries) / measured
        row = {
            "set": f"MSR-VTT-shaped ({clips} text queries x {clips}-clip pool)",
            "queries": len(dataset.queries),
            "pool": len(dataset.corpus),
            "hit@1": float(np.mean(our_hits)),
            "ours_items": our_items,
            "ours_seconds": our_seconds,
            "naive_items": round(naive_items * scale),
            "naive_seconds": naive_seconds * scale,
            "naive_measured_queries": measured if measured < len(dataset.queries) else None,
            "speedup": naive_seconds * scale / our_seconds,
            "items_ratio": naive_items * scale / our_items,
        }
        print(json.dumps(row), flush=True)
    return {
        "batch_size": batch_size,
        "device": device,
        "frame_size": list(frame_size),
        "frames_per_clip": "16 source, 8 sampled",
        "model": "tiny random Qwen2-VL",
        "rows": [row],
    }


def to_markdown(results: dict) -> str:
    width, height = results["frame_size"]
    lines = [
        f"{results['device']}, {results['model']} (`vlm2vec init`), batch {results['batch_size']}, clips of "
        f"{results['frames_per_clip']} frames of {width}x{height}; hit@1 of both paths checked equal. The naive "
        "path runs with the prepared-clip cache off (every listed clip decoded), ours with it on (default 1 GiB).",
        "",
        "| set | naive items | our items | naive time (s) | our time (s) | speed-up | items ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["rows"]:
        note = f" ({row['naive_measured_queries']} queries measured, scaled)" if row["naive_measured_queries"] else ""
        lines.append(
            f"| {row['set']} | {row['naive_items']:,}{note} | {row['ours_items']:,} | {row['naive_seconds']:.1f} | "
            f"{row['ours_seconds']:.1f} | {row['speedup']:.1f}x | {row['items_ratio']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="queries = clips in the pool")
    parser.add_argument("--naive-queries", type=int, default=0, help="0 = run the naive path on every query")
    parser.add_argument("--frame-size", type=int, nargs=2, default=(112, 84), metavar=("W", "H"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(args.clips, args.naive_queries or None, tuple(args.frame_size), args.batch_size, args.device)
    print(write_result(args.out, "video_eval_speed", results, to_markdown))


if __name__ == "__main__":
    sys.exit(main())
