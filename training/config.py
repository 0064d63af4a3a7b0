"""Training configuration: one dataclass, filled from a YAML file and then from command-line flags.

Field names follow the reference's arguments where they mean the same thing (`lora_r`, `lora_alpha`,
`num_sample_per_subset`, `per_device_train_batch_size`, `gc_mini_batch_size` ~ `gc_q_chunk_size`, ...).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vlm2vec_hf.training.adapters import REFERENCE_TARGET_MODULES


@dataclass
class TrainConfig:
    # What to train, on what, and where to write.
    model: str = ""  # a VLM2Vec model folder or Hub id (`vlm2vec convert` / `vlm2vec init` make one)
    data: str = ""  # MMEB-train folder or Hub dataset id
    image_dir: str = ""  # image root the data's image paths are relative to
    output_dir: str = "runs/vlm2vec"
    subsets: list[str] | None = None
    split: str = "original"
    num_sample_per_subset: int | None = None
    skip_data_check: bool = False  # the up-front image/tag check; skip only for huge remote mounts
    # Objective.
    temperature: float = 0.02
    gc_mini_batch_size: int | None = 8  # GradCache chunk; 0 / None = plain (uncached) in-batch loss
    hard_negatives: bool = False
    matryoshka_dims: list[int] | None = None
    batch_per_subset: bool = False  # every batch from one subset (IB = batch size)
    interleave_batch_size: int | None = None  # the reference's IB: batches of blocks of IB samples from one subset
    # Adapters.
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 64
    lora_dropout: float = 0.1
    lora_target_modules: str = REFERENCE_TARGET_MODULES
    use_dora: bool = True
    merge: bool = False  # after a LoRA run, also write a merged, self-contained model to <output_dir>/merged
    # Optimisation (reference V2 defaults: lr 5e-5, warmup 100, linear, 5000 steps, batch 1024 over 8 GPUs).
    per_device_train_batch_size: int = 128
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    max_steps: int = 5000
    warmup_steps: int = 100
    lr_scheduler_type: str = "linear"
    bf16: bool = False
    use_cpu: bool = False  # train on CPU even with an accelerator (always the case without one)
    gradient_checkpointing: bool = False
    seed: int = 42
    dataloader_num_workers: int = 0
    # Bookkeeping.
    save_steps: int = 500
    save_total_limit: int | None = None
    logging_steps: int = 10
    report_to: list[str] = field(default_factory=lambda: ["none"])
    eval_data: str | None = None  # MMEB-eval folder; evaluated every eval_steps
    eval_image_dir: str | None = None
    eval_steps: int | None = None
    eval_batch_size: int = 32
    resume: bool = False  # continue from the last checkpoint in output_dir
    overwrite_output_dir: bool = False  # allow a new run in an output_dir that holds an earlier run
    # Hub (the token comes from HF_TOKEN / the stored login, never from the config).
    push_to_hub: bool = False  # push <output_dir>/merged if written, else <output_dir>/final, at the end
    hub_model_id: str | None = None  # namespace/name
    hub_private: bool = False
    hub_revision: str | None = None  # branch; created from main when missing

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        values = yaml.safe_load(Path(path).read_text()) or {}
        return cls().updated(values)

    def updated(self, values: dict) -> TrainConfig:
        """A copy with `values` applied; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}")
        return dataclasses.replace(self, **values)

    def validate(self) -> None:
        for name in ("model", "data", "image_dir"):
            if not getattr(self, name):
                raise ValueError(f"`{name}` is required (YAML key or --{name.replace('_', '-')})")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.gc_mini_batch_size is not None and self.gc_mini_batch_size < 0:
            raise ValueError(f"gc_mini_batch_size must be >= 0 or null, got {self.gc_mini_batch_size}")
        if self.interleave_batch_size is not None:
            if self.batch_per_subset:
                raise ValueError("batch_per_subset and interleave_batch_size exclude each other; choose one")
            if self.interleave_batch_size <= 0 or self.per_device_train_batch_size % self.interleave_batch_size:
                raise ValueError(
                    f"interleave_batch_size {self.interleave_batch_size} must divide per_device_train_batch_size "
                    f"{self.per_device_train_batch_size}"
                )
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("push_to_hub needs hub_model_id (YAML key or --hub-model-id), e.g. your-name/vlm2vec-run")
        if self.hub_model_id is not None and self.hub_model_id.count("/") != 1:
            raise ValueError(f"hub_model_id must be namespace/name, got {self.hub_model_id!r}")
