"""The Qwen2-VL / Qwen2.5-VL backbone family of VLM2Vec: stock transformers `Qwen2VLModel` / `Qwen2_5_VLModel`.

Prompts hold one `<|image_pad|>` per image (no `<|vision_start|>`, no chat template), expanded to the image's
merged visual-token count; images go through the PIL `Qwen2VLImageProcessorPil` (the reference's bicubic resize).
This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoModel

from .backbone_common import BackboneFamily, PromptRowError, rows_of_media

IMAGE_TOKEN = "<|image_pad|>"
# VLM2Vec-V2.0 (and the reference `main` defaults): smart-resize within [28*28*4, 28*28*1280] pixels, i.e. 4 to 1280
# visual tokens per image; the conversion defaults.
PUBLISHED_MIN_PIXELS = 3136
PUBLISHED_MAX_PIXELS = 1003520


class Qwen2VLFamily(BackboneFamily):
    """Qwen2-VL and Qwen2.5-VL (`model_type` `qwen2_vl`, `qwen2_5_vl`)."""

    name = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    image_token = IMAGE_TOKEN
    no_split_modules = ("Qwen2VLDecoderLayer", "Qwen2VLVisionBlock", "Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock")
    # The reference `main` LoRA defaults (`training/adapters.py` scopes them to the LLM: nothing in the ViT).
    lora_target_modules = (
        "qkv_proj",
        "o_proj",
        "gate_up_proj",
        "down_proj",
        "k_proj",
        "q_proj",
        "out_proj",
        "v_proj",
        "gate_proj",
        "up_proj",
    )
    # (pattern, replacement) pairs, first match wins. The `model.language_model.` / `model.visual.` rules cover
    # adapters saved from transformers-5 module paths; the bare `model.` rule is the reference's 4.4x LLM path.
    adapter_key_mapping = (
        (r"^base_model\.model\.model\.language_model\.", "vlm.language_model."),
        (r"^base_model\.model\.model\.visual\.", "vlm.visual."),
        (r"^base_model\.model\.model\.", "vlm.language_model."),
        (r"^base_model\.model\.visual\.", "vlm.visual."),
    )
    media_input_keys = ("mm_token_type_ids", "pixel_values", "image_grid_thw")
    resize_small_images = True
    image_processor_options = ("min_pixels", "max_pixels")

    def build_backbone(self, vlm_config) -> torch.nn.Module:
        return AutoModel.from_config(vlm_config)

    def load_backbone(self, source, **from_pretrained_kwargs) -> torch.nn.Module:
        # Its own transformers class converts legacy key layouts (`model.layers.*`, `visual.*`); `lm_head` is dropped.
        return AutoModel.from_pretrained(source, **from_pretrained_kwargs)

    def sub_batch_media(self, vlm_config, inputs: dict[str, Any], groups: list[list[int]]) -> list[dict] | None:
        media = {}
        for kind, grid_key, values_key, token_id in (
            ("image", "image_grid_thw", "pixel_values", vlm_config.image_token_id),
            ("video", "video_grid_thw", "pixel_values_videos", getattr(vlm_config, "video_token_id", None)),
        ):
            grid = inputs.get(grid_key)
            if grid is None:
                continue
            if inputs.get("input_ids") is None or inputs.get(values_key) is None or token_id is None:
                return None
            merge = vlm_config.vision_config.spatial_merge_size**2
            patches = grid.prod(dim=-1).tolist()
            per_row = rows_of_media(
                (inputs["input_ids"] == token_id).sum(dim=1).tolist(), [count // merge for count in patches]
            )
            if per_row is None:
                return None
            starts = [0]
            for count in patches:
                starts.append(starts[-1] + count)
            media[kind] = (grid_key, values_key, per_row, starts)
        result = []
        for group in groups:
            sub = {}
            for grid_key, values_key, per_row, starts in media.values():
                items = [item for row in group for item in per_row[row]]
                if items:
                    sub[grid_key] = inputs[grid_key][items]
                    sub[values_key] = torch.cat([inputs[values_key][starts[i] : starts[i + 1]] for i in items])
            result.append(sub)
        return result

    def load_image_processor(self, source, **hub_kwargs):
        # Saved processor files do not record the PIL backend, so it is chosen here on every load.
        return AutoImageProcessor.from_pretrained(source, backend="pil", **hub_kwargs)

    def conversion_image_processor(
        self, source, min_pixels: int = PUBLISHED_MIN_PIXELS, max_pixels: int = PUBLISHED_MAX_PIXELS
    ):
        """`min_pixels` / `max_pixels`: the smart-resize bounds, in pixels."""
        from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

        if min_pixels > max_pixels:
            raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
        size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        if source is None:
            return Qwen2VLImageProcessorPil(size=size)
        return AutoImageProcessor.from_pretrained(source, backend="pil", size=size)

    def image_token_id(self, tokenizer) -> int:
        return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    def num_image_tokens(self, image_processor, image) -> int:
        """Merged visual tokens the backbone sees for a prepared image (`grid_h * grid_w / merge_size**2`)."""
        patches = image_processor.get_number_of_image_patches(image.height, image.width, {})
        return patches // image_processor.merge_size**2

    def encode(
        self,
        processor,
        texts: list[str],
        images: list,
        text_kwargs: dict[str, Any],
        images_kwargs: dict[str, Any],
        return_tensors: str | None,
    ) -> dict[str, Any]:
        image_processor = processor.image_processor
        image_inputs = image_processor(images, return_tensors="pt", **images_kwargs) if images else {}
        merge = image_processor.merge_size**2
        tokens_per_image = [int(grid.prod()) // merge for grid in image_inputs.get("image_grid_thw", [])]
        placeholders = [prompt.count(IMAGE_TOKEN) for prompt in texts]

        expanded, expected_image_tokens, next_image = [], [], 0
        for prompt, count in zip(texts, placeholders):
            pieces = prompt.split(IMAGE_TOKEN)
            row_tokens = tokens_per_image[next_image : next_image + count]
            next_image += count
            expanded.append(pieces[0] + "".join(IMAGE_TOKEN * n + rest for n, rest in zip(row_tokens, pieces[1:])))
            expected_image_tokens.append(sum(row_tokens))

        max_length = text_kwargs.pop("max_length", processor.max_length)
        truncation = text_kwargs.pop("truncation", max_length is not None)
        text_kwargs.setdefault("padding", True)
        encoding = processor._tokenize(expanded, truncation=truncation, max_length=max_length, **text_kwargs)
        image_token_id = processor.image_token_id
        found = [row.count(image_token_id) for row in encoding["input_ids"]]
        for row, (seen, expected) in enumerate(zip(found, expected_image_tokens)):
            if seen != expected:
                raise PromptRowError(
                    row,
                    f"its images need {expected} image tokens but {seen} fit in max_length={max_length}; "
                    "raise max_length (max_seq_length) or lower max_pixels",
                )
        return {
            "input_ids": encoding["input_ids"],
            "attention_mask": encoding["attention_mask"],
            "mm_token_type_ids": [
                (np.asarray(row) == image_token_id).astype(np.int32)
                if return_tensors
                else [int(token == image_token_id) for token in row]
                for row in encoding["input_ids"]
            ],
            **image_inputs,
        }


FAMILY = Qwen2VLFamily()

__all__ = ["FAMILY", "IMAGE_TOKEN", "Qwen2VLFamily"]
