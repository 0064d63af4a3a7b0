"""`vlm2vec embed` in one process: the three input kinds and their ids, the stored vectors (numpy and `datasets`),
truncation, each precision, the manifest check, resuming, and bad items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_sentence_model, write_clip, write_ffv1
from PIL import Image

from vlm2vec_hf.cli import main
from vlm2vec_hf.retrieval import store
from vlm2vec_hf.retrieval.embed import EmbedOptions, ShardEmbedder, embed_collection
from vlm2vec_hf.retrieval.inputs import read_collection

TEXTS = ["a red bus", "", "a cat sleeping on a warm windowsill in the afternoon sun", "dogs", "one two three four"]


def write_image(path: Path, seed: int, height: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, 48, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Five PNGs of different heights, a frame folder, a video file, and a file of another type (left out)."""
    folder = tmp_path_factory.mktemp("collection") / "images"
    folder.mkdir()
    for index in range(5):
        write_image(folder / f"im{index}.png", index, height=32 + 8 * index)
    clip = write_clip(folder.parent, "clip")
    clip.rename(folder / "clip")
    frames = [np.full((32, 32, 3), 40 * index, np.uint8) for index in range(4)]
    write_ffv1(folder / "movie.mkv", frames)
    (folder / "notes.md").write_text("not an item")
    return folder


@pytest.fixture(scope="module")
def model(tiny_random_model_dir):
    return load_sentence_model(tiny_random_model_dir)


def embed(model_dir, source, out, *flags: str) -> int:
    return main(["embed", str(source), "--model", str(model_dir), "--out", str(out), *flags])


def encoded(model, inputs, **kwargs) -> np.ndarray:
    """The reference: `SentenceTransformer.encode` of the same inputs, one at a time."""
    return np.stack([model.encode([x], normalize_embeddings=True, **kwargs)[0] for x in inputs])


def test_images_folder_ids_vectors_and_readers(tiny_random_model_dir, model, images, tmp_path):
    import datasets

    assert embed(tiny_random_model_dir, images, tmp_path / "out", "--shard-size", "3") == 0
    ids, sources, matrix = store.read_embeddings(tmp_path / "out")
    assert ids == ["clip", "im0.png", "im1.png", "im2.png", "im3.png", "im4.png", "movie.mkv"]
    assert sorted(store.finished_shards(tmp_path / "out")) == [0, 1, 2]
    inputs = [{"video": str(images / "clip")}] + [{"image": str(images / name)} for name in ids[1:6]]
    inputs.append({"video": str(images / "movie.mkv")})
    assert sources == [next(iter(x.values())) for x in inputs]
    assert matrix.dtype == np.float32 and matrix.shape == (7, model.get_embedding_dimension())
    np.testing.assert_allclose(matrix, encoded(model, inputs), atol=1e-5)
    table = datasets.load_dataset("parquet", data_files=str(tmp_path / "out/shards/*.parquet"), split="train")
    assert table["id"] == ids
    np.testing.assert_array_equal(np.asarray(table["embedding"], np.float32), matrix)
    manifest = store.read_manifest(tmp_path / "out")
    assert (
        manifest.input["kind"] == "folder" and manifest.num_items == 7 and manifest.settings["precision"] == "float32"
    )


def test_text_file_ids_are_line_numbers(tiny_random_model_dir, model, tmp_path):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n")
    prompt = "Represent the sentence:"
    assert embed(tiny_random_model_dir, tmp_path / "texts.txt", tmp_path / "out", "--prompt", prompt) == 0
    ids, sources, matrix = store.read_embeddings(tmp_path / "out")
    assert ids == ["1", "3", "4", "5"] and sources == [t for t in TEXTS if t]  # line 2 is blank
    np.testing.assert_allclose(matrix, encoded(model, sources, prompt=prompt), atol=1e-5)
    assert store.read_manifest(tmp_path / "out").settings["prompt"] == prompt


