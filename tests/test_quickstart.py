"""The README's quickstart runs as written: its Python blocks, in order, on a tiny random model folder, with the
files they name (two images, a frame folder, a video file) made in the working directory."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from helpers import write_clip, write_ffv1
from PIL import Image

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_blocks() -> list[str]:
    section = README.read_text().split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)


def test_the_readme_quickstart_runs_on_a_model_folder(tiny_random_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, colour in [("cat.png", (200, 120, 40)), ("coffee.jpg", (90, 60, 30)), ("dog.png", (30, 90, 200))]:
        Image.new("RGB", (56, 56), colour).save(name)
    write_clip(tmp_path, "clip_0042", frames=4)
    Path("clips").mkdir()
    write_ffv1(tmp_path / "clips" / "cat.mp4", [np.full((32, 32, 3), 40 * i, dtype=np.uint8) for i in range(4)])

    blocks = quickstart_blocks()
    assert len(blocks) == 3, "the quickstart's Python blocks: sentence-transformers, videos, transformers"
    namespace = {"folder": str(tiny_random_model_dir), "question": "Which way does it move?"}
    namespace["TASK_PROMPT"] = "Understand the content of the provided video."
    for block in blocks:
        exec(block.replace("path/or/org-model", str(tiny_random_model_dir)), namespace)  # noqa: S102

    embeddings = namespace["embeddings"]  # AutoModel's, of one text
    hidden = embeddings.shape[-1]
    assert embeddings.shape == (1, hidden)
    assert namespace["images"].shape == namespace["texts"].shape == (2, hidden)  # encode's, same model
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(1))
    assert namespace["images_alone"]["input_ids"].shape[0] == 2
