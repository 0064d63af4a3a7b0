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
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_vlm2vec import VLM2VecConfig


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

    The published VLM2Vec Qwen2-VL models never emit `<|vision_start|>`, so their (transformers <= 4.5x)
    `get_rope_index` gives image tokens the same plain positions as text. Returns `(batch_size, sequence_length)`;
    Qwen2-VL broadcasts 2-D position ids to its three M-RoPE axes.
    """
    return (attention_mask.to(torch.long).cumsum(dim=-1) - 1).clamp(min=0)


class VLM2VecPreTrainedModel(PreTrainedModel):
    config_class = VLM2VecConfig
    config: VLM2VecConfig
    base_model_prefix = "vlm2vec"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["Qwen2VLDecoderLayer", "Qwen2VLVisionBlock", "Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock"]
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
    A backbone vision-language model (`self.vlm`, a stock transformers `Qwen2VLModel` / `Qwen2_5_VLModel` built from
    `config.vlm_config`) with last-token pooling. Returns a [`VLM2VecModelOutput`] whose `embeddings` are
    `(batch_size, hidden_size)`.

    Inputs are what [`VLM2VecProcessor`] produces: raw VLM2Vec prompt strings (no chat template), each
    `<|image_pad|>` expanded to the image's visual-token count.
    """

    def __init__(self, config: VLM2VecConfig):
        super().__init__(config)
        self.vlm = AutoModel.from_config(config.vlm_config)
        self.post_init()

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.vlm.get_input_embeddings()

    def set_input_embeddings(self, value: torch.nn.Module) -> None:
        self.vlm.set_input_embeddings(value)

    @classmethod
    def from_backbone(
        cls,
        backbone: str | os.PathLike | PreTrainedModel,
        *,
        pooling: str = "last",
        normalize: bool = True,
        position_ids_mode: str = "reference",
        **from_pretrained_kwargs,
    ) -> VLM2VecModel:
        """Wrap a stock Qwen2-VL / Qwen2.5-VL checkpoint (folder, Hub id or loaded model) as a VLM2Vec model.

        The backbone is loaded with its own transformers class, so legacy key layouts (`model.layers.*`,
        `visual.*`, as Hub Qwen2-VL checkpoints store them) are converted; `lm_head` is not needed and is dropped.
        `from_pretrained_kwargs` (e.g. `dtype`, `attn_implementation`, `revision`) go to that load.
        """
        if isinstance(backbone, PreTrainedModel):
            vlm = backbone.model if hasattr(backbone, "lm_head") else backbone
        else:
            vlm = AutoModel.from_pretrained(backbone, **from_pretrained_kwargs)
        config = cls.config_class(
            vlm_config=vlm.config, pooling=pooling, normalize=normalize, position_ids_mode=position_ids_mode
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
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> VLM2VecModelOutput:
        r"""
        Args:
            input_ids: `(batch_size, sequence_length)` token ids, image pads already expanded.
            attention_mask: `(batch_size, sequence_length)`; padding may be on either side.
            pixel_values: `(total_patches, channels * temporal_patch * patch * patch)` flattened patches of every
                image in the batch, in row order.
            image_grid_thw: `(num_images, 3)` patch grid (t, h, w) of each image.
            mm_token_type_ids: `(batch_size, sequence_length)`, 1 for image and 2 for video tokens. Only used when
                `config.position_ids_mode == "native"`.
            position_ids: explicit positions; if given they override `config.position_ids_mode`.
        """
        if attention_mask is None:
            reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
            attention_mask = torch.ones(reference.shape[:2], dtype=torch.long, device=reference.device)
        if position_ids is None and self.config.position_ids_mode == "reference":
            position_ids = reference_position_ids(attention_mask)
        if position_ids is not None:
            # The backbone only builds 3-D M-RoPE positions when none are given; with explicit 1-D positions it
            # does not need the multimodal token types.
            mm_token_type_ids = None

        outputs = self.vlm(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        last_hidden_state = outputs.last_hidden_state
        rows = torch.arange(last_hidden_state.shape[0], device=last_hidden_state.device)
        pooled = last_hidden_state[rows, last_token_positions(attention_mask).to(last_hidden_state.device)]
        if self.config.normalize:
            pooled = F.normalize(pooled, p=2, dim=-1)
        return VLM2VecModelOutput(
            embeddings=pooled,
            last_hidden_state=last_hidden_state,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = ["VLM2VecModel", "VLM2VecModelOutput", "VLM2VecPreTrainedModel"]
