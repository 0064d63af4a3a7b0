"""Run under `torchrun --nproc_per_node 2` by test_ddp.py (`ddp_worker.py MODEL DATA OUT STEPS`): trains with the
project's trainer on CPU (gloo) and records, per rank, the similarity-matrix shapes the loss saw, the rows and media
of each batch the model embedded, and the final weights."""

from __future__ import annotations

import json
import os
import sys

import torch

from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.training.trainer import build_trainer


def main() -> None:
    model_dir, data_dir, out_dir, steps = sys.argv[1:5]
    rank = int(os.environ["RANK"])
    config = TrainConfig(
        model=model_dir,
        data=f"{data_dir}/train",
        image_dir=f"{data_dir}/images",
        output_dir=f"{out_dir}/run",
        subsets=["Digits", "Photos_i2t"],
        num_sample_per_subset=48,
        per_device_train_batch_size=4,
        gc_mini_batch_size=2,
        learning_rate=1e-3,
        max_steps=int(steps),
        warmup_steps=0,
        save_steps=1000,
        seed=11,
    )
    trainer = build_trainer(config)
    shapes = []
    similarity = trainer.loss.similarity_fct

    def recording_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # (queries, documents, sum of query embeddings, sum of document embeddings) of each scored block
        shapes.append([a.shape[0], b.shape[0], float(a.sum()), float(b.sum())])
        return similarity(a, b)

    trainer.loss.similarity_fct = recording_similarity
    embedded = []
    transformer = trainer.model[0]
    family = transformer.model.family
    # The inputs that carry images / videos item by item (not the per-token type ids, which every row has).
    media_keys = [key for key in family.media_input_keys if key not in family.token_type_input_keys]

    def record_embedded(module, args) -> None:
        # (rows, images of those rows, {media input: its first dimension}) of each (mini-)batch embedded with a
        # graph: GradCache's second pass, whose gradients reach the weights (its first pass cuts the same way;
        # forwards without autograd after training, such as the model card's examples, are not training batches).
        if not torch.is_grad_enabled():
            return
        features = args[0]
        media = {key: features[key].shape[0] for key in media_keys if key in features}
        embedded.append([features["input_ids"].shape[0], int(features["num_images_per_sample"].sum()), media])

    transformer.register_forward_pre_hook(record_embedded)
    trainer.train()
    state = {name: tensor.detach().cpu() for name, tensor in trainer.model.state_dict().items()}
    torch.save(state, f"{out_dir}/rank{rank}.pt")
    with open(f"{out_dir}/rank{rank}.json", "w") as handle:
        json.dump(
            {
                "shapes": shapes,
                "embedded": embedded,
                "world_size": int(os.environ["WORLD_SIZE"]),
                "gather": trainer.loss.gather_across_devices,
                "steps": trainer.state.global_step,
                "model_type": trainer.model[0].model.config.vlm_config.model_type,
            },
            handle,
        )


if __name__ == "__main__":
    main()
