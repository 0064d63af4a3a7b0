"""The `vlm2vec` console command.

Building the parser, `--help` and a usage or config error import none of torch, transformers, sentence-transformers
or datasets (tests/test_cli_startup.py checks it): each command imports what it needs in its run function. The
backbone choices and image options come from the family registry (`all_families()`), so a new family reaches
`init` and `convert` with no edit here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from vlm2vec_hf.compat import check_command
from vlm2vec_hf.evaluation.command import add_eval_command, run_eval
from vlm2vec_hf.evaluation.video_tables import add_video_eval_parser, run_video_eval
from vlm2vec_hf.hub_cards.command import add_push_command, run_push
from vlm2vec_hf.modeling_vlm2vec.backbones import DEFAULT_MODEL_TYPE, all_families, all_prompt_formats
from vlm2vec_hf.retrieval.embed_command import add_embed_command, run_embed
from vlm2vec_hf.retrieval.search_command import add_search_command, run_search
from vlm2vec_hf.tiny import init_choices, init_size_choices

# ---- choices and options declared by the backbone families ----------------------------------------------------


def processor_options() -> dict[str, tuple[Any, list[str]]]:
    """Every family's processor options by name: (the first family's `ProcessorOption`, the names of the families
    that take it), in registration order."""
    options: dict[str, tuple[Any, list[str]]] = {}
    for family in all_families():
        for option in family.processor_options:
            options.setdefault(option.name, (option, []))[1].append(family.name)
    return options


def add_processor_options(parser: argparse.ArgumentParser, note: str = "") -> None:
    """One flag per distinct processor option (e.g. `--min-pixels`), its help naming the families that take it."""
    for name, (option, families) in processor_options().items():
        parser.add_argument(
            option.flag, dest=name, type=option.type, help=f"{option.help}; families: {', '.join(families)}{note}"
        )


def given_processor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The processor options the user gave, by name: a family rejects one it does not take, naming it."""
    return {name: value for name in processor_options() if (value := getattr(args, name, None)) is not None}


def _backbone_names() -> str:
    """The backbones `convert` wraps, as model cards name them (each family's `display_name_for`)."""
    names = (family.display_name_for(model_type) for family in all_families() for model_type in family.model_types)
    return ", ".join(dict.fromkeys(names))


def _prompt_format_help() -> str:
    """The default, then which families take which formats (formats taken by the same families share a part)."""
    takers: dict[tuple[str, ...], list[str]] = {}
    for fmt in all_prompt_formats():
        names = tuple(family.display_name for family in all_families() if fmt in family.prompt_formats)
        takers.setdefault(names, []).append(fmt)
    return "; ".join(
        [
            "default: the preset's, else the family's first (v1 for VLM2Vec backbones)",
            *(f"{', '.join(f)}: {', '.join(n)}" for n, f in takers.items()),
        ]
    )


def _position_defaults() -> str:
    return ", ".join(f"{family.name} {family.default_position_ids_mode}" for family in all_families())


def _max_length_help() -> str:
    defaults = [f"{family.name} {family.default_max_length}" for family in all_families() if family.default_max_length]
    families = f"the family's ({', '.join(defaults)}; others 0)" if defaults else "0"
    return f"truncate prompts to this many tokens (0: never; default: the preset's, else {families})"


# ---- commands ----------------------------------------------------------------------------------------------------


def _add_convert(subparsers) -> None:
    from vlm2vec_hf.hub_cards.presets import PRESETS

    parser = subparsers.add_parser(
        "convert",
        help="wrap a backbone checkpoint (plus an optional LoRA/DoRA adapter, merged) as a VLM2Vec model folder; "
        f"backbones: {_backbone_names()}",
    )
    parser.add_argument("--base", help="backbone checkpoint folder or Hub id (default: the preset's base model)")
    parser.add_argument(
        "--adapter",
        help="adapter folder or Hub id to merge: a published VLM2Vec adapter (adapter_config.json + "
        "adapter_model.safetensors/.bin) or a `vlm2vec train --lora` checkpoint (default: the preset's adapter)",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="published checkpoint whose settings are defaults")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument(
        "--position-ids",
        choices=["reference", "native"],
        help="1-D positions as the published VLM2Vec models (reference) or the backbone's M-RoPE (native); "
        "default: the preset's, else the family's (" + _position_defaults() + ")",
    )
    parser.add_argument("--prompt-format", choices=all_prompt_formats(), help=_prompt_format_help())
    add_processor_options(parser, note="; without it: the preset's, else the family's default")
    parser.add_argument("--max-length", type=int, help=_max_length_help())
    parser.add_argument(
        "--image-resize",
        type=int,
        nargs=2,
        metavar=("WIDTH", "HEIGHT"),
        help="resize every image to exactly this size first, as the V1 reference (0 0: never; default: the "
        "preset's, e.g. 1344 1344 for the V1 models, else never)",
    )
    parser.add_argument(
        "--processor",
        help="folder or Hub id of the tokenizer and image processor (default: the preset's, else --base)",
    )
    parser.add_argument("--dtype", default=None, help="e.g. float32, bfloat16 (default: the checkpoint's)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")


