"""Which sub-folders of `--data` are evaluation datasets: images, caches and files beside the datasets are skipped
(and listed), data files are found in every layout the `datasets` library resolves (`Dataset.push_to_hub` shards
included), and a named or an empty dataset set is still a clear error."""

from __future__ import annotations

import json

import datasets
import pytest
from PIL import Image

from vlm2vec_hf.cli import main
from vlm2vec_hf.evaluation import data
from vlm2vec_hf.evaluation.data import EvalDataError, load_mmeb_eval

V1_ROW = {
    "qry_text": "<|image_1|> Represent the given image.",
    "qry_img_path": "a.png",
    "tgt_text": ["cat", "dog"],
    "tgt_img_path": ["", ""],
}
SHARD = "test-00000-of-00001.parquet"  # the file name `Dataset.push_to_hub` writes


def write_table(path, rows: list[dict]) -> None:
    """Write `rows` to `path` (parquet or JSON lines by suffix) as `datasets` would, creating the folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = datasets.Dataset.from_list(rows)
    if path.suffix == ".jsonl":
        table.to_json(path, lines=True)
    else:
        table.to_parquet(path)


def write_images(folder) -> None:
    """An image root as the README lays it out: pictures only, some in sub-folders."""
    (folder / "VOC2007").mkdir(parents=True)
    for name in ("a.png", "b.png", "VOC2007/test_0001.png"):
        Image.new("RGB", (56, 56), "red").save(folder / name)


def write_hub_cache(root) -> None:
    """What `huggingface_hub.snapshot_download(local_dir=root)` leaves beside the files it downloads."""
    cache = root / ".cache" / "huggingface"
    (cache / "download" / "VOC2007").mkdir(parents=True)
    (cache / ".gitignore").write_text("*\n")
    (cache / "download" / "VOC2007" / f"{SHARD}.metadata").write_text("0123abcd\n0123abcd\n1700000000.0\n")


def write_visdoc(folder, name_of: dict[str, str]) -> None:
    """A two-page BEIR-style set whose `queries` / `corpus` / `qrels` tables go to `folder / name_of[part]`."""
    tables = {
        "queries": [{"query-id": "q1", "query": "total revenue"}],
        "corpus": [{"corpus-id": 7, "image": "a.png"}, {"corpus-id": 8, "image": "b.png"}],
        "qrels": [{"query-id": "q1", "corpus-id": 8, "score": 1}],
    }
    for part, rows in tables.items():
        write_table(folder / name_of[part], rows)


@pytest.fixture()
def root(tmp_path):
    """`--data` as people have it: datasets beside `images/`, a Hub download cache and a README."""
    root = tmp_path / "MMEB-eval"
    write_table(root / "VOC2007" / SHARD, [V1_ROW])
    write_visdoc(root / "ViDoRe_docvqa", {part: f"{part}.parquet" for part in data.VISDOC_FILES})
    write_images(root / "images")
    write_hub_cache(root)
    (root / "README.md").write_text("# MMEB-eval\n")
    (root / "VOC2007" / "README.md").write_text("# VOC2007\n")
    return root


def test_folders_without_data_are_skipped_and_listed(root):
    loaded = load_mmeb_eval(root, root / "images")
    assert [dataset.name for dataset in loaded] == ["VOC2007", "ViDoRe_docvqa"]
    assert [(s.name, s.reason) for s in loaded.skipped] == [(".cache", "hidden folder"), ("images", "no test data")]
    assert [str(s) for s in loaded.skipped] == ["Skipped .cache/: hidden folder", "Skipped images/: no test data"]
    assert data.discover_datasets(root, "test") == (["VOC2007", "ViDoRe_docvqa"], loaded.skipped)


def test_split_files_resolve_in_every_standard_layout(tmp_path):
    forms = {
        "A_flat": "test.parquet",
        "B_split_folder": "test/0000.parquet",
        "C_hub_shards": "data/test-00000-of-00001.parquet",
        "D_shard_in_dataset_folder": SHARD,
        "E_jsonl": "test.jsonl",
        "F_jsonl_folder": "test/part-0.jsonl",
    }
    root = tmp_path / "eval"
    for name, file in forms.items():
        write_table(root / name / file, [{**V1_ROW, "gold_index": 0}, {**V1_ROW, "gold_index": 1}])
    write_table(root / "G_train_only" / "train.parquet", [V1_ROW])  # another split: no test data
    write_images(tmp_path / "images")
    loaded = load_mmeb_eval(root, tmp_path / "images")
    assert [dataset.name for dataset in loaded] == list(forms)
    assert all(dataset.relevance == [{0: 1.0}, {1: 1.0}] for dataset in loaded)
    assert [(s.name, s.reason) for s in loaded.skipped] == [("G_train_only", "no test data")]


@pytest.mark.parametrize(
    "name_of",
    [
        {part: f"{part}/{SHARD}" for part in data.VISDOC_FILES},  # push_to_hub(config_name=part)
        {part: f"{part}/test-0000-of-0001.parquet" for part in data.VISDOC_FILES},
        {part: f"{part}-00000-of-00001.parquet" for part in data.VISDOC_FILES},
        {part: f"data/{part}-00000-of-00001.parquet" for part in data.VISDOC_FILES},
    ],
    ids=["part-folders", "part-folders-4-digits", "part-shards", "data-part-shards"],
)
def test_visual_documents_in_shard_named_files(tmp_path, name_of):
    write_images(tmp_path / "images")
    write_visdoc(tmp_path / "eval" / "ViDoRe_docvqa", name_of)
    (dataset,) = load_mmeb_eval(tmp_path / "eval", tmp_path / "images")
    assert dataset.layout == "visdoc" and dataset.relevance == [{1: 1.0}]
    assert [path for _, path in dataset.corpus] == [str(tmp_path / "images" / n) for n in ("a.png", "b.png")]


def test_a_named_dataset_without_data_is_an_error(root):
    assert "images" not in data.discover_datasets(root, "test")[0]
    with pytest.raises((FileNotFoundError, EvalDataError), match="no 'test' data for dataset 'images'"):
        load_mmeb_eval(root, root / "images", names=["images"])
    write_table(root / "Later" / "train.parquet", [V1_ROW])
    with pytest.raises((FileNotFoundError, EvalDataError), match="no 'test' data for dataset 'Later'"):
        load_mmeb_eval(root, root / "images", names=["VOC2007", "Later"])


def test_a_root_without_any_dataset_says_so_and_lists_what_it_skipped(tmp_path):
    root = tmp_path / "downloaded"
    write_images(root / "images")
    write_hub_cache(root)
    (root / "README.md").write_text("# nothing here yet\n")
    message = r"no evaluation dataset \(no 'test' data\) under .*downloaded.*\.cache/ \(hidden folder\).*images/"
    with pytest.raises(FileNotFoundError, match=message):
        load_mmeb_eval(root, root / "images")


def test_eval_cli_prints_the_skipped_folders(tiny_random_model_dir, root, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["eval", "--model", str(tiny_random_model_dir), "--data", str(root), "--image-dir", str(root / "images")]
    assert main([*args, "--out", str(out), "--protocol", "v2"]) == 0
    printed = capsys.readouterr().out
    assert "Skipped .cache/: hidden folder\n" in printed and "Skipped images/: no test data\n" in printed
    results = json.loads((out / "results.json").read_text())
    assert set(results["datasets"]) == {"VOC2007", "ViDoRe_docvqa"}
    assert results["skipped"] == [
        {"name": ".cache", "reason": "hidden folder"},
        {"name": "images", "reason": "no test data"},
    ]


def test_a_test_image_folder_beside_test_parquet_does_not_hide_the_table(tmp_path):
    """`datasets` tries the `<split>/` folder pattern before `<split>.parquet`: a folder of test images beside the
    table used to resolve to no data at all."""
    root = tmp_path / "eval"
    write_table(root / "VOC2007" / "test.parquet", [V1_ROW])
    (root / "VOC2007" / "test").mkdir()
    Image.new("RGB", (56, 56), "red").save(root / "VOC2007" / "test" / "a.png")
    write_images(tmp_path / "images")
    assert data.split_files(root / "VOC2007", "test") == [str((root / "VOC2007" / "test.parquet").resolve())]
    assert data.discover_datasets(root) == (["VOC2007"], [])
    (loaded,) = load_mmeb_eval(root, tmp_path / "images")
    assert loaded.name == "VOC2007" and len(loaded.queries) == 1
