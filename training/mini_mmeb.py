"""`vlm2vec data mini-mmeb`: a small MMEB-format train and eval set built from real images that install offline.

Sources (no download): scikit-learn's handwritten digits (1,797 8x8 images, 10 classes) and sample photos, and
scikit-image's bundled photos with their docstring captions and its LFW face / non-face subset. Tasks follow
MMEB's meta-tasks and prompt conventions (`<|image_1|>` tags, V1 instructions):

| subset / dataset | meta-task | modality | eval candidates |
| --- | --- | --- | --- |
| Digits | classification | I -> T | the 10 digit names |
| Faces | classification | I -> T | "a human face", "not a face" |
| Digits_t2i | retrieval | T -> I | 10 held-out digit images, one per class |
| Photos_i2t | retrieval | I -> T | every photo caption |
| Photos_i2i | retrieval | I -> I | 10 held-out crops, one of the same photo |
| Digits_VQA | question answering | I+T -> T | the answers to that question |
| Digits_docs (eval only) | visual-document style | T -> I, global | one pool of 50 digit images, 5 relevant |

Eval queries use images never seen in training (other digit samples, other random crops of the photos). The train
files have MMEB-train columns (`qry`, `qry_image_path`, `pos_text`, `pos_image_path`, `neg_text`,
`neg_image_path`), the eval files MMEB-eval columns (`qry_text`, `qry_img_path`, `tgt_text`, `tgt_img_path`; the
first candidate is the gold one); image paths are relative to `DIR/images`. `DIR/eval-v2` holds the same eval
sets in the MMEB-V2 layout (`qry_inst` / `tgt_inst` split out) plus `Digits_docs` in the BEIR layout of the
visual-document sets; `tasks.json` in both eval folders says how the datasets group in reports.

Video (generated motion, [`_shape_clips`]): clips of 8 56x56 frames in which a coloured shape (4 colours x 3 shapes)
moves left or right over a flat grey background, written as frame folders
`DIR/video-tasks/frames/<split>/<clip>/NNNN.png`
(12 training clips per colour / shape / direction, 1 held-out eval clip). `DIR/train-video` holds MMEB-V2's video
training tables (LLaVA-Hound layout, read by [`training.data`]): `Shapes` (captions; subsets `Shapes` = video ->
caption, `Shapes-video` = caption -> video) and `Shapes-qa` (video QA); clips relative to `DIR/video-tasks/frames`.
`DIR/train-v2` holds both training sets (the image subsets and the video tables), as a V2 mixture run reads them.
`DIR/eval-video` holds the MMEB-V2 video eval layout (`qry_text`, `qry_video`, `tgt_text`, `tgt_video`,
`gold_index`; clips relative to `DIR/video-tasks/frames`) with `tasks.json` naming each set's task type and whose
prompts it uses:

| dataset | task type (prompts of) | query | candidates |
| --- | --- | --- | --- |
| Shapes_t2v | video_ret (MSR-VTT) | caption | every eval clip (global pool) |
| Shapes_cls | video_cls (K700) | clip | every caption (global label pool) |
| Shapes_QA | video_qa (Video-MME) | clip + question | its options (colours, shapes or directions) |
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vlm2vec_hf.package_data import read_yaml

TABLES_FILE = Path(__file__).with_name("mini_mmeb.yaml")


def read_tables(path: Path = TABLES_FILE) -> dict:
    """The set's prompts, labels, captions and task groups (`mini_mmeb.yaml`)."""
    return read_yaml(path)


