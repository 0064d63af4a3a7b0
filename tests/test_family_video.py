"""Video behaviour of the Qwen2-VL video fixture (parity-qwen2vl-video-public) that is not embedding parity (that is
in test_family_parity.py): frame sampling and sizes, the pixel layout against stock transformers, the video prompt,
the video input forms, clips the reference cannot take, bad input, the saved `num_frames`, GradCache mini-batches of
mixed rows, and which families declare video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    QWEN2VL_VIDEO,
    TOLERANCE,
    VIDEO_PAD,
    load_auto,
    load_sentence_model,
    max_abs,
    raw_input,
    video_structured,
    write_ffv1,
)
from PIL import Image

from vlm2vec_hf.modeling_vlm2vec.backbone_common import format_prompt
from vlm2vec_hf.modeling_vlm2vec.backbone_qwen2_vl import video_frame_size
from vlm2vec_hf.modeling_vlm2vec.media_loading import list_frame_files, load_video, sample_frame_indices

CASES = QWEN2VL_VIDEO.cases
FRAMES = QWEN2VL_VIDEO.root / "frames"
VIDEO_CASES = [case for case, data in CASES.items() if data["modality"] == "video"]
clip_dir = QWEN2VL_VIDEO.clip_dir


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return QWEN2VL_VIDEO.expected


@pytest.fixture(scope="module")
def auto_model_and_processor(video_model_dir):
    return load_auto(video_model_dir)


@pytest.fixture(scope="module")
def sentence_model(video_model_dir):
    return load_sentence_model(video_model_dir)


def st_input(case_id: str):
    return raw_input(QWEN2VL_VIDEO, case_id)


def structured(case_id: str) -> tuple[dict, str | None]:
    return video_structured(case_id)


def test_qa_cases_split_into_instruction_and_question():
    """The structured video inputs of the parity suite exercise the QA split (question as `text`)."""
    assert any("text" in structured(case)[0] for case in VIDEO_CASES)


# --- frames: sampling, size rule, pixel layout ---


def test_frame_sampling_and_sizes_match_reference():
    for case_id in VIDEO_CASES:
        case = CASES[case_id]
        files = list_frame_files(clip_dir(case_id))
        assert len(files) == case["n_source_frames"], case_id
        indices = sample_frame_indices(len(files), 8)
        assert indices == case["sampled_frame_indices"], case_id
        assert [f"{case['clip']}/{files[i].name}" for i in indices] == case["frames"], case_id
        frames = load_video(clip_dir(case_id))
        for frame, name in zip(frames, case["frames"]):
            assert np.array_equal(np.asarray(frame), np.asarray(Image.open(FRAMES / name).convert("RGB"))), name
        width, height = case["frame_sizes"][0]
        assert list(video_frame_size(height, width, 3136, 1003520)) == case["resized_frame_hw"], case_id
    assert sample_frame_indices(13, 8) == [0, 1, 3, 5, 6, 8, 10, 12]  # README example
    # The reference's squaring rule for tiny / thin frames (stock transformers 5 keeps the aspect ratio instead).
    assert video_frame_size(20, 36, 3136, 1003520) == (56, 56)
    assert video_frame_size(28, 6000, 3136, 1003520) == (980, 980)  # ratio > 200: square of side 6000, then bounded


def test_pixel_values_match_stock_video_processor_on_resized_frames(auto_model_and_processor):
    """An independent layout check: stock transformers' Qwen2-VL video processor (torchvision, no resize) on our
    resized frames gives our `pixel_values_videos` (README: <= 2.4e-7, fused float32 normalisation)."""
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    _, processor = auto_model_and_processor
    stock = Qwen2VLVideoProcessor()
    for case_id in ("p06", "p04", "p07"):  # odd frame count, portrait, tiny (squared)
        frames = processor.prepare_video(str(clip_dir(case_id)))
        ours = processor(text=[VIDEO_PAD], videos=[frames])
        clip = np.stack([np.asarray(frame) for frame in frames])
        theirs = stock(videos=[clip], do_resize=False, do_sample_frames=False, return_tensors="pt")
        grid = [CASES[case_id]["video_grid_thw"]]
        assert ours["video_grid_thw"].tolist() == theirs["video_grid_thw"].tolist() == grid
        assert max_abs(ours["pixel_values_videos"], theirs["pixel_values_videos"]) < 1e-6, case_id


# --- AutoModel / AutoProcessor ---


def test_video_alone_prompt_and_format_prompt(auto_model_and_processor, expected):
    model, processor = auto_model_and_processor
    # V2 rule in both formats: the video token, one space, the instruction (not stripped) [+ " " + text].
    assert processor.format_prompt(num_videos=1) == "<|video_pad|> " == CASES["p09"]["text"]
    instruction = CASES["p01"]["text"][len(VIDEO_PAD) + 1 :]
    assert processor.format_prompt(None, instruction, num_videos=1) == CASES["p01"]["text"]
    with pytest.raises(ValueError, match="one kind of visual input"):
        processor.format_prompt("x", None, num_images=1, num_videos=1)
    # The V2 format (whose image rule differs: "\n" after the token, a trailing "\n") builds the same video prompts.
    for case_id in VIDEO_CASES:
        item, prompt = structured(case_id)
        for prompt_format in ("v1", "v2"):
            built = format_prompt(
                item.get("text"), prompt, prompt_format=prompt_format, num_videos=1, video_token=VIDEO_PAD
            )
            assert built == CASES[case_id]["text"], (case_id, prompt_format)
    # `processor(videos=...)` without text embeds each clip alone, like the image-alone prompt.
    with torch.no_grad():
        embedding = model(**processor(videos=[str(clip_dir("p09"))])).embeddings[0]
    assert max_abs(embedding, expected["case/p09"]) < TOLERANCE


# --- SentenceTransformer.encode ---


def write_lossless_video(frames: list[Path], path: Path) -> Path:
    """A lossless (FFV1) video of the frame files `frames`, in order."""
    return write_ffv1(path, [np.asarray(Image.open(frame).convert("RGB")) for frame in frames])


def test_video_input_forms_give_the_same_embedding(sentence_model, expected, tmp_path):
    """Folder, list of frame paths, list of PIL frames, (T, H, W, C) array, a video file (lossless, by dict and by
    bare path): the same 8 sampled frames, the reference embedding (p01: 16 source frames)."""
    files = list_frame_files(clip_dir("p01"))
    video_file = write_lossless_video(files, tmp_path / "chelsea.mkv")
    prompt = CASES["p01"]["text"][len(VIDEO_PAD) + 1 :]
    forms = [
        {"video": str(clip_dir("p01"))},
        {"video": clip_dir("p01")},
        {"video": [str(path) for path in files]},
        {"video": [Image.open(path) for path in files]},
        {"video": np.stack([np.asarray(Image.open(path).convert("RGB")) for path in files])},
        {"video": str(video_file)},
        str(video_file),
    ]
    embeddings = sentence_model.encode(forms, prompt=prompt, batch_size=len(forms), convert_to_tensor=True)
    for form, embedding in zip(forms, embeddings):
        assert max_abs(embedding, expected["case/p01"]) < TOLERANCE, type(form)


# --- clips the reference cannot take (reference_failures): every frame to RGB, resized to the first frame's size ---


def embed_clip(sentence_model, frames) -> torch.Tensor:
    return sentence_model.encode({"video": frames}, prompt="Describe.", convert_to_tensor=True)


def test_mixed_size_clip_resizes_every_frame_to_the_first_frames_size(sentence_model, auto_model_and_processor):
    _, processor = auto_model_and_processor
    sizes = [(112, 84), (60, 100), (400, 300), (20, 20), (280, 210), (90, 60), (150, 227), (112, 84)]  # (w, h)
    source = Image.open(FRAMES / "chelsea_pan_16f_140x105" / "0000.png").convert("RGB")
    frames = [source.resize(size, Image.BICUBIC) for size in sizes]
    height, width = video_frame_size(84, 112, *processor.processor_options.values())
    encoding = processor(text=[VIDEO_PAD], videos=[frames])
    assert encoding["video_grid_thw"].tolist() == [[4, height // 14, width // 14]] == [[4, 6, 8]]
    # Independent: the frames resized by hand (PIL bicubic, uint8) to the first frame's target size.
    by_hand = [frame.resize((width, height), Image.BICUBIC) for frame in frames]
    assert max_abs(embed_clip(sentence_model, frames), embed_clip(sentence_model, by_hand)) < 1e-6
    # Not the first frame alone repeated, nor another frame's size: the rule is really per frame.
    assert max_abs(embed_clip(sentence_model, frames), embed_clip(sentence_model, by_hand[:1] * 8)) > 1e-3


def test_greyscale_and_rgba_clips_become_rgb(sentence_model):
    base = [
        np.asarray(Image.open(path).convert("RGB").resize((98, 98), Image.BICUBIC))
        for path in list_frame_files(FRAMES / "coffee_zoom_13f_120x90")[:8]
    ]
    grey = [Image.fromarray(frame).convert("L") for frame in base]
    grey_by_hand = [np.repeat(np.asarray(frame)[:, :, None], 3, axis=2) for frame in grey]
    assert max_abs(embed_clip(sentence_model, grey), embed_clip(sentence_model, grey_by_hand)) < 1e-6
    # Every other frame RGBA (with a non-trivial alpha): alpha dropped, colour kept, as convert("RGB") does.
    alpha = np.linspace(0, 255, 98 * 98).reshape(98, 98).astype(np.uint8)
    mixed = [
        Image.fromarray(np.dstack([frame, alpha]), mode="RGBA") if index % 2 else Image.fromarray(frame)
        for index, frame in enumerate(base[:6])
    ]
    assert max_abs(embed_clip(sentence_model, mixed), embed_clip(sentence_model, base[:6])) < 1e-6


# --- bad input: an error naming the input ---


def test_bad_video_inputs_name_the_input(sentence_model, tmp_path):
    empty_folder = tmp_path / "no_frames"
    empty_folder.mkdir()
    (empty_folder / "notes.txt").write_text("no frames here")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 10)
    empty_file = tmp_path / "empty.mp4"
    empty_file.write_bytes(b"")
    broken_frame_folder = tmp_path / "broken"
    broken_frame_folder.mkdir()
    (broken_frame_folder / "0000.png").write_bytes(b"not a png")
    cases = [
        ({"video": str(empty_folder)}, "holds no frame images"),
        ({"video": str(garbage)}, "not a readable video"),
        ({"video": str(empty_file)}, "not a readable video"),
        ({"video": []}, "no frames"),
        ({"video": str(tmp_path / "missing.mp4")}, "does not exist"),
        ({"video": str(broken_frame_folder)}, "0000.png"),
        ({"video": str(clip_dir("p01")), "image": str(FRAMES / "chelsea_pan_16f_140x105" / "0000.png")}, "both"),
        ({"video": str(FRAMES / "chelsea_pan_16f_140x105" / "0000.png")}, "one image file"),
        ({"video": 3}, "unsupported type int"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            sentence_model.encode(["a text", bad], batch_size=2)
        assert str(error.value).startswith("Input ") and "of its batch" not in str(error.value), bad
        assert _describe_fragment(bad) in str(error.value), bad


def _describe_fragment(bad: dict) -> str:
    return repr(bad)[:40]


def test_processor_bad_video_inputs(auto_model_and_processor, tmp_path):
    _, processor = auto_model_and_processor
    with pytest.raises(ValueError, match=r"1 video placeholders .* but 2 videos"):
        processor(text=[VIDEO_PAD + " a"], videos=[str(clip_dir("p01")), str(clip_dir("p02"))])
    with pytest.raises(ValueError, match="row 0: holds image and video placeholders"):
        processor(
            text=["<|image_pad|> <|video_pad|> a"],
            images=[str(FRAMES / "chelsea_pan_16f_140x105" / "0000.png")],
            videos=[str(clip_dir("p01"))],
        )
    with pytest.raises(ValueError, match=r"video 1 \('.*missing'\): video '.*missing' does not exist"):
        processor(text=[VIDEO_PAD, VIDEO_PAD], videos=[str(clip_dir("p01")), str(tmp_path / "missing")])
    # A max_length that would cut video pads (the reference would crash) is an error naming the row.
    with pytest.raises(ValueError, match="row 0: its videos need 80 video tokens but 50 fit"):
        processor(text=[CASES["p01"]["text"]], videos=[str(clip_dir("p01"))], max_length=50)


def test_num_frames_is_a_saved_setting(video_model_dir, tmp_path):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(video_model_dir, trust_remote_code=True)
    assert json.loads((video_model_dir / "processor_config.json").read_text())["num_frames"] == 8
    processor.num_frames = 4
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["num_frames"] == 4
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert reloaded.num_frames == 4
    frames = reloaded.prepare_video(str(clip_dir("p01")))  # 16 source frames -> linspace(0, 15, 4)
    expected = [Image.open(path).convert("RGB") for path in np.array(list_frame_files(clip_dir("p01")))[[0, 5, 10, 15]]]
    assert [np.asarray(f).tolist() for f in frames] == [
        np.asarray(f.resize((140, 112), Image.BICUBIC)).tolist() for f in expected
    ]
    assert reloaded(text=[VIDEO_PAD], videos=[str(clip_dir("p01"))])["video_grid_thw"].tolist() == [[2, 8, 10]]
    with pytest.raises(ValueError, match="num_frames"):
        type(processor)(processor.image_processor, processor.tokenizer, num_frames=0)


# --- GradCache mini-batches ---


@pytest.mark.slow
def test_gradcache_minibatches_cut_video_image_and_text_rows(sentence_model):
    """sentence-transformers' `_create_minibatch` cuts `pixel_values_videos` / `video_grid_thw` (by
    `num_videos_per_sample`) and `pixel_values` / `image_grid_thw` so every mini-batch equals the features of its
    own rows, and embeds as they do."""
    from sentence_transformers.base.losses.gradcache import _create_minibatch

    order = ["p01", "p11", "p03", "p06", "p14", "p02", "p10"]
    full = sentence_model.preprocess([st_input(case) for case in order])
    assert full["num_videos_per_sample"].tolist() == [1, 0, 0, 1, 0, 1, 0]
    assert full["num_images_per_sample"].tolist() == [0, 1, 0, 0, 1, 0, 0]
    for size in (1, 2, 3):
        for begin in range(0, len(order), size):
            part = order[begin : begin + size]
            mini = _create_minibatch(full, begin, begin + size)
            alone = sentence_model.preprocess([st_input(case) for case in part])
            for key in ("pixel_values_videos", "video_grid_thw", "pixel_values", "image_grid_thw"):
                assert (key in mini) == (key in alone), (size, begin, key)
                if key in alone:
                    assert torch.equal(mini[key], alone[key]), (size, begin, key)
            with torch.no_grad():
                ours = sentence_model[0](dict(mini))["sentence_embedding"]
                reference = sentence_model[0](dict(alone))["sentence_embedding"]
            assert max_abs(ours, reference) < 1e-6, (size, begin)


def test_only_families_with_video_declare_it(sentence_model):
    """Qwen2-VL folders list video among their modalities (sentence_bert_config.json, read by mteb); a family without
    video (Phi-3.5-V, LLaVA-Next, GME: `video_token` None) does not, and its processor refuses a video by name."""
    from types import SimpleNamespace

    encoder = sentence_model[0]
    assert "video" in encoder.modalities and ("text", "video") in encoder.modalities
    declared = SimpleNamespace(modalities=("text", "image"))
    without_video = type(encoder)(model=None, processor=SimpleNamespace(video_token=None, family=declared))
    assert "video" not in without_video.modalities and ("text", "video") not in without_video.modalities
    assert ("image", "text") in without_video.modalities
    processor = encoder.processor
    gme = type(processor)(processor.image_processor, processor.tokenizer, prompt_format="gme", backbone_family="gme")
    with pytest.raises(ValueError, match="this gme model takes no video input"):
        gme(text=["a clip"], videos=[str(clip_dir("p01"))])
    with pytest.raises(ValueError, match="this gme model takes no video input"):
        gme.prepare_video(str(clip_dir("p01")))


def test_a_video_file_without_pyav_is_an_error_naming_the_file(sentence_model, monkeypatch, tmp_path):
    """PyAV is imported only for a video file: frame folders and lists work without it; a file names itself."""
    import sys

    video_file = write_lossless_video(list_frame_files(clip_dir("p06")), tmp_path / "shapes.mkv")
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    sentence_model.encode({"video": str(clip_dir("p06"))})
    with pytest.raises(ValueError, match=r"shapes\.mkv.*needs PyAV to decode: pip install av") as error:
        sentence_model.encode(["a text", {"video": str(video_file)}], batch_size=2)
    assert str(error.value).startswith("Input ") and "of its batch" not in str(error.value)


def test_frame_folders_are_read_in_natural_file_name_order(tmp_path):
    """`2.png` before `10.png` (time order), non-image and hidden files skipped."""
    for index in (10, 2, 1, 33, 3):
        Image.new("RGB", (32, 32), (index, 0, 0)).save(tmp_path / f"frame_{index}.png")
    (tmp_path / "labels.txt").write_text("not a frame")
    Image.new("RGB", (32, 32)).save(tmp_path / ".thumb.png")
    assert [path.name for path in list_frame_files(tmp_path)] == [f"frame_{i}.png" for i in (1, 2, 3, 10, 33)]
    assert [frame.getpixel((0, 0))[0] for frame in load_video(tmp_path)] == [1, 2, 3, 10, 33]
