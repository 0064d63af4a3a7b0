"""Media loading: a failed decode releases its file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vlm2vec_hf.modeling_vlm2vec import media_loading
from vlm2vec_hf.modeling_vlm2vec.media_loading import ImageInputError, open_image_file


def test_a_truncated_image_names_the_file_and_closes_it(tmp_path, monkeypatch):
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    opened = []
    real_open = media_loading.Image.open
    monkeypatch.setattr(media_loading.Image, "open", lambda *args: opened.append(real_open(*args)) or opened[-1])
    with pytest.raises(ImageInputError, match=r"cut\.png' is corrupt or truncated"):
        open_image_file(path)
    assert len(opened) == 1 and opened[0].fp is None  # closed, not left to the garbage collector
