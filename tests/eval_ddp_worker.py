"""Run under `torchrun --nproc_per_node 2` by test_eval_distributed.py (`eval_ddp_worker.py MODEL DATA EVAL OUT`):
builds the project's trainer with an MMEB evaluator, evaluates once (sentence-transformers runs the evaluator on rank
0 and shares out its `encode` calls), and records per rank the inputs this process encoded and the metrics."""

from __future__ import annotations

import json
import os
import sys

from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.training.trainer import build_trainer


def main() -> None:
    model_dir, data_dir, eval_dir, out_dir = sys.argv[1:5]
    rank = int(os.environ["RANK"])
    config = TrainConfig(
        model=model_dir,
        data=f"{data_dir}/train",
        image_dir=f"{data_dir}/images",
        eval_data=eval_dir,
        output_dir=f"{out_dir}/run",
        subsets=["Digits"],
        num_sample_per_subset=8,
        per_device_train_batch_size=4,
        max_steps=1,
    )
    trainer = build_trainer(config)
    model = trainer.model
    encoded: list[str] = []
    inference = model._inference

    def counting_inference(inputs, **kwargs):
        encoded.extend(json.dumps(one, sort_keys=True) for one in inputs)  # what this process ran the model on
        return inference(inputs, **kwargs)

    model._inference = counting_inference
    metrics = trainer.evaluate()
    results = trainer.evaluator.results if rank == 0 else None
    with open(f"{out_dir}/rank{rank}.json", "w") as handle:
        json.dump({"encoded": encoded, "metrics": metrics, "results": results}, handle)


if __name__ == "__main__":
    main()
