"""The LLaVA-Next (LLaVA-1.6) backbone family of VLM2Vec (`TIGER-Lab/VLM2Vec-LLaVa-Next`, `model_type` `llava_next`).

The backbone is stock transformers `LlavaNextModel` (CLIP tower, projector, `image_newline`, the LLM); images go
through stock `LlavaNextImageProcessorPil` (the reference's 4.52 PIL pipeline: bit-identical pixels). What is
written here is only what the reference (VLM2Vec v1 `Llava_NEXT_process_fn` + its vendored
`LlavaNextForConditionalGeneration`) does differently from, or what transformers lacks for, an embedding model:

* prompts: the raw string, `<image>` expanded to the image's feature count (576 base + unpadded AnyRes grid + one
  newline per grid row), BOS added, no chat template; `[`LlavaNextEmbeddingImageProcessor`]` carries the patch
  size and feature strategy the count needs (transformers keeps them on `LlavaNextProcessor`, which is not ours);
* images per row: each image row gets its own features, text rows none. The reference gives text rows an all-zero
  dummy image and scatters the *first* n feature vectors, so image rows after a text row get the dummy's
  features, and it crashes on images with different patch counts; stock `LlavaNextModel` with only the real
  images (patch-padded, `image_sizes` per image) is row-correct;
* `unpad_image` rounds (`int(round(x, 7))`, as the processor counts); the vendored model truncates (`int(x)`) and
  crashes on sizes such as (h, w) = (55, 176);
* RGBA: alpha is dropped (PIL `convert("RGB")` in `to_reference_rgb`), as transformers 4.52 did;
* checkpoint keys: the llava-hf Hub layout (also what the vendored class and transformers 5 `save_pretrained`
  write) and the transformers 4.52+ module layout (`model.language_model.*`, `lm_head`) both load; `lm_head` is
  dropped and any other key that lands nowhere is an error naming it.

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import torch
from transformers import LlavaNextModel, PreTrainedConfig
from transformers.image_processing_utils import select_best_resolution
from transformers.models.llava_next import LlavaNextImageProcessorPil
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorKwargs
from transformers.utils import cached_file

from .backbone_common import BackboneFamily, PromptRowError, rows_of_media, select_images_per_group

IMAGE_TOKEN = "<image>"
# Checkpoint keys the embedding model does not use: the LM head, in the Hub layout and the transformers 4.52+ one.
DROPPED_CHECKPOINT_KEYS = (r"^language_model\.lm_head\.", r"^lm_head\.")


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


def _is_dropped(key: str) -> bool:
    return any(re.search(pattern, key) for pattern in DROPPED_CHECKPOINT_KEYS)


def load_llava_next_checkpoint(source, **from_pretrained_kwargs) -> LlavaNextModel:
    """A stock `LlavaNextModel` with the weights of a LLaVA-Next checkpoint (folder or Hub id).

    transformers maps the llava-hf Hub layout (`language_model.model.*`, `vision_tower.vision_model.*`, ...: also
    the vendored reference class's names) and the 4.52+ layout (`model.language_model.*`, ...) onto its modules;
    the LM head is dropped. `from_pretrained_kwargs` (e.g. `dtype`, `attn_implementation`) go to that load.

    Raises:
        KeyError: naming checkpoint keys that land on no parameter, or parameters the checkpoint leaves unset.
    """
    model, info = LlavaNextModel.from_pretrained(source, output_loading_info=True, **from_pretrained_kwargs)
    unmapped = sorted(key for key in info["unexpected_keys"] if not _is_dropped(key))
    if unmapped:
        raise KeyError(f"{len(unmapped)} checkpoint keys land on no LLaVA-Next parameter: {unmapped[:20]}")
    if info["missing_keys"] or info["mismatched_keys"]:
        raise KeyError(
            f"the checkpoint does not fill the model: missing {sorted(info['missing_keys'])[:20]}, "
            f"mismatched {list(info['mismatched_keys'])[:20]}"
        )
    return model.eval()


def _processor_settings(source, **hub_kwargs) -> dict[str, Any]:
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


class LlavaNextFamily(BackboneFamily):
    """LLaVA-Next / LLaVA-1.6 (`model_type` `llava_next`)."""

    name = "llava_next"
    display_name = "LLaVA-Next"
    model_types = ("llava_next",)
    init_model_types = ("llava_next",)
    tiny_tokenizer = "tiny-llava-next-tokenizer"
    shipped_files = ("backbone_llava_next.py",)
    image_token = IMAGE_TOKEN
    # LLaVA-1.6 LLMs: Mistral (the published model), Vicuna / Yi (Llama layers); the tower is CLIP.
    no_split_modules = ("MistralDecoderLayer", "LlamaDecoderLayer", "CLIPEncoderLayer")
    # The v1 LoRA list: on LLaVA-Next it adapts Mistral's q/k/v/o/down_proj (`gate_up_proj` matches nothing) and
    # the CLIP tower's q/k/v/out_proj, as the reference's peft does.
    lora_target_modules = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "k_proj", "q_proj", "out_proj", "v_proj")
    lora_module_scopes = ("language_model", "vision_tower")
    # (pattern, replacement), first match wins: the reference's (vendored class, 4.4x names) adapter keys, then
    # keys saved from transformers 4.52+ module paths.
    adapter_key_mapping = (
        (r"^base_model\.model\.language_model\.model\.", "vlm.language_model."),
        (r"^base_model\.model\.vision_tower\.vision_model\.", "vlm.vision_tower."),
        (r"^base_model\.model\.model\.language_model\.", "vlm.language_model."),
        (r"^base_model\.model\.model\.vision_tower\.(?:vision_model\.)?", "vlm.vision_tower."),
    )
    media_input_keys = ("pixel_values", "image_sizes")
    resize_small_images = False  # the reference's LLaVA path has no under-28-px resize

    # --- model ---
    def build_backbone(self, vlm_config) -> torch.nn.Module:
        return LlavaNextModel(vlm_config)

    def load_backbone(self, source, **from_pretrained_kwargs) -> torch.nn.Module:
        return load_llava_next_checkpoint(source, **from_pretrained_kwargs)

    def sub_batch_media(self, vlm_config, inputs: dict[str, Any], groups: list[list[int]]) -> list[dict] | None:
        if inputs.get("pixel_values") is None:
            return [{} for _ in groups]
        if inputs.get("input_ids") is None or inputs.get("image_sizes") is None:
            return None
        vision = vlm_config.vision_config
        extra = 0 if vlm_config.vision_feature_select_strategy == "default" else 1
        per_image = [
            num_image_tokens_for(h, w, vlm_config.image_grid_pinpoints, vision.image_size, vision.patch_size, extra)
            for h, w in inputs["image_sizes"].tolist()
        ]
        counts = (inputs["input_ids"] == vlm_config.image_token_id).sum(dim=1).tolist()
        per_row = rows_of_media(counts, per_image)
        if per_row is None:
            return None
        return select_images_per_group(inputs, per_row, groups, ("pixel_values", "image_sizes"))

    # --- processor ---
    def load_image_processor(self, source, **hub_kwargs):
        return LlavaNextEmbeddingImageProcessor.from_pretrained(source, **hub_kwargs)

    def conversion_image_processor(self, source):
        # LLaVA-Next sizes images by its AnyRes pinpoints: no options (`image_processor_options` is empty).
        if source is None:
            return LlavaNextEmbeddingImageProcessor()
        image_processor = LlavaNextEmbeddingImageProcessor.from_pretrained(source)
        for key, value in _processor_settings(source).items():
            setattr(image_processor, key, value)
        return image_processor

    def image_token_id(self, tokenizer) -> int:
        return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    def num_image_tokens(self, image_processor, image) -> int:
        return image_processor.num_image_tokens(image.height, image.width)

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
        image_inputs = dict(image_processor(images, return_tensors="pt", **images_kwargs)) if images else {}
        tokens_per_image = [image_processor.num_image_tokens(image.height, image.width) for image in images]

        expanded, expected_image_tokens, next_image = [], [], 0
        for prompt in texts:
            pieces = prompt.split(IMAGE_TOKEN)
            row_tokens = tokens_per_image[next_image : next_image + len(pieces) - 1]
            next_image += len(row_tokens)
            expanded.append(pieces[0] + "".join(IMAGE_TOKEN * n + rest for n, rest in zip(row_tokens, pieces[1:])))
            expected_image_tokens.append(sum(row_tokens))

        # As the reference: each row tokenised whole (BOS first), cut at max_length (4096 in the v1 recipe).
        max_length = text_kwargs.pop("max_length", processor.max_length)
        truncation = text_kwargs.pop("truncation", max_length is not None)
        text_kwargs.setdefault("padding", True)
        encoding = processor._tokenize(expanded, truncation=truncation, max_length=max_length, **text_kwargs)
        image_token_id = processor.image_token_id
        for row, (ids, expected) in enumerate(zip(encoding["input_ids"], expected_image_tokens)):
            seen = ids.count(image_token_id)
            if seen != expected:
                raise PromptRowError(
                    row,
                    f"its images need {expected} image tokens but {seen} fit in max_length={max_length}; "
                    "raise max_length (max_seq_length) or use a smaller image",
                )
        return {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"], **image_inputs}


FAMILY = LlavaNextFamily()

__all__ = [
    "DROPPED_CHECKPOINT_KEYS",
    "FAMILY",
    "IMAGE_TOKEN",
    "LlavaNextEmbeddingImageProcessor",
    "LlavaNextFamily",
    "load_llava_next_checkpoint",
    "num_image_tokens_for",
]
