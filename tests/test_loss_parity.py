"""The training path's loss and gradients equal the reference's (fixture loss.json: 8 pairs, right padding)."""

from __future__ import annotations

import json

import pytest
from helpers import CASES, FIXTURE, case_image, expected_forwards, recorded_forwards

from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.training.trainer import build_loss

LOSS = json.loads((FIXTURE / "loss.json").read_text())


def case_input(case_id: str):
    text, image = CASES[case_id]["text"], case_image(case_id)
    return {"image": image, "text": text} if image is not None else text


@pytest.fixture()
def train_model(fixture_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(fixture_model_dir), trust_remote_code=True, device="cpu")
    model[0].padding_side = LOSS["padding_side"]
    return model.train()


@pytest.mark.parametrize(
    "mini_batch_size,loss_key,norm_key",
    [
        (0, "loss_plain", "grad_l2_norm_plain"),
        pytest.param(1, "loss_gradcache_chunk1", "grad_l2_norm_gradcache_chunk1", marks=pytest.mark.slow),
        # no reference value of its own: the same loss as plain
        pytest.param(2, "loss_plain", "grad_l2_norm_plain", marks=pytest.mark.slow),
        pytest.param(4, "loss_gradcache_chunk4", "grad_l2_norm_gradcache_chunk4", marks=pytest.mark.slow),
    ],
)
def test_loss_and_gradient_norm_match_reference(train_model, mini_batch_size, loss_key, norm_key):
    config = TrainConfig(temperature=LOSS["temperature"], gc_mini_batch_size=mini_batch_size)
    loss_fn = build_loss(train_model, config)
    queries = train_model.preprocess([case_input(pair["query"]) for pair in LOSS["pairs"]])
    targets = train_model.preprocess([case_input(pair["target"]) for pair in LOSS["pairs"]])
    full_tokens = max(queries["input_ids"].numel(), targets["input_ids"].numel())
    train_model.zero_grad()
    with recorded_forwards(train_model) as events:
        loss = loss_fn([queries, targets], labels=None)
        loss.backward()
    # The model really saw mini-batches of the configured size (every chunk size gives the plain loss's value, so
    # the value alone cannot tell), and the largest activation built with a graph scales with the mini-batch.
    assert [(kind, rows) for kind, rows, _ in events] == expected_forwards(mini_batch_size)
    largest_graph = max(tokens for kind, _, tokens in events if kind == "graph")
    if mini_batch_size:
        assert largest_graph <= mini_batch_size * full_tokens // len(LOSS["pairs"]) < full_tokens
    else:
        assert largest_graph == full_tokens
    assert abs(loss.item() - LOSS[loss_key]) < 1e-5
    assert abs(loss.item() - LOSS["loss_plain"]) < 1e-5
    squared = sum(p.grad.double().pow(2).sum() for p in train_model.parameters() if p.grad is not None)
    norm = squared.sqrt().item()
    assert abs(norm - LOSS[norm_key]) / LOSS[norm_key] < 1e-4
    assert abs(norm - LOSS["grad_l2_norm_plain"]) / LOSS["grad_l2_norm_plain"] < 1e-4


def test_per_parameter_gradient_norms_match_reference(train_model):
    loss_fn = build_loss(train_model, TrainConfig(temperature=LOSS["temperature"], gc_mini_batch_size=4))
    queries = train_model.preprocess([case_input(pair["query"]) for pair in LOSS["pairs"]])
    targets = train_model.preprocess([case_input(pair["target"]) for pair in LOSS["pairs"]])
    train_model.zero_grad()
    loss_fn([queries, targets], labels=None).backward()
    ours = {
        name.split("vlm.", 1)[1]: p.grad.norm().item()
        for name, p in train_model.named_parameters()
        if p.grad is not None
    }
    reference = {name.replace("model.", "", 1): norm for name, norm in LOSS["grad_l2_norm_per_parameter"].items()}
    compared = 0
    for name, norm in reference.items():
        if name in ours:
            assert abs(ours[name] - norm) <= 1e-4 * max(norm, 1.0), name
            compared += 1
    assert compared == len(ours) >= 50


@pytest.mark.slow
def test_gradient_checkpointing_keeps_loss_and_gradients(train_model):
    # What the Trainer does for `gradient_checkpointing: true`: every transformers submodule recomputes activations.
    train_model.gradient_checkpointing_enable({"use_reentrant": False})
    language_model = train_model[0].model.vlm.language_model
    assert language_model.gradient_checkpointing and language_model.training
    loss_fn = build_loss(train_model, TrainConfig(temperature=LOSS["temperature"], gc_mini_batch_size=4))
    queries = train_model.preprocess([case_input(pair["query"]) for pair in LOSS["pairs"]])
    targets = train_model.preprocess([case_input(pair["target"]) for pair in LOSS["pairs"]])
    train_model.zero_grad()
    loss = loss_fn([queries, targets], labels=None)
    loss.backward()
    squared = sum(p.grad.double().pow(2).sum() for p in train_model.parameters() if p.grad is not None)
    assert abs(loss.item() - LOSS["loss_plain"]) < 1e-5
    assert abs(squared.sqrt().item() - LOSS["grad_l2_norm_plain"]) / LOSS["grad_l2_norm_plain"] < 1e-4
