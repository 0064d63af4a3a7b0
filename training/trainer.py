"""VLM2Vec contrastive training on `SentenceTransformerTrainer`.

The objective is the reference's: InfoNCE over in-batch negatives, query -> target only, logit scale
1 / temperature (50 for 0.02), with GradCache (`CachedMultipleNegativesRankingLoss`) so the batch size is not bound
by memory, and the in-batch negatives gathered across processes under DDP so the softmax runs over the global batch.
Unlike the reference, hard negatives can be used (`hard_negatives`) and Matryoshka dimensions trained.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import datasets
import torch
from accelerate.utils import extract_model_from_parallel
from huggingface_hub import get_token
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
)
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from torch import nn
from transformers import TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from vlm2vec_hf.hub_cards.card import write_model_card
from vlm2vec_hf.hub_cards.push import push_model_folder
from vlm2vec_hf.modeling_vlm2vec.backbones import family_of
from vlm2vec_hf.training.adapters import merge_adapter_folder, reference_lora_config
from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.training.data import combine, load_mmeb_train
from vlm2vec_hf.training.sampler import interleaved_sampler

logger = logging.getLogger(__name__)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def build_loss(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    """In-batch InfoNCE with scale 1/temperature; cached (GradCache) unless `gc_mini_batch_size` is 0 / None."""
    gather = world_size() > 1
    scale = 1.0 / config.temperature
    if not config.gc_mini_batch_size:
        loss = MultipleNegativesRankingLoss(model, scale=scale, gather_across_devices=gather)
    else:
        loss = CachedMultipleNegativesRankingLoss(
            model, scale=scale, mini_batch_size=config.gc_mini_batch_size, gather_across_devices=gather
        )
    if config.matryoshka_dims:
        loss = MatryoshkaLoss(model, loss, matryoshka_dims=config.matryoshka_dims)
    return loss


def load_model(config: TrainConfig) -> SentenceTransformer:
    model = SentenceTransformer(config.model, trust_remote_code=True)
    if config.lora:
        # The registry's family of the folder's backbone (also for folders written before families existed).
        vlm2vec_config = model[0].model.config
        family = family_of(vlm2vec_config.vlm_config, getattr(vlm2vec_config, "backbone_family", None))
        model.add_adapter(
            reference_lora_config(
                family,
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=config.lora_target_modules,
                use_dora=config.use_dora,
            )
        )
    return model


def load_train_dataset(config: TrainConfig, video_input: bool = True) -> datasets.Dataset | datasets.DatasetDict:
    subsets = load_mmeb_train(
        config.data,
        config.image_dir,
        subsets=config.subsets,
        split=config.split,
        max_per_subset=config.num_sample_per_subset,
        hard_negatives=config.hard_negatives,
        check=not config.skip_data_check,
        video_root=config.video_dir or None,
        video_input=video_input,
    )
    per_subset = config.batch_per_subset or config.interleave_batch_size
    return datasets.DatasetDict(subsets) if per_subset else combine(subsets, seed=config.seed)


def build_evaluator(config: TrainConfig):
    """The in-training MMEB evaluator (None without `eval_data`); its prompts keep MMEB's `<|image_1|>` /
    `<|video_1|>` tags, which the model's processor maps to its own tokens (as in `vlm2vec eval`)."""
    if not config.eval_data:
        return None
    from vlm2vec_hf.evaluation.data import load_mmeb_eval
    from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator

    image_root = config.eval_image_dir or config.image_dir
    eval_sets = load_mmeb_eval(config.eval_data, image_root)
    return MMEBEvaluator(eval_sets, batch_size=config.eval_batch_size, protocol=config.eval_protocol)


def no_accelerator() -> bool:
    return not (torch.cuda.is_available() or torch.backends.mps.is_available())


def training_arguments(config: TrainConfig, evaluate: bool) -> SentenceTransformerTrainingArguments:
    return SentenceTransformerTrainingArguments(
        # Without `use_cpu`, a torchrun launch on a CPU-only machine silently trains unsharded copies (accelerate
        # sees no distributed setup), so CPU runs always declare it.
        use_cpu=config.use_cpu or no_accelerator(),
        output_dir=config.output_dir,
        per_device_train_batch_size=config.per_device_train_batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        dataloader_num_workers=config.dataloader_num_workers,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        report_to=config.report_to,
        eval_strategy="steps" if evaluate else "no",
        eval_on_start=evaluate,
        eval_steps=config.eval_steps if evaluate else None,
        multi_dataset_batch_sampler=(
            interleaved_sampler(config.interleave_batch_size) if config.interleave_batch_size else "proportional"
        ),
        # A text-only (mini-)batch leaves the vision tower without gradients, which DDP must be told to expect.
        ddp_find_unused_parameters=True,
    )