def test_table_columns_ids_media_root_and_image_alone(tiny_random_model_dir, model, images, tmp_path):
    import pandas as pd

    rows = {"id": ["a", "b", "c"], "caption": ["a dog", "", "just text"], "image_path": ["im0.png", "im1.png", None]}
    pd.DataFrame(rows).to_parquet(tmp_path / "table.parquet")
    flags = ["--media-root", str(images)]
    assert embed(tiny_random_model_dir, tmp_path / "table.parquet", tmp_path / "out", *flags) == 0
    ids, sources, matrix = store.read_embeddings(tmp_path / "out")
    assert ids == ["a", "b", "c"] and sources == [str(images / "im0.png"), str(images / "im1.png"), "just text"]
    inputs = [{"image": str(images / "im0.png"), "text": "a dog"}, {"image": str(images / "im1.png")}, "just text"]
    np.testing.assert_allclose(matrix, encoded(model, inputs), atol=1e-5)
    # No id column: row numbers; paths relative to the table's folder; a column named by flag.
    (tmp_path / "pics").symlink_to(images)
    lines = [{"words": "x", "image": "pics/im2.png"}, {"words": "y", "image": "pics/im3.png"}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines))
    collection = read_collection(tmp_path / "t.jsonl", text_column="words")
    assert collection.ids == ["0", "1"] and [i.image for i in collection.items] == [
        str(tmp_path / "pics/im2.png"),
        str(tmp_path / "pics/im3.png"),
    ]
    with pytest.raises(ValueError, match="no text column 'nope'"):
        read_collection(tmp_path / "t.jsonl", text_column="nope")


def test_truncate_dim_keeps_the_first_dimensions_renormalised(tiny_random_model_dir, model, tmp_path):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS))
    assert embed(tiny_random_model_dir, tmp_path / "texts.txt", tmp_path / "out", "--truncate-dim", "16") == 0
    _, sources, matrix = store.read_embeddings(tmp_path / "out")
    full = encoded(model, sources)[:, :16]
    assert matrix.shape == (4, 16) and store.read_manifest(tmp_path / "out").settings["dim"] == 16
    np.testing.assert_allclose(matrix, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("precision", ["float16", "int8", "ubinary"])
def test_each_precision_is_sentence_transformers_quantization(tiny_random_model_dir, model, precision, tmp_path):
    from sentence_transformers.util.quantization import quantize_embeddings

    (tmp_path / "texts.txt").write_text("\n".join(TEXTS))
    flags = ["--precision", precision, "--shard-size", "2"]  # int8: every shard quantized with the saved ranges
    assert embed(tiny_random_model_dir, tmp_path / "texts.txt", tmp_path / "out", *flags) == 0
    _, sources, stored = store.read_embeddings(tmp_path / "out")
    floats = encoded(model, sources)
    assert stored.dtype == store.NUMPY_DTYPES[precision]
    if precision == "float16":
        np.testing.assert_allclose(stored.astype(np.float32), floats, atol=2e-3)
    elif precision == "ubinary":
        assert stored.shape[1] == floats.shape[1] // 8
        np.testing.assert_array_equal(stored, quantize_embeddings(floats, "ubinary"))
    else:  # int8: the calibration sample is the whole (small) collection, its ranges saved beside the shards
        ranges = store.load_calibration(tmp_path / "out")
        np.testing.assert_allclose(ranges, np.stack([floats.min(0), floats.max(0)]), atol=1e-5)
        expected = quantize_embeddings(floats, "int8", ranges=ranges)
        assert np.abs(stored.astype(int) - expected.astype(int)).max() <= 1  # a float rounding may tip one step


def test_a_folder_of_another_run_is_refused_naming_what_differs(tiny_random_model_dir, tmp_path, capsys):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS))
    assert embed(tiny_random_model_dir, tmp_path / "texts.txt", tmp_path / "out", "--shard-size", "2") == 0
    capsys.readouterr()
    assert embed(tiny_random_model_dir, tmp_path / "texts.txt", tmp_path / "out", "--truncate-dim", "16") == 2
    error = capsys.readouterr().err
    assert "setting truncate_dim (None there, 16 here)" in error and "setting dim" in error and "shard size" in error
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS).replace("dogs", "cats"))  # same ids, another text
    assert embed(tiny_random_model_dir, tmp_path / "texts.txt", tmp_path / "out", "--shard-size", "2") == 2
    assert "differs in input" in capsys.readouterr().err


def test_resume_embeds_only_the_missing_shard(tiny_random_model_dir, images, tmp_path, monkeypatch):
    collection = read_collection(images)
    options = EmbedOptions(shard_size=2, show_progress_bar=False)
    first = embed_collection(tiny_random_model_dir, collection, tmp_path / "out", options)
    assert (first.shards_before, first.shards_embedded, first.items_embedded) == (0, 4, 7)
    ids, _, before = store.read_embeddings(tmp_path / "out")
    store.shard_path(tmp_path / "out", 2).unlink()
    store.shard_path(tmp_path / "out", 1).with_suffix(".parquet.tmp").write_bytes(b"half")  # ignored, overwritten
    encoded_items = []
    original = ShardEmbedder.encode
    monkeypatch.setattr(
        ShardEmbedder, "encode", lambda self, items: encoded_items.extend(items) or original(self, items)
    )
    second = embed_collection(tiny_random_model_dir, collection, tmp_path / "out", options)
    assert (second.shards_before, second.shards_embedded, second.items_embedded) == (3, 1, 2)
    assert sorted(item.id for item in encoded_items) == ["im3.png", "im4.png"]  # shard 2 only
    again_ids, _, after = store.read_embeddings(tmp_path / "out")
    assert again_ids == ids
    np.testing.assert_array_equal(after, before)


