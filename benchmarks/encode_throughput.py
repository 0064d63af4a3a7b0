"""Encode throughput of this project's `SentenceTransformer.encode` vs reference-style pipelines, and FLOP/s.

Each row also gives the model FLOP/s both pipelines achieve as a fraction of the machine's fp32 matmul peak.

(a) `SentenceTransformer(folder, trust_remote_code=True).encode(inputs, prompt=..., batch_size=B)`.
(b) The reference VLM2Vec pipeline rebuilt on the same weights, every example processed on its own, the rows padded
    with `tokenizer.pad`, the pixel tensors concatenated, one model call per batch; last token, L2 norm:
    * Qwen2-VL: the stock `Qwen2VLProcessor` (PIL backend) per example, the stock `Qwen2VLModel` with 1-D
      positions.
    * Phi-3.5-V: the reference `Phi3VProcessor` per example (prompt split around `<|image_1|>`, each chunk
      tokenised with BOS, `-1` placeholders; `convert("RGB")`, HD transform, ToTensor + Normalize, bicubic global
      view, crops, zero padding to `num_crops + 1`), then the reference `Phi3ImageEmbedding` (the whole CLIP tower
      over every crop, padding included, all hidden states kept, `hidden_states[-2]`; 2 x 2 merge, separators and
      projection image by image) written into the stock `Phi3Model`'s input embeddings.
    * Qwen3-VL: the official `Qwen3VLEmbedder.process` (`QwenLM/Qwen3-VL-Embedding`) on each batch, with stock
      classes loaded as it loads them (`Qwen3VLProcessor.from_pretrained(backbone, padding_side="right")`, its
      default image-processor backend; `Qwen3VLModel`): per input the conversation (instruction in the system turn,
      the image, then the text) and qwen-vl-utils' `fetch_image` (the family's own image loading and factor-32
      resize at the embedder's pixel bounds, PIL bicubic); per batch the chat template, one processor call
      (`do_resize=False`, right padding, `max_length` 8192) and one model call with its own M-RoPE; last attended
      position, L2 norm.

Both start from image file paths and text, on CPU, fp32, eager attention, for text-only, image-only and image+text
inputs at batch sizes 1, 16 and 64 (Phi-3.5-V: `--phi-items` items, batch sizes up to that), on the tiny random
models and ~55M-parameter random models. Timings are medians of interleaved repeats measured in one run; the ratio
a/b is what to read. Before the timed repeats, each pipeline runs once at each batch size under
`torch.utils.flop_counter.FlopCounterMode`: that pass gives the model FLOPs it executes (matmuls, convolutions;
element-wise work is not counted) and the embeddings the two pipelines must agree on (1e-4). Achieved FLOP/s =
those FLOPs / the median time; the peak is the best of a few large fp32 `torch.mm` with the same thread count,
measured at the start and at the end of the run (the higher one is used). The 1-minute load average at the start
and the end is recorded too: on shared cores it says how quiet the run was.

    python benchmarks/encode_throughput.py [--families qwen2_vl phi3_v qwen3_vl] [--models tiny mid] [--items 64]
        [--phi-items 16] [--repeats 3] [--batch-sizes 1 16 64] [--out DIR] [--merge]

`--merge` measures only the named families and sizes and merges their rows into the committed result (replacing the
rows of the same family and size); the result keeps one entry per run (`runs`: its settings, machine, matmul peak and
provenance) and each row names its run, so every row's % of peak is against the peak of the run that measured it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from provenance import provenance, provenance_markdown, write_result  # noqa: E402  (benchmarks/ is on sys.path)
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoTokenizer,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLProcessor,
)

from vlm2vec_hf.hub_cards.convert import convert_backbone
from vlm2vec_hf.model_folder import load_sentence_transformer, make_processor, write_model_folder
from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel
from vlm2vec_hf.modeling_vlm2vec.backbone_qwen3_vl import embedding_instruction
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family
from vlm2vec_hf.modeling_vlm2vec.image_processing_phi3_v import (
    CLIP_MEAN,
    CLIP_STD,
    CROP_SIZE,
    hd_transform,
    num_image_tokens_for,
)
from vlm2vec_hf.modeling_vlm2vec.media_loading import load_image
from vlm2vec_hf.modeling_vlm2vec.modeling_phi3_v import Phi3VImageEmbedding, Phi3VModel
from vlm2vec_hf.modeling_vlm2vec.modeling_vlm2vec import reference_position_ids
from vlm2vec_hf.tiny import BUNDLED_IMAGES, random_backbone, tiny_tokenizer

RESULTS = Path(__file__).parent / "results"
STEM = "encode_throughput"
# A stock Qwen3-VL processor save (the image / video processor settings of a Qwen3-VL checkpoint, the Instruct chat
# template the official embedder renders, and the bundled tiny tokenizer's vocabulary and special-token ids).
QWEN3_VL_PROCESSOR = Path(__file__).parent.parent / "tests/fixtures/parity-qwen3vl-embedding-public/backbone"
INSTRUCTION = "Represent the given image with the following question:"
TEXTS = [
    "What is in the image?",
    "Which animal is lying on the rug, and what colour is its fur?",
    "Is there a cup of coffee on the table?",
    "What kind of building stands by the lake in this photograph, and how old might it be?",
]
IMAGES = sorted(str(path) for path in BUNDLED_IMAGES.glob("*.png"))
KINDS = ("text", "image", "image+text")
PARITY_TOLERANCE = 1e-4


def vlm2vec_prompt(image_tag: str, text: str | None, has_image: bool) -> str:
    """A VLM2Vec-style prompt string: the image tag, the instruction, the text."""
    return " ".join(part for part in (image_tag if has_image else "", INSTRUCTION, text or "") if part)


def user_text(image_tag: str, text: str | None, has_image: bool) -> str | None:
    """The user turn's text alone (the Qwen3-VL embedder puts the instruction and the image in the conversation)."""
    return text


