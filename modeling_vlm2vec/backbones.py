"""The one registry of VLM2Vec backbone families: `vlm_config.model_type` -> its `BackboneFamily`.

`VLM2VecConfig`, `VLM2VecModel` and `VLM2VecProcessor` ask the family returned here for everything that differs
between backbones and never branch on `model_type` themselves. This file is copied verbatim into every VLM2Vec
model repository on the Hub, so it imports only `torch`, `transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

from .backbone_common import BackboneFamily
from .backbone_llava_next import FAMILY as LLAVA_NEXT
from .backbone_phi3_v import FAMILY as PHI3_V
from .backbone_qwen2_vl import FAMILY as QWEN2_VL

FAMILIES: dict[str, BackboneFamily] = {
    model_type: family for family in (QWEN2_VL, PHI3_V, LLAVA_NEXT) for model_type in family.model_types
}
DEFAULT_MODEL_TYPE = "qwen2_vl"


def get_family(model_type: str | None) -> BackboneFamily:
    """The family of backbone `model_type` (None: the default, Qwen2-VL)."""
    family = FAMILIES.get(model_type or DEFAULT_MODEL_TYPE)
    if family is None:
        raise ValueError(f"unsupported backbone model_type {model_type!r}; supported: {sorted(FAMILIES)}")
    return family


def family_of(vlm_config) -> BackboneFamily:
    """The family of a backbone config (a `PreTrainedConfig` or its dict)."""
    model_type = (
        vlm_config.get("model_type") if isinstance(vlm_config, dict) else getattr(vlm_config, "model_type", None)
    )
    return get_family(model_type)


def all_no_split_modules() -> list[str]:
    """Every family's `no_split_modules`, for the model class attribute."""
    return [name for family in dict.fromkeys(FAMILIES.values()) for name in family.no_split_modules]


__all__ = ["FAMILIES", "all_no_split_modules", "family_of", "get_family"]
