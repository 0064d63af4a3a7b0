"""A broken `vlm2vec train` YAML file or a wrongly typed option fails at once, in one line naming the file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import vlm2vec_hf
from vlm2vec_hf.cli import main
from vlm2vec_hf.training import trainer
from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.yaml_files import read_yaml

REQUIRED = "model: m\ndata: d\nimage_dir: i\n"


def write(tmp_path, text: str, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_steps: two", "max_steps: expected an integer, got 'two'"),
        ("max_steps: 2.5", "max_steps: expected an integer, got 2.5"),
        ("max_steps: true", "max_steps: expected an integer, got true"),
        ("seed:", "seed: expected an integer, got null"),
        ("save_total_limit: ten", "save_total_limit: expected an integer or null, got 'ten'"),
        ('learning_rate: "fast"', "learning_rate: expected a number, got 'fast'"),
        ("temperature: [0.02]", "temperature: expected a number, got [0.02]"),
        ("lora: maybe", "lora: expected true or false, got 'maybe'"),
        ("bf16: 1", "bf16: expected true or false, got 1"),
        ("split: 2024", "split: expected a string, got 2024"),
        ("hub_model_id: 123", "hub_model_id: expected a string or null, got 123"),
        ("matryoshka_dims: [a, b]", "matryoshka_dims: expected a list of integers or null, got ['a', 'b']"),
        ("matryoshka_dims: [64, 32.5]", "matryoshka_dims: expected a list of integers or null, got [64, 32.5]"),
        ("subsets: {Digits: 1}", "subsets: expected a list of strings or null, got {'Digits': 1}"),
        ("report_to: [tensorboard, 3]", "report_to: expected a list of strings, got ['tensorboard', 3]"),
        ("lora_target_modules: 3", "lora_target_modules: expected a string or a list of strings or null, got 3"),
    ],
)
def test_wrongly_typed_yaml_value_names_file_and_key(tmp_path, line, message):
    path = write(tmp_path, REQUIRED + line + "\n")
    with pytest.raises(ValueError) as error:
        TrainConfig.from_yaml(path)
    assert str(error.value) == f"{path}: {message}"


def test_yaml_values_of_the_natural_types_are_accepted(tmp_path):
    path = write(
        tmp_path,
        REQUIRED
        + "learning_rate: 5e-5\nweight_decay: 0\ntemperature: 1.0e-2\nmax_steps: 10\nsave_total_limit: null\n"
        + "subsets: Digits\nreport_to: tensorboard\nmatryoshka_dims: [64, 32]\nlora: yes\nhub_revision: null\n"
        + "lora_target_modules: [q_proj, v_proj]\n",
    )
    config = TrainConfig.from_yaml(path)
    config.validate()
    assert config.learning_rate == 5e-5 and isinstance(config.learning_rate, float)  # PyYAML alone: '5e-5', a str
    assert config.weight_decay == 0.0 and isinstance(config.weight_decay, float)  # an int is fine for a float
    assert (config.temperature, config.max_steps, config.save_total_limit) == (0.01, 10, None)
    assert config.subsets == ["Digits"] and config.report_to == ["tensorboard"]  # one string: a one-element list
    assert config.matryoshka_dims == [64, 32] and config.lora is True
    assert config.lora_target_modules == ["q_proj", "v_proj"]  # a string (comma-separated) or a list
    assert TrainConfig().updated({"lora_target_modules": "q_proj,v_proj"}).lora_target_modules == "q_proj,v_proj"


def test_empty_yaml_file_gives_the_defaults(tmp_path):
    assert TrainConfig.from_yaml(write(tmp_path, "# nothing yet\n")) == TrainConfig()


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, REQUIRED + "max_steps: 10\nsubsets: [Digits, Faces\nlora: true\n")
    with pytest.raises(ValueError) as error:
        TrainConfig.from_yaml(path)
    message = str(error.value)
    assert message.startswith(f"{path}: invalid YAML at line 6") and "\n" not in message
    path = write(tmp_path, "max_steps: 10\n  lora: true\n", "indent.yaml")
    with pytest.raises(ValueError, match=r"indent\.yaml: invalid YAML at line 2, column 7: mapping values"):
        TrainConfig.from_yaml(path)


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "- model: m\n- data: d\n")
    with pytest.raises(
        ValueError, match=r"run\.yaml: expected a mapping of training options \(key: value\), got a list$"
    ):
        TrainConfig.from_yaml(path)
    path = write(tmp_path, "max_steps 10\n")
    with pytest.raises(ValueError, match=r"run\.yaml: expected a mapping of .*, got 'max_steps 10'$"):
        TrainConfig.from_yaml(path)


def test_unknown_keys_name_the_file(tmp_path):
    path = write(tmp_path, REQUIRED + "lora_rank: 8\n")
    with pytest.raises(ValueError, match=r"run\.yaml: unknown training options \['lora_rank'\]"):
        TrainConfig.from_yaml(path)


def test_updated_and_validate_check_types_too():
    with pytest.raises(ValueError, match=r"^max_steps: expected an integer, got 'two'$"):
        TrainConfig().updated({"max_steps": "two"})
    assert TrainConfig().updated({"learning_rate": 1}).learning_rate == 1.0
    with pytest.raises(ValueError, match=r"^lora: expected true or false, got 'maybe'$"):
        TrainConfig(model="m", data="d", image_dir="i", lora="maybe").validate()
    # Every default is of its field's type (the checker knows every annotation used).
    TrainConfig().check_types()


@pytest.fixture
def no_model_loading(monkeypatch):
    loaded = []

    def fake_load_model(config):
        loaded.append(config)
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(trainer, "load_model", fake_load_model)
    return loaded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_steps: two\n", "max_steps: expected an integer, got 'two'"),
        ('learning_rate: "fast"\n', "learning_rate: expected a number, got 'fast'"),
        ("lora: maybe\n", "lora: expected true or false, got 'maybe'"),
        ("matryoshka_dims: [a, b]\n", "matryoshka_dims: expected a list of integers or null"),
        (
            "subsets: [Digits\n",
            "invalid YAML at line 6, column 1: expected ',' or ']', but got '<stream end>' (while "
            "parsing a flow sequence that starts at line 5)",
        ),
    ],
)
@pytest.mark.parametrize("check_data", [False, True])
def test_cli_reports_a_config_error_in_one_line_before_loading(
    tmp_path, capsys, no_model_loading, text, expected, check_data
):
    missing_model = tmp_path / "no-such-model"
    path = write(
        tmp_path,
        f"model: {missing_model}\ndata: {tmp_path}/data\nimage_dir: {tmp_path}/images\n"
        f"output_dir: {tmp_path}/run\n" + text,
    )
    args = ["train", "--config", str(path), *(["--check-data"] if check_data else [])]
    assert main(args) == 2
    assert one_error_line(capsys).startswith(f"vlm2vec train: error: {path}: {expected}")
    assert no_model_loading == []
    assert not (tmp_path / "run").exists()


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured
    return lines[0]


def test_cli_reports_a_value_out_of_range_before_loading(tmp_path, capsys, no_model_loading):
    path = write(tmp_path, f"model: {tmp_path}/m\ndata: d\nimage_dir: i\noutput_dir: {tmp_path}/run\ntemperature: 0\n")
    assert main(["train", "--config", str(path)]) == 2
    assert one_error_line(capsys) == "vlm2vec train: error: temperature must be positive, got 0.0"
    assert main(["train", "--config", str(path), "--temperature", "0.05", "--model", ""]) == 2
    assert one_error_line(capsys) == "vlm2vec train: error: `model` is required (YAML key or --model)"
    assert no_model_loading == []


def test_cli_flags_still_override_a_valid_yaml_file(tmp_path, capsys, no_model_loading):
    path = write(tmp_path, f"model: {tmp_path}/m\ndata: d\nimage_dir: i\noutput_dir: {tmp_path}/run\nmax_steps: 3\n")
    # A wrongly typed flag is argparse's error (exit 2, usage + one error line), before anything is loaded.
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(path), "--max-steps", "two"])
    assert exit_info.value.code == 2
    assert "argument --max-steps/--max_steps: invalid int value: 'two'" in capsys.readouterr().err
    # Good flags get as far as loading the model (stubbed here), with the flag's value winning over the YAML's.
    with pytest.raises(AssertionError, match="the model was loaded"):
        main(["train", "--config", str(path), "--max-steps", "5", "--learning-rate", "1e-4", "--subsets", "Digits"])
    (config,) = no_model_loading
    assert (config.max_steps, config.learning_rate, config.subsets) == (5, 1e-4, ["Digits"])


def test_a_key_given_twice_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path, REQUIRED + "max_steps: 10\nlora: true\nmax_steps: 20\n")
    with pytest.raises(ValueError) as error:
        TrainConfig.from_yaml(path)
    assert (
        str(error.value)
        == f"{path}: invalid YAML at line 6, column 1: duplicate key 'max_steps' (first given at line 4)"
    )
    nested = write(tmp_path, "base: &base {max_steps: 1}\nrun:\n  <<: *base\n  max_steps: 2\n  seed: 1\n  seed: 2\n")
    with pytest.raises(ValueError, match=r"line 6, column 3: duplicate key 'seed' \(first given at line 5\)$"):
        read_yaml(nested)  # a key overriding a merged-in one (`<<: *base`) is no duplicate; a nested repeat is


def test_every_yaml_reader_refuses_duplicate_keys():
    """The one loader: no module of the package calls PyYAML's loaders itself."""
    package = Path(vlm2vec_hf.__file__).resolve().parent.parent
    callers = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if ".venv" not in path.parts
        and "tests" not in path.parts
        and path.name != "yaml_files.py"
        and re.search(r"yaml\.(safe_)?load\(|yaml\.(Safe|Full|Unsafe)?Loader", path.read_text(encoding="utf-8"))
    ]
    assert callers == []
