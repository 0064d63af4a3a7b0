"""LoRA / DoRA adapters as the reference VLM2Vec configures them, and merging a trained adapter into a full model.

Reference (REFERENCE.md section 1.5): peft `LoraConfig(r, lora_alpha, lora_dropout, target_modules,
init_lora_weights="gaussian", use_dora=True)`; defaults r=16, alpha=64, dropout=0.1 and the `main` target list,
which on Qwen2-VL adapts the LLM's q/k/v/o/gate/up/down projections and nothing in the vision tower. Bare module
names would also reach Qwen2.5-VL's vision MLP, so the targets are a regex scoped to `language_model`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from peft import LoraConfig

from vlm2vec_hf.compat import check_peft_compatible
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

# The reference `main` defaults, as the registry's default family lists them.
REFERENCE_TARGET_MODULES = ",".join(get_family().lora_target_modules)


def language_model_regex(target_modules: str | list[str], scopes: Sequence[str] = ("language_model",)) -> str:
    """A peft `target_modules` regex matching these module names inside `scopes` only: the LLM by default (never
    the vision tower); a backbone family may add its own (Phi-3.5-V: the CLIP tower, as the v1 reference does)."""
    names = target_modules.split(",") if isinstance(target_modules, str) else list(target_modules)
    names = sorted({name.strip() for name in names if name.strip()})
    within = "|".join(re.escape(scope) for scope in scopes)
    prefix = rf"(?:{within})" if len(scopes) > 1 else within
    return rf".*{prefix}\..*\.({'|'.join(names)})$"


def reference_lora_config(
    r: int = 16,
    lora_alpha: int = 64,
    lora_dropout: float = 0.1,
    target_modules: str | list[str] = REFERENCE_TARGET_MODULES,
    use_dora: bool = True,
    scopes: Sequence[str] = ("language_model",),
) -> LoraConfig:
    """The reference's adapter configuration (DoRA, gaussian init), targets scoped to the language model.

    Every adapter the project attaches (`model.add_adapter(reference_lora_config(...))`) is built here, so this
    first checks that the installed peft is new enough for transformers' `add_adapter` (one clear error instead
    of a failure deep inside training). `scopes`: the backbone family's `lora_module_scopes`.
    """
    check_peft_compatible()
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
    adapter_dir = Path(adapter_dir)
    adapter = read_adapter(adapter_dir)  # fails fast, before the base model loads
    config = LoraConfig.from_pretrained(str(adapter_dir))
    model = AutoModel.from_pretrained(base or config.base_model_name_or_path, trust_remote_code=True)
    merge_adapter_into_model(model, adapter, TRAINING_KEY_MAPPING)
    processor = AutoProcessor.from_pretrained(adapter_dir, trust_remote_code=True)
    prompts = json.loads((adapter_dir / "config_sentence_transformers.json").read_text()).get("prompts")
    return write_model_folder(model, processor, out_dir, prompts=prompts, overwrite=overwrite)
