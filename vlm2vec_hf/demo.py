"""The main job, first version: build a small default model, embed bundled images and texts, print similarities.

The model's weights are random, so the similarities say nothing about quality; the run shows the whole path
(model folder on disk, fresh `SentenceTransformer` load with `trust_remote_code=True`, mixed text / image /
image+text batches, MMEB instructions by name) working end to end, offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vlm2vec_hf.model_folder import load_sentence_transformer, make_processor, write_model_folder
from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel
from vlm2vec_hf.tiny import BUNDLED_IMAGES, random_backbone, tiny_tokenizer

DEMO_IMAGES = {
    "cat": "chelsea_150x100.png",
    "coffee": "coffee_120x80.png",
    "flower": "flower_90x60.png",
    "temple": "china_crop_97x61.png",
}
DEMO_TEXTS = ["a cat lying on a rug", "a cup of coffee", "a red flower", "a Chinese temple by a lake"]


def build_default_model(out_dir: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write the tiny random default model (Qwen2-VL backbone, hidden size 64, seed 0) to `out_dir`."""
    model = VLM2VecModel.from_backbone(random_backbone("tiny", seed=0))
    processor = make_processor(tiny_tokenizer())
    return write_model_folder(model, processor, out_dir, overwrite=overwrite)


def similarity_table(row_labels: list[str], col_labels: list[str], scores: np.ndarray) -> str:
    """Render a (rows x cols) score matrix as an aligned text table."""
    width = max(len(label) for label in col_labels + ["0.000"]) + 2
    first = max(len(label) for label in row_labels) + 2
    lines = [" " * first + "".join(label.rjust(width) for label in col_labels)]
    for label, row in zip(row_labels, scores):
        lines.append(label.ljust(first) + "".join(f"{value:.3f}".rjust(width) for value in row))
    return "\n".join(lines)


def run_demo(out_dir: str | os.PathLike = "vlm2vec-demo") -> dict[str, np.ndarray]:
    """Build, save, reload and use the default model; print what happens. Returns the similarity matrices."""
    folder = build_default_model(Path(out_dir) / "model")
    print(f"Model folder (RANDOM weights, tiny Qwen2-VL backbone; similarities are not meaningful): {folder}")
    model = load_sentence_transformer(folder)
    print(
        f"Loaded with SentenceTransformer(..., trust_remote_code=True): embedding dimension "
        f"{model.get_embedding_dimension()}, modalities {model.modalities}"
    )

    images = [str(BUNDLED_IMAGES / name) for name in DEMO_IMAGES.values()]
    image_embeddings = model.encode(
        [{"image": path} for path in images], prompt_name="MSCOCO_i2t", convert_to_tensor=True
    )
    text_embeddings = model.encode(DEMO_TEXTS, convert_to_tensor=True)
    image_to_text = model.similarity(image_embeddings, text_embeddings).numpy()
    print("\nimage (instruction 'MSCOCO_i2t') -> caption, cosine similarity:")
    print(similarity_table(list(DEMO_IMAGES), DEMO_TEXTS, image_to_text))

    mixed = ["a cup of coffee", images[1], {"image": images[0], "text": "What animal is this?"}]
    mixed_embeddings = model.encode(
        mixed, prompt="Represent the given image with the following question:", convert_to_tensor=True
    )
    mixed_scores = model.similarity(mixed_embeddings, mixed_embeddings).numpy()
    print("\none mixed batch (text, image path, image+question), pairwise cosine similarity:")
    print(similarity_table(["text", "image", "image+text"], ["text", "image", "image+text"], mixed_scores))
    print(
        f"\nDone. The model folder at {folder} loads with "
        "SentenceTransformer(path, trust_remote_code=True) or AutoModel.from_pretrained(path, trust_remote_code=True)."
    )
    return {"image_to_text": image_to_text, "mixed": mixed_scores}
