"""Throughput of `vlm2vec embed` against a plain `SentenceTransformer.encode` loop over the same items, 1 process.

(a) `embed_collection` (what `vlm2vec embed TABLE --model M --out DIR` runs): read the table with `datasets`, load
    the model, fingerprint it, write the manifest, check the items, embed shard by shard (items sorted by estimated
    cost, batches of `--batch-size`) and write each parquet shard atomically.
(b) The loop a user writes without it: load the same model, `model.encode(inputs, batch_size=B,
    normalize_embeddings=True)` over the whole list (sentence-transformers sorts it by length), `np.save` the matrix.

Both from the same model folder, on the same items (a table of texts and images of several sizes made from the
bundled images), on CPU, in this process; the timings are whole calls, model loading included, medians of
interleaved repeats measured in one run. The ratio (a)/(b) in items/s is what to read. The two must also agree on
the vectors (max abs difference reported).

    python benchmarks/embed_throughput.py [--size mid] [--items 64] [--batch-size 16] [--repeats 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from vlm2vec_hf.retrieval import store
from vlm2vec_hf.retrieval.embed import EmbedOptions, embed_collection
from vlm2vec_hf.retrieval.inputs import read_collection
from vlm2vec_hf.tiny import BUNDLED_IMAGES, write_random_model

RESULTS = Path(__file__).parent / "results"
TEXTS = [
    "a red bus",
    "Which animal is lying on the rug, and what colour is its fur?",
    "a cup of coffee on a wooden table next to an open book and a pair of glasses",
    "What kind of building stands by the lake in this photograph, and how old might it be?",
]


def write_table(root: Path, count: int) -> Path:
    """`count` rows, half texts, half images (the bundled images at scales 1 to 2.5), as a parquet table."""
    import pandas as pd

    images = sorted(BUNDLED_IMAGES.glob("*.png"))
    rows = []
    for index in range(count):
        if index % 2:
            source = Image.open(images[index % len(images)]).convert("RGB")
            scale = 1 + (index % 7) / 4
            path = root / f"image{index:04d}.png"
            source.resize((int(source.width * scale), int(source.height * scale))).save(path)
            rows.append({"id": f"item{index:04d}", "text": "", "image": path.name})
        else:
            rows.append({"id": f"item{index:04d}", "text": f"{TEXTS[index % 4]} ({index})", "image": None})
    pd.DataFrame(rows).to_parquet(root / "table.parquet")
    return root / "table.parquet"


def run_embed(model_dir: Path, table: Path, out: Path, batch_size: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    options = EmbedOptions(batch_size=batch_size, shard_size=1000, device="cpu", show_progress_bar=False)
    embed_collection(model_dir, read_collection(table), out, options)
    seconds = time.perf_counter() - start
    return seconds, store.read_embeddings(out)[2]


def run_plain_loop(model_dir: Path, table: Path, out: Path, batch_size: int) -> tuple[float, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    inputs = [item.encoder_input() for item in read_collection(table).items]  # the same items, as encode takes them
    start = time.perf_counter()
    model = SentenceTransformer(str(model_dir), trust_remote_code=True, device="cpu")
    vectors = model.encode(inputs, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    np.save(out, vectors)
    return time.perf_counter() - start, vectors


def to_markdown(result: dict) -> str:
    rows = result["rows"]
    lines = [
        "# `vlm2vec embed` vs a plain `SentenceTransformer.encode` loop",
        "",
        f"{result['items']} items (half texts, half images), Qwen2-VL {result['size']} random model "
        f"({result['params_m']:.1f}M parameters), batch size {result['batch_size']}, 1 process, CPU fp32, "
        f"{result['threads']} torch threads; whole calls including model loading (and, for `vlm2vec embed`, "
        "reading the table with `datasets`, fingerprinting, checks and parquet writing); median of "
        f"{result['repeats']} interleaved repeats.",
        "",
        "| pipeline | seconds (median) | items/s | all repeats (s) |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        repeats = ", ".join(f"{s:.2f}" for s in row["seconds"])
        lines.append(f"| {name} | {row['median_seconds']:.2f} | {row['items_per_second']:.1f} | {repeats} |")
    lines += [
        "",
        f"Ratio `vlm2vec embed` / plain loop in items/s: **{result['ratio']:.2f}x**. Largest difference between the "
        f"two pipelines' vectors: {result['max_abs_difference']:.1e}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="mid")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model_dir = write_random_model(scratch / "model", size=args.size)
        table = write_table(scratch, args.items)
        from safetensors import safe_open

        with safe_open(str(next(model_dir.glob("*.safetensors"))), "pt") as weights:
            params_m = sum(int(np.prod(weights.get_slice(name).get_shape())) for name in weights.keys()) / 1e6
        timings: dict[str, list[float]] = {"vlm2vec embed": [], "plain encode loop": []}
        vectors = {}
        run_plain_loop(model_dir, table, scratch / "warm.npy", args.batch_size)  # warm-up: imports, first kernels
        for repeat in range(args.repeats):
            seconds, vectors["vlm2vec embed"] = run_embed(model_dir, table, scratch / f"out{repeat}", args.batch_size)
            timings["vlm2vec embed"].append(seconds)
            seconds, vectors["plain encode loop"] = run_plain_loop(
                model_dir, table, scratch / f"plain{repeat}.npy", args.batch_size
            )
            timings["plain encode loop"].append(seconds)
            print(f"repeat {repeat}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in timings.items()), flush=True)
    rows = {
        name: {
            "seconds": seconds,
            "median_seconds": statistics.median(seconds),
            "items_per_second": args.items / statistics.median(seconds),
        }
        for name, seconds in timings.items()
    }
    result = {
        "size": args.size,
        "params_m": params_m,
        "items": args.items,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "ratio": rows["vlm2vec embed"]["items_per_second"] / rows["plain encode loop"]["items_per_second"],
        "max_abs_difference": float(np.abs(vectors["vlm2vec embed"] - vectors["plain encode loop"]).max()),
    }
    print(write_result(args.out, "embed_throughput", result, to_markdown))


if __name__ == "__main__":
    main()
