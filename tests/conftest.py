"""Shared fixtures: the reference parity fixture and model folders converted from it (built once per session), and
small helpers several test files use (tensor distance, isolated child process, synthetic clips and videos)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

# Keep the tests' dynamic-module cache and any Hub state out of the user's ~/.cache, and never go online.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="vlm2vec-tests-hf-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vlm2vec_hf.hub_cards.convert import convert_backbone

FIXTURE = Path(__file__).parent / "fixtures" / "parity-qwen2vl-public"
CASES: dict[str, dict] = json.loads((FIXTURE / "cases.json").read_text())["cases"]
BATCHES: dict[str, dict] = json.loads((FIXTURE / "cases.json").read_text())["batches"]
# Reference fixture recipe: fp32, eager attention, prompts truncated at 256 tokens.
MAX_LENGTH = 256
TOLERANCE = 1e-5


def max_abs(a, b) -> float:
    """Largest absolute elementwise difference of two array-likes (tensors, numpy arrays, lists), compared in fp32."""
    return (torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max().item()


@pytest.fixture(scope="session")
def expected() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "expected.safetensors")


def case_image_path(case_id: str) -> str | None:
    image = CASES[case_id]["image"]
    return str(FIXTURE / "images" / image) if image else None


def case_image(case_id: str) -> Image.Image | None:
    path = case_image_path(case_id)
    return Image.open(path) if path else None


def _convert(tmp_path_factory, name: str, **kwargs) -> Path:
    out = tmp_path_factory.mktemp("models") / name
    return convert_backbone(FIXTURE / "backbone", out, max_length=MAX_LENGTH, dtype=torch.float32, **kwargs)


@pytest.fixture(scope="session")
def fixture_model_dir(tmp_path_factory) -> Path:
    """The parity backbone as a VLM2Vec model folder: reference positions, V1 prompts."""
    return _convert(tmp_path_factory, "vlm2vec-fixture-v1")


@pytest.fixture(scope="session")
def fixture_model_dir_v2(tmp_path_factory) -> Path:
    return _convert(tmp_path_factory, "vlm2vec-fixture-v2", prompt_format="v2")


@pytest.fixture(scope="session")
def sentence_model(fixture_model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(fixture_model_dir), trust_remote_code=True, device="cpu")


@pytest.fixture(scope="session")
def auto_model_and_processor(fixture_model_dir):
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(fixture_model_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(fixture_model_dir, trust_remote_code=True)
    return model, processor


@pytest.fixture(scope="session")
def mini_mmeb(tmp_path_factory) -> Path:
    """The offline mini-MMEB set (train + eval), built once per session."""
    from vlm2vec_hf.training.mini_mmeb import build_mini_mmeb

    return build_mini_mmeb(tmp_path_factory.mktemp("data") / "mini-mmeb")


@pytest.fixture(scope="session")
def tiny_random_model_dir(tmp_path_factory) -> Path:
    """A random-init (transformers' default init) tiny model with small image bounds, for training tests."""
    from vlm2vec_hf.cli import main

    out = tmp_path_factory.mktemp("models") / "tiny-random"
    assert main(["init", "--out", str(out), "--max-pixels", "12544"]) == 0
    return out


# Prepended to a child process's script: any import of this project fails there, so only a model folder's (or
# repo's) own code can run, as on a user's machine that never installed vlm2vec-hf.
BLOCK_PROJECT = """
import sys
class _BlockProject:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] == "vlm2vec_hf":
            raise ImportError("vlm2vec_hf must not be imported here")
sys.meta_path.insert(0, _BlockProject)
"""


def run_isolated(script: str, tmp_path: Path, prelude: str = BLOCK_PROJECT) -> dict:
    """Run `prelude` + dedented `script` in a fresh isolated (`-I`) offline Python under `tmp_path`, with its own
    HF_HOME; assert it exits 0 and return its last stdout line parsed as JSON."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", prelude + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_clip(root: Path, name: str, frames: int = 3, shade: int = 0) -> Path:
    """A folder `root/frames/name` of `frames` 32x32 PNGs, a white 8x8 square moving 4 px per frame over a
    `shade`d background; returns the folder."""
    folder = root / "frames" / name
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        image = Image.new("RGB", (32, 32), (shade, 40, 200 - shade))
        image.paste((255, 255, 255), (4 * index, 8, 4 * index + 8, 16))
        image.save(folder / f"{index:04d}.png")
    return folder


def write_rows(root: Path, dataset: str, rows: list[dict]) -> None:
    """An MMEB-style eval set: `root/dataset/test.jsonl`, one JSON row per line."""
    (root / dataset).mkdir(parents=True)
    (root / dataset / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_ffv1(path: Path, frames: list[np.ndarray]) -> Path:
    """A lossless (FFV1, 8 fps) video of `frames`, each a (H, W, 3) uint8 RGB array of the same size."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