def _run_convert(args: argparse.Namespace) -> None:
    from vlm2vec_hf.hub_cards.convert import convert

    folder = convert(
        args.out,
        base=args.base,
        adapter=args.adapter,
        preset=args.preset,
        position_ids_mode=args.position_ids,
        prompt_format=args.prompt_format,
        max_length=args.max_length,
        image_resize=args.image_resize,
        image_processor_options=given_processor_options(args),
        dtype=args.dtype,
        overwrite=args.overwrite,
        processor_source=args.processor,
    )
    print(f"Wrote VLM2Vec model folder {folder}")
    resize = json.loads((folder / "processor_config.json").read_text()).get("image_resize")
    if resize:
        print(f"Every image is resized to {resize[0]}x{resize[1]} before the processor (the V1 protocol).")


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole pipeline offline: mini-MMEB data, tiny model, evaluate, train, evaluate, card, (push)",
    )
    parser.add_argument("--out", default="vlm2vec-demo", help="new folder for the run's outputs")
    parser.add_argument("--steps", type=int, default=300, help="training steps (batch 32)")
    parser.add_argument(
        "--push-to",
        default=None,
        help="Hub repo id to push the trained model to (default: pushed only when "
        "HF_ENDPOINT and a token are set, to <user>/vlm2vec-mini-demo)",
    )


def _run_demo(args: argparse.Namespace) -> None:
    from vlm2vec_hf.demo import run_demo

    run_demo(args.out, steps=args.steps, push_to=args.push_to)


def _add_init(subparsers) -> None:
    parser = subparsers.add_parser(
        "init", help="write a small random-init VLM2Vec model folder (to train from scratch)"
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", choices=init_size_choices(), default="tiny")
    parser.add_argument(
        "--family",
        choices=init_choices(),
        default=DEFAULT_MODEL_TYPE,
        help="a backbone model_type (its default family) or a family name",
    )
    parser.add_argument("--seed", type=int, default=0)
    add_processor_options(parser)
    parser.add_argument("--overwrite", action="store_true")


def _run_init(args: argparse.Namespace) -> None:
    from vlm2vec_hf.tiny import write_random_model

    folder = write_random_model(
        args.out,
        size=args.size,
        family=args.family,
        seed=args.seed,
        overwrite=args.overwrite,
        **given_processor_options(args),
    )
    print(f"Wrote a random-init {args.size} {args.family} VLM2Vec model to {folder}")


def _add_data(subparsers) -> None:
    parser = subparsers.add_parser("data", help="datasets")
    data_commands = parser.add_subparsers(dest="data_command", required=True)
    mini = data_commands.add_parser("mini-mmeb", help="write the offline mini-MMEB train + eval set")
    mini.add_argument("--out", required=True)
    mini.add_argument("--seed", type=int, default=0)
    add_video_eval_parser(data_commands)


def _run_data(args: argparse.Namespace) -> None:
    from vlm2vec_hf.training.mini_mmeb import build_mini_mmeb

    if args.data_command == "video-eval":
        run_video_eval(args)
        return
    out = build_mini_mmeb(args.out, seed=args.seed)
    print(f"Wrote mini-MMEB to {out}: train/ (MMEB-train layout), eval/ (MMEB-eval layout), eval-v2/ (V2), images/")
    print(f"  train: vlm2vec train --model MODEL --data {out}/train --image-dir {out}/images ...")
    print(
        f"  video: vlm2vec train --model MODEL --data {out}/train-video --video-dir {out}/video-tasks/frames "
        "--subsets Shapes Shapes-video Shapes-qa ...  (eval: eval-video/, --image-dir video-tasks/frames)"
    )


def _add_train(subparsers) -> None:
    from vlm2vec_hf.training.cli_options import add_config_flags

    parser = subparsers.add_parser("train", help="contrastive training (YAML config and/or flags)")
    parser.add_argument("--config", help="YAML file with training options; flags override it")
    parser.add_argument("--check-data", action="store_true", help="only check every image path and tag, then exit")
    add_config_flags(parser)


def _run_train(args: argparse.Namespace) -> None:
    from vlm2vec_hf.training.cli_options import config_from_args

    config = config_from_args(args)  # the YAML file's syntax, keys and value types: a one-line error, exit 2
    if args.check_data:
        from vlm2vec_hf.training.data import load_mmeb_train

        subsets = load_mmeb_train(
            config.data,
            config.image_dir,
            config.subsets,
            config.split,
            config.num_sample_per_subset,
            config.hard_negatives,
            video_root=config.video_dir or None,
        )
        print("Data OK: " + ", ".join(f"{name} {len(rows)} rows" for name, rows in subsets.items()))
        return
    config.validate()  # required options and value ranges too, before the trainer (and the model) is even imported
    from vlm2vec_hf.training.trainer import train

    final = train(config)
    print(f"Final model: {final}")


def _add_merge(subparsers) -> None:
    parser = subparsers.add_parser("merge", help="merge a LoRA/DoRA run's adapter into a self-contained model folder")
    parser.add_argument("--adapter", required=True, help="adapter folder (e.g. RUN/final)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--overwrite", action="store_true")


def _run_merge(args: argparse.Namespace) -> None:
    from vlm2vec_hf.training.adapters import merge_adapter_folder

    print(f"Wrote merged model {merge_adapter_folder(args.adapter, args.out, overwrite=args.overwrite)}")


COMMANDS = {
    "convert": (_add_convert, _run_convert),
    "demo": (_add_demo, _run_demo),
    "init": (_add_init, _run_init),
    "data": (_add_data, _run_data),
    "train": (_add_train, _run_train),
    "merge": (_add_merge, _run_merge),
    "eval": (add_eval_command, run_eval),
    "push": (add_push_command, run_push),
    "embed": (add_embed_command, run_embed),
    "search": (add_search_command, run_search),
}


def build_parser() -> argparse.ArgumentParser:
    """The `vlm2vec` parser with every command (no heavy import: see the module docstring)."""
    parser = argparse.ArgumentParser(prog="vlm2vec", description="VLM2Vec embedding models on Hugging Face.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_command(args)  # warns outside the tested versions; fails fast if the command needs a newer peft
        COMMANDS[args.command][1](args)
    except (OSError, ValueError) as error:
        print(f"vlm2vec {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
