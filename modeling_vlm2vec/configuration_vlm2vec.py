"""Configuration of a VLM2Vec embedding model.

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only
`transformers`.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .backbones import DEFAULT_MODEL_TYPE, family_of

POOLING_MODES = ("last", "eos")
POSITION_IDS_MODES = ("reference", "native")


class VLM2VecConfig(PreTrainedConfig):
    r"""
    Configuration of [`VLM2VecModel`]: a backbone vision-language model (any registered family, `backbones.py`)
    whose final hidden state at the last non-padding token, optionally L2-normalised, is the embedding.

    Args:
        vlm_config (`dict` or `PreTrainedConfig`):
            The configuration of the wrapped backbone (a `model_type` a registered family takes; see
            `backbones.py`).
        pooling (`str`, defaults to `"last"`):
            `"last"` or its alias `"eos"`: pool the last token whose attention mask is 1. No EOS token is appended;
            the reference VLM2Vec uses the two names for the same thing.
        normalize (`bool`, defaults to `True`):
            L2-normalise the pooled embedding, so that the dot product is the cosine similarity.
        position_ids_mode (`str`, defaults to `"reference"`):
            `"reference"`: every token, image tokens included, gets the plain 1-D position
            `cumsum(attention_mask) - 1` (broadcast to every rotary axis of a multi-axis RoPE). This is how the
            published VLM2Vec models were trained and evaluated. `"native"`: the backbone's own positions (e.g.
            multi-axis rotary positions for visual tokens, from `mm_token_type_ids`), as stock transformers computes
            them.
        split_padded_batches (`bool`, defaults to `True`):
            With eager or SDPA attention, run rows of very different lengths in separate sub-batches (each trimmed
            to its own padding), so that one long row does not make every short row pay for a
            `(seq_len, seq_len)` attention mask. Embeddings are the same either way (within float rounding).
        backbone_family (`str`, *optional*):
            The backbone family by name (`backbones.py`), for a recipe that is not its backbone's default (a
            recipe family on a shared backbone). `None`: the family of `vlm_config.model_type`.
        initializer_range (`float`, defaults to `0.02`):
            Standard deviation used when the model is initialised from scratch.
    """

    model_type = "vlm2vec"
    sub_configs_defaults = {"vlm_config": SubConfigSpec(config_class=AutoConfig, model_type=DEFAULT_MODEL_TYPE)}

    vlm_config: dict | PreTrainedConfig | None = None
    pooling: str = "last"
    normalize: bool = True
    position_ids_mode: str = "reference"
    split_padded_batches: bool = True
    backbone_family: str | None = None
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.vlm_config is not None:  # a backbone transformers does not ship registers its config class first
            family_of(self.vlm_config, self.backbone_family).register_config()
        super().__post_init__(**kwargs)
        # `pipeline("image-feature-extraction", model=folder, trust_remote_code=True)` runs this repository's own
        # pipeline, which builds VLM2Vec prompts with the repository's processor (transformers' generic one would
        # call the model without a prompt and with the wrong image preprocessing).
        if not getattr(self, "custom_pipelines", None):
            self.custom_pipelines = {
                "image-feature-extraction": {
                    "impl": "pipeline_vlm2vec.VLM2VecImageFeatureExtractionPipeline",
                    "pt": ["AutoModel"],
                    "type": "image",
                }
            }
        family_of(self.vlm_config, self.backbone_family)  # an unsupported backbone / family fails here, naming it
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.position_ids_mode not in POSITION_IDS_MODES:
            raise ValueError(f"position_ids_mode must be one of {POSITION_IDS_MODES}, got {self.position_ids_mode!r}")

    def get_text_config(self, *args, **kwargs) -> PreTrainedConfig:
        return self.vlm_config.get_text_config(*args, **kwargs)

    @property
    def max_position_embeddings(self) -> int | None:
        """The backbone LLM's position limit: the longest row, in tokens, it can embed."""
        return getattr(self.vlm_config.get_text_config(), "max_position_embeddings", None)

    @property
    def embedding_dim(self) -> int:
        """Size of the embedding: the backbone LLM's hidden size."""
        return self.vlm_config.get_text_config().hidden_size


# `save_pretrained` then writes `auto_map` and copies the code files next to the weights.
VLM2VecConfig.register_for_auto_class()

__all__ = ["VLM2VecConfig"]
