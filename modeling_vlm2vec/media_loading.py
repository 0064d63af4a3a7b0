"""Media loading of a VLM2Vec model: images, frame folders and video files in, reference-prepared RGB PIL images
out (before any backbone-specific resize).

`FRAME_FILE_EXTENSIONS` / `list_frame_files` are the one definition of what a clip folder's frames are; evaluation
and training checks use them too. This file is copied verbatim into every VLM2Vec model repository on the Hub, so it
imports only `numpy` and `PIL` (and PyAV, only when a video file is decoded).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

MIN_IMAGE_SIDE = 28
SMALL_IMAGE_RESIZE = (56, 56)
HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# VLM2Vec-V2 embeds a clip by 8 frames (`num_frames: 8` of its video eval and training configs).
DEFAULT_NUM_FRAMES = 8
FRAME_FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")
ImageLike = Image.Image | str | os.PathLike | np.ndarray
# A clip: a list of frames, a folder of frame images, a video file, or a `(T, H, W[, C])` uint8 array.
VideoLike = Sequence[ImageLike] | str | os.PathLike | np.ndarray


class ImageInputError(ValueError):
    """An image that cannot be turned into model input; the message names the image."""


class VideoInputError(ValueError):
    """A video that cannot be turned into model input; the message names the video."""


def sample_frame_indices(num_source_frames: int, num_frames: int) -> list[int]:
    """The reference's frame choice: `numpy.linspace(0, n - 1, num_frames, dtype=int)` (truncated toward zero) when
    the clip has at least `num_frames` frames, else every frame once (nothing repeated)."""
    if num_source_frames < num_frames:
        return list(range(num_source_frames))
    return np.linspace(0, num_source_frames - 1, num_frames, dtype=int).tolist()


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The frame images of a clip folder (by extension, hidden files skipped) in natural file-name order
    (`2.png` before `10.png`), which is time order."""
    files = [
        path
        for path in Path(folder).iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in FRAME_FILE_EXTENSIONS
    ]
    return sorted(files, key=lambda path: _natural_key(path.name))


def decode_video_file(path: str | os.PathLike, num_frames: int) -> list[Image.Image]:
    """The sampled frames ([`sample_frame_indices`]) of a video file, decoded with PyAV, as PIL RGB images.

    The frame count comes from a first decoding pass (container metadata can be wrong); only the sampled frames
    are converted to images in the second."""
    try:
        import av  # only a video file needs it
    except ImportError as error:
        raise VideoInputError(
            f"video file {str(path)!r} needs PyAV to decode: pip install av (or give the frames or a frame folder)"
        ) from error

    def frames_of(container):
        if not container.streams.video:
            raise VideoInputError(f"video file {str(path)!r} has no video stream")
        return container.decode(container.streams.video[0])

    try:
        with av.open(str(path)) as container:
            count = sum(1 for _ in frames_of(container))
        if count == 0:
            raise VideoInputError(f"video file {str(path)!r} has no frames")
        wanted = sample_frame_indices(count, num_frames)
        chosen: dict[int, Image.Image] = {}
        with av.open(str(path)) as container:
            for index, frame in enumerate(frames_of(container)):
                if index in wanted:
                    chosen[index] = frame.to_image()
    except (av.error.FFmpegError, OSError, EOFError) as error:
        raise VideoInputError(f"video file {str(path)!r} is not a readable video: {error}") from error
    return [chosen[index] for index in wanted]


def load_video(
    video: VideoLike, num_frames: int = DEFAULT_NUM_FRAMES, rgba_background: tuple[int, int, int] | None = None
) -> list[Image.Image]:
    """A clip's sampled frames ([`sample_frame_indices`]) as RGB PIL images, each at its own size.

    `video`: a list of frames (PIL images, image file paths or uint8 arrays), a folder of frame images (natural
    file-name order), a video file (decoded with PyAV), or a `(T, H, W[, C])` uint8 array. Every frame goes through
    [`to_reference_rgb`] without the under-28-px resize: greyscale, RGBA (alpha dropped, or composited on
    `rgba_background`), palette and 16-bit frames all become RGB. Raises [`VideoInputError`] naming the video (or
    the frame at fault).
    """
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_dir():
            files = list_frame_files(path)
            if not files:
                kinds = ", ".join(FRAME_FILE_EXTENSIONS)
                raise VideoInputError(f"video folder {str(path)!r} holds no frame images ({kinds})")
            frames: list = [files[index] for index in sample_frame_indices(len(files), num_frames)]
        elif not path.is_file():
            raise VideoInputError(f"video {str(path)!r} does not exist (give a video file, a frame folder or frames)")
        elif path.suffix.lower() in FRAME_FILE_EXTENSIONS:
            raise VideoInputError(
                f"video {str(path)!r} is one image file; give a video file, a frame folder or a list of frames"
            )
        else:
            frames = decode_video_file(path, num_frames)
    elif isinstance(video, np.ndarray):
        if video.ndim not in (3, 4) or video.dtype != np.uint8:
            raise VideoInputError(f"video arrays must be (T, H, W[, C]) uint8, got shape {video.shape} {video.dtype}")
        frames = [video[index] for index in sample_frame_indices(len(video), num_frames)]
    elif isinstance(video, (list, tuple)):
        frames = [video[index] for index in sample_frame_indices(len(video), num_frames)]
    else:
        raise VideoInputError(
            f"a video must be a list of frames, a frame folder, a video file or a uint8 array, "
            f"got {type(video).__name__}"
        )
    if not frames:
        raise VideoInputError("video has no frames")
    prepared = []
    for index, frame in enumerate(frames):
        try:
            prepared.append(load_image(frame, resize_small=False, rgba_background=rgba_background))
        except ValueError as error:
            raise VideoInputError(f"frame {index} ({_frame_name(frame)}): {error}") from error
    return prepared


