"""Training configuration: one dataclass, filled from a YAML file and then from command-line flags.

Field names follow the reference's arguments where they mean the same thing (`lora_r`, `lora_alpha`,
`num_sample_per_subset`, `per_device_train_batch_size`, `gc_mini_batch_size` ~ `gc_q_chunk_size`, ...).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from dataclasses import dataclass, field

from vlm2vec_hf.yaml_files import YAMLFileError, read_yaml


class ConfigError(ValueError):
    """A training option of the wrong type, an unknown key, or a YAML file that does not parse; the message is one
    line naming the file (when there is one) and the key. A `ValueError`, so the CLI reports it as a usage error."""


@dataclass
class TrainConfig:
    # What to train, on what, and where to write.
    model: str = ""  # a VLM2Vec model folder or Hub id (`vlm2vec convert` / `vlm2vec init` make one)
    data: str = ""  # MMEB-train folder or Hub dataset id
    image_dir: str = ""  # image root the data's image paths are relative to
    video_dir: str = ""  # video root the video subsets' clips (frame folders / files) are relative to
    output_dir: str = "runs/vlm2vec"
    subsets: list[str] | None = None
    split: str = "original"
    num_sample_per_subset: int | None = None
    skip_data_check: bool = False  # the up-front image/tag check; skip only for huge remote mounts
    # Objective.
    temperature: float = 0.02
    gc_mini_batch_size: int | None = 8  # GradCache chunk; 0 / None = plain (uncached) in-batch loss
    hard_negatives: bool = False
    matryoshka_dims: list[int] | None = None
    batch_per_subset: bool = False  # every batch from one subset (IB = batch size)
    interleave_batch_size: int | None = None  # the reference's IB: batches of blocks of IB samples from one subset
    # Adapters.
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 64
    lora_dropout: float = 0.1
    # comma-separated, or a YAML list; None: the backbone family's reference list
    lora_target_modules: str | list[str] | None = None
    use_dora: bool = True
    merge: bool = False  # after a LoRA run, also write a merged, self-contained model to <output_dir>/merged
    # Optimisation (reference V2 defaults: lr 5e-5, warmup 100, linear, 5000 steps, batch 1024 over 8 GPUs).
    per_device_train_batch_size: int = 128
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    max_steps: int = 5000
    warmup_steps: int = 100
    lr_scheduler_type: str = "linear"
    bf16: bool = False
    use_cpu: bool = False  # train on CPU even with an accelerator (always the case without one)
    gradient_checkpointing: bool = False
    seed: int = 42
    dataloader_num_workers: int = 0
    # Bookkeeping.
    save_steps: int = 500
    save_total_limit: int | None = None
    logging_steps: int = 10
    report_to: list[str] = field(default_factory=lambda: ["none"])
    eval_data: str | None = None  # MMEB-eval folder; evaluated every eval_steps
    eval_image_dir: str | None = None
    eval_protocol: str = "v1"  # v1 (hit@1, ties to the gold) or v2 (ranking; video tasks' published protocol)
    eval_steps: int | None = None
    eval_batch_size: int = 32
    resume: bool = False  # continue from the last checkpoint in output_dir
    overwrite_output_dir: bool = False  # allow a new run in an output_dir that holds an earlier run
    # Hub (the token comes from HF_TOKEN / the stored login, never from the config).
    push_to_hub: bool = False  # push <output_dir>/merged if written, else <output_dir>/final, at the end
    hub_model_id: str | None = None  # namespace/name
    hub_private: bool = False
    hub_revision: str | None = None  # branch; created from main when missing

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        """The defaults updated with the YAML file at `path`; a syntax error, a non-mapping, an unknown key or a
        wrongly typed value
        is a `ConfigError` naming the file (and the line, or the key); so is a key given twice."""
        try:
            values = read_yaml(path)
        except YAMLFileError as error:
            raise ConfigError(str(error)) from None
        if values is None:  # an empty file, or only comments
            values = {}
        if not isinstance(values, dict):
            got = "a list" if isinstance(values, list) else _show(values)
            raise ConfigError(f"{path}: expected a mapping of training options (key: value), got {got}")
        return cls().updated(values, source=str(path))

    def updated(self, values: dict, source: str | None = None) -> TrainConfig:
        """A copy with `values` applied, each checked against its field's type (an int is taken for a float, a
        single value for a list of one); unknown keys and wrong types are a `ConfigError` naming the key, and
        `source` (e.g. the YAML file) when given."""
        prefix = f"{source}: " if source else ""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(str(key) for key in set(values) - known)
        if unknown:
            raise ConfigError(f"{prefix}unknown training options {unknown}")
        hints = _type_hints()
        checked = {}
        for name, value in values.items():
            try:
                checked[name] = _coerce(value, hints[name])
            except ConfigError as error:
                raise ConfigError(f"{prefix}{name}: {error}") from None
        return dataclasses.replace(self, **checked)

    def check_types(self) -> None:
        """Raise a `ConfigError` naming the first field whose value is not of the field's type."""
        hints = _type_hints()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                _coerce(value, hints[f.name], convert=False)
            except ConfigError as error:
                raise ConfigError(f"{f.name}: {error}") from None

    def validate(self) -> None:
        """Types first (`check_types`), then the required options and the values' ranges and combinations."""
        self.check_types()
        for name in ("model", "data"):
            if not getattr(self, name):
                raise ValueError(f"`{name}` is required (YAML key or --{name.replace('_', '-')})")
        if not (self.image_dir or self.video_dir):
            raise ValueError("`image_dir` (or, for video subsets only, `video_dir`) is required (--image-dir)")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.gc_mini_batch_size is not None and self.gc_mini_batch_size < 0:
            raise ValueError(f"gc_mini_batch_size must be >= 0 or null, got {self.gc_mini_batch_size}")
        if self.interleave_batch_size is not None:
            if self.batch_per_subset:
                raise ValueError("batch_per_subset and interleave_batch_size exclude each other; choose one")
            if self.interleave_batch_size <= 0 or self.per_device_train_batch_size % self.interleave_batch_size:
                raise ValueError(
                    f"interleave_batch_size {self.interleave_batch_size} must divide per_device_train_batch_size "
                    f"{self.per_device_train_batch_size}"
                )
        if self.eval_protocol not in ("v1", "v2"):
            raise ValueError(f"eval_protocol must be v1 or v2, got {self.eval_protocol!r}")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("push_to_hub needs hub_model_id (YAML key or --hub-model-id), e.g. your-name/vlm2vec-run")
        if self.hub_model_id is not None and self.hub_model_id.count("/") != 1:
            raise ValueError(f"hub_model_id must be namespace/name, got {self.hub_model_id!r}")


