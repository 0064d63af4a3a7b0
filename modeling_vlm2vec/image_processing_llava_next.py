"""The image processor of the LLaVA-Next family: stock `LlavaNextImageProcessorPil` (the reference's 4.52 PIL
pipeline: bit-identical pixels) that also counts an image's `<image>` tokens (576 base + unpadded AnyRes grid + one
newline per grid row), which transformers keeps on `LlavaNextProcessor` (not ours).

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

import json
from typing import Any

from transformers import PreTrainedConfig
from transformers.image_processing_utils import select_best_resolution
from transformers.models.llava_next import LlavaNextImageProcessorPil
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorKwargs
from transformers.utils import cached_file


def num_image_tokens_for(
    height: int,
    width: int,
    grid_pinpoints: list[list[int]],
    crop_size: int,
    patch_size: int,
    extra_tokens: int = 0,
) -> int:
    """Feature vectors (= `<image>` tokens) LLaVA-Next gives an image of `height` x `width` pixels.

    The base 336 x 336 view's `(crop_size / patch_size)**2` patches (+ `extra_tokens`, e.g. CLIP's CLS with the
    `"full"` feature strategy), then the AnyRes grid of the best pinpoint resolution with the padding rows or
    columns removed (`int(round(x, 7))`, as `LlavaNextProcessor` and transformers 5's `unpad_image` round) and one
    `image_newline` per remaining row.
    """
    best_height, best_width = select_best_resolution([height, width], grid_pinpoints)
    side = crop_size // patch_size
    grid_height, grid_width = side * (best_height // crop_size), side * (best_width // crop_size)
    if width / height > grid_width / grid_height:
        new_height = int(round(height * (grid_width / width), 7))
        grid_height -= 2 * ((grid_height - new_height) // 2)
    else:
        new_width = int(round(width * (grid_height / height), 7))
        grid_width -= 2 * ((grid_width - new_width) // 2)
    return side * side + extra_tokens + grid_height * grid_width + grid_height


class LlavaNextEmbeddingImagesKwargs(LlavaNextImageProcessorKwargs, total=False):
    """Call-time keywords of [`LlavaNextEmbeddingImageProcessor`] (those of `LlavaNextImageProcessorPil`)."""


class LlavaNextEmbeddingImageProcessor(LlavaNextImageProcessorPil):
    """Stock `LlavaNextImageProcessorPil` (the reference's PIL pipeline) that also knows how many `<image>` tokens an
    image takes, which transformers computes in `LlavaNextProcessor` from the three attributes below.

    Returns `pixel_values` `(n_images, max_patches, 3, 336, 336)` (zero patches at the end) and `image_sizes`
    `(n_images, 2)` (original height, width), as stock.

    Attributes:
        patch_size: the vision tower's patch size in pixels (14).
        vision_feature_select_strategy: `"default"` (CLS dropped) or `"full"`.
        num_additional_image_tokens: tokens the tower adds to its patches (1: CLIP's CLS).
    """

    valid_kwargs = LlavaNextEmbeddingImagesKwargs
    model_input_names = ["pixel_values", "image_sizes"]
    # Defaults: llava-hf/llava-v1.6-mistral-7b-hf's `preprocessor_config.json` (stock defaults are 224 px).
    size = {"shortest_edge": 336}
    crop_size = {"height": 336, "width": 336}
    patch_size: int = 14
    vision_feature_select_strategy: str = "default"
    num_additional_image_tokens: int = 1

    def __init__(
        self,
        patch_size: int = 14,
        vision_feature_select_strategy: str = "default",
        num_additional_image_tokens: int = 1,
        **kwargs,
    ):
        for key in ("processor_class", "image_processor_type", "auto_map", "backend"):
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.num_additional_image_tokens = num_additional_image_tokens

    def num_image_tokens(self, height: int, width: int) -> int:
        """`<image>` tokens of an image of `height` x `width` pixels (its original size)."""
        extra = self.num_additional_image_tokens - (self.vision_feature_select_strategy == "default")
        return num_image_tokens_for(
            height, width, self.image_grid_pinpoints, self.crop_size["height"], self.patch_size, extra
        )


def processor_settings(source, **hub_kwargs) -> dict[str, Any]:
    """Patch size, feature strategy and extra tokens of backbone checkpoint `source`: its `processor_config.json`
    (llava-hf layout) where it has them, else its model config (`vision_config.patch_size`, one CLS token)."""
    settings: dict[str, Any] = {}
    path = cached_file(
        source,
        "processor_config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_kwargs,
    )
    if path:
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
        for key in ("patch_size", "vision_feature_select_strategy", "num_additional_image_tokens"):
            if saved.get(key) is not None:
                settings[key] = saved[key]
    if "patch_size" not in settings or "vision_feature_select_strategy" not in settings:
        config, _ = PreTrainedConfig.get_config_dict(source, **hub_kwargs)
        settings.setdefault("patch_size", (config.get("vision_config") or {}).get("patch_size", 14))
        settings.setdefault("vision_feature_select_strategy", config.get("vision_feature_select_strategy", "default"))
    settings.setdefault("num_additional_image_tokens", 1)
    return settings


__all__ = ["LlavaNextEmbeddingImageProcessor", "num_image_tokens_for", "processor_settings"]
