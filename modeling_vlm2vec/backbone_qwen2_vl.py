"""The Qwen2-VL / Qwen2.5-VL backbone family of VLM2Vec: stock transformers `Qwen2VLModel` / `Qwen2_5_VLModel`.

Prompts hold one `<|image_pad|>` per image (no `<|vision_start|>`, no chat template), expanded to the image's
merged visual-token count; images go through the PIL `Qwen2VLImageProcessorPil` (the reference's bicubic resize).
Videos: one `<|video_pad|>` per clip, expanded the same way; a clip's frames are resized (PIL bicubic) to one size
computed from its first frame with the reference's own `smart_resize` (sides under 28 px or an aspect ratio over 200
squared first), normalised as images are, and cut into temporal patches of 2 frames (an odd count repeats the last).
This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .backbone_common import (
    BackboneFamily,
    ProcessorOption,
    init_shape,
    media_token_counts,
    rows_of_media,
    tokenize_checked,
)

if TYPE_CHECKING:  # torch and transformers are imported where used: the registry loads without them (CLI start-up)
    import torch

IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
# VLM2Vec-V2.0 (and the reference `main` defaults): smart-resize within [28*28*4, 28*28*1280] pixels, i.e. 4 to 1280
# visual tokens per image; the conversion defaults.
PUBLISHED_MIN_PIXELS = 3136
PUBLISHED_MAX_PIXELS = 1003520
# The reference's (vendored, transformers 4.4x) smart_resize: a side under 28 px or an aspect ratio over 200 is
# first treated as a square of side max(28, h, w), where stock transformers 5 keeps the aspect ratio.
VIDEO_SIZE_FACTOR = 28
VIDEO_MAX_RATIO = 200
# mrope_section of random backbones (sums to head_dim / 2) per `INIT_SHAPES` size.
INIT_MROPE_SECTIONS = {"tiny": [2, 3, 3], "mid": [8, 12, 12]}
# Chat recipes on Qwen backbones (GME, Qwen3-VL-Embedding): a text starting with this is already a complete chat prompt.
CHAT_START = "<|im_start|>"
# A VLM2Vec image placeholder (MMEB's tag is swapped for this token by the processor) and the separator VLM2Vec joined
# it with ("\n" in V2 prompts, " " in V1 prompts); chat recipes drop it and let it stand for one image.
VLM2VEC_IMAGE_PLACEHOLDER = re.compile(r"(?:<\|image_pad\|>|<\|image_\d+\|>)[ \n]?")


def is_complete_chat_prompt(text: str, instruction: str | None, prompt_name: str = "chat prompt") -> bool:
    """Whether `text` is already a complete chat prompt (used as is); such a text takes no instruction, a
    `ValueError` naming `prompt_name` says so."""
    if not text.startswith(CHAT_START):
        return False
    if instruction:
        raise ValueError(f"a text that is already a complete {prompt_name} takes no instruction")
    return True


def chat_prompt_image_count(prompt: str) -> int:
    """Images a chat recipe's prompt holds: its image tokens when it is a complete chat prompt, else its VLM2Vec
    placeholders."""
    if prompt.startswith(CHAT_START):
        return prompt.count(IMAGE_TOKEN)
    return len(VLM2VEC_IMAGE_PLACEHOLDER.findall(prompt))


def video_frame_size(
    height: int, width: int, min_pixels: int, max_pixels: int, factor: int = VIDEO_SIZE_FACTOR
) -> tuple[int, int]:
    """The `(height, width)` in pixels every frame of a clip is resized to, from its first frame's size: the
    reference's vendored `smart_resize` (multiples of `factor`, within `[min_pixels, max_pixels]`)."""
    if height < factor or width < factor or max(height, width) / min(height, width) > VIDEO_MAX_RATIO:
        height = width = max(factor, height, width)
    return fit_pixel_bounds(
        height, width, round(height / factor) * factor, round(width / factor) * factor, factor, min_pixels, max_pixels
    )


