"""Qwen3-VL on a GPU: how far bf16 / fp16 embeddings are from fp32, and encode throughput against the card's bf16 peak.

On a Qwen3-VL model folder (`--model`; without it a random mid-size one, `vlm2vec init --family qwen3_vl --size mid`,
transformers' own init) and a fixed mixed set of inputs (texts, images, image + text, 8-frame clips, clip + text,
in turn; the bundled photos), through `SentenceTransformer.encode` with the instruction as `prompt`:

* **Deviation.** The embeddings of fp32 with eager attention (TF32 off) are the reference; bf16 and fp16 with SDPA,
  and with flash-attention-2 where `flash_attn` imports, and fp32 with SDPA, are each given as the max |difference|
  of any embedding coordinate and the lowest cosine to the reference over all inputs.
* **Throughput.** bf16 (SDPA, and flash-attention-2 where it imports) encodes all inputs at batch 16 and 64: items/s
  is the median of `--repeats` timed passes after one warm-up (CUDA synchronised), preprocessing included, as a user
  sees it. It is given as a share of the card's bf16 dense FLOP bound: the model FLOPs per item are estimated as
  2 x params x tokens per tower -- 2 x (language-model parameters without the embedding table x the item's prompt
  tokens + vision parameters x its vision patches) -- and the bound is the card's bf16 dense Tensor Core peak from
  `gpu_peaks.json` (keyed by `torch.cuda.get_device_name()`; `--peak-tflops` for another card). Padding tokens and
  attention's own FLOPs are not counted, so the share is a lower bound on the arithmetic the card did.

Writes `results/gpu_qwen3_vl.{json,md}` (with the card's name and the run's provenance). It needs CUDA and exits with
an error without it. `--device cpu --dry-run` runs the same code on a tiny random model with 5 inputs (one of each
kind, clips of 2 frames), batch sizes 2 and 5 and one repeat, to check the script and its FLOP-share arithmetic
without a GPU; it writes only to an explicit `--out`, and its numbers mean nothing.

    python benchmarks/gpu_qwen3_vl.py [--model FOLDER] [--items 256] [--frames 8] [--batch-sizes 16 64]
        [--repeats 3] [--peak-tflops T] [--out DIR]
    python benchmarks/gpu_qwen3_vl.py --device cpu --dry-run --peak-tflops 1 --out /tmp/gpu-smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from vlm2vec_hf.model_folder import load_sentence_transformer
from vlm2vec_hf.modeling_vlm2vec.backbones import family_of
from vlm2vec_hf.tiny import BUNDLED_IMAGES, write_random_model

RESULTS = Path(__file__).parent / "results"
STEM = "gpu_qwen3_vl"
PEAKS = Path(__file__).parent / "gpu_peaks.json"
FAMILY = "qwen3_vl"
INSTRUCTION = "Represent the user's input."
TEXTS = [
    "What is in the image?",
    "Which animal is lying on the rug, and what colour is its fur?",
    "A red square moves to the right across a grey field.",
    "What kind of building stands by the lake in this photograph, and how old might it be?",
]
KINDS = ("text", "image", "image+text", "video", "video+text")
# (dtype, attention) set against the fp32 eager reference; flash-attention-2 rows only where it imports.
DEVIATION_SETTINGS = (("float32", "sdpa"), ("bfloat16", "sdpa"), ("float16", "sdpa"))
FLASH_SETTINGS = (("bfloat16", "flash_attention_2"), ("float16", "flash_attention_2"))
REFERENCE_SETTING = ("float32", "eager")
THROUGHPUT_DTYPE = "bfloat16"


def clip(image: Image.Image, frames: int) -> list[Image.Image]:
    """A pan over `image`: `frames` crops of three quarters of its width, moving left to right."""
    width, height = image.size
    crop = 3 * width // 4
    step = (width - crop) / max(frames - 1, 1)
    return [image.crop((round(i * step), 0, round(i * step) + crop, height)) for i in range(frames)]


def mixed_inputs(count: int, frames: int) -> list:
    """`count` `SentenceTransformer.encode` inputs, the `KINDS` in turn over the bundled photos and `TEXTS`; clips of
    `frames` frames."""
    photos = [Image.open(path).convert("RGB") for path in sorted(BUNDLED_IMAGES.glob("*.png"))]
    inputs = []
    for index in range(count):
        kind, text, photo = KINDS[index % len(KINDS)], TEXTS[index % len(TEXTS)], photos[index % len(photos)]
        inputs.append(
            {
                "text": text,
                "image": photo,
                "image+text": {"image": photo, "text": text},
                "video": {"video": clip(photo, frames)},
                "video+text": {"video": clip(photo, frames), "text": text},
            }[kind]
        )
    return inputs


def flash_attention_status() -> str | None:
    """None when flash-attention-2 can run here (CUDA, `flash_attn` importable as transformers checks it), else
    why not."""
    from transformers.utils import is_flash_attn_2_available

    if not torch.cuda.is_available():
        return "no CUDA"
    if not is_flash_attn_2_available():
        return "flash_attn does not import"
    return None


def card_info(device: str, peak_tflops: float | None) -> dict:
    """The device's name and, from `gpu_peaks.json` or `peak_tflops`, its bf16 dense peak (None when unknown)."""
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info = {
            "name": torch.cuda.get_device_name(0),
            "capability": list(torch.cuda.get_device_capability(0)),
            "memory_gib": round(properties.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
        }
    else:
        info = {"name": f"cpu ({device}, dry run)"}
    table = json.loads(PEAKS.read_text())["bf16_dense_tflops"]
    if peak_tflops is not None:
        info.update(bf16_dense_tflops=peak_tflops, peak_source="--peak-tflops")
    elif info["name"] in table:
        info.update(bf16_dense_tflops=table[info["name"]], peak_source=PEAKS.name)
    else:
        info.update(bf16_dense_tflops=None, peak_source=f"not in {PEAKS.name}; pass --peak-tflops")
    return info


def load(folder: Path, device: str, dtype: str, attention: str):
    """The folder as a `SentenceTransformer` on `device` in `dtype` with `attention`."""
    model = load_sentence_transformer(folder, device=device)
    model.to(getattr(torch, dtype))
    model[0].model.set_attn_implementation(attention)
    return model.eval()


def encode(model, inputs: list, batch_size: int) -> torch.Tensor:
    """`(len(inputs), D)` fp32 embeddings."""
    embeddings = model.encode(inputs, prompt=INSTRUCTION, batch_size=batch_size, convert_to_tensor=True)
    return embeddings.float().cpu()


def tower_parameters(model) -> dict[str, int]:
    """Parameters of the language model without its embedding table (a lookup, no FLOPs) and of the vision tower."""
    backbone = model[0].model.vlm
    language = sum(p.numel() for p in backbone.language_model.parameters())
    embedding = backbone.language_model.get_input_embeddings().weight.numel()
    return {"language": language - embedding, "vision": sum(p.numel() for p in backbone.visual.parameters())}


def tokens_per_item(model, inputs: list) -> dict[str, float]:
    """Mean prompt tokens (attended positions) and vision patches per item, as the model's processor builds them."""
    tokens = patches = 0
    for item in inputs:
        features = model[0].preprocess([item], prompt=INSTRUCTION)
        tokens += int(features["attention_mask"].sum())
        for grid in ("image_grid_thw", "video_grid_thw"):
            if grid in features:
                patches += int(features[grid].prod(dim=-1).sum())
    return {"tokens": tokens / len(inputs), "vision_patches": patches / len(inputs)}


def flops_per_item(parameters: dict[str, int], per_item: dict[str, float]) -> float:
    """2 x params x tokens per tower: `2 * (language params * tokens + vision params * patches)`."""
    return 2 * (parameters["language"] * per_item["tokens"] + parameters["vision"] * per_item["vision_patches"])


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def items_per_second(model, inputs: list, batch_size: int, repeats: int, device: str) -> float:
    """Median items/s of `repeats` timed encodes of `inputs`, after one warm-up."""
    encode(model, inputs, batch_size)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        encode(model, inputs, batch_size)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return len(inputs) / statistics.median(times)


def deviations(folder: Path, inputs: list, device: str, settings: list[tuple[str, str]], batch_size: int) -> list:
    """Each setting's max |embedding - fp32 eager embedding| and lowest cosine to it."""
    reference = encode(load(folder, device, *REFERENCE_SETTING), inputs, batch_size)
    rows = []
    for dtype, attention in settings:
        embeddings = encode(load(folder, device, dtype, attention), inputs, batch_size)
        rows.append(
            {
                "dtype": dtype,
                "attention": attention,
                "max_abs_diff": (embeddings - reference).abs().max().item(),
                "min_cosine": F.cosine_similarity(embeddings, reference).min().item(),
            }
        )
        print(f"{dtype:>8} {attention:>17}: max |diff| {rows[-1]['max_abs_diff']:.2e}", flush=True)
    return rows


def measure(args: argparse.Namespace, folder: Path) -> dict:
    """The deviation and throughput rows of one run on `folder`."""
    flash = flash_attention_status()
    inputs = mixed_inputs(args.items, args.frames)
    settings = [*DEVIATION_SETTINGS, *(FLASH_SETTINGS if flash is None else ())]
    first = load(folder, args.device, *REFERENCE_SETTING)
    if family_of(first[0].model.vlm.config).name != FAMILY:
        sys.exit(
            f"error: {folder} is not a Qwen3-VL model folder (its backbone is {first[0].model.vlm.config.model_type})"
        )
    parameters = tower_parameters(first)
    per_item = tokens_per_item(first, inputs)
    flops = flops_per_item(parameters, per_item)
    del first
    card = card_info(args.device, args.peak_tflops)
    results = {
        "model": str(args.model) if args.model else f"random {args.size} ({FAMILY}, transformers init)",
        "device": args.device,
        "dry_run": args.dry_run,
        "card": card,
        "flash_attention": {"run": flash is None, "version": version_of("flash-attn"), "why_not": flash},
        "items": args.items,
        "kinds": list(KINDS),
        "frames_per_clip": args.frames,
        "repeats": args.repeats,
        "parameters": parameters,
        "per_item": per_item,
        "flops_per_item": flops,
        "deviation": deviations(folder, inputs, args.device, settings, max(args.batch_sizes)),
        "throughput": [],
    }
    for attention in ["sdpa", *(["flash_attention_2"] if flash is None else [])]:
        model = load(folder, args.device, THROUGHPUT_DTYPE, attention)
        for batch_size in args.batch_sizes:
            rate = items_per_second(model, inputs, batch_size, args.repeats, args.device)
            achieved = rate * flops
            peak = card["bf16_dense_tflops"]
            row = {
                "dtype": THROUGHPUT_DTYPE,
                "attention": attention,
                "batch_size": batch_size,
                "items_per_s": rate,
                "achieved_tflop_per_s": achieved / 1e12,
                "peak_share": achieved / (peak * 1e12) if peak else None,
            }
            results["throughput"].append(row)
            print(
                f"{attention:>17} batch {batch_size:>3}: {rate:8.2f} items/s, {achieved / 1e12:.3f} TFLOP/s", flush=True
            )
        del model
    return results


def version_of(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def to_markdown(results: dict) -> str:
    card = results["card"]
    peak = card["bf16_dense_tflops"]
    per_item = results["per_item"]
    lines = [
        f"Card: {card['name']}" + (f", bf16 dense peak {peak:g} TFLOP/s ({card['peak_source']})." if peak else "."),
        f"Model: {results['model']}; language model {results['parameters']['language'] / 1e6:.1f}M parameters "
        f"(embedding table left out), vision {results['parameters']['vision'] / 1e6:.1f}M.",
        f"Inputs: {results['items']} mixed ({', '.join(results['kinds'])} in turn; clips of "
        f"{results['frames_per_clip']} frames), {per_item['tokens']:.1f} prompt tokens and "
        f"{per_item['vision_patches']:.1f} vision patches per item: {results['flops_per_item'] / 1e9:.2f} GFLOP per "
        "item estimated (2 x params x tokens per tower). Flash-attention-2: "
        + (
            f"flash-attn {results['flash_attention']['version']}."
            if results["flash_attention"]["run"]
            else f"not run ({results['flash_attention']['why_not']})."
        ),
        "",
        "| dtype | attention | max abs diff to fp32 eager | min cosine |",
        "| --- | --- | --- | --- |",
        *(
            f"| {row['dtype']} | {row['attention']} | {row['max_abs_diff']:.2e} | {row['min_cosine']:.6f} |"
            for row in results["deviation"]
        ),
        "",
        f"| dtype | attention | batch | items/s (median of {results['repeats']}) | TFLOP/s | share of bf16 bound |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {row['dtype']} | {row['attention']} | {row['batch_size']} | {row['items_per_s']:.1f} | "
            f"{row['achieved_tflop_per_s']:.2f} | "
            + (f"{100 * row['peak_share']:.2f}% |" if row["peak_share"] is not None else "unknown peak |")
            for row in results["throughput"]
        ),
    ]
    if results["dry_run"]:
        lines = ["**Dry run** (tiny model on CPU): checks the script, the numbers mean nothing.", "", *lines]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a Qwen3-VL model folder (default: a random one of --size)")
    parser.add_argument("--size", choices=("tiny", "mid"), help="the random model's size (default mid; dry run tiny)")
    parser.add_argument("--items", type=int, help="inputs (default 256; dry run 5)")
    parser.add_argument("--frames", type=int, help="frames per clip (default 8; dry run 2)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default 16 64; dry run 2 5")
    parser.add_argument("--repeats", type=int, help="timed passes per row (default 3; dry run 1)")
    parser.add_argument("--peak-tflops", type=float, help="the card's bf16 dense peak, where gpu_peaks.json lacks it")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu only with --dry-run")
    parser.add_argument("--dry-run", action="store_true", help="a tiny, short run that checks the script")
    parser.add_argument("--out", type=Path, help=f"where the results go (default {RESULTS}; a dry run: nowhere)")
    args = parser.parse_args(argv)
    if args.device == "cpu" and not args.dry_run:
        parser.error("--device cpu measures nothing worth keeping: it is only for --dry-run")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(
            2,
            f"{parser.prog}: error: CUDA is not available (torch {torch.__version__}, "
            f"torch.version.cuda {torch.version.cuda}): this benchmark needs an NVIDIA GPU; "
            "`--device cpu --dry-run` checks the script without one\n",
        )
    dry = {"size": "tiny", "items": len(KINDS), "frames": 2, "batch_sizes": [2, len(KINDS)], "repeats": 1}
    defaults = {"size": "mid", "items": 256, "frames": 8, "batch_sizes": [16, 64], "repeats": 3}
    defaults |= dry if args.dry_run else {}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None and not args.dry_run:
        args.out = RESULTS
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference is true fp32
        torch.backends.cudnn.allow_tf32 = False
    with tempfile.TemporaryDirectory() as workdir:
        folder = args.model or write_random_model(Path(workdir) / f"{FAMILY}-{args.size}", args.size, FAMILY)
        results = measure(args, folder)
    if args.out is not None:
        print(write_result(args.out, STEM, results, to_markdown))
    else:
        print(to_markdown(results))
    return results


if __name__ == "__main__":
    main()
