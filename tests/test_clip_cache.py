"""The prepared-clip cache of `VLM2VecProcessor.prepare_video` (`clip_cache_bytes`) and the evaluator's grouping of
video items by clip: a clip queried by several items is decoded once, embeddings equal an uncached run, a changed
frame or video file is read again, and the byte bound evicts least recently used clips."""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import write_clip, write_ffv1, write_rows
from PIL import Image

from vlm2vec_hf.evaluation.data import load_mmeb_eval
from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator, clip_chunks, unique_items
from vlm2vec_hf.modeling_vlm2vec import media_loading
from vlm2vec_hf.modeling_vlm2vec.media_loading import VideoInputError
from vlm2vec_hf.modeling_vlm2vec.processing_vlm2vec import VLM2VecProcessor

# The tiny model's pixel bounds (3136 ... 12544) take a 32x32 frame to 56x56: 9408 bytes of RGB per prepared frame.
FRAME_BYTES = 56 * 56 * 3


def count_calls(monkeypatch, module, name: str) -> Counter:
    """Wrap `module.name` so that each call is counted by its first argument's clip: a frame file's folder (name
    `open_image_file`) or the video file itself."""
    calls: Counter = Counter()
    original = getattr(module, name)

    def counted(path, *args, **kwargs):
        path = Path(path)
        calls[path.parent.name if name == "open_image_file" else path.name] += 1
        return original(path, *args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.fixture()
def video_set(tmp_path) -> list:
    """Clip a (3 frames) in 3 NExTQA questions, a UCF101 query and the MSR-VTT pool; b (3 frames) in 2 questions,
    a UCF101 query and the pool; c (2 frames) in the pool only."""
    for name, frames, shade in [("a", 3, 0), ("b", 3, 120), ("c", 2, 60)]:
        write_clip(tmp_path, name, frames, shade)
    qa = [
        ("frames/a", "what moves"),
        ("frames/b", "which colour is the background of the whole clip"),
        ("frames/a", "where does the white square go after the first frame of the clip"),
        ("frames/b", "how many"),
        ("frames/a", "what colour is the square"),
    ]
    write_rows(
        tmp_path,
        "NExTQA",
        [{"qry_text": q, "qry_video": clip, "tgt_text": ["yes", "no"], "gold_index": 0} for clip, q in qa],
    )
    write_rows(
        tmp_path,
        "UCF101",
        [
            {"qry_text": "", "qry_video": clip, "tgt_text": ["jumping", "running"], "gold_index": gold}
            for clip, gold in [("frames/a", 0), ("frames/b", 1)]
        ],
    )
    write_rows(
        tmp_path,
        "MSR-VTT",
        [
            {"qry_text": caption, "qry_video": "", "tgt_text": [], "tgt_video": [clip]}
            for clip, caption in [("frames/a", "a square"), ("frames/b", "a red frame"), ("frames/c", "short")]
        ],
    )
    return load_mmeb_eval(tmp_path, tmp_path)


@pytest.fixture()
def model(tiny_random_model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_random_model_dir), trust_remote_code=True, device="cpu")


@pytest.fixture()
def processor(tiny_random_model_dir) -> VLM2VecProcessor:
    return VLM2VecProcessor.from_pretrained(tiny_random_model_dir, trust_remote_code=True)


