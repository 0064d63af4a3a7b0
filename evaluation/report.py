"""Evaluation reports: a JSON with every metric, a Markdown table in the layout of the papers' Table 2, a PNG bar
chart per meta-task, and a side-by-side comparison with the published per-dataset scores (or, for a model published as
group means only, with those means).

Scores inside `results` are fractions in [0, 1]; reports print them ×100 like the papers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vlm2vec_hf.evaluation.aggregate import SUMMARY_GROUPS, v1_groups, v2_groups
from vlm2vec_hf.evaluation.published import is_summary_model, published_group_means, published_scores


def comparison(results: dict, model: str, release: str = "v2.0.1") -> dict[str, float]:
    """Published scores (×100) of `model` for the datasets in `results` that it has (dataset -> score)."""
    published = published_scores(model, release)
    return {name: published[name] for name in results["datasets"] if name in published}


def group_comparison(results: dict, model: str) -> dict[str, float]:
    """A summary-only model's published group means (×100, each over its whole group) for the groups `results` has."""
    published = published_group_means(model)
    return {name: published[name] for name, group in results["groups"].items() if group["count"] and name in published}


def group_comparison_lines(results: dict, published: dict[str, float], published_name: str) -> list[str]:
    """`group  ours  published  delta` lines for the terminal; the published means are over whole groups."""
    lines = [f"{'group (published: whole group)':<32} {'ours':>7} {published_name[:12]:>12} {'delta':>7}"]
    for name, score in published.items():
        ours = 100 * results["groups"][name]["score"]
        lines.append(f"{name:<32} {ours:7.1f} {score:12.1f} {ours - score:+7.1f}")
    return lines


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _published_groups(results: dict, published: dict[str, float]) -> dict[str, float | None]:
    """Published group means over exactly the datasets we evaluated (and it has), so the two rows compare."""
    scores = {name: published[name] / 100 for name in results["datasets"] if name in published}
    groups = v1_groups(scores) if results["protocol"] == "v1" else v2_groups(scores)
    return {group.name: group.score for group in groups}


def _style_note(results: dict) -> str:
    """`", instructions in the system turn"` for a system-style run (`prompt_style`), else nothing."""
    return ", instructions in the system turn" if results.get("prompt_style") == "system" else ""


def to_markdown(
    results: dict,
    model_name: str,
    published: dict[str, float] | None = None,
    published_name: str = "",
    published_groups: dict[str, float] | None = None,
) -> str:
    """Table 2 layout: group means (with dataset counts) for us and, optionally, the published model (per-dataset
    scores in `published`, or a summary-only model's whole-group means in `published_groups`); then every dataset
    with its headline metric."""
    groups = results["groups"]
    names = [name for name, group in groups.items() if group["count"] or results["protocol"] == "v1"]
    header = "| model | " + " | ".join(f"{name} ({groups[name]['count']})" for name in names) + " |"
    lines = [
        f"MMEB {results['protocol'].upper()} protocol{_style_note(results)}. Scores ×100; (n) = datasets evaluated "
        "in each group; unweighted means.",
        "",
        header,
        "| --- " * (len(names) + 1) + "|",
        f"| {model_name} | " + " | ".join(_pct(groups[name]["score"]) for name in names) + " |",
    ]
    if published is not None and not published:
        lines += ["", f"{published_name} has no published score for any of these datasets."]
        published = None
    if published:
        theirs = _published_groups(results, published)
        lines.append(f"| {published_name} (published) | " + " | ".join(_pct(theirs.get(name)) for name in names) + " |")
    if published_groups is not None:
        cells = [f"{published_groups[name]:.1f}" if name in published_groups else "–" for name in names]
        lines.append(f"| {published_name} (published, whole groups) | " + " | ".join(cells) + " |")
        lines += ["", f"{published_name} is published as group means only, each over all the group's datasets."]
    missing = sorted({dataset for group in groups.values() for dataset in group["missing"]})
    if missing:
        lines += ["", f"Not evaluated ({len(missing)} of the benchmark's datasets): {', '.join(missing)}."]
    lines += [
        "",
        "| dataset | metric | queries | candidates | ranking | ours |" + (" published |" if published else ""),
    ]
    lines.append("| --- " * (7 if published else 6) + "|")
    for name, result in results["datasets"].items():
        row = (
            f"| {name} | {result['headline_metric']} | {result['queries']} | {result['candidates_per_query']:.0f} | "
            f"{result['eval_type']} | {_pct(result['score'])} |"
        )
        if published:
            row += f" {published[name]:.1f} |" if name in published else " – |"
        lines.append(row)
    encoding = results["encoding"]
    lines += [
        "",
        f"Items listed: {encoding['naive_items']}; distinct: {encoding['unique_items']}; encoded this run: "
        f"{encoding['encoded']} ({encoding['from_cache']} from the cache); encodings saved: "
        f"{encoding['forward_passes_saved']}. Wall time {results['seconds']:.1f} s.",
    ]
    if "distributed" in results:
        lines.append(processes_line(results["distributed"]))
    return "\n".join(lines) + "\n"