def _frame_name(frame: Any) -> str:
    if isinstance(frame, (str, os.PathLike)):
        return repr(str(frame))
    return type(frame).__name__


def open_image_file(path: str | os.PathLike) -> Image.Image:
    """Open and decode an image file, refusing decompression bombs (more than `PIL.Image.MAX_IMAGE_PIXELS`)."""
    path = Path(path)
    if path.is_dir():
        raise ImageInputError(f"{str(path)!r} names a directory, not an image file")
    if not path.is_file():
        raise ImageInputError(f"image file {str(path)!r} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _decoded(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageInputError(
            f"image file {str(path)!r} is refused as a possible decompression bomb (limit "
            f"{Image.MAX_IMAGE_PIXELS} pixels, PIL.Image.MAX_IMAGE_PIXELS): {error}"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageInputError(f"image file {str(path)!r} is not a readable image") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(f"image file {str(path)!r} is corrupt or truncated: {error}") from error
    return image


def _decoded(path: Path) -> Image.Image:
    """`Image.open(path)` fully decoded; the file is closed when decoding fails (a truncated file, a bomb)."""
    image = Image.open(path)
    try:
        image.load()
    except BaseException:
        image.close()
        raise
    return image


def _high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    """Map 16-bit / 32-bit / float greyscale onto 0-255 (16-bit range / 257); PIL's own conversion would clip."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = values / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def to_reference_rgb(
    image: Image.Image, resize_small: bool = True, rgba_background: tuple[int, int, int] | None = None
) -> Image.Image:
    """Apply the reference's image preparation: the under-28-px resize (for families that declare
    `resize_small_images`: `resize_small`), then PIL `convert("RGB")`; with `rgba_background` (an RGB colour) an
    RGBA image is pasted on that colour with its alpha as the mask instead (qwen-vl-utils' `to_rgb`).

    `convert("RGB")` drops an alpha channel (keeping the colour under transparent pixels), as transformers 4.52 did;
    transformers 5 composites on white instead, which changes embeddings.
    """
    if image.width == 0 or image.height == 0:
        raise ImageInputError(f"image has zero size ({image.width}x{image.height})")
    if resize_small and (image.width < MIN_IMAGE_SIDE or image.height < MIN_IMAGE_SIDE):
        image = image.resize(SMALL_IMAGE_RESIZE)
    if rgba_background is not None and image.mode == "RGBA":
        background = Image.new("RGB", image.size, tuple(rgba_background))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode in HIGH_BIT_DEPTH_MODES:
        image = _high_bit_depth_to_8bit(image)
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except ValueError as error:
            raise ImageInputError(f"image mode {image.mode!r} cannot be converted to RGB: {error}") from error
    return image


def load_image(
    image: ImageLike, resize_small: bool = True, rgba_background: tuple[int, int, int] | None = None
) -> Image.Image:
    """Turn a PIL image, an image file path or an `(H, W[, C])` uint8 array into a reference-prepared RGB image
    ([`to_reference_rgb`])."""
    if isinstance(image, (str, os.PathLike)):
        image = open_image_file(image)
    elif isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.dtype != np.uint8:
            raise ImageInputError(f"arrays must be (H, W) or (H, W, C) uint8, got shape {image.shape} {image.dtype}")
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise ImageInputError(f"expected a PIL image, an image file path or a uint8 array, got {type(image).__name__}")
    return to_reference_rgb(image, resize_small, rgba_background)


__all__ = [
    "DEFAULT_NUM_FRAMES",
    "FRAME_FILE_EXTENSIONS",
    "ImageInputError",
    "ImageLike",
    "VideoInputError",
    "VideoLike",
    "decode_video_file",
    "list_frame_files",
    "load_image",
    "load_video",
    "open_image_file",
    "sample_frame_indices",
    "to_reference_rgb",
]
