"""The main job (`vlm2vec demo`): the whole pipeline on the embedded default, offline.

1. build the mini-MMEB set from images bundled with scikit-learn / scikit-image;
2. build a tiny random-init VLM2Vec model of the default backbone family;
3. evaluate it before training (images: MMEB-V1 protocol; the video sets: MMEB-V2 protocol);
4. train it with `vlm2vec train`'s code path on the V2-style mixture of image subsets and video tables
   (interleaved sub-batches, GradCache contrastive loss);
5. evaluate again (images and video), write the reports and the model card into the trained model folder;
6. embed a few bundled photos and captions with the trained model and print the similarities;
7. push the folder when a Hub endpoint and token are configured (`--push-to`, or `HF_ENDPOINT` + a token).

The model starts from random weights and the data is small: the run shows every stage working and the model
learning, not a useful embedding model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from vlm2vec_hf.modeling_vlm2vec.backbones import DEFAULT_MODEL_TYPE, get_family
from vlm2vec_hf.tiny import BUNDLED_IMAGES

DEMO_IMAGES = {
    "cat": "chelsea_150x100.png",
    "coffee": "coffee_120x80.png",
    "flower": "flower_90x60.png",
    "temple": "china_crop_97x61.png",
}
DEMO_TEXTS = ["Chelsea the cat", "a coffee cup", "a flower", "a Chinese temple by a lake"]
DEMO_MAX_PIXELS = 12544  # 112x112: keeps the 2-core CPU run short
DEFAULT_REPO_NAME = "vlm2vec-mini-demo"


def similarity_table(row_labels: list[str], col_labels: list[str], scores: np.ndarray) -> str:
    """Render a (rows x cols) score matrix as an aligned text table."""
    width = max(len(label) for label in col_labels + ["0.000"]) + 2
    first = max(len(label) for label in row_labels) + 2
    lines = [" " * first + "".join(label.rjust(width) for label in col_labels)]
    for label, row in zip(row_labels, scores):
        lines.append(label.ljust(first) + "".join(f"{value:.3f}".rjust(width) for value in row))
    return "\n".join(lines)


def _load(model_dir: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), trust_remote_code=True, device="cpu")


def _evaluate(model, data_dir: Path, out: Path, name: str) -> tuple[dict, dict]:
    """(image reports: MMEB-V1 protocol on `eval/` into `out`, video reports: MMEB-V2 protocol on `eval-video/` into
    `out/video`), each `{"results", "paths"}`."""
    from vlm2vec_hf.evaluation.command import evaluate_and_report

    results, paths = evaluate_and_report(model, data_dir / "eval", data_dir / "images", out, name)
    video_results, video_paths = evaluate_and_report(
        model, data_dir / "eval-video", data_dir / "video-tasks" / "frames", out / "video", name, protocol="v2"
    )
    return {"results": results, "paths": paths}, {"results": video_results, "paths": video_paths}


def _video_mean(reports: dict) -> float:
    """Mean hit@1 over the video datasets (the V2 report's Video column)."""
    return reports["results"]["groups"]["Video"]["score"]


def _push_target(push_to: str | None) -> str | None:
    """The repo to push to, or None when no Hub is configured (an explicit `push_to`, or HF_ENDPOINT + token)."""
    from huggingface_hub import get_token

    if push_to:
        return push_to
    if not (os.environ.get("HF_ENDPOINT") and get_token()):
        return None
    from huggingface_hub import HfApi

    return f"{HfApi().whoami()['name']}/{DEFAULT_REPO_NAME}"


def _similarities(model) -> np.ndarray:
    from vlm2vec_hf.st_module import MMEB_INSTRUCTIONS

    images = [str(BUNDLED_IMAGES / f) for f in DEMO_IMAGES.values()]
    images = model.encode(images, prompt=MMEB_INSTRUCTIONS["MSCOCO_i2t"])
    texts = model.encode(DEMO_TEXTS)
    scores = model.similarity(images, texts).numpy()
    print("\nimage (instruction 'MSCOCO_i2t') -> caption, cosine similarity, trained model:")
    print(similarity_table(list(DEMO_IMAGES), DEMO_TEXTS, scores))
    return scores


def _clip_similarities(model, data_dir: Path, count: int = 4) -> np.ndarray:
    """Held-out mini-MMEB clips (every 6th eval row: different colours) against their captions, with the video
    classification prompt the model was trained with."""
    import datasets

    from vlm2vec_hf.evaluation.prompts_video import CLASSIFICATION_INSTRUCTIONS

    rows = datasets.load_dataset(
        "parquet", data_files=str(data_dir / "eval-video" / "Shapes_cls" / "test.parquet"), split="train"
    ).to_list()[::6][:count]
    frames = data_dir / "video-tasks" / "frames"
    clips = model.encode(
        [{"video": str(frames / row["qry_video"])} for row in rows], prompt=CLASSIFICATION_INSTRUCTIONS["K700"]
    )
    captions = [row["tgt_text"][0] for row in rows]
    scores = model.similarity(clips, model.encode(captions)).numpy()
    print("\nclip (instruction of K700) -> caption, cosine similarity, trained model:")
    print(similarity_table([Path(row["qry_video"]).name for row in rows], captions, scores))
    return scores


def run_demo(out_dir: str | os.PathLike = "vlm2vec-demo", steps: int = 300, push_to: str | None = None) -> dict:
    """Run the pipeline into `out_dir` (must be new or empty); returns the paths and the before / after scores."""
    from vlm2vec_hf.hub_cards.card import write_model_card
    from vlm2vec_hf.tiny import write_random_model
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.mini_mmeb import build_mini_mmeb
    from vlm2vec_hf.training.trainer import train

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new --out folder (nothing was changed)")
    start = time.perf_counter()
    data = build_mini_mmeb(out / "data")
    print(f"[1/7] mini-MMEB set: {data} (train/, train-video/, train-v2/, eval/, eval-v2/, eval-video/, images/)")
    initial = write_random_model(out / "initial-model", max_pixels=DEMO_MAX_PIXELS)
    backbone = get_family().display_name_for(DEFAULT_MODEL_TYPE)
    print(f"[2/7] random-init tiny {backbone} VLM2Vec model (RANDOM weights): {initial}")
    before, video_before = _evaluate(_load(initial), data, out / "eval-before", "random init")
    print(
        f"[3/7] before training (mini set): images (MMEB-V1 protocol) mean hit@1 "
        f"{100 * before['results']['overall']:.1f}, video (MMEB-V2) {100 * _video_mean(video_before):.1f}"
    )
    manifest = json.loads((data / "manifest.json").read_text())
    config = TrainConfig(
        model=str(initial),
        data=str(data / "train-v2"),
        image_dir=str(data / "images"),
        video_dir=str(data / "video-tasks" / "frames"),
        subsets=manifest["train-v2"]["subsets"],
        output_dir=str(out / "run"),
        per_device_train_batch_size=32,
        interleave_batch_size=16,
        gc_mini_batch_size=16,
        learning_rate=1e-3,
        warmup_steps=min(20, steps // 10),
        max_steps=steps,
        save_steps=max(steps, 1),
        logging_steps=max(steps // 10, 1),
        seed=0,
    )
    final = train(config)
    (final / "train_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    print(f"[4/7] trained {steps} steps on image and video subsets (GradCache contrastive loss): {final}")
    trained = _load(final)
    after, video_after = _evaluate(trained, data, final / "eval", final.name)
    print(
        f"[5/7] after training: images mean hit@1 {100 * after['results']['overall']:.1f}, video "
        f"{100 * _video_mean(video_after):.1f} (reports in {final / 'eval'}, {final / 'eval' / 'video'})"
    )
    repo_id = _push_target(push_to)
    card = write_model_card(
        final,
        repo_id=repo_id or str(final),
        model_name=DEFAULT_REPO_NAME,
        eval_results=after["results"],
        train_config=dataclasses.asdict(config),
        random_weights=False,
        notes="A tiny model trained from random weights for under a minute on the offline mini-MMEB set: it shows "
        "the pipeline working, it is not a useful embedding model.",
    )
    print(f"[6/7] model card: {card}")
    scores = _similarities(trained)
    _clip_similarities(trained, data)
    pushed = None
    if repo_id:
        from vlm2vec_hf.hub_cards.push import push_model_folder

        pushed = push_model_folder(final, repo_id)
        print(f"[7/7] pushed to {repo_id}: SentenceTransformer({repo_id!r}, trust_remote_code=True)")
    else:
        print("[7/7] push skipped: no Hub configured (pass --push-to REPO_ID, or set HF_ENDPOINT and HF_TOKEN)")
    summary = {
        "data": str(data),
        "initial_model": str(initial),
        "model": str(final),
        "card": str(card),
        "reports_before": {k: str(v) for k, v in before["paths"].items()},
        "reports_after": {k: str(v) for k, v in after["paths"].items()},
        "mean_hit_at_1_before": before["results"]["overall"],
        "mean_hit_at_1_after": after["results"]["overall"],
        "video_reports_before": {k: str(v) for k, v in video_before["paths"].items()},
        "video_reports_after": {k: str(v) for k, v in video_after["paths"].items()},
        "video_mean_hit_at_1_before": _video_mean(video_before),
        "video_mean_hit_at_1_after": _video_mean(video_after),
        "pushed_to": repo_id if pushed else None,
        "seconds": time.perf_counter() - start,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"\nDone in {summary['seconds']:.0f} s. Mean hit@1 {100 * summary['mean_hit_at_1_before']:.1f} -> "
        f"{100 * summary['mean_hit_at_1_after']:.1f} (images), {100 * summary['video_mean_hit_at_1_before']:.1f} -> "
        f"{100 * summary['video_mean_hit_at_1_after']:.1f} (video). Model folder: {final} (load it with "
        f"SentenceTransformer({str(final)!r}, trust_remote_code=True)); summary: {out / 'summary.json'}"
    )
    return {**summary, "similarities": scores}
