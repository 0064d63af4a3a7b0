"""Video encode throughput of this project's `SentenceTransformer.encode` vs a reference-style per-example pipeline.

(a) Ours: `SentenceTransformer(folder, trust_remote_code=True).encode([{"video": clip_folder[, "text": question]},
    ...], prompt=instruction, batch_size=B)`; the project's processor lists the folder, samples 8 frames by
    `linspace`, resizes them (PIL bicubic, one size per clip) and builds `pixel_values_videos` for the whole batch.
(b) Reference-style, as VLM2Vec-V2's eval does it, on the same weights with stock transformers classes: per example,
    list the clip folder's frame files in natural order, take `numpy.linspace(0, n - 1, 8, dtype=int)`,
    `PIL.Image.open` each frame (unconverted), resize all of them to one size from the first frame (transformers'
    Qwen2-VL `smart_resize`, which for these frame sizes -- no side under 28 px, aspect ratio under 200 -- is the
    reference's vendored rule; PIL bicubic), run the stock `Qwen2VLProcessor` on that one example (`text=[prompt]`,
    `videos=[frames]`, the stock video processor told `do_resize=False` so it does not resize again with torchvision);
    then `tokenizer.pad` the rows, concatenate `pixel_values_videos` / `video_grid_thw`, one stock `Qwen2VLModel` call
    per batch with 1-D positions (`reference_position_ids`); last non-padding token, L2 norm.
    Letting the stock video processor do the resize instead (torchvision bicubic, antialiased) moves the embeddings
    by ~4-5e-4 on these clips, over the 1e-4 both pipelines must agree within; with the PIL resize they agree to
    ~5e-7.

Inputs (MMEB-V2 video prompts): video-only candidates (`VIDEO_TOKEN Understand the content of the provided
video.`), video QA queries (`VIDEO_TOKEN ` + the QA task prompt + ` ` + a NExT-QA-style question with options),
and the same QA queries with every clip asked 4 questions (`--questions-per-clip`), which is where the project
processor's prepared-clip cache (`clip_cache_bytes`, if the processor has one) can reuse a clip. The cache is
emptied before every measured call of (a), so the distinct-clip rows pay for every clip as a real evaluation does;
the repeat rows also time (a) with the cache off. Clips are generated frame folders of 16 PNG frames (names `0.png`
... `15.png`, so natural and lexicographic order differ), pans over the bundled photos, alternating 140x105 and
120x90 px frames (4:3 like real clips, resized to 140x112 and 112x84: 80 and 48 visual tokens per clip, 320 and 192
vision patches), small so that the timings are not only the model. The tiny random Qwen2-VL (0.4M parameters) takes
a few minutes at the defaults (16 items per row, batch sizes 1, 8, 16, 3 repeats) on 2 CPU cores; the ~57M-parameter
mid model costs ~20 GFLOP per QA item, so with it the default run is ~80 passes of 16 items of the mid model: expect
20-30 minutes on 2 quiet cores (`--models tiny`, or `--clips 8 --batch-sizes 1 8`, for a shorter run).

CPU, fp32, eager attention. Timings are medians of interleaved repeats in one run; the ratio a/b is what to read.
Before the timed repeats each pipeline runs once per row under `FlopCounterMode` (model FLOPs: matmuls and
convolutions) and the two pipelines' embeddings must agree within 1e-4. Achieved FLOP/s are given as a fraction of
this machine's fp32 matmul peak measured at the start and end of the run, as in `encode_throughput.py`.

    python benchmarks/video_encode_throughput.py [--models tiny mid] [--clips 16] [--repeats 3]
        [--batch-sizes 1 8 16] [--questions-per-clip 4] [--out DIR] [--smoke]

Writes `results/video_encode_throughput.{json,md,png}`; `--smoke` (tiny model, 4 clips, 1 repeat, batch sizes 1
and 4) only checks that the script runs and needs `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from encode_throughput import (  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
    PARITY_TOLERANCE,
    QwenReferenceStylePipeline,
    build_qwen,
    counted,
    finish_peak,
    machine_and_start_peak,
    model_label,
    plot,
    pool_last,
    timed,
)
from PIL import Image
from provenance import write_result  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from vlm2vec_hf.evaluation.prompts_video import QA_TASK_PROMPT, VIDEO_CANDIDATE_INSTRUCTION
from vlm2vec_hf.model_folder import load_sentence_transformer
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family
from vlm2vec_hf.modeling_vlm2vec.modeling_vlm2vec import reference_position_ids
from vlm2vec_hf.tiny import BUNDLED_IMAGES

RESULTS = Path(__file__).parent / "results"
STEM = "video_encode_throughput"
# The reference pipeline (transformers' Qwen2-VL processor) reads the backbone's own video token.
VIDEO_TOKEN = get_family("qwen2_vl").video_token
NUM_FRAMES = 8  # VLM2Vec-V2's `num_frames` (video eval configs)
SOURCE_FRAMES = 16
FRAME_SIZES = ((140, 105), (120, 90))  # (width, height), alternating per clip
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
QUESTIONS = [
    ("what does the animal do after looking at the camera", ("sits down", "walks away", "keeps looking")),
    ("which direction does the view move", ("left to right", "right to left", "it does not move")),
    ("what is in the middle of the scene at the end", ("a cup", "a building", "a cat", "a flower")),
    ("how many objects are visible", ("one", "two", "three")),
    ("is the scene indoors or outdoors", ("indoors", "outdoors")),
    ("what colour dominates the video", ("red", "green", "blue", "brown")),
]
KINDS = ("video", "video+QA", "video+QA, same clips")


def write_clips(root: Path, count: int) -> list[str]:
    """`count` frame folders of `SOURCE_FRAMES` RGB PNGs (`0.png`, `1.png`, ...): a window of `FRAME_SIZES[i % 2]`
    panning across a bundled photo upscaled to twice the window. Returns the folders."""
    photos = sorted(BUNDLED_IMAGES.glob("*.png"))
    clips = []
    for index in range(count):
        width, height = FRAME_SIZES[index % len(FRAME_SIZES)]
        assert min(width, height) >= 28, "the stock smart_resize equals the reference's only for sides >= 28 px"
        source = Image.open(photos[index % len(photos)]).convert("RGB").resize((2 * width, 2 * height), Image.BICUBIC)
        folder = root / f"clip{index:03d}"
        folder.mkdir(parents=True)
        top = (index * 7) % height
        for t in range(SOURCE_FRAMES):
            left = t * width // (SOURCE_FRAMES - 1)
            source.crop((left, top, left + width, top + height)).save(folder / f"{t}.png")
        clips.append(str(folder))
    return clips


def question_text(index: int) -> str:
    """A NExT-QA-style question with its options (`qa_template`: `"\\nOptions:\\n(A) ..."`)."""
    question, options = QUESTIONS[index % len(QUESTIONS)]
    return question + "\nOptions:\n" + "\n".join(f"({chr(65 + i)}) {option}" for i, option in enumerate(options))


def make_inputs(kind: str, clips: list[str], questions_per_clip: int) -> tuple[list[dict], str, list[str], list[str]]:
    """`len(clips)` inputs of one kind: (our `encode` inputs, our `prompt=`, reference prompt strings, clip folders).
    "same clips": the first `len(clips) / questions_per_clip` clips, each asked `questions_per_clip` questions in a
    row."""
    if kind == "video":
        prompt = f"{VIDEO_TOKEN} {VIDEO_CANDIDATE_INSTRUCTION}"
        return [{"video": clip} for clip in clips], VIDEO_CANDIDATE_INSTRUCTION, [prompt] * len(clips), list(clips)
    if kind == "video+QA":
        folders, questions = list(clips), [question_text(index) for index in range(len(clips))]
    else:
        folders = [clips[index // questions_per_clip] for index in range(len(clips))]
        questions = [question_text(index % questions_per_clip) for index in range(len(clips))]
    ours = [{"video": folder, "text": question} for folder, question in zip(folders, questions)]
    # QA_TASK_PROMPT ends with "Question: ": two spaces before the question, as the reference builds it.
    return ours, QA_TASK_PROMPT, [f"{VIDEO_TOKEN} {QA_TASK_PROMPT} {question}" for question in questions], folders


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class QwenVideoReferenceStylePipeline:
    """VLM2Vec-V2's per-example video path (`process_video_frames` + `Qwen2_VL_process_fn`) on stock classes."""

    def __init__(self, base: QwenReferenceStylePipeline, num_frames: int = NUM_FRAMES):
        self.model, self.processor, self.tokenizer = base.model, base.processor, base.tokenizer
        self.num_frames = num_frames
        size = self.processor.image_processor.size
        self.min_pixels, self.max_pixels = size["shortest_edge"], size["longest_edge"]

    def load_frames(self, folder: str) -> list[Image.Image]:
        """The sampled frames of a clip folder, opened unconverted and resized to the first frame's smart size."""
        names = sorted((name for name in os.listdir(folder) if name.lower().endswith(FRAME_SUFFIXES)), key=natural_key)
        if len(names) >= self.num_frames:
            names = [names[index] for index in np.linspace(0, len(names) - 1, self.num_frames, dtype=int)]
        frames = [Image.open(os.path.join(folder, name)) for name in names]
        height, width = smart_resize(frames[0].height, frames[0].width, 28, self.min_pixels, self.max_pixels)
        return [frame.resize((width, height), Image.BICUBIC) for frame in frames]

    @torch.inference_mode()
    def encode(self, prompts: list[str], folders: list[str], batch_size: int) -> torch.Tensor:
        outputs = []
        for start in range(0, len(prompts), batch_size):
            rows, pixel_values, grids = [], [], []
            for prompt, folder in zip(prompts[start : start + batch_size], folders[start : start + batch_size]):
                encoded = self.processor(
                    text=[prompt],
                    videos=[self.load_frames(folder)],
                    videos_kwargs={"do_resize": False, "cap_pixels_per_frame": False},
                    return_tensors="pt",
                )
                rows.append({"input_ids": encoded["input_ids"][0], "attention_mask": encoded["attention_mask"][0]})
                pixel_values.append(encoded["pixel_values_videos"])
                grids.append(encoded["video_grid_thw"])
            batch = self.tokenizer.pad(rows, padding=True, return_tensors="pt")
            hidden = self.model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                position_ids=reference_position_ids(batch["attention_mask"]),
                pixel_values_videos=torch.cat(pixel_values),
                video_grid_thw=torch.cat(grids),
            ).last_hidden_state
            outputs.append(pool_last(hidden, batch["attention_mask"]))
        return torch.cat(outputs)


