"""MMEB-V2 video training rows (LLaVA-Hound layout -> `query` / `positive` columns with clips), their up-front
checks, the mini-MMEB video set (frame folders, train tables, eval layout), interleaved sub-batches over video
subsets, and a short GradCache training run on clips."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from torch.utils.data import BatchSampler, ConcatDataset, SequentialSampler

from vlm2vec_hf.cli import main
from vlm2vec_hf.evaluation.data import load_mmeb_eval
from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_VIDEO_TAG
from vlm2vec_hf.modeling_vlm2vec.media_loading import FRAME_FILE_EXTENSIONS
from vlm2vec_hf.training import mini_mmeb as mini
from vlm2vec_hf.training.data import MMEBDataError, combine, load_mmeb_train
from vlm2vec_hf.training.sampler import InterleavedSubBatchSampler

VIDEO_TAG = MMEB_VIDEO_TAG  # the data layer's video tag; the processor maps it to its backbone's token


def frames_root(data: Path) -> Path:
    return data / "video-tasks" / "frames"


def raw_rows(data: Path, table: str) -> list[dict]:
    lines = (data / "train-video" / table / "original.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def load_video(data: Path, subsets: list[str], source: Path | None = None, **kwargs) -> dict[str, datasets.Dataset]:
    return load_mmeb_train(source or data / "train-video", "", subsets=subsets, video_root=frames_root(data), **kwargs)


def shape_centre(frame: np.ndarray, color: tuple[int, int, int]) -> float:
    """Mean column of the pixels of the shape's colour (the background is grey, +-12 noise)."""
    mask = (np.abs(frame.astype(int) - np.array(color)).max(axis=-1) < 40).nonzero()
    return float(mask[1].mean())


def test_mini_mmeb_video_clips_are_frame_folders_of_the_captioned_motion(mini_mmeb):
    manifest = json.loads((mini_mmeb / "manifest.json").read_text())
    assert manifest["train-video"]["subsets"] == ["Shapes", "Shapes-video", "Shapes-qa"]
    rows = raw_rows(mini_mmeb, "Shapes")
    combos = len(mini.SHAPE_COLORS) * len(mini.SHAPES) * len(mini.DIRECTIONS)
    per_combo = mini.TRAIN_CLIPS_PER_COMBO
    assert len(rows) == per_combo * combos
    assert manifest["train-video"]["rows"] == {"Shapes": per_combo * combos, "Shapes-qa": 3 * per_combo * combos}
    for row in rows:
        folder = frames_root(mini_mmeb) / row["video"]
        frames = sorted(folder.iterdir())
        assert [f.name for f in frames] == [f"{i:04d}.png" for i in range(8)]
        pixels = [np.asarray(Image.open(f)) for f in frames]
        assert all(p.shape == (56, 56, 3) for p in pixels)
        # The caption says what moves and where: the named colour's centre goes the named way, frame after frame.
        caption = row["conversations"][1]["value"]
        color = next(c for c in mini.SHAPE_COLORS if f" {c} " in caption)
        centres = [shape_centre(p, mini.SHAPE_COLORS[color]) for p in pixels]
        steps = np.diff(centres)
        assert (steps < 0).all() if caption.endswith("to the left") else (steps > 0).all(), (row["video"], centres)


