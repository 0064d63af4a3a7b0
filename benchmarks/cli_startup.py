"""CLI start-up: `vlm2vec --help` as it runs now, against the old start-up, which imported torch, transformers,
sentence-transformers, datasets and peft before it parsed anything, side by side in one run.

Each run is a fresh process (the two sides alternate, so both see the same machine load); the result is the median.
The machine's load average is recorded before and after, as other work on the machine slows both sides.

    python benchmarks/cli_startup.py [--runs N] [--out DIR]

Writes `results/cli_startup.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).parent / "results"
HEAVY = ("torch", "transformers", "sentence_transformers", "datasets", "peft")
HELP = "from vlm2vec_hf.cli import main; main(['--help'])"
SIDES = {
    "old: heavy imports, then --help": f"import {', '.join(HEAVY)}; {HELP}",
    "new: vlm2vec --help": HELP,
}


def seconds(code: str) -> float:
    """Wall time of a fresh `python -c code` (its output discarded)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def heavy_modules_loaded(code: str) -> list[str]:
    """Which of `HEAVY` a fresh process running `code` has imported by its end."""
    loaded = f"json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    probe = f"import json, sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\nprint({loaded})"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(runs: int) -> dict:
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(runs):
        for side, code in SIDES.items():
            times[side].append(seconds(code))
    load_after = os.getloadavg()
    rows = [
        {
            "side": side,
            "command": f"python -c {code!r}",
            "seconds": times[side],
            "median_seconds": statistics.median(times[side]),
            "heavy_modules_loaded": heavy_modules_loaded(code),
        }
        for side, code in SIDES.items()
    ]
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": runs,
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "rows": rows,
        "speedup": rows[0]["median_seconds"] / rows[1]["median_seconds"],
    }


def to_markdown(result: dict) -> str:
    load = lambda values: " / ".join(f"{value:.2f}" for value in values)  # noqa: E731
    lines = [
        f"`vlm2vec --help`, {result['runs']} fresh processes per side (alternating), median; measured "
        f"{result['date']}, load average (1 / 5 / 15 min) {load(result['load_average_before'])} before and "
        f"{load(result['load_average_after'])} after.",
        "",
        "| side | median (s) | runs (s) | heavy modules loaded |",
        "| --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        runs = ", ".join(f"{value:.2f}" for value in row["seconds"])
        heavy = ", ".join(row["heavy_modules_loaded"]) or "none"
        lines.append(f"| {row['side']} | {row['median_seconds']:.2f} | {runs} | {heavy} |")
    lines += ["", f"Speed-up: {result['speedup']:.1f}x."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(write_result(args.out, "cli_startup", measure(args.runs), to_markdown))


if __name__ == "__main__":
    main()
