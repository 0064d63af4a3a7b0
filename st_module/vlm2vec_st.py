"""The sentence-transformers input module of a VLM2Vec model.

`SentenceTransformer("org/model", trust_remote_code=True)` loads this file from the model repository's root
(`modules.json` names it as `vlm2vec_st.VLM2VecEncoder`). It formats each input the way the reference VLM2Vec does
(raw prompt strings, image token first, no chat template), runs the repository's `VLM2VecModel`, and returns its
pooled, normalised embedding as `sentence_embedding`. Self-contained: it imports only torch, transformers,
sentence-transformers, numpy and PIL; the model and processor classes come from the same repository through
`AutoModel` / `AutoProcessor`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sentence_transformers.base.modules import InputModule
from transformers import AutoModel, AutoProcessor

IMAGE_FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
# A bare string / Path with one of these extensions is a video file (the processor decodes it with PyAV).
VIDEO_FILE_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp")


def _is_file_path(value: str, extensions: tuple[str, ...]) -> bool:
    """A one-line string ending in one of `extensions` (and without spaces, unless it is an existing file)."""
    return value.lower().endswith(extensions) and "\n" not in value and (" " not in value or os.path.isfile(value))


def _is_image_path(value: str) -> bool:
    return _is_file_path(value, IMAGE_FILE_EXTENSIONS)


def _is_video_path(value: str) -> bool:
    return _is_file_path(value, VIDEO_FILE_EXTENSIONS)


def _is_directory_path(value: str) -> bool:
    """A one-line string with a path separator that names an existing directory (a likely mistake, not text)."""
    return "\n" not in value and ("/" in value or os.sep in value) and len(value) < 4096 and os.path.isdir(value)


def _describe(value: Any, limit: int = 80) -> str:
    """`repr(value)` in at most `limit` characters; a long path keeps its end (the file name), anything else its
    start."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and os.sep in value):
        text = repr(os.fspath(value))
        return text if len(text) <= limit else "'..." + text[-(limit - 4) :]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ParsedInput:
    """One `encode()` input split into what the prompt is built from."""

    text: str | None
    images: list[Any] = field(default_factory=list)
    instruction: str | None = None  # from a chat-style system message
    videos: list[Any] = field(default_factory=list)  # at most one: a frame list, a frame folder or a video file


def _check_image(image: Any) -> None:
    if isinstance(image, Path) and image.is_dir():
        raise ValueError(f"names a directory ({str(image)!r}), not an image file")
    if not isinstance(image, (Image.Image, np.ndarray, str, Path)):
        raise ValueError(f"has an image of unsupported type {type(image).__name__}")


def _check_video(video: Any) -> None:
    """A video: a non-empty list of frames (PIL images, arrays, image paths), a frame folder or video file path, or a
    `(T, H, W[, C])` array; the processor opens and checks it."""
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError("has a video with no frames (an empty list)")
        for index, frame in enumerate(video):
            if not isinstance(frame, (Image.Image, np.ndarray, str, Path)):
                raise ValueError(f"has a video whose frame {index} is of unsupported type {type(frame).__name__}")
    elif not isinstance(video, (str, Path, np.ndarray)):
        raise ValueError(
            f"has a video of unsupported type {type(video).__name__}; give a list of frames, a frame folder or a "
            "video file"
        )


def _one_row(text: str | None, images: list, videos: list, instruction: str | None = None) -> ParsedInput:
    if videos and images:
        raise ValueError("has both a video and an image; a VLM2Vec input takes one kind of visual input")
    if len(videos) > 1:
        raise ValueError(f"has {len(videos)} videos; a VLM2Vec input takes one video")
    return ParsedInput(text, images, instruction, videos)


def _parse_messages(messages: list[dict]) -> ParsedInput:
    """Chat-style messages (`{"role", "content"}`; content a string or a list of `{"type": "text" | "image"}`
    parts). The system message's text is the instruction; the user messages' texts are joined with spaces and
    their images go first, as VLM2Vec places them. No chat template is applied."""
    texts, images, videos, instructions = [], [], [], []
    for message in messages:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"has a message without 'role' and 'content': {_describe(message)}")
        role, content = message["role"], message["content"]
        if role not in ("system", "user"):
            raise ValueError(f"has a message with role {role!r}; VLM2Vec embeds only 'system' and 'user' messages")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ValueError(f"has message content of unsupported type {type(parts).__name__}")
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                (instructions if role == "system" else texts).append(part["text"])
            elif kind == "image" and role == "user":
                image = part.get("image", part.get("path", part.get("url")))
                _check_image(image)
                images.append(image)
            elif kind == "video" and role == "user":
                video = part.get("video", part.get("path"))
                _check_video(video)
                videos.append(video)
            else:
                raise ValueError(f"has an unsupported {role} message part: {_describe(part)}")
    if not texts and not images and not videos:
        raise ValueError("has messages with neither text nor image nor video")
    return _one_row(" ".join(texts) or None, images, videos, " ".join(instructions) or None)


