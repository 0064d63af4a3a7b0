"""The Phi-3.5-V backbone model (`Phi3VModel`): stock transformers `Phi3Model` (the LLM, longrope = the published
`su` RoPE) plus stock `CLIPVisionModel` (the image tower) and the glue, as the reference
(`microsoft/Phi-3.5-vision-instruct` remote code, vendored by VLM2Vec v1) computes it: CLIP `hidden_states[-2]`
without CLS, 2 x 2 patch merge, `sub_GN` after each row of 12 x 12 tokens, sub-crop grid, `glb_GN`, global view, then
the 2-layer MLP projection; and the loader of published checkpoints (`load_phi3v_checkpoint`).

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

import os
import re

import torch
from transformers import CLIPVisionModel, Phi3Model, PreTrainedConfig
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .configuration_phi3_v import Phi3VConfig
from .image_processing_phi3_v import CROP_SIZE, indices_by_value

CHECKPOINT_KEY_MAPPING: tuple[tuple[str, str | None], ...] = (
    (r"^lm_head\.", None),
    (r"^model\.vision_embed_tokens\.wte\.weight$", None),
    (r"^model\.vision_embed_tokens\.img_processor\.vision_model\.", "vision_embed_tokens.img_processor."),
    (r"^model\.vision_embed_tokens\.(glb_GN|sub_GN|img_projection\.\d+\.(weight|bias))$", r"vision_embed_tokens.\1"),
    (r"^model\.(embed_tokens|layers|norm)\.", r"language_model.\1."),
)


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
        groups = indices_by_value(grids)
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


__all__ = ["CHECKPOINT_KEY_MAPPING", "Phi3VImageEmbedding", "Phi3VModel", "load_phi3v_checkpoint", "map_checkpoint_key"]
