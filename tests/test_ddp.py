"""Training under torchrun DDP (2 CPU processes, gloo): the loss sees both processes' in-batch negatives, and both
processes end with identical weights."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_training_gathers_negatives_and_stays_in_sync(tiny_random_model_dir, mini_mmeb, tmp_path):
    worker = Path(__file__).parent / "ddp_worker.py"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(worker),
        str(tiny_random_model_dir),
        str(mini_mmeb),
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for record in records:
        assert record["world_size"] == 2 and record["gather"] is True
        # GradCache scores each query mini-batch (2) against every document of the global batch (2 x 4).
        assert record["shapes"] and all(docs == 8 for _, docs, _, _ in record["shapes"]), record["shapes"]
    # Each rank has its own queries but the same gathered documents: its own and the other rank's.
    rank0, rank1 = (record["shapes"] for record in records)
    assert [row[3] for row in rank0] == pytest.approx([row[3] for row in rank1], abs=1e-4)
    assert any(abs(a[2] - b[2]) > 1e-3 for a, b in zip(rank0, rank1))
    first, second = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