def split_input(value: Any) -> ParsedInput:
    """Split one `encode()` input into its text, its images and (for chat messages) its instruction.

    Accepted: a string (an image or video file path when it looks like one, e.g. `"cat.png"`, `"clip.mp4"`,
    otherwise text), a PIL image, an `(H, W[, C])` uint8 array (a `(T, H, W, C)` one is a video), a
    `pathlib.Path`, a dict with keys `"text"` and/or `"image"` (one image or a list) or `"video"` (one video: a list
    of frames, a frame folder or a video file; not with `"image"`), or chat-style messages (a `{"role", "content"}`
    dict or a list of them, parts of type text / image / video). Raises `ValueError` describing what is wrong with
    the value, e.g. a path that names a directory.
    """
    if value is None:
        raise ValueError("is None")
    if isinstance(value, str):
        if value == "":
            raise ValueError("is an empty string")
        if _is_directory_path(value):
            raise ValueError("names a directory, not an image file or a text (a frame folder: {'video': folder})")
        if _is_video_path(value):
            return ParsedInput(None, videos=[value])
        return ParsedInput(None, [value]) if _is_image_path(value) else ParsedInput(value)
    if isinstance(value, np.ndarray) and value.ndim == 4:
        return ParsedInput(None, videos=[value])
    if isinstance(value, Path) and value.suffix.lower() in VIDEO_FILE_EXTENSIONS:
        return ParsedInput(None, videos=[value])
    if isinstance(value, (Image.Image, np.ndarray, Path)):
        _check_image(value)
        return ParsedInput(None, [value])
    if isinstance(value, dict) and ("role" in value or "content" in value):
        return _parse_messages([value])
    if isinstance(value, list) and value and all(isinstance(item, dict) and "role" in item for item in value):
        return _parse_messages(value)
    if isinstance(value, dict):
        unknown = set(value) - {"text", "image", "video"}
        if unknown:
            raise ValueError(f"has unsupported keys {sorted(unknown)}; use 'text' and/or 'image' or 'video'")
        text = value.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"has a 'text' that is not a string: {_describe(text)}")
        images = value.get("image")
        images = [] if images is None else list(images) if isinstance(images, (list, tuple)) else [images]
        for image in images:
            _check_image(image)
        videos = [] if value.get("video") is None else [value["video"]]
        for video in videos:
            _check_video(video)
        if not text and not images and not videos:
            raise ValueError("has neither text nor image nor video")
        return _one_row(text or None, images, videos)
    raise ValueError(f"has unsupported type {type(value).__name__} ({_describe(value)})")


def _input_error(inputs: Sequence[Any], position: int, error: Exception) -> ValueError:
    detail = getattr(error, "detail", error)  # a row error's message without its "row N: " prefix
    # Named by value: `position` is not the caller's index once sentence-transformers has sorted inputs by length.
    return ValueError(f"Input {_describe(inputs[position])}: {detail}")


def _weights_readable_as_umask_allows(folder: str) -> None:
    """safetensors (0.8) writes weights through a 0600 temporary file; give them the umask's mode like every other
    file, so a model or checkpoint folder on a shared disk is readable by whoever may read its config."""
    umask = os.umask(0)
    os.umask(umask)
    for path in Path(folder).glob("*.safetensors"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~umask)


def check_peft_version() -> None:
    """Fail with one clear message when the installed peft is older than transformers' adapter code needs."""
    from importlib.metadata import version

    from transformers.integrations.peft import MIN_PEFT_VERSION

    def release(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])

    installed = version("peft")
    if release(installed) < release(MIN_PEFT_VERSION):
        raise ImportError(
            f"transformers {version('transformers')} needs peft >= {MIN_PEFT_VERSION} to load LoRA / DoRA "
            f"adapters, but peft {installed} is installed; install a transformers release that works with it "
            f"(vlm2vec-hf is tested with transformers 5.23) or upgrade peft"
        )


