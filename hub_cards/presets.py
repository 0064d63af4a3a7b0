"""Conversion presets for the published VLM2Vec Qwen2-VL and LLaVA-Next checkpoints (values: REFERENCE.md 2.3-2.5,
3.6, 6) and the GME baselines (values: the `parity-gme-public` fixture README, i.e. VLM2Vec's GME driver;
REFERENCE.md 5.2, A).

A preset names the base backbone and the adapter repository on the Hub and the settings the published model was
evaluated with; `vlm2vec convert --preset NAME` uses them as defaults, explicit flags win.

The V1 models' fixed 1344 x 1344 pre-resize (`fixed_resize`) becomes the written processor's `image_resize`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vlm2vec_hf.model_folder import PUBLISHED_MAX_PIXELS, PUBLISHED_MIN_PIXELS

# Qwen2-VL's stock preprocessor bounds (56*56 and 28*28*16384 px), which the V1 evaluation used after its pre-resize.
QWEN2VL_DEFAULT_MIN_PIXELS = 3136
QWEN2VL_DEFAULT_MAX_PIXELS = 12845056
V1_FIXED_RESIZE = (1344, 1344)  # (width, height): `image_resolution="high"`, aspect ratio not kept


@dataclass(frozen=True)
class ConversionPreset:
    """How one published checkpoint is converted: its sources and its processor / model settings.

    Attributes:
        name: the preset's name on the command line.
        base_model: Hub id of the stock backbone the adapter was trained on.
        adapter_repo: Hub id of the repository holding `adapter_config.json` + `adapter_model.{bin,safetensors}`
            (None: the published model is a full checkpoint, `base_model` itself).
        adapter_revision: the adapter repository revision to download (None: the default branch).
        position_ids_mode: "reference" (1-D positions, as the published models were trained) or "native".
        prompt_format: "v1" (`<|image_pad|> instruction text`), "v2" (`<|image_pad|>\\ninstruction text\\n`) or "gme"
            (GME's chat prompt, `backbone_gme.py`).
        min_pixels, max_pixels: image-processor bounds in pixels (smart-resize to multiples of 28 inside them).
        max_length: prompt truncation in tokens (None: no truncation).
        fixed_resize: (width, height) in pixels every image is resized to before the processor, or None; written
            as the processor's `image_resize`.
        notes: where values come from and what is inferred rather than stated.
        processor_source: Hub id the tokenizer and image processor come from (None: `base_model`).
    """

    name: str
    base_model: str
    adapter_repo: str | None
    adapter_revision: str | None
    position_ids_mode: str
    prompt_format: str
    min_pixels: int
    max_pixels: int
    max_length: int | None
    fixed_resize: tuple[int, int] | None
    notes: str = ""
    processor_source: str | None = None


_V1_QWEN2VL_2B = ConversionPreset(
    name="VLM2Vec-Qwen2VL-2B",
    base_model="Qwen/Qwen2-VL-2B-Instruct",
    adapter_repo="TIGER-Lab/VLM2Vec-Qwen2VL-2B",
    adapter_revision=None,
    position_ids_mode="reference",
    prompt_format="v1",
    min_pixels=QWEN2VL_DEFAULT_MIN_PIXELS,
    max_pixels=QWEN2VL_DEFAULT_MAX_PIXELS,
    max_length=4096,
    fixed_resize=V1_FIXED_RESIZE,
    notes=(
        "V1 protocol: 1344x1344 pre-resize, then the stock Qwen2-VL bounds (max_pixels not re-checked in "
        "REFERENCE.md), 2304 visual tokens per image. max_length 4096 is the V1 training --max_len."
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
            min_pixels=PUBLISHED_MIN_PIXELS,
            max_pixels=PUBLISHED_MAX_PIXELS,
            max_length=None,
            fixed_resize=None,
            notes="Processor autoresize within [3136, 1003520] px, no truncation; revision as pinned by mteb.",
        ),
        ConversionPreset(
            name="VLM2Vec-LLaVa-Next",
            base_model="TIGER-Lab/VLM2Vec-LLaVa-Next",
            adapter_repo=None,
            adapter_revision=None,
            position_ids_mode="reference",
            prompt_format="v1",
            min_pixels=PUBLISHED_MIN_PIXELS,
            max_pixels=PUBLISHED_MAX_PIXELS,
            max_length=4096,
            fixed_resize=V1_FIXED_RESIZE,
            processor_source="llava-hf/llava-v1.6-mistral-7b-hf",
            notes=(
                "REFERENCE.md 6: a full LLaVA-Next checkpoint (no adapter; file list inferred), processor from "
                "llava-hf/llava-v1.6-mistral-7b-hf as the V1 code hard-codes it; 2.4 / 3.6: the high-res model, "
                "1344x1344 pre-resize (run ...mmeb20_sub100k-1344...), so 5 AnyRes patches and 2928 image tokens "
                "per image. max_length 4096 is the V1 --max_len (parity fixture recipe). The pixel bounds do not "
                "apply: LLaVA-Next sizes images by its grid pinpoints. Should the repo hold a peft adapter instead, "
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
    min_pixels=PUBLISHED_MIN_PIXELS,
    max_pixels=PUBLISHED_MAX_PIXELS,
    max_length=1800,
    fixed_resize=None,
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
