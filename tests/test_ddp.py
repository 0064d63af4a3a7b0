"""Training under torchrun DDP (2 CPU processes, gloo), on a tiny Qwen2-VL, Phi-3.5-V and Qwen3-VL folder: GradCache
cuts each batch's rows and their images into mini-batches, the loss sees both processes' in-batch negatives, and both
processes end with identical weights."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import torchrun

# Every test here is slow: two torchrun processes training.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_phi3v_model_dir(tmp_path_factory) -> Path:
    from vlm2vec_hf.cli import main

    out = tmp_path_factory.mktemp("models") / "tiny-phi3v"
    assert main(["init", "--out", str(out), "--family", "phi3_v"]) == 0
    return out


# Each family's tiny folder (a fixture) and its training steps. Phi-3.5-V: 2 steps (each image is 5 CLIP crops of
# 336 px and ~760 LLM tokens; 3 steps would double the CI time).
FAMILIES = {
    "qwen2_vl": ("tiny_random_model_dir", 3),
    "phi3_v": ("tiny_phi3v_model_dir", 2),
    "qwen3_vl": ("tiny_qwen3vl_model_dir", 3),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_two_process_training_gathers_negatives_and_stays_in_sync(request, family, mini_mmeb, tmp_path):
    fixture, steps = FAMILIES[family]
    model_dir = request.getfixturevalue(fixture)
    worker = Path(__file__).parent / "ddp_worker.py"
    command = torchrun(2, str(worker), str(model_dir), str(mini_mmeb), str(tmp_path), str(steps))
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for record in records:
        assert record["world_size"] == 2 and record["gather"] is True
        # GradCache scores each query mini-batch (2) against every document of the global batch (2 x 4).
        assert record["shapes"] and all(docs == 8 for _, docs, _, _ in record["shapes"]), record["shapes"]
        assert record["steps"] == steps and record["model_type"] == family
        # Every (mini-)batch embedded is 2 rows cut from the batch of 4, its media cut with it: the per-image inputs
        # (e.g. `image_grid_thw`, `image_sizes`) hold one entry per image of those 2 rows, none for text rows.
        embedded = record["embedded"]
        assert all(rows == 2 for rows, _, _ in embedded), embedded
        assert any(images for _, images, _ in embedded), embedded  # the queries carry images
        for _, images, media in embedded:
            assert bool(media) == bool(images) and (not images or images in media.values()), embedded
    # Each rank has its own queries but the same gathered documents: its own and the other rank's.
    rank0, rank1 = (record["shapes"] for record in records)
    assert [row[3] for row in rank0] == pytest.approx([row[3] for row in rank1], abs=1e-4)
    assert any(abs(a[2] - b[2]) > 1e-3 for a, b in zip(rank0, rank1))
    first, second = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