def test_mini_mmeb_video_eval_sets_load_in_the_v2_video_layout(mini_mmeb):
    eval_sets = {d.name: d for d in load_mmeb_eval(mini_mmeb / "eval-video", frames_root(mini_mmeb))}
    assert sorted(eval_sets) == ["Shapes_QA", "Shapes_cls", "Shapes_t2v"]
    combos = len(mini.SHAPE_COLORS) * len(mini.SHAPES) * len(mini.DIRECTIONS)
    t2v, cls, qa = eval_sets["Shapes_t2v"], eval_sets["Shapes_cls"], eval_sets["Shapes_QA"]
    assert (t2v.task_type, cls.task_type, qa.task_type) == ("video_ret", "video_cls", "video_qa")
    # Global pools: every held-out clip once (retrieval), every caption once (classification).
    assert len(t2v.corpus) == combos and len({item[2] for item in t2v.corpus}) == combos
    assert len(cls.corpus) == combos and len(set(cls.corpus)) == combos
    train_clips = {str(frames_root(mini_mmeb) / row["video"]) for row in raw_rows(mini_mmeb, "Shapes")}
    eval_clips = {item[2] for item in t2v.corpus} | {query[2] for query in cls.queries + qa.queries}
    assert not eval_clips & train_clips  # eval clips are held out
    for query, relevance in zip(t2v.queries, t2v.relevance):  # each caption's gold clip is the clip it describes
        (gold,) = relevance
        caption = query[0].removeprefix("Find a video that contains the following visual content: ")
        assert caption in {
            row["tgt_text"][0]
            for row in _table(mini_mmeb, "Shapes_cls")
            if row["qry_video"] and str(frames_root(mini_mmeb) / row["qry_video"]) == t2v.corpus[gold][2]
        }
    # QA: the gold option is the clip's true attribute, and the golds are not all first.
    golds = []
    for row in _table(mini_mmeb, "Shapes_QA"):
        clip_caption = next(
            r["tgt_text"][0] for r in _table(mini_mmeb, "Shapes_cls") if r["qry_video"] == row["qry_video"]
        )
        answer = row["tgt_text"][row["gold_index"]].split(". ", 1)[1]
        assert f" {answer} " in f" {clip_caption} " or clip_caption.endswith(answer)
        golds.append(row["gold_index"])
    assert len(set(golds)) > 1
    assert all(
        len(candidates) == len(row["tgt_text"])
        for candidates, row in zip(qa.candidates, _table(mini_mmeb, "Shapes_QA"))
    )


def _table(data: Path, name: str) -> list[dict]:
    return datasets.load_dataset(
        "parquet", data_files=str(data / "eval-video" / name / "test.parquet"), split="train"
    ).to_list()


def test_mini_mmeb_video_part_is_deterministic(tmp_path):
    def digest(root: Path) -> str:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        return hashlib.sha256(
            b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)
        ).hexdigest()

    first = mini._video_split(tmp_path / "a", random.Random(1))
    second = mini._video_split(tmp_path / "b", random.Random(1))
    assert first == second and digest(tmp_path / "a") == digest(tmp_path / "b")
    third = mini._video_split(tmp_path / "c", random.Random(2))
    assert digest(tmp_path / "c") != digest(tmp_path / "a")
    assert third[0]["Shapes"][0]["conversations"] == first[0]["Shapes"][0]["conversations"]


def test_video_rows_follow_the_reference_prompts(mini_mmeb):
    loaded = load_video(mini_mmeb, ["Shapes", "Shapes-video", "Shapes-qa"], max_per_subset=10)
    root = frames_root(mini_mmeb)
    captions, qa = raw_rows(mini_mmeb, "Shapes")[:10], raw_rows(mini_mmeb, "Shapes-qa")[:10]
    for side in ("query", "positive"):
        assert loaded["Shapes"].features[side] == datasets.Features(
            {"text": datasets.Value("string"), "video": datasets.Value("string")}
        )
    # video -> caption: the human turn with <video> swapped for MMEB's video tag, the clip; the caption as text.
    assert loaded["Shapes"][0]["query"] == {
        "text": f"{VIDEO_TAG} Recognize the category of the video content.",
        "video": str(root / captions[0]["video"]),
    }
    assert [r["positive"] for r in loaded["Shapes"]] == [
        {"text": r["conversations"][1]["value"], "video": None} for r in captions
    ]
    # caption -> video: the reference's retrieval prompts, the tag at the end of the target.
    assert [r["query"]["text"] for r in loaded["Shapes-video"]] == [
        "Find a video that contains the following visual content: " + r["conversations"][1]["value"] for r in captions
    ]
    assert loaded["Shapes-video"][3]["positive"] == {
        "text": f"Understand the content of the provided video: {VIDEO_TAG}",
        "video": str(root / captions[3]["video"]),
    }
    assert loaded["Shapes-video"][3]["query"]["video"] is None
    # video QA: the QA prompt in front of the human turn.
    assert [r["query"]["text"] for r in loaded["Shapes-qa"]] == [
        "Answer a question based on the content of a video. "
        + r["conversations"][0]["value"].replace("<video>", VIDEO_TAG)
        for r in qa
    ]
    assert [r["positive"]["text"] for r in loaded["Shapes-qa"]] == [r["conversations"][1]["value"] for r in qa]
    # With no --subsets, the folders are the subsets: `Shapes` (video -> caption) and `Shapes-qa` (QA, by its name).
    found = load_mmeb_train(mini_mmeb / "train-video", "", video_root=root, max_per_subset=2)
    assert sorted(found) == ["Shapes", "Shapes-qa"] and found["Shapes-qa"][0]["query"]["text"].startswith("Answer a")


