"""The Qwen3-VL backbone family: stock transformers `Qwen3VLModel` (interleaved M-RoPE, DeepStack) with the
Qwen3-VL-Embedding recipe (`QwenLM/Qwen3-VL-Embedding` `src/models/qwen3_vl_embedding.py`, `Qwen3VLEmbedder`, with
`qwen_vl_utils.process_vision_info`; fixture `parity-qwen3vl-embedding-public`):

* prompt: the Qwen3-VL chat template with a generation prompt,
  `<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n{videos}{images}{text}<|im_end|>\\n`
  `<|im_start|>assistant\\n`; each video and image is a `<|vision_start|>...<|vision_end|>` block, videos first, then
  images, then the text; no text and no media give the text `NULL`. The instruction (default
  `Represent the user's input.`) is stripped and gets a `.` unless it ends in Unicode punctuation;
* the pooled token is the final `\\n` (the last attended position, right padding); a prompt over `max_length` 8192
  tokens is cut on the right (a long text then pools a text token);
* positions: the backbone's own M-RoPE (`position_ids_mode="native"`, from `mm_token_type_ids`);
* images: RGBA composited on white, qwen-vl-utils' `smart_resize` (factor `patch_size * merge_size`, each side at
  least one factor, within the pixel bounds), PIL bicubic, then the image processor without its own resize;
* videos (frame lists): each frame resized as an image with twice the factor (a qwen-vl-utils quirk), an odd count
  padded with the last frame, then the clip resized (bicubic with antialias, rounded to uint8) to the video bounds;
  each temporal pair of frames is its own `<{t:.1f} seconds><|vision_start|>...<|vision_end|>` group (2 frames per
  second: t is the pair's mean frame time).

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from PIL import Image

from .backbone_common import ProcessorOption, init_shape, tokenize_checked
from .backbone_qwen2_vl import (
    CHAT_START,
    IMAGE_TOKEN,
    VIDEO_TOKEN,
    VLM2VEC_IMAGE_PLACEHOLDER,
    Qwen2VLFamily,
    chat_prompt_image_count,
    fit_pixel_bounds,
    is_complete_chat_prompt,
)

PROMPT_FORMAT = "qwen3_vl_embedding"
DEFAULT_INSTRUCTION = "Represent the user's input."
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_BLOCK = f"{VISION_START}{IMAGE_TOKEN}{VISION_END}"
VIDEO_BLOCK = f"{VISION_START}{VIDEO_TOKEN}{VISION_END}"
EMPTY_INPUT = "NULL"
# Qwen3VLEmbedder's defaults: max_length 8192, image bounds 4,096 .. 1,843,200 px, a clip's total 7,864,320 px.
EMBEDDING_MAX_LENGTH = 8192
EMBEDDING_MIN_PIXELS = 4096
EMBEDDING_MAX_PIXELS = 1843200
VIDEO_TOTAL_PIXELS = 7864320
# Qwen3VLEmbedder(num_frames=64, max_frames=64): a longer frame list is sampled to 64 frames (np.linspace).
EMBEDDING_NUM_FRAMES = 64
# qwen-vl-utils' token bounds (times factor**2 pixels): images 4 .. 16384, video frames 128 .. 768.
IMAGE_MIN_TOKENS, IMAGE_MAX_TOKENS = 4, 16384
VIDEO_MIN_TOKENS, VIDEO_MAX_TOKENS = 128, 768
MAX_ASPECT_RATIO = 200
# The timestamps qwen-vl-utils gives a frame list (frames_indices = range(n)).
VIDEO_SAMPLE_FPS = 2.0
# A VLM2Vec video placeholder (MMEB's tag is swapped for this by the processor) and the separator after it.
VLM2VEC_VIDEO_PLACEHOLDER = re.compile(r"(?:<\|video_pad\|>|<\|video_\d+\|>)[ \n]?")
# What a prompt's media expand from: a video block (or a bare video token) and an image token.
MEDIA_SLOT = re.compile(rf"{re.escape(VIDEO_BLOCK)}|{re.escape(VIDEO_TOKEN)}|{re.escape(IMAGE_TOKEN)}")
# mrope_section (sums to head_dim / 2, head_dim 16 / 64) per `INIT_SHAPES` size: Qwen3-VL's 24:20:20 ratio.
INIT_MROPE_SECTIONS = {"tiny": [4, 2, 2], "mid": [12, 10, 10]}


def embedding_instruction(instruction: str | None) -> str:
    """The system turn: `instruction` stripped, with a `.` unless it ends in Unicode punctuation; the default
    instruction when none (or only whitespace) is given."""
    instruction = (instruction or "").strip()
    if not instruction:
        return DEFAULT_INSTRUCTION
    return instruction if unicodedata.category(instruction[-1]).startswith("P") else instruction + "."


def embedding_prompt(text: str | None, instruction: str | None = None, num_images: int = 0, num_videos: int = 0) -> str:
    """The Qwen3-VL-Embedding chat prompt: system turn, then videos, images and text in the user turn."""
    user = VIDEO_BLOCK * num_videos + IMAGE_BLOCK * num_images + (text or "")
    return (
        f"{CHAT_START}system\n{embedding_instruction(instruction)}<|im_end|>\n"
        f"{CHAT_START}user\n{user or EMPTY_INPUT}<|im_end|>\n{CHAT_START}assistant\n"
    )


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """qwen-vl-utils' `smart_resize`: `(height, width)` in pixels, multiples of `factor`, each side at least `factor`
    (a 12-px side becomes `factor`, where transformers' own rounds it to 0 first), within the pixel bounds.

    Raises:
        ValueError: an aspect ratio over 200.
    """
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"aspect ratio must be at most {MAX_ASPECT_RATIO}, got {max(height, width) / min(height, width)}"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    return fit_pixel_bounds(height, width, h_bar, w_bar, factor, min_pixels, max_pixels)


def resize_factor(image_processor) -> int:
    """Pixels per merged visual token side: `patch_size * merge_size` (32 for Qwen3-VL's 16-px patches)."""
    return image_processor.patch_size * image_processor.merge_size


def image_size(image_processor, height: int, width: int) -> tuple[int, int]:
    """The `(height, width)` an image of `height` x `width` pixels is resized to (the image processor's pixel
    bounds)."""
    return smart_resize(
        height,
        width,
        resize_factor(image_processor),
        image_processor.size.shortest_edge,
        image_processor.size.longest_edge,
    )


def frame_timestamps(num_frames: int, temporal_patch: int) -> list[float]:
    """Seconds of each temporal group of a clip of `num_frames` frames (already padded to a multiple of
    `temporal_patch`) at `VIDEO_SAMPLE_FPS`: the mean time of the group's first and last frame."""
    times = [index / VIDEO_SAMPLE_FPS for index in range(num_frames)]
    return [(times[i] + times[i + temporal_patch - 1]) / 2 for i in range(0, num_frames, temporal_patch)]


def expand_media(text: str, image_slots: Iterator[str], video_slots: Iterator[str]) -> tuple[str, dict[str, int]]:
    """`text` with each image token and each video block replaced by the next of `image_slots` / `video_slots`
    (their expanded token strings), and how many image and video tokens it then holds."""
    parts, counts, end = [], {"image": 0, "video": 0}, 0
    for match in MEDIA_SLOT.finditer(text):
        kind, token = ("image", IMAGE_TOKEN) if match.group(0) == IMAGE_TOKEN else ("video", VIDEO_TOKEN)
        slot = next(image_slots if kind == "image" else video_slots)
        parts += [text[end : match.start()], slot]
        counts[kind] += slot.count(token)
        end = match.end()
    return "".join([*parts, text[end:]]), counts


class Qwen3VLFamily(Qwen2VLFamily):
    """Qwen3-VL (`model_type` `qwen3_vl`) with the Qwen3-VL-Embedding recipe (`prompt_format`
    `qwen3_vl_embedding`)."""

    name = "qwen3_vl"
    display_name = "Qwen3-VL"
    display_names = {}
    model_types = ("qwen3_vl",)
    modalities = ("text", "image", "video")
    processor_options = (
        ProcessorOption(
            "min_pixels", int, f"image smart-resize lower bound in pixels (published: {EMBEDDING_MIN_PIXELS})"
        ),
        ProcessorOption(
            "max_pixels", int, f"image smart-resize upper bound in pixels (published: {EMBEDDING_MAX_PIXELS})"
        ),
    )
    init_model_types = ("qwen3_vl",)
    tiny_tokenizer = "tiny-qwen2-tokenizer"
    shipped_files = ("backbone_qwen2_vl.py", "backbone_qwen3_vl.py")
    prompt_formats = (PROMPT_FORMAT,)
    system_instruction_formats = (PROMPT_FORMAT,)
    padding_side = "right"
    default_max_length = EMBEDDING_MAX_LENGTH
    default_position_ids_mode = "native"
    default_num_frames = EMBEDDING_NUM_FRAMES
    rgba_background = (255, 255, 255)
    image_token = IMAGE_TOKEN
    video_token = VIDEO_TOKEN
    no_split_modules = ("Qwen3VLTextDecoderLayer", "Qwen3VLVisionBlock")
    # The LLM's attention and MLP projections (the Qwen2-VL list's names that exist in Qwen3-VL's LLM).
    lora_target_modules = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_module_scopes = ("language_model",)
    resize_small_images = False

    def format_prompt(
        self,
        text: str | None,
        instruction: str | None,
        num_images: int,
        prompt_format: str = PROMPT_FORMAT,
        num_videos: int = 0,
    ) -> str:
        """The embedding chat prompt. A `text` that is already one (starts with `<|im_start|>`) is used as is;
        VLM2Vec image / video placeholders in `text` are dropped and stand for the media instead of the counts."""
        text = text or ""
        if is_complete_chat_prompt(text, instruction):
            return text
        images, videos = len(VLM2VEC_IMAGE_PLACEHOLDER.findall(text)), len(VLM2VEC_VIDEO_PLACEHOLDER.findall(text))
        if images:
            text, num_images = VLM2VEC_IMAGE_PLACEHOLDER.sub("", text), images
        if videos:
            text, num_videos = VLM2VEC_VIDEO_PLACEHOLDER.sub("", text), videos
        return embedding_prompt(text, instruction, num_images, num_videos)

    def count_placeholders(self, prompt: str) -> int:
        return chat_prompt_image_count(prompt)

    def load_image_processor(self, source, **hub_kwargs):
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(source, backend="pil", **hub_kwargs)

    def conversion_image_processor(
        self, source, min_pixels: int = EMBEDDING_MIN_PIXELS, max_pixels: int = EMBEDDING_MAX_PIXELS
    ):
        """`min_pixels` / `max_pixels`: the image smart-resize bounds, in pixels. Without `source`: Qwen3-VL's
        image processor (16-px patches, merge 2, mean = std = 0.5)."""
        from transformers import AutoImageProcessor
        from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

        if min_pixels > max_pixels:
            raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
        size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        if source is None:
            return Qwen2VLImageProcessorPil(
                size=size, patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3
            )
        return AutoImageProcessor.from_pretrained(source, backend="pil", size=size)

    def resize_for_model(self, image_processor, image: Image.Image) -> Image.Image:
        """qwen-vl-utils' `fetch_image` resize (PIL bicubic); an image already at its size is returned as is."""
        height, width = image_size(image_processor, image.height, image.width)
        return image if (height, width) == (image.height, image.width) else image.resize((width, height), Image.BICUBIC)

    def num_image_tokens(self, image_processor, image) -> int:
        height, width = image_size(image_processor, image.height, image.width)
        return (
            (height // image_processor.patch_size)
            * (width // image_processor.patch_size)
            // image_processor.merge_size**2
        )

    def prepare_video(self, image_processor, frames: list[Image.Image]) -> list[Image.Image]:
        """qwen-vl-utils' `fetch_video` on a frame list: each frame resized as an image with twice the factor (PIL
        bicubic), an odd count padded with the last frame, then the clip resized to the video bounds (bicubic with
        antialias on float, clamped and rounded to uint8, as torchvision does for a uint8 clip)."""
        import numpy as np
        import torch

        factor = resize_factor(image_processor)
        frame_factor = 2 * factor
        frames = [
            frame.resize((width, height), Image.BICUBIC)
            for frame in frames
            for height, width in [
                smart_resize(
                    frame.height,
                    frame.width,
                    frame_factor,
                    IMAGE_MIN_TOKENS * frame_factor**2,
                    IMAGE_MAX_TOKENS * frame_factor**2,
                )
            ]
        ]
        temporal = image_processor.temporal_patch_size
        if len(frames) % temporal:
            frames += [frames[-1]] * (temporal - len(frames) % temporal)
        if len({frame.size for frame in frames}) > 1:
            raise ValueError(f"frames of one clip must have one size, got {sorted({f.size for f in frames})}")
        min_pixels = VIDEO_MIN_TOKENS * factor**2
        max_pixels = max(
            min(VIDEO_MAX_TOKENS * factor**2, VIDEO_TOTAL_PIXELS / len(frames) * 2), int(min_pixels * 1.05)
        )
        height, width = smart_resize(frames[0].height, frames[0].width, factor, min_pixels, max_pixels)
        clip = torch.from_numpy(np.stack([np.asarray(frame, dtype=np.uint8) for frame in frames])).permute(0, 3, 1, 2)
        resized = torch.nn.functional.interpolate(
            clip.float(), size=(height, width), mode="bicubic", align_corners=False, antialias=True
        )
        resized = resized.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(frame) for frame in resized]

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
        tokens), with images `pixel_values` (`(total_patches, 3 * 2 * 16 * 16)`) and `image_grid_thw`
        (`(num_images, 3)`), with videos `pixel_values_videos` and `video_grid_thw` alike. Plain texts get the
        embedding chat prompt (with the default instruction); complete chat prompts stay as they are."""
        image_processor = processor.image_processor
        texts = [self.format_prompt(text, None, 0) for text in texts]
        images = [self.resize_for_model(image_processor, image) for image in images]
        images_kwargs = {**images_kwargs, "do_resize": False}
        image_inputs = image_processor(images, return_tensors="pt", **images_kwargs) if images else {}
        video_inputs = self.preprocess_videos(image_processor, videos) if videos else {}
        merge = image_processor.merge_size**2
        image_slots = [IMAGE_TOKEN * (int(grid.prod()) // merge) for grid in image_inputs.get("image_grid_thw", [])]
        video_slots = [
            "".join(
                f"<{seconds:.1f} seconds>{VISION_START}{VIDEO_TOKEN * (int(grid[1] * grid[2]) // merge)}{VISION_END}"
                for seconds in frame_timestamps(
                    int(grid[0]) * image_processor.temporal_patch_size, image_processor.temporal_patch_size
                )
            )
            for grid in video_inputs.get("video_grid_thw", [])
        ]
        image_slots, video_slots = iter(image_slots), iter(video_slots)
        expanded, wanted = zip(*(expand_media(text, image_slots, video_slots) for text in texts))
        encoding = tokenize_checked(processor, list(expanded), list(wanted), text_kwargs, hint="lower max_pixels")
        return {
            "input_ids": encoding["input_ids"],
            "attention_mask": encoding["attention_mask"],
            "mm_token_type_ids": processor.create_mm_token_type_ids(encoding["input_ids"]),
            **image_inputs,
            **video_inputs,
        }

    def random_config(self, size: str, tokenizer, model_type: str | None = None):
        """A Qwen3-VL config of `size`: patch 16, merge 2, interleaved M-RoPE, DeepStack from the first and the
        middle vision block."""
        from transformers.models.qwen3_vl import Qwen3VLConfig

        shape = init_shape(self, size)
        ids = {
            name: tokenizer.convert_tokens_to_ids(token)
            for name, token in {
                "image_token_id": IMAGE_TOKEN,
                "video_token_id": VIDEO_TOKEN,
                "vision_start_token_id": VISION_START,
                "vision_end_token_id": VISION_END,
            }.items()
        }
        text_config = {
            "vocab_size": 3072,
            "hidden_size": shape["hidden"],
            "intermediate_size": shape["intermediate"],
            "num_hidden_layers": shape["layers"],
            "num_attention_heads": shape["heads"],
            "num_key_value_heads": shape["kv_heads"],
            "head_dim": shape["hidden"] // shape["heads"],
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5e6,
                "mrope_section": INIT_MROPE_SECTIONS[size],
                "mrope_interleaved": True,
            },
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        }
        vision_config = {
            "depth": shape["depth"],
            "hidden_size": shape["width"],
            "intermediate_size": 2 * shape["width"],
            "num_heads": max(2, shape["width"] // 64),
            "out_hidden_size": shape["hidden"],
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 256 if size == "tiny" else 2304,
            "deepstack_visual_indexes": [0, shape["depth"] // 2],
        }
        return Qwen3VLConfig(text_config=text_config, vision_config=vision_config, tie_word_embeddings=False, **ids)


FAMILY = Qwen3VLFamily()

__all__ = [
    "DEFAULT_INSTRUCTION",
    "FAMILY",
    "PROMPT_FORMAT",
    "Qwen3VLFamily",
    "embedding_instruction",
    "embedding_prompt",
    "smart_resize",
]
