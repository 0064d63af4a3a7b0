"""Model folders get the umask's mode (e.g. 0755 under 022), as `mkdir` would give them, not mkdtemp's 0700: a model
written on a shared disk is readable by the others there. They are still staged beside the target and moved into
place, and a failed write leaves nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers import FIXTURE

from vlm2vec_hf import model_folder
from vlm2vec_hf.cli import main
from vlm2vec_hf.tiny import write_random_model


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_folder_modes(folder: Path, umask: int) -> None:
    folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
    assert {str(p.relative_to(folder)): oct(mode(p)) for p in folders} == {
        str(p.relative_to(folder)): oct(0o777 & ~umask) for p in folders
    }
    # Files too: safetensors 0.8 writes the weights 0600 whatever the umask (safetensors#782), and copied code files
    # would keep the installed package's mode.
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert "model.safetensors" in {p.name for p in files}
    assert {str(p.relative_to(folder)): oct(mode(p)) for p in files} == {
        str(p.relative_to(folder)): oct(0o666 & ~umask) for p in files
    }


def test_init_writes_the_folder_with_the_umask_mode(tmp_path, umask):
    out = tmp_path / "shared" / "tiny"
    assert main(["init", "--out", str(out), "--max-pixels", "12544"]) == 0
    assert_folder_modes(out, umask)
    assert mode(out.parent) == 0o777 & ~umask  # a parent made on the way, as `mkdir -p` makes it
    # Replacing the folder (--overwrite) gives the same mode, and leaves no staging or backup folder beside it.
    assert main(["init", "--out", str(out), "--max-pixels", "12544", "--seed", "1", "--overwrite"]) == 0
    assert_folder_modes(out, umask)
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]


def test_convert_writes_the_folder_with_the_umask_mode(tmp_path):
    previous = os.umask(0o002)
    try:
        out = tmp_path / "converted"
        assert main(["convert", "--base", str(FIXTURE / "backbone"), "--out", str(out), "--dtype", "float32"]) == 0
        assert_folder_modes(out, 0o002)
    finally:
        os.umask(previous)


def test_folder_is_staged_beside_the_target_and_cleaned_up_on_failure(tmp_path, monkeypatch):
    moves = []
    replace_folder = model_folder._replace_folder

    def recording_replace(new, target):
        moves.append((Path(new), Path(target), mode(Path(new))))
        replace_folder(new, target)

    monkeypatch.setattr(model_folder, "_replace_folder", recording_replace)
    out = tmp_path / "model"
    write_random_model(out, max_pixels=12544)
    ((staging, target, staging_mode),) = moves
    assert staging.parent == out.parent and staging.name.startswith(".model.") and target == out
    assert staging_mode == 0o777 & ~_current_umask()  # already right before the move: no window at 0700
    assert not staging.exists()

    def failing(folder):
        assert folder.parent == tmp_path and folder.is_dir()
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_folder, "_point_modules_json_at_root_file", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_random_model(tmp_path / "other", max_pixels=12544)
    with pytest.raises(RuntimeError, match="disk full"):
        write_random_model(out, max_pixels=12544, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left, the old one intact
    assert (out / "model.safetensors").is_file()


def _current_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_checkpoint_weights_get_the_umask_mode(sentence_model, tmp_path):
    # ST checkpoints and `final/` go through VLM2VecEncoder.save, not write_model_folder.
    previous = os.umask(0o022)
    try:
        sentence_model.save(str(tmp_path / "saved"))
    finally:
        os.umask(previous)
    weights = tmp_path / "saved" / "model.safetensors"
    assert stat.S_IMODE(weights.stat().st_mode) == 0o644


def test_a_replace_killed_between_its_two_moves_loses_nothing(tmp_path):
    out = tmp_path / "model"
    write_random_model(out, max_pixels=12544, seed=0)
    old_weights = (out / "model.safetensors").read_bytes()
    # The state a kill between `target -> .target.old` and `staging -> target` leaves behind.
    os.replace(out, tmp_path / ".model.old")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_random_model(out, max_pixels=12544, seed=1)  # the old folder counts as existing: not replaced silently
    assert (out / "model.safetensors").read_bytes() == old_weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_final_move_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = tmp_path / "model"
    write_random_model(out, max_pixels=12544, seed=0)
    old_weights = (out / "model.safetensors").read_bytes()
    real_replace = os.replace

    def failing_replace(source, destination):
        if Path(destination) == out and Path(source).name != ".model.old":
            raise OSError("device busy")
        real_replace(source, destination)

    monkeypatch.setattr(model_folder.os, "replace", failing_replace)
    with pytest.raises(OSError, match="device busy"):
        write_random_model(out, max_pixels=12544, seed=1, overwrite=True)
    assert (out / "model.safetensors").read_bytes() == old_weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
