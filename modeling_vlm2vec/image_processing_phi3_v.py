"""The reference Phi-3-V image processor (`Phi3VImageProcessor`): the HD transform with `num_crops` crops of
336 x 336 (transpose portrait images, resize to `s * 336` wide, pad the height with white to a multiple of 336), CLIP
normalisation, a bicubic 336 x 336 global view of the *normalised* HD tensor, global view first, zero-padded to
`num_crops + 1` crops.

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

CROP_SIZE = 336
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def hd_geometry(width: int, height: int, num_crops: int) -> tuple[int, int, int]:
    """The reference's `HD_transform` sizes for a landscape (`width >= height`) image: the largest `s` with
    `s * ceil(s / ratio) <= num_crops`; returns `(resized width = s * 336, resized height, padded height)`."""
    ratio = width / height
    scale = 1
    while scale * math.ceil(scale / ratio) <= num_crops:
        scale += 1
    scale -= 1
    new_width = int(scale * CROP_SIZE)
    new_height = int(new_width / ratio)
    if new_height < 1:
        raise ValueError(f"aspect ratio {ratio:.0f}:1 is too extreme for the HD transform (0 px after resizing)")
    return new_width, new_height, int(np.ceil(new_height / CROP_SIZE) * CROP_SIZE)


def hd_transform(image: Image.Image, num_crops: int) -> Image.Image:
    """The reference's `HD_transform`: portrait images transposed, resized (PIL bilinear, as torchvision's `resize`
    of a PIL image) to [`hd_geometry`], the height padded with white to a multiple of 336 (centred), transposed
    back."""
    transposed = image.width < image.height
    if transposed:
        image = image.transpose(Image.TRANSPOSE)
    new_width, new_height, target = hd_geometry(image.width, image.height, num_crops)
    image = image.resize((new_width, new_height), Image.BILINEAR)
    canvas = Image.new("RGB", (new_width, target), (255, 255, 255))
    canvas.paste(image, (0, int((target - new_height) / 2)))
    return canvas.transpose(Image.TRANSPOSE) if transposed else canvas


def num_image_tokens_for(height: int, width: int, num_img_tokens: int = 144) -> int:
    """Image tokens of an HD image of `height` x `width` pixels (multiples of 336)."""
    rows, columns = height // CROP_SIZE, width // CROP_SIZE
    side = int(num_img_tokens**0.5)
    return (rows * columns + 1) * num_img_tokens + 1 + (rows + 1) * side


class Phi3VImagesKwargs(TypedDict, total=False):
    """Call-time keywords of [`Phi3VImageProcessor`]."""

    num_crops: int


class Phi3VImageProcessor(BaseImageProcessor):
    """The reference Phi-3-V image processor (HD transform, `num_crops` crops), without torchvision.

    Returns `pixel_values` `(n_images, num_crops + 1, 3, 336, 336)`, `image_sizes` `(n_images, 2)` and
    `num_img_tokens` `(n_images,)`, as the reference's processor does.
    """

    model_input_names = ["pixel_values", "image_sizes"]
    valid_kwargs = Phi3VImagesKwargs

    def __init__(
        self,
        num_crops: int = 4,
        image_mean: tuple[float, ...] = CLIP_MEAN,
        image_std: tuple[float, ...] = CLIP_STD,
        num_img_tokens: int = 144,
        **kwargs,
    ):
        for key in ("processor_class", "image_processor_type", "auto_map", "backend"):
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        self.num_crops = num_crops
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.num_img_tokens = num_img_tokens

    def hd_size(self, image: Image.Image, num_crops: int | None = None) -> tuple[int, int]:
        """(height, width) of `image` after the HD transform (computed, not resized)."""
        long_side, short_side = max(image.width, image.height), min(image.width, image.height)
        width, _, padded = hd_geometry(long_side, short_side, num_crops or self.num_crops)
        return (padded, width) if image.width >= image.height else (width, padded)

    def num_image_tokens(self, image: Image.Image, num_crops: int | None = None) -> int:
        return num_image_tokens_for(*self.hd_size(image, num_crops), self.num_img_tokens)

    def preprocess(self, images, num_crops: int | None = None, return_tensors: str | None = "pt", **kwargs):
        """`images` (PIL, one or a list) -> `pixel_values` `(n_images, num_crops + 1, 3, 336, 336)` (global view,
        row-major crops, zero crops), `image_sizes` `(n_images, 2)` and `num_img_tokens` (per image).

        Each image is HD-transformed and turned into floats once; images of the same HD size are normalised and
        resized to their global view together, and every crop is written once, into the output tensor.
        """
        if kwargs:
            raise TypeError(f"Phi3VImageProcessor got unexpected keyword arguments {sorted(kwargs)}")
        num_crops = num_crops or self.num_crops
        images = [images] if isinstance(images, Image.Image) else list(images)
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.image_std, dtype=torch.float32).view(3, 1, 1)
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        hd_images = [hd_transform(image, num_crops) for image in rgb]
        sizes = [(hd.height, hd.width) for hd in hd_images]
        pixel_values = torch.zeros(len(images), num_crops + 1, 3, CROP_SIZE, CROP_SIZE)  # zero crops stay zero
        for (height, width), members in indices_by_value(sizes).items():
            rows, columns = height // CROP_SIZE, width // CROP_SIZE
            hd = torch.empty(len(members), 3, height, width)
            for slot, index in enumerate(members):  # uint8 (H, W, 3) -> float (3, H, W) in one copy
                hd[slot].copy_(torch.from_numpy(np.array(hd_images[index])).permute(2, 0, 1))
            hd.div_(255).sub_(mean).div_(std)  # torchvision's ToTensor + Normalize, in place
            pixel_values[members, 0] = F.interpolate(hd, size=(CROP_SIZE, CROP_SIZE), mode="bicubic")
            grid = hd.view(len(members), 3, rows, CROP_SIZE, columns, CROP_SIZE).permute(0, 2, 4, 1, 3, 5)
            for slot, index in enumerate(members):  # the crops, row-major, copied straight into place
                pixel_values[index, 1 : 1 + rows * columns].view(grid.shape[1:]).copy_(grid[slot])
        data = {
            "pixel_values": pixel_values,
            "image_sizes": torch.tensor(sizes, dtype=torch.long).reshape(-1, 2),
            "num_img_tokens": [num_image_tokens_for(height, width, self.num_img_tokens) for height, width in sizes],
        }
        return BatchFeature(data=data, tensor_type=return_tensors)


def indices_by_value(values: list) -> dict[Any, list[int]]:
    """`{value: [positions holding it]}` in first-seen order: the items that can share one batched op."""
    groups: dict[Any, list[int]] = {}
    for index, value in enumerate(values):
        groups.setdefault(value, []).append(index)
    return groups


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CROP_SIZE",
    "Phi3VImageProcessor",
    "hd_geometry",
    "hd_transform",
    "num_image_tokens_for",
]
