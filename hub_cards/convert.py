"""`vlm2vec convert`: wrap a stock Qwen2-VL / Qwen2.5-VL checkpoint folder as a complete VLM2Vec model folder."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoTokenizer

from vlm2vec_hf.model_folder import PUBLISHED_MAX_PIXELS, PUBLISHED_MIN_PIXELS, make_processor, write_model_folder
from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel


def convert_backbone(
    base: str | os.PathLike,
    out: str | os.PathLike,
    *,
    position_ids_mode: str = "reference",
    prompt_format: str = "v1",
    min_pixels: int = PUBLISHED_MIN_PIXELS,
    max_pixels: int = PUBLISHED_MAX_PIXELS,
    max_length: int | None = None,
    dtype: torch.dtype | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a VLM2Vec model folder at `out` from the backbone checkpoint at `base` (folder or Hub id).

    The weights are loaded with the backbone's own transformers class (which converts legacy key layouts) and saved
    under `vlm.*`; the tokenizer and image-processor settings come from `base`, with the given pixel bounds.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it")
    model = VLM2VecModel.from_backbone(base, position_ids_mode=position_ids_mode, dtype=dtype or "auto")
    processor = make_processor(
        AutoTokenizer.from_pretrained(base),
        base,
        prompt_format=prompt_format,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        max_length=max_length,
    )
    return write_model_folder(model, processor, out, overwrite=overwrite)
