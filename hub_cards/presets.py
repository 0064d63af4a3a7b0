"""Conversion presets for the published VLM2Vec checkpoints (values: REFERENCE.md 2.3-2.5, 3.6, 6) and the GME
baselines (values: the `parity-gme-public` fixture README, i.e. VLM2Vec's GME driver; REFERENCE.md 5.2, A).

A preset names the base backbone on the Hub, the adapter repository (None where the base is already the complete
published model) and the settings the published model was evaluated with; `vlm2vec convert --preset NAME` uses them
as defaults, explicit flags win. The image-processor settings are the backbone family's own
(`BackboneFamily.image_processor_options`: Qwen2-VL's pixel bounds, Phi-3.5-V's `num_crops`), passed to the family
by name; nothing here knows what they mean.

The V1 Qwen2-VL models' fixed 1344 x 1344 pre-resize becomes the written processor's `image_resize`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from vlm2vec_hf.model_folder import PUBLISHED_MAX_PIXELS, PUBLISHED_MIN_PIXELS

# Qwen2-VL's stock preprocessor bounds (56*56 and 28*28*16384 px), which the V1 evaluation used after its pre-resize.
QWEN2VL_DEFAULT_MIN_PIXELS = 3136
QWEN2VL_DEFAULT_MAX_PIXELS = 12845056
V1_FIXED_RESIZE = (1344, 1344)  # (width, height): `image_resolution="high"`, aspect ratio not kept
# The published Phi-3.5-V runs: `len256crop4` (REFERENCE.md 2.4, 2.5, 3.6; mteb's VLM2VecWrapper, section 6).
PHI35V_NUM_CROPS = 4
PHI35V_MAX_LENGTH = 256


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
        prompt_format: "v1" (`<image> instruction text`), "v2" (`<image>\\ninstruction text\\n`) or "gme" (GME's
            chat prompt, `backbone_gme.py`).
        max_length: prompt truncation in tokens (None: no truncation).
        image_resize: (width, height) in pixels every image is resized to before the processor, or None.
        image_processor_options: the backbone family's image-processor settings by name (read-only), e.g.
            `{"min_pixels": 3136, "max_pixels": 1003520}` (Qwen2-VL, pixels) or `{"num_crops": 4}` (Phi-3.5-V).
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


_V1_QWEN2VL_2B = ConversionPreset(
    name="VLM2Vec-Qwen2VL-2B",
    base_model="Qwen/Qwen2-VL-2B-Instruct",
    adapter_repo="TIGER-Lab/VLM2Vec-Qwen2VL-2B",
    adapter_revision=None,
    position_ids_mode="reference",
    prompt_format="v1",
    max_length=4096,
    image_resize=V1_FIXED_RESIZE,
    image_processor_options={"min_pixels": QWEN2VL_DEFAULT_MIN_PIXELS, "max_pixels": QWEN2VL_DEFAULT_MAX_PIXELS},
    notes=(
        "V1 protocol: 1344x1344 pre-resize, then the stock Qwen2-VL bounds (max_pixels not re-checked in "
        "REFERENCE.md), 2304 visual tokens per image. max_length 4096 is the V1 training --max_len."
    ),
)

_PHI35V_FULL = ConversionPreset(
    name="VLM2Vec-Full",
    base_model="TIGER-Lab/VLM2Vec-Full",
    adapter_repo=None,
    adapter_revision=None,
    position_ids_mode="reference",
    prompt_format="v1",
    max_length=PHI35V_MAX_LENGTH,
    image_resize=None,
    image_processor_options={"num_crops": PHI35V_NUM_CROPS},
    notes=(
        "The full fine-tune: the repo is a complete Phi-3.5-V checkpoint (config.json `phi3_v`, bf16 "
        "safetensors shards; REFERENCE.md 6), converted as it is with no adapter. num_crops 4 and max_length "
        "256: the published Phi runs (`len256crop4`, REFERENCE.md 2.4/2.5/3.6) and mteb's wrapper (6). "
        "Phi-3-V never truncates rows with an image (2.5). No pre-resize: V1 skips it for Phi (2.4)."
    ),
)

PRESETS: dict[str, ConversionPreset] = {
    preset.name: preset
    for preset in (
        _V1_QWEN2VL_2B,
        replace(
            _V1_QWEN2VL_2B,
            name="VLM2Vec-Qwen2VL-7B",
            base_model="Qwen/Qwen2-VL-7B-Instruct",
            adapter_repo="TIGER-Lab/VLM2Vec-Qwen2VL-7B",
            notes=(
                "As VLM2Vec-Qwen2VL-2B (REFERENCE.md: 'as for 2B'); the base id and max_length are inferred by "
                "analogy. The repo also holds full .bin shards, which are never used (only the adapter is read)."
            ),
        ),
        ConversionPreset(
            name="VLM2Vec-V2.0",
            base_model="Qwen/Qwen2-VL-2B-Instruct",
            adapter_repo="VLM2Vec/VLM2Vec-V2.0",
            adapter_revision="e39ff079b8275ef876d3656da8c0bddbff3c4dde",
            position_ids_mode="reference",
            prompt_format="v2",
            max_length=None,
            image_resize=None,
            image_processor_options={"min_pixels": PUBLISHED_MIN_PIXELS, "max_pixels": PUBLISHED_MAX_PIXELS},
            notes="Processor autoresize within [3136, 1003520] px, no truncation; revision as pinned by mteb.",
        ),
        _PHI35V_FULL,
        replace(
            _PHI35V_FULL,
            name="VLM2Vec-LoRA",
            base_model="microsoft/Phi-3.5-vision-instruct",
            adapter_repo="TIGER-Lab/VLM2Vec-LoRA",
            notes=(
                "DoRA adapter (r=8, REFERENCE.md 3.6) on microsoft/Phi-3.5-vision-instruct (its README's base_model "
                "and the reference's --model_name, section 6); it adapts the CLIP tower too (1.5). Settings as "
                "VLM2Vec-Full (`len256crop4`)."
            ),
        ),
        ConversionPreset(
            name="VLM2Vec-LLaVa-Next",
            base_model="TIGER-Lab/VLM2Vec-LLaVa-Next",
            adapter_repo=None,
            adapter_revision=None,
            position_ids_mode="reference",
            prompt_format="v1",
            max_length=4096,
            image_resize=V1_FIXED_RESIZE,
            processor_source="llava-hf/llava-v1.6-mistral-7b-hf",
            notes=(
                "REFERENCE.md 6: a full LLaVA-Next checkpoint (no adapter; file list inferred), processor from "
                "llava-hf/llava-v1.6-mistral-7b-hf as the V1 code hard-codes it; 2.4 / 3.6: the high-res model, "
                "1344x1344 pre-resize (run ...mmeb20_sub100k-1344...), so 5 AnyRes patches and 2928 image tokens "
                "per image. max_length 4096 is the V1 --max_len (parity fixture recipe). No pixel bounds: "
                "LLaVA-Next sizes images by its grid pinpoints. Should the repo hold a peft adapter instead, "
                "pass --base llava-hf/llava-v1.6-mistral-7b-hf --adapter TIGER-Lab/VLM2Vec-LLaVa-Next."
            ),
        ),
    )
}

_GME_2B = ConversionPreset(
    name="gme-Qwen2-VL-2B",
    base_model="Alibaba-NLP/gme-Qwen2-VL-2B-Instruct",
    adapter_repo=None,
    adapter_revision=None,
    position_ids_mode="reference",
    prompt_format="gme",
    max_length=1800,
    image_resize=None,
    image_processor_options={"min_pixels": PUBLISHED_MIN_PIXELS, "max_pixels": PUBLISHED_MAX_PIXELS},
    notes=(
        "The GME baseline as VLM2Vec's driver runs it (fixture parity-gme-public README): GME chat prompt, "
        "max_length 1800, GME smart_resize (3136 ... 12845056 px) then the processor's [3136, 1003520] px "
        "(VLM2Vec DataArguments defaults; GME's own code would use 256 ... 1280 tokens). A full checkpoint: no adapter."
    ),
)
PRESETS.update(
    {
        preset.name: preset
        for preset in (
            _GME_2B,
            replace(_GME_2B, name="gme-Qwen2-VL-7B", base_model="Alibaba-NLP/gme-Qwen2-VL-7B-Instruct"),
        )
    }
)


def get_preset(name: str) -> ConversionPreset:
    """The preset called `name`; a ValueError lists the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
