"""MMEB-V2 evaluation of a model whose prompt gives the instruction its own (system) turn: the items the Qwen3-VL-
Embedding evaluation scripts build (query instruction apart, candidates without one), embedded as the user-level API
embeds `{"text", "image"/"video"}` with `prompt=instruction`, chosen from the model's prompt format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_sentence_model, write_clip, write_rows
from PIL import Image

from vlm2vec_hf.evaluation.command import evaluate_and_report, model_prompt_style
from vlm2vec_hf.evaluation.data import load_mmeb_eval
from vlm2vec_hf.evaluation.embedding_cache import item_key
from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator, encoder_input

QA = (
    "Given a video and a question, select the most accurate answer from the provided candidates. Return only the "
    "exact text of your chosen answer."
)


@pytest.fixture()
def v2_root(tmp_path) -> Path:
    """Image (OK-VQA, WebQA), visual-document (ViDoRe_docvqa) and video (MSR-VTT, UCF101, EgoSchema, Video-MME,
    MomentSeeker) sets in their MMEB-V2 layouts; images and clips under the same root."""
    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (40, 40), colour).save(tmp_path / name)
    a, b = (str(write_clip(tmp_path, name, 2, 50 * n).relative_to(tmp_path)) for n, name in enumerate("ab"))
    write_rows(
        tmp_path,
        "OK-VQA",
        [
            {
                "qry_inst": "<|image_1|> Represent the given image with the following question: ",
                "qry_text": "What colour?",
                "qry_img_path": "a.png",
                "tgt_inst": "",
                "tgt_text": ["red", "blue"],
                "tgt_img_path": ["", ""],
            }
        ],
    )
    write_rows(
        tmp_path,
        "WebQA",
        [
            {
                "qry_inst": "Find a Wikipedia image that answers this question: ",
                "qry_text": "Which flag is red?",
                "qry_img_path": "",
                "tgt_inst": "<|image_1|> Represent the given Wikipedia image with related text information: ",
                "tgt_text": ["  A red square. ", "A blue one."],
                "tgt_img_path": ["a.png", "b.png"],
            }
        ],
    )
    docs = tmp_path / "ViDoRe_docvqa"
    docs.mkdir()
    import pandas as pd

    pd.DataFrame([{"query-id": "q", "query": "the red page"}]).to_parquet(docs / "queries.parquet")
    pd.DataFrame([{"corpus-id": 1, "image": "a.png"}, {"corpus-id": 2, "image": "b.png"}]).to_parquet(
        docs / "corpus.parquet"
    )
    pd.DataFrame([{"query-id": "q", "corpus-id": 1, "score": 1}]).to_parquet(docs / "qrels.parquet")
    write_rows(tmp_path, "MSR-VTT", [{"qry_text": "a dark clip", "qry_video": "", "tgt_video": [a]}])
    write_rows(tmp_path, "UCF101", [{"qry_text": "", "qry_video": b, "tgt_text": ["run", "swim"], "gold_index": 1}])
    write_rows(
        tmp_path, "EgoSchema", [{"qry_text": "Why?", "qry_video": a, "tgt_text": ["A. it", "B. that"], "gold_index": 0}]
    )
    write_rows(
        tmp_path, "Video-MME", [{"qry_text": "Which?", "qry_video": a, "tgt_text": ["A. one", "two"], "gold_index": 0}]
    )
    write_rows(
        tmp_path,
        "MomentSeeker",
        [{"qry_text": "the start", "qry_image": "b.png", "qry_video": "", "tgt_video": [a, b], "gold_index": [0]}],
    )
    return tmp_path


def test_system_style_items_are_the_qwen3_scripts_inputs(v2_root):
    loaded = {d.name: d for d in load_mmeb_eval(v2_root, v2_root, prompt_style="system")}
    image = lambda name: str(v2_root / name)  # noqa: E731
    clip = lambda name: str(v2_root / "frames" / name)  # noqa: E731
    okvqa = loaded["OK-VQA"]
    # `<|image_1|>` removed and stripped from `qry_inst`; the text and image apart; candidates with no instruction.
    assert okvqa.queries == [
        ("What colour?", image("a.png"), "", "Represent the given image with the following question:")
    ]
    assert okvqa.candidates == [[("red", "", "", ""), ("blue", "", "", "")]]
    # Text-to-image candidates: the image with its caption stripped; the target instruction is not used.
    assert loaded["WebQA"].candidates[0] == [
        ("A red square.", image("a.png"), "", ""),
        ("A blue one.", image("b.png"), "", ""),
    ]
    docs = loaded["ViDoRe_docvqa"]
    assert docs.queries == [("the red page", "", "", "Find a document image that matches the given query.")]
    assert docs.corpus == [("", image("a.png"), "", ""), ("", image("b.png"), "", "")]
    assert loaded["MSR-VTT"].queries == [
        ("a dark clip", "", "", "Find a video that contains the following visual content.")
    ]
    assert loaded["MSR-VTT"].corpus == [("", "", clip("a"), "")]
    assert loaded["UCF101"].queries == [
        ("", "", clip("b"), "What activities or sports are being performed by the person in the video?")
    ]
    assert loaded["UCF101"].corpus == [("run", "", "", ""), ("swim", "", "", "")]
    # EgoSchema: a space between question and options (VLM2Vec has none); Video-MME keeps an unlettered option.
    assert loaded["EgoSchema"].queries == [("Why? A. it B. that", "", clip("a"), QA)]
    assert loaded["EgoSchema"].candidates == [[("it", "", "", ""), ("that", "", "", "")]]
    assert loaded["Video-MME"].queries == [("Which?\nA. one\ntwo", "", clip("a"), QA)]
    assert loaded["Video-MME"].candidates == [[("one", "", "", ""), ("two", "", "", "")]]
    assert loaded["MomentSeeker"].queries == [
        ("the start", image("b.png"), "", "Select the video clip that aligns with the given text and image.")
    ]
    inline = {d.name: d for d in load_mmeb_eval(v2_root, v2_root, names=["EgoSchema", "OK-VQA"])}
    assert inline["EgoSchema"].queries[0][0].endswith("Why?A. it B. that")
    assert inline["OK-VQA"].queries[0][0].startswith("<|image_1|>\nRepresent")


def test_system_items_become_chat_messages_and_keep_their_own_cache_keys():
    query = ("Why?", "", "clip", "Answer.")
    assert encoder_input(query) == [
        {"role": "system", "content": "Answer."},
        {"role": "user", "content": [{"type": "video", "video": "clip"}, {"type": "text", "text": "Why?"}]},
    ]
    assert encoder_input(("", "a.png", "", "")) == [{"role": "user", "content": [{"type": "image", "image": "a.png"}]}]
    keys = {item_key(item) for item in [("red", ""), ("red", "", "", ""), ("red", "", "", "Say.")]}
    assert len(keys) == 3


def test_a_prompt_style_outside_the_two_is_refused(v2_root):
    with pytest.raises(ValueError, match="prompt_style must be one of"):
        load_mmeb_eval(v2_root, v2_root, names=["OK-VQA"], prompt_style="chat")


@pytest.mark.slow
def test_qwen3_eval_embeds_what_the_user_api_embeds_and_records_the_style(qwen3vl_model_dir, v2_root, tmp_path):
    model = load_sentence_model(qwen3vl_model_dir)
    assert model_prompt_style(model) == "system"
    names = ["OK-VQA", "UCF101"]
    loaded = load_mmeb_eval(v2_root, v2_root, names=names, prompt_style="system")
    okvqa, ucf = loaded
    items = [okvqa.queries[0], okvqa.candidates[0][0], ucf.queries[0]]
    embedded, _counts = MMEBEvaluator(loaded, protocol="v2").embed(model, items)
    image, clip = str(v2_root / "a.png"), str(v2_root / "frames" / "b")
    expected = np.stack(
        [
            model.encode(
                {"text": "What colour?", "image": image},
                prompt="Represent the given image with the following question:",
                normalize_embeddings=True,
            ),
            model.encode("red", normalize_embeddings=True),  # no instruction: the default one
            model.encode(
                {"video": clip},
                prompt="What activities or sports are being performed by the person in the video?",
                normalize_embeddings=True,
            ),
        ]
    )
    assert np.abs(embedded - expected).max() < 1e-5
    inline_query = load_mmeb_eval(v2_root, v2_root, names=["OK-VQA"])[0].queries[0]
    inline, _ = MMEBEvaluator(loaded, protocol="v2").embed(model, [inline_query])
    assert np.abs(inline[0] - expected[0]).max() > 1e-3  # the style changes what is embedded
    results, paths = evaluate_and_report(model, v2_root, v2_root, tmp_path / "report", "q3", subsets=names)
    assert results["prompt_style"] == "system"
    assert json.loads(paths["json"].read_text())["prompt_style"] == "system"
    assert "instructions in the system turn" in paths["markdown"].read_text()


@pytest.mark.slow
def test_eval_cli_picks_the_style_and_compares_with_published_group_means(qwen3vl_model_dir, v2_root, tmp_path, capsys):
    from vlm2vec_hf.cli import main

    out = tmp_path / "report"
    argv = ["eval", "--model", str(qwen3vl_model_dir), "--data", str(v2_root), "--image-dir", str(v2_root)]
    argv += ["--subsets", "OK-VQA", "UCF101", "--protocol", "v2", "--out", str(out)]
    assert main([*argv, "--compare", "Qwen/Qwen3-VL-Embedding-2B"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "results.json").read_text())
    assert report["prompt_style"] == "system"
    # The README table's 2B row: I-QA 74.3, Image 75.0, V-CLS 71.9, Video 61.9, All 73.2 (means over whole groups).
    assert report["published"]["group_means"] == {
        "I-QA": 74.3,
        "Image": 75.0,
        "V-CLS": 71.9,
        "Video": 61.9,
        "All": 73.2,
    }
    ours = 100 * report["groups"]["Video"]["score"]
    assert f"{'Video':<32} {ours:7.1f} {61.9:12.1f} {ours - 61.9:+7.1f}" in printed
    markdown = (out / "results.md").read_text()
    assert "| Qwen/Qwen3-VL-Embedding-2B (published, whole groups) | 74.3 | 75.0 | 71.9 | 61.9 | 73.2 |" in markdown
    assert main([*argv, "--prompt-style", "inline"]) == 0
    assert json.loads((out / "results.json").read_text())["prompt_style"] == "inline"
    with pytest.raises(KeyError, match="summary-only models"):
        main([*argv, "--compare", "Qwen3-VL-Embedding-4B"])


@pytest.mark.slow
def test_a_vlm2vec_model_keeps_the_inline_style(fixture_model_dir_v2):
    assert model_prompt_style(load_sentence_model(fixture_model_dir_v2)) == "inline"
