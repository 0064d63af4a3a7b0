"""The `vlm2vec` console command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vlm2vec_hf.model_folder import PUBLISHED_MAX_PIXELS, PUBLISHED_MIN_PIXELS


def _add_convert(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="wrap a Qwen2-VL / Qwen2.5-VL checkpoint folder as a complete VLM2Vec model folder"
    )
    parser.add_argument("--base", required=True, help="backbone checkpoint folder (or Hub id when online)")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument(
        "--position-ids",
        choices=["reference", "native"],
        default="reference",
        help="1-D positions as the published models (reference) or the backbone's M-RoPE (native)",
    )
    parser.add_argument("--prompt-format", choices=["v1", "v2"], default="v1")
    parser.add_argument("--min-pixels", type=int, default=PUBLISHED_MIN_PIXELS)
    parser.add_argument("--max-pixels", type=int, default=PUBLISHED_MAX_PIXELS)
    parser.add_argument("--max-length", type=int, default=None, help="truncate prompts to this many tokens")
    parser.add_argument("--dtype", default=None, help="e.g. float32, bfloat16 (default: the checkpoint's)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")


def _run_convert(args: argparse.Namespace) -> None:
    from vlm2vec_hf.hub_cards.convert import convert_backbone

    folder = convert_backbone(
        args.base,
        args.out,
        position_ids_mode=args.position_ids,
        prompt_format=args.prompt_format,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        max_length=args.max_length,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )
    print(f"Wrote VLM2Vec model folder {folder}")


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build a tiny random model, embed bundled images and texts (offline)")
    parser.add_argument("--out", default="vlm2vec-demo", help="folder for the run's outputs")


def _run_demo(args: argparse.Namespace) -> None:
    from vlm2vec_hf.demo import run_demo

    run_demo(args.out)


COMMANDS = {"convert": (_add_convert, _run_convert), "demo": (_add_demo, _run_demo)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vlm2vec", description="VLM2Vec embedding models on Hugging Face.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(subparsers)
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command][1](args)
    except (OSError, ValueError) as error:
        print(f"vlm2vec {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
