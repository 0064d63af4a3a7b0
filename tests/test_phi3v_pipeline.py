"""Phi-3.5-V through the whole pipeline, on a tiny random folder from `vlm2vec init --family phi3_v`: train (GradCache,
DoRA on the v1 target list, hard negatives, Matryoshka, resume) -> eval -> push -> pull by repo id in a fresh process.

Phi's images are `pixel_values` `(n_images, crops, 3, 336, 336)` + `image_sizes` `(n_images, 2)` (not Qwen's flat
patches), so the GradCache mini-batches must carry exactly their own rows' images; that is checked image by image.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import (
    HUB_ALICE,
    SMALL_EVAL_ROWS,
    SMALL_EVAL_SETS,
    SimulatedCrash,
    StepRecorder,
    add_callback_to_cli_runs,
    embed_like_the_loader,
    short_dora_run_args,
    train_config,
)
from helpers import HUB_IMAGE as IMAGE
from helpers import HUB_INSTRUCTION as INSTRUCTION
from PIL import Image
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from transformers import TrainerCallback

from vlm2vec_hf.cli import main
from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.training.trainer import build_loss, build_trainer, train

# Every test here is slow: its module fixture trains, evaluates and pushes a random Phi-3.5-V.
pytestmark = pytest.mark.slow

ALICE = HUB_ALICE
SAME = 1e-5
EVAL_SETS, EVAL_ROWS = SMALL_EVAL_SETS, SMALL_EVAL_ROWS
# The v1 reference adapts, per layer, the LLM's fused projections and the CLIP tower's attention.
LLM_TARGETS = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
CLIP_TARGETS = {"q_proj", "k_proj", "v_proj", "out_proj"}


@pytest.fixture(scope="module")
def phi_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tiny-phi3v"
    assert main(["init", "--out", str(out), "--family", "phi3_v"]) == 0
    return out


@pytest.fixture(scope="module")
def phi_run(phi_dir, mini_mmeb, tmp_path_factory, remote):
    """`vlm2vec train --lora --merge` on the Phi folder: checkpoint-1/, checkpoint-2/, final/ (adapter), merged/."""
    run = tmp_path_factory.mktemp("runs") / "phi-dora"
    assert main(short_dora_run_args(phi_dir, mini_mmeb, run, "--merge")) == 0
    return run


def load(folder) -> SentenceTransformer:
    return SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")


def adapted_modules(model: SentenceTransformer) -> set[str]:
    return {name for name, module in model[0].model.named_modules() if hasattr(module, "lora_A")}


def eval_rows(small_eval, name: str) -> list[dict]:
    return pq.read_table(small_eval / name / "test.parquet").to_pylist()


def independent_hit_at_1(model: SentenceTransformer, rows: list[dict], images) -> float:
    """V1 hit@1 from `encode` directly: a hit when the first (gold) candidate scores highest."""

    def item(text: str, image: str):
        return {"image": str(images / image), "text": text} if image else text

    hits = []
    for row in rows:
        query = model.encode([item(row["qry_text"], row["qry_img_path"])], convert_to_tensor=True)
        candidates = [item(text, image) for text, image in zip(row["tgt_text"], row["tgt_img_path"], strict=True)]
        scores = (query @ model.encode(candidates, convert_to_tensor=True).T)[0]
        hits.append(float(scores[0] >= scores.max()))
    return sum(hits) / len(hits)


def worst(a, b) -> float:
    return (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item()


# -- 1. init -> train (GradCache, DoRA) -> eval -> push -> pull by repo id ------------------------------------------


def test_init_train_eval_push_and_pull_by_repo_id(phi_dir, phi_run, mini_mmeb, small_eval, hub, remote, client_env):
    # train: the DoRA adapter sits on the v1 modules of both towers (2 LLM + 2 CLIP layers), and it trained.
    unmerged = load(phi_run / "final")
    adapted = adapted_modules(unmerged)
    assert {name.rsplit(".", 1)[1] for name in adapted if ".language_model." in name} == LLM_TARGETS
    assert {name.rsplit(".", 1)[1] for name in adapted if ".img_processor." in name} == CLIP_TARGETS
    assert len(adapted) == 16
    assert any("lora_magnitude_vector" in name for name, _ in unmerged.named_parameters())
    trained_b = [name for name, p in unmerged.named_parameters() if "lora_B" in name and p.abs().max() > 0]
    assert any(".img_processor." in name for name in trained_b)
    assert any(".language_model." in name for name in trained_b)

    # eval on the merged folder: results.json holds each dataset's hit@1, as `encode` computes it independently.
    merged = phi_run / "merged"
    eval_args = ["eval", "--model", str(merged), "--data", str(small_eval), "--image-dir", str(mini_mmeb / "images")]
    assert main([*eval_args, "--batch-size", "8"]) == 0
    scores = json.loads((merged / "eval" / "results.json").read_text())["datasets"]
    assert {name: scores[name]["queries"] for name in scores} == dict.fromkeys(EVAL_SETS, EVAL_ROWS)
    assert all(0 <= scores[name]["metrics"]["hit@1"] <= 1 for name in EVAL_SETS)
    merged_model = load(merged)
    vqa = independent_hit_at_1(merged_model, eval_rows(small_eval, "Digits_VQA"), mini_mmeb / "images")
    assert scores["Digits_VQA"]["metrics"]["hit@1"] == pytest.approx(vqa)
    local = embed_like_the_loader(merged_model)
    assert worst(local, embed_like_the_loader(unmerged)) < SAME  # merging kept the embeddings

    # push, then pull by repo id in a process that only has HF_ENDPOINT (and cannot import vlm2vec_hf).
    assert main(["push", str(merged), "alice/phi3v-mini", "--token", ALICE]) == 0
    pushed = hub.repo_files("alice/phi3v-mini")
    assert {"model.safetensors", "backbone_phi3_v.py", "vlm2vec_st.py"} <= set(pushed)
    assert not any(path.startswith("eval/") for path in pushed)
    answer = remote.load("alice/phi3v-mini", auto=True)
    assert answer["ok"], answer
    assert answer["st_module"].startswith("transformers_modules.")
    assert worst(answer["st"], local) < SAME
    assert worst(answer["auto"], [local[0], local[2]]) < SAME  # AutoModel + AutoProcessor by repo id too


# -- 2. GradCache on a mixed-modality Phi batch ---------------------------------------------------------------------


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def mixed_batch() -> tuple[list, list]:
    """Queries [img, txt, img, txt, txt], positives [txt, img, txt, txt, img]; the images' HD grids differ (2x2,
    1x4 and a transposed portrait), so `image_sizes` and the token counts differ per image."""
    square, wide, tall = noise_image(150, 100, 0), noise_image(420, 60, 1), noise_image(60, 420, 2)
    queries = [
        {"image": square, "text": "What is in the image"},
        "a wide striped banner",
        {"image": wide, "text": "Which colour dominates"},
        "a cat and a dog",
        "the surface of the moon",
    ]
    positives = ["a noisy square", {"image": tall}, "a noisy banner", "two pets", {"image": noise_image(90, 60, 3)}]
    return queries, positives


def test_gradcache_on_a_mixed_batch_equals_the_plain_loss(phi_dir):
    """Mini-batches of 2 and of 3 cut image rows from text rows (and leave some mini-batches text only): the loss
    and every parameter's gradient equal the plain in-batch loss's, and each mini-batch gets its own images."""
    model = load(phi_dir)
    model.train()
    columns = mixed_batch()
    features = [model.preprocess(column) for column in columns]
    assert all(f["pixel_values"].ndim == 5 and "image_sizes" in f for f in features)

    def loss_and_grads(loss_fn) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        loss = loss_fn([dict(f) for f in features], labels=None)
        loss.backward()
        return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain_loss, plain_grads = loss_and_grads(MultipleNegativesRankingLoss(model, scale=50.0))
    assert any(".img_processor." in name for name in plain_grads)  # the vision tower gets gradients
    largest = max(grad.abs().max().item() for grad in plain_grads.values())
    calls = []

    def record(module, args, kwargs):
        calls.append({key: kwargs.get(key) for key in ("input_ids", "pixel_values", "image_sizes")})

    model[0].model.register_forward_pre_hook(record, with_kwargs=True)
    for mini_batch_size in (2, 3):
        calls.clear()
        cached_loss, cached_grads = loss_and_grads(build_loss(model, TrainConfig(gc_mini_batch_size=mini_batch_size)))

        assert abs(cached_loss - plain_loss) <= 1e-5 * abs(plain_loss), mini_batch_size
        assert cached_grads.keys() == plain_grads.keys()
        for name, grad in plain_grads.items():
            # Relative to the parameter's own largest gradient; the floor is for gradients that are zero in exact
            # arithmetic (CLIP's key biases: softmax ignores them), which are fp32 round-off in both runs.
            tolerance = 1e-5 * max(grad.abs().max().item(), 1e-4 * largest)
            assert (cached_grads[name] - grad).abs().max().item() <= tolerance, (mini_batch_size, name)

        # Every mini-batch (embedded twice: without, then with a graph) carried exactly its own rows' images.
        chunks = [
            column[begin : begin + mini_batch_size] for column in columns for begin in range(0, 5, mini_batch_size)
        ]
        alone = [model.preprocess(rows) for rows in chunks]
        assert len(calls) == 2 * len(chunks)
        for call, rows, expected in zip(calls, chunks + chunks, alone + alone, strict=True):
            assert call["input_ids"].shape[0] == len(rows)
            if "pixel_values" not in expected:  # a text-only mini-batch
                assert call["pixel_values"] is None and call["image_sizes"] is None
                continue
            assert torch.equal(call["image_sizes"], expected["image_sizes"]), (mini_batch_size, rows)
            assert torch.equal(call["pixel_values"], expected["pixel_values"]), (mini_batch_size, rows)
        assert any(call["pixel_values"] is None for call in calls)
        assert any(c["pixel_values"] is not None and len(c["pixel_values"]) < len(c["input_ids"]) for c in calls)


# -- 3. hard negatives, Matryoshka, resume ---------------------------------------------------------------------------


def test_hard_negatives_and_matryoshka_loss_follow_the_formula(phi_dir, mini_mmeb, small_eval, tmp_path):
    """Loss = sum over dims d of CE(50 * cos(q[:d], [p; n][:d]), diagonal), from embeddings computed apart; and the
    in-training evaluator builds Phi prompts (`<|image_1|>`, never Qwen's `<|image_pad|>`)."""
    config = TrainConfig(
        model=str(phi_dir),
        data=str(mini_mmeb / "train"),
        image_dir=str(mini_mmeb / "images"),
        output_dir=str(tmp_path / "run"),
        subsets=["Digits_VQA", "Photos_i2t", "Digits_t2i"],
        num_sample_per_subset=2,
        per_device_train_batch_size=5,
        gc_mini_batch_size=2,
        hard_negatives=True,
        matryoshka_dims=[64, 16],
        eval_data=str(small_eval),
    )
    trainer = build_trainer(config)
    prompts = [text for dataset in trainer.evaluator.datasets for text, _ in dataset.items()]
    assert any(text.startswith("<|image_1|>") for text in prompts)
    assert not any("<|image_pad|>" in text for text in prompts)

    model = trainer.model
    rows = trainer.train_dataset.select(range(5))
    columns = [rows[name] for name in ("query", "positive", "negative")]
    assert {bool(side["image"]) for column in columns for side in column} == {True, False}
    model.train()
    loss = trainer.loss([model.preprocess(column) for column in columns], labels=None).item()

    model.eval()
    with torch.no_grad():
        q, p, n = (model.encode(column, convert_to_tensor=True, batch_size=5) for column in columns)
    assert loss == pytest.approx(matryoshka_infonce(q, torch.cat([p, n]), dims=(64, 16)), rel=1e-5)
    assert abs(loss - matryoshka_infonce(q, p, dims=(64, 16))) > 1e-3  # the hard negatives are in the softmax


def matryoshka_infonce(queries: torch.Tensor, documents: torch.Tensor, dims: tuple[int, ...]) -> float:
    """Sum over `dims` of the InfoNCE loss (scale 50 = 1 / 0.02) of the embeddings' first d dimensions, query i's
    positive being document i."""
    total = 0.0
    for dim in dims:
        q, d = (torch.nn.functional.normalize(x[:, :dim], dim=-1) for x in (queries, documents))
        total += torch.nn.functional.cross_entropy(50.0 * q @ d.T, torch.arange(len(q))).item()
    return total


class CrashBeforeStep(TrainerCallback):
    """Dies like a killed process as step `step` begins (nothing saved at the crash)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step:
            raise SimulatedCrash(f"killed in step {self.step}")


def test_resume_after_a_crash_reaches_the_uninterrupted_weights(phi_dir, phi_run, mini_mmeb, tmp_path, monkeypatch):
    crashed = tmp_path / "crashed"
    args = short_dora_run_args(phi_dir, mini_mmeb, crashed)
    with pytest.raises(SimulatedCrash):  # killed while taking step 2, after checkpoint-1 was written
        train(train_config(args), callbacks=[CrashBeforeStep(2)])
    assert sorted(p.name for p in crashed.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint-1"]
    recorder = StepRecorder()
    add_callback_to_cli_runs(monkeypatch, recorder)
    assert main([*args, "--resume"]) == 0
    assert recorder.start_step == 1 and recorder.step_ends == [2] and recorder.optimizer_steps == 1

    # A LoRA run trains only the adapter (the base stays frozen): both runs' adapter tensors, DoRA magnitudes too.
    expected, resumed = (load_file(run / "final" / "adapter_model.safetensors") for run in (phi_run, crashed))
    assert expected.keys() == resumed.keys() and any("lora_magnitude_vector" in name for name in resumed)
    assert max((expected[name] - resumed[name]).abs().max().item() for name in expected) < 1e-6
    first = load_file(phi_run / "checkpoint-1" / "adapter_model.safetensors")
    assert max((first[name] - resumed[name]).abs().max().item() for name in first) > 1e-4  # step 2 moved them


# -- 4. plain transformers on a LoRA checkpoint folder ---------------------------------------------------------------


def test_auto_model_on_a_lora_checkpoint_folder_embeds_like_sentence_transformers(phi_run):
    from transformers import AutoModel, AutoProcessor

    checkpoint = phi_run / "checkpoint-1"
    assert (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "model.safetensors").exists()
    auto = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
    assert any("lora_magnitude_vector" in name for name, _ in auto.named_parameters())
    processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)
    prompts = [processor.format_prompt("What is in the image", INSTRUCTION, num_images=1), "A cat and a dog"]
    with torch.no_grad():
        embeddings = auto(**processor(text=prompts, images=[IMAGE])).embeddings
    local = embed_like_the_loader(load(checkpoint))
    assert worst(embeddings, [local[0], local[2]]) < SAME
    assert worst(local, embed_like_the_loader(load(phi_run / "final"))) > 1e-4  # step 1 is not the final weights
