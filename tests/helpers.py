"""The one helpers module of the tests (test modules import from here, never from each other): the public parity
fixtures as data, tensor distance, an isolated child process, synthetic clips / videos / eval rows, the training
callbacks and CLI argument builders, the fresh loader process for Hub round trips, and GradCache forward records.

Pytest fixtures (model folders built once per session) live in `conftest.py`."""

from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

FIXTURES = Path(__file__).parent / "fixtures"
# Every parity fixture is compared at this max-abs distance (fp32, CPU).
TOLERANCE = 1e-5


def max_abs(a, b) -> float:
    """Largest absolute elementwise difference of two array-likes (tensors, numpy arrays, lists), compared in fp32."""
    return (torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max().item()


# --- the public parity fixtures ---


@dataclass(frozen=True)
class ParityFixture:
    """One `tests/fixtures/parity-*-public` folder: its cases, batches, recipe and reference tensors.

    `media` is the folder that case `image` (and video `clip`) names are relative to."""

    name: str
    media: str = "images"

    @property
    def root(self) -> Path:
        return FIXTURES / self.name

    @property
    def backbone(self) -> Path:
        return self.root / "backbone"

    @cached_property
    def data(self) -> dict:
        return json.loads((self.root / "cases.json").read_text())

    @property
    def cases(self) -> dict[str, dict]:
        return self.data["cases"]

    @property
    def batches(self) -> dict[str, dict]:
        """The reference's batches and the ones it fails on (ours must give every row its single-case embedding)."""
        return {**self.data["batches"], **self.data.get("batches_failing_in_reference", {})}

    @property
    def recipe(self) -> dict:
        return self.data["recipe"]

    @cached_property
    def expected(self) -> dict[str, torch.Tensor]:
        return load_file(self.root / "expected.safetensors")

    @cached_property
    def expected_lora(self) -> dict[str, torch.Tensor]:
        return load_file(self.root / "expected_lora.safetensors")

    @cached_property
    def loss(self) -> dict:
        return json.loads((self.root / "loss.json").read_text())

    def input_ids(self, case_id: str) -> list[int]:
        ids = self.cases[case_id]["input_ids"]
        return json.loads(ids) if isinstance(ids, str) else ids

    def image_path(self, case_id: str) -> str | None:
        image = self.cases[case_id].get("image")
        return str(self.root / self.media / image) if image else None

    def image(self, case_id: str) -> Image.Image | None:
        path = self.image_path(case_id)
        return Image.open(path) if path else None

    def clip_dir(self, case_id: str) -> Path:
        return self.root / self.media / self.cases[case_id]["clip"]

    def singles(self, case_ids: list[str], expected: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The single-case reference embeddings of `case_ids`, stacked: (len(case_ids), dim)."""
        expected = self.expected if expected is None else expected
        return torch.stack([expected[f"case/{case}"] for case in case_ids])


QWEN2VL = ParityFixture("parity-qwen2vl-public")
QWEN2VL_VIDEO = ParityFixture("parity-qwen2vl-video-public", media="frames")
PHI3V = ParityFixture("parity-phi3v-public")
LLAVA_NEXT = ParityFixture("parity-llava-next-public")
GME = ParityFixture("parity-gme-public")
QWEN3VL = ParityFixture("parity-qwen3vl-embedding-public")

# The Qwen2-VL image fixture is the project's reference: many tests use it directly.
FIXTURE = QWEN2VL.root
CASES: dict[str, dict] = QWEN2VL.cases
BATCHES: dict[str, dict] = QWEN2VL.data["batches"]
# Reference fixture recipe: fp32, eager attention, prompts truncated at 256 tokens.
MAX_LENGTH = 256


def case_image_path(case_id: str) -> str | None:
    return QWEN2VL.image_path(case_id)


def case_image(case_id: str) -> Image.Image | None:
    return QWEN2VL.image(case_id)


# (instruction, text, has_image) per case: the reference's prompt builder turns each into the case's stored prompt.
Structured = dict[str, tuple[str | None, str | None, bool]]
_PASSAGE = "Represent the following passage:"


def _after_instruction(fixture: ParityFixture, case_id: str) -> str:
    return fixture.cases[case_id]["text"][len(_PASSAGE) + 1 :]


V1_STRUCTURED: Structured = {
    "p01": ("Represent the given image with the following question:", "What is in the image", True),
    "p02": ("Represent the given image for classification", None, True),
    "p05": ("Find me an everyday image that matches the given caption:", "a red bus.", False),
    "p06": ("Represent the given image.", None, True),
    "p07": (None, None, True),
    "p10": ("Find a day-to-day image that looks similar to the provided image.", None, True),
    "p11": (_PASSAGE, _after_instruction(QWEN2VL, "p11"), False),
    "p12": ("Find an image caption describing the given everyday image.", None, True),
    "p14": ("Represent the given image.", None, True),
    **{case: (None, CASES[case]["text"], False) for case in ("p03", "p04", "p15", "p16")},
}
V2_STRUCTURED: Structured = {
    "p08": ("Represent the given image for classification", None, True),
    "p09": ("Represent the given image with the following question:", "What is on the table?", True),
    "p13": ("Find me an everyday image that matches the given caption:", "Two dogs playing in the snow.", False),
    "p17": ("Represent the given image.", None, True),
}


def _phi_llava_v1(fixture: ParityFixture, p14_instruction: str) -> Structured:
    """Phi-3.5-V and LLaVA-Next share one case list (the same prompts; p14 differs)."""
    return {
        "p01": ("Represent the given image with the following question:", "What is in the image", True),
        "p02": ("Represent the given image for classification", None, True),
        "p03": (None, "A cat and a dog", False),
        "p04": (None, "A cat and a tiger", False),
        "p05": ("Find me an everyday image that matches the given caption:", "a red bus.", False),
        "p06": ("Represent the given image.", None, True),
        "p07": (None, None, True),
        "p09": ("Find a day-to-day image that looks similar to the provided image.", None, True),
        "p10": (_PASSAGE, _after_instruction(fixture, "p10"), False),
        "p12": ("Represent the given image.", None, True),
        "p13": (None, "a red bus", False),
        "p14": (p14_instruction, None, True),
        "p15": (None, "  ", False),
    }


_PHI_LLAVA_V2: Structured = {
    "p08": ("Represent the given image for classification", None, True),
    "p11": ("Find me an everyday image that matches the given caption:", "Two dogs playing in the snow.", False),
}
PHI3V_STRUCTURED = {"v1": _phi_llava_v1(PHI3V, "Represent the given document image."), "v2": _PHI_LLAVA_V2}
LLAVA_NEXT_STRUCTURED = {
    "v1": _phi_llava_v1(LLAVA_NEXT, "Represent the given image for classification"),
    "v2": _PHI_LLAVA_V2,
}


def structured_input(case_id: str, text: str | None, has_image: bool, fixture: ParityFixture = QWEN2VL):
    """A structured table row as an `encode` input: the text, or {"image": PIL image[, "text"]}."""
    if not has_image:
        return text
    item = {"image": fixture.image(case_id)}
    if text is not None:
        item["text"] = text
    return item


def raw_input(fixture: ParityFixture, case_id: str):
    """A case as `encode` takes it with its raw prompt (placeholders included): text, {"image", "text"} or
    {"video", "text"} (media by path)."""
    case = fixture.cases[case_id]
    if case.get("modality") == "video":
        return {"video": str(fixture.clip_dir(case_id)), "text": case["text"]}
    if image := fixture.image_path(case_id):
        return {"image": image, "text": case["text"]}
    return case["text"]


VIDEO_PAD = "<|video_pad|>"


def video_structured(case_id: str) -> tuple[dict, str | None]:
    """A video case of the video fixture as `({"video"[, "text"]}, prompt)`: the instruction as `prompt`; QA cases (the
    task prompt ends with "Question: ", then a space and the question) with the question as `text`."""
    body = QWEN2VL_VIDEO.cases[case_id]["text"][len(VIDEO_PAD) + 1 :]
    clip = str(QWEN2VL_VIDEO.clip_dir(case_id))
    if "Question:  " in body:
        instruction, question = body.split("Question:  ", 1)
        return {"video": clip, "text": question}, instruction + "Question: "
    return {"video": clip}, body or None


# GME: VLM2Vec's GME driver sends each text in this chat template (written out here independently of the library).
GME_VISION_BLOCK = "<|vision_start|><|image_pad|><|vision_end|>"
# VLM2Vec's GME driver (`MMEBModel.encode_input`) removes this from every text before GmeQwen2VL sees it.
GME_DRIVER_STRIPPED = "<|image_pad|>\n"


def gme_chat_prompt(text: str, has_image: bool, system: str | None = None) -> str:
    """The GME fixture recipe's template around `text` (with the vision block when `has_image`)."""
    template = GME.recipe["template"].replace("{instruction}", system or GME.recipe["system_prompt"])
    return template.replace(f"[{GME_VISION_BLOCK}]{{text}}", (GME_VISION_BLOCK if has_image else "") + text)


def gme_driver_text(case_id: str) -> str:
    return GME.cases[case_id]["text"].replace(GME_DRIVER_STRIPPED, "")


def gme_st_input(case_id: str):
    """A GME case as a user gives it to `encode`: text, image path, or {"image", "text"} (with VLM2Vec's
    `<|image_pad|>\\n` still in g06's text)."""
    text, path = GME.cases[case_id]["text"], GME.image_path(case_id)
    if not path:
        return text
    return {"image": path, "text": text} if text else path


# Qwen3-VL-Embedding: a case's images (one path or a list) and its video (a list of frame paths), by path.


def qwen3vl_images(case_id: str) -> list[str]:
    image = QWEN3VL.cases[case_id].get("image")
    names = [] if image is None else image if isinstance(image, list) else [image]
    return [str(QWEN3VL.root / QWEN3VL.media / name) for name in names]


def qwen3vl_video(case_id: str) -> list[str] | None:
    frames = QWEN3VL.cases[case_id].get("video")
    return [str(QWEN3VL.root / QWEN3VL.media / name) for name in frames] if frames else None


def qwen3vl_media(case_id: str) -> dict[str, list]:
    """The processor media keywords of a case: `images=` and/or `videos=` (one clip as its frame paths)."""
    media: dict[str, list] = {}
    if images := qwen3vl_images(case_id):
        media["images"] = images
    if (video := qwen3vl_video(case_id)) is not None:
        media["videos"] = [video]
    return media


def qwen3vl_dict_input(case_id: str) -> tuple[Any, str | None]:
    """A case as the official embedder's user gives it: `({"text", "image", "video"}, instruction)`, the
    instruction going to `encode(prompt=...)` (None: the default instruction)."""
    case = QWEN3VL.cases[case_id]
    item = {key: value for key, value in (("text", case.get("text")), ("video", qwen3vl_video(case_id))) if value}
    if images := qwen3vl_images(case_id):
        item["image"] = images if len(images) > 1 else images[0]
    return item, case.get("instruction")


def qwen3vl_messages(case_id: str) -> list[dict]:
    """A case as chat messages (its instruction as the system message): rows of one batch with different
    instructions."""
    item, instruction = qwen3vl_dict_input(case_id)
    parts = [{"type": "video", "video": item["video"]}] if "video" in item else []
    parts += [{"type": "image", "image": path} for path in qwen3vl_images(case_id)]
    parts += [{"type": "text", "text": item["text"]}] if "text" in item else []
    system = [{"role": "system", "content": instruction}] if instruction else []
    return [*system, {"role": "user", "content": parts}]


# --- loaded models, shared by the tests of one session (tests that change a setting restore it) ---


@cache
def load_auto(folder: Path) -> tuple[Any, Any]:
    """(AutoModel in eval mode, AutoProcessor) of a model folder, loaded once per session."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    return model, AutoProcessor.from_pretrained(folder, trust_remote_code=True)


@cache
def load_sentence_model(folder: Path):
    """A SentenceTransformer of a model folder (CPU), loaded once per session."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")


# --- processes, files ---

# Prepended to a child process's script: any import of this project fails there, so only a model folder's (or
# repo's) own code can run, as on a user's machine that never installed vlm2vec-hf.
BLOCK_PROJECT = """
import sys
class _BlockProject:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] == "vlm2vec_hf":
            raise ImportError("vlm2vec_hf must not be imported here")
sys.meta_path.insert(0, _BlockProject)
"""


def run_isolated(script: str, tmp_path: Path, prelude: str = BLOCK_PROJECT) -> dict:
    """Run `prelude` + dedented `script` in a fresh isolated (`-I`) offline Python under `tmp_path`, with its own
    HF_HOME; assert it exits 0 and return its last stdout line parsed as JSON."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", prelude + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_clip(root: Path, name: str, frames: int = 3, shade: int = 0) -> Path:
    """A folder `root/frames/name` of `frames` 32x32 PNGs, a white 8x8 square moving 4 px per frame over a
    `shade`d background; returns the folder."""
    folder = root / "frames" / name
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        image = Image.new("RGB", (32, 32), (shade, 40, 200 - shade))
        image.paste((255, 255, 255), (4 * index, 8, 4 * index + 8, 16))
        image.save(folder / f"{index:04d}.png")
    return folder


def write_rows(root: Path, dataset: str, rows: list[dict]) -> None:
    """An MMEB-style eval set: `root/dataset/test.jsonl`, one JSON row per line."""
    (root / dataset).mkdir(parents=True)
    (root / dataset / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_ffv1(path: Path, frames: list[np.ndarray]) -> Path:
    """A lossless (FFV1, 8 fps) video of `frames`, each a (H, W, 3) uint8 RGB array of the same size."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --- training ---


def train_args(model_dir, data, out, *extra: str) -> list[str]:
    """`vlm2vec train` arguments on the mini-MMEB set `data` (batch 16, GradCache 8, lr 1e-3, seed 7) + `extra`."""
    return [
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(data / "train"),
        "--image-dir",
        str(data / "images"),
        "--output-dir",
        str(out),
        "--per-device-train-batch-size",
        "16",
        "--gc-mini-batch-size",
        "8",
        "--learning-rate",
        "1e-3",
        "--warmup-steps",
        "2",
        "--logging-steps",
        "5",
        "--seed",
        "7",
        *extra,
    ]


def train_config(args: list[str]):
    """The `TrainConfig` that `vlm2vec train` builds from `args` (as `train_args` returns them)."""
    import argparse

    from vlm2vec_hf.training.cli_options import add_config_flags, config_from_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_flags(parser)
    return config_from_args(parser.parse_args(args[1:]))


class SimulatedCrash(RuntimeError):
    pass


def _trainer_callback():
    from transformers import TrainerCallback

    return TrainerCallback


class StepRecorder(_trainer_callback()):
    """What a run really did: the global step it started at, and the optimizer steps it took after that."""

    def __init__(self):
        self.start_step: int | None = None
        self.optimizer_steps = 0
        self.step_ends: list[int] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_step = state.global_step  # after the Trainer has loaded a checkpoint's trainer_state.json

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer_steps += 1

    def on_step_end(self, args, state, control, **kwargs):
        self.step_ends.append(state.global_step)


def add_callback_to_cli_runs(monkeypatch, callback) -> None:
    """Make `vlm2vec train` (which builds its trainer through `build_trainer`) run with `callback` as well."""
    from vlm2vec_hf.training import trainer as trainer_module

    build = trainer_module.build_trainer

    def build_with_callback(config, callbacks=None):
        return build(config, [*(callbacks or []), callback])

    monkeypatch.setattr(trainer_module, "build_trainer", build_with_callback)


@contextmanager
def recorded_forwards(model) -> Iterator[list[tuple[str, int, int]]]:
    """Events of the VLM2Vec model inside `model`, in order: ("forward", rows, tokens) for a forward without
    autograd graph, ("graph", rows, tokens) for one that builds a graph, ("backward", rows, 0) when the gradient
    reaches a graph forward's embeddings (tokens = the batch's rows x padded width, an activation-size proxy)."""
    events: list[tuple[str, int, int]] = []
    vlm2vec = model[0].model

    def before(module, args, kwargs):
        input_ids = kwargs["input_ids"]
        kind = "graph" if torch.is_grad_enabled() else "forward"
        events.append((kind, input_ids.shape[0], input_ids.numel()))

    def after(module, args, kwargs, output):
        if output.embeddings.requires_grad:
            output.embeddings.register_hook(lambda grad: events.append(("backward", grad.shape[0], 0)))

    handles = [
        vlm2vec.register_forward_pre_hook(before, with_kwargs=True),
        vlm2vec.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        yield events
    finally:
        for handle in handles:
            handle.remove()


def expected_forwards(mini_batch_size: int, batch: int = 8, columns: int = 2) -> list[tuple[str, int]]:
    """GradCache: every mini-batch embedded without a graph, then (during backward) again with a graph, each graph
    freed by its backward before the next is built, so activations are bounded by one mini-batch. Plain: one
    graph per column of the whole batch, all alive until the backward."""
    if not mini_batch_size:
        return [("graph", batch)] * columns + [("backward", batch)] * columns
    chunks = columns * batch // mini_batch_size
    no_graph_pass = [("forward", mini_batch_size)] * chunks
    return no_graph_pass + [("graph", mini_batch_size), ("backward", mini_batch_size)] * chunks


# --- the fresh loader process of the Hub round trips ---

HUB_IMAGE = str(FIXTURE / "images" / "chelsea_150x100.png")
HUB_IMAGE_2 = str(FIXTURE / "images" / "coffee_120x80.png")
HUB_INSTRUCTION = "Represent the given image with the following question:"
# The local Hub's users (token -> name), and the small eval the pipeline tests run: the first rows of two sets.
HUB_ALICE, HUB_BOB = "tok-alice", "tok-bob"
HUB_TOKENS = {HUB_ALICE: "alice", HUB_BOB: "bob"}
SMALL_EVAL_SETS = ("Digits_VQA", "Faces")  # I+T -> T (VQA) and I -> T (classification): one image per query
SMALL_EVAL_ROWS = 4

# Reads one JSON job per line: load `source` (repo id or folder) with sentence-transformers (and transformers), embed
# an image + question, an image alone and a text; answers one `RESULT {...}` line. Other stdout lines are noise.
LOADER = f"""
import json, os, sys
import torch
from PIL import Image
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoProcessor

def embed(job):
    os.environ.pop("HF_TOKEN", None)
    if job.get("token"):
        os.environ["HF_TOKEN"] = job["token"]
    kwargs = {{"revision": job["revision"]}} if job.get("revision") else {{}}
    model = SentenceTransformer(job["source"], trust_remote_code=True, device="cpu", **kwargs)
    queries = model.encode([{{"image": Image.open({HUB_IMAGE!r}), "text": "What is in the image"}}, {HUB_IMAGE_2!r}],
                           prompt={HUB_INSTRUCTION!r}, convert_to_tensor=True)
    text = model.encode(["A cat and a dog"], convert_to_tensor=True)
    result = {{"st": torch.cat([queries, text]).tolist(), "st_module": type(model[0]).__module__}}
    if job.get("auto"):
        auto = AutoModel.from_pretrained(job["source"], trust_remote_code=True, **kwargs).eval()
        processor = AutoProcessor.from_pretrained(job["source"], trust_remote_code=True, **kwargs)
        prompts = [processor.format_prompt("What is in the image", {HUB_INSTRUCTION!r}, num_images=1),
                   "A cat and a dog"]
        with torch.no_grad():
            result["auto"] = auto(**processor(text=prompts, images=[{HUB_IMAGE!r}])).embeddings.tolist()
        result["auto_module"] = type(auto).__module__
    return result

print("READY", flush=True)
for line in sys.stdin:
    try:
        answer = {{"ok": True, **embed(json.loads(line))}}
    except Exception as error:
        answer = {{"ok": False, "error": f"{{type(error).__name__}}: {{error}}"}}
    print("RESULT " + json.dumps(answer), flush=True)
"""


class RemoteLoader:
    """The fresh loader process (cannot import this project; configured only through `HF_ENDPOINT` / `HF_TOKEN` /
    `HF_HOME`): `load(source, ...)` sends one job and returns its answer."""

    def __init__(self, endpoint: str, home: Path):
        env = {
            "PATH": "/usr/bin:/bin",
            "HF_HOME": str(home),
            "HF_ENDPOINT": endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
        self.stderr_path = home.parent / "loader.stderr"
        self._stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", BLOCK_PROJECT + textwrap.dedent(LOADER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=home.parent,
            env=env,
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._ready = False  # waited for at the first load, so the imports overlap other work

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith(("READY", "RESULT ")):
                self._answers.put(line)
        self._answers.put(None)

    def _wait(self, prefix: str) -> str:
        try:
            line = self._answers.get(timeout=300)
        except queue.Empty:
            line = None
        if line is None or not line.startswith(prefix):
            raise AssertionError(f"loader process failed:\n{self.stderr_path.read_text()[-4000:]}")
        return line[len(prefix) :]

    def load(self, source: str | Path, *, token: str | None = None, revision: str | None = None, auto=False) -> dict:
        if not self._ready:
            self._wait("READY")
            self._ready = True
        job = {"source": str(source), "token": token, "revision": revision, "auto": auto}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        return json.loads(self._wait("RESULT "))

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


# LLaVA-Next: Hub / vendored checkpoint names -> our `LlavaNextModel` names (an independent spelling of what
# transformers maps).
LLAVA_CHECKPOINT_TO_OURS = (
    (r"^language_model\.model\.", "language_model."),
    (r"^vision_tower\.vision_model\.", "vision_tower."),
)


def llava_checkpoint_to_ours(checkpoint_key: str) -> str:
    for pattern, replacement in LLAVA_CHECKPOINT_TO_OURS:
        checkpoint_key = re.sub(pattern, replacement, checkpoint_key)
    return checkpoint_key


def short_dora_run_args(model_dir, data, out, *extra: str) -> list[str]:
    """A short DoRA + GradCache run: batches of 4 (mixed image / text rows) cut into mini-batches of 3 and 1."""
    return [
        "train",
        *("--model", str(model_dir), "--data", str(data / "train"), "--image-dir", str(data / "images")),
        *("--output-dir", str(out), "--subsets", "Digits_VQA", "Photos_i2t", "Digits_t2i"),
        *("--num-sample-per-subset", "4", "--per-device-train-batch-size", "4", "--gc-mini-batch-size", "3"),
        *("--learning-rate", "5e-3", "--warmup-steps", "0", "--max-steps", "2", "--save-steps", "1"),
        *("--logging-steps", "1", "--seed", "7", "--lora", "--lora-r", "4"),
        *extra,
    ]


def embed_like_the_loader(model) -> list[list[float]]:
    """What the `RemoteLoader` process embeds (image + question, image alone, text), computed in this process."""
    queries = model.encode(
        [{"image": Image.open(HUB_IMAGE), "text": "What is in the image"}, HUB_IMAGE_2],
        prompt=HUB_INSTRUCTION,
        convert_to_tensor=True,
    )
    return torch.cat([queries, model.encode(["A cat and a dog"], convert_to_tensor=True)]).tolist()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (a torchrun / accelerate rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(nproc: int, *command: str) -> list[str]:
    """`python -m torch.distributed.run` with `nproc` processes on this machine, then `command`."""
    port = ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), *port, *command]
