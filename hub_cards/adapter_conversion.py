"""LoRA / DoRA adapters merged into a `VLM2VecModel` through peft, with an explicit key mapping: the one merge path
for published adapters (`vlm2vec convert`) and training adapters (`vlm2vec merge`, `merge: true`).

The published adapters are peft folders saved from the reference's wrapper around its vendored backbone
(REFERENCE.md 1.6): their keys name the vendored modules (e.g. `base_model.model.model.layers.N.self_attn.q_proj.
lora_A.weight`), while `VLM2VecModel` holds the stock backbone as `vlm` (e.g. `vlm.language_model.layers.N...`).
peft does not remap these keys by itself: it warns and leaves the adapter at its init. So every key is renamed here
with the backbone family's `adapter_key_mapping` (a training adapter's keys need only peft's prefix removed,
`TRAINING_KEY_MAPPING`) and checked against the model's modules (a key that matches none is an error, never
dropped). Then peft does the rest (`merge_adapter_with_peft`): a `PeftModel` over exactly the adapted layers, its
`set_peft_model_state_dict` (which also names DoRA magnitudes, saved as `...lora_magnitude_vector`, as its parameters
`...lora_magnitude_vector.<adapter>.weight`), and `merge_and_unload`, in fp32:

    LoRA:  W' = W + s * B @ A
    DoRA:  W' = m / ||W + s * B @ A||_row * (W + s * B @ A)

with `s = lora_alpha / r` (`lora_alpha / sqrt(r)` with rsLoRA), `A` (r, in), `B` (out, r) and the magnitude `m` (out,).

Merging into the plain model's own layers also avoids OFFLINE.md's merge trap (a model merged after being loaded
from an adapter folder saves `base_model.model.*` keys); `convert.py` still re-reads the saved weights.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

ADAPTER_CONFIG_FILE = "adapter_config.json"
# Preference order: safetensors needs no unpickling at all.
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")

# A training adapter (`vlm2vec train --lora`) was saved from our own model: its keys are our names, with or without
# peft's `base_model.model.` prefix.
TRAINING_KEY_MAPPING: tuple[tuple[str, str], ...] = ((r"^base_model\.model\.", ""), (r"^", ""))
_ADAPTER_NAME = "default"

_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A\.weight|lora_B\.weight|lora_magnitude_vector(?:\.weight)?)$")
_PART_NAMES = {"lora_A.weight": "lora_A", "lora_B.weight": "lora_B"}
_MAX_LISTED = 50  # problem keys named in one error (an adapter in a wholly foreign layout has hundreds)


class AdapterConversionError(ValueError):
    """An adapter folder that cannot be merged exactly: unreadable weights, unsupported options or unmatched keys."""


@dataclass(frozen=True)
class LoraSettings:
    """The `adapter_config.json` fields the merge depends on."""

    r: int
    lora_alpha: float
    use_dora: bool
    use_rslora: bool = False

    @property
    def scaling(self) -> float:
        """The factor `s` on `B @ A`: alpha / r, or alpha / sqrt(r) with rsLoRA (peft's definition)."""
        return self.lora_alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    @classmethod
    def from_config(cls, config: dict) -> LoraSettings:
        """Read the settings, refusing options this merge does not reproduce exactly."""
        peft_type = config.get("peft_type", "LORA")
        if str(peft_type).upper() != "LORA":
            raise AdapterConversionError(f"peft_type {peft_type!r} is not supported (only LORA / DoRA adapters)")
        unsupported = {
            "fan_in_fan_out": bool(config.get("fan_in_fan_out")),
            "lora_bias": bool(config.get("lora_bias")),
            "modules_to_save": bool(config.get("modules_to_save")),
            "rank_pattern": bool(config.get("rank_pattern")),
            "alpha_pattern": bool(config.get("alpha_pattern")),
            "layer_replication": bool(config.get("layer_replication")),
            "target_parameters": bool(config.get("target_parameters")),
        }
        used = [name for name, is_set in unsupported.items() if is_set]
        if used:
            raise AdapterConversionError(f"adapter_config.json sets options this converter does not support: {used}")
        return cls(
            r=int(config["r"]),
            lora_alpha=float(config["lora_alpha"]),
            use_dora=bool(config.get("use_dora", False)),
            use_rslora=bool(config.get("use_rslora", False)),
        )


@dataclass
class LoraModuleWeights:
    """One adapted linear layer's adapter tensors: lora_A (r, in), lora_B (out, r), DoRA magnitude (out,) or None."""

    lora_A: torch.Tensor | None = None
    lora_B: torch.Tensor | None = None
    magnitude: torch.Tensor | None = None


def read_adapter_config(adapter_dir: str | os.PathLike) -> dict:
    """The parsed `adapter_config.json` of `adapter_dir`."""
    path = Path(adapter_dir) / ADAPTER_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{adapter_dir} has no {ADAPTER_CONFIG_FILE}; is it an adapter folder?")
    return json.loads(path.read_text())


def adapter_weights_file(adapter_dir: str | os.PathLike) -> Path:
    """`adapter_model.safetensors` if present, else `adapter_model.bin`."""
    for name in ADAPTER_WEIGHT_FILES:
        path = Path(adapter_dir) / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"{adapter_dir} has neither {' nor '.join(ADAPTER_WEIGHT_FILES)}")