class ClipCacheSwitch:
    """The project processor's prepared-clip cache, if it has one (`clip_cache_bytes`): emptied before each measured
    call, on at its default bound or off."""

    def __init__(self, processor):
        self.processor = processor
        self.default_bytes = getattr(processor, "clip_cache_bytes", None)

    @property
    def exists(self) -> bool:
        return self.default_bytes is not None

    def reset(self, enabled: bool = True) -> None:
        if self.exists:
            self.processor.clip_cache_bytes = 0  # evicts everything
            self.processor.clip_cache_bytes = self.default_bytes if enabled else 0


def measure(
    ours,
    reference: QwenVideoReferenceStylePipeline,
    cache: ClipCacheSwitch,
    st_inputs: list[dict],
    instruction: str,
    prompts: list[str],
    folders: list[str],
    batch_size: int,
    repeats: int,
) -> dict:
    """One row: a counted pass of each pipeline (FLOPs, warm-up, embeddings that must agree), then `repeats`
    interleaved timed passes; with repeated clips and a clip cache, ours is also timed with the cache off."""

    def run_ours(cached: bool = True) -> np.ndarray:
        cache.reset(enabled=cached)
        return ours.encode(st_inputs, prompt=instruction, batch_size=batch_size)

    def run_reference() -> torch.Tensor:
        return reference.encode(prompts, folders, batch_size)

    ours_embeddings, ours_flops = counted(run_ours)
    reference_embeddings, reference_flops = counted(run_reference)
    same = (ours_embeddings - reference_embeddings).abs().max().item()
    assert same < PARITY_TOLERANCE, f"pipelines disagree by {same} (batch {batch_size}, prompt {prompts[0]!r})"
    repeated_clips = len(set(folders)) < len(folders) and cache.exists
    ours_times, reference_times, uncached_times = [], [], []
    for _ in range(repeats):
        ours_times.append(timed(run_ours))
        reference_times.append(timed(run_reference))
        if repeated_clips:
            uncached_times.append(timed(run_ours, cached=False))
    items = len(st_inputs)
    row = {
        "items": items,
        "distinct_clips": len(set(folders)),
        "batch_size": batch_size,
        "ours_items_per_s": items / statistics.median(ours_times),
        "reference_items_per_s": items / statistics.median(reference_times),
        "ours_no_clip_cache_items_per_s": items / statistics.median(uncached_times) if uncached_times else None,
        "ours_flops_per_item": ours_flops / items,
        "reference_flops_per_item": reference_flops / items,
        "max_abs_diff": same,
    }
    row["ratio"] = row["ours_items_per_s"] / row["reference_items_per_s"]
    row["ours_flop_per_s"] = row["ours_flops_per_item"] * row["ours_items_per_s"]
    row["reference_flop_per_s"] = row["reference_flops_per_item"] * row["reference_items_per_s"]
    return row