def make_inputs(
    kind: str, count: int, image_tag: str, reference_prompt: Callable[[str, str | None, bool], object] = vlm2vec_prompt
) -> tuple[list, list, list[str | None]]:
    """`count` inputs of one kind, as (ST inputs, reference prompts, reference image paths)."""
    st_inputs, prompts, images = [], [], []
    for index in range(count):
        text, image = TEXTS[index % len(TEXTS)], IMAGES[index % len(IMAGES)]
        if kind == "text":
            st_inputs.append(text)
            prompts.append(reference_prompt(image_tag, text, False))
            images.append(None)
        elif kind == "image":
            st_inputs.append(image)
            prompts.append(reference_prompt(image_tag, None, True))
            images.append(image)
        else:
            st_inputs.append({"image": image, "text": text})
            prompts.append(reference_prompt(image_tag, text, True))
            images.append(image)
    return st_inputs, prompts, images


def pool_last(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """`(batch, seq, D)` -> `(batch, D)`: the last non-padding token, L2-normalised (either padding side)."""
    last = attention_mask.shape[1] - 1 - attention_mask.flip(1).argmax(1)
    return F.normalize(hidden[torch.arange(hidden.shape[0]), last], dim=-1)


class QwenReferenceStylePipeline:
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
            outputs.append(pool_last(hidden, batch["attention_mask"]))
        return torch.cat(outputs)


def reference_phi3v_image(image: Image.Image, num_crops: int = 4) -> tuple[torch.Tensor, list[int]]:
    """The reference `Phi3VImageProcessor.preprocess` for one image: `(num_crops + 1, 3, 336, 336)` pixel values
    and the HD size `[height, width]`."""
    hd = hd_transform(image.convert("RGB"), num_crops)
    tensor = torch.from_numpy(np.array(hd)).permute(2, 0, 1).float().div(255)  # torchvision ToTensor
    tensor = (tensor - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)  # Normalize
    global_view = F.interpolate(tensor.unsqueeze(0), size=(CROP_SIZE, CROP_SIZE), mode="bicubic")
    height, width = tensor.shape[1:]
    crops = (
        tensor.reshape(1, 3, height // CROP_SIZE, CROP_SIZE, width // CROP_SIZE, CROP_SIZE)
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(-1, 3, CROP_SIZE, CROP_SIZE)
        .contiguous()
    )
    stacked = torch.cat([global_view, crops], dim=0)
    padding = stacked.new_zeros(num_crops + 1 - stacked.shape[0], 3, CROP_SIZE, CROP_SIZE)
    return torch.cat([stacked, padding], dim=0), [height, width]


def reference_phi3v_image_features(
    embedding: Phi3VImageEmbedding, pixel_values: torch.Tensor, image_sizes: torch.Tensor
) -> list[torch.Tensor]:
    """The reference `Phi3ImageEmbedding` (`sub_glb` order): `(num_img_tokens_i, hidden)` per image."""
    images, crops = pixel_values.shape[:2]
    output = embedding.img_processor(pixel_values.flatten(0, 1), output_hidden_states=True)
    features = output.hidden_states[-2][:, 1:]
    side = int(features.shape[1] ** 0.5)
    features = features.reshape(images, crops, -1, features.shape[-1])
    projected = []
    for index in range(images):
        h_crop, w_crop = (image_sizes[index] // CROP_SIZE).tolist()
        global_view = embedding.merge_2x2(features[index, :1], 1, 1)
        global_view = torch.cat([global_view, embedding.sub_GN.repeat(1, side // 2, 1, 1)], dim=2)
        global_view = global_view.reshape(1, -1, global_view.shape[-1])
        sub = embedding.add_row_separators(embedding.merge_2x2(features[index, 1:][: h_crop * w_crop], h_crop, w_crop))
        projected.append(embedding.img_projection(torch.cat([sub, embedding.glb_GN, global_view], dim=1))[0])
    return projected


class PhiReferenceStylePipeline:
    """The reference's Phi-3.5-V path (per-example `Phi3VProcessor`, `Phi3ImageEmbedding`, `Phi3Model`)."""

    def __init__(self, backbone: Phi3VModel, tokenizer, num_crops: int = 4):
        self.model = backbone.eval()
        self.model.set_attn_implementation("eager")
        self.tokenizer = tokenizer
        self.num_crops = num_crops

    def process(self, prompt: str, image: str | None) -> tuple[list[int], torch.Tensor | None, list[int] | None]:
        """One example: (input ids with `-1` image placeholders, pixel values, HD size)."""
        if image is None:
            return self.tokenizer(prompt)["input_ids"], None, None
        pixels, size = reference_phi3v_image(Image.open(image), self.num_crops)
        chunks = [self.tokenizer(chunk)["input_ids"] for chunk in re.split(r"<\|image_\d+\|>", prompt)]
        ids = chunks[0] + [-1] * num_image_tokens_for(*size, self.model.config.num_img_tokens) + chunks[1]
        return ids, pixels, size

    @torch.inference_mode()
    def encode(self, prompts: list[str], images: list[str | None], batch_size: int) -> torch.Tensor:
        outputs = []
        for start in range(0, len(prompts), batch_size):
            rows, pixel_values, sizes = [], [], []
            for prompt, image in zip(prompts[start : start + batch_size], images[start : start + batch_size]):
                ids, pixels, size = self.process(prompt, image)
                rows.append({"input_ids": ids})
                if pixels is not None:
                    pixel_values.append(pixels)
                    sizes.append(size)
            batch = self.tokenizer.pad(rows, padding=True, padding_side="right", return_tensors="pt")
            input_ids = batch["input_ids"]
            embeds = self.model.language_model.embed_tokens(input_ids.clamp(min=0))
            if pixel_values:
                features = reference_phi3v_image_features(
                    self.model.vision_embed_tokens, torch.stack(pixel_values), torch.tensor(sizes)
                )
                positions = (input_ids < 0).nonzero()
                offset = 0
                for image_tokens in features:
                    row, column = positions[offset].tolist()
                    embeds[row, column : column + image_tokens.shape[0]] = image_tokens
                    offset += image_tokens.shape[0]
            hidden = self.model.language_model(
                inputs_embeds=embeds, attention_mask=batch["attention_mask"]
            ).last_hidden_state
            outputs.append(pool_last(hidden, batch["attention_mask"]))
        return torch.cat(outputs)


class Qwen3VLEmbedderStylePipeline:
    """The official `Qwen3VLEmbedder.process` on one batch at a time, on stock transformers classes loaded from the
    backbone folder as the embedder loads them."""

    def __init__(self, backbone_dir: Path, instruction: str):
        self.model = AutoModel.from_pretrained(backbone_dir, attn_implementation="eager").eval()
        self.processor = Qwen3VLProcessor.from_pretrained(backbone_dir, padding_side="right")
        self.family = get_family(self.model.config.model_type)
        # `fetch_image`'s resize runs at the embedder's own pixel bounds (4,096 .. 1,843,200), not the checkpoint
        # processor's: the family's image processor carries exactly those.
        self.fetch_bounds = self.family.conversion_image_processor(None)
        self.instruction = embedding_instruction(instruction)  # stripped, `.` added unless punctuated
        self.max_length = self.family.default_max_length

    def conversation(self, text: str | None, image: str | None) -> tuple[list[dict], list[Image.Image]]:
        """`format_model_input` and `process_vision_info` for one input: the conversation (system instruction; the
        image, then the text; `NULL` for neither) and its fetched image (RGBA on white, factor-32 smart resize)."""
        content, fetched = [], []
        if image is not None:
            loaded = load_image(image, self.family.resize_small_images, self.family.rgba_background)
            fetched.append(self.family.resize_for_model(self.fetch_bounds, loaded))
            content.append({"type": "image", "image": fetched[-1]})
        if text is not None:
            content.append({"type": "text", "text": text})
        if not content:
            content.append({"type": "text", "text": "NULL"})
        system = {"role": "system", "content": [{"type": "text", "text": self.instruction}]}
        return [system, {"role": "user", "content": content}], fetched

    @torch.inference_mode()
    def encode(self, texts: list[str | None], images: list[str | None], batch_size: int) -> torch.Tensor:
        outputs = []
        for start in range(0, len(texts), batch_size):
            conversations, fetched = [], []
            for text, image in zip(texts[start : start + batch_size], images[start : start + batch_size]):
                conversation, row_images = self.conversation(text, image)
                conversations.append(conversation)
                fetched += row_images
            prompts = self.processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)
            inputs = self.processor(
                text=prompts,
                images=fetched or None,
                truncation=True,
                max_length=self.max_length,
                padding=True,
                do_resize=False,
                return_tensors="pt",
            )
            hidden = self.model(**inputs).last_hidden_state
            outputs.append(pool_last(hidden, inputs["attention_mask"]))
        return torch.cat(outputs)


def build_qwen(size: str, workdir: Path) -> tuple[Path, QwenReferenceStylePipeline, int]:
    """Save a random stock Qwen2-VL backbone (+ tokenizer, PIL image processor), convert it; returns the model
    folder, the reference-style pipeline on the same weights and the parameter count."""
    backbone = random_backbone(size, seed=0, weight_std=0.2 if size == "tiny" else None)
    backbone_dir = workdir / f"qwen2_vl-{size}-backbone"
    backbone.save_pretrained(backbone_dir)
    tiny_tokenizer().save_pretrained(backbone_dir)
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    Qwen2VLImageProcessorPil().save_pretrained(backbone_dir)
    model_dir = convert_backbone(backbone_dir, workdir / f"qwen2_vl-{size}-vlm2vec", dtype=torch.float32)
    return model_dir, QwenReferenceStylePipeline(backbone_dir), sum(p.numel() for p in backbone.parameters())


def build_phi(size: str, workdir: Path) -> tuple[Path, PhiReferenceStylePipeline, int]:
    """A random Phi-3.5-V (`Phi3VModel`: stock `Phi3Model` + `CLIPVisionModel` + glue) as a model folder, and the
    reference-style pipeline on the same weights."""
    backbone = random_backbone(size, "phi3_v", seed=0, weight_std=0.2 if size == "tiny" else None)
    tokenizer = tiny_tokenizer("phi3_v")
    processor = make_processor(tokenizer, backbone_model_type="phi3_v")
    model_dir = write_model_folder(VLM2VecModel.from_backbone(backbone), processor, workdir / f"phi3_v-{size}-vlm2vec")
    return model_dir, PhiReferenceStylePipeline(backbone, tokenizer), sum(p.numel() for p in backbone.parameters())


def build_qwen3_vl(size: str, workdir: Path) -> tuple[Path, Qwen3VLEmbedderStylePipeline, int]:
    """Save a random stock Qwen3-VL backbone with the stock Qwen3-VL processor files, convert it as
    `vlm2vec convert --base` does (the family's embedding recipe); returns the model folder, the official-embedder
    pipeline on the same weights and the parameter count."""
    family = get_family(name="qwen3_vl")
    backbone = random_backbone(size, family.name, seed=0, weight_std=0.2 if size == "tiny" else None)
    backbone_dir = workdir / f"{family.name}-{size}-backbone"
    backbone.save_pretrained(backbone_dir)
    Qwen3VLProcessor.from_pretrained(QWEN3_VL_PROCESSOR).save_pretrained(backbone_dir)
    model_dir = convert_backbone(backbone_dir, workdir / f"{family.name}-{size}-vlm2vec", dtype=torch.float32)
    pipeline = Qwen3VLEmbedderStylePipeline(backbone_dir, INSTRUCTION)
    return model_dir, pipeline, sum(p.numel() for p in backbone.parameters())


@dataclass(frozen=True)
class FamilyRows:
    """How one family's rows are measured.

    Attributes:
        build: `(size, workdir) -> (model folder, reference-style pipeline, parameter count)`.
        reference_prompt: `(image tag, text or None, has image) -> ` what the pipeline takes as an input's prompt.
        items_option: the option giving the items per measurement (`items`, or `phi_items` for long inputs).
    """

    build: Callable[[str, Path], tuple[Path, object, int]]
    reference_prompt: Callable[[str, str | None, bool], object] = vlm2vec_prompt
    items_option: str = "items"


FAMILY_ROWS = {
    "qwen2_vl": FamilyRows(build_qwen),
    "phi3_v": FamilyRows(build_phi, items_option="phi_items"),
    "qwen3_vl": FamilyRows(build_qwen3_vl, reference_prompt=user_text),
}
MODEL_SIZES = ("tiny", "mid")
MAX_CHART_COLUMNS = 4  # models side by side in the chart; more wrap onto further rows


def matmul_peak(sizes: tuple[int, ...] = (2048, 4096), repeats: int = 3) -> float:
    """The machine's fp32 matmul peak at this thread count, in FLOP/s: the best of `repeats` `torch.mm` of
    `n x n` matrices for each `n` (after one warm-up each)."""
    best = 0.0
    for n in sizes:
        a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
        torch.mm(a, b, out=out)
        for _ in range(repeats):
            best = max(best, 2 * n**3 / timed(torch.mm, a, b, out=out))
    return best


def timed(function, *args, **kwargs) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def counted(function: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    """`function()`'s embeddings and the model FLOPs it executed (`FlopCounterMode`)."""
    counter = FlopCounterMode(display=False)
    with counter:
        embeddings = torch.as_tensor(function())
    return embeddings, counter.get_total_flops()


def machine_and_start_peak() -> dict:
    """The run's machine fields and the fp32 matmul peak measured at its start (printed)."""
    fields = {
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "matmul_peak_method": "best of 3 fp32 torch.mm of 2048^2 and 4096^2 matrices, at the start and the end",
        "matmul_peak_flop_per_s": {"start": matmul_peak()},
    }
    print(f"fp32 matmul peak at the start: {fields['matmul_peak_flop_per_s']['start'] / 1e9:.1f} GFLOP/s", flush=True)
    return fields


def finish_peak(results: dict) -> None:
    """Measure the peak again at the end, keep the higher one, and give every row its share of it (printed)."""
    peak = results["matmul_peak_flop_per_s"]
    peak["end"] = matmul_peak()
    peak["used"] = max(peak["start"], peak["end"])
    for row in results["rows"]:
        row["ours_peak_fraction"] = row["ours_flop_per_s"] / peak["used"]
        row["reference_peak_fraction"] = row["reference_flop_per_s"] / peak["used"]
    print(f"fp32 matmul peak at the end: {peak['end'] / 1e9:.1f} GFLOP/s", flush=True)


def run(families: list[str], models: list[str], items: int, phi_items: int, repeats: int, batch_sizes: list[int]):
    settings = {"items": items, "phi_items": phi_items, "repeats": repeats}
    results = {"families": families, "models": models, **settings, **machine_and_start_peak(), "rows": []}
    # The cores may be shared: the load beside the run says how quiet it was.
    results["load_average_1min"] = {"start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as workdir:
        for family in families:
            measured = FAMILY_ROWS[family]
            count = settings[measured.items_option]
            sizes = [size for size in batch_sizes if size <= count] or [count]
            for size in models:
                model_dir, reference, parameters = measured.build(size, Path(workdir))
                ours = load_sentence_transformer(model_dir, device="cpu")
                ours[0].model.set_attn_implementation("eager")
                for kind in KINDS:
                    st_inputs, prompts, images = make_inputs(
                        kind, count, get_family(name=family).image_token, measured.reference_prompt
                    )
                    for batch_size in sizes:

                        def run_ours(model=ours, batch_size=batch_size, st_inputs=st_inputs):
                            return model.encode(st_inputs, prompt=INSTRUCTION, batch_size=batch_size)

                        def run_reference(pipeline=reference, batch_size=batch_size, prompts=prompts, images=images):
                            return pipeline.encode(prompts, images, batch_size)

                        # Counted pass first: FLOPs, warm-up, and the same numbers from both pipelines, so that the
                        # speed comparison is between equivalent computations.
                        ours_embeddings, ours_flops = counted(run_ours)
                        reference_embeddings, reference_flops = counted(run_reference)
                        same = (ours_embeddings - reference_embeddings).abs().max().item()
                        assert same < PARITY_TOLERANCE, f"pipelines disagree by {same} on {family}/{size}/{kind}"
                        ours_times, reference_times = [], []
                        for _ in range(repeats):
                            ours_times.append(timed(run_ours))
                            reference_times.append(timed(run_reference))
                        row = {
                            "family": family,
                            "model": size,
                            "parameters": parameters,
                            "inputs": kind,
                            "items": count,
                            "batch_size": batch_size,
                            "ours_items_per_s": count / statistics.median(ours_times),
                            "reference_items_per_s": count / statistics.median(reference_times),
                            "ours_flops_per_item": ours_flops / count,
                            "reference_flops_per_item": reference_flops / count,
                            "max_abs_diff": same,
                        }
                        row["ratio"] = row["ours_items_per_s"] / row["reference_items_per_s"]
                        row["ours_flop_per_s"] = row["ours_flops_per_item"] * row["ours_items_per_s"]
                        row["reference_flop_per_s"] = row["reference_flops_per_item"] * row["reference_items_per_s"]
                        results["rows"].append(row)
                        print(
                            f"{family:>8} {size:>4} {parameters / 1e6:5.1f}M {kind:>10} bs={batch_size:<3} "
                            f"ours {row['ours_items_per_s']:8.2f}/s {row['ours_flop_per_s'] / 1e9:6.1f} GFLOP/s | "
                            f"reference-style {row['reference_items_per_s']:8.2f}/s "
                            f"{row['reference_flop_per_s'] / 1e9:6.1f} GFLOP/s | ratio {row['ratio']:.2f}x",
                            flush=True,
                        )
                del ours, reference
    results["load_average_1min"]["end"] = os.getloadavg()[0]
    finish_peak(results)
    return results


def model_label(row: dict) -> str:
    return f"{get_family(name=row['family']).display_name} {row['model']}"


RUN_KEYS = (
    "families",
    "models",
    "items",
    "phi_items",
    "repeats",
    "torch_threads",
    "platform",
    "torch",
    "matmul_peak_method",
    "matmul_peak_flop_per_s",
    "load_average_1min",
    "provenance",
)


def as_runs(results: dict) -> dict:
    """`results` with one entry per run: `{"runs": [settings, machine, matmul peak, provenance], "rows": [..., with
    "run": its index], "provenance"}`. A one-run result (as `run` returns it, or a file written before runs were
    kept) becomes one run; its provenance is the one it was measured with, else this checkout's."""
    if "runs" in results:
        return results
    run = {key: results[key] for key in RUN_KEYS if key in results}
    run.setdefault("families", list(dict.fromkeys(row["family"] for row in results["rows"])))
    run.setdefault("models", list(dict.fromkeys(row["model"] for row in results["rows"])))
    run.setdefault("provenance", provenance())
    return {"runs": [run], "rows": [{**row, "run": 0} for row in results["rows"]], "provenance": run["provenance"]}


def merge(committed: dict, new: dict) -> dict:
    """`committed`'s rows with those of `new`'s families and sizes replaced by `new`'s; every row keeps the run (and
    so the provenance and matmul peak) it was measured in. Rows in `FAMILY_ROWS` order, then by size; runs left
    without rows are dropped. The result's own provenance is `new`'s."""
    committed, new = as_runs(committed), as_runs(new)
    replaced = {(row["family"], row["model"]) for row in new["rows"]}
    pairs = [
        (committed["runs"][row["run"]], row)
        for row in committed["rows"]
        if (row["family"], row["model"]) not in replaced
    ]
    pairs += [(new["runs"][row["run"]], row) for row in new["rows"]]
    pairs.sort(key=lambda pair: (list(FAMILY_ROWS).index(pair[1]["family"]), MODEL_SIZES.index(pair[1]["model"])))
    runs, rows = [], []
    for run, row in pairs:
        if not any(kept is run for kept in runs):
            runs.append(run)
        rows.append({**row, "run": next(index for index, kept in enumerate(runs) if kept is run)})
    return {"runs": runs, "rows": rows, "provenance": new["provenance"]}


def run_header(run: dict) -> list[str]:
    """The Markdown lines on one run's settings and matmul peak."""
    items = f"{run['items']}" + "".join(
        f" ({get_family(name=family).display_name}: {run[FAMILY_ROWS[family].items_option]})"
        for family in run["families"]
        if FAMILY_ROWS[family].items_option != "items"
    )
    peak = run["matmul_peak_flop_per_s"]
    return [
        f"Items per measurement: {items}, median of {run['repeats']} interleaved repeats, "
        f"{run['torch_threads']} torch threads, CPU fp32 eager, {run['torch']}.",
        "",
        f"fp32 matmul peak of this machine in the same run: {peak['used'] / 1e9:.1f} GFLOP/s "
        f"({run['matmul_peak_method']}: {peak['start'] / 1e9:.1f} / {peak['end'] / 1e9:.1f} GFLOP/s). "
        "FLOPs are the model FLOPs one pass executes (`FlopCounterMode`: matmuls and convolutions); "
        "% peak = achieved FLOP/s / that peak."
        + (
            f" 1-minute load average at the start / end: {run['load_average_1min']['start']:.1f} / "
            f"{run['load_average_1min']['end']:.1f}."
            if "load_average_1min" in run
            else ""
        ),
    ]


def to_markdown(results: dict) -> str:
    results = as_runs(results)
    runs = results["runs"]
    lines = []
    if len(runs) == 1:
        lines += [*run_header(runs[0]), ""]
    else:
        lines += [f"The rows come from {len(runs)} runs; each row's % peak is against its own run's peak.", ""]
        for index, run in enumerate(runs, 1):
            families = ", ".join(get_family(name=family).display_name for family in run["families"])
            lines += [f"**Run {index}** ({families}; {', '.join(run['models'])}).", ""]
            lines += [*run_header(run), "", provenance_markdown(run["provenance"]), ""]
    run_column = len(runs) > 1
    lines += [
        ("| run " if run_column else "")
        + "| model | params | inputs | batch | ours (items/s) | reference-style (items/s) | ratio "
        "| ours GFLOP/item | ours GFLOP/s | ours % peak | ref. GFLOP/item | ref. GFLOP/s | ref. % peak |",
        ("| --- " if run_column else "") + "| --- " * 13 + "|",
    ]
    for row in results["rows"]:
        lines.append(
            (f"| {row['run'] + 1} " if run_column else "")
            + f"| {model_label(row)} | {row['parameters'] / 1e6:.1f}M | {row['inputs']} | {row['batch_size']} | "
            f"{row['ours_items_per_s']:.2f} | {row['reference_items_per_s']:.2f} | {row['ratio']:.2f}x | "
            f"{row['ours_flops_per_item'] / 1e9:.3f} | {row['ours_flop_per_s'] / 1e9:.1f} | "
            f"{100 * row['ours_peak_fraction']:.1f}% | {row['reference_flops_per_item'] / 1e9:.3f} | "
            f"{row['reference_flop_per_s'] / 1e9:.1f} | {100 * row['reference_peak_fraction']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def plot_title(results: dict) -> str:
    """The chart's title: threads and the matmul peak (of each run, for several)."""
    runs = as_runs(results)["runs"]
    threads = sorted({run["torch_threads"] for run in runs})
    peaks = " / ".join(f"{run['matmul_peak_flop_per_s']['used'] / 1e9:.0f}" for run in runs)
    which = f" (runs {' / '.join(str(index) for index in range(1, len(runs) + 1))})" if len(runs) > 1 else ""
    return f"CPU fp32, {'/'.join(map(str, threads))} threads; matmul peak {peaks} GFLOP/s{which}"


def plot(results: dict, path: Path, title: str | None = None) -> None:
    """Per model: the ours / reference-style throughput ratio (top) and each pipeline's achieved FLOP/s as a
    fraction of the fp32 matmul peak (bottom; reference-style hatched), per input kind and batch size. `title`
    defaults to the threads and peak of a one-run result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(model_label(row) for row in results["rows"]))
    blocks = math.ceil(len(models) / MAX_CHART_COLUMNS)  # rows of models, each a ratio row and a % peak row
    columns = math.ceil(len(models) / blocks)
    figure, grid = plt.subplots(2 * blocks, columns, figsize=(5 * columns, 7.2 * blocks), squeeze=False)
    for unused in range(len(models), blocks * columns):
        for axis in (
            grid[2 * (unused // columns)][unused % columns],
            grid[2 * (unused // columns) + 1][unused % columns],
        ):
            axis.axis("off")
    for index, model in enumerate(models):
        top, bottom = grid[2 * (index // columns)][index % columns], grid[2 * (index // columns) + 1][index % columns]
        rows = [row for row in results["rows"] if model_label(row) == model]
        kinds = list(dict.fromkeys(row["inputs"] for row in rows))
        batch_sizes = list(dict.fromkeys(row["batch_size"] for row in rows))
        width = 0.8 / len(batch_sizes)

        def values(key: str, batch_size: int, rows=rows, kinds=kinds) -> list[float]:
            return [
                next(r[key] for r in rows if (r["inputs"], r["batch_size"]) == (kind, batch_size)) for kind in kinds
            ]

        for offset, batch_size in enumerate(batch_sizes):
            positions = [index + (offset - (len(batch_sizes) - 1) / 2) * width for index in range(len(kinds))]
            top.bar(positions, values("ratio", batch_size), width, label=f"batch {batch_size}")
            ours = [100 * value for value in values("ours_peak_fraction", batch_size)]
            reference = [100 * value for value in values("reference_peak_fraction", batch_size)]
            bars = bottom.bar([p - width / 4 for p in positions], ours, width / 2, label=f"ours, batch {batch_size}")
            bottom.bar(
                [p + width / 4 for p in positions],
                reference,
                width / 2,
                color=bars[0].get_facecolor(),
                hatch="//",
                alpha=0.5,
                label=f"reference-style, batch {batch_size}",
            )
        top.axhline(1.0, color="black", linewidth=0.8)
        top.set_title(f"{model} ({rows[0]['parameters'] / 1e6:.1f}M params)")
        top.set_ylabel("throughput ratio, ours / reference-style")
        bottom.set_ylabel("achieved FLOP/s, % of fp32 matmul peak")
        for axis in (top, bottom):
            axis.set_xticks(range(len(kinds)), kinds)
            axis.legend(fontsize=7)
    if title is None:
        peak = results["matmul_peak_flop_per_s"]["used"]
        title = f"CPU fp32, {results['torch_threads']} threads; matmul peak {peak / 1e9:.0f} GFLOP/s"
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILY_ROWS), choices=list(FAMILY_ROWS))
    parser.add_argument("--models", nargs="+", default=list(MODEL_SIZES), choices=MODEL_SIZES)
    parser.add_argument("--items", type=int, default=64, help="items per measurement (all but Phi-3.5-V)")
    parser.add_argument(
        "--phi-items", type=int, default=16, help="items per measurement for Phi-3.5-V (~770 tokens + 5 crops each)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64], help="those over the items skipped")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="merge the measured rows into the result in --out (replacing the rows of the same family and size)",
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw the chart from the saved JSON")
    args = parser.parse_args()
    saved = args.out / f"{STEM}.json"
    if args.plot_only:
        results = json.loads(saved.read_text())
        plot(results, args.out / f"{STEM}.png", plot_title(results))
        return
    if args.merge and not saved.is_file():
        parser.error(f"--merge: there is no result to merge into at {saved}")
    results = run(args.families, args.models, args.items, args.phi_items, args.repeats, args.batch_sizes)
    results = merge(json.loads(saved.read_text()), results) if args.merge else as_runs(results)
    markdown = write_result(args.out, STEM, results, to_markdown)
    plot(results, args.out / f"{STEM}.png", plot_title(results))
    print(markdown)


if __name__ == "__main__":
    main()
