"""What the objective options do to the training loss, checked against the InfoNCE formula computed by hand.

One batch of the mini-MMEB set, drawn by the trainer's own dataloader (so collated the way training collates it),
and the loss objects `build_loss` makes for the trainer: hard negatives must enter the softmax denominator, and
every Matryoshka dimension must add its own InfoNCE term on truncated, renormalised embeddings.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.training.trainer import build_loss, build_trainer

BATCH = 8
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def hard_negative_batch(tiny_random_model_dir, mini_mmeb, tmp_path_factory):
    """(trainer, config, features of query / positive / negative, their embeddings) for one training batch."""
    config = TrainConfig(
        model=str(tiny_random_model_dir),
        data=str(mini_mmeb / "train"),
        image_dir=str(mini_mmeb / "images"),
        output_dir=str(tmp_path_factory.mktemp("effects") / "run"),
        num_sample_per_subset=8,
        per_device_train_batch_size=BATCH,
        gc_mini_batch_size=4,  # the loss embeds each column in two chunks; the hand computation in one go
        hard_negatives=True,
        max_steps=1,
    )
    trainer = build_trainer(config)
    trainer.model.eval()  # no dropout draws: the loss and the hand computation see the same embeddings
    batch = next(iter(trainer.get_train_dataloader()))
    assert trainer.train_dataset.column_names == ["query", "positive", "negative"]
    features, labels = trainer.collect_features(batch)
    assert labels is None
    assert len(features) == 3, f"{len(features)} columns reach the loss"  # query, positive and the hard negative
    with torch.no_grad():
        embeddings = [trainer.model(dict(feature))["sentence_embedding"].double() for feature in features]
    assert all(e.shape == (BATCH, trainer.model.get_embedding_dimension()) for e in embeddings)
    return trainer, config, features, embeddings


def infonce(query: torch.Tensor, *documents: torch.Tensor, scale: float) -> float:
    """mean_i -log softmax_j(scale * cos(q_i, d_j) over every column's rows j) at d = positive, j = i."""
    query = F.normalize(query, dim=-1)
    logits = scale * torch.cat([query @ F.normalize(d, dim=-1).T for d in documents], dim=1)
    rows = torch.arange(len(query))
    return (torch.logsumexp(logits, dim=1) - logits[rows, rows]).mean().item()


def loss_value(loss_fn, features) -> float:
    with torch.no_grad():
        return loss_fn([dict(feature) for feature in features], labels=None).item()


def test_hard_negatives_enter_the_infonce_denominator(hard_negative_batch):
    trainer, config, features, (query, positive, negative) = hard_negative_batch
    scale = 1 / config.temperature
    assert trainer.loss.scale == pytest.approx(scale)
    with_negatives = infonce(query, positive, negative, scale=scale)
    in_batch_only = infonce(query, positive, scale=scale)
    assert with_negatives > in_batch_only + 0.01  # 8 more logits per row in the denominator: the loss can only grow

    assert loss_value(trainer.loss, features) == pytest.approx(with_negatives, abs=TOLERANCE)
    assert loss_value(trainer.loss, features[:2]) == pytest.approx(in_batch_only, abs=TOLERANCE)


def test_matryoshka_loss_is_the_sum_of_every_dimensions_infonce(hard_negative_batch):
    trainer, config, features, embeddings = hard_negative_batch
    dims = [trainer.model.get_embedding_dimension(), 32, 16]
    loss_fn = build_loss(trainer.model, dataclasses.replace(config, matryoshka_dims=dims))
    scale = 1 / config.temperature
    per_dim = {dim: infonce(*(e[:, :dim] for e in embeddings), scale=scale) for dim in dims}
    # each truncation gives its own term (so dropping any dimension would change the sum by about 2.8)
    assert len({round(value, 3) for value in per_dim.values()}) == len(dims)
    assert loss_value(loss_fn, features) == pytest.approx(sum(per_dim.values()), abs=TOLERANCE * len(dims))