_TABLES = read_tables()
_INSTRUCTIONS = _TABLES["instructions"]
DIGIT_NAMES: list[str] = _TABLES["digit_names"]
CLS_INSTRUCTION: str = _INSTRUCTIONS["classification"]
T2I_INSTRUCTION: str = _INSTRUCTIONS["t2i"]
I2T_INSTRUCTION: str = _INSTRUCTIONS["i2t"]
I2I_INSTRUCTION: str = _INSTRUCTIONS["i2i"]
QA_INSTRUCTION: str = _INSTRUCTIONS["qa"]
IMAGE_TARGET: str = _INSTRUCTIONS["image_target"]
FACE_LABELS: list[str] = _TABLES["face_labels"]
QUERY_INSTRUCTIONS = (CLS_INSTRUCTION, T2I_INSTRUCTION, I2T_INSTRUCTION, I2I_INSTRUCTION, QA_INSTRUCTION)
# How the eval datasets group in reports (`tasks.json`), and which MMEB-V2 prompt parser each one follows.
EVAL_GROUPS: dict[str, dict] = _TABLES["eval_groups"]
VISDOC_GROUPS: dict[str, dict] = _TABLES["visdoc_groups"]
SKIMAGE_PHOTOS: dict[str, str] = _TABLES["skimage_photos"]  # skimage.data loader name -> caption
SKLEARN_PHOTOS: dict[str, str] = _TABLES["sklearn_photos"]  # sklearn sample image file -> caption
DIGIT_QUESTIONS = {
    "What digit is shown?": lambda digit: DIGIT_NAMES[digit],
    "Is the digit even or odd?": lambda digit: "even" if digit % 2 == 0 else "odd",
    "What is the digit plus one?": lambda digit: DIGIT_NAMES[digit + 1],
}


# Generated motion clips (video).
SHAPE_COLORS: dict[str, tuple[int, int, int]] = {name: tuple(rgb) for name, rgb in _TABLES["shape_colors"].items()}
SHAPES: tuple[str, ...] = tuple(_TABLES["shapes"])
DIRECTIONS: tuple[str, ...] = tuple(_TABLES["directions"])
CLIP_FRAMES, CLIP_SIZE = 8, 56
SHAPE_SIZE = (20, 26)  # side in pixels, drawn per clip
TRAIN_CLIPS_PER_COMBO = 12  # training clips per colour / shape / direction (plus 1 held-out eval clip)
CAPTION_QUESTION: str = _INSTRUCTIONS["video_caption"]
_ANSWERS = {"color": tuple(SHAPE_COLORS), "shape": SHAPES, "direction": DIRECTIONS}
SHAPE_QUESTIONS = {  # question -> (attribute, every answer)
    question: (attribute, _ANSWERS[attribute]) for question, attribute in _TABLES["shape_questions"].items()
}
VIDEO_TRAIN_SUBSETS: tuple[str, ...] = tuple(_TABLES["video_train_subsets"])
VIDEO_EVAL_GROUPS: dict[str, dict] = _TABLES["video_eval_groups"]


@dataclass
class Split:
    train: dict[str, list[dict]] = field(default_factory=dict)
    eval: dict[str, list[dict]] = field(default_factory=dict)
    visdoc: dict[str, dict[str, list[dict]]] = field(default_factory=dict)


