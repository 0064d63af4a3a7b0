"""Conversion presets for the published VLM2Vec checkpoints and the baselines, read from `presets.yaml` (which says
where each value comes from).

A preset names the base backbone on the Hub, the adapter repository (None where the base is already the complete
published model) and the settings the published model was evaluated with; `vlm2vec convert --preset NAME` uses them
as defaults, explicit flags win. The image-processor settings are the backbone family's own
(`BackboneFamily.processor_options`, e.g. pixel bounds or crop counts), passed to the family by name; nothing here
knows what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vlm2vec_hf.package_data import DataFileError, read_yaml


@dataclass(frozen=True)
class ConversionPreset:
    """How one published checkpoint is converted: its sources and its processor / model settings.

    Attributes:
        name: the preset's name on the command line.
        base_model: Hub id of the backbone checkpoint: the stock backbone the adapter was trained on, or (without
            `adapter_repo`) the complete published model.
        adapter_repo: Hub id of the repository holding `adapter_config.json` + `adapter_model.{bin,safetensors}`;
            None when `base_model` is the whole published model (nothing to merge).
        adapter_revision: the adapter repository revision to download (None: the default branch).
        position_ids_mode: "reference" (1-D positions, as the published models were trained) or "native".
        prompt_format: "v1" (`<image> instruction text`), "v2" (`<image>\\ninstruction text\\n`) or a recipe
            family's own format (that family's prompt).
        max_length: prompt truncation in tokens (None: no truncation).
        image_resize: (width, height) in pixels every image is resized to before the processor, or None.
        image_processor_options: the backbone family's `processor_options` by name (read-only), e.g.
            `{"min_pixels": 3136, "max_pixels": 1003520}` (pixel bounds) or `{"num_crops": 4}`.
        notes: where values come from and what is inferred rather than stated.
        processor_source: Hub id the tokenizer and image processor come from (None: `base_model`).
    """

    name: str
    base_model: str
    adapter_repo: str | None
    adapter_revision: str | None
    position_ids_mode: str
    prompt_format: str
    max_length: int | None
    image_resize: tuple[int, int] | None
    image_processor_options: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    processor_source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_processor_options", MappingProxyType(dict(self.image_processor_options)))


PRESETS_FILE = Path(__file__).with_name("presets.yaml")


def _preset(name: str, entry: Mapping[str, Any], earlier: Mapping[str, ConversionPreset]) -> ConversionPreset:
    """One `presets.yaml` entry as a preset; `extends: NAME` starts from the earlier preset NAME."""
    entry = dict(entry)
    parent = entry.pop("extends", None)
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise DataFileError(f"{PRESETS_FILE}: preset {name!r} has unknown fields {unknown}; known: {sorted(_FIELDS)}")
    if entry.get("image_resize") is not None:
        entry["image_resize"] = tuple(entry["image_resize"])
    if parent is not None:
        if parent not in earlier:
            raise DataFileError(f"{PRESETS_FILE}: preset {name!r} extends {parent!r}, which is not defined above it")
        return replace(earlier[parent], name=name, **entry)
    try:
        return ConversionPreset(name=name, **entry)
    except TypeError as error:  # a required field left out
        raise DataFileError(f"{PRESETS_FILE}: preset {name!r}: {error}") from None


def load_presets(path: Path = PRESETS_FILE) -> dict[str, ConversionPreset]:
    """The presets of `path` (default: the packaged `presets.yaml`), by name, in file order."""
    presets: dict[str, ConversionPreset] = {}
    for name, entry in read_yaml(path).items():
        presets[name] = _preset(name, entry, presets)
    return presets


_FIELDS = {spec.name for spec in fields(ConversionPreset)} - {"name"}
PRESETS: dict[str, ConversionPreset] = load_presets()


def get_preset(name: str) -> ConversionPreset:
    """The preset called `name`; a ValueError lists the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