def load_adapter_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read adapter tensors from a `.safetensors` file or a torch pickle `.bin` (tensors only), on the CPU.

    A `.bin` is read only with `torch.load(weights_only=True)`, whose restricted unpickler refuses any object other
    than tensors and plain containers, so a file that would run code on unpickling is rejected without running it.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(path, device="cpu")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message starts with advice to retry with weights_only=False, which is exactly what must not happen.
        lines = [line for line in str(error).splitlines() if line.strip()]
        reason = lines[1] if len(lines) > 1 else lines[0] if lines else type(error).__name__
        raise AdapterConversionError(
            f"refusing to load {path}: it holds objects other than tensors, which only an unrestricted unpickler "
            f"(one that can run arbitrary code) would load ({reason}). Use an adapter_model.safetensors instead."
        ) from error
    except (RuntimeError, EOFError) as error:
        raise AdapterConversionError(f"cannot read {path} as a torch state dict: {error}") from error
    if not isinstance(state_dict, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state_dict.items()
    ):
        raise AdapterConversionError(f"{path} is not a state dict of named tensors")
    return state_dict


def rename_adapter_key(key: str, key_mapping: Sequence[tuple[str, str]]) -> str | None:
    """`key` renamed by the first matching rule of `key_mapping`, or None when no rule matches."""
    for pattern, replacement in key_mapping:
        renamed, count = re.subn(pattern, replacement, key, count=1)
        if count:
            return renamed
    return None


def group_adapter_weights(
    state_dict: dict[str, torch.Tensor],
    linear_modules: Collection[str],
    key_mapping: Sequence[tuple[str, str]],
) -> dict[str, LoraModuleWeights]:
    """Map every adapter key onto one of `linear_modules` (our module names) and group the tensors per module.

    Raises AdapterConversionError listing every key that no rule renames, that names no linear module of the
    model, that is not a LoRA A / B / DoRA magnitude tensor, or that lands where another key did; nothing is
    dropped silently.
    """
    modules = set(linear_modules)
    grouped: dict[str, LoraModuleWeights] = {}
    problems: list[str] = []
    for key, tensor in state_dict.items():
        renamed = rename_adapter_key(key, key_mapping)
        match = _LORA_KEY.match(renamed) if renamed is not None else None
        if renamed is None:
            problems.append(f"{key}: no key-mapping rule matches it")
        elif match is None:
            problems.append(f"{key} -> {renamed}: not a LoRA A / B or DoRA magnitude tensor")
        elif match["module"] not in modules:
            problems.append(f"{key} -> {match['module']}: the model has no such linear module")
        else:
            attribute = _PART_NAMES.get(match["part"], "magnitude")
            weights = grouped.setdefault(match["module"], LoraModuleWeights())
            if getattr(weights, attribute) is not None:
                problems.append(f"{key} -> {renamed}: another key already maps to this tensor")
            setattr(weights, attribute, tensor)
    if problems:
        listed = sorted(problems)[:_MAX_LISTED]
        more = f"\n  ... and {len(problems) - len(listed)} more" if len(problems) > len(listed) else ""
        raise AdapterConversionError(
            f"{len(problems)} of {len(state_dict)} adapter keys match no module of the model (nothing was merged):\n  "
            + "\n  ".join(listed)
            + more
        )
    return grouped


def _check_module(name: str, lora: LoraModuleWeights, layer: torch.nn.Linear, settings: LoraSettings) -> str | None:
    """Why `lora` cannot be merged into `layer` (missing tensors, wrong shapes), or None if it can."""
    if lora.lora_A is None or lora.lora_B is None:
        return f"{name}: needs both lora_A and lora_B"
    if settings.use_dora != (lora.magnitude is not None):
        state = "missing" if settings.use_dora else "present"
        return f"{name}: use_dora={settings.use_dora} but the DoRA magnitude vector is {state}"
    out_features, in_features = layer.weight.shape
    shapes = {
        "lora_A": (tuple(lora.lora_A.shape), (settings.r, in_features)),
        "lora_B": (tuple(lora.lora_B.shape), (out_features, settings.r)),
    }
    if lora.magnitude is not None:
        shapes["magnitude"] = (tuple(lora.magnitude.shape), (out_features,))
    wrong = [f"{part} {got} (expected {want})" for part, (got, want) in shapes.items() if got != want]
    return f"{name}: " + ", ".join(wrong) if wrong else None


