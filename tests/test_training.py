"""`vlm2vec train` end to end on the offline mini-MMEB set: learning, resume, LoRA/DoRA + merge, options."""

from __future__ import annotations

import json
import re

import pytest
import torch
from helpers import SimulatedCrash, StepRecorder, add_callback_to_cli_runs, train_args, train_config
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from vlm2vec_hf.cli import main
from vlm2vec_hf.evaluation.data import load_mmeb_eval
from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator
from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.training.trainer import build_trainer, train

# Mean hit@1 of a model that ranks candidates at random on the mini-MMEB eval sets (1/candidates per query).
CHANCE = (1 / 10 + (2 / 3 * 1 / 10 + 1 / 3 * 1 / 2) + 1 / 10 + 1 / 2 + 1 / 10 + 1 / 25) / 6


def mean_hit_at_1(model_dir, data) -> float:
    model = SentenceTransformer(str(model_dir), trust_remote_code=True, device="cpu")
    evaluator = MMEBEvaluator(load_mmeb_eval(data / "eval", data / "images"))
    return evaluator(model)["mmeb_hit@1"]


def state(model_dir) -> dict[str, torch.Tensor]:
    model = SentenceTransformer(str(model_dir), trust_remote_code=True, device="cpu")
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.mark.slow
def test_training_lifts_hit_at_1_far_above_chance(tiny_random_model_dir, mini_mmeb, tmp_path):
    before = mean_hit_at_1(tiny_random_model_dir, mini_mmeb)
    assert (
        main(
            train_args(
                tiny_random_model_dir,
                mini_mmeb,
                tmp_path / "run",
                "--max-steps",
                "40",
                "--save-steps",
                "1000",
                "--per-device-train-batch-size",
                "32",
            )
        )
        == 0
    )
    after = mean_hit_at_1(tmp_path / "run" / "final", mini_mmeb)
    assert after > 1.6 * CHANCE and after > before + 0.1, (before, after, CHANCE)


