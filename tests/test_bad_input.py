"""Bad input gives a clear error naming the input; odd images are converted or bounded as documented."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from helpers import case_image, case_image_path
from PIL import Image

from vlm2vec_hf.st_module.vlm2vec_st import _describe

IMAGE_INSTRUCTION = "Represent the given image."


def encode(model, inputs, **kwargs):
    return torch.as_tensor(model.encode(inputs, **kwargs))


@pytest.fixture()
def photo() -> Image.Image:
    return case_image("p01").convert("RGB")


def test_missing_file_names_the_input(sentence_model, tmp_path):
    missing = str(tmp_path / "nope.png")
    with pytest.raises(ValueError, match=r"^Input '.*nope\.png': .*does not exist"):
        sentence_model.encode(["a cat", missing, "a dog"])


def test_a_long_path_is_named_by_its_file_name(sentence_model, tmp_path):
    deep = tmp_path.joinpath(*(["a-long-folder-name"] * 8))
    deep.mkdir(parents=True)
    with pytest.raises(ValueError, match=r"^Input '\.\.\..*/missing-photo\.png'"):
        sentence_model.encode([str(deep / "missing-photo.png")])


def test_unreadable_and_corrupt_files(sentence_model, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is text, not a PNG")
    with pytest.raises(ValueError, match=r"Input '.*notes\.png' .*not a readable image"):
        sentence_model.encode([str(not_an_image)])
    truncated = tmp_path / "truncated.png"
    data = open(case_image_path("p01"), "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"Input \{'image': '.*truncated\.png'.*corrupt or truncated"):
        sentence_model.encode(["a", "b", {"image": str(truncated), "text": "question"}])


@pytest.mark.parametrize(
    "bad,message",
    [
        ("", "empty string"),
        (None, "is None"),
        (42, "unsupported type int"),
        ({"text": 3}, "not a string"),
        ({"caption": "x"}, "unsupported keys"),
        ({"text": None}, "neither text nor image"),
        ({"role": "assistant", "content": "hi"}, "role 'assistant'"),
        ([{"role": "user", "content": [{"type": "audio", "audio": "x.wav"}]}], "unsupported user message part"),
        ({"image": 3.5}, "unsupported type float"),
    ],
)
def test_invalid_values_are_named_by_value(sentence_model, bad, message):
    inputs = ["a long enough first sentence so that sorting by length moves things around", "b", "cc", bad]
    named = rf"^Input {re.escape(_describe(bad))}: .*{message}"
    with pytest.raises(ValueError, match=named):
        sentence_model.encode(inputs, batch_size=2)


def test_errors_are_built_without_inspecting_the_callers_frames(sentence_model, monkeypatch):
    """The error naming a bad input is built from the module's own data, never by reading sentence-transformers'
    stack frames (private locals): here any frame lookup made from the ST module fails, and the error still names
    the input."""
    real_getframe = sys._getframe

    def guarded_getframe(depth: int = 0):
        callers = {real_getframe(level).f_globals.get("__name__", "").rsplit(".", 1)[-1] for level in (1, 2)}
        if "vlm2vec_st" in callers:  # directly, or through inspect.currentframe / inspect.stack
            raise AssertionError("vlm2vec_st looked up a stack frame")
        return real_getframe(depth + 1)

    monkeypatch.setattr(sys, "_getframe", guarded_getframe)
    with pytest.raises(ValueError, match=r"^Input \{'caption': 'x'\}: .*unsupported keys"):
        sentence_model.encode(["a first sentence", "b", {"caption": "x"}], batch_size=2)


def test_image_under_28_px_is_resized_like_the_reference(sentence_model):
    tiny = case_image("p10")  # 20 x 36
    assert min(tiny.size) < 28
    direct = encode(sentence_model, tiny, prompt=IMAGE_INSTRUCTION)
    pre_resized = encode(sentence_model, tiny.resize((56, 56)).convert("RGB"), prompt=IMAGE_INSTRUCTION)
    assert (direct - pre_resized).abs().max() < 1e-6


def test_extreme_aspect_ratio_is_a_clear_error(sentence_model):
    strip = Image.new("RGB", (28 * 220, 28), (120, 30, 200))
    with pytest.raises(ValueError, match=r"Input <PIL.Image.Image .*size=6160x28.*rejected by the image processor"):
        sentence_model.encode(["ok", strip])


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1"])
def test_non_rgb_modes_are_converted_with_pil_convert(sentence_model, photo, mode):
    image = photo.convert(mode)
    embedding = encode(sentence_model, image, prompt=IMAGE_INSTRUCTION)
    as_rgb = encode(sentence_model, image.convert("RGB"), prompt=IMAGE_INSTRUCTION)
    assert torch.isfinite(embedding).all()
    assert (embedding - as_rgb).abs().max() < 1e-6


def test_rgba_drops_alpha_instead_of_compositing_on_white(sentence_model, photo):
    rgba = photo.convert("RGBA")
    alpha = np.zeros((rgba.height, rgba.width), dtype=np.uint8)
    alpha[:, : rgba.width // 2] = 255
    rgba.putalpha(Image.fromarray(alpha))
    embedding = encode(sentence_model, rgba)
    dropped = encode(sentence_model, photo)
    composited = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    assert (embedding - dropped).abs().max() < 1e-6
    assert (embedding - encode(sentence_model, composited)).abs().max() > 1e-3


def test_16_bit_images_are_scaled_not_clipped(sentence_model, tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    embedding = encode(sentence_model, str(path))
    eight_bit = Image.fromarray(np.clip(np.rint(ramp / 257.0), 0, 255).astype(np.uint8)).convert("RGB")
    assert (embedding - encode(sentence_model, eight_bit)).abs().max() < 1e-6
    clipped_white = encode(sentence_model, Image.open(path).convert("RGB"))
    assert (embedding - clipped_white).abs().max() > 1e-3


def test_huge_image_is_bounded_by_max_pixels(auto_model_and_processor):
    _, processor = auto_model_and_processor
    huge = Image.new("RGB", (4000, 3000), (10, 120, 200))
    previous, processor.max_length = processor.max_length, None
    try:
        grid = processor(text=["<|image_pad|>"], images=[huge])["image_grid_thw"][0]
    finally:
        processor.max_length = previous
    assert int(grid.prod()) * 14 * 14 <= processor.processor_options["max_pixels"]
    assert int(grid.prod()) * 14 * 14 > processor.processor_options["max_pixels"] * 0.9


def test_decompression_bomb_is_refused(sentence_model, tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"Input '.*bomb\.png': .*decompression bomb"):
        sentence_model.encode(["fine", str(path)])


def test_truncating_into_image_tokens_is_refused(sentence_model):
    previous = sentence_model.max_seq_length
    sentence_model.max_seq_length = 8
    try:
        truncated = r"Input \{'image': .*: its images need \d+ image tokens but .* fit in max_length=8"
        with pytest.raises(ValueError, match=truncated):
            sentence_model.encode({"image": case_image("p01"), "text": "What is in the image"})
    finally:
        sentence_model.max_seq_length = previous


def test_processor_checks_placeholder_count(auto_model_and_processor):
    _, processor = auto_model_and_processor
    with pytest.raises(ValueError, match="1 image placeholders .* but 0 images"):
        processor(text=["<|image_pad|> a photo"], images=[])
    with pytest.raises(ValueError, match="row 1: prompt must be a string"):
        processor(text=["fine", None])
