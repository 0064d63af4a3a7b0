"""The VLM2Vec transformers model: config, model, processor.

The three files beside this one are copied verbatim into every VLM2Vec model repository and loaded there with
`trust_remote_code=True`; they import only torch, transformers, numpy and PIL.
"""

from .configuration_vlm2vec import VLM2VecConfig
from .modeling_vlm2vec import VLM2VecModel, VLM2VecModelOutput, VLM2VecPreTrainedModel
from .processing_vlm2vec import VLM2VecProcessor, format_prompt, load_image, to_reference_rgb

# `save_pretrained` then writes `auto_map` and copies the code files next to the weights.
VLM2VecConfig.register_for_auto_class()
VLM2VecModel.register_for_auto_class("AutoModel")
VLM2VecProcessor.register_for_auto_class("AutoProcessor")

CODE_FILES = (
    "configuration_vlm2vec.py",
    "modeling_vlm2vec.py",
    "processing_vlm2vec.py",
    # The backbone families (relative imports of the three above; `save_pretrained` copies them too).
    "backbones.py",
    "backbone_common.py",
    "backbone_qwen2_vl.py",
    "backbone_phi3_v.py",
    "backbone_llava_next.py",
    "backbone_gme.py",
)

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