def _to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = np.clip(array / max(float(array.max()), 1e-8) * 255.0, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return array[..., :3]


def _load_photos() -> dict[str, tuple[np.ndarray, str]]:
    import skimage.data
    from sklearn.datasets import load_sample_image

    photos = {name: (_to_rgb_uint8(getattr(skimage.data, name)()), caption) for name, caption in SKIMAGE_PHOTOS.items()}
    for file_name, caption in SKLEARN_PHOTOS.items():
        photos[file_name.split(".")[0]] = (load_sample_image(file_name), caption)
    return photos


def _random_crop(photo: np.ndarray, rng: random.Random, size: int) -> Image.Image:
    height, width = photo.shape[:2]
    scale = rng.uniform(0.45, 0.85)
    crop_h, crop_w = max(8, int(height * scale)), max(8, int(width * scale))
    top, left = rng.randint(0, height - crop_h), rng.randint(0, width - crop_w)
    image = Image.fromarray(photo[top : top + crop_h, left : left + crop_w]).resize((size, size), Image.BICUBIC)
    return image.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


class _ImageWriter:
    def __init__(self, root: Path):
        self.root = root

    def save(self, image: Image.Image, relative: str) -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        return relative


def _digits(writer: _ImageWriter, rng: random.Random, eval_queries: int) -> Split:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = list(range(len(digits.target)))
    rng.shuffle(order)
    paths, labels = [], []
    for index in order:
        pixels = (digits.images[index] * (255.0 / 16.0)).astype(np.uint8)
        image = Image.fromarray(pixels).resize((32, 32), Image.NEAREST).convert("RGB")
        paths.append(writer.save(image, f"digits/{index:04d}.png"))
        labels.append(int(digits.target[index]))
    held_out = len(paths) - 2 * eval_queries
    train_ids, eval_ids = list(range(held_out)), list(range(held_out, len(paths)))
    split = Split()

    def other(label: int) -> int:
        return rng.choice([d for d in range(10) if d != label])

    split.train["Digits"] = [
        {
            "qry": CLS_INSTRUCTION,
            "qry_image_path": paths[i],
            "pos_text": DIGIT_NAMES[labels[i]],
            "pos_image_path": "",
            "neg_text": DIGIT_NAMES[other(labels[i])],
            "neg_image_path": "",
        }
        for i in train_ids
    ]
    by_label = {d: [i for i in train_ids if labels[i] == d] for d in range(10)}
    split.train["Digits_t2i"] = [
        {
            "qry": f"{T2I_INSTRUCTION}a handwritten digit {DIGIT_NAMES[labels[i]]}.",
            "qry_image_path": "",
            "pos_text": IMAGE_TARGET,
            "pos_image_path": paths[i],
            "neg_text": IMAGE_TARGET,
            "neg_image_path": paths[rng.choice(by_label[other(labels[i])])],
        }
        for i in train_ids
    ]
    split.train["Digits_VQA"] = []
    for i in train_ids:
        question = rng.choice(list(DIGIT_QUESTIONS))
        split.train["Digits_VQA"].append(
            {
                "qry": f"{QA_INSTRUCTION}{question}",
                "qry_image_path": paths[i],
                "pos_text": DIGIT_QUESTIONS[question](labels[i]),
                "pos_image_path": "",
                "neg_text": DIGIT_QUESTIONS[question](other(labels[i])),
                "neg_image_path": "",
            }
        )

    query_ids, candidate_pool = eval_ids[:eval_queries], eval_ids[eval_queries:]
    pool_by_label = {d: [i for i in candidate_pool if labels[i] == d] for d in range(10)}
    split.eval["Digits"] = [
        {
            "qry_text": CLS_INSTRUCTION,
            "qry_img_path": paths[i],
            "tgt_text": [DIGIT_NAMES[labels[i]]] + [DIGIT_NAMES[d] for d in range(10) if d != labels[i]],
            "tgt_img_path": [""] * 10,
        }
        for i in query_ids
    ]
    t2i = []
    for i in query_ids:
        candidates = [rng.choice(pool_by_label[labels[i]])]
        candidates += [rng.choice(pool_by_label[d]) for d in range(10) if d != labels[i]]
        t2i.append(
            {
                "qry_text": f"{T2I_INSTRUCTION}a handwritten digit {DIGIT_NAMES[labels[i]]}.",
                "qry_img_path": "",
                "tgt_text": [IMAGE_TARGET] * 10,
                "tgt_img_path": [paths[c] for c in candidates],
            }
        )
    split.eval["Digits_t2i"] = t2i
    vqa = []
    for number, i in enumerate(query_ids):
        question = list(DIGIT_QUESTIONS)[number % len(DIGIT_QUESTIONS)]
        answers = list(dict.fromkeys(DIGIT_QUESTIONS[question](d) for d in range(10)))
        gold = DIGIT_QUESTIONS[question](labels[i])
        vqa.append(
            {
                "qry_text": f"{QA_INSTRUCTION}{question}",
                "qry_img_path": paths[i],
                "tgt_text": [gold] + [a for a in answers if a != gold],
                "tgt_img_path": [""] * len(answers),
            }
        )
    split.eval["Digits_VQA"] = vqa
    split.visdoc["Digits_docs"] = _digit_documents(paths, labels, candidate_pool)
    return split


def _digit_documents(paths: list[str], labels: list[int], pool: list[int], per_class: int = 5) -> dict[str, list]:
    """A visual-document-style set (BEIR layout, global ranking): text queries against a shared pool of digit
    images, every image of the named digit relevant."""
    corpus = [i for d in range(10) for i in [j for j in pool if labels[j] == d][:per_class]]
    phrasings = ("a handwritten digit {}", "the number {} written by hand")
    queries = [
        {"query-id": f"q{d}-{k}", "query": phrasing.format(DIGIT_NAMES[d])}
        for d in range(10)
        for k, phrasing in enumerate(phrasings)
    ]
    qrels = [
        {"query-id": query["query-id"], "corpus-id": f"d{i}", "score": 1}
        for query in queries
        for i in corpus
        if labels[i] == int(query["query-id"][1:].split("-")[0])
    ]
    return {
        "queries": queries,
        "corpus": [{"corpus-id": f"d{i}", "image": paths[i]} for i in corpus],
        "qrels": qrels,
    }


def _faces(writer: _ImageWriter, rng: random.Random, eval_queries: int) -> Split:
    import skimage.data

    faces = skimage.data.lfw_subset()  # the first 100 are faces, the last 100 are not
    rows = []
    for index, pixels in enumerate(faces):
        image = Image.fromarray(_to_rgb_uint8(pixels)).resize((56, 56), Image.BICUBIC)
        rows.append((writer.save(image, f"faces/{index:03d}.png"), 0 if index < 100 else 1))
    rng.shuffle(rows)
    split = Split()
    split.train["Faces"] = [
        {
            "qry": CLS_INSTRUCTION,
            "qry_image_path": path,
            "pos_text": FACE_LABELS[label],
            "pos_image_path": "",
            "neg_text": FACE_LABELS[1 - label],
            "neg_image_path": "",
        }
        for path, label in rows[:-eval_queries]
    ]
    split.eval["Faces"] = [
        {
            "qry_text": CLS_INSTRUCTION,
            "qry_img_path": path,
            "tgt_text": [FACE_LABELS[label], FACE_LABELS[1 - label]],
            "tgt_img_path": ["", ""],
        }
        for path, label in rows[-eval_queries:]
    ]
    return split


def _photos(writer: _ImageWriter, rng: random.Random, train_crops: int, eval_crops: int) -> Split:
    photos = _load_photos()
    names = sorted(photos)
    crops: dict[str, list[str]] = {}
    held_out: dict[str, list[str]] = {}
    for name in names:
        paths = [
            writer.save(_random_crop(photos[name][0], rng, 112), f"photos/{name}_{k:02d}.png")
            for k in range(train_crops + 2 * eval_crops)
        ]
        crops[name], held_out[name] = paths[:train_crops], paths[train_crops:]
    captions = {name: photos[name][1] for name in names}
    split = Split()
    split.train["Photos_i2t"] = [
        {
            "qry": I2T_INSTRUCTION,
            "qry_image_path": path,
            "pos_text": captions[name],
            "pos_image_path": "",
            "neg_text": captions[rng.choice([n for n in names if n != name])],
            "neg_image_path": "",
        }
        for name in names
        for path in crops[name]
    ]
    split.train["Photos_i2i"] = [
        {
            "qry": I2I_INSTRUCTION,
            "qry_image_path": path,
            "pos_text": IMAGE_TARGET,
            "pos_image_path": rng.choice([p for p in crops[name] if p != path]),
            "neg_text": IMAGE_TARGET,
            "neg_image_path": rng.choice(crops[rng.choice([n for n in names if n != name])]),
        }
        for name in names
        for path in crops[name]
    ]
    split.eval["Photos_i2t"] = [
        {
            "qry_text": I2T_INSTRUCTION,
            "qry_img_path": held_out[name][k],
            "tgt_text": [captions[name]] + [captions[n] for n in names if n != name],
            "tgt_img_path": [""] * len(names),
        }
        for name in names
        for k in range(eval_crops)
    ]
    i2i = []
    for name in names:
        for k in range(eval_crops):
            others = rng.sample([n for n in names if n != name], 9)
            candidates = [held_out[name][eval_crops + k]] + [rng.choice(held_out[n][eval_crops:]) for n in others]
            i2i.append(
                {
                    "qry_text": I2I_INSTRUCTION,
                    "qry_img_path": held_out[name][k],
                    "tgt_text": [IMAGE_TARGET] * 10,
                    "tgt_img_path": candidates,
                }
            )
    split.eval["Photos_i2i"] = i2i
    return split


@dataclass(frozen=True)
class Clip:
    path: str  # relative to the frame root
    color: str
    shape: str
    direction: str

    @property
    def caption(self) -> str:
        return f"a {self.color} {self.shape} moving {self.direction}"

    def answer(self, attribute: str) -> str:
        return getattr(self, attribute)


def _draw_clip(folder: Path, color: str, shape: str, direction: str, rng: random.Random) -> None:
    """8 frames of one shape crossing the frame horizontally over a flat grey background (size, height and grey
    level drawn from `rng`)."""
    from PIL import ImageDraw

    size = rng.randint(*SHAPE_SIZE)
    top = rng.randint(2, CLIP_SIZE - size - 2)
    start, end = 2, CLIP_SIZE - size - 2
    if direction == "to the left":
        start, end = end, start
    background = np.full((CLIP_SIZE, CLIP_SIZE, 3), rng.randint(30, 90), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for frame in range(CLIP_FRAMES):
        image = Image.fromarray(background)
        left = round(start + (end - start) * frame / (CLIP_FRAMES - 1))
        box = (left, top, left + size - 1, top + size - 1)
        draw = ImageDraw.Draw(image)
        fill = SHAPE_COLORS[color]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
        image.save(folder / f"{frame:04d}.png")


def _shape_clips(
    frame_root: Path, rng: random.Random, train_per_combo: int = TRAIN_CLIPS_PER_COMBO
) -> tuple[list[Clip], list[Clip]]:
    """(training clips, held-out eval clips): `train_per_combo` + 1 clips of every colour / shape / direction."""
    train, held_out = [], []
    combos = [(c, s, d) for c in SHAPE_COLORS for s in SHAPES for d in DIRECTIONS]
    for number, (color, shape, direction) in enumerate(combos):
        for k in range(train_per_combo + 1):
            split = "shapes-train" if k < train_per_combo else "shapes-eval"
            relative = f"{split}/clip_{number:02d}_{k}"
            _draw_clip(frame_root / relative, color, shape, direction, rng)
            (train if k < train_per_combo else held_out).append(Clip(relative, color, shape, direction))
    return train, held_out


def _video_split(frame_root: Path, rng: random.Random) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """(train tables in the LLaVA-Hound layout, eval tables in the MMEB-V2 video layout)."""
    train_clips, eval_clips = _shape_clips(frame_root, rng)
    train = {
        "Shapes": [
            {
                "id": f"shapes-{n:03d}",
                "video": clip.path,
                "conversations": [{"from": "human", "value": CAPTION_QUESTION}, {"from": "gpt", "value": clip.caption}],
            }
            for n, clip in enumerate(train_clips)
        ],
        "Shapes-qa": [
            {
                "id": f"shapes-qa-{n:03d}-{q}",
                "video": clip.path,
                "conversations": [
                    {"from": "human", "value": f"<video>\n{question}"},
                    {"from": "gpt", "value": clip.answer(attribute)},
                ],
            }
            for n, clip in enumerate(train_clips)
            for q, (question, (attribute, _)) in enumerate(SHAPE_QUESTIONS.items())
        ],
    }
    captions = [clip.caption for clip in eval_clips]
    evaluation = {
        "Shapes_t2v": [
            {"qry_text": clip.caption, "qry_video": "", "tgt_text": [], "tgt_video": [clip.path], "gold_index": 0}
            for clip in eval_clips
        ],
        "Shapes_cls": [
            {"qry_text": "", "qry_video": clip.path, "tgt_text": [clip.caption], "tgt_video": [], "gold_index": 0}
            for clip in eval_clips
        ],
        "Shapes_QA": [],
    }
    assert len(set(captions)) == len(captions)  # one eval clip per caption: the global pools hold every caption once
    for n, clip in enumerate(eval_clips):
        question = list(SHAPE_QUESTIONS)[n % len(SHAPE_QUESTIONS)]
        attribute, answers = SHAPE_QUESTIONS[question]
        options = rng.sample(answers, len(answers))  # the gold answer at a random position
        evaluation["Shapes_QA"].append(
            {
                "qry_text": question,
                "qry_video": clip.path,
                "tgt_text": [f"{chr(ord('A') + i)}. {option}" for i, option in enumerate(options)],
                "tgt_video": [],
                "gold_index": options.index(clip.answer(attribute)),
            }
        )
    return train, evaluation


def build_mini_mmeb(out_dir: str | Path, seed: int = 0, eval_queries: int = 100) -> Path:
    """Write the mini-MMEB set to `out_dir` (`images/`, `train/<subset>/original.parquet`,
    `eval/<dataset>/test.parquet`, `eval-v2/`, the video part `video-tasks/frames/`,
    `train-video/<table>/original.jsonl`, `train-v2/` (both training sets in one folder, the V2 mixture) and
    `eval-video/<dataset>/test.parquet`, and `manifest.json`).
    Deterministic for a given seed."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new --out folder")
    rng = random.Random(seed)
    writer = _ImageWriter(out_dir / "images")
    parts = [
        _digits(writer, rng, eval_queries),
        _faces(writer, rng, eval_queries // 2),
        _photos(writer, rng, train_crops=24, eval_crops=4),
    ]
    manifest = {"seed": seed, "train": {}, "eval": {}, "sources": _provenance()}
    for part in parts:
        for subset, rows in part.train.items():
            _write_parquet(rows, out_dir / "train" / subset / "original.parquet")
            manifest["train"][subset] = len(rows)
        for name, rows in part.eval.items():
            _write_parquet(rows, out_dir / "eval" / name / "test.parquet")
            _write_parquet([_v2_row(row) for row in rows], out_dir / "eval-v2" / name / "test.parquet")
            sizes = sorted({len(row["tgt_text"]) for row in rows})
            manifest["eval"][name] = {"queries": len(rows), "candidates_per_query": sizes}
        for name, tables in part.visdoc.items():
            for table, rows in tables.items():
                _write_parquet(rows, out_dir / "eval-v2" / name / f"{table}.parquet")
            sizes = {"queries": len(tables["queries"]), "corpus": len(tables["corpus"])}
            manifest.setdefault("eval-v2 visdoc", {})[name] = sizes
    frame_root = out_dir / "video-tasks" / "frames"
    video_train, video_eval = _video_split(frame_root, random.Random(seed + 1))
    for table, rows in video_train.items():
        path = out_dir / "train-video" / table / "original.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    manifest["train-video"] = {
        "subsets": list(VIDEO_TRAIN_SUBSETS),
        "rows": {table: len(rows) for table, rows in video_train.items()},
        "video_dir": "video-tasks/frames",
    }
    # The V2 mixture: the image subsets and the video tables in one training folder (tables only; the images and
    # clips stay where they are, read through --image-dir and --video-dir).
    shutil.copytree(out_dir / "train", out_dir / "train-v2")
    shutil.copytree(out_dir / "train-video", out_dir / "train-v2", dirs_exist_ok=True)
    manifest["train-v2"] = {"subsets": [*manifest["train"], *VIDEO_TRAIN_SUBSETS]}
    for name, rows in video_eval.items():
        _write_parquet(rows, out_dir / "eval-video" / name / "test.parquet")
        sizes = sorted({len(row["tgt_text"]) + len(row["tgt_video"]) for row in rows})
        manifest.setdefault("eval-video", {})[name] = {"queries": len(rows), "candidates_per_query": sizes}
    for folder, groups in (
        ("eval", EVAL_GROUPS),
        ("eval-v2", {**EVAL_GROUPS, **VISDOC_GROUPS}),
        ("eval-video", VIDEO_EVAL_GROUPS),
    ):
        (out_dir / folder / "tasks.json").write_text(json.dumps(groups, indent=2))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out_dir


def _v2_row(row: dict) -> dict:
    """The MMEB-V2 (`MMEB_Test_Instruct`) form of an eval row: instruction and text in separate columns."""
    instruction = next((p for p in QUERY_INSTRUCTIONS if row["qry_text"].startswith(p)), "")
    has_images = [bool(path) for path in row["tgt_img_path"]]
    return {
        "qry_inst": instruction,
        "qry_text": row["qry_text"][len(instruction) :],
        "qry_img_path": row["qry_img_path"],
        "tgt_inst": IMAGE_TARGET.replace("<|image_1|>", "") if any(has_images) else "",
        "tgt_text": [text if not image else "" for text, image in zip(row["tgt_text"], has_images)],
        "tgt_img_path": row["tgt_img_path"],
    }


def _write_parquet(rows: list[dict], path: Path) -> None:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))


def _provenance() -> dict[str, str]:
    import importlib.metadata

    return {package: importlib.metadata.version(package) for package in ("scikit-learn", "scikit-image")}
