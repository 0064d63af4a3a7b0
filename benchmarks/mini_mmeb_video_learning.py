"""Video learning check: train a tiny random-init VLM2Vec model on the mini-MMEB video set with the `vlm2vec` CLI
and record held-out video hit@1 (MMEB-V2 protocol) against training steps.

    python benchmarks/mini_mmeb_video_learning.py [--steps 600] [--eval-steps 50] [--batch-size 32]
        [--learning-rate 3e-4]

Training subsets: `Shapes` (video -> caption), `Shapes-video` (caption -> video) and `Shapes-qa` (video QA), the
MMEB-V2 video training tasks, in interleaved sub-batches (IB = half the batch); eval: `Shapes_t2v` (text -> clip over
the 24 held-out clips), `Shapes_cls` (clip -> caption over the 24 captions) and `Shapes_QA` (2 to 4 options). Writes
`benchmarks/results/mini_mmeb_video_learning.{json,md,png}`. Chance is the mean of 1/candidates over each set's queries.
`--smoke` (a few steps, results under `--out`) only checks that the script runs.
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
from vlm2vec_hf.training.mini_mmeb import VIDEO_TRAIN_SUBSETS

RESULTS = Path(__file__).parent / "results"
STEM = "mini_mmeb_video_learning"


def chance(eval_dir: Path, frame_root: Path) -> dict[str, float]:
    per_dataset = {}
    for dataset in load_mmeb_eval(eval_dir, frame_root):
        sizes = [len(dataset.corpus)] * len(dataset.queries) if dataset.corpus is not None else dataset.candidates
        per_dataset[dataset.name] = float(np.mean([1 / (c if isinstance(c, int) else len(c)) for c in sizes]))
    return {**per_dataset, "mean": float(np.mean(list(per_dataset.values())))}


def run(steps: int, eval_steps: int, batch_size: int, learning_rate: float, workdir: Path) -> dict:
    data, model, run_dir = workdir / "mini-mmeb", workdir / "tiny", workdir / "run"
    assert vlm2vec(["data", "mini-mmeb", "--out", str(data)]) == 0
    assert vlm2vec(["init", "--out", str(model), "--max-pixels", "12544"]) == 0
    frames = data / "video-tasks" / "frames"
    arguments = [
        "train",
        *("--model", str(model), "--data", str(data / "train-video"), "--video-dir", str(frames)),
        *("--subsets", *VIDEO_TRAIN_SUBSETS, "--output-dir", str(run_dir)),
        *("--per-device-train-batch-size", str(batch_size), "--interleave-batch-size", str(batch_size // 2)),
        *("--gc-mini-batch-size", str(max(batch_size // 2, 1)), "--learning-rate", str(learning_rate)),
        *("--warmup-steps", str(min(20, steps // 10)), "--max-steps", str(steps), "--save-steps", str(steps)),
        *("--logging-steps", str(eval_steps), "--eval-data", str(data / "eval-video"), "--eval-image-dir", str(frames)),
        *("--eval-protocol", "v2", "--eval-steps", str(eval_steps), "--seed", "0"),
    ]
    started = time.perf_counter()
    assert vlm2vec(arguments) == 0
    seconds = time.perf_counter() - started
    history = json.loads((run_dir / f"checkpoint-{steps}" / "trainer_state.json").read_text())["log_history"]
    curve = [
        {
            "step": entry["step"],
            **{
                key.removeprefix("eval_mmeb_"): value
                for key, value in entry.items()
                if key.startswith("eval_mmeb_") and key.endswith(("_hit@1", "overall"))
            },
        }
        for entry in history
        if "eval_mmeb_overall" in entry
    ]
    losses = [{"step": entry["step"], "loss": entry["loss"]} for entry in history if "loss" in entry]
    return {
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "train_seconds": seconds,
        "chance": chance(data / "eval-video", frames),
        "curve": curve,
        "loss": losses,
        "command": "vlm2vec " + " ".join(arguments),
    }


def dataset_names(results: dict) -> list[str]:
    return [key.removesuffix("_hit@1") for key in sorted(results["curve"][0]) if key.endswith("_hit@1")]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    steps = [point["step"] for point in results["curve"]]
    for name, color in zip(dataset_names(results), ("tab:blue", "tab:orange", "tab:green")):
        axis.plot(steps, [point[f"{name}_hit@1"] for point in results["curve"]], color=color, label=name)
        axis.axhline(results["chance"][name], color=color, linestyle=":", linewidth=1)
    axis.plot(steps, [point["overall"] for point in results["curve"]], color="black", linewidth=2.5, label="mean")
    axis.axhline(results["chance"]["mean"], color="black", linestyle="--", linewidth=1, label="mean chance")
    axis.set_xlabel(f"training step (batch {results['batch_size']})")
    axis.set_ylabel("held-out hit@1 (MMEB-V2 protocol)")
    axis.set_title("tiny random-init VLM2Vec on mini-MMEB video")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def to_markdown(results: dict) -> str:
    names = dataset_names(results)
    lines = [
        f"Training time: {results['train_seconds']:.0f} s for {results['steps']} steps of batch "
        f"{results['batch_size']}. Command: `{results['command']}`",
        "",
        "| step | " + " | ".join(names) + " | **mean** |",
        "| --- " * (len(names) + 2) + "|",
    ]
    chance_row = [results["chance"][name] for name in names] + [results["chance"]["mean"]]
    lines.append("| chance | " + " | ".join(f"{value:.3f}" for value in chance_row) + " |")
    for point in results["curve"]:
        values = [point[f"{name}_hit@1"] for name in names] + [point["overall"]]
        lines.append(f"| {point['step']} | " + " | ".join(f"{value:.3f}" for value in values) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    # 1e-3 (the image check's rate) collapses the tiny model's clip embeddings to one point within ~100 steps.
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="4 steps of batch 4, evaluated at 0, 2 and 4")
    parser.add_argument("--render-only", action="store_true", help="redraw table and chart from the saved JSON")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.eval_steps, args.batch_size = 4, 2, 4
        if args.out == RESULTS:
            parser.error("--smoke results are not the benchmark's; give --out")
    if args.render_only:
        results = json.loads((args.out / f"{STEM}.json").read_text())
    else:
        with tempfile.TemporaryDirectory() as workdir:
            results = run(args.steps, args.eval_steps, args.batch_size, args.learning_rate, Path(workdir))
    markdown = write_result(args.out, STEM, results, to_markdown)
    plot(results, args.out / f"{STEM}.png")
    print(markdown)


if __name__ == "__main__":
    main()