def test_each_clip_is_decoded_once_per_evaluation_and_embeddings_equal_an_uncached_run(model, video_set, monkeypatch):
    processor = model[0].processor
    # The model folder's own copy of media_loading.py, beside its processing_vlm2vec.py.
    module = sys.modules[type(processor).__module__.rsplit(".", 1)[0] + ".media_loading"]
    items = unique_items(video_set)
    clip_items = Counter(Path(item[2]).name for item in items if len(item) == 3)
    assert clip_items == {"a": 5, "b": 4, "c": 1}  # distinct (prompt, clip) items per clip
    calls = count_calls(monkeypatch, module, "open_image_file")

    processor.clip_cache_bytes = 0  # today's path: every item decodes its clip, all video items in one call
    uncached, _ = MMEBEvaluator(video_set, protocol="v2", clips_per_call=10**6).embed(model, items)
    assert calls == {name: count * {"a": 3, "b": 3, "c": 2}[name] for name, count in clip_items.items()}

    # A cache that holds one clip (a and c together are 5 frames, over the bound): only the grouping by clip keeps
    # every hit, as encode() sorts a call's items by prompt length and so interleaves the clips.
    processor.clip_cache_bytes = 3 * FRAME_BYTES
    calls.clear()
    evaluator = MMEBEvaluator(video_set, protocol="v2", clips_per_call=1)
    cached, counts = evaluator.embed(model, items)
    assert calls == {"a": 3, "b": 3, "c": 2}  # each sampled frame file opened once
    assert counts["encoded"] == len(items)
    np.testing.assert_allclose(cached, uncached, rtol=0, atol=1e-6)

    # The whole evaluator call, with the default 1 GiB cache emptied first: still one decode per clip.
    processor.clip_cache_bytes = 1 << 30
    processor._clip_cache.clear()
    calls.clear()
    metrics = evaluator(model)
    assert calls == {"a": 3, "b": 3, "c": 2}
    processor.clip_cache_bytes = 0
    assert MMEBEvaluator(video_set, protocol="v2", clips_per_call=10**6)(model) == metrics


def test_clip_chunks_keep_every_item_of_a_clip_together():
    items = [("q1", "", "a"), ("q2", "", "b"), ("q3", "", "a"), ("q4", "", "c"), ("q5", "", "b")]
    assert clip_chunks(items, 2) == [[items[0], items[2], items[1], items[4]], [items[3]]]
    assert clip_chunks(items, 1) == [[items[0], items[2]], [items[1], items[4]], [items[3]]]
    with pytest.raises(ValueError, match="clips_per_call must be a positive integer"):
        MMEBEvaluator([object()], clips_per_call=0)


