"""`vlm2vec eval` end to end on the offline mini-MMEB set, the embedding cache, and the evaluator inside training."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from sentence_transformers import SentenceTransformer

from vlm2vec_hf.cli import main
from vlm2vec_hf.evaluation.data import load_mmeb_eval
from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator
from vlm2vec_hf.training.config import TrainConfig
from vlm2vec_hf.training.trainer import build_trainer


def run_eval(model_dir, data, out, *extra: str) -> dict:
    args = ["eval", "--model", str(model_dir), "--image-dir", str(data / "images"), "--out", str(out), *extra]
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_v1_eval_writes_json_table_and_chart(tiny_random_model_dir, mini_mmeb, tmp_path, capsys):
    results = run_eval(tiny_random_model_dir, mini_mmeb, tmp_path / "v1", "--data", str(mini_mmeb / "eval"))
    assert set(results["datasets"]) == {"Digits", "Faces", "Digits_t2i", "Photos_i2t", "Photos_i2i", "Digits_VQA"}
    assert results["groups"]["Classification"]["datasets"] == ["Digits", "Faces"]
    assert results["groups"]["Overall"]["count"] == 6 and len(results["groups"]["Overall"]["missing"]) == 36
    encoding = results["encoding"]
    assert encoding["unique_items"] < encoding["naive_items"] and encoding["encoded"] == encoding["unique_items"]
    table = (tmp_path / "v1" / "results.md").read_text()
    assert (
        "| model | Classification (2) | VQA (1) | Retrieval (3) | Visual Grounding (0) | IND (6) | OOD (0) |" in table
    )
    assert (tmp_path / "v1" / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "Reports:" in capsys.readouterr().out


@pytest.mark.slow
def test_v2_eval_caches_embeddings_and_compares_with_published(tiny_random_model_dir, mini_mmeb, tmp_path, capsys):
    common = ["--data", str(mini_mmeb / "eval-v2"), "--protocol", "v2", "--cache-dir", str(tmp_path / "cache")]
    first = run_eval(tiny_random_model_dir, mini_mmeb, tmp_path / "a", *common)
    docs = first["datasets"]["Digits_docs"]
    assert docs["eval_type"] == "global" and docs["headline_metric"] == "ndcg_linear@5"
    assert {"hit@10", "map@5", "mrr@10", "ndcg_exponential@5", "recall@1", "f1@5"} <= set(docs["metrics"])
    assert first["groups"]["VisDoc"]["datasets"] == ["Digits_docs"]
    second = run_eval(tiny_random_model_dir, mini_mmeb, tmp_path / "b", *common, "--compare", "VLM2Vec-V2.0")
    assert second["encoding"]["encoded"] == 0 and second["encoding"]["from_cache"] == first["encoding"]["unique_items"]
    assert second["datasets"] == first["datasets"]
    assert second["published"]["model"] == "VLM2Vec-V2.0" and second["published"]["scores"] == {}
    assert "VLM2Vec-V2.0 has no published score" in (tmp_path / "b" / "results.md").read_text()


@pytest.mark.slow
def test_compare_puts_published_scores_beside_ours(tiny_random_model_dir, mini_mmeb, tmp_path, capsys):
    # the mini Digits classification set under a published dataset's name, to line the two up
    shutil.copytree(mini_mmeb / "eval" / "Digits", tmp_path / "eval" / "VOC2007")
    args = ["--data", str(tmp_path / "eval"), "--compare", "TIGER-Lab/VLM2Vec-Qwen2VL-2B", "--release", "v2.0.0"]
    results = run_eval(tiny_random_model_dir, mini_mmeb, tmp_path / "out", *args)
    assert results["published"]["scores"] == {"VOC2007": 74.3}
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| TIGER-Lab/VLM2Vec-Qwen2VL-2B (published) | 74.3 | – | – | – | 74.3 | – | 74.3 |" in table
    ours = 100 * results["datasets"]["VOC2007"]["score"]
    assert f"{'VOC2007':<28} {ours:7.1f} {74.3:12.1f} {ours - 74.3:+7.1f}" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluator_runs_inside_training(tiny_random_model_dir, mini_mmeb, tmp_path):
    # Two eval sets (an image classification one and a text -> image one) keep the three evaluations cheap.
    eval_dir = tmp_path / "eval"
    for name in ("Digits", "Digits_t2i"):
        shutil.copytree(mini_mmeb / "eval" / name, eval_dir / name)
    shutil.copy(mini_mmeb / "eval" / "tasks.json", eval_dir / "tasks.json")
    config = TrainConfig(
        model=str(tiny_random_model_dir),
        data=str(mini_mmeb / "train"),
        image_dir=str(mini_mmeb / "images"),
        eval_data=str(eval_dir),
        output_dir=str(tmp_path / "run"),
        subsets=["Digits"],
        num_sample_per_subset=16,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        warmup_steps=0,  # the full rate from step 1, so two steps move the metrics
        max_steps=2,
        eval_steps=2,
    )
    trainer = build_trainer(config)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "eval_mmeb_hit@1" in entry]
    assert [entry["step"] for entry in logged] == [0, 2]  # on start and at eval_steps
    assert {"eval_mmeb_Digits_hit@1", "eval_mmeb_Digits_t2i_hit@1", "eval_mmeb_group_Overall"} <= set(logged[-1])

    # What was logged at each step is what the evaluator gives on the model as it was then: the initial weights at
    # step 0, the trained ones (the final state, max_steps = the last eval step) at step 2.
    evaluator = MMEBEvaluator(load_mmeb_eval(eval_dir, mini_mmeb / "images"))
    initial = SentenceTransformer(str(tiny_random_model_dir), trust_remote_code=True, device="cpu")
    for entry, model in zip(logged, [initial, trainer.model]):
        expected = {f"eval_{name}": value for name, value in evaluator(model).items()}
        assert {name: entry[name] for name in expected} == pytest.approx(expected, abs=1e-9), entry["step"]
    # ... and they follow the training (0.08 -> 0.16 here), so a stale evaluation could not pass the check above
    assert abs(logged[1]["eval_mmeb_hit@1"] - logged[0]["eval_mmeb_hit@1"]) >= 0.03, logged
    assert yaml.safe_load(yaml.safe_dump(config.__dict__))["eval_data"] == str(eval_dir)
