"""The CLI starts at once: `vlm2vec --help`, every `<command> --help` and usage / config errors import none of torch,
transformers, sentence-transformers or datasets (each command imports them in its run function)."""

from __future__ import annotations

from helpers import run_isolated

HEAVY = ("torch", "transformers", "sentence_transformers", "datasets")

# Runs each argv through `main` in one fresh process, in order, and records after each which heavy modules are
# loaded (a module loaded once stays loaded, so the first path that shows one is the one that imported it).
PROBE = """
import argparse, contextlib, io, json, sys

from vlm2vec_hf.cli import build_parser, main

HEAVY = {heavy!r}


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    heavy = sorted(name for name in HEAVY if name in sys.modules)
    return {{"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "heavy": heavy}}


def commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield [*prefix, name]
                yield from commands(sub, (*prefix, name))


results = [run(["--help"])]
results += [run([*command, "--help"]) for command in commands(build_parser())]
results += [run(argv) for argv in {errors!r}]
print(json.dumps(results))
"""


def test_help_and_usage_errors_import_no_heavy_library(tmp_path):
    (tmp_path / "unknown_key.yaml").write_text("model: m\nlearning_rat: 0.1\n")
    (tmp_path / "wrong_type.yaml").write_text("model: m\nlearning_rate: fast\n")
    # (argv, the text its one-line error must hold): argparse's usage errors, then `train --config` errors.
    errors = [
        (["init", "--out", "x", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["init", "--out", "x", "--family", "no_such_family"], "invalid choice: 'no_such_family'"),
        (["convert", "--out", "x", "--prompt-format", "v9"], "invalid choice: 'v9'"),
        (["init"], "the following arguments are required: --out"),
        (["eval", "--model", "m"], "the following arguments are required: --data, --image-dir"),
        (["data", "video-eval", "--dataset", "MSR-VTT"], "the following arguments are required: --table, --out"),
        (["train", "--config", "unknown_key.yaml"], "unknown training options ['learning_rat']"),
        (["train", "--config", "wrong_type.yaml"], "learning_rate: expected a number, got 'fast'"),
        (["train", "--config", "missing.yaml"], "missing.yaml"),
        (["train", "--data", "d", "--image-dir", "i"], "`model` is required"),
        (["train", "--lora-r", "many"], "argument --lora-r/--lora_r: invalid int value: 'many'"),
    ]
    script = PROBE.format(heavy=HEAVY, errors=[argv for argv, _ in errors])
    results = run_isolated(script, tmp_path, prelude="")

    helps, failures = results[: -len(errors)], results[-len(errors) :]
    commands = {" ".join(result["argv"][:-1]) for result in helps[1:]}
    assert {"convert", "init", "train", "eval", "push", "data", "data mini-mmeb", "data video-eval"} <= commands
    for result in helps:
        assert result["code"] == 0, result
        assert result["stdout"].startswith(f"usage: vlm2vec {' '.join(result['argv'][:-1])}".rstrip()), result
    for result, (argv, message) in zip(failures, errors):
        assert result["argv"] == argv
        assert result["code"] == 2, result
        assert message in result["stderr"], result
    loaded = [(result["argv"], result["heavy"]) for result in results if result["heavy"]]
    assert not loaded, f"first path that loaded a heavy library: {loaded[0]}"