class CrashAfterStep(TrainerCallback):
    """Dies like a killed process right after `step` (no clean shutdown, nothing saved at the crash)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise SimulatedCrash(f"killed after step {self.step}")


# The tiny random folder (a fixture) of each family the resume test trains.
RESUME_FAMILIES = {"qwen2_vl": "tiny_random_model_dir", "qwen3_vl": "tiny_qwen3vl_model_dir"}


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "dora"])
@pytest.mark.parametrize("family", RESUME_FAMILIES)
def test_resume_after_a_crash_reaches_the_uninterrupted_weights(
    request, family, mini_mmeb, tmp_path, lora, monkeypatch
):
    model_dir = request.getfixturevalue(RESUME_FAMILIES[family])
    assert json.loads((model_dir / "config.json").read_text())["vlm_config"]["model_type"] == family
    extra = ["--max-steps", "6", "--save-steps", "3", "--num-sample-per-subset", "40", *(["--lora"] if lora else [])]
    assert main(train_args(model_dir, mini_mmeb, tmp_path / "straight", *extra)) == 0

    crashed = tmp_path / "crashed"
    parser_args = train_args(model_dir, mini_mmeb, crashed, *extra)
    config = train_config(parser_args)
    with pytest.raises(SimulatedCrash):
        train(config, callbacks=[CrashAfterStep(4)])
    assert sorted(p.name for p in crashed.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint-3"]
    saved_step = json.loads((crashed / "checkpoint-3" / "trainer_state.json").read_text())["global_step"]
    assert saved_step == 3
    recorder = StepRecorder()
    add_callback_to_cli_runs(monkeypatch, recorder)
    assert main([*parser_args, "--resume"]) == 0
    # The resumed run continued from the checkpoint: it started at its step and took only the 3 remaining steps
    # (a run from scratch, being seeded, would reach the same weights too, so the weights alone prove nothing).
    assert recorder.start_step == saved_step
    assert recorder.step_ends == [4, 5, 6] and recorder.optimizer_steps == 3
    assert json.loads((crashed / "checkpoint-6" / "trainer_state.json").read_text())["global_step"] == 6

    expected, resumed = state(tmp_path / "straight" / "final"), state(crashed / "final")
    assert expected.keys() == resumed.keys()
    if lora:
        assert any("lora_magnitude_vector" in name for name in resumed)
    initial = state(model_dir)
    moved = [name for name in initial if name in resumed and not torch.equal(initial[name], resumed[name])]
    moved += [name for name in resumed if "lora_B" in name and resumed[name].abs().max() > 0]  # B starts at 0
    assert moved  # training changed weights
    worst = max((expected[name] - resumed[name]).abs().max().item() for name in expected)
    assert worst < 1e-6


@pytest.mark.slow
def test_dora_adapter_trains_only_the_language_model_and_merges(tiny_random_model_dir, mini_mmeb, tmp_path):
    run = tmp_path / "lora"
    assert (
        main(
            train_args(
                tiny_random_model_dir,
                mini_mmeb,
                run,
                "--lora",
                "--lora-r",
                "4",
                "--max-steps",
                "4",
                "--save-steps",
                "1000",
                "--num-sample-per-subset",
                "32",
                "--merge",
            )
        )
        == 0
    )
    adapter_files = sorted(p.name for p in (run / "final").iterdir())
    assert "adapter_model.safetensors" in adapter_files and "model.safetensors" not in adapter_files

    unmerged = SentenceTransformer(str(run / "final"), trust_remote_code=True, device="cpu")
    trainable = [name for name, p in unmerged.named_parameters() if "lora_" in name]
    assert trainable and all(".language_model." in name for name in trainable)
    assert any("lora_magnitude_vector" in name for name in trainable)  # DoRA

    merged_dir = run / "merged"
    assert "model.safetensors" in {p.name for p in merged_dir.iterdir()}
    merged = SentenceTransformer(str(merged_dir), trust_remote_code=True, device="cpu")
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    inputs = [
        "a handwritten digit seven",
        {
            "image": str(mini_mmeb / "images/digits/0001.png"),
            "text": "<|image_pad|> Represent the given image for classification.",
        },
    ]
    difference = abs(merged.encode(inputs) - unmerged.encode(inputs)).max()
    assert difference < 1e-5
    base = SentenceTransformer(str(tiny_random_model_dir), trust_remote_code=True, device="cpu")
    assert abs(base.encode(inputs) - unmerged.encode(inputs)).max() > 1e-4  # the adapter did something

    # Plain transformers on the adapter checkpoint: base + adapter, DoRA magnitudes included.
    from transformers import AutoModel, AutoProcessor

    auto = AutoModel.from_pretrained(run / "final", trust_remote_code=True).eval()
    assert any("lora_magnitude_vector" in name for name, _ in auto.named_parameters())
    processor = AutoProcessor.from_pretrained(tiny_random_model_dir, trust_remote_code=True)
    texts = ["a handwritten digit seven", "a handwritten digit one"]
    with torch.no_grad():
        auto_embeddings = auto(**processor(text=texts)).embeddings.numpy()
    assert abs(auto_embeddings - unmerged.encode(texts)).max() < 1e-5


def test_lora_regex_keeps_qwen2_5_vl_vision_mlp_out():
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel
    from vlm2vec_hf.tiny import random_backbone
    from vlm2vec_hf.training.adapters import reference_lora_config

    model = VLM2VecModel.from_backbone(random_backbone("tiny", family="qwen2_5_vl"))
    model.add_adapter(reference_lora_config(model.family, r=2))
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in model.named_parameters() if ".lora_A." in name}
    assert adapted and all(".language_model." in name for name in adapted)
    assert {name.rsplit(".", 1)[1] for name in adapted} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert any(re.search(r"visual\.blocks\.\d+\.mlp\.gate_proj", name) for name, _ in model.named_parameters())


@pytest.mark.slow
def test_objective_options_build_the_expected_losses(tiny_random_model_dir, mini_mmeb, tmp_path):
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    base = {
        "model": str(tiny_random_model_dir),
        "data": str(mini_mmeb / "train"),
        "image_dir": str(mini_mmeb / "images"),
        "output_dir": str(tmp_path / "o"),
        "num_sample_per_subset": 16,
        "per_device_train_batch_size": 8,
        "max_steps": 2,
    }
    trainer = build_trainer(TrainConfig(**base, hard_negatives=True, matryoshka_dims=[64, 32]))
    assert isinstance(trainer.loss, MatryoshkaLoss)
    assert isinstance(trainer.loss.loss, CachedMultipleNegativesRankingLoss)
    assert trainer.loss.loss.scale == pytest.approx(50.0)
    assert trainer.train_dataset.column_names == ["query", "positive", "negative"]
    trainer.train()  # query, positive and hard negative all go through the cached loss

    plain = build_trainer(TrainConfig(**base, gc_mini_batch_size=0, temperature=0.05))
    assert isinstance(plain.loss, MultipleNegativesRankingLoss) and plain.loss.scale == pytest.approx(20.0)


def per_subset_trainer(model_dir, data, out, **options):
    """A trainer on 24 rows per mini-MMEB subset, batch 8, and the subsets' bounds in its concatenated dataset."""
    config = TrainConfig(
        model=str(model_dir),
        data=str(data / "train"),
        image_dir=str(data / "images"),
        output_dir=str(out),
        num_sample_per_subset=24,
        per_device_train_batch_size=8,
        max_steps=2,
        **options,
    )
    trainer = build_trainer(config)
    sizes = [len(subset) for subset in trainer.train_dataset.values()]
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]

    def owner(index: int) -> int:
        return next(i for i in range(len(sizes)) if bounds[i] <= index < bounds[i + 1])

    return config, trainer, sizes, owner


def test_batch_per_subset_draws_each_batch_from_one_subset(tiny_random_model_dir, mini_mmeb, tmp_path):
    _, trainer, sizes, owner = per_subset_trainer(tiny_random_model_dir, mini_mmeb, tmp_path, batch_per_subset=True)
    batches = list(trainer.get_train_dataloader().batch_sampler)
    assert len(batches) == sum(sizes) // 8
    for batch in batches:
        assert len({owner(index) for index in batch}) == 1


