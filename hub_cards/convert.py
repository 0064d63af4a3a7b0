"""`vlm2vec convert`: a stock or published backbone checkpoint of any registered family (optionally plus a LoRA /
DoRA adapter) as a complete VLM2Vec model folder.

* `convert_backbone(base, out)`: wrap the backbone as is (a recipe's `prompt_format`: that recipe family).
* `convert_backbone(base, out, adapter=FOLDER)`: also merge a published-style adapter (the reference's key layout,
  `adapter_model.safetensors` or a tensors-only `adapter_model.bin`) into the weights; see `adapter_conversion`.
* `convert(out, base=..., adapter=..., preset=...)`: the command's entry point. It fills unset options from a
  preset (`presets.py`), downloads a Hub base / adapter, and sends adapters written by `vlm2vec train --lora`
  (sentence-transformers folders) to `training.adapters.merge_adapter_folder`.

The written folder never contains peft files: the adapter is merged, so loading it needs no peft.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import PreTrainedConfig
from transformers.core_model_loading import revert_weight_conversion

from vlm2vec_hf.hub_cards.adapter_conversion import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHT_FILES,
    AdapterConversionError,
    merge_adapter_into_model,
    read_adapter,
)
from vlm2vec_hf.hub_cards.presets import ConversionPreset, get_preset
from vlm2vec_hf.model_folder import make_processor, write_model_folder
from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel
from vlm2vec_hf.modeling_vlm2vec.backbones import family_for_prompt_format, get_family, saved_family_name

logger = logging.getLogger(__name__)

# What an adapter download fetches: configs, code and the adapter weights, never full-model shards (the 7B V1 repo
# also holds pytorch_model-*.bin, which `from_pretrained` never uses).
ADAPTER_DOWNLOAD_PATTERNS = ("*.json", "*.py", *ADAPTER_WEIGHT_FILES)
# What a base download fetches: configs, tokenizer files and the safetensors weights. Some published repos hold the
# same weights again as pickle `.bin` shards (and remote code), which are never read.
BASE_DOWNLOAD_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model")
# Written by sentence-transformers: marks an adapter folder saved by `vlm2vec train --lora`.
TRAINING_ADAPTER_MARKER = "config_sentence_transformers.json"


def convert_backbone(
    base: str | os.PathLike,
    out: str | os.PathLike,
    *,
    adapter: str | os.PathLike | None = None,
    key_mapping: Sequence[tuple[str, str]] | None = None,
    position_ids_mode: str | None = None,
    prompt_format: str | None = None,
    max_length: int | None = None,
    image_resize: tuple[int, int] | None = None,
    image_processor_options: Mapping[str, Any] | None = None,
    dtype: torch.dtype | str | None = None,
    overwrite: bool = False,
    processor_source: str | os.PathLike | None = None,
) -> Path:
    """Write a VLM2Vec model folder at `out` from the backbone checkpoint at `base` (folder or Hub id).

    The backbone family is detected from `base`'s `config.json`, or it is the recipe family that owns
    `prompt_format` (recorded as `backbone_family`; None: the backbone's default family's first format, e.g. `v1`;
    `position_ids_mode` None: the family's `default_position_ids_mode`); the weights are loaded with the family's
    `load_backbone` (its key mapping; an unmapped key is an error) and saved under `vlm.*`; the tokenizer and
    image-processor settings come from `processor_source` (folder or Hub id, default `base`; a preset may name
    another, as the reference did), with `max_length` (tokens; 0: no truncation; None: the family's
    `default_max_length`), `image_resize` ((width, height) every image is resized to first, the V1 protocol; None:
    none) and `image_processor_options`, the family's own `processor_options` by name (an option the family does not
    take is a ValueError, raised before any weights load).
    With `adapter`, the published-style adapter folder there is merged into the weights first (keys renamed by
    `key_mapping`, by default the family's `adapter_key_mapping`, merged in fp32, stored in `dtype`), and the saved
    file is re-read to check that it holds the merged weights.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it")
    if adapter is not None and is_training_adapter(adapter):
        raise ValueError(f"{adapter} was written by `vlm2vec train`: merge it with `convert(...)` / `vlm2vec convert`")
    image_processor_options = dict(image_processor_options or {})
    model_type = PreTrainedConfig.get_config_dict(base)[0].get("model_type")
    if prompt_format is None:
        prompt_format = get_family(model_type).prompt_formats[0]
    family = family_for_prompt_format(model_type, prompt_format)  # a recipe's own format picks the recipe family
    family.check_image_processor_options(image_processor_options)
    family_name = saved_family_name(family, model_type)
    adapter_weights = read_adapter(adapter) if adapter is not None else None  # fail fast, before the base loads
    model = VLM2VecModel.from_backbone(
        base, position_ids_mode=position_ids_mode, backbone_family=family_name, dtype=dtype or "auto"
    )
    if max_length is None:
        max_length = family.default_max_length
    elif max_length == 0:
        max_length = None
    if key_mapping is None:
        key_mapping = family.adapter_key_mapping
    merged = merge_adapter_into_model(model, adapter_weights, key_mapping) if adapter_weights is not None else {}
    processor_source = processor_source or base
    try:
        processor = make_processor(
            family.load_tokenizer(processor_source),
            processor_source,
            backbone_model_type=model.config.vlm_config.model_type,
            backbone_family=family_name,
            prompt_format=prompt_format,
            max_length=max_length,
            image_resize=image_resize,
            **image_processor_options,
        )
    except OSError as error:
        raise OSError(f"cannot load the tokenizer / image processor from {processor_source}: {error}") from error
    # The merged weights are re-read in the staging folder, before it replaces `out`: a folder that would load with
    # the wrong weights is never moved into place, and an existing `out` (`overwrite`) stays as it was.
    # Under the names `save_pretrained` writes: transformers reverts its load-time renaming (a backbone whose LLM it
    # renames on load is saved under the original names), which `from_pretrained` maps back.
    saved_names = revert_weight_conversion(model, dict(merged)) if merged else {}
    verify = (lambda staging: check_saved_weights(staging, saved_names)) if merged else None
    folder = write_model_folder(model, processor, out, overwrite=overwrite, verify=verify)
    if merged:
        logger.info("merged %d adapted linear layers from %s", len(merged), adapter_weights.source)
    return folder


def check_saved_weights(folder: str | os.PathLike, weights: dict[str, torch.Tensor]) -> None:
    """Raise unless the safetensors weights in `folder` hold exactly `weights` under these names.

    Guards against saving something other than the merged model (OFFLINE.md's merge trap: a model that saves with
    `base_model.model.*` keys reloads silently with other weights). Reads one tensor at a time.
    """
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        file_of = {name: folder / file for name, file in json.loads(index.read_text())["weight_map"].items()}
    else:
        with safe_open(folder / "model.safetensors", framework="pt") as handle:
            file_of = {name: folder / "model.safetensors" for name in handle.keys()}  # noqa: SIM118
    missing = sorted(name for name in weights if name not in file_of)
    if missing:
        raise AdapterConversionError(f"the saved model lacks merged weights {missing[:5]} (of {len(missing)})")
    for name, tensor in weights.items():
        with safe_open(file_of[name], framework="pt") as handle:
            if not torch.equal(handle.get_tensor(name), tensor.detach().cpu()):
                raise AdapterConversionError(f"the saved {name} differs from the merged weight")


def is_training_adapter(adapter_dir: str | os.PathLike) -> bool:
    """Whether `adapter_dir` is an adapter checkpoint of `vlm2vec train --lora` (a sentence-transformers folder)."""
    adapter_dir = Path(adapter_dir)
    return (adapter_dir / ADAPTER_CONFIG_FILE).is_file() and (adapter_dir / TRAINING_ADAPTER_MARKER).is_file()


def _is_hub_id(source: str | os.PathLike) -> bool:
    """Whether `source`, which is no folder here, reads as a Hub repo id (`owner/name`)."""
    text = str(source)
    return not Path(source).exists() and text.count("/") == 1 and not text.startswith((".", "/"))


def _snapshot(repo_id: str, revision: str | None, patterns: Sequence[str], what: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(patterns)))
    except Exception as error:  # hub errors have no common base with OSError / ValueError, which the CLI reports
        raise OSError(f"cannot download the {what} {repo_id} (revision {revision or 'main'}): {error}") from error


