"""The benchmark scripts' own logic: `encode_throughput.py --merge` keeps every row with the run (provenance, peak)
that measured it, and `gpu_qwen3_vl.py` refuses to run without CUDA and, in its CPU dry run, measures what it says."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark(name: str):
    """A benchmark script as a module (they import their siblings as top-level modules)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def one_run(commit: str, peak: float, rows: list[tuple[str, str, float]]) -> dict:
    """An `encode_throughput` result of one run, in the layout `run` returns: rows `(family, size, ratio)`."""
    return {
        "items": 64,
        "phi_items": 16,
        "repeats": 3,
        "torch_threads": 2,
        "platform": "test",
        "torch": "test",
        "matmul_peak_method": "test",
        "matmul_peak_flop_per_s": {"start": peak, "end": peak, "used": peak},
        "provenance": {
            "commit": commit * 40,
            "dirty": False,
            "versions": {"torch": "1"},
            "machine": {"processor": "x86_64", "cpu_count": 2, "python": "3"},
        },
        "rows": [
            {
                "family": family,
                "model": size,
                "parameters": 1e6,
                "inputs": "text",
                "batch_size": 1,
                "ours_items_per_s": ratio,
                "reference_items_per_s": 1.0,
                "ratio": ratio,
                "ours_flops_per_item": 1e9,
                "reference_flops_per_item": 1e9,
                "ours_flop_per_s": ratio * 1e9,
                "reference_flop_per_s": 1e9,
                "ours_peak_fraction": ratio * 1e9 / peak,
                "reference_peak_fraction": 1e9 / peak,
            }
            for family, size, ratio in rows
        ],
    }


def test_merge_replaces_the_measured_rows_and_keeps_each_rows_run():
    encode_throughput = benchmark("encode_throughput")
    committed = one_run("a", 100e9, [("qwen2_vl", "tiny", 1.11), ("qwen2_vl", "mid", 1.22), ("phi3_v", "tiny", 1.33)])
    new = one_run("b", 150e9, [("qwen3_vl", "tiny", 1.44), ("qwen2_vl", "mid", 1.55)])
    merged = encode_throughput.merge(committed, new)

    order = [(row["family"], row["model"], row["ratio"]) for row in merged["rows"]]
    assert order == [
        ("qwen2_vl", "tiny", 1.11),
        ("qwen2_vl", "mid", 1.55),
        ("phi3_v", "tiny", 1.33),
        ("qwen3_vl", "tiny", 1.44),
    ]
    commits = [merged["runs"][row["run"]]["provenance"]["commit"][0] for row in merged["rows"]]
    assert commits == ["a", "b", "a", "b"]
    assert merged["runs"][merged["rows"][1]["run"]]["matmul_peak_flop_per_s"]["used"] == 150e9
    assert merged["provenance"]["commit"] == "b" * 40

    markdown = encode_throughput.to_markdown(merged)
    assert "Measured at commit aaaaaaaaaaaa" in markdown and "Measured at commit bbbbbbbbbbbb" in markdown
    assert "| 2 | Qwen3-VL tiny |" in markdown and "| 1 | Phi-3.5-V tiny |" in markdown
    # A second merge of the same rows leaves one copy of them and drops the run no row uses any more.
    again = encode_throughput.merge(merged, one_run("c", 120e9, [("qwen2_vl", "mid", 1.66)]))
    assert [row["ratio"] for row in again["rows"]] == [1.11, 1.66, 1.33, 1.44]
    assert len(again["runs"]) == 3 and {run["provenance"]["commit"][0] for run in again["runs"]} == {"a", "b", "c"}


def test_gpu_script_without_cuda_exits_with_an_error_naming_the_cause(monkeypatch, capsys):
    gpu = benchmark("gpu_qwen3_vl")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        gpu.main([])
    assert exit_info.value.code != 0
    assert "CUDA is not available" in capsys.readouterr().err


def test_gpu_script_dry_run_measures_deviation_and_the_flop_share(tmp_path):
    gpu = benchmark("gpu_qwen3_vl")
    results = gpu.main(["--device", "cpu", "--dry-run", "--peak-tflops", "0.5", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "gpu_qwen3_vl.json").read_text())["card"]["name"] == results["card"]["name"]
    assert "Dry run" in (tmp_path / "gpu_qwen3_vl.md").read_text()

    deviation = {(row["dtype"], row["attention"]): row["max_abs_diff"] for row in results["deviation"]}
    assert deviation[("float32", "sdpa")] < 1e-5
    for half in ("bfloat16", "float16"):  # really run in half precision: visibly off fp32, yet close
        assert 1e-5 < deviation[(half, "sdpa")] < 5e-2
    parameters, per_item = results["parameters"], results["per_item"]
    assert per_item["tokens"] > 0 and per_item["vision_patches"] > 0
    assert results["flops_per_item"] == pytest.approx(
        2 * (parameters["language"] * per_item["tokens"] + parameters["vision"] * per_item["vision_patches"])
    )
    assert [row["batch_size"] for row in results["throughput"]] == [2, len(gpu.KINDS)]
    for row in results["throughput"]:
        assert row["items_per_s"] > 0
        assert row["peak_share"] == pytest.approx(row["items_per_s"] * results["flops_per_item"] / 0.5e12)
