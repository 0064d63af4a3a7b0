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

The image processor is `image_processing_llava_next.py`. This file is copied verbatim into every VLM2Vec model
repository on the Hub, so it imports only `torch`, `transformers`, `numpy` and `PIL`; those are imported where used,
so the registry loads without them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .backbone_common import (
    BackboneFamily,
    clip_vision_config,
    init_shape,
    media_token_counts,
    rows_of_media,
    select_images_per_group,
    tokenize_checked,
)

if TYPE_CHECKING:
    import torch

IMAGE_TOKEN = "<image>"
# Checkpoint keys the embedding model does not use: the LM head, in the Hub layout and the transformers 4.52+ one.
DROPPED_CHECKPOINT_KEYS = (r"^language_model\.lm_head\.", r"^lm_head\.")


def _is_dropped(key: str) -> bool:
    return any(re.search(pattern, key) for pattern in DROPPED_CHECKPOINT_KEYS)


def load_llava_next_checkpoint(source, **from_pretrained_kwargs) -> torch.nn.Module:
    """A stock `LlavaNextModel` with the weights of a LLaVA-Next checkpoint (folder or Hub id).

    transformers maps the llava-hf Hub layout (`language_model.model.*`, `vision_tower.vision_model.*`, ...: also
    the vendored reference class's names) and the 4.52+ layout (`model.language_model.*`, ...) onto its modules;
    the LM head is dropped. `from_pretrained_kwargs` (e.g. `dtype`, `attn_implementation`) go to that load.

    Raises:
        KeyError: naming checkpoint keys that land on no parameter, or parameters the checkpoint leaves unset.
    """
    from transformers import LlavaNextModel

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


class LlavaNextFamily(BackboneFamily):
    """LLaVA-Next / LLaVA-1.6 (`model_type` `llava_next`)."""

    name = "llava_next"
    display_name = "LLaVA-Next"
    model_types = ("llava_next",)
    init_model_types = ("llava_next",)
    tiny_tokenizer = "tiny-llava-next-tokenizer"
    shipped_files = ("backbone_llava_next.py", "image_processing_llava_next.py")
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
        from transformers import LlavaNextModel

        return LlavaNextModel(vlm_config)

    def load_backbone(self, source, **from_pretrained_kwargs) -> torch.nn.Module:
        return load_llava_next_checkpoint(source, **from_pretrained_kwargs)

    def sub_batch_media(self, vlm_config, inputs: dict[str, Any], groups: list[list[int]]) -> list[dict] | None:
        from .image_processing_llava_next import num_image_tokens_for

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

    def random_config(self, size: str, tokenizer, model_type: str | None = None):
        """A LLaVA-1.6-Mistral config of `size` with the published geometry (CLIP 336 px, patch 14, the llava-hf grid
        pinpoints) and the bundled tokenizer's `<image>` (2000) / `<pad>` (2001) ids."""
        from transformers import LlavaNextConfig, MistralConfig

        shape = init_shape(self, size)
        text = MistralConfig(
            vocab_size=2064,
            hidden_size=shape["hidden"],
            intermediate_size=shape["intermediate"],
            num_hidden_layers=shape["layers"],
            num_attention_heads=shape["heads"],
            num_key_value_heads=shape["kv_heads"],
            max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            sliding_window=None,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=2001,
            tie_word_embeddings=False,
        )
        return LlavaNextConfig(
            text_config=text,
            vision_config=clip_vision_config(shape),
            image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
            pad_token_id=2001,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            tie_word_embeddings=False,
        )

    # --- processor ---
    def load_image_processor(self, source, **hub_kwargs):
        from .image_processing_llava_next import LlavaNextEmbeddingImageProcessor

        return LlavaNextEmbeddingImageProcessor.from_pretrained(source, **hub_kwargs)

    def conversion_image_processor(self, source):
        # LLaVA-Next sizes images by its AnyRes pinpoints: no options (`image_processor_options` is empty).
        from .image_processing_llava_next import LlavaNextEmbeddingImageProcessor, processor_settings

        if source is None:
            return LlavaNextEmbeddingImageProcessor()
        image_processor = LlavaNextEmbeddingImageProcessor.from_pretrained(source)
        for key, value in processor_settings(source).items():
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
        videos: list,
        text_kwargs: dict[str, Any],
        images_kwargs: dict[str, Any],
        return_tensors: str | None,
    ) -> dict[str, Any]:
        image_processor = processor.image_processor
        image_inputs = dict(image_processor(images, return_tensors="pt", **images_kwargs)) if images else {}
        tokens_per_image = [image_processor.num_image_tokens(image.height, image.width) for image in images]
        expanded, offsets = processor.get_text_with_replacements(
            list(texts), images_replacements=[IMAGE_TOKEN * count for count in tokens_per_image]
        )
        # As the reference: each row tokenised whole (BOS first), cut at max_length (4096 in the v1 recipe).
        counts = media_token_counts(offsets, kinds=("image",))
        encoding = tokenize_checked(processor, expanded, counts, text_kwargs, hint="use a smaller image")
        return {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"], **image_inputs}


FAMILY = LlavaNextFamily()

__all__ = ["DROPPED_CHECKPOINT_KEYS", "FAMILY", "IMAGE_TOKEN", "LlavaNextFamily", "load_llava_next_checkpoint"]