def test_a_rewritten_or_added_frame_file_is_read_again(processor, tmp_path, monkeypatch):
    folder = write_clip(tmp_path, "a", 3, 0)
    calls = count_calls(monkeypatch, media_loading, "open_image_file")
    first = processor.prepare_video(str(folder))
    again = processor.prepare_video(str(folder))
    assert calls == {"a": 3} and len(processor._clip_cache) == 1
    assert [np.asarray(f).tolist() for f in again] == [np.asarray(f).tolist() for f in first]

    # the callers get copies: drawing on a returned frame does not reach the cache
    pixels = np.asarray(first[0])  # a copy of the pixels
    again[0].paste((1, 2, 3), (0, 0, 56, 56))
    assert np.array_equal(np.asarray(processor.prepare_video(str(folder))[0]), pixels)

    stat = (folder / "0001.png").stat()
    Image.new("RGB", (32, 32), (250, 0, 0)).save(folder / "0001.png")
    os.utime(folder / "0001.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # a new mtime even on coarse clocks
    calls.clear()
    changed = processor.prepare_video(str(folder))
    assert calls == {"a": 3}
    assert changed[1].getpixel((40, 40)) == (250, 0, 0) != first[1].getpixel((40, 40))
    processor.clip_cache_bytes = 0
    expected = processor.prepare_video(str(folder))
    assert [np.asarray(f).tolist() for f in changed] == [np.asarray(f).tolist() for f in expected]

    processor.clip_cache_bytes = 1 << 30
    Image.new("RGB", (32, 32), (0, 250, 0)).save(folder / "0003.png")  # a fourth frame: another listing
    calls.clear()
    longer = processor.prepare_video(str(folder))
    assert len(longer) == 4 and longer[3].getpixel((0, 0)) == (0, 250, 0) and calls == {"a": 4}


def test_the_byte_bound_evicts_the_least_recently_used_clip(processor, tmp_path, monkeypatch):
    p, q, r = (str(write_clip(tmp_path, name, 2, 40 * i)) for i, name in enumerate("pqr"))
    processor.clip_cache_bytes = 4 * FRAME_BYTES  # two 2-frame clips
    calls = count_calls(monkeypatch, media_loading, "open_image_file")
    for clip in (p, q, p, r):  # p used again before r comes, so q is the least recently used
        processor.prepare_video(clip)
    cache = processor._clip_cache
    assert len(cache) == 2 and cache.bytes == 4 * FRAME_BYTES <= processor.clip_cache_bytes
    calls.clear()
    processor.prepare_video(p)
    processor.prepare_video(r)
    assert calls == {}  # both still cached
    processor.prepare_video(q)
    assert calls == {"q": 2}  # q was evicted (and now p, the least recently used, is)
    processor.clip_cache_bytes = 3 * FRAME_BYTES  # shrinking evicts what no longer fits
    assert len(cache) == 1 and cache.bytes == 2 * FRAME_BYTES
    processor.clip_cache_bytes = FRAME_BYTES  # smaller than any clip: nothing is kept
    processor.prepare_video(p)
    assert len(cache) == 0 and cache.bytes == 0
    # frames given as a list are never cached
    processor.clip_cache_bytes = 1 << 30
    processor.prepare_video([Image.open(path) for path in sorted(Path(p).iterdir())])
    assert len(cache) == 0
    with pytest.raises(ValueError, match="clip_cache_bytes must be a non-negative integer"):
        processor.clip_cache_bytes = -1


def write_video(path: Path, colours: list[tuple[int, int, int]]) -> Path:
    """A lossless (FFV1) video of 32x32 frames, one per colour."""
    return write_ffv1(path, [np.full((32, 32, 3), colour, dtype=np.uint8) for colour in colours])


def test_a_video_file_is_decoded_once_until_it_changes(processor, tmp_path, monkeypatch):
    video = write_video(tmp_path / "clip.mkv", [(10 * i, 0, 0) for i in range(5)])
    calls = count_calls(monkeypatch, media_loading, "decode_video_file")
    first = processor.prepare_video(str(video))
    assert [frame.getpixel((0, 0)) for frame in processor.prepare_video(video)] == [(10 * i, 0, 0) for i in range(5)]
    assert calls == {"clip.mkv": 1} and len(first) == 5
    processor.num_frames = 2  # another sampling: another entry
    assert [frame.getpixel((0, 0)) for frame in processor.prepare_video(str(video))] == [(0, 0, 0), (40, 0, 0)]
    assert calls == {"clip.mkv": 2}
    stat = video.stat()
    write_video(video, [(0, 0, 10 * i) for i in range(5)])
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert [frame.getpixel((0, 0)) for frame in processor.prepare_video(str(video))] == [(0, 0, 0), (0, 0, 40)]
    assert calls == {"clip.mkv": 3}


def test_bad_clips_raise_as_before_and_are_not_cached(processor, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    for clip, message in [
        (tmp_path / "missing", "does not exist"),
        (tmp_path / "empty", "holds no frame images"),
        (tmp_path / "broken.mp4", "is not a readable video"),
    ]:
        for _ in range(2):  # the second time too: nothing was cached
            with pytest.raises(VideoInputError, match=rf"video 0 \({re.escape(repr(str(clip)))}\): .*{message}"):
                processor(text=["<|video_pad|> x"], videos=[str(clip)])
    assert len(processor._clip_cache) == 0


def test_encode_prepares_each_clip_once_and_the_processor_takes_prepared_clips_as_they_are(
    model, tmp_path, monkeypatch
):
    processor = model[0].processor
    processor.clip_cache_bytes = 0  # every preparation is a real one
    folders = [write_clip(tmp_path, name, 9, shade) for name, shade in (("a", 30), ("b", 120))]
    family = processor.family
    prepared: Counter = Counter()
    original = type(family).prepare_video

    def counted(self, image_processor, frames):
        prepared[len(frames)] += 1
        return original(self, image_processor, frames)

    monkeypatch.setattr(type(family), "prepare_video", counted)
    inputs = [{"video": str(folder), "text": "what moves?"} for folder in folders]
    embeddings = model.encode(inputs, batch_size=2, convert_to_numpy=True)
    assert prepared == Counter({8: 2})  # 9 frames sampled to 8, once per clip (not again inside processor.__call__)
    clip = processor.prepare_video(str(folders[0]))
    assert type(clip).__name__ == "PreparedClip"  # the model folder's own copy of the class
    prepared.clear()
    direct = processor(text=["<|video_pad|> what moves?"], videos=[clip])
    assert prepared == Counter()  # a prepared clip goes in as it is
    again = processor(text=["<|video_pad|> what moves?"], videos=[str(folders[0])])
    assert prepared == Counter({8: 1})
    assert torch_equal(direct["pixel_values_videos"], again["pixel_values_videos"])
    single = model.encode([inputs[0]], convert_to_numpy=True)
    np.testing.assert_allclose(single[0], embeddings[0], atol=1e-5)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
