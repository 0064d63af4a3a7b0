"""The work split of an evaluation across N processes, simulated (no processes started): items and estimated LLM
tokens per rank at N = 2, 4 and 8 for the cost-balanced split `vlm2vec eval` uses under torchrun (`item_shares`:
longest first to the least-loaded rank, a clip's items together), against a count-balanced round-robin split and
the equal-count, cost-ordered slices the evaluator gives sentence-transformers' trainer (`equal_count_order`).

Two item lists: the distinct items of the offline mini-MMEB eval sets (V1, V2 and video, built in a temporary folder
as `vlm2vec data mini-mmeb` does), and a synthetic skewed corpus (heavy-tailed text lengths, some images, a few
clips). Cost is `item_cost` (`vlm2vec_hf.distributed.estimate_cost`). Target: max / mean tokens per rank <= 1.1 for
the cost split.

    python benchmarks/work_split.py [--out DIR]

Writes `results/work_split.{json,md}`.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).parent / "results"
WORLD_SIZES = (2, 4, 8)
TARGET = 1.1


def mini_mmeb_items() -> list:
    """The distinct items of all mini-MMEB eval sets (V1 `eval`, `eval-v2`, `eval-video`), as one run lists them."""
    from vlm2vec_hf.evaluation.data import load_mmeb_eval
    from vlm2vec_hf.evaluation.evaluator import unique_items
    from vlm2vec_hf.training.mini_mmeb import build_mini_mmeb

    with tempfile.TemporaryDirectory() as folder:
        root = build_mini_mmeb(Path(folder) / "mini-mmeb")
        datasets = [
            *load_mmeb_eval(root / "eval", root / "images"),
            *load_mmeb_eval(root / "eval-v2", root / "images"),
            *load_mmeb_eval(root / "eval-video", root / "video-tasks" / "frames"),
        ]
        return unique_items(datasets)


def skewed_items(count: int = 20000, seed: int = 0) -> list:
    """Texts of log-normal length (median ~60 characters, a tail to 100,000), 20% with an image, 1% clips (each
    clip with 1 to 5 prompts, as a video set lists several prompts per clip)."""
    rng = random.Random(seed)
    items: list = []
    while len(items) < count:
        text = "x" * min(100_000, int(rng.lognormvariate(4.1, 2.0)))
        roll = rng.random()
        if roll < 0.01:
            clip = f"clips/{len(items)}"
            items += [(f"{text} {prompt}", "", clip) for prompt in range(rng.randint(1, 5))]
        elif roll < 0.21:
            items.append((text, f"images/{len(items)}.png"))
        else:
            items.append((text, ""))
    return items[:count]


def split_stats(costs: list[float], shares: list[list[int]]) -> dict:
    """Items and estimated tokens per rank, and max / mean of the tokens."""
    tokens = [float(sum(costs[i] for i in share)) for share in shares]
    return {
        "items": [len(share) for share in shares],
        "tokens": [round(value) for value in tokens],
        "max_over_mean": max(tokens) / (sum(tokens) / len(tokens)),
    }


def measure(items: list) -> dict:
    from vlm2vec_hf.distributed import equal_count_order
    from vlm2vec_hf.evaluation.sharding import item_cost, item_shares

    costs = [item_cost(item) for item in items]
    kinds = {
        "text": sum(len(item) == 2 and not item[1] for item in items),
        "image": sum(len(item) == 2 and bool(item[1]) for item in items),
        "video": sum(len(item) == 3 for item in items),
    }
    per_world = {}
    for world_size in WORLD_SIZES:
        world = range(world_size)
        ordered = np.array_split(np.asarray(equal_count_order(costs, world_size)), world_size)
        per_world[str(world_size)] = {
            "cost": split_stats(costs, item_shares(items, world_size)),
            "round_robin": split_stats(costs, [list(range(rank, len(items), world_size)) for rank in world]),
            "contiguous": split_stats(
                costs, [part.tolist() for part in np.array_split(np.arange(len(items)), world_size)]
            ),
            "equal_count_ordered": split_stats(costs, [part.tolist() for part in ordered]),
        }
    return {"items": len(items), "kinds": kinds, "total_tokens": round(sum(costs)), "world_sizes": per_world}


def to_markdown(result: dict) -> str:
    lines = [
        "Work split of an evaluation's distinct items across N ranks, simulated (no processes). Tokens: estimated LLM "
        "tokens (`estimate_cost`: 4 characters a token, 256 an image, 1024 a clip). cost: `vlm2vec eval` under "
        "torchrun (longest first to the least-loaded rank, a clip's items together); round-robin and contiguous: by "
        "count, every N-th item or N consecutive slices of the listed order (how sentence-transformers' distributed "
        "evaluation cuts an `encode` call); equal-count ordered: contiguous slices of the order the evaluator gives "
        "those calls in the trainer. "
        f"Target: max / mean tokens <= {TARGET} for the cost split.",
        "",
        "| corpus | N | split | items per rank | tokens per rank | max / mean tokens |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "cost": "cost",
        "round_robin": "round-robin",
        "contiguous": "contiguous",
        "equal_count_ordered": "equal-count ordered",
    }
    for corpus, measured in result["corpora"].items():
        for world_size, splits in measured["world_sizes"].items():
            for key, name in names.items():
                stats = splits[key]
                items = ", ".join(map(str, stats["items"]))
                tokens = ", ".join(f"{value:,}" for value in stats["tokens"])
                lines.append(
                    f"| {corpus} | {world_size} | {name} | {items} | {tokens} | {stats['max_over_mean']:.3f} |"
                )
    lines.append("")
    for corpus, measured in result["corpora"].items():
        kinds = ", ".join(f"{count} {kind}" for kind, count in measured["kinds"].items())
        worst = max(splits["cost"]["max_over_mean"] for splits in measured["world_sizes"].values())
        verdict = "meets" if worst <= TARGET else "misses"
        lines.append(
            f"{corpus}: {measured['items']} items ({kinds}), {measured['total_tokens']:,} tokens; the cost split's "
            f"worst max / mean is {worst:.3f}, which {verdict} the target."
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = {"corpora": {"mini-MMEB eval": measure(mini_mmeb_items()), "skewed synthetic": measure(skewed_items())}}
    print(write_result(args.out, "work_split", result, to_markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
