"""VLM2Vec: a vision-language model turned into a universal multimodal embedding model.

The embedding of an input (text, image, or both) is the backbone's final hidden state at the last non-padding
token, L2-normalised. This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports
only `torch` and `transformers`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .backbones import all_no_split_modules, family_of
from .configuration_vlm2vec import VLM2VecConfig

# Shipped beside this file: the configuration's `custom_pipelines` names it (the import makes `save_pretrained` copy
# it into every model folder).
from .pipeline_vlm2vec import VLM2VecImageFeatureExtractionPipeline  # noqa: F401
from .sub_batching import split_padded_batch


@dataclass
class VLM2VecModelOutput(ModelOutput):
    r"""
    Output of [`VLM2VecModel`].

    Args:
        embeddings (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            The final hidden state of each row's last non-padding token; L2-normalised when `config.normalize`.
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
            The backbone LLM's final hidden states (after its last RMSNorm).
        hidden_states (`tuple[torch.FloatTensor]`, *optional*):
            Hidden states of every LLM layer, returned with `output_hidden_states=True`.
        attentions (`tuple[torch.FloatTensor]`, *optional*):
            Attention weights, returned with `output_attentions=True` (eager attention only).
    """

    embeddings: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def last_token_positions(attention_mask: torch.Tensor) -> torch.LongTensor:
    """Index of the last position whose mask is 1, per row; correct for left, right or no padding.

    Args:
        attention_mask: `(batch_size, sequence_length)`, 1 for real tokens and 0 for padding.

    Returns:
        `(batch_size,)` column indices.
    """
    seq_len = attention_mask.shape[1]
    return seq_len - 1 - attention_mask.flip(dims=[1]).to(torch.long).argmax(dim=1)


def reference_position_ids(attention_mask: torch.Tensor) -> torch.LongTensor:
    """1-D positions as the reference VLM2Vec computes them: a token's index among the row's non-padding tokens.

    The published VLM2Vec models give image tokens the same plain positions as text (their prompts never start a
    vision block, so the backbone's multi-axis rope index falls back to 1-D positions). Returns
    `(batch_size, sequence_length)`; a multi-axis rotary backbone broadcasts them to every axis.
    """
    return (attention_mask.to(torch.long).cumsum(dim=-1) - 1).clamp(min=0)


class SequenceTooLongError(ValueError):
    """A row longer than the backbone's position limit; `row` is its index in the batch."""

    def __init__(self, row: int, length: int, limit: int):
        self.detail = (
            f"{length} tokens, over the backbone's limit of {limit} positions (max_position_embeddings); "
            "truncate with the processor's max_length (SentenceTransformer: max_seq_length)"
        )
        super().__init__(f"row {row}: {self.detail}")
        self.row = row


def check_sequence_lengths(attention_mask: torch.Tensor, limit: int | None) -> None:
    """Raise [`SequenceTooLongError`] for the first row with more real tokens than `limit` (None: no limit).

    Args:
        attention_mask: `(batch_size, sequence_length)`, 1 for real tokens.
    """
    if limit is None:
        return
    lengths = attention_mask.sum(dim=1)
    over = (lengths > limit).nonzero()
    if len(over):
        row = int(over[0])
        raise SequenceTooLongError(row, int(lengths[row]), limit)


class VLM2VecPreTrainedModel(PreTrainedModel):
    config_class = VLM2VecConfig
    config: VLM2VecConfig
    base_model_prefix = "vlm2vec"
    input_modalities = ("text",)  # each model's own: its family's modalities
    supports_gradient_checkpointing = True
    _no_split_modules = all_no_split_modules()
    _skip_keys_device_placement = "past_key_values"
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def load_adapter(
        self,
        peft_model_id: str | None = None,
        adapter_name: str | None = None,
        peft_config: dict | None = None,
        adapter_state_dict: dict[str, torch.Tensor] | None = None,
        **kwargs,
    ):
        """transformers' `load_adapter`, with DoRA magnitude vectors kept.

        peft saves a DoRA magnitude as `...lora_magnitude_vector`, but the parameter is
        `...lora_magnitude_vector.<adapter>.weight`; transformers (5.23) maps the saved name to neither and leaves the
        magnitudes at their initial values, so `AutoModel.from_pretrained(lora_checkpoint)` would embed differently
        from the trained model. The weights are read here and passed on under the name transformers can map.
        """
        if adapter_state_dict is None and peft_model_id is not None:
            adapter_state_dict = _read_adapter_weights(peft_model_id, kwargs)
        if adapter_state_dict is not None:
            adapter_state_dict = {
                f"{key}.weight" if key.endswith("lora_magnitude_vector") else key: value
                for key, value in adapter_state_dict.items()
            }
        return super().load_adapter(
            peft_model_id, adapter_name, peft_config=peft_config, adapter_state_dict=adapter_state_dict, **kwargs
        )


def _read_adapter_weights(peft_model_id: str, kwargs: dict) -> dict[str, torch.Tensor] | None:
    """`adapter_model.safetensors` of a local or Hub adapter, or None (then transformers reads what is there)."""
    from transformers.modeling_utils import load_state_dict
    from transformers.utils import cached_file

    hub_kwargs = dict(kwargs.get("adapter_kwargs") or {})
    for key in ("token", "revision", "cache_dir", "local_files_only"):
        if key in kwargs:
            hub_kwargs.setdefault(key, kwargs[key])
    path = cached_file(
        peft_model_id,
        "adapter_model.safetensors",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **{k: v for k, v in hub_kwargs.items() if k in ("token", "revision", "cache_dir", "local_files_only")},
    )
    return load_state_dict(path) if path else None


class VLM2VecModel(VLM2VecPreTrainedModel):
    r"""
    A backbone vision-language model (`self.vlm`, built from `config.vlm_config` by its family in `backbones.py`,
    `self.family`) with last-token pooling. Returns a [`VLM2VecModelOutput`] whose `embeddings` are
    `(batch_size, hidden_size)`.

    Inputs are what [`VLM2VecProcessor`] produces: the family's prompts, each media placeholder expanded to the
    item's visual-token count, and the family's media inputs.
    """

    def __init__(self, config: VLM2VecConfig):
        super().__init__(config)
        self.family = family_of(config.vlm_config, config.backbone_family)
        self.input_modalities = tuple(self.family.modalities)
        self._no_split_modules = list(self.family.no_split_modules)
        self.vlm = self.family.build_backbone(config.vlm_config)
        self.post_init()

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.vlm.get_input_embeddings()

    def set_input_embeddings(self, value: torch.nn.Module) -> None:
        self.vlm.set_input_embeddings(value)

    def check_sequence_lengths(self, attention_mask: torch.Tensor) -> None:
        """Raise [`SequenceTooLongError`] (with the row) if a row of `attention_mask` `(batch, seq)` holds more
        real tokens than the backbone has positions."""
        check_sequence_lengths(attention_mask, self.config.max_position_embeddings)

    @classmethod
    def from_backbone(
        cls,
        backbone: str | os.PathLike | PreTrainedModel,
        *,
        pooling: str = "last",
        normalize: bool = True,
        position_ids_mode: str | None = None,
        backbone_family: str | None = None,
        **from_pretrained_kwargs,
    ) -> VLM2VecModel:
        """Wrap a backbone checkpoint (folder, Hub id or loaded model) as a VLM2Vec model.

        The family is detected from the checkpoint's `config.json` (`model_type`), and its `load_backbone` maps
        the published key layout onto our modules. `lm_head` is not needed and is dropped. `backbone_family` names
        a recipe family on that backbone (None: the model_type's own); `position_ids_mode` None: the family's
        `default_position_ids_mode`.
        `from_pretrained_kwargs` (e.g. `dtype`, `attn_implementation`, `revision`) go to that load.
        """
        if isinstance(backbone, PreTrainedModel):
            vlm = backbone.model if hasattr(backbone, "lm_head") else backbone
        else:
            hub_keys = ("revision", "token", "cache_dir", "local_files_only", "subfolder")
            original, _ = PreTrainedConfig.get_config_dict(
                backbone, **{key: value for key, value in from_pretrained_kwargs.items() if key in hub_keys}
            )
            vlm = family_of(original, backbone_family).load_backbone(backbone, **from_pretrained_kwargs)
        if position_ids_mode is None:
            position_ids_mode = family_of(vlm.config, backbone_family).default_position_ids_mode
        config = cls.config_class(
            vlm_config=vlm.config,
            pooling=pooling,
            normalize=normalize,
            position_ids_mode=position_ids_mode,
            backbone_family=backbone_family,
        )
        with torch.device("meta"):
            model = cls(config)
        model.vlm = vlm
        model.config.vlm_config = vlm.config
        return model

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> VLM2VecModelOutput:
        r"""
        Args:
            input_ids: `(batch_size, sequence_length)` token ids, media placeholders already expanded.
            attention_mask: `(batch_size, sequence_length)`; padding may be on either side.
            position_ids: explicit positions; if given they override `config.position_ids_mode`.
            **kwargs: the family's media inputs (`self.family.media_input_keys`, e.g. `pixel_values`; their shapes
                are documented by the family's `encode`), as the processor returns them; any other keyword goes to
                the backbone call (e.g. attention options).
        """
        if attention_mask is None:
            reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
            attention_mask = torch.ones(reference.shape[:2], dtype=torch.long, device=reference.device)
        self.check_sequence_lengths(attention_mask)
        media = {key: kwargs.pop(key) for key in self.family.media_input_keys if key in kwargs}
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids, **media}
        sub_batches = None
        if inputs_embeds is None and not output_attentions and self._splits_padded_batches():
            sub_batches = split_padded_batch(self.family, self.config.vlm_config, inputs)
        if sub_batches is None:
            hidden, all_hidden, attentions = self._backbone(
                inputs, inputs_embeds, output_hidden_states, output_attentions, **kwargs
            )
        else:
            hidden, all_hidden, attentions = self._backbone_in_sub_batches(
                attention_mask, sub_batches, output_hidden_states, **kwargs
            )
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        pooled = hidden[rows, last_token_positions(attention_mask).to(hidden.device)]
        if self.config.normalize:
            pooled = F.normalize(pooled, p=2, dim=-1)
        return VLM2VecModelOutput(
            embeddings=pooled, last_hidden_state=hidden, hidden_states=all_hidden, attentions=attentions
        )

    def _backbone(
        self,
        inputs: dict[str, torch.Tensor | None],
        inputs_embeds: torch.Tensor | None,
        output_hidden_states: bool | None,
        output_attentions: bool | None,
        **kwargs,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """One backbone call: `(last_hidden_state, hidden_states, attentions)`."""
        inputs = dict(inputs)
        if inputs.get("position_ids") is None and self.config.position_ids_mode == "reference":
            inputs["position_ids"] = reference_position_ids(inputs["attention_mask"])
        if inputs.get("position_ids") is not None:
            # The backbone only reads token types to build its own positions; explicit positions make them unused.
            for key in self.family.token_type_input_keys:
                inputs[key] = None
        # Only what is given goes to the backbone: each family takes its own media inputs.
        inputs = {key: value for key, value in inputs.items() if value is not None}
        outputs = self.vlm(
            **inputs,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        return outputs.last_hidden_state, outputs.hidden_states, outputs.attentions

    def _splits_padded_batches(self) -> bool:
        # Flash / flex attention handle padding without a (seq, seq) mask; eager and SDPA build one per row.
        implementation = self.vlm.config.get_text_config()._attn_implementation
        return self.config.split_padded_batches and implementation in (None, "eager", "sdpa")

    def _backbone_in_sub_batches(
        self, attention_mask: torch.Tensor, sub_batches: list[dict], output_hidden_states: bool | None, **kwargs
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, None]:
        """Run each sub-batch and place its hidden states back at their rows and columns (zeros on padding)."""
        full: list[torch.Tensor] | None = None
        for sub in sub_batches:
            rows, (start, end) = sub.pop("rows"), sub.pop("span")
            hidden, all_hidden, _ = self._backbone(sub, None, output_hidden_states, False, **kwargs)
            layers = [hidden, *(all_hidden or ())]
            if full is None:
                shape = (attention_mask.shape[0], attention_mask.shape[1], hidden.shape[-1])
                full = [layer.new_zeros(shape) for layer in layers]
            index = torch.tensor(rows, device=hidden.device)
            for target, layer in zip(full, layers):
                target[index, start:end] = layer
        return full[0], (tuple(full[1:]) if output_hidden_states else None), None


# `save_pretrained` then writes `auto_map` and copies the code files next to the weights.
VLM2VecModel.register_for_auto_class("AutoModel")

__all__ = [
    "SequenceTooLongError",
    "VLM2VecModel",
    "VLM2VecModelOutput",
    "VLM2VecPreTrainedModel",
]
