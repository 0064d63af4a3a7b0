"""Long inputs: rows over the backbone's position limit are refused by name, and a padded batch costs memory in
proportion to its real tokens (a long row does not give every short row a (seq, seq) mask)."""

from __future__ import annotations

import pytest
import torch
from helpers import TOLERANCE, case_image

# Tokenises to about 2 tokens per repeat with the tiny tokenizer: well over SPLIT_MIN_LENGTH.
LONG = "word " * 600


@pytest.fixture()
def unbounded(sentence_model):
    previous = sentence_model.max_seq_length
    sentence_model.max_seq_length = None
    yield sentence_model
    sentence_model.max_seq_length = previous


def _position_limit(model) -> int:
    return model.config.vlm_config.get_text_config().max_position_embeddings


def test_text_over_the_position_limit_is_an_error_naming_the_input(unbounded):
    limit = _position_limit(unbounded[0].model)
    too_long = "word " * limit  # more tokens than positions
    with pytest.raises(
        ValueError,
        match=rf"^Input 'word word .*\.\.\.: \d+ tokens, over the backbone's limit of {limit}",
    ):
        unbounded.encode(["a short text", too_long])


def test_max_seq_length_truncates_instead(unbounded):
    limit = _position_limit(unbounded[0].model)
    unbounded.max_seq_length = 64
    embeddings = unbounded.encode(["a short text", "word " * limit], convert_to_tensor=True)
    assert embeddings.shape[0] == 2 and torch.isfinite(embeddings).all()


def test_auto_model_names_the_row_over_the_limit(auto_model_and_processor):
    model, _ = auto_model_and_processor
    limit = _position_limit(model)
    input_ids = torch.ones((2, limit + 1), dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, : limit // 2] = 0
    with pytest.raises(
        ValueError, match=rf"^row 1: {limit + 1} tokens, over the backbone's limit of {limit} positions"
    ):
        model(input_ids=input_ids, attention_mask=attention_mask)


class MaskSpy:
    """Records the attention mask (shape, and whether it has padding) of every backbone call."""

    def __init__(self, model):
        self.calls: list[tuple[tuple[int, ...], bool]] = []
        self.handle = model.vlm.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        mask = kwargs["attention_mask"]
        self.calls.append((tuple(mask.shape), bool((mask == 0).any())))

    def remove(self):
        self.handle.remove()


def _encode_with_spy(sentence_model, inputs, **kwargs):
    spy = MaskSpy(sentence_model[0].model)
    try:
        embeddings = sentence_model.encode(inputs, convert_to_tensor=True, batch_size=len(inputs), **kwargs)
    finally:
        spy.remove()
    return embeddings, spy.calls


def _one_by_one(sentence_model, inputs, **kwargs):
    return torch.stack([sentence_model.encode(item, convert_to_tensor=True, **kwargs) for item in inputs])


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_a_long_row_runs_apart_from_short_rows(unbounded, padding_side):
    inputs = ["a short text", LONG, "another short one", {"image": case_image("p01"), "text": "What is this?"}]
    unbounded[0].padding_side = padding_side
    try:
        embeddings, calls = _encode_with_spy(unbounded, inputs)
        expected = _one_by_one(unbounded, inputs)
    finally:
        unbounded[0].padding_side = None
    assert (embeddings - expected).abs().max() < TOLERANCE
    long_calls = [shape for shape, padded in calls if shape[1] > 512]
    assert long_calls == [(1, long_calls[0][1])], calls  # the long row alone, so no padding mask at all
    assert all(shape[1] < 512 for shape, _ in calls if shape[0] > 1), calls


def test_turning_the_split_off_pads_every_row_to_the_longest(unbounded):
    model = unbounded[0].model
    model.config.split_padded_batches = False
    try:
        embeddings, calls = _encode_with_spy(unbounded, ["a short text", LONG])
    finally:
        model.config.split_padded_batches = True
    assert len(calls) == 1 and calls[0][0][0] == 2 and calls[0][1]
    assert (embeddings - _one_by_one(unbounded, ["a short text", LONG])).abs().max() < TOLERANCE


@pytest.mark.slow
def test_split_keeps_gradients_and_hidden_states(auto_model_and_processor):
    model, processor = auto_model_and_processor
    inputs = processor(text=[LONG, "<|image_pad|> a photo", "short"], images=[case_image("p01")], max_length=None)
    model.train()
    try:
        output = model(**inputs, output_hidden_states=True)
        output.embeddings.sum().backward()
    finally:
        model.eval()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    visual = [p.grad for name, p in model.named_parameters() if "visual" in name and p.grad is not None]
    assert visual, "the image row's sub-batch must reach the vision tower"
    model.zero_grad(set_to_none=True)
    assert output.last_hidden_state.shape[:2] == inputs["input_ids"].shape
    assert len(output.hidden_states) == model.config.vlm_config.get_text_config().num_hidden_layers + 1
    with torch.no_grad():
        unsplit = model.__class__.forward
        model.config.split_padded_batches = False
        try:
            reference = unsplit(model, **inputs)
        finally:
            model.config.split_padded_batches = True
    assert (output.embeddings.detach() - reference.embeddings).abs().max() < TOLERANCE
    real = inputs["attention_mask"].bool()
    assert (output.last_hidden_state.detach()[real] - reference.last_hidden_state[real]).abs().max() < 1e-4
