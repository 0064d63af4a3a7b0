"""Processor of a VLM2Vec model: prompt strings and images in, backbone inputs out, exactly as the reference does it.

The reference VLM2Vec feeds its Qwen2-VL backbone raw strings (no chat template, no `<|vision_start|>`), the image
placeholder first, and preprocesses images with the PIL pipeline of transformers 4.52. This processor reproduces
that, so the same weights give the same embeddings. This file is copied verbatim into every VLM2Vec model
repository on the Hub, so it imports only `torch`, `transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from transformers import AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .backbone_common import MMEB_IMAGE_TAG, MMEB_VIDEO_TAG, PROMPT_FORMATS, PromptRowError, format_prompt
from .backbone_qwen2_vl import IMAGE_TOKEN, VIDEO_TOKEN
from .backbones import DEFAULT_MODEL_TYPE, get_family

# The reference resizes an image with a side under 28 px to 56 x 56 before the processor sees it.
MIN_IMAGE_SIDE = 28
SMALL_IMAGE_RESIZE = (56, 56)
HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# Tokenizer keywords honoured at call time, as `Qwen2VLProcessor` passes them on.
TEXT_CALL_KWARGS = frozenset(
    {"padding", "truncation", "max_length", "padding_side", "pad_to_multiple_of", "return_tensors"}
)

# VLM2Vec-V2 embeds a clip by 8 frames (`num_frames: 8` of its video eval and training configs).
DEFAULT_NUM_FRAMES = 8
FRAME_FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")
# Prepared clips kept per processor (frame folders and video files only), in bytes of RGB pixels (w * h * 3 a frame).
DEFAULT_CLIP_CACHE_BYTES = 1 << 30

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


def load_video(video: VideoLike, num_frames: int = DEFAULT_NUM_FRAMES) -> list[Image.Image]:
    """A clip's sampled frames ([`sample_frame_indices`]) as RGB PIL images, each at its own size.

    `video`: a list of frames (PIL images, image file paths or uint8 arrays), a folder of frame images (natural
    file-name order), a video file (decoded with PyAV), or a `(T, H, W[, C])` uint8 array. Every frame goes through
    [`to_reference_rgb`] without the under-28-px resize: greyscale, RGBA (alpha dropped), palette and 16-bit frames
    all become RGB. Raises [`VideoInputError`] naming the video (or the frame at fault).
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
            prepared.append(load_image(frame, resize_small=False))
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
            image = Image.open(path)
            image.load()
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


