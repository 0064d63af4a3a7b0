"""The VLM2Vec transformers model: config, model, processor, and the backbone-family registry.

The files beside this one (all but this `__init__`) are copied verbatim into every VLM2Vec model repository and
loaded there with `trust_remote_code=True`; they import only torch, transformers, numpy and PIL. The exports below
load on first use, so `vlm2vec_hf.modeling_vlm2vec.backbones` (the registry) imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .configuration_vlm2vec import VLM2VecConfig
    from .modeling_vlm2vec import VLM2VecModel, VLM2VecModelOutput, VLM2VecPreTrainedModel
    from .processing_vlm2vec import VLM2VecProcessor

_EXPORTS = {
    "VLM2VecConfig": "configuration_vlm2vec",
    "VLM2VecModel": "modeling_vlm2vec",
    "VLM2VecModelOutput": "modeling_vlm2vec",
    "VLM2VecPreTrainedModel": "modeling_vlm2vec",
    "VLM2VecProcessor": "processing_vlm2vec",
    "format_prompt": "backbone_common",
    "load_image": "media_loading",
    "to_reference_rgb": "media_loading",
}


def __getattr__(name: str) -> Any:
    if name == "CODE_FILES":
        from .backbones import code_files

        return code_files()
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = [
    "CODE_FILES",
    "VLM2VecConfig",
    "VLM2VecModel",
    "VLM2VecModelOutput",
    "VLM2VecPreTrainedModel",
    "VLM2VecProcessor",
    "format_prompt",
    "load_image",
    "to_reference_rgb",
]
