"""Processor of a VLM2Vec model: prompt strings, images and videos in, backbone inputs out, exactly as the
reference does it.

What differs between backbones (placeholders, prompt format, image processing, tokenisation, truncation) is asked of
the backbone family (`backbones.py`); media loading is `media_loading.py`, the prepared-clip cache `clip_cache.py`.
This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

import os
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
from PIL import Image
from transformers import AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ImagesKwargs, ProcessingKwargs, ProcessorMixin, TextKwargs

from .backbone_common import MMEB_IMAGE_TAG, MMEB_VIDEO_TAG, PROMPT_FORMATS, PromptRowError, format_prompt
from .backbones import DEFAULT_MODEL_TYPE, get_family
from .clip_cache import DEFAULT_CLIP_CACHE_BYTES, ClipCache, PreparedClip, clip_signature
from .media_loading import (
    DEFAULT_NUM_FRAMES,
    ImageInputError,
    ImageLike,
    VideoInputError,
    VideoLike,
    load_image,
    load_video,
)

# The tokenizer keywords a call honours (`Qwen2VLProcessor` passes the same on); `TextKwargs` declares more than the
# families' tokenisation handles, and any other keyword is a `TypeError`.
VLM2VecTextKwargs = TypedDict(
    "VLM2VecTextKwargs",
    {
        key: TextKwargs.__annotations__[key]
        for key in ("padding", "truncation", "max_length", "padding_side", "pad_to_multiple_of")
    },
    total=False,
)


class VLM2VecProcessorKwargs(ProcessingKwargs, total=False):
    text_kwargs: VLM2VecTextKwargs
    images_kwargs: ImagesKwargs


class VLM2VecProcessor(ProcessorMixin):
    r"""
    Prompt strings, images and videos in, [`VLM2VecModel`] inputs out.

    Everything that differs between backbones is asked of the backbone family (`backbones.py`, chosen by
    `backbone_model_type` / `backbone_family`): its image and video placeholders, prompt format, image processor and
    tokenisation. Images go through [`load_image`] (the reference's RGB preparation) and the family's resize first.

    Args:
        image_processor: the family's image processor (its `processor_options`, e.g. pixel bounds or HD crops, are
            settings of it).
        tokenizer: the backbone's tokenizer.
        prompt_format (`str`, defaults to `"v1"`): how [`format_prompt`] joins instruction, text and image (`"v1"`,
            `"v2"`, or a recipe family's own).
        max_length (`int`, *optional*): right-truncate every row to this many tokens (image tokens included).
            `None` keeps every token, as the published V2 evaluation does.
        image_resize (`[width, height]`, *optional*): resize every image to exactly this size (PIL bicubic, aspect
            ratio not kept) before the image processor, as the V1 reference does (`image_resolution="high"`:
            1344x1344). `None` (default) leaves sizing to the image processor.
        backbone_model_type (`str`, *optional*): the backbone's `model_type`, which picks its family (default: the
            registry's default).
        backbone_family (`str`, *optional*): the family by name, for a recipe that is not the model_type's default;
            `None`: the model_type's family.
        num_frames (`int`, defaults to 8): frames sampled per video ([`sample_frame_indices`]: `linspace` over a
            longer clip, every frame of a shorter one), as VLM2Vec-V2 does.
        clip_cache_bytes (`int`, defaults to 1 GiB): bound of the cache of prepared clips ([`prepare_video`]), in
            bytes of RGB pixels (`width * height * 3` per frame). A clip given by path (frame folder or video file)
            is decoded, sampled and resized once and reused while it stays in this least-recently-used cache; a
            changed file (its modification time or size) is read again. Frames given as lists or arrays are not
            cached. `0` disables the cache. Settable later (`processor.clip_cache_bytes = 0`); not saved with the
            processor (`from_pretrained(..., clip_cache_bytes=...)` sets it on load).
    """

    valid_processor_kwargs = VLM2VecProcessorKwargs

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
        if family.padding_side is not None:  # the recipe's side; a call's `padding_side` still wins
            self.tokenizer.padding_side = family.padding_side
        self.image_token_id = self.family.image_token_id(tokenizer)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token) if self.video_token else None

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # Saved processor files do not record the family's image-processor class; the family loads its own.
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
    def instruction_turn(self) -> str:
        """`"system"` when this prompt format gives the instruction its own turn, else `"inline"` (VLM2Vec's prompt
        string holds it)."""
        return "system" if self.prompt_format in self.family.system_instruction_formats else "inline"

    @property
    def processor_options(self) -> dict[str, Any]:
        """The current value of each of the family's `processor_options` (e.g. the pixel bounds), by name."""
        return self.family.processor_option_values(self.image_processor)

    def format_prompt(
        self, text: str | None = None, instruction: str | None = None, num_images: int = 0, num_videos: int = 0
    ) -> str:
        """[`format_prompt`] with this processor's prompt format and its family's image / video placeholders."""
        if num_videos:
            self._require_video()
        return self.family.format_prompt(text, instruction, num_images, self.prompt_format, num_videos)

    def _require_video(self) -> None:
        if not self.family.takes_video:
            raise VideoInputError(f"this {self.family.name} model takes no video input")

    def prepare_video(self, video: VideoLike) -> PreparedClip:
        """[`load_video`] (`num_frames` sampled, RGB) then the family's frame resize, so clips mixing frame sizes or
        modes work.

        A clip given by path comes from the prepared-clip cache (`clip_cache_bytes`) when its [`clip_signature`],
        the family and the image processor's size bounds are unchanged; a cached clip is handed out as copies, so a
        caller that draws on its frames does not change the cache."""
        self._require_video()
        key = self._clip_cache_key(video)
        cached = self._clip_cache.get(key) if key is not None else None
        if cached is not None:  # only clips the image processor accepted are stored
            return PreparedClip(frame.copy() for frame in cached)
        frames = self.family.prepare_video(
            self.image_processor, load_video(video, self.num_frames, self.family.rgba_background)
        )
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
        """[`load_image`], the family's own resize, the fixed `image_resize` if set, then a check that the image
        processor accepts the shape (e.g. aspect ratio < 200)."""
        image = self.family.resize_image(
            load_image(image, self.family.resize_small_images, self.family.rgba_background)
        )
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
        """Tokenise raw prompt strings and preprocess their images and videos.

        Args:
            text: one prompt or a batch; each image placeholder (the family's `image_token`, or MMEB's
                `<|image_1|>`) stands for one image, each video placeholder (`video_token`, or `<|video_1|>`) for
                one video. `None` embeds each image or video alone (the media-alone prompt, one row per item).
            images: every image of the batch, flat, in the order their placeholders appear. PIL images, image file
                paths or uint8 arrays.
            videos: every video of the batch, flat, in the order of their placeholders (families that declare the
                `"video"` modality). Each a list of frames (PIL images, image paths, uint8 arrays), a folder of
                frame images, a video file (PyAV) or a `(T, H, W[, C])` uint8 array; `num_frames` frames are
                sampled ([`prepare_video`]). A row holds images or a video, not both.
            **kwargs: the transformers processor call convention (`ProcessingKwargs`), flat or in `text_kwargs` /
                `images_kwargs` / `common_kwargs`: `padding` (`True` / `"longest"` (default), `"max_length"`,
                `False` / `"do_not_pad"`), `truncation` (default: on when `max_length` is set), `max_length`
                (default: this processor's `max_length`), `padding_side`, `pad_to_multiple_of`, `return_tensors`
                (`"pt"` (default), `"np"`, `None`), and the image processor's own keywords. Any other keyword is a
                `TypeError`.

        Returns:
            `input_ids` and `attention_mask` (`(batch, seq)`), plus the family's `media_input_keys` for the images
            and videos given (their shapes are documented by each family's `encode`).

        Raises:
            ValueError: naming the row or image at fault, e.g. when truncation would cut into a row's image tokens.
            TypeError: an unknown keyword argument.
        """
        text_kwargs, images_kwargs, return_tensors = self._split_call_kwargs(kwargs)
        images, videos = _as_list(images, Image.Image), _as_list(videos, None)
        texts = self._prompts(text, images, videos)
        self._check_placeholders(texts, len(images), len(videos))
        prepared_images = [
            self._prepared(self.prepare_image, ImageInputError, "image", i, x) for i, x in enumerate(images)
        ]
        prepared_videos = [
            video
            if isinstance(video, PreparedClip)
            else self._prepared(self.prepare_video, VideoInputError, "video", i, video)
            for i, video in enumerate(videos)
        ]
        data = self.family.encode(
            self, texts, prepared_images, prepared_videos, text_kwargs, images_kwargs, return_tensors
        )
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _prompts(self, text: str | Sequence[str] | None, images: list, videos: list) -> list[str]:
        """The batch's prompts with MMEB's placeholders swapped for the family's (without `text`: one media-alone
        prompt per image or video)."""
        if text is None and not images and not videos:
            raise ValueError("give text, images, videos, or a combination")
        if videos:
            self._require_video()
        if text is None:
            if images and videos:
                raise ValueError("without text, give images or videos (each is embedded alone), not both")
            alone = self.format_prompt(num_videos=1) if videos else self.format_prompt(num_images=1)
            text = [alone] * (len(images) + len(videos))
        texts = [text] if isinstance(text, str) else list(text)
        for row, prompt in enumerate(texts):
            if not isinstance(prompt, str):
                raise PromptRowError(row, f"prompt must be a string, got {type(prompt).__name__}")
        swaps = [(MMEB_IMAGE_TAG, self.image_token), (MMEB_VIDEO_TAG, self.video_token)]
        for tag, token in swaps:
            if token is not None and tag != token:
                texts = [prompt.replace(tag, token) for prompt in texts]
        return texts

    def _check_placeholders(self, texts: list[str], num_images: int, num_videos: int) -> None:
        """Every image and video has its placeholder, and no row holds both kinds."""
        image_counts = [self.family.count_placeholders(prompt) for prompt in texts]
        video_counts = [self.family.count_video_placeholders(prompt) for prompt in texts]
        for kind, counts, given in (("image", image_counts, num_images), ("video", video_counts, num_videos)):
            if sum(counts) != given:
                raise ValueError(
                    f"the prompts hold {sum(counts)} {kind} placeholders (per row: {counts}) but {given} {kind}s "
                    "were given"
                )
        for row, (image_count, video_count) in enumerate(zip(image_counts, video_counts)):
            if image_count and video_count:
                raise PromptRowError(row, "holds image and video placeholders; a row takes one kind of visual input")

    @staticmethod
    def _prepared(prepare, error_type: type[ValueError], kind: str, index: int, item: Any) -> Any:
        try:
            return prepare(item)
        except ValueError as error:
            described = "" if kind == "image" else f" ({_describe_video(item)})"
            raise error_type(f"{kind} {index}{described}: {error}") from error

    def _split_call_kwargs(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        """transformers' keyword routing (`_merge_kwargs`) into tokenizer and image-processor keywords, plus
        `return_tensors` (a flat one wins over `text_kwargs`', which wins over `common_kwargs`'; default `"pt"`).
        A keyword neither takes is a `TypeError` (`_merge_kwargs` would only log and drop it)."""
        kwargs = {key: dict(value) if key.endswith("_kwargs") else value for key, value in kwargs.items()}
        return_tensors = "pt"
        for source in (kwargs.get("common_kwargs", {}), kwargs.get("text_kwargs", {}), kwargs):
            if "return_tensors" in source:
                return_tensors = source.pop("return_tensors")
        text_keys = set(VLM2VecTextKwargs.__annotations__)
        image_keys = set(getattr(getattr(self.image_processor, "valid_kwargs", None), "__annotations__", {}))
        image_keys.discard("return_tensors")
        modality_keys = {"text_kwargs": text_keys, "images_kwargs": image_keys, "common_kwargs": set()}
        for key, value in kwargs.items():
            if key in modality_keys:
                unknown = sorted(set(value) - modality_keys[key] - {"return_tensors"})
                if unknown:
                    raise TypeError(f"VLM2VecProcessor got unexpected keyword arguments {unknown}")
            elif key not in text_keys | image_keys:
                raise TypeError(
                    f"VLM2VecProcessor got an unexpected keyword argument {key!r}; it takes "
                    f"{', '.join(sorted(text_keys | {'return_tensors'}))} and the image processor's keywords"
                )
        merged = self._merge_kwargs(VLM2VecProcessorKwargs, **kwargs)
        text_kwargs = {key: value for key, value in merged["text_kwargs"].items() if key in text_keys}
        images_kwargs = {key: value for key, value in merged["images_kwargs"].items() if key in image_keys}
        return text_kwargs, images_kwargs, return_tensors

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


def _as_list(items: Any, single: type | None) -> list:
    """A batch argument as a list: `None` -> `[]`; one path, array (or `single` instance) -> `[item]`."""
    if items is None:
        return []
    if isinstance(items, (str, os.PathLike, np.ndarray)) or (single is not None and isinstance(items, single)):
        return [items]
    return list(items)


def _describe_video(video: Any) -> str:
    if isinstance(video, (str, os.PathLike)):
        return repr(str(video))
    if isinstance(video, (list, tuple)):
        return f"{len(video)} frames"
    return type(video).__name__


# `save_pretrained` then writes `auto_map` and copies the code files next to the weights.
VLM2VecProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["PROMPT_FORMATS", "VLM2VecProcessor", "VLM2VecProcessorKwargs", "format_prompt"]
