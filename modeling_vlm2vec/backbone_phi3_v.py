"""The Phi-3.5-V backbone family of VLM2Vec (`TIGER-Lab/VLM2Vec-Full` / `VLM2Vec-LoRA`, `model_type` `phi3_v`).

transformers has no Phi-3-vision class, so the backbone is stock transformers `Phi3Model` (the LLM, longrope = the
published `su` RoPE) plus stock `CLIPVisionModel` (the image tower) and the glue written here, as the reference
(`microsoft/Phi-3.5-vision-instruct` remote code, vendored by VLM2Vec v1) computes it:

* image processing (`Phi3VImageProcessor`): the HD transform with `num_crops` crops of 336 x 336 (transpose
  portrait images, resize to `s * 336` wide, pad the height with white to a multiple of 336), CLIP normalisation,
  a bicubic 336 x 336 global view of the *normalised* HD tensor, global view first, zero-padded to
  `num_crops + 1` crops;
* image embedding (`Phi3VImageEmbedding`): CLIP `hidden_states[-2]` without CLS, 2 x 2 patch merge, `sub_GN` after
  each row of 12 x 12 tokens, sub-crop grid, `glb_GN`, global view, then the 2-layer MLP projection;
* prompts: split around `<|image_N|>`, each chunk tokenised separately *with* BOS, the image's `-N` placeholder ids
  between chunks; rows with an image are never truncated, text rows are cut at `max_length`.

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoConfig,
    CLIPVisionConfig,
    CLIPVisionModel,
    Phi3Config,
    Phi3Model,
    PreTrainedConfig,
    TokenizersBackend,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .backbone_common import (
    NUMBERED_IMAGE_TAG,
    BackboneFamily,
    ProcessorOption,
    PromptRowError,
    rows_of_media,
    select_images_per_group,
)

CROP_SIZE = 336
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# The published checkpoint builds its tower from a hard-coded CLIP ViT-L/14-336 config (`img_processor.model_name`).
CLIP_VIT_L_336 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
}
# Published checkpoint keys -> `Phi3VModel` parameters (first match wins). `lm_head` and the `wte` alias of
# `embed_tokens` are not needed for embeddings (`None`: dropped); any key no rule matches is an error.
CHECKPOINT_KEY_MAPPING: tuple[tuple[str, str | None], ...] = (
    (r"^lm_head\.", None),
    (r"^model\.vision_embed_tokens\.wte\.weight$", None),
    (r"^model\.vision_embed_tokens\.img_processor\.vision_model\.", "vision_embed_tokens.img_processor."),
    (r"^model\.vision_embed_tokens\.(glb_GN|sub_GN|img_projection\.\d+\.(weight|bias))$", r"vision_embed_tokens.\1"),
    (r"^model\.(embed_tokens|layers|norm)\.", r"language_model.\1."),
)


class Phi3VConfig(PreTrainedConfig):
    r"""
    Configuration of [`Phi3VModel`]: a `Phi3Config` LLM (`text_config`), a `CLIPVisionConfig` tower
    (`vision_config`) and the image-embedding glue.

    Args:
        text_config (`dict` or `Phi3Config`): the LLM; the published `su` RoPE is `rope_type` `longrope`.
        vision_config (`dict` or `CLIPVisionConfig`): the CLIP tower (ViT-L/14-336 in the published model).
        num_img_tokens (`int`, defaults to 144): merged tokens per 336 x 336 crop (12 x 12).
        layer_idx (`int`, defaults to -2): which CLIP hidden state is the image feature.
    """

    model_type = "phi3_v"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="phi3"),
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="clip_vision_model", init_kwargs=CLIP_VIT_L_336
        ),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    num_img_tokens: int = 144
    layer_idx: int = -2

    @classmethod
    def from_original(cls, original: dict) -> Phi3VConfig:
        """Our config from a published `config.json` (`model_type` `phi3_v`, the remote-code layout).

        The CLIP tower is `img_processor.fixture_clip_config` when present (test fixtures), else ViT-L/14-336.
        """
        skip = {"embd_layer", "img_processor", "auto_map", "model_type", "architectures", "rope_scaling"}
        skip |= {"rope_theta", "_name_or_path", "transformers_version", "torch_dtype", "dtype"}
        text = {key: value for key, value in original.items() if key not in skip}
        rope = {"rope_type": "default", "rope_theta": original.get("rope_theta", 10000.0)}
        scaling = original.get("rope_scaling")
        if scaling:
            if scaling.get("type", scaling.get("rope_type")) not in ("su", "longrope"):
                raise ValueError(f"unsupported Phi-3-V rope_scaling {scaling!r} (expected type 'su')")
            original_max = original.get("original_max_position_embeddings", 4096)
            rope.update(
                rope_type="longrope",
                short_factor=list(scaling["short_factor"]),
                long_factor=list(scaling["long_factor"]),
                factor=original["max_position_embeddings"] / original_max,
                original_max_position_embeddings=original_max,
            )
        text["rope_parameters"] = rope
        image = original.get("img_processor") or {}
        embedding = original.get("embd_layer") or {}
        unsupported = {
            key: embedding.get(key)
            for key, wanted in (
                ("use_hd_transform", True),
                ("hd_transform_order", "sub_glb"),
                ("with_learnable_separator", True),
                ("projection_cls", "mlp"),
            )
            if key in embedding and embedding.get(key) != wanted
        }
        if unsupported:
            raise ValueError(f"unsupported Phi-3-V embd_layer settings: {unsupported}")
        vision = dict(image.get("fixture_clip_config") or CLIP_VIT_L_336)
        if image.get("image_dim_out", vision["hidden_size"]) != vision["hidden_size"]:
            raise ValueError("img_processor.image_dim_out must equal the CLIP width")
        config = cls(
            text_config=Phi3Config(**text),
            vision_config=CLIPVisionConfig(**vision),
            num_img_tokens=image.get("num_img_tokens", 144),
        )
        checkpoint_dtype = original.get("torch_dtype") or original.get("dtype")
        if checkpoint_dtype is not None:  # what `from_pretrained(dtype="auto")` loads in
            config.dtype = checkpoint_dtype
        return config


try:
    AutoConfig.register(Phi3VConfig.model_type, Phi3VConfig, exist_ok=True)
except ValueError:  # a Phi3VConfig of another copy of this file (another model folder) is registered already
    pass


class Phi3VImageEmbedding(torch.nn.Module):
    """The CLIP tower, the learnt separators and the projection of Phi-3-V (the reference's `Phi3ImageEmbedding`)."""

    def __init__(self, config: Phi3VConfig):
        super().__init__()
        self.layer_idx = config.layer_idx
        width = config.vision_config.hidden_size
        hidden = config.text_config.hidden_size
        self.img_processor = CLIPVisionModel(config.vision_config)
        self.glb_GN = torch.nn.Parameter(torch.zeros(1, 1, 4 * width))
        self.sub_GN = torch.nn.Parameter(torch.zeros(1, 1, 1, 4 * width))
        self.img_projection = torch.nn.Sequential(
            torch.nn.Linear(4 * width, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden)
        )

    @staticmethod
    def merge_2x2(features: torch.Tensor, h_crop: int, w_crop: int) -> torch.Tensor:
        """`(n * h_crop * w_crop, 24 * 24, C)` crop features -> `(n, h_crop * 12, w_crop * 12, 4 * C)`."""
        crops, length, channels = features.shape
        side = int(length**0.5)
        images = crops // (h_crop * w_crop)
        return (
            features.reshape(crops, side, side, channels)
            .reshape(crops, side // 2, 2, side // 2, 2, channels)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(crops, -1, 4 * channels)
            .reshape(images, h_crop, w_crop, side // 2, side // 2, -1)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(images, h_crop * side // 2, w_crop * side // 2, 4 * channels)
        )

    def add_row_separators(self, grid: torch.Tensor) -> torch.Tensor:
        """`(n, h, w, D)` -> `(n, h * (w + 1), D)`: `sub_GN` after each row."""
        images, height, _, dim = grid.shape
        newline = self.sub_GN.expand(images, height, -1, -1)
        return torch.cat([grid, newline], dim=2).reshape(images, -1, dim)

    def forward(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
        """Image tokens of every image, in order.

        Args:
            pixel_values: `(n_images, crops, 3, 336, 336)`, global view first, zero crops at the end.
            image_sizes: `(n_images, 2)` HD size (height, width) in pixels, multiples of 336.

        Returns:
            `(sum of num_img_tokens, hidden_size)`, per image the sub-crop grid (rows ended by `sub_GN`), `glb_GN`,
            then the global view (12 rows of 12 + `sub_GN`), projected to the LLM width.
        """
        images, crops = pixel_values.shape[:2]
        grids = [(height // CROP_SIZE, width // CROP_SIZE) for height, width in image_sizes.tolist()]
        groups = _indices_by_value(grids)
        # One CLIP batch over the crops every image uses (global view + its sub-crops; the zero padding crops never
        # reach the output), the images of one crop grid next to each other so that each grid is merged at once.
        if len(groups) == 1 and 1 + grids[0][0] * grids[0][1] == crops:
            batch = pixel_values.flatten(0, 1)
        else:
            batch = torch.cat([pixel_values[members, : 1 + h * w].flatten(0, 1) for (h, w), members in groups.items()])
        features = self.clip_features(batch)
        tokens: list[torch.Tensor | None] = [None] * images
        start = 0
        for (h_crop, w_crop), members in groups.items():
            used = 1 + h_crop * w_crop
            group = features[start : start + len(members) * used].unflatten(0, (len(members), used))
            start += len(members) * used
            sub = self.add_row_separators(self.merge_2x2(group[:, 1:].flatten(0, 1), h_crop, w_crop))
            global_view = self.add_row_separators(self.merge_2x2(group[:, 0], 1, 1))
            rows = torch.cat([sub, self.glb_GN.expand(len(members), -1, -1), global_view], dim=1)
            for slot, index in enumerate(members):
                tokens[index] = rows[slot]
        return self.img_projection(torch.cat(tokens, dim=0))

    def clip_features(self, crops: torch.Tensor) -> torch.Tensor:
        """`(n, 3, 336, 336)` crops -> `(n, 576, C)`: CLIP's `hidden_states[layer_idx]` without CLS.

        Only the encoder layers that hidden state depends on run (the reference runs the whole tower and keeps the
        second-to-last state: the last layer's work is thrown away).
        """
        tower = self.img_processor
        layers = tower.encoder.layers
        depth = self.layer_idx % (len(layers) + 1)  # hidden_states[k] is the output of the first k layers
        hidden = tower.pre_layrnorm(tower.embeddings(crops.to(tower.embeddings.patch_embedding.weight.dtype)))
        for layer in layers[:depth]:
            hidden = layer(hidden, None)
        return hidden[:, 1:]


class Phi3VModel(PreTrainedModel):
    """Phi-3.5-V for embeddings: `language_model` (stock `Phi3Model`) fed by `vision_embed_tokens` on the
    positions whose `input_ids` are negative (the reference's image placeholders)."""

    config_class = Phi3VConfig
    config: Phi3VConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _no_split_modules = ["Phi3DecoderLayer", "CLIPEncoderLayer"]
    # Published keys the embedding model does not use (`CHECKPOINT_KEY_MAPPING` drops them): no load warning.
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\.", r"^model\.vision_embed_tokens\.wte\.weight$"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def __init__(self, config: Phi3VConfig):
        super().__init__(config)
        self.language_model = Phi3Model(config.text_config)
        self.vision_embed_tokens = Phi3VImageEmbedding(config)
        self.post_init()

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.language_model.embed_tokens

    def set_input_embeddings(self, value: torch.nn.Module) -> None:
        self.language_model.embed_tokens = value

    def embed(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`(batch, seq)` ids (negative on image positions) -> `(batch, seq, hidden)` input embeddings."""
        embeds = self.language_model.embed_tokens(input_ids.clamp(min=0))
        positions = (input_ids < 0).nonzero(as_tuple=True)
        if pixel_values is None:
            if positions[0].numel():
                raise ValueError("input_ids hold image positions (negative ids) but no pixel_values were given")
            return embeds
        features = self.vision_embed_tokens(pixel_values, image_sizes)
        if features.shape[0] != positions[0].numel():
            raise ValueError(
                f"the images give {features.shape[0]} image tokens but input_ids hold {positions[0].numel()} "
                "image positions"
            )
        return embeds.index_put(positions, features.to(embeds.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """`input_ids` `(batch, seq)` with `-N` on the positions of a row's N-th image; `pixel_values`
        `(n_images, crops, 3, 336, 336)` and `image_sizes` `(n_images, 2)` of every image, in row order."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, pixel_values, image_sizes)
        return self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )


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
        for (height, width), members in _indices_by_value(sizes).items():
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


def _indices_by_value(values: list) -> dict[Any, list[int]]:
    """`{value: [positions holding it]}` in first-seen order: the items that can share one batched op."""
    groups: dict[Any, list[int]] = {}
    for index, value in enumerate(values):
        groups.setdefault(value, []).append(index)
    return groups


def map_checkpoint_key(key: str) -> str | None:
    """Our `Phi3VModel` parameter name for a published checkpoint key; None for a key that is dropped.

    Raises:
        KeyError: naming a key that no rule of `CHECKPOINT_KEY_MAPPING` accounts for.
    """
    for pattern, replacement in CHECKPOINT_KEY_MAPPING:
        if re.search(pattern, key):
            return None if replacement is None else re.sub(pattern, replacement, key, count=1)
    raise KeyError(f"checkpoint key {key!r} matches no Phi-3-V key rule")


def load_phi3v_checkpoint(source: str | os.PathLike, **from_pretrained_kwargs) -> Phi3VModel:
    """A `Phi3VModel` with the weights of a published Phi-3.5-V checkpoint (folder or Hub id).

    transformers' `from_pretrained` loads it with `key_mapping` (the original names onto ours, see
    `CHECKPOINT_KEY_MAPPING`); every checkpoint key must land on a parameter or be a known dropped one, and every
    parameter must be set. `from_pretrained_kwargs` (e.g. `dtype`, `attn_implementation`) go to that load.

    Raises:
        KeyError: naming checkpoint keys that no rule accounts for, or parameters the checkpoint leaves unset.
    """
    hub_keys = ("revision", "token", "cache_dir", "local_files_only", "subfolder")
    original, _ = PreTrainedConfig.get_config_dict(
        source, **{key: value for key, value in from_pretrained_kwargs.items() if key in hub_keys}
    )
    if original.get("model_type") != "phi3_v":
        raise ValueError(f"{source} is not a Phi-3-V checkpoint (model_type {original.get('model_type')!r})")
    config = Phi3VConfig.from_original(original)
    mapping = {pattern: replacement for pattern, replacement in CHECKPOINT_KEY_MAPPING if replacement is not None}
    model, info = Phi3VModel.from_pretrained(
        source, config=config, key_mapping=mapping, output_loading_info=True, **from_pretrained_kwargs
    )
    dropped = [pattern for pattern, replacement in CHECKPOINT_KEY_MAPPING if replacement is None]
    unmapped = sorted(key for key in info["unexpected_keys"] if not any(re.search(p, key) for p in dropped))
    if unmapped:
        raise KeyError(f"{len(unmapped)} checkpoint keys match no Phi-3-V key rule: {unmapped[:20]}")
    if info["missing_keys"] or info["mismatched_keys"]:
        raise KeyError(
            f"the checkpoint does not fill the model: missing {sorted(info['missing_keys'])[:20]}, "
            f"mismatched {list(info['mismatched_keys'])[:20]}"
        )
    return model.eval()


class Phi3VFamily(BackboneFamily):
    """Phi-3.5-V (`model_type` `phi3_v`)."""

    name = "phi3_v"
    display_name = "Phi-3.5-V"
    model_types = ("phi3_v",)
    processor_options = (ProcessorOption("num_crops", int, "HD crops per image (default: the checkpoint's, else 4)"),)
    init_model_types = ("phi3_v",)
    tiny_tokenizer = "tiny-phi3v-tokenizer"
    shipped_files = ("backbone_phi3_v.py",)
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

    def build_backbone(self, vlm_config) -> torch.nn.Module:
        return Phi3VModel(vlm_config)

    def load_backbone(self, source, **from_pretrained_kwargs) -> torch.nn.Module:
        return load_phi3v_checkpoint(source, **from_pretrained_kwargs)

    def sub_batch_media(self, vlm_config, inputs: dict[str, Any], groups: list[list[int]]) -> list[dict] | None:
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
        return Phi3VImageProcessor.from_pretrained(source, **hub_kwargs)

    def load_tokenizer(self, source, **hub_kwargs):
        # The `tokenizer.json` pipeline exactly as stored: transformers 5's `LlamaTokenizer` class rebuilds it
        # (Metaspace) and drops the double "▁" of a chunk that starts with a space.
        return TokenizersBackend.from_pretrained(source, **hub_kwargs)

    def conversion_image_processor(self, source, num_crops: int | None = None):
        """`num_crops`: the HD transform's crop budget (None: the checkpoint's, else 4). Phi-3-V sizes images by
        it, not by pixel bounds."""
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

__all__ = [
    "CHECKPOINT_KEY_MAPPING",
    "FAMILY",
    "Phi3VConfig",
    "Phi3VFamily",
    "Phi3VImageEmbedding",
    "Phi3VImageProcessor",
    "Phi3VModel",
    "hd_transform",
    "load_phi3v_checkpoint",
    "map_checkpoint_key",
]