@functools.cache
def _type_hints() -> dict[str, typing.Any]:
    return typing.get_type_hints(TrainConfig)


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_PLURAL_NAMES = {int: "integers", float: "numbers", bool: "booleans (true / false)", str: "strings"}


def _options(annotation) -> tuple[list, bool]:
    """(the types a field takes, whether `None` is one of them) for `X`, `X | Y`, `X | None`, `Optional[X]`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return options, len(options) < len(typing.get_args(annotation))
    return [annotation], False


def _is_scalar(value, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):  # True is an int to Python, never to a config
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


_NO_MATCH = object()


def _coerce_to(value, kind, convert: bool):
    """`value` as the (non-None) type `kind`, or `_NO_MATCH`; and the words for what `kind` expects."""
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if item not in _PLURAL_NAMES:
            raise TypeError(f"unsupported TrainConfig annotation {kind}")
        expected = f"a list of {_PLURAL_NAMES[item]}"
        if isinstance(value, list) and all(_is_scalar(v, item) for v in value):
            return ([float(v) if item is float else v for v in value] if convert else value), expected
        if convert and _is_scalar(value, item):
            return [float(value) if item is float else value], expected
        return _NO_MATCH, expected
    if kind not in _KIND_NAMES:
        raise TypeError(f"unsupported TrainConfig annotation {kind}")
    if _is_scalar(value, kind):
        return (float(value) if kind is float and convert else value), _KIND_NAMES[kind]
    return _NO_MATCH, _KIND_NAMES[kind]


def _coerce(value, annotation, convert: bool = True):
    """`value` as the field type `annotation` wants it, or a `ConfigError` saying what was expected. With `convert`
    (values read from a file or given to `updated`), an int becomes a float where a float is wanted and a single
    item a one-element list where a list is; without (`check_types`), values must already be so (ints pass for
    floats)."""
    options, optional = _options(annotation)
    if value is None and optional:
        return None
    expected = []
    for kind in options:  # in the annotation's order: `str | list[str]` keeps a string a string
        result, words = _coerce_to(value, kind, convert)
        if result is not _NO_MATCH:
            return result
        expected.append(words)
    if optional:
        expected.append("null")
    raise ConfigError(f"expected {' or '.join(expected)}, got {_show(value)}")


def _show(value) -> str:
    """`value` as the YAML file spelt it, roughly: strings quoted, None as null, booleans lower-case."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
