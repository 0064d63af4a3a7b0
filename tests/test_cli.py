"""The `vlm2vec` console command: `convert` and the `demo` main job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import CASES, FIXTURE, TOLERANCE
from hub_server import LocalHub

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
    assert (
        processor.prompt_format,
        processor.processor_options["min_pixels"],
        processor.processor_options["max_pixels"],
    ) == ("v2", 3136, 200704)
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


@pytest.mark.slow
def test_demo_main_job_runs_the_whole_pipeline_and_pushes_to_a_configured_hub(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    with LocalHub(tmp_path / "hub", tokens={"tok-alice": "alice"}) as hub:
        hub_env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "tok-alice", "HF_HUB_DISABLE_XET": "1"}
        result = subprocess.run(
            [str(CONSOLE_SCRIPT), "demo", "--out", str(tmp_path / "demo"), "--steps", "30"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            env={**env, **hub_env, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
        model = Path(summary["model"])
        assert summary["pushed_to"] == "alice/vlm2vec-mini-demo"
        pushed = set(hub.repo_files("alice/vlm2vec-mini-demo", "main"))
    assert {"model.safetensors", "modules.json", "README.md", "vlm2vec_st.py", "modeling_vlm2vec.py"} <= pushed
    assert (model / "modules.json").is_file() and (model / "model.safetensors").is_file()
    for key in ("reports_before", "reports_after", "video_reports_before", "video_reports_after"):
        assert summary[key] and all(Path(path).is_file() for path in summary[key].values())
    video_table = Path(summary["video_reports_after"]["markdown"]).read_text()
    assert "| V-CLS (1) | V-QA (1) | V-RET (1) |" in video_table and "| Video (3) |" in video_table
    assert 0 <= summary["video_mean_hit_at_1_after"] <= 1
    assert "clip (instruction of K700) -> caption" in result.stdout
    assert "model-index:" in (model / "README.md").read_text()
    assert summary["mean_hit_at_1_after"] > summary["mean_hit_at_1_before"]
    assert "RANDOM weights" in result.stdout and "image (instruction 'MSCOCO_i2t') -> caption" in result.stdout
    assert f"Model folder: {model}" in result.stdout and "pushed to alice/vlm2vec-mini-demo" in result.stdout
    # a second run never overwrites the first
    again = subprocess.run(
        [str(CONSOLE_SCRIPT), "demo", "--out", str(tmp_path / "demo")], capture_output=True, text=True, cwd=tmp_path
    )
    assert again.returncode != 0 and "not empty" in again.stderr
    assert json.loads((tmp_path / "demo" / "summary.json").read_text()) == summary


def test_init_and_convert_take_their_choices_and_options_from_the_family_registry(tmp_path, monkeypatch, capsys):
    """A family registered at run time reaches `init --family`, `--size` and the image options of `init` and
    `convert`; `init` passes only the options given, by name, to `write_random_model`."""
    import vlm2vec_hf.tiny
    from vlm2vec_hf.modeling_vlm2vec.backbone_common import ProcessorOption
    from vlm2vec_hf.modeling_vlm2vec.backbones import get_family, register_family, unregister_family

    class ToyFamily(type(get_family())):
        name = "toy_family"
        model_types = ("toy_vl",)
        init_model_types = ("toy_vl",)
        init_sizes = ("tiny", "huge")
        processor_options = (ProcessorOption("tile_size", int, "tile side in pixels"),)

    calls = []
    monkeypatch.setattr(vlm2vec_hf.tiny, "write_random_model", lambda out, **kwargs: calls.append(kwargs) or out)
    register_family(ToyFamily())
    try:
        for command in ("init", "convert"):
            with pytest.raises(SystemExit):
                main([command, "--help"])
            help_text = " ".join(capsys.readouterr().out.split())
            assert "--tile-size TILE_SIZE tile side in pixels; families: toy_family" in help_text
            assert "--min-pixels" in help_text  # the built-in families' options stay
        with pytest.raises(SystemExit):
            main(["init", "--help"])
        usage = capsys.readouterr().out
        assert "{tiny,mid,huge}" in usage and "toy_vl" in usage and "toy_family" in usage
        assert (
            main(["init", "--out", str(tmp_path), "--family", "toy_family", "--size", "huge", "--tile-size", "3"]) == 0
        )
        assert main(["init", "--out", str(tmp_path), "--family", "toy_vl"]) == 0
    finally:
        unregister_family("toy_family")
    assert calls == [
        {"size": "huge", "family": "toy_family", "seed": 0, "overwrite": False, "tile_size": 3},
        {"size": "tiny", "family": "toy_vl", "seed": 0, "overwrite": False},
    ]
    with pytest.raises(SystemExit):
        main(["init", "--out", str(tmp_path), "--family", "toy_vl"])  # gone with its family
    assert "invalid choice: 'toy_vl'" in capsys.readouterr().err
