"""The sentence-transformers input module of a VLM2Vec model.

`SentenceTransformer("org/model", trust_remote_code=True)` loads this file from the model repository's root
(`modules.json` names it as `vlm2vec_st.VLM2VecEncoder`). It formats each input the way the reference VLM2Vec does
(raw prompt strings, image token first, no chat template), runs the repository's `VLM2VecModel`, and returns its
pooled, normalised embedding as `sentence_embedding`. Self-contained: it imports only torch, transformers,
sentence-transformers, numpy and PIL; the model and processor classes come from the same repository through
`AutoModel` / `AutoProcessor`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sentence_transformers.base.modules import InputModule
from transformers import AutoModel, AutoProcessor

IMAGE_FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
MODEL_INPUT_KEYS = (
    "input_ids",
    "attention_mask",
    "mm_token_type_ids",
    "pixel_values",
    "image_grid_thw",
    "pixel_values_videos",
    "video_grid_thw",
)


def _is_image_path(value: str) -> bool:
    """A one-line string ending in an image extension (and without spaces, unless it is an existing file)."""
    return (
        value.lower().endswith(IMAGE_FILE_EXTENSIONS)
        and "\n" not in value
        and (" " not in value or os.path.isfile(value))
    )


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def split_input(value: Any) -> tuple[str | None, list[Any]]:
    """Split one `encode()` input into its text and its images.

    Accepted: a string (an image file path when it looks like one, e.g. `"cat.png"`, otherwise text), a PIL image,
    an `(H, W[, C])` uint8 array, a `pathlib.Path`, or a dict with keys `"text"` and/or `"image"` (one image or a
    list). Raises `ValueError` describing what is wrong with the value.
    """
    if value is None:
        raise ValueError("is None")
    if isinstance(value, str):
        if value == "":
            raise ValueError("is an empty string")
        return (None, [value]) if _is_image_path(value) else (value, [])
    if isinstance(value, (Image.Image, np.ndarray, Path)):
        return None, [value]
    if isinstance(value, dict):
        if "role" in value or "content" in value:
            raise ValueError("is a chat message; VLM2Vec embeds raw prompts, pass {'text': ..., 'image': ...}")
        unknown = set(value) - {"text", "image"}
        if unknown:
            raise ValueError(f"has unsupported keys {sorted(unknown)}; use 'text' and/or 'image'")
        text = value.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"has a 'text' that is not a string: {_describe(text)}")
        images = value.get("image")
        images = [] if images is None else list(images) if isinstance(images, (list, tuple)) else [images]
        for image in images:
            if not isinstance(image, (Image.Image, np.ndarray, str, Path)):
                raise ValueError(f"has an image of unsupported type {type(image).__name__}")
        if not text and not images:
            raise ValueError("has neither text nor image")
        return text or None, images
    raise ValueError(f"has unsupported type {type(value).__name__} ({_describe(value)})")


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


def _positions_in_encode_call(batch: Sequence[Any]) -> list[int] | None:
    """Positions of `batch`'s items in the list given to `SentenceTransformer.encode`, if this call comes from it.

    `encode` sorts inputs by length before batching, so a position inside the batch is not the user's index. Only
    used to word error messages; returns None when the caller is not `encode`'s inference loop.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_inference":
            local = frame.f_locals
            order, start, ordered = local.get("length_sorted_idx"), local.get("start_index"), local.get("inputs_sorted")
            if order is not None and start is not None and ordered is not None:
                if all(ordered[start + i] is item for i, item in enumerate(batch)):
                    return [int(order[start + i]) for i in range(len(batch))]
            return None
        frame = frame.f_back
    return None


class VLM2VecEncoder(InputModule):
    """Formats inputs as VLM2Vec prompts and embeds them with a `VLM2VecModel`.

    Args:
        model: a `VLM2VecModel` (from this repository's `modeling_vlm2vec.py`).
        processor: its `VLM2VecProcessor`, which holds the prompt format, `max_length` and image bounds.
        padding_side: `"left"` or `"right"`; `None` uses the tokenizer's. Embeddings do not depend on it.
    """

    save_in_root = True
    config_keys = ["padding_side"]
    config_file_name = "vlm2vec_st_config.json"

    def __init__(self, model: torch.nn.Module, processor: Any, padding_side: str | None = None):
        super().__init__()
        self.model = model
        self.processor = processor
        self.padding_side = padding_side

    @property
    def modalities(self) -> list:
        # "message" admits mixed batches (text, images and dicts together) past sentence-transformers' check;
        # chat-style message dicts themselves are rejected in `preprocess`.
        return ["text", "image", ("image", "text"), "message"]

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

        Returns the processor's tensors plus `num_images_per_sample` (`(batch,)`), which sentence-transformers'
        cached losses use to cut mini-batches.

        Raises:
            ValueError: naming the input (its position in the `encode` call) at fault.
        """
        prompts, images, images_per_item = [], [], []
        for position, value in enumerate(inputs):
            try:
                text, item_images = split_input(value)
                prepared = [self.processor.prepare_image(image) for image in item_images]
                prompts.append(self.processor.format_prompt(text, instruction=prompt, num_images=len(prepared)))
            except ValueError as error:
                raise self._input_error(inputs, position, error) from error
            images.extend(prepared)
            images_per_item.append(len(prepared))
        try:
            features = self.processor(prompts, images=images, padding_side=self.padding_side)
        except ValueError as error:
            row = getattr(error, "row", None)
            if row is None:
                raise
            raise self._input_error(inputs, row, error) from error
        features = dict(features)
        features["num_images_per_sample"] = torch.tensor(images_per_item, dtype=torch.long)
        return features

    @staticmethod
    def _input_error(inputs: Sequence[Any], position: int, error: Exception) -> ValueError:
        positions = _positions_in_encode_call(inputs)
        if positions is not None:
            where = f"Input {positions[position]}"
        else:
            where = f"Input {position} of this batch"
        return ValueError(f"{where} ({_describe(inputs[position])}): {error}")

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        """Adds `sentence_embedding` `(batch, hidden)` and `token_embeddings` `(batch, seq, hidden)`."""
        model_inputs = {key: features[key] for key in MODEL_INPUT_KEYS if key in features}
        output = self.model(**model_inputs)
        features["sentence_embedding"] = output.embeddings
        features["token_embeddings"] = output.last_hidden_state
        return features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.model.save_pretrained(output_path, safe_serialization=safe_serialization)
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
        config = cls.load_config(
            model_name_or_path,
            subfolder=subfolder,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
        )
        return cls(model=model, processor=processor, **config)
