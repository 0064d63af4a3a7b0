"""`vlm2vec train` flags, generated from `TrainConfig` so the YAML keys and the flags never drift apart.

Every field `lora_r` is accepted as `--lora-r` and as the reference's spelling `--lora_r`; booleans also take
`--no-...`; lists take several values. Only flags actually given override the YAML file.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from vlm2vec_hf.training.config import TrainConfig

HELP = {
    "model": "VLM2Vec model folder or Hub id to start from (vlm2vec convert / vlm2vec init make one)",
    "data": "MMEB-train folder (<subset>/<split>.parquet|.jsonl|save_to_disk) or Hub dataset id",
    "image_dir": "image root the data's image paths are relative to",
    "video_dir": "video root the video subsets' clips (frame folders or video files) are relative to",
    "output_dir": "run folder: checkpoint-*/, final/ (and merged/)",
    "subsets": "subsets to train on (default: every subset found)",
    "split": "original | diverse_instruction | train",
    "num_sample_per_subset": "keep the first N rows of each subset",
    "skip_data_check": "skip the up-front check of every image path and tag",
    "temperature": "InfoNCE temperature; the logit scale is 1/temperature",
    "gc_mini_batch_size": "GradCache mini-batch (0 = plain in-batch loss)",
    "hard_negatives": "use the neg_text / neg_image_path columns as hard negatives",
    "matryoshka_dims": "train these embedding prefixes too (MatryoshkaLoss)",
    "batch_per_subset": "draw every batch from a single subset",
    "overwrite_output_dir": "start a new run in an output_dir that already holds checkpoints or a final model",
    "interleave_batch_size": "the reference's IB: batches made of blocks of this many samples from one subset",
    "lora": "train a LoRA/DoRA adapter on the language model instead of all weights",
    "use_dora": "DoRA (the reference's choice) rather than plain LoRA",
    "merge": "after a LoRA run, also write <output_dir>/merged",
    "use_cpu": "train on CPU even when an accelerator is present",
    "eval_data": "MMEB-eval folder; hit@1 per dataset every eval_steps",
    "eval_protocol": "v1 (hit@1, ties to the gold) or v2 (ranking metrics, the protocol of the video tasks)",
    "resume": "continue from the last checkpoint-* in output_dir",
    "push_to_hub": "after training, push <output_dir>/merged (or final) to the Hub repo hub_model_id "
    "(token: HF_TOKEN or the stored login)",
    "hub_model_id": "Hub repo to push to: namespace/name",
    "hub_private": "create the Hub repo private",
    "hub_revision": "Hub branch to push to (created from main when missing)",
}


def _field_type(annotation) -> tuple[type, bool]:
    """(element type, is_list) of a field annotation such as `int | None` or `list[int] | None`."""
    hints = typing.get_type_hints(TrainConfig)
    annotation = hints.get(annotation, annotation)
    options = [arg for arg in typing.get_args(annotation) if arg is not type(None)] or [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = options[0]
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    for field in dataclasses.fields(TrainConfig):
        kind, is_list = _field_type(field.name)
        names = [f"--{field.name.replace('_', '-')}"]
        if "_" in field.name:
            names.append(f"--{field.name}")
        kwargs: dict = {"dest": field.name, "default": argparse.SUPPRESS, "help": HELP.get(field.name)}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind
            if is_list:
                kwargs["nargs"] = "+"
        parser.add_argument(*names, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig.from_yaml(args.config) if getattr(args, "config", None) else TrainConfig()
    field_names = {field.name for field in dataclasses.fields(TrainConfig)}
    return config.updated({key: value for key, value in vars(args).items() if key in field_names})