def load_with_adapter(
    adapter_config_path: str, adapter_weights_path: str | None, model_kwargs: dict
) -> torch.nn.Module:
    """A LoRA / DoRA checkpoint folder: its base VLM2Vec model (`base_model_name_or_path`) with the adapter attached.

    The adapter is attached with transformers' `add_adapter` (so saving writes an adapter folder again) and its
    weights are set with peft's `set_peft_model_state_dict`, which restores DoRA magnitude vectors that
    transformers' own adapter loading (as of 5.23) drops. Every adapter tensor must load.
    """
    # Inside try: transformers' remote-code import check skips these, so merged folders load without peft.
    try:
        from peft import LoraConfig, set_peft_model_state_dict
        from safetensors.torch import load_file
    except ImportError as error:
        raise ImportError(f"{adapter_config_path} is a LoRA / DoRA adapter folder; loading it needs peft") from error

    check_peft_version()
    if adapter_weights_path is None:
        raise ValueError(f"{adapter_config_path} has no adapter_model.safetensors beside it")
    adapter_config = LoraConfig.from_pretrained(str(Path(adapter_config_path).parent))
    base_kwargs = {key: value for key, value in model_kwargs.items() if key != "subfolder"}
    model = AutoModel.from_pretrained(adapter_config.base_model_name_or_path, **base_kwargs)
    model.add_adapter(adapter_config, adapter_name="default")
    result = set_peft_model_state_dict(model, load_file(adapter_weights_path), adapter_name="default")
    missing = [key for key in result.missing_keys if "lora_" in key]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"adapter weights do not fit the model: missing {missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}"
        )
    return model


