"""The README's main job (`vlm2vec demo`), timed from the command line as a new user runs it, in a fresh folder.

Records the wall time of the whole command and the mean hit@1 before / after training (image sets and video sets)
from the run's `summary.json`. Writes `results/main_job.{json,md}`.

    python benchmarks/main_job.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).parent / "results"


def run() -> dict:
    command = shutil.which("vlm2vec") or str(Path(sys.executable).with_name("vlm2vec"))
    env = {key: value for key, value in os.environ.items() if key not in ("HF_ENDPOINT", "HF_TOKEN")}
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        subprocess.run([command, "demo"], cwd=workdir, env=env, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        summary = json.loads((Path(workdir) / "vlm2vec-demo" / "summary.json").read_text())
    return {
        "command": "vlm2vec demo",
        "wall_seconds": seconds,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "mean_hit_at_1_before": summary["mean_hit_at_1_before"],
        "mean_hit_at_1_after": summary["mean_hit_at_1_after"],
        "video_mean_hit_at_1_before": summary["video_mean_hit_at_1_before"],
        "video_mean_hit_at_1_after": summary["video_mean_hit_at_1_after"],
    }


def to_markdown(result: dict) -> str:
    return (
        f"`{result['command']}` on {result['cpu_count']} CPU cores ({result['machine']}): "
        f"{result['wall_seconds']:.0f} s wall time; mean hit@1 on the mini-MMEB eval sets "
        f"{result['mean_hit_at_1_before']:.3f} before training, {result['mean_hit_at_1_after']:.3f} after; on the "
        f"mini video sets (MMEB-V2 protocol) {result['video_mean_hit_at_1_before']:.3f} before, "
        f"{result['video_mean_hit_at_1_after']:.3f} after.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run()
    print(write_result(args.out, "main_job", result, to_markdown))


if __name__ == "__main__":
    main()