def run(models: list[str], clips: int, repeats: int, batch_sizes: list[int], questions_per_clip: int) -> dict:
    results = {
        "clips": clips,
        "frames_per_clip": f"{SOURCE_FRAMES} source PNG frames, {NUM_FRAMES} sampled",
        "frame_sizes": [list(size) for size in FRAME_SIZES],
        "questions_per_clip": questions_per_clip,
        "repeats": repeats,
        **machine_and_start_peak(),
        "rows": [],
    }
    sizes = [size for size in batch_sizes if size <= clips] or [clips]
    with tempfile.TemporaryDirectory() as workdir:
        clip_folders = write_clips(Path(workdir) / "frames", clips)
        for size in models:
            model_dir, base, parameters = build_qwen(size, Path(workdir))
            reference = QwenVideoReferenceStylePipeline(base)
            ours = load_sentence_transformer(model_dir, device="cpu")
            ours[0].model.set_attn_implementation("eager")
            cache = ClipCacheSwitch(ours[0].processor)
            results["clip_cache_bytes"] = cache.default_bytes
            for kind in KINDS:
                st_inputs, instruction, prompts, folders = make_inputs(kind, clip_folders, questions_per_clip)
                for batch_size in sizes:
                    row = measure(ours, reference, cache, st_inputs, instruction, prompts, folders, batch_size, repeats)
                    row = {"family": "qwen2_vl", "model": size, "parameters": parameters, "inputs": kind, **row}
                    results["rows"].append(row)
                    uncached = row["ours_no_clip_cache_items_per_s"]
                    print(
                        f"{size:>4} {parameters / 1e6:5.1f}M {kind:>20} bs={batch_size:<3} "
                        f"ours {row['ours_items_per_s']:7.2f}/s"
                        + (f" (no clip cache {uncached:7.2f}/s)" if uncached else "")
                        + f" | reference-style {row['reference_items_per_s']:7.2f}/s | ratio {row['ratio']:.2f}x"
                        f" | max diff {row['max_abs_diff']:.1e}",
                        flush=True,
                    )
            del ours, reference, base
    finish_peak(results)
    return results


