"""`vlm2vec eval`: score a model on MMEB-format data and write the JSON / Markdown / PNG reports."""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlm2vec_hf.distributed import Ranks


def add_eval_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a model on MMEB data (V1 or V2 protocol); writes results.json, results.md, results.png",
    )
    parser.add_argument("--model", required=True, help="model folder or Hub id (loaded with trust_remote_code=True)")
    parser.add_argument("--data", required=True, help="MMEB-eval folder (one sub-folder per dataset) or Hub id")
    parser.add_argument(
        "--image-dir",
        required=True,
        help="root the data's image paths and clips (frame folders, videos) are relative to",
    )
    parser.add_argument("--subsets", nargs="+", help="dataset names (default: every dataset folder under --data)")
    parser.add_argument("--protocol", choices=["v1", "v2"], default="v1", help="MMEB-V1 hit@1 or MMEB-V2 metrics")
    parser.add_argument("--out", default=None, help="report folder (default: <model folder>/eval or ./eval)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache-dir", default=None, help="reuse embeddings across runs of the same model")
    parser.add_argument(
        "--compare",
        default=None,
        help="print and plot the published scores of this model beside ours "
        "(e.g. VLM2Vec-V2.0, VLM2Vec-Qwen2VL-2B, TIGER-Lab/VLM2Vec-Qwen2VL-7B); a model published as group means "
        "only (summary_model_aliases in tables/mmeb.yaml) shows those means",
    )
    parser.add_argument("--release", default="v2.0.1", choices=["v2.0.0", "v2.0.1"], help="published score release")
    parser.add_argument(
        "--prompt-style",
        choices=["auto", "inline", "system"],
        default="auto",
        help="MMEB-V2 inputs: VLM2Vec's prompt strings (inline) or the instruction in its own turn (system, as the "
        "MMEB-V2 scripts of system-turn embedders build them); auto: the model's prompt format decides",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--name", default=None, help="model name in the reports (default: the --model value)")


def evaluate_and_report(
    model,
    data: str | Path,
    image_dir: str | Path,
    out: str | Path,
    name: str,
    *,
    subsets: list[str] | None = None,
    protocol: str = "v1",
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    compare: str | None = None,
    release: str = "v2.0.1",
    show_progress_bar: bool | None = None,
    prompt_style: str = "auto",
) -> tuple[dict, dict[str, Path]]:
    """Score a loaded `SentenceTransformer` on the MMEB data at `data` and write the reports to `out`.

    `prompt_style`: `"inline"` or `"system"` (`data.PROMPT_STYLES`), or `"auto"`: the model processor's
    `instruction_turn`. Under `torchrun` / `accelerate launch` (an initialised process group), every rank calls this
    and encodes a share of the items; rank 0 alone writes the reports (the other ranks get no paths). Returns the
    evaluator's results (with `skipped`: the sub-folders of `data` that were not
    datasets, as `{"name", "reason"}`, empty when `subsets` are named; and `prompt_style`) and the report paths
    (`json`, `markdown`, `png`).
    """
    from vlm2vec_hf.distributed import group_ranks
    from vlm2vec_hf.evaluation.data import load_mmeb_eval
    from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator
    from vlm2vec_hf.evaluation.report import write_reports

    if prompt_style == "auto":
        prompt_style = model_prompt_style(model)
    datasets = load_mmeb_eval(data, image_dir, names=subsets, prompt_style=prompt_style)
    evaluator = MMEBEvaluator(
        datasets, protocol=protocol, batch_size=batch_size, cache_dir=cache_dir, show_progress_bar=show_progress_bar
    )
    evaluator(model)
    evaluator.results["skipped"] = [asdict(entry) for entry in datasets.skipped]
    evaluator.results["prompt_style"] = prompt_style
    if not group_ranks().is_main:  # under torchrun, rank 0 alone writes the reports
        return evaluator.results, {}
    return evaluator.results, write_reports(evaluator.results, out, name, compare=compare, release=release)


def model_prompt_style(model) -> str:
    """The prompt style a loaded model's processor asks for (`"inline"` for a model without one)."""
    return getattr(getattr(model[0], "processor", None), "instruction_turn", "inline")


def skipped_lines(results: dict) -> list[str]:
    """One line per data sub-folder the run passed over, e.g. `Skipped images/: no test data`."""
    from vlm2vec_hf.evaluation.data import SkippedFolder

    return [str(SkippedFolder(**entry)) for entry in results.get("skipped", [])]


def run_eval(args: argparse.Namespace) -> None:
    from vlm2vec_hf.distributed import init_process_group
    from vlm2vec_hf.evaluation.published import check_published

    if args.compare:
        check_published(args.compare, args.release)  # an unknown name fails before any encoding
    ranks = init_process_group()  # one process unless launched by torchrun / accelerate launch
    try:
        run_eval_on_rank(args, ranks)
    finally:
        if ranks.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


def run_eval_on_rank(args: argparse.Namespace, ranks: Ranks) -> None:
    """`vlm2vec eval` in one process, or as one rank of several (its device from its local rank); rank 0 prints."""
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.distributed import device_for
    from vlm2vec_hf.evaluation.published import is_summary_model
    from vlm2vec_hf.evaluation.report import comparison, comparison_lines, group_comparison, group_comparison_lines

    logging.basicConfig(level=logging.INFO if ranks.is_main else logging.WARNING, format="%(message)s")
    model = SentenceTransformer(args.model, trust_remote_code=True, device=device_for(ranks, args.device))
    if args.out:
        out = Path(args.out)
    else:
        out = Path(args.model) / "eval" if Path(args.model).is_dir() else Path("eval")
    results, paths = evaluate_and_report(
        model,
        args.data,
        args.image_dir,
        out,
        args.name or args.model,
        subsets=args.subsets,
        protocol=args.protocol,
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
        compare=args.compare,
        release=args.release,
        show_progress_bar=ranks.is_main,
        prompt_style=args.prompt_style,
    )
    if not ranks.is_main:
        return
    print(paths["markdown"].read_text())
    for line in skipped_lines(results):
        print(line)
    if args.compare and is_summary_model(args.compare):
        print("\n".join(group_comparison_lines(results, group_comparison(results, args.compare), args.compare)))
    elif args.compare:
        print("\n".join(comparison_lines(results, comparison(results, args.compare, args.release), args.compare)))
    print(f"Reports: {paths['json']}, {paths['markdown']}, {paths['png']}")
