"""Learning check: train a tiny random-init VLM2Vec model on the offline mini-MMEB set with the `vlm2vec` CLI and
record held-out hit@1 against training steps.

    python benchmarks/mini_mmeb_learning.py [--steps 400] [--eval-steps 25]

Writes `benchmarks/results/mini_mmeb_learning.{json,md,png}`. Chance is the mean of 1/candidates over the eval
queries. Random weights, CPU, full fine-tuning; the point is that the training path learns, not the score itself.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from vlm2vec_hf.cli import main as vlm2vec
from vlm2vec_hf.evaluation.data import load_mmeb_eval

RESULTS = Path(__file__).parent / "results"


def chance(eval_dir: Path, image_root: Path) -> dict[str, float]:
    per_dataset = {
        d.name: float(np.mean([1 / len(c) for c in d.candidates])) for d in load_mmeb_eval(eval_dir, image_root)
    }
    return {**per_dataset, "mean": float(np.mean(list(per_dataset.values())))}


def run(steps: int, eval_steps: int, workdir: Path) -> dict:
    data, model, run_dir = workdir / "mini-mmeb", workdir / "tiny", workdir / "run"
    assert vlm2vec(["data", "mini-mmeb", "--out", str(data)]) == 0
    assert vlm2vec(["init", "--out", str(model), "--max-pixels", "12544"]) == 0
    arguments = [
        "train",
        "--model",
        str(model),
        "--data",
        str(data / "train"),
        "--image-dir",
        str(data / "images"),
        "--output-dir",
        str(run_dir),
        "--per-device-train-batch-size",
        "32",
        "--gc-mini-batch-size",
        "16",
        "--learning-rate",
        "1e-3",
        "--warmup-steps",
        "20",
        "--max-steps",
        str(steps),
        "--save-steps",
        str(steps),
        "--logging-steps",
        str(eval_steps),
        "--eval-data",
        str(data / "eval"),
        "--eval-steps",
        str(eval_steps),
        "--seed",
        "0",
    ]
    started = time.perf_counter()
    assert vlm2vec(arguments) == 0
    seconds = time.perf_counter() - started
    history = json.loads((run_dir / f"checkpoint-{steps}" / "trainer_state.json").read_text())["log_history"]
    curve = [
        {
            "step": entry["step"],
            **{key.removeprefix("eval_mmeb_"): value for key, value in entry.items() if key.startswith("eval_mmeb_")},
        }
        for entry in history
        if "eval_mmeb_hit@1" in entry
    ]
    losses = [{"step": entry["step"], "loss": entry["loss"]} for entry in history if "loss" in entry]
    return {
        "steps": steps,
        "train_seconds": seconds,
        "chance": chance(data / "eval", data / "images"),
        "curve": curve,
        "loss": losses,
        "command": "vlm2vec " + " ".join(arguments),
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    steps = [point["step"] for point in results["curve"]]
    for key in sorted(results["curve"][0]):
        if key.endswith("_hit@1"):
            axis.plot(
                steps,
                [point[key] for point in results["curve"]],
                linewidth=1,
                alpha=0.6,
                label=key.removesuffix("_hit@1"),
            )
    axis.plot(steps, [point["hit@1"] for point in results["curve"]], color="black", linewidth=2.5, label="mean")
    axis.axhline(results["chance"]["mean"], color="black", linestyle="--", linewidth=1, label="mean chance")
    axis.set_xlabel("training step (batch 32)")
    axis.set_ylabel("held-out hit@1")
    axis.set_title("tiny random-init VLM2Vec on mini-MMEB (CPU)")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def to_markdown(results: dict) -> str:
    names = [key.removesuffix("_hit@1") for key in sorted(results["curve"][0]) if key.endswith("_hit@1")]
    lines = [
        f"Training time: {results['train_seconds']:.0f} s for {results['steps']} steps (CPU). "
        f"Command: `{results['command']}`",
        "",
        "| step | " + " | ".join(names) + " | **mean** |",
        "| --- " * (len(names) + 2) + "|",
    ]
    chance_row = [results["chance"][name] for name in names] + [results["chance"]["mean"]]
    lines.append("| chance | " + " | ".join(f"{value:.3f}" for value in chance_row) + " |")
    for point in results["curve"]:
        values = [point[f"{name}_hit@1"] for name in names] + [point["hit@1"]]
        lines.append(f"| {point['step']} | " + " | ".join(f"{value:.3f}" for value in values) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-steps", type=int, default=25)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render-only", action="store_true", help="redraw table and chart from the saved JSON")
    args = parser.parse_args()
    if args.render_only:
        results = json.loads((args.out / "mini_mmeb_learning.json").read_text())
        write_result(args.out, "mini_mmeb_learning", results, to_markdown)
        plot(results, args.out / "mini_mmeb_learning.png")
        return
    with tempfile.TemporaryDirectory() as workdir:
        results = run(args.steps, args.eval_steps, Path(workdir))
    markdown = write_result(args.out, "mini_mmeb_learning", results, to_markdown)
    plot(results, args.out / "mini_mmeb_learning.png")
    print(markdown)


if __name__ == "__main__":
    main()