def to_markdown(results: dict) -> str:
    peak = results["matmul_peak_flop_per_s"]
    sizes = " and ".join(f"{width}x{height}" for width, height in results["frame_sizes"])
    cache = results.get("clip_cache_bytes")
    cache_note = (
        f"The project processor's prepared-clip cache ({cache / 2**20:.0f} MiB) is emptied before every measured call "
        'of ours; "no clip cache" times ours with it off.'
        if cache
        else "The project processor has no prepared-clip cache in this run, so the same-clips rows show no reuse."
    )
    lines = [
        f"{results['clips']} items per measurement ({results['frames_per_clip']}, {sizes} px frames, alternating); "
        f'"same clips": {results["questions_per_clip"]} questions per clip. Median of {results["repeats"]} '
        f"interleaved repeats, {results['torch_threads']} torch threads, CPU fp32 eager, torch {results['torch']}. "
        + cache_note,
        "",
        f"fp32 matmul peak of this machine in the same run: {peak['used'] / 1e9:.1f} GFLOP/s "
        f"({results['matmul_peak_method']}: {peak['start'] / 1e9:.1f} / {peak['end'] / 1e9:.1f} GFLOP/s). "
        "FLOPs are the model FLOPs one pass executes (`FlopCounterMode`: matmuls and convolutions); "
        "% peak = achieved FLOP/s / that peak. max diff = largest embedding difference between the two pipelines.",
        "",
        "| model | params | inputs | clips | batch | ours (items/s) | ours, no clip cache (items/s) "
        "| reference-style (items/s) | ratio | GFLOP/item | ours % peak | ref. % peak | max diff |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["rows"]:
        uncached = row.get("ours_no_clip_cache_items_per_s")
        lines.append(
            f"| {model_label(row)} | {row['parameters'] / 1e6:.1f}M | {row['inputs']} | {row['distinct_clips']} | "
            f"{row['batch_size']} | {row['ours_items_per_s']:.2f} | {f'{uncached:.2f}' if uncached else '-'} | "
            f"{row['reference_items_per_s']:.2f} | {row['ratio']:.2f}x | {row['ours_flops_per_item'] / 1e9:.3f} | "
            f"{100 * row['ours_peak_fraction']:.1f}% | {100 * row['reference_peak_fraction']:.1f}% | "
            f"{row['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"])
    parser.add_argument(
        "--clips", type=int, default=16, help="items per row (rounded up to a multiple of --questions-per-clip)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16], help="those over --clips skipped")
    parser.add_argument("--questions-per-clip", type=int, default=4, help="for the same-clips rows")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="tiny model, 4 clips, 1 repeat, batch sizes 1 and 4")
    parser.add_argument("--plot-only", action="store_true", help="redraw table and chart from the saved JSON")
    args = parser.parse_args()
    if args.smoke:
        args.models, args.clips, args.repeats, args.batch_sizes = ["tiny"], 4, 1, [1, 4]
        if args.out.resolve() == RESULTS.resolve():
            parser.error("--smoke results are not the benchmark's; give --out")
    if args.clips < 1 or args.questions_per_clip < 1 or args.repeats < 1:
        parser.error("--clips, --questions-per-clip and --repeats must be at least 1")
    args.clips = math.ceil(args.clips / args.questions_per_clip) * args.questions_per_clip
    if args.plot_only:
        results = json.loads((args.out / f"{STEM}.json").read_text())
    else:
        results = run(args.models, args.clips, args.repeats, args.batch_sizes, args.questions_per_clip)
    markdown = write_result(args.out, STEM, results, to_markdown)
    plot(results, args.out / f"{STEM}.png")
    print(markdown)


if __name__ == "__main__":
    main()