class PrecisionRecorder(TrainerCallback):
    """How the model computes during training: per forward of the VLM2Vec model, (builds a graph, the autocast
    dtype or None); and the dtypes the language model's first projection produced (recomputations included).
    Forwards after training (saving, the card's examples) are not counted; the model is kept to test afterwards."""

    def __init__(self):
        self.forwards: list[tuple[bool, torch.dtype | None]] = []
        self.projection_dtypes: set[torch.dtype] = set()
        self.dtypes_after: set[torch.dtype] = set()  # the projection's, after training
        self.training = False

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model, self.training = model, True
        vlm2vec = model[0].model
        projection = vlm2vec.vlm.language_model.layers[0].self_attn.q_proj

        def before(module, module_args, module_kwargs):
            device = module_kwargs["input_ids"].device.type
            autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
            if self.training:
                self.forwards.append((torch.is_grad_enabled(), autocast))

        vlm2vec.register_forward_pre_hook(before, with_kwargs=True)
        projection.register_forward_hook(
            lambda module, inputs, output: (self.projection_dtypes if self.training else self.dtypes_after).add(
                output.dtype
            )
        )


@pytest.mark.slow
def test_gradient_checkpointing_and_bf16_train_from_the_cli(
    tiny_random_model_dir, mini_mmeb, tmp_path, caplog, monkeypatch
):
    before = state(tiny_random_model_dir)
    recorder = PrecisionRecorder()
    add_callback_to_cli_runs(monkeypatch, recorder)
    args = train_args(tiny_random_model_dir, mini_mmeb, tmp_path / "run", "--max-steps", "3", "--num-sample-per-subset")
    assert main([*args, "8", "--gradient-checkpointing", "--bf16", "--save-steps", "100"]) == 0
    # --bf16 really computes in bf16: both GradCache passes (embedding without a graph, then again with one) ran
    # under bf16 autocast, and the language model's matmuls produced bf16 activations.
    assert {kind for kind, _ in recorder.forwards} == {False, True}
    assert {dtype for _, dtype in recorder.forwards} == {torch.bfloat16}
    assert recorder.projection_dtypes == {torch.bfloat16}
    after = state(tmp_path / "run" / "final")
    # bf16 is mixed precision (autocast): the saved master weights stay fp32, finite, and have moved.
    assert all(tensor.dtype == torch.float32 and torch.isfinite(tensor).all() for tensor in after.values())
    assert any(not torch.equal(before[name], after[name]) for name in before)
    # Afterwards the trained model is the plain model again: no autocast wrapper left on its forward, and it
    # embeds in fp32 as the saved folder does.
    model = recorder.model
    assert model.forward.__func__ is type(model).forward and not hasattr(model.forward, "__wrapped__")
    recorder.dtypes_after.clear()
    model.encode(["a cat"])
    assert recorder.dtypes_after == {torch.float32}
    # sentence-transformers' own card is written, without tripping over text-only rows' missing images
    assert (tmp_path / "run" / "final" / "README.md").is_file()
    assert not [r for r in caplog.records if "Could not save predict example asset" in r.getMessage()]


@pytest.mark.slow
def test_a_new_run_never_overwrites_an_earlier_one(tiny_random_model_dir, mini_mmeb, tmp_path, capsys):
    args = train_args(tiny_random_model_dir, mini_mmeb, tmp_path / "run", "--max-steps", "2", "--subsets", "Faces")
    assert main(args) == 0
    weights = (tmp_path / "run" / "final" / "model.safetensors").read_bytes()
    assert main([*args, "--learning-rate", "0.5"]) == 2
    assert "already holds a run (checkpoint-2, final); pass --resume" in capsys.readouterr().err
    assert (tmp_path / "run" / "final" / "model.safetensors").read_bytes() == weights
    assert main([*args, "--learning-rate", "0.5", "--overwrite-output-dir"]) == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").read_bytes() != weights


@pytest.mark.slow
def test_interleave_batch_size_builds_batches_of_single_subset_blocks(tiny_random_model_dir, mini_mmeb, tmp_path):
    config, trainer, sizes, owner = per_subset_trainer(
        tiny_random_model_dir, mini_mmeb, tmp_path, interleave_batch_size=4
    )
    sampler = trainer.get_train_dataloader().batch_sampler
    batches = list(sampler)
    assert len(batches) == len(sampler) == sum(size // 4 for size in sizes) // 2
    flat = [index for batch in batches for index in batch]
    assert len(flat) == len(set(flat))  # no sample twice in an epoch
    mixed = 0
    for batch in batches:
        blocks = [batch[:4], batch[4:]]
        assert all(len({owner(index) for index in block}) == 1 for block in blocks)
        mixed += owner(blocks[0][0]) != owner(blocks[1][0])
    assert mixed > 0  # blocks of different subsets share a batch (not IB = batch)
    assert batches == list(sampler)  # same seed and epoch, same order (resume sees the same batches)
    trainer.train()
    with pytest.raises(ValueError, match="must divide"):
        TrainConfig(**{**config.__dict__, "interleave_batch_size": 3}).validate()
