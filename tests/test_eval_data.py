"""Loading MMEB evaluation data in its three layouts, and clear errors for bad rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from vlm2vec_hf.evaluation.data import EvalDataError, load_mmeb_eval


@pytest.fixture()
def image_root(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (56, 56), "red").save(root / name)
    return root


def write(root, name, rows, file="test.parquet"):
    (root / name).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / name / file)


V1_ROW = {
    "qry_text": "<|image_1|> Represent the given image.",
    "qry_img_path": "a.png",
    "tgt_text": ["x", "y"],
    "tgt_img_path": ["", ""],
}


def test_v1_rows_keep_their_prompts_with_mmebs_image_tag(tmp_path, image_root):
    write(tmp_path / "eval", "VOC2007", [V1_ROW])
    (dataset,) = load_mmeb_eval(tmp_path / "eval", image_root)
    assert dataset.queries == [("<|image_1|> Represent the given image.", str(image_root / "a.png"))]
    assert dataset.candidates == [[("x", ""), ("y", "")]] and dataset.relevance == [{0: 1.0}]
    assert dataset.layout == "v1" and dataset.eval_type == "local"


def test_v2_rows_are_rebuilt_with_the_v2_rules(tmp_path, image_root):
    row = {
        "qry_inst": "<|image_1|> Represent the given image with the following question: ",
        "qry_text": "Why?",
        "qry_img_path": "a.png",
        "tgt_inst": "",
        "tgt_text": ["because", "no"],
        "tgt_img_path": ["", ""],
    }
    write(tmp_path / "eval", "OK-VQA", [row])
    (dataset,) = load_mmeb_eval(tmp_path / "eval", image_root)
    assert dataset.queries[0][0] == "<|image_1|>\nRepresent the given image with the following question: Why?\n"
    assert dataset.task_type == "image_qa" and dataset.candidates[0] == [("because", ""), ("no", "")]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"qry_img_path": "missing.png"}, r"VOC2007 row 1: image file .*missing\.png.* does not exist"),
        ({"tgt_img_path": ["", "gone.png"]}, r"VOC2007 row 1: image file .*gone\.png"),
        ({"tgt_text": [], "tgt_img_path": []}, r"VOC2007 row 1: empty candidate list"),
        ({"gold_index": 5}, r"VOC2007 row 1: gold index 5 out of range for 2 candidates"),
        ({"tgt_img_path": ["a.png"]}, r"VOC2007 row 1: 2 candidate texts but 1 image paths"),
    ],
)
def test_bad_rows_name_dataset_and_row(tmp_path, image_root, change, message):
    good = {**V1_ROW, "gold_index": 0}
    write(tmp_path / "eval", "VOC2007", [good, {**good, **change}])
    with pytest.raises(EvalDataError, match=message):
        load_mmeb_eval(tmp_path / "eval", image_root)


def test_visual_documents_rank_globally_and_check_qrels(tmp_path, image_root):
    folder = tmp_path / "eval" / "ViDoRe_docvqa"
    write(tmp_path / "eval", "ViDoRe_docvqa", [{"query-id": "q1", "query": "total revenue"}], "queries.parquet")
    write(
        tmp_path / "eval",
        "ViDoRe_docvqa",
        [{"corpus-id": 7, "image": "a.png"}, {"corpus-id": 8, "image": "b.png"}],
        "corpus.parquet",
    )
    write(tmp_path / "eval", "ViDoRe_docvqa", [{"query-id": "q1", "corpus-id": 8, "score": 2}], "qrels.parquet")
    (dataset,) = load_mmeb_eval(tmp_path / "eval", image_root)
    assert dataset.eval_type == "global" and dataset.relevance == [{1: 2.0}]
    assert dataset.queries == [("Find a document image that matches the given query: total revenue", "")]
    assert dataset.corpus[0] == (
        "<|image_1|> Understand the content of the provided document image.",
        str(image_root / "a.png"),
    )
    pd.DataFrame([{"query-id": "q1", "corpus-id": 9, "score": 1}]).to_parquet(folder / "qrels.parquet")
    with pytest.raises(EvalDataError, match=r"ViDoRe_docvqa qrels row 0: corpus-id '9' is not in the corpus"):
        load_mmeb_eval(tmp_path / "eval", image_root)


def test_unknown_dataset_name_is_reported(tmp_path, image_root):
    write(tmp_path / "eval", "VOC2007", [V1_ROW])
    with pytest.raises(FileNotFoundError, match="'Nope' not found"):
        load_mmeb_eval(tmp_path / "eval", image_root, names=["Nope"])


def test_visual_documents_with_embedded_page_images_as_on_the_hub(tmp_path, image_root):
    import datasets

    folder = tmp_path / "eval" / "ViDoRe_tatdqa"
    folder.mkdir(parents=True)
    pages = [Image.new("RGB", (60, 80), color) for color in ("white", "gray")]
    features = datasets.Features({"corpus-id": datasets.Value("int64"), "image": datasets.Image()})
    datasets.Dataset.from_dict({"corpus-id": [3, 4], "image": pages}, features=features).to_parquet(
        folder / "corpus.parquet"
    )
    pd.DataFrame([{"query-id": "q", "query": "net income"}]).to_parquet(folder / "queries.parquet")
    pd.DataFrame([{"query-id": "q", "corpus-id": 4, "score": 1}]).to_parquet(folder / "qrels.parquet")
    (dataset,) = load_mmeb_eval(tmp_path / "eval", image_root)
    paths = [path for _, path in dataset.corpus]
    assert [Path(p).parent for p in paths] == [folder / "pages"] * 2 and dataset.relevance == [{1: 1.0}]
    assert Image.open(paths[1]).convert("RGB").getpixel((0, 0)) == (128, 128, 128)
    stamp = Path(paths[0]).stat().st_mtime_ns
    load_mmeb_eval(tmp_path / "eval", image_root)  # pages are written once
    assert Path(paths[0]).stat().st_mtime_ns == stamp