@pytest.fixture
def with_corrupt_image(images, tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("im0.png", "im1.png", "im2.png"):
        (folder / name).write_bytes((images / name).read_bytes())
    (folder / "im1b.png").write_bytes(b"not a png at all")
    return folder


def test_a_corrupt_image_stops_the_run_naming_it(tiny_random_model_dir, with_corrupt_image, tmp_path, capsys):
    assert embed(tiny_random_model_dir, with_corrupt_image, tmp_path / "out", "--shard-size", "2") == 2
    error = capsys.readouterr().err
    assert "'im1b.png'" in error and "--skip-bad" in error
    rows = [json.loads(line) for line in (tmp_path / "out" / store.BAD_ITEMS).read_text().splitlines()]
    assert [row["id"] for row in rows] == ["im1b.png"] and "readable image" in rows[0]["error"]
    assert 1 not in store.finished_shards(tmp_path / "out")  # its shard (im1b.png, im2.png) is not written


def test_skip_bad_lists_the_item_and_keeps_the_rest(tiny_random_model_dir, model, with_corrupt_image, tmp_path):
    (with_corrupt_image / "gone.png").symlink_to(tmp_path / "missing.png")  # a missing file: found before embedding
    flags = ["--shard-size", "2", "--skip-bad"]
    assert embed(tiny_random_model_dir, with_corrupt_image, tmp_path / "out", *flags) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / store.BAD_ITEMS).read_text().splitlines()]
    assert [(row["id"], row["source"]) for row in rows] == [
        ("gone.png", str(with_corrupt_image / "gone.png")),
        ("im1b.png", str(with_corrupt_image / "im1b.png")),
    ]
    assert "not found" in rows[0]["error"] and "readable image" in rows[1]["error"]
    ids, sources, matrix = store.read_embeddings(tmp_path / "out")
    assert ids == ["im0.png", "im1.png", "im2.png"]
    np.testing.assert_allclose(matrix, encoded(model, [{"image": s} for s in sources]), atol=1e-5)


def test_a_folder_of_another_model_is_refused(tiny_random_model_dir, tmp_path, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    other = tmp_path / "other-model"
    shutil.copytree(tiny_random_model_dir, other)
    weights = load_file(other / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 0.01  # one tensor changed: another fingerprint
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS))
    assert embed(tiny_random_model_dir, tmp_path / "texts.txt", tmp_path / "out") == 0
    capsys.readouterr()
    assert embed(other, tmp_path / "texts.txt", tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert "differs in model" in error and "setting" not in error


def test_csv_and_saved_dataset_tables(images, tmp_path):
    import datasets

    (tmp_path / "t.csv").write_text(f"id,text,image\nx,a dog,{images}/im0.png\ny,,{images}/im1.png\nz,only text,\n")
    collection = read_collection(tmp_path / "t.csv")
    assert collection.ids == ["x", "y", "z"]
    assert [item.encoder_input() for item in collection.items] == [
        {"image": str(images / "im0.png"), "text": "a dog"},
        {"image": str(images / "im1.png")},
        "only text",
    ]
    table = datasets.Dataset.from_dict(
        {"caption": ["p", "q"], "image": [str(images / "im2.png"), str(images / "im3.png")]}
    )
    table.cast_column("image", datasets.Image()).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match="row 0: the image column holds media bytes, and its path 'im2.png'"):
        read_collection(tmp_path / "saved")  # save_to_disk keeps the bytes and the file names only
    collection = read_collection(tmp_path / "saved", media_root=images)
    assert collection.kind == "table" and collection.ids == ["0", "1"]
    assert [(i.text, i.image) for i in collection.items] == [
        ("p", str(images / "im2.png")),
        ("q", str(images / "im3.png")),
    ]
    rows = {"text": ["a"], "image": [{"bytes": (images / "im0.png").read_bytes(), "path": None}]}
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(str(tmp_path / "bytes.parquet"))
    with pytest.raises(ValueError, match="row 0: the image column holds media bytes, and its path None"):
        read_collection(tmp_path / "bytes.parquet")