def processes_line(distributed: dict) -> str:
    """`Processes: 2 (rank 0: 40 items, ~10,496 tokens, 3.1 s; rank 1: ...)`: the world size and each rank's share of
    the encoding (its time unknown, `–`, where sentence-transformers ran the other ranks' share)."""
    shares = "; ".join(
        f"rank {share['rank']}: {share['items']} items, ~{share['estimated_tokens']:,} tokens, "
        + ("–" if share["seconds"] is None else f"{share['seconds']:.1f} s")
        for share in distributed["ranks"]
    )
    return f"Processes: {distributed['world_size']} ({shares})."


def comparison_lines(results: dict, published: dict[str, float], published_name: str) -> list[str]:
    """`dataset  ours  published  delta` lines for the terminal."""
    lines = [f"{'dataset':<28} {'ours':>7} {published_name[:12]:>12} {'delta':>7}"]
    for name, result in results["datasets"].items():
        ours = 100 * result["score"]
        if name in published:
            lines.append(f"{name:<28} {ours:7.1f} {published[name]:12.1f} {ours - published[name]:+7.1f}")
        else:
            lines.append(f"{name:<28} {ours:7.1f} {'–':>12} {'':>7}")
    return lines


def _meta_task_members(results: dict) -> dict[str, list[str]]:
    members = {name: g["datasets"] for name, g in results["groups"].items() if name not in SUMMARY_GROUPS}
    grouped = {dataset for datasets in members.values() for dataset in datasets}
    members["other"] = [name for name in results["datasets"] if name not in grouped]
    return {name: datasets for name, datasets in members.items() if datasets}


def to_png(results: dict, path: Path, model_name: str, published: dict[str, float] | None = None) -> None:
    """One bar chart per meta-task: each dataset's headline score (×100), ours beside the published one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    members = _meta_task_members(results)  # every dataset is in one panel ("other" when in no meta-task)
    fig, axes = plt.subplots(1, len(members), figsize=(3.2 + 1.1 * sum(map(len, members.values())), 3.8), squeeze=False)
    for ax, (task, datasets) in zip(axes[0], members.items()):
        x = np.arange(len(datasets))
        width = 0.4 if published else 0.7
        ours = [100 * results["datasets"][name]["score"] for name in datasets]
        ax.bar(x - (width / 2 if published else 0), ours, width, label=model_name)
        if published:
            theirs = [published.get(name, np.nan) for name in datasets]
            ax.bar(x + width / 2, theirs, width, label="published")
        mean = results["groups"][task]["score"] if task in results["groups"] else None
        ax.set_title(f"{task}" + (f" (mean {100 * mean:.1f})" if mean is not None else ""), fontsize=9)
        ax.set_xticks(x, datasets, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("score ×100")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"MMEB {results['protocol'].upper()}: {model_name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(
    results: dict,
    out_dir: str | Path,
    model_name: str,
    compare: str | None = None,
    release: str = "v2.0.1",
) -> dict[str, Path]:
    """Write `results.json`, `results.md` and `results.png` under `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = bool(compare) and is_summary_model(compare)
    published = comparison(results, compare, release) if compare and not summary else None
    groups = group_comparison(results, compare) if summary else None
    payload = {"model": model_name, **results}
    if summary:
        payload["published"] = {"model": compare, "group_means": groups}
    elif compare:
        payload["published"] = {"model": compare, "release": release, "scores": published}
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md", "png": out_dir / "results.png"}
    paths["json"].write_text(json.dumps(payload, indent=2))
    paths["markdown"].write_text(to_markdown(results, model_name, published, compare or "", groups))
    to_png(results, paths["png"], model_name, published)
    return paths