@dataclass(frozen=True)
class AdapterWeights:
    """An adapter folder read into memory: its merge settings and its tensors under their saved (reference) names."""

    source: Path
    settings: LoraSettings
    state_dict: dict[str, torch.Tensor]


def read_adapter(adapter_dir: str | os.PathLike) -> AdapterWeights:
    """Read `adapter_config.json` and the weights (safetensors preferred) of `adapter_dir`, before any model loads."""
    settings = LoraSettings.from_config(read_adapter_config(adapter_dir))
    weights_file = adapter_weights_file(adapter_dir)
    state_dict = load_adapter_state_dict(weights_file)
    if not state_dict:
        raise AdapterConversionError(f"{weights_file} holds no adapter tensors")
    return AdapterWeights(source=weights_file, settings=settings, state_dict=state_dict)


def merge_adapter_into_model(
    model: torch.nn.Module,
    adapter: AdapterWeights | str | os.PathLike,
    key_mapping: Sequence[tuple[str, str]],
) -> dict[str, torch.Tensor]:
    """Merge `adapter` (read, or a folder to read) into `model`'s linear weights, in place.

    Every key is renamed with `key_mapping` and must land on a linear module with matching shapes; all checks run
    before any weight changes. Returns the merged weights by parameter name (e.g.
    `vlm.language_model.layers.0.self_attn.q_proj.weight`), to check what gets saved.
    """
    if not isinstance(adapter, AdapterWeights):
        adapter = read_adapter(adapter)
    settings = adapter.settings
    linear_layers = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    # Checked here, before peft: peft only warns about keys it cannot place, and a wrong shape fails in torch without
    # the adapter key or the expected shape.
    grouped = group_adapter_weights(adapter.state_dict, linear_layers, key_mapping)
    problems = [
        problem
        for name, lora in grouped.items()
        if (problem := _check_module(name, lora, linear_layers[name], settings)) is not None
    ]
    if problems:
        raise AdapterConversionError(
            f"{adapter.source}: adapter tensors do not fit the model:\n  " + "\n  ".join(sorted(problems))
        )
    merge_adapter_with_peft(model, adapter.state_dict, key_mapping, settings, sorted(grouped))
    return {f"{name}.weight": linear_layers[name].weight.detach() for name in grouped}


def merge_adapter_with_peft(
    model: torch.nn.Module,
    state_dict: dict[str, torch.Tensor],
    key_mapping: Sequence[tuple[str, str]],
    settings: LoraSettings,
    modules: Sequence[str],
) -> torch.nn.Module:
    """Merge adapter tensors (saved names, renamed with `key_mapping` onto `modules`, the model's adapted linear
    layers) into `model` in place with peft: `PeftModel` over exactly those layers, `set_peft_model_state_dict`,
    `merge_and_unload`. The layers are merged in fp32 and keep their dtype. Returns `model`.

    Raises:
        AdapterConversionError: a tensor peft did not take, or an adapter parameter left without a tensor.
    """
    from peft import LoraConfig, PeftModel, set_peft_model_state_dict

    from vlm2vec_hf.compat import check_peft_compatible

    check_peft_compatible()
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.lora_alpha,
        use_dora=settings.use_dora,
        use_rslora=settings.use_rslora,
        target_modules=list(modules),
        init_lora_weights=False,  # every adapter tensor is loaded below
    )
    layers = {name: model.get_submodule(name) for name in modules}
    dtypes = {name: layer.weight.dtype for name, layer in layers.items()}
    peft_state = {
        f"base_model.model.{rename_adapter_key(key, key_mapping)}": value for key, value in state_dict.items()
    }
    try:
        for layer in layers.values():
            layer.float()
        peft_model = PeftModel(model, config, adapter_name=_ADAPTER_NAME)
        result = set_peft_model_state_dict(peft_model, peft_state, adapter_name=_ADAPTER_NAME)
        unloaded = [key for key in result.missing_keys if f".{_ADAPTER_NAME}." in key]
        if result.unexpected_keys or unloaded:
            peft_model.unload()
            raise AdapterConversionError(
                f"peft did not load the adapter whole (nothing was merged): unexpected "
                f"{sorted(result.unexpected_keys)[:_MAX_LISTED]}, missing {sorted(unloaded)[:_MAX_LISTED]}"
            )
        return peft_model.merge_and_unload()
    finally:
        for name, layer in layers.items():
            layer.to(dtypes[name])