def fit_pixel_bounds(
    height: int, width: int, h_bar: int, w_bar: int, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """`smart_resize`'s bounds step: the rounded size `(h_bar, w_bar)` of a `height` x `width` image, scaled (keeping
    the aspect ratio, multiples of `factor`) into `[min_pixels, max_pixels]` pixels when it falls outside."""
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


class Qwen2VLFamily(BackboneFamily):
    """Qwen2-VL and Qwen2.5-VL (`model_type` `qwen2_vl`, `qwen2_5_vl`)."""

    name = "qwen2_vl"
    display_name = "Qwen2-VL"
    display_names = {"qwen2_5_vl": "Qwen2.5-VL"}
    model_types = ("qwen2_vl", "qwen2_5_vl")
    modalities = ("text", "image", "video")
    processor_options = (
        ProcessorOption("min_pixels", int, f"smart-resize lower bound in pixels (published: {PUBLISHED_MIN_PIXELS})"),
        ProcessorOption("max_pixels", int, f"smart-resize upper bound in pixels (published: {PUBLISHED_MAX_PIXELS})"),
    )
    init_model_types = ("qwen2_vl", "qwen2_5_vl")
    tiny_tokenizer = "tiny-qwen2-tokenizer"
    shipped_files = ("backbone_qwen2_vl.py",)
    image_token = IMAGE_TOKEN
    video_token = VIDEO_TOKEN
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
    media_input_keys = ("mm_token_type_ids", "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")
    token_type_input_keys = ("mm_token_type_ids",)
    resize_small_images = True

    def build_backbone(self, vlm_config) -> torch.nn.Module:
        from transformers import AutoModel

        return AutoModel.from_config(vlm_config)

    def load_backbone(self, source, **from_pretrained_kwargs) -> torch.nn.Module:
        from transformers import AutoModel

        # Its own transformers class converts legacy key layouts (`model.layers.*`, `visual.*`); `lm_head` is dropped.
        return AutoModel.from_pretrained(source, **from_pretrained_kwargs)

    def sub_batch_media(self, vlm_config, inputs: dict[str, Any], groups: list[list[int]]) -> list[dict] | None:
        import torch

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
        from transformers import AutoImageProcessor

        # Saved processor files do not record the PIL backend, so it is chosen here on every load.
        return AutoImageProcessor.from_pretrained(source, backend="pil", **hub_kwargs)

    def conversion_image_processor(
        self, source, min_pixels: int = PUBLISHED_MIN_PIXELS, max_pixels: int = PUBLISHED_MAX_PIXELS
    ):
        """`min_pixels` / `max_pixels`: the smart-resize bounds, in pixels."""
        from transformers import AutoImageProcessor
        from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

        if min_pixels > max_pixels:
            raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
        size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        if source is None:
            return Qwen2VLImageProcessorPil(size=size)
        return AutoImageProcessor.from_pretrained(source, backend="pil", size=size)

    def random_config(self, size: str, tokenizer, model_type: str | None = None):
        """A Qwen2-VL (or, with `model_type="qwen2_5_vl"`, Qwen2.5-VL) config of `size`, patch 14, merge 2."""
        from transformers.models.qwen2_5_vl import Qwen2_5_VLConfig
        from transformers.models.qwen2_vl import Qwen2VLConfig

        shape = init_shape(self, size)
        ids = {
            name: tokenizer.convert_tokens_to_ids(token)
            for name, token in {
                "image_token_id": IMAGE_TOKEN,
                "video_token_id": VIDEO_TOKEN,
                "vision_start_token_id": "<|vision_start|>",
                "vision_end_token_id": "<|vision_end|>",
                "bos_token_id": "<|endoftext|>",
                "eos_token_id": "<|im_end|>",
                "pad_token_id": "<|endoftext|>",
            }.items()
        }
        text_config = {
            "vocab_size": 3072,
            "hidden_size": shape["hidden"],
            "intermediate_size": shape["intermediate"],
            "num_hidden_layers": shape["layers"],
            "num_attention_heads": shape["heads"],
            "num_key_value_heads": shape["kv_heads"],
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": INIT_MROPE_SECTIONS[size]},
            "bos_token_id": ids["bos_token_id"],
            "eos_token_id": ids["eos_token_id"],
            "pad_token_id": ids["pad_token_id"],
        }
        vision = {"depth": shape["depth"], "num_heads": max(2, shape["width"] // 64), "patch_size": 14}
        vision |= {"spatial_merge_size": 2, "temporal_patch_size": 2}
        if (model_type or self.init_model_types[0]) == "qwen2_vl":
            vision |= {
                "embed_dim": shape["width"],
                "hidden_size": shape["hidden"],
                "mlp_ratio": 2 if size == "tiny" else 4,
            }
            return Qwen2VLConfig(text_config=text_config, vision_config=vision, tie_word_embeddings=False, **ids)
        vision |= {
            "hidden_size": shape["width"],
            "intermediate_size": 2 * shape["width"],
            "out_hidden_size": shape["hidden"],
            "window_size": 56,
            "fullatt_block_indexes": [shape["depth"] - 1],
        }
        return Qwen2_5_VLConfig(text_config=text_config, vision_config=vision, tie_word_embeddings=False, **ids)

    def processor_option_values(self, image_processor) -> dict[str, Any]:
        return {"min_pixels": image_processor.size["shortest_edge"], "max_pixels": image_processor.size["longest_edge"]}

    def image_token_id(self, tokenizer) -> int:
        return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    def num_image_tokens(self, image_processor, image) -> int:
        """Merged visual tokens the backbone sees for a prepared image (`grid_h * grid_w / merge_size**2`)."""
        patches = image_processor.get_number_of_image_patches(image.height, image.width, {})
        return patches // image_processor.merge_size**2

    def prepare_video(self, image_processor, frames: list[Image.Image]) -> list[Image.Image]:
        """Every RGB frame resized (PIL bicubic on uint8) to the clip's size from its first frame
        ([`video_frame_size`]); no under-28-px 56x56 resize (that rule is the image rows')."""
        first = frames[0]
        height, width = video_frame_size(
            first.height, first.width, image_processor.size["shortest_edge"], image_processor.size["longest_edge"]
        )
        return [frame.resize((width, height), Image.BICUBIC) for frame in frames]

    def preprocess_videos(self, image_processor, videos: list[list[Image.Image]]) -> dict[str, torch.Tensor]:
        """Prepared clips -> `pixel_values_videos` `(total_patches, 3 * temporal_patch * patch * patch)` (rows in
        (t, h / merge, w / merge, merge, merge) order, values in (channel, time, patch, patch) order, as the stock
        video processor lays them out) and `video_grid_thw` `(num_videos, 3)`.

        Not transformers' video processor: it needs torchvision, which shipped files may not import, and its patchify
        must match bit for bit."""
        import torch

        patch, merge = image_processor.patch_size, image_processor.merge_size
        temporal = image_processor.temporal_patch_size
        mean = np.asarray(image_processor.image_mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(image_processor.image_std, dtype=np.float32).reshape(1, -1, 1, 1)
        all_patches, grids = [], []
        for frames in videos:
            clip = np.stack([np.asarray(frame, dtype=np.uint8) for frame in frames]).transpose(0, 3, 1, 2)
            # The image processor's rescale (in float64, then float32) and normalize (float32), for the whole clip at
            # once: the same values as frame by frame.
            clip = (clip.astype(np.float64) * image_processor.rescale_factor).astype(np.float32)
            clip = (clip - mean) / std  # (T, C, H, W)
            if clip.shape[0] % temporal:
                repeats = temporal - clip.shape[0] % temporal
                clip = np.concatenate([clip, np.repeat(clip[-1:], repeats, axis=0)])
            frames_count, channels, height, width = clip.shape
            grid_t, grid_h, grid_w = frames_count // temporal, height // patch, width // patch
            patches = clip.reshape(
                grid_t, temporal, channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch
            ).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
            all_patches.append(patches.reshape(grid_t * grid_h * grid_w, channels * temporal * patch * patch))
            grids.append([grid_t, grid_h, grid_w])
        return {
            "pixel_values_videos": torch.from_numpy(np.concatenate(all_patches)),
            "video_grid_thw": torch.tensor(grids, dtype=torch.long),
        }

    def encode(
        self,
        processor,
        texts: list[str],
        images: list[Image.Image],
        videos: list[list[Image.Image]],
        text_kwargs: dict[str, Any],
        images_kwargs: dict[str, Any],
        return_tensors: str | None,
    ) -> dict[str, Any]:
        """Returns `input_ids`, `attention_mask` and `mm_token_type_ids` (`(batch, seq)`; 1 on image and 2 on video
        tokens), with images `pixel_values` (`(total_patches, 3 * 2 * patch * patch)`) and `image_grid_thw`
        (`(num_images, 3)`), with videos `pixel_values_videos` and `video_grid_thw` alike."""
        image_processor = processor.image_processor
        image_inputs = image_processor(images, return_tensors="pt", **images_kwargs) if images else {}
        video_inputs = self.preprocess_videos(image_processor, videos) if videos else {}
        merge = image_processor.merge_size**2
        image_tokens = [int(grid.prod()) // merge for grid in image_inputs.get("image_grid_thw", [])]
        video_tokens = [int(grid.prod()) // merge for grid in video_inputs.get("video_grid_thw", [])]
        # A family without video keeps a literal video token as plain text: only the processor's tokens expand.
        expanded, offsets = processor.get_text_with_replacements(
            list(texts),
            images_replacements=[IMAGE_TOKEN * count for count in image_tokens],
            videos_replacements=[VIDEO_TOKEN * count for count in video_tokens] if processor.video_token else [],
        )
        encoding = tokenize_checked(
            processor, expanded, media_token_counts(offsets), text_kwargs, hint="lower max_pixels"
        )
        token_types = processor.create_mm_token_type_ids(encoding["input_ids"])
        return {
            "input_ids": encoding["input_ids"],
            "attention_mask": encoding["attention_mask"],
            "mm_token_type_ids": token_types,
            **image_inputs,
            **video_inputs,
        }


FAMILY = Qwen2VLFamily()

__all__ = ["FAMILY", "IMAGE_TOKEN", "VIDEO_TOKEN", "Qwen2VLFamily", "video_frame_size"]
