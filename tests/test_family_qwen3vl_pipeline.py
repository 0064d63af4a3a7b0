"""Qwen3-VL through the whole pipeline, on a tiny random folder from `vlm2vec init --family qwen3_vl`: train
(GradCache mini-batches over mixed image / text rows, DoRA on the family's targets, merged) -> eval -> push -> pull by
repo id in a process that cannot import this project."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import HUB_ALICE, SMALL_EVAL_ROWS, SMALL_EVAL_SETS, embed_like_the_loader, short_dora_run_args
from sentence_transformers import SentenceTransformer

from vlm2vec_hf.cli import main
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

pytestmark = pytest.mark.slow  # the module fixture trains, evaluates and pushes a random Qwen3-VL

SAME = 1e-5
FAMILY = get_family("qwen3_vl")


@pytest.fixture(scope="module")
def run(tiny_qwen3vl_model_dir, mini_mmeb, tmp_path_factory, remote):
    """`vlm2vec train --lora --merge`: batches of 4 mixed image / text rows in GradCache mini-batches of 3 and 1."""
    out = tmp_path_factory.mktemp("runs") / "qwen3-dora"
    args = short_dora_run_args(tiny_qwen3vl_model_dir, mini_mmeb, out, "--merge")
    assert main(args) == 0
    return out


def load(folder) -> SentenceTransformer:
    return SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")


def worst(a, b) -> float:
    return (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item()


def test_init_train_eval_push_and_pull_by_repo_id(
    tiny_qwen3vl_model_dir, run, mini_mmeb, small_eval, hub, remote, client_env
):
    # train: DoRA sits on the family's LLM projections only, and it trained.
    unmerged = load(run / "final")
    adapted = {name for name, module in unmerged[0].model.named_modules() if hasattr(module, "lora_A")}
    assert adapted and all(".language_model." in name for name in adapted)
    assert {name.rsplit(".", 1)[1] for name in adapted} == set(FAMILY.lora_target_modules)
    assert any(p.abs().max() > 0 for name, p in unmerged.named_parameters() if "lora_B" in name)
    merged = run / "merged"
    local = embed_like_the_loader(load(merged))
    assert worst(local, embed_like_the_loader(unmerged)) < SAME  # merging kept the embeddings
    assert worst(local, embed_like_the_loader(load(tiny_qwen3vl_model_dir))) > 1e-4  # and training moved them

    # eval on the merged folder.
    eval_args = ["eval", "--model", str(merged), "--data", str(small_eval), "--image-dir", str(mini_mmeb / "images")]
    assert main([*eval_args, "--batch-size", "8"]) == 0
    scores = json.loads((merged / "eval" / "results.json").read_text())["datasets"]
    assert {name: scores[name]["queries"] for name in scores} == dict.fromkeys(SMALL_EVAL_SETS, SMALL_EVAL_ROWS)
    assert all(0 <= scores[name]["metrics"]["hit@1"] <= 1 for name in SMALL_EVAL_SETS)

    # push, then pull by repo id in a process that only has HF_ENDPOINT (and cannot import vlm2vec_hf).
    assert main(["push", str(merged), "alice/qwen3vl-mini", "--token", HUB_ALICE]) == 0
    pushed = set(hub.repo_files("alice/qwen3vl-mini"))
    assert {"model.safetensors", "vlm2vec_st.py", *FAMILY.shipped_files} <= pushed
    answer = remote.load("alice/qwen3vl-mini", auto=True)
    assert answer["ok"], answer
    assert answer["st_module"].startswith("transformers_modules.")
    assert worst(answer["st"], local) < SAME
    assert worst(answer["auto"], [local[0], local[2]]) < SAME
