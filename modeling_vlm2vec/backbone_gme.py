"""The GME recipe (`Alibaba-NLP/gme-Qwen2-VL-2B/7B-Instruct`, arXiv 2412.16855) on the stock Qwen2-VL backbone.

GME is a Qwen2-VL checkpoint embedded with its own recipe, as VLM2Vec's baseline driver runs it (VLM2Vec `main`
`src/model/baseline_backbone/gme/gme_inference.py` `GmeQwen2VL`, fixture `parity-gme-public`):

* prompt: `<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n` + one
  `<|vision_start|><|image_pad|><|vision_end|>` per image + text + `<|im_end|>\\n<|im_start|>assistant\\n<|endoftext|>`;
  the instruction is `You are a helpful assistant.` unless one is given (GME's `embed(..., instruction=...)` puts it
  in the system turn). VLM2Vec's MMEB texts arrive as `instruction + " " + text`; a VLM2Vec image placeholder in the
  text (`<|image_pad|>` or MMEB's `<|image_1|>`, with the `"\\n"` or `" "` after it) is dropped, as the driver strips
  `"<|image_pad|>\\n"`, and the image goes into the vision block instead;
* the pooled token is the trailing `<|endoftext|>` (the last non-padding token; a row truncated at `max_length`
  1800 pools its last kept token instead);
* left padding; positions: the reference calls the LLM with `position_ids=None`, i.e. `arange` per row, no M-RoPE
  rope index. Our `position_ids_mode="reference"` (`cumsum(attention_mask) - 1`) gives each row exactly the
  positions it has alone, so every row of a batch equals its single-case embedding;
* images: `convert("RGB")` (no under-28-px resize), GME's own `smart_resize` (factor 28, 3136 ... 12,845,056 px,
  aspect ratio clamped at 200) with a PIL bicubic resize, then the processor's bounds (VLM2Vec: 3136 ... 1,003,520).

Unlike GME's wrapper, a batch may mix rows with and without images: each row keeps its own image (the wrapper
drops every image of a batch that holds one text-only row, or raises). Backbone, image processor, LoRA targets and
adapter keys are Qwen2-VL's. This file is copied verbatim into every VLM2Vec model repository on the Hub, so it
imports only `torch`, `transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from .backbone_qwen2_vl import (
    CHAT_START,
    IMAGE_TOKEN,
    VLM2VEC_IMAGE_PLACEHOLDER,
    Qwen2VLFamily,
    chat_prompt_image_count,
    fit_pixel_bounds,
    is_complete_chat_prompt,
)

PROMPT_FORMAT = "gme"
DEFAULT_INSTRUCTION = "You are a helpful assistant."
VISION_BLOCK = f"<|vision_start|>{IMAGE_TOKEN}<|vision_end|>"
# GmeQwen2VL(max_length=1800): the processor truncates every row (right side) at 1800 tokens.
GME_MAX_LENGTH = 1800
# GME's `fetch_image` bounds (copied from qwen_vl_utils): factor 28, 4 to 16384 merged tokens, aspect ratio <= 200.
GME_FACTOR = 28
GME_MIN_PIXELS = 4 * 28 * 28
GME_MAX_PIXELS = 16384 * 28 * 28
GME_MAX_RATIO = 200


def gme_prompt(text: str | None, instruction: str | None = None, num_images: int = 0) -> str:
    """GME's chat prompt for `text` with `num_images` images in front (`instruction`: the system turn)."""
    system = instruction or DEFAULT_INSTRUCTION
    user = VISION_BLOCK * num_images + (text or "")
    return (
        f"{CHAT_START}system\n{system}<|im_end|>\n{CHAT_START}user\n{user}<|im_end|>\n"
        f"{CHAT_START}assistant\n<|endoftext|>"
    )


def smart_resize(
    height: int,
    width: int,
    factor: int = GME_FACTOR,
    min_pixels: int = GME_MIN_PIXELS,
    max_pixels: int = GME_MAX_PIXELS,
) -> tuple[int, int]:
    """GME's `smart_resize`: `(height, width)` in pixels, multiples of `factor`, within the pixel bounds, the aspect
    ratio clamped at `GME_MAX_RATIO` (GME warns and clamps where the Qwen2-VL processor would refuse)."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    h_bar, w_bar = fit_pixel_bounds(height, width, h_bar, w_bar, factor, min_pixels, max_pixels)
    if max(h_bar, w_bar) / min(h_bar, w_bar) > GME_MAX_RATIO:
        if h_bar > w_bar:
            h_bar = w_bar * GME_MAX_RATIO
        else:
            w_bar = h_bar * GME_MAX_RATIO
    return h_bar, w_bar


class GmeFamily(Qwen2VLFamily):
    """The GME recipe on a Qwen2-VL backbone (`backbone_family` `gme`, `prompt_format` `gme`)."""

    name = "gme"
    display_name = "GME (Qwen2-VL)"
    display_names = {}
    model_types = ("qwen2_vl",)
    modalities = ("text", "image")  # GME's driver embeds a video by its middle frame only: no video input here
    init_model_types = ("qwen2_vl",)
    shipped_files = ("backbone_qwen2_vl.py", "backbone_gme.py")
    prompt_formats = (PROMPT_FORMAT,)
    padding_side = "left"
    default_max_length = GME_MAX_LENGTH
    video_token = None
    resize_small_images = False

    def format_prompt(
        self,
        text: str | None,
        instruction: str | None,
        num_images: int,
        prompt_format: str = PROMPT_FORMAT,
        num_videos: int = 0,
    ) -> str:
        """GME's chat prompt. A `text` that is already one (starts with `<|im_start|>`) is used as is; VLM2Vec
        image placeholders in `text` are dropped and stand for the images instead of `num_images`."""
        if num_videos:
            raise ValueError(f"holds a video, but the {self.name} recipe takes no video input")
        text = text or ""
        if is_complete_chat_prompt(text, instruction, "GME chat prompt"):
            return text
        placeholders = len(VLM2VEC_IMAGE_PLACEHOLDER.findall(text))
        if placeholders:
            text, num_images = VLM2VEC_IMAGE_PLACEHOLDER.sub("", text), placeholders
        return gme_prompt(text, instruction, num_images)

    def count_placeholders(self, prompt: str) -> int:
        return chat_prompt_image_count(prompt)

    def resize_image(self, image: Image.Image) -> Image.Image:
        height, width = smart_resize(image.height, image.width)
        return image.resize((width, height), Image.BICUBIC)

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
        # Plain texts (e.g. `processor(text=["A cat"])`) get the chat prompt; complete chat prompts stay as they are.
        texts = [self.format_prompt(text, None, 0) for text in texts]
        return super().encode(processor, texts, images, videos, text_kwargs, images_kwargs, return_tensors)


FAMILY = GmeFamily()

__all__ = ["DEFAULT_INSTRUCTION", "FAMILY", "GME_MAX_LENGTH", "GmeFamily", "gme_prompt", "smart_resize"]
