"""LoRA / DoRA adapters as the reference VLM2Vec configures them, and merging a trained adapter into a full model.

Reference (REFERENCE.md section 1.5): peft `LoraConfig(r, lora_alpha, lora_dropout, target_modules,
init_lora_weights="gaussian", use_dora=True)`; defaults r=16, alpha=64, dropout=0.1 and the backbone family's
reference target list (`lora_target_modules`). Bare module names could also reach a vision tower's MLP, so the
targets are a regex scoped to the family's `lora_module_scopes` (the language model, unless the reference adapted
the tower too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vlm2vec_hf.compat import check_peft_compatible
from vlm2vec_hf.modeling_vlm2vec.backbone_common import BackboneFamily

if TYPE_CHECKING:  # peft (and torch) load when an adapter is built or merged: `TrainConfig` imports this module
    from peft import LoraConfig


def language_model_regex(target_modules: str | list[str], scopes: Sequence[str] = ("language_model",)) -> str:
    """A peft `target_modules` regex matching these module names inside `scopes` only: the LLM by default (never
    the vision tower); a backbone family may add its own (a tower the reference adapted too)."""
    names = target_modules.split(",") if isinstance(target_modules, str) else list(target_modules)
    names = sorted({name.strip() for name in names if name.strip()})
    within = "|".join(re.escape(scope) for scope in scopes)
    prefix = rf"(?:{within})" if len(scopes) > 1 else within
    return rf".*{prefix}\..*\.({'|'.join(names)})$"


def reference_lora_config(
    family: BackboneFamily,
    r: int = 16,
    lora_alpha: int = 64,
    lora_dropout: float = 0.1,
    target_modules: str | list[str] | None = None,
    use_dora: bool = True,
) -> LoraConfig:
    """The reference's adapter configuration (DoRA, gaussian init) for a `family` backbone: `target_modules` (None:
    the family's `lora_target_modules`) scoped to the family's `lora_module_scopes`.

    Every adapter the project attaches (`model.add_adapter(reference_lora_config(...))`) is built here, so this
    first checks that the installed peft is new enough for transformers' `add_adapter` (one clear error instead
    of a failure deep inside training).
    """
    scopes = family.lora_module_scopes
    target_modules = target_modules or list(family.lora_target_modules)
    check_peft_compatible()
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=language_model_regex(target_modules, scopes),
        init_lora_weights="gaussian",
        use_dora=use_dora,
    )


def merge_adapter_folder(
    adapter_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    base: str | os.PathLike | None = None,
) -> Path:
    """Merge a LoRA / DoRA checkpoint folder (as `vlm2vec train --lora` writes it) into a self-contained model folder.

    The base VLM2Vec model (`base`, default: the one named in `adapter_config.json`) is loaded and the adapter merged
    by the one merge path (`merge_adapter_into_model`: peft's `PeftModel`, then `merge_and_unload`), and the plain
    `VLM2VecModel` written with the folder's processor and prompts. The merged model has no PEFT key renamings left
    to revert, so it reloads with the merged weights.
    """
    import json

    from transformers import AutoModel, AutoProcessor

    from vlm2vec_hf.hub_cards.adapter_conversion import TRAINING_KEY_MAPPING, merge_adapter_into_model, read_adapter
    from vlm2vec_hf.model_folder import write_model_folder

    check_peft_compatible()  # before anything loads
    from peft import LoraConfig

    adapter_dir = Path(adapter_dir)
    adapter = read_adapter(adapter_dir)  # fails fast, before the base model loads
    config = LoraConfig.from_pretrained(str(adapter_dir))
    model = AutoModel.from_pretrained(base or config.base_model_name_or_path, trust_remote_code=True)
    merge_adapter_into_model(model, adapter, TRAINING_KEY_MAPPING)
    processor = AutoProcessor.from_pretrained(adapter_dir, trust_remote_code=True)
    prompts = json.loads((adapter_dir / "config_sentence_transformers.json").read_text()).get("prompts")
    return write_model_folder(model, processor, out_dir, prompts=prompts, overwrite=overwrite)
