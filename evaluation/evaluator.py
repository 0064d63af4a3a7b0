"""`MMEBEvaluator`: MMEB hit@1 as a sentence-transformers evaluator (usable inside `SentenceTransformerTrainer`)."""

from __future__ import annotations

import numpy as np
from sentence_transformers.base.evaluation import BaseEvaluator

from vlm2vec_hf.evaluation.data import EvalDataset, Item
from vlm2vec_hf.evaluation.metrics import hit_at_1_gold_first


def encoder_input(item: Item):
    """An `encode()` input for an MMEB item: a text, or `{"text", "image"}` (the text may hold the image token)."""
    text, image = item
    if not image:
        return text
    return {"text": text, "image": image} if text else {"image": image}


class MMEBEvaluator(BaseEvaluator):
    """Hit@1 per dataset (cosine, argmax, ties to the gold candidate) and their unweighted mean.

    Every distinct (text, image) item of all datasets is encoded once.

    Args:
        datasets: from `vlm2vec_hf.evaluation.data.load_mmeb_eval`.
        batch_size: encoding batch size.
        name: metric prefix.
    """

    def __init__(self, datasets: list[EvalDataset], batch_size: int = 32, name: str = "mmeb"):
        super().__init__()
        self.datasets = datasets
        self.batch_size = batch_size
        self.name = name
        self.primary_metric = "hit@1"
        self.greater_is_better = True

    def unique_items(self) -> list[Item]:
        items: dict[Item, None] = {}
        for dataset in self.datasets:
            items.update(dict.fromkeys(dataset.queries))
            for row in dataset.candidates:
                items.update(dict.fromkeys(row))
        return list(items)

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        items = self.unique_items()
        embeddings = model.encode(
            [encoder_input(item) for item in items],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        index = {item: position for position, item in enumerate(items)}
        metrics = {}
        for dataset in self.datasets:
            hits = [
                hit_at_1_gold_first(embeddings[[index[c] for c in candidates]] @ embeddings[index[query]])
                for query, candidates in zip(dataset.queries, dataset.candidates)
            ]
            metrics[f"{dataset.name}_hit@1"] = float(np.mean(hits))
        metrics["hit@1"] = float(np.mean([metrics[f"{d.name}_hit@1"] for d in self.datasets]))
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
