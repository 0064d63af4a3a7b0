"""Encode throughput: this project's `SentenceTransformer.encode` vs the reference-style pipeline.

(a) `SentenceTransformer(folder, trust_remote_code=True).encode(inputs, prompt=..., batch_size=B)`.
(b) The reference VLM2Vec pipeline rebuilt from stock transformers on the same weights: every example goes through
    the stock `Qwen2VLProcessor` (PIL backend) on its own, the rows are padded with `tokenizer.pad`, the pixel
    tensors concatenated, and the stock `Qwen2VLModel` runs with 1-D positions; last token, L2 norm.

Both start from image file paths and text, on CPU, fp32, eager attention, for text-only, image-only and
image+text inputs at batch sizes 1, 16 and 64, on the tiny random model and a ~55M-parameter random model.
Timings are medians of interleaved repeats measured in one run; the ratio a/b is what to read.

    python benchmarks/encode_throughput.py [--models tiny mid] [--items 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer, Qwen2VLProcessor, Qwen2VLVideoProcessor

from vlm2vec_hf.hub_cards.convert import convert_backbone
from vlm2vec_hf.model_folder import load_sentence_transformer
from vlm2vec_hf.modeling_vlm2vec.modeling_vlm2vec import reference_position_ids
from vlm2vec_hf.tiny import BUNDLED_IMAGES, random_backbone, tiny_tokenizer

RESULTS = Path(__file__).parent / "results"
INSTRUCTION = "Represent the given image with the following question:"
TEXTS = [
    "What is in the image?",
    "Which animal is lying on the rug, and what colour is its fur?",
    "Is there a cup of coffee on the table?",
    "What kind of building stands by the lake in this photograph, and how old might it be?",
]
IMAGES = sorted(str(path) for path in BUNDLED_IMAGES.glob("*.png"))


def make_inputs(kind: str, count: int) -> tuple[list, list[str], list[str | None]]:
    """`count` inputs of one kind, as (ST inputs, reference prompt strings, reference image paths)."""
    st_inputs, prompts, images = [], [], []
    for index in range(count):
        text, image = TEXTS[index % len(TEXTS)], IMAGES[index % len(IMAGES)]
        if kind == "text":
            st_inputs.append(text)
            prompts.append(f"{INSTRUCTION} {text}")
            images.append(None)
        elif kind == "image":
            st_inputs.append(image)
            prompts.append(f"<|image_pad|> {INSTRUCTION}")
            images.append(image)
        else:
            st_inputs.append({"image": image, "text": text})
            prompts.append(f"<|image_pad|> {INSTRUCTION} {text}")
            images.append(image)
    return st_inputs, prompts, images


class ReferenceStylePipeline:
    """The reference's per-example processing + padding, on stock transformers classes."""

    def __init__(self, backbone_dir: Path):
        self.model = AutoModel.from_pretrained(backbone_dir, attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
        image_processor = AutoImageProcessor.from_pretrained(backbone_dir, backend="pil")
        video_processor = Qwen2VLVideoProcessor()  # required by the stock processor's constructor, never used here
        self.processor = Qwen2VLProcessor(image_processor, tokenizer, video_processor)
        self.tokenizer = tokenizer

    @torch.inference_mode()
    def encode(self, prompts: list[str], images: list[str | None], batch_size: int) -> torch.Tensor:
        from PIL import Image

        outputs = []
        for start in range(0, len(prompts), batch_size):
            rows, pixel_values, grids = [], [], []
            for prompt, image in zip(prompts[start : start + batch_size], images[start : start + batch_size]):
                image_list = [Image.open(image).convert("RGB")] if image else None
                encoded = self.processor(text=[prompt], images=image_list, return_tensors="pt")
                rows.append({"input_ids": encoded["input_ids"][0], "attention_mask": encoded["attention_mask"][0]})
                if image:
                    pixel_values.append(encoded["pixel_values"])
                    grids.append(encoded["image_grid_thw"])
            batch = self.tokenizer.pad(rows, padding=True, return_tensors="pt")
            kwargs = {}
            if pixel_values:
                kwargs = {"pixel_values": torch.cat(pixel_values), "image_grid_thw": torch.cat(grids)}
            hidden = self.model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                position_ids=reference_position_ids(batch["attention_mask"]),
                **kwargs,
            ).last_hidden_state
            last = batch["attention_mask"].shape[1] - 1 - batch["attention_mask"].flip(1).argmax(1)
            outputs.append(F.normalize(hidden[torch.arange(hidden.shape[0]), last], dim=-1))
        return torch.cat(outputs)