class PlainForwardAfterTraining(TrainerCallback):
    """With mixed precision, accelerate wraps the model's `forward` in autocast (and fp32 output conversion) when
    training starts and leaves it so; at the end of training this restores the plain forward, so the trained model
    embeds in fp32, as the saved folder does."""

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            extract_model_from_parallel(model, keep_fp32_wrapper=False)


def build_trainer(config: TrainConfig, callbacks: list[TrainerCallback] | None = None) -> SentenceTransformerTrainer:
    """Model, data, loss and arguments from `config`, assembled into a `SentenceTransformerTrainer`."""
    config.validate()
    set_seed(config.seed)  # adapter initialisation draws random numbers before the Trainer seeds anything
    model = load_model(config)
    video_input = getattr(model[0].processor, "video_token", None) is not None  # None: a family without video input
    train_dataset = load_train_dataset(config, video_input=video_input)
    evaluator = build_evaluator(config)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_arguments(config, evaluate=evaluator is not None),
        train_dataset=train_dataset,
        loss=build_loss(model, config),
        evaluator=evaluator,
        callbacks=[*(callbacks or []), PlainForwardAfterTraining()],
    )
    drop_missing_images_from_card_examples(model)
    return trainer


def drop_missing_images_from_card_examples(model: SentenceTransformer) -> None:
    """Text-only rows are `{"text": ..., "image": None}`; sentence-transformers' card would try to save the None as
    an image asset (and log a warning per checkpoint). Keep only the parts each example has."""
    examples = getattr(model.model_card_data, "usage_examples", None)
    if examples:
        model.model_card_data.usage_examples = [
            {k: v for k, v in example.items() if v is not None} if isinstance(example, dict) else example
            for example in examples
        ]


def earlier_run(output_dir: str) -> list[str]:
    """The checkpoint / final / merged folders an earlier run left in `output_dir` (names, sorted)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    run_folders = ("checkpoint-", "final", "merged")
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith(run_folders))


def train(config: TrainConfig, callbacks: list[TrainerCallback] | None = None) -> Path:
    """Train; returns the final model folder (`<output_dir>/final`; LoRA runs also `<output_dir>/merged` with
    `merge`). With `resume`, training continues from the last checkpoint in `output_dir`. With `push_to_hub`, the
    main process then pushes the merged folder (else the final one) to `hub_model_id`."""
    checkpoint = None
    earlier = earlier_run(config.output_dir)
    if earlier and not (config.resume or config.overwrite_output_dir):
        raise FileExistsError(
            f"{config.output_dir} already holds a run ({', '.join(earlier)}); pass --resume to continue it, "
            "--overwrite-output-dir to start over there, or choose another output_dir"
        )
    if config.resume:
        checkpoint = get_last_checkpoint(config.output_dir) if Path(config.output_dir).is_dir() else None
        if checkpoint is None:
            raise FileNotFoundError(f"--resume: no checkpoint-* folder in {config.output_dir}")
    if config.push_to_hub and get_token() is None:  # fail now, not after hours of training
        raise ValueError("push_to_hub: no Hub token; set HF_TOKEN or run `hf auth login` before training")
    trainer = build_trainer(config, callbacks)
    trainer.train(resume_from_checkpoint=checkpoint)
    final = Path(config.output_dir) / "final"
    trainer.save_model(str(final))
    merged = Path(config.output_dir) / "merged"
    if config.lora and config.merge and trainer.is_world_process_zero():
        merge_adapter_folder(final, merged, overwrite=True)
    if config.push_to_hub and trainer.is_world_process_zero():
        push_run(config, merged if config.lora and config.merge else final)
    return final


def push_run(config: TrainConfig, folder: Path) -> str:
    """Write the model card into `folder` and push it to `hub_model_id`."""
    write_model_card(folder, repo_id=config.hub_model_id, train_config=dataclasses.asdict(config))
    commit_url = push_model_folder(
        folder, config.hub_model_id, private=config.hub_private, revision=config.hub_revision
    )
    logger.info("pushed %s to %s", folder, commit_url)
    return commit_url
