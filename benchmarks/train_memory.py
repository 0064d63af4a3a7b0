"""Training memory and step time against global batch size: GradCache (`CachedMultipleNegativesRankingLoss` at a
fixed mini-batch) versus the uncached in-batch loss, measured side by side in one run.

Each (loss, batch size) point runs in a fresh subprocess on the same random ~57M-parameter model (`vlm2vec init
--size mid`) with image queries and caption targets from the offline mini-MMEB set, through this project's loss
(`vlm2vec_hf.training.trainer.build_loss`) and AdamW. Memory is the peak resident set size during the training steps
(Linux `VmHWM`, reset after set-up) on CPU, or `torch.cuda.max_memory_allocated` on a GPU; step time is the median
of the steps after the first.

    python benchmarks/train_memory.py [--batch-sizes 16 64 256] [--mini-batch 16] [--steps 3] [--out DIR]

Writes `results/train_memory_minibatch<N>.{json,md,png}`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).parent / "results"


def _rss_peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_rss_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def worker(model_dir: str, data_dir: str, batch_size: int, mini_batch: int, steps: int) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.data import load_mmeb_train

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, trust_remote_code=True, device=device).train()
    loss_fn = build_loss_for(model, TrainConfig(gc_mini_batch_size=mini_batch))
    data = load_mmeb_train(Path(data_dir) / "train", Path(data_dir) / "images", subsets=["Photos_i2t"])["Photos_i2t"]
    rows = [data[i % len(data)] for i in range(batch_size * steps)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def to_input(side: dict):
        return {"text": side["text"], "image": side["image"]} if side["image"] else side["text"]

    batches = []
    for step in range(steps):
        chunk = rows[step * batch_size : (step + 1) * batch_size]
        batches.append(
            (
                model.preprocess([to_input(r["query"]) for r in chunk]),
                model.preprocess([to_input(r["positive"]) for r in chunk]),
            )
        )
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_rss_peak()
    baseline = torch.cuda.memory_allocated() / 2**20 if device == "cuda" else _rss_peak_mib()
    times = []
    for queries, targets in batches:
        started = time.perf_counter()
        optimizer.zero_grad()
        features = [{k: v.to(device) if hasattr(v, "to") else v for k, v in f.items()} for f in (queries, targets)]
        loss = loss_fn(features, labels=None)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_peak_mib()
    return {
        "device": device,
        "peak_mib": peak,
        "baseline_mib": baseline,
        "step_seconds": statistics.median(times[1:] if len(times) > 1 else times),
        "final_loss": float(loss),
    }


def build_loss_for(model, config):
    from vlm2vec_hf.training.trainer import build_loss

    return build_loss(model, config)


def measure(model_dir: Path, data_dir: Path, batch_size: int, mini_batch: int, steps: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        str(model_dir),
        str(data_dir),
        str(batch_size),
        str(mini_batch),
        str(steps),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(batch_sizes: list[int], mini_batch: int, steps: int) -> dict:
    from vlm2vec_hf.cli import main as vlm2vec

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        model_dir, data_dir = Path(workdir) / "mid", Path(workdir) / "mini-mmeb"
        assert vlm2vec(["init", "--out", str(model_dir), "--size", "mid", "--max-pixels", "12544"]) == 0
        assert vlm2vec(["data", "mini-mmeb", "--out", str(data_dir)]) == 0
        for batch_size in batch_sizes:
            for label, chunk in (("cached", mini_batch), ("uncached", 0)):
                point = measure(model_dir, data_dir, batch_size, chunk, steps)
                rows.append({"loss": label, "batch_size": batch_size, "mini_batch": chunk or None, **point})
                print(
                    f"{label:>8} batch {batch_size:>4}: peak {point['peak_mib']:8.0f} MiB, "
                    f"step {point['step_seconds']:7.2f} s",
                    flush=True,
                )
    by = {(row["loss"], row["batch_size"]): row for row in rows}
    smallest, largest = min(batch_sizes), max(batch_sizes)
    summary = {
        "cached_peak_ratio_largest_vs_smallest": by["cached", largest]["peak_mib"] / by["cached", smallest]["peak_mib"],
        "uncached_peak_ratio_largest_vs_smallest": by["uncached", largest]["peak_mib"]
        / by["uncached", smallest]["peak_mib"],
        "cached_vs_uncached_step_time": {
            str(b): by["cached", b]["step_seconds"] / by["uncached", b]["step_seconds"] for b in batch_sizes
        },
        "cached_vs_uncached_peak": {
            str(b): by["cached", b]["peak_mib"] / by["uncached", b]["peak_mib"] for b in batch_sizes
        },
    }
    return {"mini_batch": mini_batch, "steps": steps, "rows": rows, "summary": summary}


def to_markdown(results: dict) -> str:
    rows = results["rows"]
    lines = [
        f"Device: {rows[0]['device']}; model: random ~57M-parameter Qwen2-VL (`vlm2vec init --size mid`); "
        f"GradCache mini-batch {results['mini_batch']}; median step time of {results['steps']} steps.",
        "",
        "| loss | global batch | peak memory (MiB) | step time (s) |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(f"| {row['loss']} | {row['batch_size']} | {row['peak_mib']:.0f} | {row['step_seconds']:.2f} |")
    summary = results["summary"]
    lines += [
        "",
        f"- cached peak memory, largest / smallest batch: "
        f"{summary['cached_peak_ratio_largest_vs_smallest']:.2f}x (uncached: "
        f"{summary['uncached_peak_ratio_largest_vs_smallest']:.2f}x)",
        "- cached / uncached step time: "
        + ", ".join(f"batch {b}: {r:.2f}x" for b, r in summary["cached_vs_uncached_step_time"].items()),
        "- cached / uncached peak memory: "
        + ", ".join(f"batch {b}: {r:.2f}x" for b, r in summary["cached_vs_uncached_peak"].items()),
    ]
    return "\n".join(lines) + "\n"


def to_png(results: dict, path: Path) -> None:
    """Peak memory (MiB) and step time (s) against global batch size, cached vs uncached."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory_ax, time_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, style in (("cached", "o-"), ("uncached", "s--")):
        points = sorted(
            (r["batch_size"], r["peak_mib"], r["step_seconds"]) for r in results["rows"] if r["loss"] == label
        )
        sizes = [p[0] for p in points]
        name = f"GradCache (mini-batch {results['mini_batch']})" if label == "cached" else "uncached"
        memory_ax.plot(sizes, [p[1] for p in points], style, label=name)
        time_ax.plot(sizes, [p[2] for p in points], style, label=name)
    for ax, ylabel in ((memory_ax, "peak memory (MiB)"), (time_ax, "step time (s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("global batch size")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    memory_ax.legend()
    fig.suptitle(f"Training step on a random 57M Qwen2-VL, {results['rows'][0]['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        model_dir, data_dir, batch_size, mini_batch, steps = sys.argv[2:7]
        print(json.dumps(worker(model_dir, data_dir, int(batch_size), int(mini_batch), int(steps))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--mini-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(args.batch_sizes, args.mini_batch, args.steps)
    stem = f"train_memory_minibatch{args.mini_batch}"
    markdown = write_result(args.out, stem, results, to_markdown)
    to_png(results, args.out / f"{stem}.png")
    print(markdown)


if __name__ == "__main__":
    main()
