"""`VLM2VecProcessor.__call__` follows the transformers processor call convention (as `Qwen2VLProcessor` does)."""

from __future__ import annotations

import pytest
import torch
from helpers import case_image

LONG_TEXT = "a sentence that is long enough to need truncation " * 4


@pytest.fixture()
def processor(auto_model_and_processor):
    _, processor = auto_model_and_processor
    previous = processor.max_length
    yield processor
    processor.max_length = previous


def test_call_time_truncation_and_max_length_are_honoured(processor):
    processor.max_length = None
    full = processor(text=[LONG_TEXT])["input_ids"]
    assert full.shape[1] > 8
    truncated = processor(text=[LONG_TEXT, "short"], truncation=True, max_length=8)
    assert truncated["input_ids"].shape == (2, 8)
    assert torch.equal(truncated["input_ids"][0], full[0, :8])


def test_instance_max_length_stays_the_default(processor):
    processor.max_length = 10
    assert processor(text=[LONG_TEXT])["input_ids"].shape[1] == 10
    assert processor(text=[LONG_TEXT], max_length=6)["input_ids"].shape[1] == 6
    untruncated = processor(text=[LONG_TEXT], truncation=False)["input_ids"].shape[1]
    assert untruncated > 10


def test_padding_strategies(processor):
    processor.max_length = None
    texts = ["one two three four five", "one"]
    longest = processor(text=texts, padding="longest")["attention_mask"]
    assert longest.shape[1] == longest.sum(dim=1).max()
    assert torch.equal(processor(text=texts, padding=True)["input_ids"], processor(text=texts)["input_ids"])
    padded = processor(text=texts, padding="max_length", max_length=16)
    assert padded["input_ids"].shape == (2, 16)
    ragged = processor(text=texts, padding=False, return_tensors=None)["input_ids"]
    assert [len(row) for row in ragged] == longest.sum(dim=1).tolist()
    by_dict = processor(text=texts, text_kwargs={"padding": "max_length", "max_length": 12})
    assert by_dict["input_ids"].shape == (2, 12)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_side_at_call_time(processor, side):
    mask = processor(text=["one two three four five", "one"], padding_side=side)["attention_mask"]
    short_row = mask[1].tolist()
    assert short_row[0 if side == "right" else -1] == 1
    assert short_row[-1 if side == "right" else 0] == 0


def test_truncating_into_image_tokens_names_the_row(processor):
    image = case_image("p01")
    texts = ["plain text", "<|image_pad|> What is in the image"]
    cut = r"^row 1: its images need \d+ image tokens but \d+ fit in max_length=8"
    with pytest.raises(ValueError, match=cut) as error:
        processor(text=texts, images=[image], truncation=True, max_length=8)
    assert error.value.row == 1


def test_unknown_keywords_are_refused(processor):
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        processor(text=["a"], foo=1)
    with pytest.raises(TypeError, match="'bar'"):
        processor(text=["a"], text_kwargs={"bar": 2})


def test_image_processor_keywords_reach_the_image_processor(processor):
    image = case_image("p01")
    small = processor(text=["<|image_pad|>"], images=[image], max_pixels=56 * 56)
    default = processor(text=["<|image_pad|>"], images=[image])
    assert int(small["image_grid_thw"].prod()) < int(default["image_grid_thw"].prod())
    assert int(small["mm_token_type_ids"].sum()) == int(small["image_grid_thw"].prod()) // 4


def test_image_only_call_is_the_image_alone_prompt(auto_model_and_processor):
    model, processor = auto_model_and_processor
    images = [case_image("p01"), case_image("p10")]
    alone = processor(images=images)
    explicit = processor(text=[processor.format_prompt(num_images=1)] * 2, images=images)
    for key in explicit:
        assert torch.equal(alone[key], explicit[key]), key
    single = processor(images=images[0])
    assert single["input_ids"].shape[0] == 1
    with torch.no_grad():
        assert torch.allclose(model(**alone).embeddings, model(**explicit).embeddings)


def test_unencodable_text_is_a_value_error_naming_the_row(processor):
    with pytest.raises(ValueError, match=r"^row 1: text cannot be encoded") as error:
        processor(text=["fine", "lone surrogate \ud800 here"])
    assert error.value.row == 1


def test_unencodable_text_names_the_input_in_encode(sentence_model):
    with pytest.raises(ValueError, match=r"^Input 'lone \\ud800': text cannot be encoded"):
        sentence_model.encode(["fine", "lone \ud800"])
