"""What every backbone family of a VLM2Vec model shares: the `BackboneFamily` interface and the prompt rule.

A family (one `backbone_<family>.py` module, plus the files it declares as `shipped_files`) says how to build its
backbone from `config.vlm_config`, how prompts name images and videos, how media become pixel tensors, how prompts
become token ids, which layers must not be split across devices, which linear layers LoRA adapts and how published
checkpoint / adapter keys map onto our modules. `backbones.py` is the registry. This file is copied verbatim into
every VLM2Vec model repository on the Hub, so it imports only `torch`, `transformers`, `numpy` and `PIL`; `torch`
and `transformers` only where used, so the registry loads without them (the CLI starts at once).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PROMPT_FORMATS = ("v1", "v2")
# MMEB stores prompts with the Phi-3-V tag; every other backbone swaps it for its own image token.
MMEB_IMAGE_TAG = "<|image_1|>"
# The data layer's placeholder for one video (MMEB-V2's tables hold none; its parsers insert the backbone's token):
# the processor swaps it for its family's `video_token`, as it swaps `MMEB_IMAGE_TAG`.
MMEB_VIDEO_TAG = "<|video_1|>"
MODALITIES = ("text", "image", "video")
# The shapes of random backbones (`random_config`): hidden / layers / heads / kv heads / intermediate / vision depth /
# vision width; "tiny" for tests, "mid" (about 70 M parameters) for benchmarks.
INIT_SHAPES = {
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, depth=2, width=32),
    "mid": dict(hidden=512, layers=12, heads=8, kv_heads=4, intermediate=1536, depth=8, width=384),
}


@dataclass(frozen=True)
class ProcessorOption:
    """One image / video processor setting a family takes at conversion and `init` (e.g. `min_pixels`).

    Attributes:
        name: the keyword `conversion_image_processor` takes; the CLI flag is `--` + name with `-` for `_`.
        type: the value's type (the CLI parses the flag with it).
        help: one line for `--help`, with the unit (pixels, crops).
    """

    name: str
    type: type = int
    help: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


NUMBERED_IMAGE_TAG = re.compile(r"<\|image_\d+\|>")


def format_prompt(
    text: str | None,
    instruction: str | None = None,
    num_images: int = 0,
    prompt_format: str = "v1",
    image_token: str = MMEB_IMAGE_TAG,
    image_tags: list[str] | None = None,
    num_videos: int = 0,
    video_token: str | None = MMEB_VIDEO_TAG,
) -> str:
    """Build the raw prompt string the reference VLM2Vec feeds its backbone.

    V1 (the reference's `process_input_text`): `instruction`, then `" " + text`, then the image token and one space
    in front, e.g. `"<|image_pad|> Represent the given image with the following question: What is in the image"`.
    V2 (the MMEB-V2 evaluation rule for image queries): `"<|image_pad|>\\n" + instruction + " " + text + "\\n"`,
    with every `" \\n"` collapsed to `"\\n"`. Without an instruction both formats give the raw text (with the image
    token and a space in front when there is an image), as the reference embeds its candidates.

    `image_tags` (one per image) replaces the repeated `image_token` in front, e.g. Phi-3-V's numbered
    `<|image_1|> <|image_2|>`. A `text` that already holds image placeholders (`image_token`, or MMEB's numbered
    `<|image_N|>`, or `video_token`) is a complete prompt: it is used as is, with MMEB's `<|image_1|>` swapped for
    `image_token`.

    Video (`num_videos`, `video_token`; V2's `process_input_text`, the same in both formats, since V1 has no video):
    the video token, one space, then the instruction and the text joined by one space, neither stripped, e.g.
    `"<|video_pad|> Understand the content of the provided video."`; no instruction and no text give
    `"<|video_pad|> "`. A row holds images or videos, not both (the reference sends such a row's visuals to
    `images=` only).
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    text = text or ""
    instruction = instruction or ""
    if (
        MMEB_IMAGE_TAG in text
        or image_token in text
        or NUMBERED_IMAGE_TAG.search(text)
        or (video_token is not None and (video_token in text or MMEB_VIDEO_TAG in text))
    ):
        if instruction:
            raise ValueError("a text that already holds image placeholders is a complete prompt; pass no instruction")
        text = text.replace(MMEB_IMAGE_TAG, image_token)
        return text.replace(MMEB_VIDEO_TAG, video_token) if video_token is not None else text
    if num_videos:
        if num_images:
            raise ValueError("holds both images and a video; a VLM2Vec row takes one kind of visual input")
        if video_token is None:
            raise ValueError("holds a video, but this backbone takes no video input")
        body = " ".join(part for part in (instruction, text) if part)
        return " ".join([video_token] * num_videos) + " " + body
    tags = image_tags if image_tags is not None else [image_token] * num_images
    image_prefix = " ".join(tags)
    if prompt_format == "v2" and instruction:
        body = " ".join(part for part in (instruction.strip(), text) if part)
        prompt = f"{image_prefix}\n{body}\n" if image_prefix else f"{body}\n"
        return prompt.replace(" \n", "\n")
    return " ".join(part for part in (image_prefix, instruction, text) if part)


def init_shape(family: BackboneFamily, size: str) -> dict[str, int]:
    """The `INIT_SHAPES` entry of `size`, checked against the sizes `family` declares."""
    if size not in family.init_sizes or size not in INIT_SHAPES:
        raise ValueError(f"backbone family {family.name!r} has no {size!r} size; it has {list(family.init_sizes)}")
    return INIT_SHAPES[size]


def clip_vision_config(shape: dict[str, int]):
    """The CLIP ViT-L/14-336 geometry (336 px, patch 14) at `shape`'s size, for random CLIP-tower backbones."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=shape["width"],
        intermediate_size=2 * shape["width"],
        num_hidden_layers=shape["depth"],
        num_attention_heads=max(2, shape["width"] // 64),
        image_size=336,
        patch_size=14,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


class PromptRowError(ValueError):
    """A batch row that cannot be turned into model input; `row` is its index in the batch."""

    def __init__(self, row: int, message: str):
        super().__init__(f"row {row}: {message}")
        self.row = row
        self.detail = message


def media_token_counts(offsets: list[list[dict]], kinds: tuple[str, ...] = ("image", "video")) -> list[dict[str, int]]:
    """Per row, the tokens its media expanded to, by kind, from `ProcessorMixin.get_text_with_replacements`' offsets
    (each replacement is its placeholder repeated once per token)."""
    return [
        {
            kind: sum(len(item["replacement"]) // len(item["text"]) for item in row if item["type"] == kind)
            for kind in kinds
        }
        for row in offsets
    ]


def tokenize_checked(
    processor, texts: list[str], media_tokens: list[dict[str, int]], text_kwargs: dict[str, Any], hint: str
) -> dict[str, list[list[int]]]:
    """Tokenise prompts whose placeholders are already expanded (`max_length`: the call's, else the processor's;
    `truncation` on when there is one; longest padding unless the call says otherwise) and check that every row kept
    all its media tokens: `media_tokens[row]` maps `"image"` / `"video"` to the count its media need.

    Raises:
        PromptRowError: a row whose media tokens truncation cut, with `hint` (what else the user can lower).
    """
    max_length = text_kwargs.pop("max_length", processor.max_length)
    truncation = text_kwargs.pop("truncation", max_length is not None)
    text_kwargs.setdefault("padding", True)
    encoding = processor._tokenize(texts, truncation=truncation, max_length=max_length, **text_kwargs)
    token_ids = {"image": processor.image_token_id, "video": processor.video_token_id}
    for row, (ids, wanted) in enumerate(zip(encoding["input_ids"], media_tokens)):
        for kind, count in wanted.items():
            seen = ids.count(token_ids[kind]) if token_ids[kind] is not None else 0
            if seen != count:
                raise PromptRowError(
                    row,
                    f"its {kind}s need {count} {kind} tokens but {seen} fit in max_length={max_length}; "
                    f"raise max_length (max_seq_length) or {hint}",
                )
    return encoding


def rows_of_media(token_counts: list[int], per_item_tokens: list[int]) -> list[list[int]] | None:
    """Which media items (images or videos, in batch order) belong to each row, from each row's placeholder-token
    count and each item's token count; None if they do not add up."""
    rows, item = [], 0
    for count in token_counts:
        taken = []
        while count > 0 and item < len(per_item_tokens):
            count -= per_item_tokens[item]
            taken.append(item)
            item += 1
        if count != 0:
            return None
        rows.append(taken)
    return rows if item == len(per_item_tokens) else None


def select_images_per_group(
    inputs: dict[str, Any], per_row: list[list[int]], groups: list[list[int]], keys: tuple[str, ...]
) -> list[dict]:
    """For each group of rows, the `keys` tensors (indexed per image, e.g. `pixel_values`, `image_sizes`) of the
    images those rows hold (`per_row` from `rows_of_media`), in row order; `{}` for a group without images."""
    result = []
    for group in groups:
        items = [item for row in group for item in per_row[row]]
        result.append({key: inputs[key][items] for key in keys} if items else {})
    return result


class BackboneFamily(ABC):
    """The contract of one backbone family; a family module subclasses it, fills in the declarations and the
    abstract methods, and `backbones.register_family` adds it to the registry. Everything outside the family
    modules asks the registry for these declarations and never names a family.

    Declarations:
        name: the family's registry name. A folder records it (`backbone_family` in `config.json` and
            `processor_config.json`) when it is not the default family of its `model_type` (a recipe family).
        display_name: how model cards name the backbone; `display_names` overrides it per `model_type` (a family
            of several backbone versions).
        model_types: the `vlm_config.model_type` values of this family.
        modalities: what one input may hold, among `MODALITIES`; a family without `"video"` takes no video
            (`video_token` None) and the processor refuses videos for it.
        processor_options: the settings `conversion_image_processor` takes ([`ProcessorOption`]): the CLI's
            `convert` / `init` flags and the conversion presets' keys.
        media_input_keys: the model inputs that carry images / videos (besides `input_ids` / `attention_mask`);
            the model's forward, the processor's `model_input_names` and the sentence-transformers module's input
            keys are all derived from them.
        token_type_input_keys: those of `media_input_keys` laid out per token (`(batch, seq)`) that only tell the
            backbone's own position computation which tokens are visual: sub-batches cut them like `input_ids`,
            and they are dropped when explicit `position_ids` are given.
        lora_target_modules: linear-layer names the reference's LoRA adapts (peft `target_modules`).
        lora_module_scopes: module paths inside `vlm` whose linear layers those names may match.
        init_model_types: the backbones `vlm2vec init` can build at random (see `random_config`); empty for a
            recipe that only wraps published checkpoints.
        init_sizes: the sizes `random_config` takes (`"tiny"` for tests, `"mid"` for benchmarks).
        tiny_tokenizer: the bundled tokenizer folder (`vlm2vec_hf/assets/<name>`) a random model of this family uses.
        shipped_files: this family's code files (beside `backbone_common.py` / `backbones.py`) that every model
            folder and Hub repository carries.
        prompt_formats: the `prompt_format` values its processor takes (`PROMPT_FORMATS`, or a recipe's own).
        padding_side: the tokenizer padding side the processor sets (None: the saved tokenizer's).
        default_max_length: the prompt truncation (tokens) a conversion uses when none is given (None: none).
        image_token: the placeholder string a prompt holds for one image.
        video_token: the placeholder string a prompt holds for one video (None: the family takes no video).
        no_split_modules: layer class names `device_map="auto"` must keep on one device.
        adapter_key_mapping: `(pattern, replacement)` rules from published adapter keys to our parameter names.
        resize_small_images: whether the reference resizes an image with a side under 28 px to 56 x 56 first.
        rgba_background: the RGB colour an RGBA image (or video frame) is composited on, alpha as the mask; None:
            `convert("RGB")`, which drops the alpha channel.
        default_num_frames: the frames a folder of this family samples per video (`num_frames` of its processor);
            None: the processor's default (VLM2Vec-V2's 8).
        default_position_ids_mode: the `position_ids_mode` a folder of this family gets unless one is given
            (`"reference"`: VLM2Vec's 1-D positions; `"native"`: the backbone's own, e.g. M-RoPE).
        system_instruction_formats: the prompt formats that give the instruction its own (system) turn, so that
            evaluation passes it apart from the text instead of inside VLM2Vec's prompt string.
    """

    name: str = ""
    display_name: str = ""
    display_names: dict[str, str] = {}
    model_types: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ("text", "image")
    processor_options: tuple[ProcessorOption, ...] = ()
    media_input_keys: tuple[str, ...] = ()
    token_type_input_keys: tuple[str, ...] = ()
    lora_target_modules: tuple[str, ...] = ()
    lora_module_scopes: tuple[str, ...] = ("language_model",)
    init_model_types: tuple[str, ...] = ()
    init_sizes: tuple[str, ...] = ("tiny", "mid")
    tiny_tokenizer: str | None = None
    shipped_files: tuple[str, ...] = ()
    prompt_formats: tuple[str, ...] = PROMPT_FORMATS
    padding_side: str | None = None
    default_max_length: int | None = None
    image_token: str = ""
    video_token: str | None = None
    no_split_modules: tuple[str, ...] = ()
    adapter_key_mapping: tuple[tuple[str, str], ...] = ()
    resize_small_images: bool = True
    rgba_background: tuple[int, int, int] | None = None
    default_position_ids_mode: str = "reference"
    default_num_frames: int | None = None
    system_instruction_formats: tuple[str, ...] = ()

    @property
    def takes_video(self) -> bool:
        return "video" in self.modalities

    @property
    def image_processor_options(self) -> tuple[str, ...]:
        """The names of `processor_options`."""
        return tuple(option.name for option in self.processor_options)

    def display_name_for(self, model_type: str | None) -> str:
        """The card name of this family's `model_type` backbone."""
        return self.display_names.get(model_type or "", self.display_name or self.name)

    # --- model ---
    def register_config(self) -> None:
        """Register the family's backbone config class with transformers' `AutoConfig`, for a backbone transformers
        does not ship (called before a saved `vlm_config` is read; default: nothing to register)."""
        return None

    @abstractmethod
    def build_backbone(self, vlm_config) -> torch.nn.Module:
        """A backbone with fresh weights from `vlm_config` (the weights come from `from_pretrained` afterwards)."""
        raise NotImplementedError

    @abstractmethod
    def load_backbone(self, source, **from_pretrained_kwargs) -> torch.nn.Module:
        """A backbone with weights from a published checkpoint folder / Hub id, keys mapped onto our modules."""
        raise NotImplementedError

    @abstractmethod
    def sub_batch_media(self, vlm_config, inputs: dict[str, Any], groups: list[list[int]]) -> list[dict] | None:
        """The media inputs of each row group of a padded batch (`groups`: row indices), or None if the media
        cannot be assigned to rows (then the batch runs whole)."""
        raise NotImplementedError

    # --- processor ---
    def image_tags(self, num_images: int) -> list[str]:
        """The placeholders a prompt puts in front for `num_images` images."""
        return [self.image_token] * num_images

    def format_prompt(
        self,
        text: str | None,
        instruction: str | None,
        num_images: int,
        prompt_format: str = "v1",
        num_videos: int = 0,
    ) -> str:
        """[`format_prompt`] with this family's image (and video) placeholders."""
        return format_prompt(
            text,
            instruction,
            num_images,
            prompt_format,
            self.image_token,
            self.image_tags(num_images),
            num_videos=num_videos,
            video_token=self.video_token,
        )

    def count_placeholders(self, prompt: str) -> int:
        """How many images `prompt` stands for."""
        return prompt.count(self.image_token)

    def count_video_placeholders(self, prompt: str) -> int:
        """How many videos `prompt` stands for (0 for a family without video)."""
        return prompt.count(self.video_token) if self.video_token else 0

    def prepare_video(self, image_processor, frames: list) -> list:
        """A clip's sampled RGB PIL frames -> the frames the video processing takes (the family's resize); only
        called for a family whose `modalities` hold `"video"`."""
        raise NotImplementedError(f"backbone family {self.name!r} takes no video")

    def processor_option_values(self, image_processor) -> dict[str, Any]:
        """The current value of each of `processor_options` on `image_processor`, by name."""
        return {option.name: getattr(image_processor, option.name) for option in self.processor_options}

    def resize_image(self, image):
        """The family's own resize of a prepared RGB PIL image, before the image processor (default: none)."""
        return image

    @abstractmethod
    def load_image_processor(self, source, **hub_kwargs):
        """The image processor saved in `source` (a model folder or the backbone's own checkpoint)."""
        raise NotImplementedError

    def load_tokenizer(self, source, **hub_kwargs):
        """The backbone checkpoint's tokenizer, as the reference tokenises (at conversion)."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, **hub_kwargs)

    @abstractmethod
    def conversion_image_processor(self, source, **options):
        """The image processor of backbone checkpoint `source` (None: the family's defaults), at conversion, with
        `options` (named in `image_processor_options`; an option left out keeps the family's default)."""
        raise NotImplementedError

    def check_image_processor_options(self, options: dict[str, Any]) -> None:
        """Raise a ValueError naming every key of `options` that is not one of this family's
        `image_processor_options` (an option of another family's image processor)."""
        unknown = sorted(set(options) - set(self.image_processor_options))
        if unknown:
            known = ", ".join(self.image_processor_options) or "none"
            raise ValueError(
                f"image-processor option(s) {', '.join(unknown)} do not apply to a {self.model_types[0]} backbone "
                f"(its options: {known})"
            )

    @abstractmethod
    def image_token_id(self, tokenizer) -> int:
        """The id `input_ids` hold on image positions."""
        raise NotImplementedError

    @abstractmethod
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
        """Prompts (placeholders already checked against `images` and `videos`), prepared images
        ([`resize_image`]) and prepared clips ([`prepare_video`]; always empty for a family without video) -> model
        inputs: `input_ids`, `attention_mask` and this family's `media_input_keys` (lists or tensors; the processor
        converts them to `return_tensors`)."""
        raise NotImplementedError

    @abstractmethod
    def num_image_tokens(self, image_processor, image) -> int:
        """Visual tokens the backbone sees for a prepared image (what one placeholder expands to)."""

    def random_config(self, size: str, tokenizer, model_type: str | None = None):
        """A random backbone config of `size` (one of `init_sizes`) for `model_type` (one of `init_model_types`;
        None: the first), wired to `tokenizer`'s special-token ids (`vlm2vec init`, tests, benchmarks)."""
        raise NotImplementedError(f"backbone family {self.name!r} has no random init")

    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", *self.media_input_keys]


__all__ = [
    "MMEB_IMAGE_TAG",
    "MMEB_VIDEO_TAG",
    "MODALITIES",
    "PROMPT_FORMATS",
    "BackboneFamily",
    "ProcessorOption",
    "PromptRowError",
    "clip_vision_config",
    "format_prompt",
    "init_shape",
    "media_token_counts",
    "rows_of_media",
    "tokenize_checked",
]
