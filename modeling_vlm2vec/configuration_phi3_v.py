"""Configuration of the Phi-3.5-V backbone (`model_type` `phi3_v`): transformers has no Phi-3-vision class, so
`Phi3VConfig` holds a stock `Phi3Config` (the LLM) and a stock `CLIPVisionConfig` (the image tower), read from the
published remote-code `config.json` by `from_original`. Importing this file registers it with `AutoConfig`.

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

from transformers import AutoConfig, CLIPVisionConfig, Phi3Config, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

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


__all__ = ["CLIP_VIT_L_336", "Phi3VConfig"]