def build(size: str, workdir: Path) -> tuple[Path, Path, int]:
    """Save a random stock backbone (+ tokenizer, PIL image processor) and convert it; returns both folders."""
    backbone = random_backbone(size, seed=0, weight_std=0.2 if size == "tiny" else None)
    backbone_dir = workdir / f"{size}-backbone"
    backbone.save_pretrained(backbone_dir)
    tiny_tokenizer().save_pretrained(backbone_dir)
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    Qwen2VLImageProcessorPil().save_pretrained(backbone_dir)
    model_dir = convert_backbone(backbone_dir, workdir / f"{size}-vlm2vec", dtype=torch.float32)
    return backbone_dir, model_dir, sum(p.numel() for p in backbone.parameters())


def timed(function, *args, **kwargs) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def run(models: list[str], items: int, repeats: int, batch_sizes: list[int]) -> dict:
    results = {
        "items": items,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as workdir:
        for size in models:
            backbone_dir, model_dir, parameters = build(size, Path(workdir))
            ours = load_sentence_transformer(model_dir, device="cpu")
            ours[0].model.set_attn_implementation("eager")
            reference = ReferenceStylePipeline(backbone_dir)
            for kind in ("text", "image", "image+text"):
                st_inputs, prompts, images = make_inputs(kind, items)
                # Same numbers first, so that the speed comparison is between equivalent computations.
                same = (
                    (
                        torch.as_tensor(ours.encode(st_inputs, prompt=INSTRUCTION, batch_size=16))
                        - reference.encode(prompts, images, 16)
                    )
                    .abs()
                    .max()
                    .item()
                )
                assert same < 1e-4, f"pipelines disagree by {same} on {size}/{kind}"
                for batch_size in batch_sizes:
                    ours_times, reference_times = [], []
                    for _ in range(repeats):
                        ours_times.append(timed(ours.encode, st_inputs, prompt=INSTRUCTION, batch_size=batch_size))
                        reference_times.append(timed(reference.encode, prompts, images, batch_size))
                    row = {
                        "model": size,
                        "parameters": parameters,
                        "inputs": kind,
                        "batch_size": batch_size,
                        "ours_items_per_s": items / statistics.median(ours_times),
                        "reference_items_per_s": items / statistics.median(reference_times),
                        "max_abs_diff": same,
                    }
                    row["ratio"] = row["ours_items_per_s"] / row["reference_items_per_s"]
                    results["rows"].append(row)
                    print(
                        f"{size:>5} {parameters / 1e6:6.1f}M {kind:>10} bs={batch_size:<3} "
                        f"ours {row['ours_items_per_s']:8.1f}/s  reference-style {row['reference_items_per_s']:8.1f}/s"
                        f"  ratio {row['ratio']:.2f}x",
                        flush=True,
                    )
    return results


def to_markdown(results: dict) -> str:
    lines = [
        f"Items per measurement: {results['items']}, median of {results['repeats']} interleaved repeats, "
        f"{results['torch_threads']} torch threads, CPU fp32 eager, {results['torch']}.",
        "",
        "| model | params | inputs | batch | ours (items/s) | reference-style (items/s) | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['model']} | {row['parameters'] / 1e6:.1f}M | {row['inputs']} | {row['batch_size']} | "
            f"{row['ours_items_per_s']:.1f} | {row['reference_items_per_s']:.1f} | {row['ratio']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Bar chart of the ours / reference-style throughput ratio per model, input kind and batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(row["model"] for row in results["rows"]))
    figure, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for axis, model in zip(axes[0], models):
        rows = [row for row in results["rows"] if row["model"] == model]
        kinds = list(dict.fromkeys(row["inputs"] for row in rows))
        batch_sizes = list(dict.fromkeys(row["batch_size"] for row in rows))
        width = 0.8 / len(batch_sizes)
        for offset, batch_size in enumerate(batch_sizes):
            ratios = [
                next(r["ratio"] for r in rows if r["inputs"] == kind and r["batch_size"] == batch_size)
                for kind in kinds
            ]
            positions = [index + (offset - (len(batch_sizes) - 1) / 2) * width for index in range(len(kinds))]
            axis.bar(positions, ratios, width, label=f"batch {batch_size}")
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_xticks(range(len(kinds)), kinds)
        axis.set_title(f"{model} ({rows[0]['parameters'] / 1e6:.1f}M params)")
        axis.set_ylabel("throughput ratio, ours / reference-style")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot-only", action="store_true", help="redraw the chart from the saved JSON")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((args.out / "encode_throughput.json").read_text()), args.out / "encode_throughput.png")
        return
    results = run(args.models, args.items, args.repeats, args.batch_sizes)
    markdown = write_result(args.out, "encode_throughput", results, to_markdown)
    plot(results, args.out / "encode_throughput.png")
    print(markdown)


if __name__ == "__main__":
    main()
