"""Small random Qwen2-VL / Qwen2.5-VL / Phi-3.5-V / LLaVA-Next backbones for tests, demos and benchmarks (no download
needed).

Their weights are random: embeddings from them carry no meaning, only shapes, batching, padding, save/load and
speed can be checked with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    CLIPVisionConfig,
    LlavaNextConfig,
    MistralConfig,
    Phi3Config,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
)
from transformers.models.qwen2_5_vl import Qwen2_5_VLConfig
from transformers.models.qwen2_vl import Qwen2VLConfig

from vlm2vec_hf.modeling_vlm2vec.backbone_phi3_v import Phi3VConfig
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

ASSETS = Path(__file__).parent / "assets"
TINY_TOKENIZER_DIR = ASSETS / "tiny-qwen2-tokenizer"
TINY_PHI3V_TOKENIZER_DIR = ASSETS / "tiny-phi3v-tokenizer"
TINY_LLAVA_NEXT_TOKENIZER_DIR = ASSETS / "tiny-llava-next-tokenizer"
BUNDLED_IMAGES = ASSETS / "images"

BackboneSize = Literal["tiny", "mid"]
BackboneFamily = Literal["qwen2_vl", "qwen2_5_vl", "phi3_v", "llava_next"]

# hidden / layers / heads / kv heads / intermediate / mrope_section (sums to head_dim / 2) / vision depth / width.
_SIZES = {
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, mrope=[2, 3, 3], depth=2, width=32),
    "mid": dict(hidden=512, layers=12, heads=8, kv_heads=4, intermediate=1536, mrope=[8, 12, 12], depth=8, width=384),
}


def tiny_tokenizer(family: BackboneFamily = "qwen2_vl") -> PreTrainedTokenizerBase:
    """The bundled 3,014-token Qwen2-style tokenizer (Qwen2-VL special tokens at ids 3000-3013), or for `phi3_v`
    the 2,011-token Llama-style one (`<s>` BOS, Phi-3.5 chat tokens at 2000-2010, `<|endoftext|>` = pad), or for
    `llava_next` the 2,002-token Llama-style one (`<s>` BOS, `<image>` = 2000, `<pad>` = 2001)."""
    if family == "phi3_v":
        return get_family(family).load_tokenizer(TINY_PHI3V_TOKENIZER_DIR)
    if family == "llava_next":
        return get_family(family).load_tokenizer(TINY_LLAVA_NEXT_TOKENIZER_DIR)
    return AutoTokenizer.from_pretrained(TINY_TOKENIZER_DIR)


def _clip_vision_config(shape: dict) -> CLIPVisionConfig:
    """The CLIP ViT-L/14-336 geometry both Phi-3.5-V and LLaVA-1.6 use (336 px, patch 14), at `shape`'s size."""
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


def _phi3v_config(shape: dict) -> Phi3VConfig:
    """A Phi-3.5-V config of `shape` with the published CLIP geometry (336 px, patch 14: 12 x 12 merged tokens)."""
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
    vision = _clip_vision_config(shape)
    return Phi3VConfig(text_config=text, vision_config=vision)


def _llava_next_config(shape: dict) -> LlavaNextConfig:
    """A LLaVA-1.6-Mistral config of `shape` with the published geometry (CLIP 336 px, patch 14, the llava-hf grid
    pinpoints) and the bundled tokenizer's `<image>` / `<pad>` ids."""
    text = MistralConfig(
        vocab_size=2064,
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        sliding_window=None,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2001,
        tie_word_embeddings=False,
    )
    vision = _clip_vision_config(shape)
    return LlavaNextConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=2000,
        pad_token_id=2001,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )


def backbone_config(size: BackboneSize = "tiny", family: BackboneFamily = "qwen2_vl") -> PreTrainedConfig:
    """A Qwen2-VL, Qwen2.5-VL, Phi-3.5-V or LLaVA-Next config of the given size, wired to the bundled tokenizer's
    special-token ids."""
    shape = _SIZES[size]
    if family == "phi3_v":
        return _phi3v_config(shape)
    if family == "llava_next":
        return _llava_next_config(shape)
    tokenizer = tiny_tokenizer()
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in {
            "image_token_id": "<|image_pad|>",
            "video_token_id": "<|video_pad|>",
            "vision_start_token_id": "<|vision_start|>",
            "vision_end_token_id": "<|vision_end|>",
            "bos_token_id": "<|endoftext|>",
            "eos_token_id": "<|im_end|>",
            "pad_token_id": "<|endoftext|>",
        }.items()
    }
    text_config = {
        "vocab_size": 3072,
        "hidden_size": shape["hidden"],
        "intermediate_size": shape["intermediate"],
        "num_hidden_layers": shape["layers"],
        "num_attention_heads": shape["heads"],
        "num_key_value_heads": shape["kv_heads"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": shape["mrope"]},
        "bos_token_id": ids["bos_token_id"],
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
    }
    if family == "qwen2_vl":
        vision_config = {
            "depth": shape["depth"],
            "embed_dim": shape["width"],
            "num_heads": max(2, shape["width"] // 64),
            "hidden_size": shape["hidden"],
            "mlp_ratio": 2 if size == "tiny" else 4,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        }
        return Qwen2VLConfig(text_config=text_config, vision_config=vision_config, tie_word_embeddings=False, **ids)
    vision_config = {
        "depth": shape["depth"],
        "hidden_size": shape["width"],
        "intermediate_size": 2 * shape["width"],
        "num_heads": max(2, shape["width"] // 64),
        "out_hidden_size": shape["hidden"],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [shape["depth"] - 1],
    }
    return Qwen2_5_VLConfig(text_config=text_config, vision_config=vision_config, tie_word_embeddings=False, **ids)


def random_backbone(
    size: BackboneSize = "tiny",
    family: BackboneFamily = "qwen2_vl",
    seed: int = 0,
    weight_std: float | None = 0.2,
) -> torch.nn.Module:
    """A random base VLM (`Qwen2VLModel` / `Qwen2_5_VLModel` / `Phi3VModel` / `LlavaNextModel`, no LM head).

    With the default init (std 0.02) every input gets nearly the same embedding; `weight_std` re-draws every
    parameter with two or more dimensions from N(0, weight_std^2) with a seeded generator so embeddings differ.
    `None` keeps transformers' init.
    """
    torch.manual_seed(seed)
    config = backbone_config(size, family)
    if isinstance(config, Phi3VConfig):  # no transformers Auto class: its family builds it
        model = get_family(config.model_type).build_backbone(config)
    else:
        model = AutoModel.from_config(config, attn_implementation="eager")
    if weight_std is not None:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.ndim >= 2:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * weight_std)
    return model.eval()


def write_random_model(
    out: str | Path,
    size: BackboneSize = "tiny",
    family: BackboneFamily = "qwen2_vl",
    seed: int = 0,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a random-init VLM2Vec model folder (transformers' own init, to train from scratch); returns it.
    Pixel bounds (Qwen2-VL only; Phi-3.5-V sizes images by its HD transform, LLaVA-Next by its grid pinpoints)
    default to the published model's."""
    from vlm2vec_hf.model_folder import make_processor, write_model_folder
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel

    model = VLM2VecModel.from_backbone(random_backbone(size, family, seed=seed, weight_std=None))
    bounds = {name: value for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if value}
    processor = make_processor(tiny_tokenizer(family), backbone_model_type=family, **bounds)
    return write_model_folder(model, processor, out, overwrite=overwrite)