class VLM2VecEncoder(InputModule):
    """Formats inputs as VLM2Vec prompts and embeds them with a `VLM2VecModel`.

    Args:
        model: a `VLM2VecModel` (from this repository's `modeling_vlm2vec.py`).
        processor: its `VLM2VecProcessor`, which holds the prompt format, `max_length` and image bounds.
        padding_side: `"left"` or `"right"`; `None` uses the tokenizer's. Embeddings do not depend on it.
    """

    save_in_root = True
    config_keys = ["padding_side"]
    # The sentence-transformers file name, with `modality_config` in it: tools that read a repository's modalities
    # from it (e.g. mteb) see text and image support. Folders written before used `vlm2vec_st_config.json`.
    config_file_name = "sentence_bert_config.json"
    legacy_config_file_name = "vlm2vec_st_config.json"
    # What `encode` accepts. sentence-transformers reports a batch that mixes several of these as "message"
    # (its `infer_batch_modality`), so a module that takes mixed batches lists it; `split_input` also reads
    # chat-style messages themselves. Each is kept where the backbone family declares its parts (`modalities`).
    supported_modalities = ("text", "image", ("image", "text"), "video", ("text", "video"), "message")

    def __init__(self, model: torch.nn.Module, processor: Any, padding_side: str | None = None):
        super().__init__()
        self.model = model
        self.processor = processor
        self.padding_side = padding_side

    @property
    def modalities(self) -> list:
        declared = set(self.processor.family.modalities)
        return [
            modality
            for modality in self.supported_modalities
            if modality == "message" or declared.issuperset((modality,) if isinstance(modality, str) else modality)
        ]

    def save_config(self, output_path: str, filename: str | None = None) -> None:
        """`sentence_bert_config.json`: this module's settings plus the sentence-transformers `modality_config` /
        `module_output_name` keys that describe what the module embeds."""
        config = self.get_config_dict()
        config["modality_config"] = {
            "+".join(modality) if isinstance(modality, tuple) else modality: {
                "method": "forward",
                "method_output_name": "sentence_embedding",
            }
            for modality in self.modalities
        }
        config["module_output_name"] = "sentence_embedding"
        with open(os.path.join(output_path, filename or self.config_file_name), "w", encoding="utf-8") as file:
            json.dump(config, file, indent=4)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def max_seq_length(self) -> int | None:
        return self.processor.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        self.processor.max_length = value

    def get_embedding_dimension(self) -> int:
        return self.model.config.embedding_dim

    def preprocess(
        self, inputs: Sequence[Any], prompt: str | None = None, task: str | None = None, **kwargs
    ) -> dict[str, torch.Tensor]:
        """Build one VLM2Vec prompt per input and run the processor over the batch.

        `prompt` is the instruction (from `encode(prompt=...)`, `prompt_name=...`, or `encode_query` /
        `encode_document`); it is placed as the reference places it (see `VLM2VecProcessor.format_prompt`).

        Returns the processor's tensors plus `num_images_per_sample` and `num_videos_per_sample` (`(batch,)`), which
        sentence-transformers' cached losses (`_create_minibatch`) use to cut `pixel_values` / `image_grid_thw` and
        `pixel_values_videos` / `video_grid_thw` into mini-batches.

        Raises:
            ValueError: naming the input at fault (its value, and its position in this batch: `encode` sorts its
                inputs by length, so that position is not the input's index in the caller's list).
        """
        prompts, images, images_per_item, videos, videos_per_item = [], [], [], [], []
        for position, value in enumerate(inputs):
            try:
                parsed = split_input(value)
                if parsed.instruction and prompt:
                    raise ValueError("has a system message and the call gives a prompt too; give the instruction once")
                prepared = [self.processor.prepare_image(image) for image in parsed.images]
                prepared_videos = [self.processor.prepare_video(video) for video in parsed.videos]
                prompts.append(
                    self.processor.format_prompt(
                        parsed.text,
                        instruction=parsed.instruction or prompt,
                        num_images=len(prepared),
                        num_videos=len(prepared_videos),
                    )
                )
            except ValueError as error:
                raise _input_error(inputs, position, error) from error
            images.extend(prepared)
            images_per_item.append(len(prepared))
            videos.extend(prepared_videos)
            videos_per_item.append(len(prepared_videos))
        try:
            features = self.processor(prompts, images=images, videos=videos, padding_side=self.padding_side)
            check_sequence_lengths = getattr(self.model, "check_sequence_lengths", None)
            if check_sequence_lengths is not None:
                check_sequence_lengths(features["attention_mask"])
        except ValueError as error:
            row = getattr(error, "row", None)
            if row is None:
                raise
            raise _input_error(inputs, row, error) from error
        features = dict(features)
        features["num_images_per_sample"] = torch.tensor(images_per_item, dtype=torch.long)
        features["num_videos_per_sample"] = torch.tensor(videos_per_item, dtype=torch.long)
        return features

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        """Adds `sentence_embedding` `(batch, hidden)` and `token_embeddings` `(batch, seq, hidden)`."""
        # The processor's outputs the model takes: `input_ids`, `attention_mask` and the family's media inputs.
        model_inputs = {key: features[key] for key in self.processor.model_input_names if key in features}
        output = self.model(**model_inputs)
        features["sentence_embedding"] = output.embeddings
        features["token_embeddings"] = output.last_hidden_state
        return features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.model.save_pretrained(output_path, safe_serialization=safe_serialization)
        _weights_readable_as_umask_allows(output_path)
        self.processor.save_pretrained(output_path)
        self.save_config(output_path)
        own_file = Path(__file__)
        target = Path(output_path) / own_file.name
        if not target.exists() or not target.samefile(own_file):
            shutil.copy(own_file, target)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ) -> VLM2VecEncoder:
        hub_kwargs = {
            "token": token,
            "cache_dir": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
            "trust_remote_code": trust_remote_code,
        }
        if subfolder:
            hub_kwargs["subfolder"] = subfolder
        model_kwargs = {**(model_kwargs or {}), **(config_kwargs or {}), **hub_kwargs}
        file_kwargs = {key: hub_kwargs[key] for key in ("token", "revision", "local_files_only")}
        adapter_config = cls.load_file_path(
            model_name_or_path, "adapter_config.json", subfolder=subfolder, cache_folder=cache_folder, **file_kwargs
        )
        if adapter_config is None:
            model = AutoModel.from_pretrained(model_name_or_path, **model_kwargs)
        else:
            weights = cls.load_file_path(
                model_name_or_path,
                "adapter_model.safetensors",
                subfolder=subfolder,
                cache_folder=cache_folder,
                **file_kwargs,
            )
            model = load_with_adapter(adapter_config, weights, model_kwargs)
        processor = AutoProcessor.from_pretrained(model_name_or_path, **{**(processor_kwargs or {}), **hub_kwargs})
        config = {}
        for file_name in (cls.config_file_name, cls.legacy_config_file_name):
            config = cls.load_config(
                model_name_or_path,
                subfolder=subfolder,
                config_filename=file_name,
                token=token,
                cache_folder=cache_folder,
                revision=revision,
                local_files_only=local_files_only,
            )
            if config:
                break
        return cls(model=model, processor=processor, **{key: config[key] for key in cls.config_keys if key in config})
