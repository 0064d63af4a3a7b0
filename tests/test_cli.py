"""The `vlm2vec` console command: `convert` and the `demo` main job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from conftest import CASES, FIXTURE, TOLERANCE

from vlm2vec_hf.cli import main
from vlm2vec_hf.model_folder import load_sentence_transformer

CONSOLE_SCRIPT = Path(sys.executable).parent / "vlm2vec"


def test_convert_command_writes_a_loadable_folder(tmp_path, expected):
    out = tmp_path / "converted"
    args = [
        "convert",
        "--base",
        str(FIXTURE / "backbone"),
        "--out",
        str(out),
        "--prompt-format",
        "v2",
        "--min-pixels",
        "3136",
        "--max-pixels",
        "200704",
        "--max-length",
        "256",
        "--dtype",
        "float32",
    ]
    assert main(args) == 0
    model = load_sentence_transformer(out, device="cpu")
    processor = model[0].processor
    assert (processor.prompt_format, processor.min_pixels, processor.max_pixels) == ("v2", 3136, 200704)
    assert model.max_seq_length == 256
    embedding = torch.as_tensor(model.encode(CASES["p03"]["text"]))
    assert (embedding - expected["case/p03"]).abs().max().item() < TOLERANCE
    # A second run onto the same folder is refused (exit 2) and leaves it intact, unless --overwrite is given.
    before = sorted(p.name for p in out.iterdir())
    assert main(args) == 2
    assert sorted(p.name for p in out.iterdir()) == before
    assert main([*args, "--overwrite", "--position-ids", "native"]) == 0
    assert load_sentence_transformer(out, device="cpu")[0].model.config.position_ids_mode == "native"


def test_convert_reports_a_missing_base_folder(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["convert", "--base", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_demo_main_job_runs_offline(tmp_path):
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RANDOM weights" in result.stdout
    assert "image (instruction 'MSCOCO_i2t') -> caption" in result.stdout
    assert (tmp_path / "demo" / "model" / "modules.json").is_file()
