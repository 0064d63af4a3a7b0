"""Version pins and the start-up checks: a transformers that needs a newer peft than is installed fails early and
clearly (naming both versions and the fix), and the pins in pyproject.toml / constraints.txt stay consistent."""

from __future__ import annotations

import re
import shlex
from importlib import metadata
from pathlib import Path

import pytest
import transformers.integrations.peft
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from vlm2vec_hf import compat
from vlm2vec_hf.cli import main

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEPENDENCIES = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
DEV_DEPENDENCIES = [Requirement(line) for line in PYPROJECT["project"]["optional-dependencies"]["dev"]]
# The ranges of the packages whose API moves under the project (an untested minor broke LoRA training once).
TESTED_MINOR = {
    "transformers": ">=5.23,<5.24",
    "sentence-transformers": ">=6.2,<6.3",
    "peft": ">=0.21,<0.22",
}
PLATFORM_SPECIFIC = re.compile(r"^(torch|torchvision|triton|nvidia-.*|cuda-.*)$")


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


@pytest.fixture
def mismatch(monkeypatch):
    """transformers 5.24.0, which needs peft >= 0.22.0, next to peft 0.21.2 (the pair that broke LoRA training)."""
    fake = {"transformers": "5.24.0", "peft": "0.21.2"}
    real = metadata.version
    # The installed metadata itself, which both compat and transformers' require_version read.
    monkeypatch.setattr(metadata, "version", lambda name: fake.get(name) or real(name))
    monkeypatch.setattr(transformers.integrations.peft, "MIN_PEFT_VERSION", "0.22.0")


@pytest.fixture
def pyproject_ranges(monkeypatch):
    """The check reads the installed metadata; pin it to this checkout's pyproject (an older install may be stale)."""
    monkeypatch.setattr(compat, "declared_requirements", lambda: list(PYPROJECT["project"]["dependencies"]))


def assert_names_both_versions_and_fix(message: str) -> None:
    assert "transformers 5.24.0" in message and "peft >= 0.22.0" in message and "peft 0.21.2" in message
    assert "Fix:" in message and 'pip install "transformers' in message and "upgrade peft" in message


# --- the peft check ---


def test_the_installed_pair_passes():
    assert compat.check_peft_compatible() is None
    assert compat.peft_problem() is None


def test_a_peft_older_than_transformers_needs_is_one_clear_error(mismatch, pyproject_ranges):
    with pytest.raises(compat.IncompatibleVersionsError) as error:
        compat.check_peft_compatible()
    message = str(error.value)
    assert_names_both_versions_and_fix(message)
    assert 'pip install "transformers>=5.23,<5.24"' in message  # the tested range, read from the metadata
    assert isinstance(error.value, RuntimeError)


def test_the_fix_names_the_installed_metadata_range(mismatch):
    with pytest.raises(compat.IncompatibleVersionsError) as error:
        compat.check_peft_compatible()
    assert f'pip install "transformers{compat.tested_range("transformers")}"' in str(error.value)


def test_missing_peft_is_nothing_to_check_unless_an_adapter_is_needed(monkeypatch):
    real = compat.installed_version
    monkeypatch.setattr(compat, "installed_version", lambda name: None if name == "peft" else real(name))
    assert compat.check_peft_compatible(required=False) is None
    with pytest.raises(compat.IncompatibleVersionsError, match=r"peft is not installed.*Fix: pip install"):
        compat.check_peft_compatible()


def test_a_transformers_without_a_minimum_peft_is_nothing_to_check(monkeypatch):
    monkeypatch.delattr(transformers.integrations.peft, "MIN_PEFT_VERSION")
    assert compat.check_peft_compatible() is None


# --- every place that attaches or merges an adapter checks first ---


def test_attaching_the_reference_adapter_raises_the_clear_error(mismatch, tiny_random_model_dir):
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import load_model

    with pytest.raises(compat.IncompatibleVersionsError) as error:
        load_model(TrainConfig(model=str(tiny_random_model_dir), lora=True))
    assert_names_both_versions_and_fix(str(error.value))