def _high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    """Map 16-bit / 32-bit / float greyscale onto 0-255 (16-bit range / 257); PIL's own conversion would clip."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = values / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def to_reference_rgb(image: Image.Image, resize_small: bool = True) -> Image.Image:
    """Apply the reference's image preparation: the under-28-px resize (Qwen2-VL only: `resize_small`), then PIL
    `convert("RGB")`.

    `convert("RGB")` drops an alpha channel (keeping the colour under transparent pixels), as transformers 4.52 did;
    transformers 5 composites on white instead, which changes embeddings.
    """
    if image.width == 0 or image.height == 0:
        raise ImageInputError(f"image has zero size ({image.width}x{image.height})")
    if resize_small and (image.width < MIN_IMAGE_SIDE or image.height < MIN_IMAGE_SIDE):
        image = image.resize(SMALL_IMAGE_RESIZE)
    if image.mode in HIGH_BIT_DEPTH_MODES:
        image = _high_bit_depth_to_8bit(image)
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except ValueError as error:
            raise ImageInputError(f"image mode {image.mode!r} cannot be converted to RGB: {error}") from error
    return image


def load_image(image: ImageLike, resize_small: bool = True) -> Image.Image:
    """Turn a PIL image, an image file path or an `(H, W[, C])` uint8 array into a reference-prepared RGB image."""
    if isinstance(image, (str, os.PathLike)):
        image = open_image_file(image)
    elif isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.dtype != np.uint8:
            raise ImageInputError(f"arrays must be (H, W) or (H, W, C) uint8, got shape {image.shape} {image.dtype}")
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise ImageInputError(f"expected a PIL image, an image file path or a uint8 array, got {type(image).__name__}")
    return to_reference_rgb(image, resize_small)


def clip_signature(video: Any, num_frames: int) -> tuple | None:
    """What a clip given by path is made of, so that a changed file gives another key: for a video file its
    resolved path, `st_mtime_ns` and `st_size`; for a frame folder its resolved path, the frame-file listing and each
    sampled frame's `st_mtime_ns` / `st_size`; plus `num_frames`. `None` for frames given as lists or arrays, and for
    a path that is neither (left to [`load_video`] to refuse with its own error)."""
    if not isinstance(video, (str, os.PathLike)):
        return None
    path = Path(video)
    try:
        if path.is_dir():
            files = list_frame_files(path)
            if not files:
                return None
            sampled = [files[index].stat() for index in sample_frame_indices(len(files), num_frames)]
            listing = tuple(file.name for file in files)
            stats = tuple((stat.st_mtime_ns, stat.st_size) for stat in sampled)
            return ("folder", str(path.resolve()), num_frames, listing, stats)
        if path.is_file() and path.suffix.lower() not in FRAME_FILE_EXTENSIONS:
            stat = path.stat()
            return ("file", str(path.resolve()), num_frames, stat.st_mtime_ns, stat.st_size)
    except OSError:  # unreadable: load_video raises what it raises today
        return None
    return None


class ClipCache:
    """A least-recently-used store of prepared clips (lists of PIL frames), bounded by `max_bytes` of pixels (the sum
    of `width * height * bands` over the frames; 0 stores nothing). A clip bigger than the bound is not stored.

    A copy (`copy.deepcopy`, pickling for data-loader workers) starts empty with the same bound."""

    def __init__(self, max_bytes: int = DEFAULT_CLIP_CACHE_BYTES):
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise ValueError(f"clip_cache_bytes must be a non-negative integer (bytes), got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[list[Image.Image], int]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def size_of(frames: list[Image.Image]) -> int:
        return sum(frame.width * frame.height * len(frame.getbands()) for frame in frames)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> list[Image.Image] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, frames: list[Image.Image]) -> None:
        size = self.size_of(frames)
        with self._lock:
            if key in self._entries:
                self.bytes -= self._entries.pop(key)[1]
            if size > self.max_bytes:
                return
            self._entries[key] = (frames, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                self.bytes -= self._entries.popitem(last=False)[1][1]

    def resize(self, max_bytes: int) -> None:
        """Set a new bound, evicting the least recently used clips that no longer fit."""
        fresh = ClipCache(max_bytes)  # validates
        with self._lock:
            self.max_bytes = fresh.max_bytes
            while self.bytes > self.max_bytes:
                self.bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def __deepcopy__(self, memo) -> ClipCache:
        return ClipCache(self.max_bytes)

    def __reduce__(self):
        return (ClipCache, (self.max_bytes,))


class PreparedClip(list):
    """The frames [`VLM2VecProcessor.prepare_video`] returns (a list of PIL images, sampled, RGB and resized): the
    processor call takes them as they are instead of preparing them again."""


class VLM2VecProcessor(ProcessorMixin):
    r"""
    Prompt strings and images in, [`VLM2VecModel`] inputs out.

    What differs between backbones (image token, prompt splitting, image processing, truncation) is asked of the
    backbone family (`backbones.py`, chosen by `backbone_model_type`). Qwen2-VL: a Qwen2 tokenizer and the PIL
    Qwen2-VL image processor (the reference's bicubic resize; the torchvision backend differs by up to 9e-3).
    Phi-3.5-V: the Llama-style `tokenizer.json` (the `tokenizers` pipeline) and `Phi3VImageProcessor`. Images go
    through [`to_reference_rgb`] first. Needs no torchvision and no video processor.

    Args:
        image_processor: Qwen2-VL: a `Qwen2VLImageProcessorPil`, whose `size` holds the `min_pixels` / `max_pixels`
            bounds. Phi-3.5-V: a `Phi3VImageProcessor` (`num_crops`).
        tokenizer: the backbone's tokenizer.
        prompt_format (`str`, defaults to `"v1"`): how [`format_prompt`] joins instruction, text and image (`"v1"`,
            `"v2"`, or a recipe family's own, e.g. `"gme"`: GME's chat prompt).
        max_length (`int`, *optional*): right-truncate every row to this many tokens (image tokens included).
            `None` keeps every token, as the published V2 evaluation does.
        image_resize (`[width, height]`, *optional*): resize every image to exactly this size (PIL bicubic, aspect
            ratio not kept) before the image processor, as the V1 reference does (`image_resolution="high"`:
            1344x1344) for the published VLM2Vec-Qwen2VL models. `None` (default) leaves sizing to the pixel bounds.
        backbone_model_type (`str`, defaults to `"qwen2_vl"`): the backbone's `model_type`, which picks its family.
        backbone_family (`str`, *optional*): the family by name, for a recipe that is not the model_type's default
            (e.g. `"gme"`: GME's chat prompt, its image bounds, left padding); `None`: the model_type's family.
        num_frames (`int`, defaults to 8): frames sampled per video ([`sample_frame_indices`]: `linspace` over a
            longer clip, every frame of a shorter one), as VLM2Vec-V2 does.
        clip_cache_bytes (`int`, defaults to 1 GiB): bound of the cache of prepared clips ([`prepare_video`]), in
            bytes of RGB pixels (`width * height * 3` per frame). A clip given by path (frame folder or video file)
            is decoded, sampled and resized once and reused while it stays in this least-recently-used cache; a
            changed file (its modification time or size) is read again. Frames given as lists or arrays are not
            cached. `0` disables the cache. Settable later (`processor.clip_cache_bytes = 0`); not saved with the
            processor (`from_pretrained(..., clip_cache_bytes=...)` sets it on load).
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        prompt_format: str = "v1",
        max_length: int | None = None,
        image_resize: Sequence[int] | None = None,
        backbone_model_type: str = DEFAULT_MODEL_TYPE,
        backbone_family: str | None = None,
        num_frames: int = DEFAULT_NUM_FRAMES,
        clip_cache_bytes: int = DEFAULT_CLIP_CACHE_BYTES,
        **kwargs,
    ):
        family = get_family(backbone_model_type, backbone_family)
        # Not an attribute of its own: to_dict() would save it to processor_config.json (it is a runtime setting).
        self._clip_cache = ClipCache(clip_cache_bytes)
        if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        if prompt_format not in family.prompt_formats:
            raise ValueError(f"prompt_format must be one of {list(family.prompt_formats)}, got {prompt_format!r}")
        if image_resize is not None and (len(image_resize) != 2 or min(image_resize) < 1):
            raise ValueError(f"image_resize must be [width, height] in pixels, got {image_resize!r}")
        self.prompt_format = prompt_format
        self.max_length = max_length
        self.image_resize = list(image_resize) if image_resize is not None else None
        self.backbone_model_type = backbone_model_type
        self.backbone_family = backbone_family
        self.num_frames = num_frames
        self.family = family
        self.image_token = self.family.image_token
        self.video_token = self.family.video_token
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        if family.padding_side is not None:  # the recipe's side (GME: left); a call's `padding_side` still wins
            self.tokenizer.padding_side = family.padding_side
        self.image_token_id = self.family.image_token_id(tokenizer)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token) if self.video_token else None

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # Saved processor files do not record the PIL backend, so it is chosen here on every load.
        kwargs.pop("subfolder", None)
        hub_kwargs = {key: value for key, value in kwargs.items() if key not in ("backend", "clip_cache_bytes")}
        processor_dict = processor_dict or {}
        family = get_family(
            processor_dict.get("backbone_model_type", DEFAULT_MODEL_TYPE), processor_dict.get("backbone_family")
        )
        image_processor = family.load_image_processor(pretrained_model_name_or_path, **hub_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        return [image_processor, tokenizer]

    @property
    def clip_cache_bytes(self) -> int:
        """The bound of the prepared-clip cache in bytes (0: off); setting it evicts what no longer fits."""
        return self._clip_cache.max_bytes

    @clip_cache_bytes.setter
    def clip_cache_bytes(self, value: int) -> None:
        self._clip_cache.resize(value)

    @property
    def min_pixels(self) -> int:
        return self.image_processor.size["shortest_edge"]

    @property
    def max_pixels(self) -> int:
        return self.image_processor.size["longest_edge"]

    def format_prompt(
        self, text: str | None = None, instruction: str | None = None, num_images: int = 0, num_videos: int = 0
    ) -> str:
        """[`format_prompt`] with this processor's prompt format and its backbone's image / video placeholders
        (a video: `"<|video_pad|> " + instruction [+ " " + text]` in both formats, as VLM2Vec-V2 builds it)."""
        if self.video_token and text:
            text = text.replace(MMEB_VIDEO_TAG, self.video_token)
        if not num_videos:
            return self.family.format_prompt(text, instruction, num_images, self.prompt_format)
        self._require_video()
        return self.family.format_prompt(text, instruction, num_images, self.prompt_format, num_videos=num_videos)

    def _require_video(self) -> None:
        if self.video_token is None:
            raise VideoInputError(f"this {self.family.name} model takes no video input")

    def prepare_video(self, video: VideoLike) -> PreparedClip:
        """[`load_video`] (`num_frames` sampled, RGB) then the family's frame resize (Qwen2-VL: every frame to the
        size [`video_frame_size`] gives its first frame), so clips mixing frame sizes or modes work.

        A clip given by path comes from the prepared-clip cache (`clip_cache_bytes`) when its [`clip_signature`],
        the family and the image processor's size bounds are unchanged; a cached clip is handed out as copies, so a
        caller that draws on its frames does not change the cache."""
        self._require_video()
        key = self._clip_cache_key(video)
        cached = self._clip_cache.get(key) if key is not None else None
        if cached is not None:  # only clips the image processor accepted are stored
            return PreparedClip(frame.copy() for frame in cached)
        frames = self.family.prepare_video(self.image_processor, load_video(video, self.num_frames))
        try:
            self.num_image_tokens(frames[0])
        except ValueError as error:
            raise VideoInputError(
                f"{frames[0].width}x{frames[0].height} frames rejected by the image processor: {error}"
            ) from error
        if key is None:
            return PreparedClip(frames)
        self._clip_cache.put(key, frames)
        return PreparedClip(frame.copy() for frame in frames)

    def _clip_cache_key(self, video: VideoLike) -> tuple | None:
        """The cache key of a clip given by path: its [`clip_signature`] plus what the family's frame resize reads
        (the family and the image processor's `size` bounds). `None`: not cached (cache off, frames, bad path)."""
        if not self._clip_cache.max_bytes:
            return None
        signature = clip_signature(video, self.num_frames)
        if signature is None:
            return None
        size = dict(getattr(self.image_processor, "size", None) or {})
        return (signature, self.family.name, tuple(sorted(size.items())))

    def prepare_image(self, image: ImageLike) -> Image.Image:
        """[`load_image`], the family's own resize (GME: its `smart_resize`), the fixed `image_resize` if set, then a
        check that the image processor accepts the shape (e.g. aspect ratio < 200)."""
        image = self.family.resize_image(load_image(image, resize_small=self.family.resize_small_images))
        if self.image_resize is not None:
            image = image.resize(tuple(self.image_resize), Image.BICUBIC)
        try:
            self.num_image_tokens(image)
        except ValueError as error:
            raise ImageInputError(
                f"{image.width}x{image.height} image rejected by the image processor: {error}"
            ) from error
        return image

    def num_image_tokens(self, image: Image.Image) -> int:
        """Image tokens the backbone sees for a prepared image."""
        return self.family.num_image_tokens(self.image_processor, image)

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        images: ImageLike | Sequence[ImageLike] | None = None,
        videos: Sequence[VideoLike] | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Tokenise raw prompt strings and preprocess their images.

        Args:
            text: one prompt or a batch; each `<|image_pad|>` (or MMEB `<|image_1|>`) stands for one image. `None`
                with `images` embeds each image alone (the image-alone prompt, one row per image).
            images: every image of the batch, flat, in the order their placeholders appear. PIL images, image file
                paths or uint8 arrays.
            videos: every video of the batch, flat, in the order of their `<|video_pad|>` placeholders (Qwen2-VL).
                Each a list of frames (PIL images, image paths, uint8 arrays), a folder of frame images, a video
                file (PyAV) or a `(T, H, W[, C])` uint8 array; `num_frames` frames are sampled
                ([`prepare_video`]). A row holds images or a video, not both.
            **kwargs: the transformers processor call convention, flat or in `text_kwargs` / `images_kwargs`:
                `padding` (`True` / `"longest"` (default), `"max_length"`, `False` / `"do_not_pad"`), `truncation`
                (default: on when `max_length` is set), `max_length` (default: this processor's `max_length`),
                `padding_side` (`"left"` / `"right"`; default the tokenizer's; embeddings do not depend on it),
                `pad_to_multiple_of`, `return_tensors` (`"pt"` (default), `"np"`, `None`), and the image
                processor's own keywords (e.g. `max_pixels`). Any other keyword is a `TypeError`.

        Returns:
            Qwen2-VL: `input_ids`, `attention_mask`, `mm_token_type_ids` (`(batch, seq)`; 1 on image tokens), and
            with images `pixel_values` (`(total_patches, 3 * 2 * 14 * 14)`) and `image_grid_thw` (`(num_images, 3)`),
            with videos `pixel_values_videos` (`(total_video_patches, 3 * 2 * 14 * 14)`) and `video_grid_thw`
            (`(num_videos, 3)`; 2 on `mm_token_type_ids`).
            Phi-3.5-V: `input_ids` (`-N` on the positions of a row's N-th image), `attention_mask`, and with images
            `pixel_values` (`(num_images, num_crops + 1, 3, 336, 336)`) and `image_sizes` (`(num_images, 2)`).
            LLaVA-Next: `input_ids` (`<image>` expanded), `attention_mask`, and with images `pixel_values`
            (`(num_images, max_patches, 3, 336, 336)`, zero patches at the end) and `image_sizes` (`(num_images, 2)`).

        Raises:
            ValueError: naming the row or image at fault, e.g. when truncation would cut into a row's image tokens.
            TypeError: an unknown keyword argument.
        """
        text_kwargs, images_kwargs = self._split_call_kwargs(kwargs)
        return_tensors = text_kwargs.pop("return_tensors", "pt")
        if text is None and images is None and videos is None:
            raise ValueError("give text, images, videos, or a combination")
        if isinstance(images, (Image.Image, str, os.PathLike, np.ndarray)):
            images = [images]
        images = list(images or [])
        if isinstance(videos, (str, os.PathLike, np.ndarray)):
            videos = [videos]
        videos = list(videos or [])
        if videos:
            self._require_video()
        if text is None:
            if images and videos:
                raise ValueError("without text, give images or videos (each is embedded alone), not both")
            text = [self.format_prompt(num_images=1)] * len(images)
            if videos:
                text += [self.format_prompt(num_videos=1)] * len(videos)
        texts = [text] if isinstance(text, str) else list(text)
        for row, prompt in enumerate(texts):
            if not isinstance(prompt, str):
                raise PromptRowError(row, f"prompt must be a string, got {type(prompt).__name__}")
        if MMEB_IMAGE_TAG != self.image_token:
            texts = [prompt.replace(MMEB_IMAGE_TAG, self.image_token) for prompt in texts]
        if self.video_token:
            texts = [prompt.replace(MMEB_VIDEO_TAG, self.video_token) for prompt in texts]
        placeholders = [self.family.count_placeholders(prompt) for prompt in texts]
        if sum(placeholders) != len(images):
            raise ValueError(
                f"the prompts hold {sum(placeholders)} image placeholders (per row: {placeholders}) "
                f"but {len(images)} images were given"
            )

        video_placeholders = [self.family.count_video_placeholders(prompt) for prompt in texts]
        if sum(video_placeholders) != len(videos):
            raise ValueError(
                f"the prompts hold {sum(video_placeholders)} video placeholders (per row: {video_placeholders}) "
                f"but {len(videos)} videos were given"
            )
        for row, (image_count, video_count) in enumerate(zip(placeholders, video_placeholders)):
            if image_count and video_count:
                raise PromptRowError(row, "holds image and video placeholders; a row takes one kind of visual input")

        prepared = []
        for index, image in enumerate(images):
            try:
                prepared.append(self.prepare_image(image))
            except ValueError as error:
                raise ImageInputError(f"image {index}: {error}") from error
        prepared_videos = []
        for index, video in enumerate(videos):
            try:
                prepared_videos.append(video if isinstance(video, PreparedClip) else self.prepare_video(video))
            except ValueError as error:
                raise VideoInputError(f"video {index} ({_describe_video(video)}): {error}") from error
        extra = {"videos": prepared_videos} if prepared_videos else {}
        data = self.family.encode(self, texts, prepared, text_kwargs, images_kwargs, return_tensors, **extra)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _split_call_kwargs(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Sort call-time keywords into tokenizer and image-processor keywords; an unknown one is a `TypeError`."""
        kwargs = dict(kwargs)
        text_kwargs = dict(kwargs.pop("text_kwargs", None) or {})
        images_kwargs = dict(kwargs.pop("images_kwargs", None) or {})
        common = dict(kwargs.pop("common_kwargs", None) or {})
        if "return_tensors" in common:
            text_kwargs.setdefault("return_tensors", common.pop("return_tensors"))
        kwargs = {**common, **kwargs}
        image_keys = set(getattr(getattr(self.image_processor, "valid_kwargs", None), "__annotations__", {}))
        for key, value in kwargs.items():
            if key in TEXT_CALL_KWARGS:
                text_kwargs[key] = value
            elif key in image_keys and key != "return_tensors":
                images_kwargs[key] = value
            else:
                raise TypeError(
                    f"VLM2VecProcessor got an unexpected keyword argument {key!r}; it takes "
                    f"{', '.join(sorted(TEXT_CALL_KWARGS))} and the image processor's keywords"
                )
        unknown = sorted(set(text_kwargs) - TEXT_CALL_KWARGS)
        unknown += sorted(set(images_kwargs) - image_keys)
        if unknown:
            raise TypeError(f"VLM2VecProcessor got unexpected keyword arguments {unknown}")
        return text_kwargs, images_kwargs

    def _tokenize(self, texts: list[str], **text_kwargs: Any) -> dict[str, list[list[int]]]:
        """The tokenizer on already expanded prompts; an unencodable text is a `PromptRowError` naming its row."""
        try:
            return self.tokenizer(texts, return_tensors=None, **text_kwargs)
        except (TypeError, UnicodeError) as error:
            for row, prompt in enumerate(texts):
                try:
                    prompt.encode("utf-8")
                except UnicodeError as row_error:
                    raise PromptRowError(row, f"text cannot be encoded: {row_error}") from error
            raise

    @property
    def model_input_names(self) -> list[str]:
        return self.family.model_input_names()


def _describe_video(video: Any) -> str:
    if isinstance(video, (str, os.PathLike)):
        return repr(str(video))
    if isinstance(video, (list, tuple)):
        return f"{len(video)} frames"
    return type(video).__name__


__all__ = [
    "DEFAULT_CLIP_CACHE_BYTES",
    "DEFAULT_NUM_FRAMES",
    "ClipCache",
    "PreparedClip",
    "clip_signature",
    "IMAGE_TOKEN",
    "VIDEO_TOKEN",
    "VideoInputError",
    "decode_video_file",
    "list_frame_files",
    "load_video",
    "sample_frame_indices",
    "MMEB_IMAGE_TAG",
    "PROMPT_FORMATS",
    "ImageInputError",
    "PromptRowError",
    "VLM2VecProcessor",
    "format_prompt",
    "load_image",
    "to_reference_rgb",
]
