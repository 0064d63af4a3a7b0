"""The Phi-3.5-V backbone family of VLM2Vec (`TIGER-Lab/VLM2Vec-Full` / `VLM2Vec-LoRA`, `model_type` `phi3_v`).

transformers has no Phi-3-vision class: the backbone (`modeling_phi3_v.py`), its config (`configuration_phi3_v.py`)
and its image processor (`image_processing_phi3_v.py`) are written here; this file is the family (the registry's
contract). Prompts are split around `<|image_N|>`, each chunk tokenised separately *with* BOS, the image's `-N`
placeholder ids between chunks; rows with an image are never truncated, text rows are cut at `max_length`.

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`; those are imported where used, so the registry loads without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backbone_common import (
    NUMBERED_IMAGE_TAG,
    BackboneFamily,
    ProcessorOption,
    PromptRowError,
    clip_vision_config,
    init_shape,
    rows_of_media,
    select_images_per_group,
)

if TYPE_CHECKING:
    import torch


class Phi3VFamily(BackboneFamily):
    """Phi-3.5-V (`model_type` `phi3_v`)."""

    name = "phi3_v"
    display_name = "Phi-3.5-V"
    model_types = ("phi3_v",)
    processor_options = (ProcessorOption("num_crops", int, "HD crops per image (default: the checkpoint's, else 4)"),)
    init_model_types = ("phi3_v",)
    tiny_tokenizer = "tiny-phi3v-tokenizer"
    shipped_files = (
        "backbone_phi3_v.py",
        "configuration_phi3_v.py",
        "modeling_phi3_v.py",
        "image_processing_phi3_v.py",
    )
    image_token = "<|image_1|>"
    no_split_modules = ("Phi3DecoderLayer", "CLIPEncoderLayer")
    # The v1 LoRA list; the CLIP names (q_proj, k_proj, v_proj, out_proj) adapt the image tower too.
    lora_target_modules = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "k_proj", "q_proj", "out_proj", "v_proj")
    lora_module_scopes = ("language_model", "vision_embed_tokens.img_processor")
    adapter_key_mapping = (
        (
            r"^base_model\.model\.model\.vision_embed_tokens\.img_processor\.vision_model\.",
            "vlm.vision_embed_tokens.img_processor.",
        ),
        (r"^base_model\.model\.model\.(layers|embed_tokens|norm)\.", r"vlm.language_model.\1."),
    )
    media_input_keys = ("pixel_values", "image_sizes")
    resize_small_images = False

    def register_config(self) -> None:
        from .configuration_phi3_v import Phi3VConfig  # noqa: F401  (importing it registers it with AutoConfig)

    def random_config(self, size: str, tokenizer, model_type: str | None = None):
        """A Phi-3.5-V config of `size` with the published CLIP geometry (336 px, patch 14: 12 x 12 merged tokens)
        and the bundled tokenizer's ids (BOS 1, EOS 2, pad 2000)."""
        from transformers import Phi3Config

        from .configuration_phi3_v import Phi3VConfig

        shape = init_shape(self, size)
        text = Phi3Config(
            vocab_size=2064,
            hidden_size=shape["hidden"],
            intermediate_size=shape["intermediate"],
            num_hidden_layers=shape["layers"],
            num_attention_heads=shape["heads"],
            num_key_value_heads=shape["heads"],
            max_position_embeddings=4096,
            original_max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 1e4},
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=2000,
            tie_word_embeddings=False,
        )
        return Phi3VConfig(text_config=text, vision_config=clip_vision_config(shape))

    def build_backbone(self, vlm_config) -> torch.nn.Module:
        from .modeling_phi3_v import Phi3VModel

        return Phi3VModel(vlm_config)

    def load_backbone(self, source, **from_pretrained_kwargs) -> torch.nn.Module:
        from .modeling_phi3_v import load_phi3v_checkpoint

        return load_phi3v_checkpoint(source, **from_pretrained_kwargs)

    def sub_batch_media(self, vlm_config, inputs: dict[str, Any], groups: list[list[int]]) -> list[dict] | None:
        from .image_processing_phi3_v import num_image_tokens_for

        if inputs.get("pixel_values") is None:
            return [{} for _ in groups]
        sizes = inputs["image_sizes"].tolist()
        per_image = [num_image_tokens_for(h, w, vlm_config.num_img_tokens) for h, w in sizes]
        per_row = rows_of_media((inputs["input_ids"] < 0).sum(dim=1).tolist(), per_image)
        if per_row is None:
            return None
        return select_images_per_group(inputs, per_row, groups, ("pixel_values", "image_sizes"))

    def image_tags(self, num_images: int) -> list[str]:
        return [f"<|image_{index + 1}|>" for index in range(num_images)]

    def count_placeholders(self, prompt: str) -> int:
        return len(NUMBERED_IMAGE_TAG.findall(prompt))

    def load_image_processor(self, source, **hub_kwargs):
        from .image_processing_phi3_v import Phi3VImageProcessor

        return Phi3VImageProcessor.from_pretrained(source, **hub_kwargs)

    def load_tokenizer(self, source, **hub_kwargs):
        # The `tokenizer.json` pipeline exactly as stored: transformers 5's `LlamaTokenizer` class rebuilds it
        # (Metaspace) and drops the double "▁" of a chunk that starts with a space.
        from transformers import TokenizersBackend

        return TokenizersBackend.from_pretrained(source, **hub_kwargs)

    def conversion_image_processor(self, source, num_crops: int | None = None):
        """`num_crops`: the HD transform's crop budget (None: the checkpoint's, else 4). Phi-3-V sizes images by
        it, not by pixel bounds."""
        from .image_processing_phi3_v import Phi3VImageProcessor

        processor = Phi3VImageProcessor() if source is None else Phi3VImageProcessor.from_pretrained(source)
        if num_crops is not None:
            if isinstance(num_crops, bool) or not isinstance(num_crops, int) or num_crops < 1:
                raise ValueError(f"num_crops must be a positive integer, got {num_crops!r}")
            processor.num_crops = num_crops
        return processor

    def image_token_id(self, tokenizer) -> int:
        return -1

    def num_image_tokens(self, image_processor, image) -> int:
        return image_processor.num_image_tokens(image)

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
        image_inputs, tokens_per_image = {}, []
        if images:
            image_inputs = dict(processor.image_processor(images, return_tensors="pt", **images_kwargs))
            tokens_per_image = image_inputs.pop("num_img_tokens").tolist()
        max_length = text_kwargs.pop("max_length", processor.max_length)
        truncation = text_kwargs.pop("truncation", max_length is not None)
        padding = text_kwargs.pop("padding", True)
        ids, next_image = [], 0
        for row, prompt in enumerate(texts):
            tags = NUMBERED_IMAGE_TAG.findall(prompt)
            if not tags:
                # The reference tokenises a text row whole, truncated at max_length (BOS included).
                ids.append(processor._tokenize([prompt], truncation=truncation, max_length=max_length)["input_ids"][0])
                continue
            numbers = [int(tag[len("<|image_") : -2]) for tag in tags]
            if numbers != list(range(1, len(tags) + 1)):
                raise PromptRowError(row, f"image tags must be <|image_1|>, <|image_2|>, ... in order, got {tags}")
            # Not transformers' get_text_with_replacements: the reference tokenises each chunk between tags on its own
            # (with BOS) and puts `-N` ids, which no token string stands for, on the image positions.
            chunks = NUMBERED_IMAGE_TAG.split(prompt)
            encoded = processor._tokenize(chunks, truncation=False)["input_ids"]
            row_ids = list(encoded[0])
            for number, chunk in zip(numbers, encoded[1:]):
                row_ids += [-number] * tokens_per_image[next_image] + list(chunk)
                next_image += 1
            ids.append(row_ids)  # rows with images are never truncated (the reference ignores max_length)
        pad_kwargs = {key: text_kwargs.pop(key) for key in ("padding_side", "pad_to_multiple_of") if key in text_kwargs}
        padded = processor.tokenizer.pad(
            {"input_ids": ids},
            padding=padding,
            max_length=max_length if padding == "max_length" else None,
            return_attention_mask=True,
            **pad_kwargs,
        )
        return {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"], **dict(image_inputs)}


FAMILY = Phi3VFamily()

__all__ = ["FAMILY", "Phi3VFamily"]