def test_merging_an_adapter_raises_the_clear_error_before_loading(mismatch, tmp_path):
    from vlm2vec_hf.training.adapters import merge_adapter_folder

    with pytest.raises(compat.IncompatibleVersionsError) as error:
        merge_adapter_folder(tmp_path / "no-adapter-here", tmp_path / "out")
    assert_names_both_versions_and_fix(str(error.value))


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--model", "MODEL", "--lora", "--output-dir", "OUT"],
        ["merge", "--adapter", "ADAPTER", "--out", "OUT"],
        ["convert", "--adapter", "ADAPTER", "--out", "OUT"],
    ],
    ids=["train-lora", "merge", "convert-training-adapter"],
)
def test_the_cli_fails_fast_naming_both_versions(mismatch, tmp_path, capsys, command):
    adapter = tmp_path / "adapter"  # what `vlm2vec train --lora` writes, as far as `convert` looks
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "config_sentence_transformers.json").write_text("{}")
    paths = {"MODEL": str(tmp_path / "model"), "ADAPTER": str(adapter), "OUT": str(tmp_path / "out")}
    assert main([paths.get(arg, arg) for arg in command]) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert error.startswith(f"vlm2vec {command[0]}: error: ")
    assert_names_both_versions_and_fix(error)
    assert not (tmp_path / "out").exists()


# --- tested ranges: a warning outside them ---


def test_no_warning_for_the_installed_versions():
    assert compat.untested_versions() == []


def test_no_warning_for_the_installed_versions_in_this_checkouts_ranges(pyproject_ranges):
    assert compat.untested_versions() == []


def test_a_version_outside_the_tested_range_is_reported(monkeypatch, pyproject_ranges):
    real = compat.installed_version
    monkeypatch.setattr(compat, "installed_version", lambda name: "5.24.0" if name == "transformers" else real(name))
    (report,) = compat.untested_versions()
    assert "transformers 5.24.0" in report and ">=5.23,<5.24" in report
    with pytest.warns(compat.UntestedVersionWarning, match="transformers 5.24.0"):
        compat.warn_untested_versions()


def test_the_cli_warns_outside_the_tested_range_and_still_runs(mismatch, pyproject_ranges, tmp_path, capsys):
    assert main(["init", "--out", str(tmp_path / "tiny")]) == 0  # needs no peft
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vlm2vec: warning: ")]
    assert "transformers 5.24.0" in warning and 'pip install "transformers>=5.23,<5.24"' in warning


def test_the_ranges_come_from_the_installed_metadata():
    declared = {canonicalize_name(Requirement(line).name) for line in metadata.requires("vlm2vec-hf") or []}
    assert set(TESTED_MINOR) <= declared
    assert all(compat.tested_range(name) for name in TESTED_MINOR)


# --- the pins themselves ---


def test_pyproject_bounds_every_runtime_dependency_and_the_tested_minors():
    ranges = {canonicalize_name(req.name): req.specifier for req in DEPENDENCIES}
    for name, tested in TESTED_MINOR.items():
        assert set(ranges[name]) == set(Requirement(name + tested).specifier), name
    bounded = {name for name, spec in ranges.items() if any(s.operator in ("<", "<=", "==", "~=") for s in spec)}
    assert set(ranges) - bounded == {"packaging"}, "every runtime dependency but packaging has an upper bound"
    assert "torchvision" in ranges  # transformers' Qwen2-VL processor stack needs it


def test_pyproject_ranges_include_the_installed_versions():
    for req in [*DEPENDENCIES, *DEV_DEPENDENCIES]:
        installed = metadata.version(req.name)
        assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} is outside {req}"


def test_constraints_pin_the_direct_dependencies_inside_the_pyproject_ranges():
    pins = constraints()
    assert not [name for name in pins if PLATFORM_SPECIFIC.match(name)], "platform-specific pins in constraints.txt"
    direct = {canonicalize_name(req.name): req for req in [*DEPENDENCIES, *DEV_DEPENDENCIES]}
    for name, req in direct.items():
        if PLATFORM_SPECIFIC.match(name):
            continue
        assert name in pins, f"constraints.txt does not pin {name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req}"
    assert {"pytest", "ruff"} <= set(pins)


def test_readme_and_ci_install_the_same_way():
    readme = (ROOT / "README.md").read_text()
    install = next(line for line in readme.splitlines() if "pip install" in line and "vlm2vec demo" in line)
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.lstrip()[:4] == "pip "]

    def pip_installs(commands: list[str]) -> list[list[str]]:
        words = [shlex.split(command) for command in commands]
        return [[w for w in cmd[2:] if not w.startswith("--quiet")] for cmd in words if cmd[:2] == ["pip", "install"]]

    readme_installs = pip_installs([part.strip() for part in install.split("&&")])
    assert readme_installs == pip_installs(ci)
    assert readme_installs == [["torch==2.14.1", "torchvision==0.29.1"], ["-e", ".[dev,mteb]", "-c", "constraints.txt"]]
    torch_range = next(req.specifier for req in DEPENDENCIES if req.name == "torch")
    assert torch_range.contains("2.14.1")