def test_reference_subset_names_read_the_reference_files(mini_mmeb, tmp_path):
    (tmp_path / "video_caption_300k").mkdir()
    (tmp_path / "video_qa_240k").mkdir()
    shutil.copy(mini_mmeb / "train-video/Shapes/original.jsonl", tmp_path / "video_caption_300k/original.jsonl")
    shutil.copy(mini_mmeb / "train-video/Shapes-qa/original.jsonl", tmp_path / "video_qa_240k/original.jsonl")
    names = ["video_caption_300k", "video_caption_300k-video", "video_qa_240k"]
    loaded = load_video(mini_mmeb, names, source=tmp_path, max_per_subset=3)
    ours = load_video(mini_mmeb, ["Shapes", "Shapes-video", "Shapes-qa"], max_per_subset=3)
    assert [loaded[name][:] for name in names] == [ours[name][:] for name in ours]


def test_unusable_video_rows_are_reported_with_subset_and_row(mini_mmeb, tmp_path):
    import av

    frames = tmp_path / "frames"
    shutil.copytree(frames_root(mini_mmeb) / "shapes-train", frames / "shapes-train")
    rows = raw_rows(mini_mmeb, "Shapes")[:8]
    shutil.rmtree(frames / rows[1]["video"])  # a missing clip
    for frame in (frames / rows[2]["video"]).iterdir():  # a frame folder with no frames left
        frame.rename(frame.with_suffix(".txt"))
    (frames / "broken.mp4").write_bytes(b"not a video")  # a video file that does not decode
    rows[3]["video"] = "broken.mp4"
    with av.open(str(frames / "good.mp4"), "w") as container:  # a real (tiny) video file passes
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for k in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * k, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    rows[4]["video"] = "good.mp4"
    rows[5]["conversations"] = rows[5]["conversations"][:1]  # no gpt turn
    rows[6]["conversations"][0]["value"] = (
        "<video> <video> Recognize the category of the video content."  # two video tags, one video
    )
    (tmp_path / "train" / "Shapes").mkdir(parents=True)
    (tmp_path / "train/Shapes/original.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def load(subsets):
        return load_mmeb_train(tmp_path / "train", "", subsets=subsets, video_root=frames)

    with pytest.raises(MMEBDataError) as error:
        load(["Shapes"])
    assert str(error.value).splitlines()[1:] == ["Shapes row 5 (conversations): no gpt turn (turn 1) text"]
    rows[5] = raw_rows(mini_mmeb, "Shapes")[5]
    (tmp_path / "train/Shapes/original.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(MMEBDataError) as error:
        load(["Shapes", "Shapes-video"])
    lines = str(error.value).splitlines()
    assert lines[0] == "7 unusable MMEB-train rows:"
    no_frames = f"holds no frames ({', '.join(FRAME_FILE_EXTENSIONS)} files)"
    undecodable = f"video file {str(frames / 'broken.mp4')!r} cannot be decoded: "
    for side, offset in (("Shapes row {} (query)", 1), ("Shapes-video row {} (positive)", 5)):
        assert lines[offset] == f"{side.format(1)}: video {str(frames / rows[1]['video'])!r} does not exist"
        assert lines[offset + 1] == f"{side.format(2)}: frame folder {str(frames / rows[2]['video'])!r} {no_frames}"
        assert lines[offset + 2].startswith(f"{side.format(3)}: {undecodable}")
    assert lines[4] == "Shapes row 6 (query): 2 video tags but 1 videos"  # caption -> video's query has no tag
    # The same through the CLI's --check-data pass: exit 2.
    args = ["train", "--check-data", "--model", "unused", "--data", str(tmp_path / "train"), "--video-dir", str(frames)]
    assert main([*args, "--subsets", "Shapes"]) == 2


def test_video_subsets_need_a_video_model_a_root_and_no_hard_negatives(mini_mmeb):
    with pytest.raises(ValueError, match="video subset 'Shapes': this model takes no video input"):
        load_video(mini_mmeb, ["Shapes"], video_input=False)
    with pytest.raises(ValueError, match=r"video subset 'Shapes-video' needs the video root"):
        load_mmeb_train(mini_mmeb / "train-video", "", subsets=["Shapes-video"])
    with pytest.raises(ValueError, match="hard negatives: video subset 'Shapes-qa' has none"):
        load_video(mini_mmeb, ["Shapes-qa"], hard_negatives=True)
    with pytest.raises(ValueError, match="video subset 'Digits-video': 'Digits' needs the LLaVA-Hound columns"):
        load_mmeb_train(mini_mmeb / "train", mini_mmeb / "images", subsets=["Digits-video"], video_root=mini_mmeb)


def mixed_root(data: Path, tmp_path: Path) -> Path:
    """One training folder holding an image subset and the video tables (as a V2 mixture run reads them)."""
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "Faces").symlink_to(data / "train" / "Faces")
    (root / "Shapes").symlink_to(data / "train-video" / "Shapes")
    return root


def test_image_and_video_subsets_combine_with_widened_sides(mini_mmeb, tmp_path):
    root = mixed_root(mini_mmeb, tmp_path)
    subsets = load_mmeb_train(
        root,
        mini_mmeb / "images",
        subsets=["Faces", "Shapes-video"],
        max_per_subset=6,
        video_root=frames_root(mini_mmeb),
    )
    mixed = combine(subsets, seed=0)
    assert len(mixed) == 12
    assert set(mixed.features["query"]) == set(mixed.features["positive"]) == {"text", "image", "video"}
    widened = {(r["query"]["text"], r["query"]["image"], r["query"]["video"], r["positive"]["video"]) for r in mixed}
    expected = {(r["query"]["text"], r["query"]["image"], None, None) for r in subsets["Faces"]}
    expected |= {(r["query"]["text"], None, None, r["positive"]["video"]) for r in subsets["Shapes-video"]}
    assert widened == expected


def test_interleaved_sub_batches_over_image_and_video_subsets(mini_mmeb, tmp_path):
    """The sampler sees only subset sizes, so video subsets need nothing of it: each block of IB rows comes from one
    subset (video rows with their clips, image rows with their images) and batches mix blocks of both kinds."""
    root = mixed_root(mini_mmeb, tmp_path)
    subsets = load_mmeb_train(
        root,
        mini_mmeb / "images",
        subsets=["Faces", "Shapes", "Shapes-video"],
        max_per_subset=24,
        video_root=frames_root(mini_mmeb),
    )
    dataset = ConcatDataset(list(subsets.values()))  # as sentence-transformers concatenates a DatasetDict
    samplers = [BatchSampler(SequentialSampler(d), 8, drop_last=True) for d in subsets.values()]
    sampler = InterleavedSubBatchSampler(dataset, samplers, seed=3, sub_batch_size=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 * 24 // 8
    kinds = []
    for batch in batches:
        for block in (batch[:4], batch[4:]):
            rows = [dataset[i] for i in block]
            kind = {
                ("video" if r["query"].get("video") else "text" if "video" in r["query"] else "image") for r in rows
            }
            # one subset per block: Shapes queries hold clips, Shapes-video queries are text, Faces queries images
            assert len(kind) == 1, rows
            kinds.append(kind.pop())
        assert len({kinds[-1], kinds[-2]}) >= 1
    assert sorted(kinds) == ["image"] * 6 + ["text"] * 6 + ["video"] * 6
    assert any(len(set(kinds[i : i + 2])) == 2 for i in range(0, len(kinds), 2))  # batches mix subsets


def video_train_args(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """A short run on the mini video subsets: batches of 4 (2 blocks of 2: clip queries, or caption queries with clip
    targets), GradCache mini-batches of 3, so a chunk boundary cuts the video rows of a batch."""
    return [
        "train",
        *("--model", str(model_dir), "--data", str(data / "train-video"), "--video-dir", str(frames_root(data))),
        *("--subsets", "Shapes", "Shapes-video", "--num-sample-per-subset", "8", "--output-dir", str(out)),
        *("--per-device-train-batch-size", "4", "--interleave-batch-size", "2", "--learning-rate", "1e-3"),
        *("--warmup-steps", "0", "--logging-steps", "1", "--save-steps", "100", "--seed", "3"),
        *extra,
    ]


def logged_losses(run: Path) -> list[float]:
    state = json.loads(next(run.glob("checkpoint-*/trainer_state.json")).read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["tiny_random_model_dir", "tiny_qwen3vl_model_dir"])
def test_gradcache_training_on_clips_moves_weights_with_the_uncached_loss(request, model_fixture, mini_mmeb, tmp_path):
    """Qwen2-VL and Qwen3-VL: `pixel_values_videos` and `video_grid_thw` cut per row inside GradCache mini-batches."""
    import torch
    from sentence_transformers import SentenceTransformer

    tiny_random_model_dir = request.getfixturevalue(model_fixture)

    def weights(folder: Path) -> dict[str, torch.Tensor]:
        model = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
        return {name: tensor.clone() for name, tensor in model.state_dict().items()}

    before = weights(tiny_random_model_dir)
    cached, plain = tmp_path / "cached", tmp_path / "plain"
    cached_args = ("--gc-mini-batch-size", "3", "--max-steps", "2", "--save-steps", "2")
    assert main(video_train_args(tiny_random_model_dir, mini_mmeb, cached, *cached_args)) == 0
    plain_args = ("--gc-mini-batch-size", "0", "--max-steps", "1", "--save-steps", "1")
    assert main(video_train_args(tiny_random_model_dir, mini_mmeb, plain, *plain_args)) == 0
    losses = logged_losses(cached)
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[0] > 0
    # Step 1 sees the same batch and the same initial weights in both runs: the GradCache loss over mini-batches of
    # 3 (one cut inside the batch's video rows) equals the uncached in-batch loss.
    assert losses[0] == pytest.approx(logged_losses(plain)[0], rel=1e-4)
    after = weights(cached / "final")
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    assert all(torch.isfinite(tensor).all() for tensor in after.values())
    assert any(".visual." in name for name in moved) and any(".language_model." in name for name in moved), moved


def test_config_takes_a_video_root_and_the_v2_eval_protocol():
    from vlm2vec_hf.training.config import TrainConfig

    TrainConfig(model="m", data="d", video_dir="frames", eval_protocol="v2").validate()  # video only: no image_dir
    with pytest.raises(ValueError, match="`image_dir` \\(or, for video subsets only, `video_dir`\\) is required"):
        TrainConfig(model="m", data="d").validate()
    with pytest.raises(ValueError, match="eval_protocol must be v1 or v2, got 'v3'"):
        TrainConfig(model="m", data="d", image_dir="i", eval_protocol="v3").validate()


def test_vlm2vec_eval_on_the_mini_video_sets_writes_the_v2_tables_with_a_video_column(
    tiny_random_model_dir, mini_mmeb, tmp_path
):
    out = tmp_path / "eval"
    args = ["eval", "--model", str(tiny_random_model_dir), "--data", str(mini_mmeb / "eval-video")]
    assert main([*args, "--image-dir", str(frames_root(mini_mmeb)), "--protocol", "v2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    scores = {name: entry["score"] for name, entry in results["datasets"].items()}
    assert sorted(scores) == ["Shapes_QA", "Shapes_cls", "Shapes_t2v"]
    groups = results["groups"]
    for group, dataset in (("V-CLS", "Shapes_cls"), ("V-QA", "Shapes_QA"), ("V-RET", "Shapes_t2v")):
        assert groups[group]["count"] == 1 and groups[group]["score"] == pytest.approx(scores[dataset])
    assert groups["Video"]["count"] == 3 and groups["Video"]["score"] == pytest.approx(np.mean(list(scores.values())))
    table = (out / "results.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| model | V-CLS"))
    assert "| V-CLS (1) | V-QA (1) | V-RET (1) |" in header and "| Video (3) |" in header, header
    assert (out / "results.png").is_file()


def test_mini_mmeb_train_v2_holds_the_image_subsets_and_the_video_tables_in_one_folder(mini_mmeb):
    manifest = json.loads((mini_mmeb / "manifest.json").read_text())
    subsets = manifest["train-v2"]["subsets"]
    assert subsets == [*manifest["train"], "Shapes", "Shapes-video", "Shapes-qa"]
    mixture = load_mmeb_train(
        mini_mmeb / "train-v2", mini_mmeb / "images", subsets=subsets, video_root=frames_root(mini_mmeb)
    )
    assert list(mixture) == subsets
    assert {name: len(rows) for name, rows in mixture.items() if name in manifest["train"]} == manifest["train"]
    assert len(mixture["Shapes-video"]) == manifest["train-video"]["rows"]["Shapes"]
    assert mixture["Shapes"][0]["query"]["video"] and mixture["Faces"][0]["query"]["image"]


def test_the_frame_check_lists_frames_as_the_model_reads_them(tmp_path):
    """Hidden files do not count as frames (the processor skips them); `.ppm` frames, which it reads, do."""
    from vlm2vec_hf.training.data import video_problem

    clip = tmp_path / "clip"
    clip.mkdir()
    Image.new("RGB", (8, 8)).save(clip / ".0000.png")
    assert "holds no frames" in video_problem(str(clip))
    Image.new("RGB", (8, 8)).save(clip / "0001.ppm")
    assert video_problem(str(clip)) is None