def resolve_adapter(adapter: str | os.PathLike, revision: str | None = None) -> Path:
    """A local adapter folder: `adapter` itself, or a snapshot of the Hub repo `adapter` (adapter files only)."""
    if Path(adapter).is_dir():
        return Path(adapter)
    if not _is_hub_id(adapter):
        raise FileNotFoundError(f"adapter folder {adapter} does not exist")
    return _snapshot(str(adapter), revision, ADAPTER_DOWNLOAD_PATTERNS, "adapter")


def resolve_base(base: str | os.PathLike, revision: str | None = None) -> Path:
    """A local backbone checkpoint folder: `base` itself, or a snapshot of the Hub repo `base` (configs, tokenizer
    and safetensors weights; see `BASE_DOWNLOAD_PATTERNS`)."""
    if Path(base).is_dir():
        return Path(base)
    if not _is_hub_id(base):
        raise FileNotFoundError(f"base checkpoint folder {base} does not exist")
    folder = _snapshot(str(base), revision, BASE_DOWNLOAD_PATTERNS, "base checkpoint")
    if not any(folder.glob("*.safetensors")):
        raise OSError(f"the base checkpoint {base} has no *.safetensors weights (pickle .bin weights are not read)")
    return folder


def convert(
    out: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    adapter: str | os.PathLike | None = None,
    preset: str | ConversionPreset | None = None,
    position_ids_mode: str | None = None,
    prompt_format: str | None = None,
    max_length: int | None = None,
    image_resize: tuple[int, int] | None = None,
    image_processor_options: Mapping[str, Any] | None = None,
    dtype: torch.dtype | str | None = None,
    overwrite: bool = False,
    processor_source: str | os.PathLike | None = None,
) -> Path:
    """`vlm2vec convert`: resolve the preset and the sources, then write the model folder at `out`.

    Options left as None come from `preset` (if given), else `convert_backbone`'s defaults; each key of
    `image_processor_options` (the family's image-processor settings, e.g. `min_pixels`, `num_crops`) overrides the
    preset's value of that key. `max_length=0` means no truncation (a preset's or the family's `max_length` otherwise
    applies); `image_resize=(0, 0)` likewise turns off a preset's fixed pre-resize. `processor_source` defaults to the
    preset's, else `base`. Without `base` / `adapter`, the preset's
    Hub ids are downloaded (a preset without an adapter repo merges nothing). An adapter folder written by
    `vlm2vec train --lora` is merged by `merge_adapter_folder`, which takes the base, processor and prompts from
    that folder (`base` overrides the base).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    options = {
        "position_ids_mode": position_ids_mode,
        "prompt_format": prompt_format,
        "max_length": max_length,
        "image_resize": tuple(image_resize) if image_resize is not None else None,
    }
    image_processor_options = dict(image_processor_options or {})
    if adapter is None and preset is not None:
        adapter = preset.adapter_repo
    if adapter is not None:
        adapter = resolve_adapter(adapter, revision=preset.adapter_revision if preset is not None else None)
        if is_training_adapter(adapter):
            options.update(image_processor_options)
            return _merge_training_adapter(adapter, out, base, preset, options, dtype, overwrite)
    if base is None:
        if preset is None:
            raise ValueError("--base is required (or --preset, whose base model is then downloaded)")
        base = preset.base_model
    base = resolve_base(base)
    if preset is not None:
        for name, value in options.items():
            if value is None:
                options[name] = getattr(preset, name)
        image_processor_options = {**preset.image_processor_options, **image_processor_options}
    options = {name: value for name, value in options.items() if value is not None}
    if options.get("image_resize") == (0, 0):
        options["image_resize"] = None
    if processor_source is None and preset is not None:
        processor_source = preset.processor_source
    return convert_backbone(
        base,
        out,
        adapter=adapter,
        image_processor_options=image_processor_options,
        dtype=dtype,
        overwrite=overwrite,
        processor_source=processor_source,
        **options,
    )


def _merge_training_adapter(
    adapter: Path,
    out: str | os.PathLike,
    base: str | os.PathLike | None,
    preset: ConversionPreset | None,
    options: dict,
    dtype: torch.dtype | str | None,
    overwrite: bool,
) -> Path:
    from vlm2vec_hf.training.adapters import merge_adapter_folder

    not_applicable = [name for name, value in {**options, "dtype": dtype}.items() if value is not None]
    if preset is not None:
        not_applicable.insert(0, "preset")
    if not_applicable:
        raise ValueError(
            f"{adapter} was written by `vlm2vec train` and keeps its own processor and settings; "
            f"these options do not apply to it: {', '.join(not_applicable)}"
        )
    return merge_adapter_folder(adapter, out, overwrite=overwrite, base=base)
