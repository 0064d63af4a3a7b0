"""The published MMEB-V2 video tables (`VLM2Vec/<dataset>` and the QA sets' repos) converted to the video eval
layout: synthetic raw rows in each dataset's own columns, converted, written, loaded by `load_mmeb_eval`; the
prompts, clips and golds are the ones the reference's parsers build from such rows, written out by hand."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import pytest
from PIL import Image

from vlm2vec_hf.cli import main
from vlm2vec_hf.evaluation.data import EvalDataError, load_mmeb_eval
from vlm2vec_hf.evaluation.video_tables import SPECS, convert_video_table
from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_VIDEO_TAG

VID = MMEB_VIDEO_TAG  # the data layer's video tag; the processor maps it to its backbone's video token
CLIP = f"{VID} Understand the content of the provided video."
QA = (
    f"{VID} Given a video and a question, select the most accurate answer from the provided candidates. "
    "Return only the exact text of your chosen answer. Question:  "
)
FRAMES = "video-tasks/frames"


def make_clip(root: Path, relative: str, frames: int = 2) -> Path:
    """A frame folder of tiny JPEGs, as the MMEB-V2 frames are stored (`0000.jpeg`, ...)."""
    folder = root / relative
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        Image.new("RGB", (16, 16), (40 * index, 90, 160)).save(folder / f"{index:04d}.jpeg")
    return folder


def convert_and_load(base: Path, name: str, rows: list[dict], clips: list[str], **options):
    """Make the clip folders under `base`, convert `rows`, write `<base>/eval/<name>/test.parquet`, load it with
    `base` as the image root."""
    for relative in clips:
        make_clip(base, relative)
    table = convert_video_table(name, rows, **options)
    (base / "eval" / name).mkdir(parents=True, exist_ok=True)
    table.to_parquet(str(base / "eval" / name / "test.parquet"))
    return load_mmeb_eval(base / "eval", base, names=[name])[0]


def test_every_published_video_dataset_has_a_spec():
    assert len(SPECS) == 18


# ---- retrieval: caption -> the row's own clip, one global pool -----------------------------------------------------

RETRIEVAL = {
    "MSR-VTT": (
        [
            {"video_id": "video7010", "video": "TestVideo/video7010.mp4", "caption": "a man is singing on stage"},
            {"video_id": "video7011", "video": "TestVideo/video7011.mp4", "caption": "a dog runs on a beach"},
        ],
        "Find a video that contains the following visual content: a man is singing on stage",
        ["video_ret/MSR-VTT/video7010", "video_ret/MSR-VTT/video7011"],
    ),
    "MSVD": (  # the first of the captions
        [
            {"video_id": "-4wsuPCjDBc_5_15", "video": "-4wsuPCjDBc_5_15.avi", "caption": ["a cat plays", "a kitten"]},
            {"video_id": "0lh_UWF9ZP4_62_69", "video": "0lh_UWF9ZP4_62_69.avi", "caption": ["a man cooks"]},
        ],
        "Find the video snippet that corresponds to the given summary: a cat plays",
        ["video_ret/MSVD/-4wsuPCjDBc_5_15", "video_ret/MSVD/0lh_UWF9ZP4_62_69"],
    ),
    "DiDeMo": (  # the clip is the file stem of `video`
        [
            {"video": "videos/12090392@N02_13482799053_87ef417396.mp4", "caption": "a girl jumps into the water"},
            {"video": "videos/10015567@N08_3655084291_d8b58466fa.mov", "caption": "the camera pans left"},
        ],
        "Find a video that includes the following described scenes: a girl jumps into the water",
        ["video_ret/DiDeMo/12090392@N02_13482799053_87ef417396", "video_ret/DiDeMo/10015567@N08_3655084291_d8b58466fa"],
    ),
    "VATEX": (
        [
            {"videoID": "G9zN5TTuGO4_000179_000189", "enCap": ["a woman dances", "someone dances"]},
            {"videoID": "3Y5bDhLqvL8_000012_000022", "enCap": ["a boy skates"]},
        ],
        "Select a video that fits the description provided: a woman dances",
        ["video_ret/VATEX/G9zN5TTuGO4_000179_000189", "video_ret/VATEX/3Y5bDhLqvL8_000012_000022"],
    ),
    "YouCook2": (
        [
            {"id": "GLd3aX16zBg_0", "video_path": "validation/101/GLd3aX16zBg.mp4", "sentence": "spread margarine"},
            {"id": "GLd3aX16zBg_1", "video_path": "validation/101/GLd3aX16zBg.mp4", "sentence": "add the cheese"},
        ],
        "Find a video that demonstrates the following action while making a recipe: spread margarine",
        ["video_ret/YouCook2/GLd3aX16zBg_0", "video_ret/YouCook2/GLd3aX16zBg_1"],
    ),
}


@pytest.mark.parametrize("name", sorted(RETRIEVAL))
def test_retrieval_tables_give_caption_queries_and_a_pool_of_their_clips(tmp_path, name):
    rows, first_query, clips = RETRIEVAL[name]
    clips = [f"{FRAMES}/{clip}" for clip in clips]
    dataset = convert_and_load(tmp_path, name, rows, clips)
    assert dataset.task_type == "video_ret" and dataset.eval_type == "global"
    assert dataset.queries[0] == (first_query, "")
    assert dataset.corpus == [(CLIP, "", str(tmp_path / clip)) for clip in clips]
    assert dataset.relevance == [{0: 1.0}, {1: 1.0}]


# ---- classification ----------------------------------------------------------------------------------------------


def test_classification_ranks_the_rows_labels_then_the_label_list(tmp_path):
    rows = [
        {"video_id": "v_Biking_g01_c01", "pos_text": "Biking"},
        {"video_id": "v_Archery_g02_c03", "pos_text": "Archery"},
    ]
    clips = [f"{FRAMES}/video_cls/UCF101/v_Biking_g01_c01", f"{FRAMES}/video_cls/UCF101/v_Archery_g02_c03"]
    ucf = convert_and_load(tmp_path, "UCF101", rows, clips, labels=["Archery", "Biking", "Diving"])
    query = f"{VID} What activities or sports are being performed by the person in the video?"
    assert ucf.queries == [(query, "", str(tmp_path / clips[0])), (query, "", str(tmp_path / clips[1]))]
    # the reference's pool: each row's label in row order, then the rest of its label list
    assert ucf.eval_type == "global" and ucf.corpus == [("Biking", ""), ("Archery", ""), ("Diving", "")]
    assert ucf.relevance == [{0: 1.0}, {1: 1.0}]


def test_classification_without_the_label_list_warns_how_many_labels_are_missing(tmp_path, caplog):
    rows = [{"video_id": "-3B32lodo2M_000059_000069", "pos_text": "waiting_in_line"}]
    clips = [f"{FRAMES}/video_cls/K700/-3B32lodo2M_000059_000069"]
    with caplog.at_level(logging.WARNING):
        k700 = convert_and_load(tmp_path, "K700", rows, clips)
    assert "K700: the label pool has 1 labels, the reference ranks 700" in caplog.text
    assert k700.queries[0][0] == f"{VID} Recognize the category of the video content."
    assert k700.corpus == [("waiting_in_line", "")]
    hub_named = convert_video_table("Kinetics-700", rows)  # the Hub repo's name
    assert hub_named["qry_video"] == [clips[0]]


@pytest.mark.parametrize(
    ("name", "instruction", "label"),
    [
        ("HMDB51", "What actions or objects interactions are the person in the video doing?", "ride_bike"),
        ("Breakfast", "Recognize the breakfast type that the person is cooking in the video. ", "pancake"),
    ],
)
def test_hmdb51_and_breakfast_queries(tmp_path, name, instruction, label):
    rows = [{"video_id": "P03_cam01_P03_pancake", "pos_text": label}]
    dataset = convert_and_load(tmp_path, name, rows, [f"{FRAMES}/video_cls/{name}/P03_cam01_P03_pancake"])
    assert dataset.queries[0][0] == f"{VID} {instruction}"
    assert dataset.corpus == [(label, "")] and dataset.relevance == [{0: 1.0}]


def test_ssv2_ranks_each_rows_own_candidates_first_1000_rows(tmp_path):
    rows = [
        {"video_id": 74225, "pos_text": "Opening something", "neg_text": ["Closing something", "Opening something"]},
        {"video_id": 116154, "pos_text": "Folding something", "neg_text": ["Folding something", "Tearing something"]},
    ]
    clips = [f"{FRAMES}/video_cls/SSv2/74225", f"{FRAMES}/video_cls/SSv2/116154"]
    ssv2 = convert_and_load(tmp_path, "SmthSmthV2", rows, clips)
    query = f"{VID} What actions or object interactions are being performed by the person in the video?"
    assert ssv2.eval_type == "local" and ssv2.queries[0] == (query, "", str(tmp_path / clips[0]))
    assert ssv2.candidates == [
        [("Closing something", ""), ("Opening something", "")],
        [("Folding something", ""), ("Tearing something", "")],
    ]
    assert ssv2.relevance == [{1: 1.0}, {0: 1.0}]
    assert len(convert_video_table("SmthSmthV2", rows[:1] * 1001)) == 1000  # `num_sample_per_subset: 1000`


# ---- QA ----------------------------------------------------------------------------------------------------------


def test_qa_tables_give_the_parsers_questions_options_and_answers(tmp_path):
    nextqa = convert_and_load(
        tmp_path,
        "NExTQA",
        [
            {
                "video": 4010069381,
                "question": "what does the man do after walking down the street",
                "answer": 2,
                "qid": 6,
                "type": "TN",
                **dict(zip(["a0", "a1", "a2", "a3", "a4"], ["stands", "looks", "rides", "talks", "runs"])),
            }
        ],
        [f"{FRAMES}/video_qa/NExTQA/4010069381"],
    )
    assert nextqa.queries[0] == (
        f"{QA}what does the man do after walking down the street\nOptions:\n(A) stands\n(B) looks\n(C) rides\n"
        "(D) talks\n(E) runs",
        "",
        str(tmp_path / FRAMES / "video_qa/NExTQA/4010069381"),
    )
    assert nextqa.candidates == [[("stands", ""), ("looks", ""), ("rides", ""), ("talks", ""), ("runs", "")]]
    assert nextqa.relevance == [{2: 1.0}] and nextqa.eval_type == "local"

    mme = convert_and_load(
        tmp_path,
        "Video-MME",
        [
            {
                "videoID": "fFjv93ACGo8",
                "question": "Which animal appears in the video?",
                "options": ["A. a dog", "B. a cat", "C. a bird", "D. a horse"],
                "answer": "C",
                "question_id": "001-1",
                "domain": "Knowledge",
                "sub_category": "Humanity & History",
            }
        ],
        [f"{FRAMES}/video_qa/Video-MME/fFjv93ACGo8"],
    )
    assert mme.queries[0][0] == f"{QA}Which animal appears in the video?\nA. a dog\nB. a cat\nC. a bird\nD. a horse"
    assert mme.candidates == [[("a dog", ""), ("a cat", ""), ("a bird", ""), ("a horse", "")]]
    assert mme.relevance == [{2: 1.0}]

    ego = convert_and_load(
        tmp_path,
        "EgoSchema",
        [
            {
                "video_idx": "001934bb-81bd-4cd8-a574-0472ef3f6678",
                "question": "What is c doing?",
                "answer": "1",
                "question_idx": "001934bb",
                "option": ["A. cooking.", "B. reading.", "C. sleeping."],
            }
        ],
        [f"{FRAMES}/video_qa/EgoSchema/001934bb-81bd-4cd8-a574-0472ef3f6678"],
    )
    assert ego.queries[0][0] == f"{QA}What is c doing?A. cooking. B. reading. C. sleeping."
    assert ego.candidates == [[("cooking", ""), ("reading", ""), ("sleeping", "")]] and ego.relevance == [{1: 1.0}]

    anet = convert_and_load(
        tmp_path,
        "ActivityNetQA",
        [{"video_name": "fLB7ZPvh7F4", "question": "is the man outdoors", "answer": "no", "question_id": "v_3"}],
        [f"{FRAMES}/video_qa/ActivityNetQA/v_fLB7ZPvh7F4"],  # `v_` + video_name
    )
    assert anet.queries[0] == (
        f"{QA}is the man outdoors? (A) yes; (B) no.",
        "",
        str(tmp_path / FRAMES / "video_qa/ActivityNetQA/v_fLB7ZPvh7F4"),
    )
    assert anet.candidates == [[("yes", ""), ("no", "")]] and anet.relevance == [{1: 1.0}]

    mvbench = convert_and_load(
        tmp_path,
        "MVBench",
        [
            {
                "subset": "action_antonym",
                "video": "166583.webm",
                "question": "What is the action performed by the person in the video?",
                "candidates": ["Pulling something", "Pushing something", "Not sure"],
                "answer": "Pushing something",
            }
        ],
        [f"{FRAMES}/video_qa/MVBench/action_antonym/166583.webm"],  # `<subset>/<video>`, extension included
    )
    assert mvbench.queries[0] == (
        f"{QA}What is the action performed by the person in the video?\nOptions:\n(A) Pulling something\n"
        "(B) Pushing something\n(C) Not sure",
        "",
        str(tmp_path / FRAMES / "video_qa/MVBench/action_antonym/166583.webm"),
    )
    assert mvbench.candidates == [[("(A) Pulling something", ""), ("(B) Pushing something", ""), ("(C) Not sure", "")]]
    assert mvbench.relevance == [{1: 1.0}]


def test_golds_follow_the_label_name_rule_for_repeated_options():
    # NExTQA / Video-MME: the label is an option's text, so every option of that text is relevant
    nextqa = {"video": 1, "question": "q", "answer": 0, "a0": "yes", "a1": "no", "a2": "yes", "a3": "-", "a4": "+"}
    assert convert_video_table("NExTQA", [nextqa])["gold_index"] == [[0, 2]]
    # MVBench: `qa_template` letters the last matching candidate only
    mvbench = {
        "subset": "action_count",
        "video": "a.mp4",
        "question": "q",
        "candidates": ["3", "4", "3"],
        "answer": "3",
    }
    assert convert_video_table("MVBench", [mvbench])["gold_index"] == [[2]]


# ---- moment retrieval ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "folder"), [("Charades-STA", "Charades_STA"), ("QVHighlight", "QVHighlight")])
def test_moment_sets_list_their_clip_folders_and_the_positive_is_gold(tmp_path, name, folder):
    video = f"{FRAMES}/video_mret/{folder}/3MSZA"
    clips = [f"{video}/{clip}" for clip in ("query", "negative_1", "positive", "negative_0")]
    (tmp_path / video / "notes.txt").parent.mkdir(parents=True)
    (tmp_path / video / "notes.txt").write_text("a file, not a clip")
    rows = [{"query": "a person opens a door", "video_path": "Charades_v1_480/3MSZA.mp4", "clips_dir_path": "x"}]
    dataset = convert_and_load(tmp_path, name, rows, clips, root=tmp_path)
    assert dataset.queries == [
        (
            f"{VID} Find the clip that corresponds to the described scene in the given video: a person opens a door",
            "",
            str(tmp_path / video / "query"),
        )
    ]
    assert dataset.candidates == [
        [(CLIP, "", str(tmp_path / video / c)) for c in ("negative_0", "negative_1", "positive")]
    ]
    assert dataset.relevance == [{2: 1.0}] and dataset.eval_type == "local"


def test_moment_sets_need_the_root_and_exactly_one_positive(tmp_path):
    rows = [{"query": "x", "video_path": "3MSZA.mp4"}]
    with pytest.raises(ValueError, match="Charades-STA: its candidate clips are the frame folders on disk"):
        convert_video_table("Charades-STA", rows)
    with pytest.raises(EvalDataError, match="Charades-STA row 0: column 'video_path': no clip folder .*3MSZA"):
        convert_video_table("Charades-STA", rows, root=tmp_path)
    for clip in ("query", "positive_0", "positive_1"):
        make_clip(tmp_path, f"{FRAMES}/video_mret/Charades_STA/3MSZA/{clip}")
    with pytest.raises(EvalDataError, match="row 0: column 'video_path': .* holds 2 'positive\\*' clip folders"):
        convert_video_table("Charades-STA", rows, root=tmp_path)


def test_momentseeker_text_queries_rank_positives_then_negatives(tmp_path):
    clips = lambda kind, n: [{"output_path": f"clips/movie101_12/{kind}_{i}.mp4"} for i in range(n)]  # noqa: E731
    rows = [
        {"query": "he picks up the phone", "input_frames": "", "positive_frames": clips("pos", 1),
         "negative_frames": clips("neg", 2)},
        # v2.0.1 evaluates text queries only: image and video queries are skipped
        {"query": "this", "input_frames": "movie101_12.jpg", "positive_frames": clips("pos", 1),
         "negative_frames": []},
        {"query": "after this", "input_frames": "movie/q.mp4", "positive_frames": clips("pos", 1),
         "negative_frames": []},
        {"query": "two of them", "input_frames": "", "positive_frames": clips("pos", 2),
         "negative_frames": clips("neg", 1)},
    ]  # fmt: skip
    folder = f"{FRAMES}/video_mret/MomentSeeker"
    names = ["clips_movie101_12_pos_0", "clips_movie101_12_pos_1", "clips_movie101_12_neg_0", "clips_movie101_12_neg_1"]
    seeker = convert_and_load(tmp_path, "MomentSeeker", rows, [f"{folder}/{name}" for name in names])
    assert seeker.queries == [
        ("Find the clip that corresponds to the given text: he picks up the phone", ""),
        ("Find the clip that corresponds to the given text: two of them", ""),
    ]
    clip = lambda name: (f"{VID} Understand the content of the provided video clip.", "", str(tmp_path / folder / name))  # noqa: E731
    assert seeker.candidates == [
        [clip("clips_movie101_12_pos_0"), clip("clips_movie101_12_neg_0"), clip("clips_movie101_12_neg_1")],
        [clip("clips_movie101_12_pos_0"), clip("clips_movie101_12_pos_1"), clip("clips_movie101_12_neg_0")],
    ]
    assert seeker.relevance == [{0: 1.0}, {0: 1.0, 1: 1.0}]


# ---- bad rows ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "message"),
    [
        ("MSR-VTT", [{"video_id": "v1", "caption": "a"}, {"video_id": "v2"}],
         r"MSR-VTT row 1: column 'caption': missing"),
        ("MSVD", [{"video_id": "v1", "caption": "a cat"}], r"MSVD row 0: column 'caption': expected a non-empty list"),
        ("NExTQA", [{"video": 1, "question": "q", "answer": 5, **{f"a{i}": "x" for i in range(5)}}],
         r"NExTQA row 0: column 'answer': answer 5 is not an option index 0..4"),
        ("Video-MME", [{"videoID": "v", "question": "q", "options": ["A. x", "B. y"], "answer": "E"}],
         r"Video-MME row 0: column 'answer': answer 'E' is not one of \['A', 'B'\]"),
        ("ActivityNetQA", [{"video_name": "v", "question": "q", "answer": "maybe"}],
         r"ActivityNetQA row 0: column 'answer': answer 'maybe' is not among the options \['yes', 'no'\]"),
        ("MVBench", [{"subset": "dancing", "video": "a.mp4", "question": "q", "candidates": ["x"], "answer": "x"}],
         r"MVBench row 0: column 'subset': 'dancing' is not an MVBench task"),
        ("SmthSmthV2", [{"video_id": 3, "pos_text": "Opening", "neg_text": ["Closing"]}],
         r"SmthSmthV2 row 0: column 'pos_text': answer 'Opening' is not among the options"),
        ("HMDB51", [{"video_id": "a", "pos_text": "run"}, {"video_id": None, "pos_text": "walk"}],
         r"HMDB51 row 1: column 'video_id': empty"),
        ("MomentSeeker", [{"query": "q", "input_frames": "", "positive_frames": [], "negative_frames": []}],
         r"MomentSeeker row 0: column 'positive_frames': no positive clip"),
    ],
)  # fmt: skip
def test_a_row_that_cannot_be_converted_names_dataset_row_and_column(name, rows, message):
    with pytest.raises(EvalDataError, match=message):
        convert_video_table(name, rows)


def test_unknown_datasets_and_misplaced_labels_are_value_errors():
    with pytest.raises(ValueError, match="'MyVideos' is not a published MMEB-V2 video dataset"):
        convert_video_table("MyVideos", [])
    with pytest.raises(ValueError, match="MSR-VTT has no label pool"):
        convert_video_table("MSR-VTT", [], labels=["a"])


# ---- the CLI -----------------------------------------------------------------------------------------------------


def test_cli_round_trip_writes_the_layout_that_eval_loads(tmp_path, capsys):
    raw = [
        {"videoID": "fFjv93ACGo8", "question": "Which?", "options": ["A. a dog", "B. a cat"], "answer": "B"},
        {"videoID": "abc", "question": "What?", "options": ["A. red", "B. blue"], "answer": "A"},
    ]
    table = tmp_path / "videomme.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in raw))
    for video in ("fFjv93ACGo8", "abc"):
        make_clip(tmp_path, f"{FRAMES}/video_qa/Video-MME/{video}")
    out = tmp_path / "eval"
    args = ["data", "video-eval", "--dataset", "Video-MME", "--table", str(table), "--out", str(out)]
    assert main(args) == 0
    assert "Wrote 2 Video-MME queries to" in capsys.readouterr().out
    mme = load_mmeb_eval(out, tmp_path)[0]  # found by discovery, as `vlm2vec eval --data OUT` finds it
    assert mme.name == "Video-MME" and mme.candidates == [[("a dog", ""), ("a cat", "")], [("red", ""), ("blue", "")]]
    assert mme.queries[1] == (f"{QA}What?\nA. red\nB. blue", "", str(tmp_path / FRAMES / "video_qa/Video-MME/abc"))
    assert mme.relevance == [{1: 1.0}, {0: 1.0}]

    assert main(args) == 2  # never written over without --overwrite
    assert "exists; pass --overwrite" in capsys.readouterr().err

    # a parquet table with a bad row: exit 2, the message names dataset, row and column
    bad = tmp_path / "videomme.parquet"
    datasets.Dataset.from_list(raw + [{**raw[0], "answer": "Z"}]).to_parquet(str(bad))
    assert main([*args[:5], str(bad), "--out", str(tmp_path / "eval2")]) == 2
    assert "Video-MME row 2: column 'answer': answer 'Z'" in capsys.readouterr().err


def test_cli_labels_file_and_moment_root(tmp_path, capsys):
    table = tmp_path / "hmdb51.json"
    table.write_text(json.dumps([{"video_id": "brush_hair_0", "pos_text": "brush_hair"}]))
    (tmp_path / "labels.txt").write_text("ride_bike\nbrush_hair\n\nwave\n")
    make_clip(tmp_path, f"{FRAMES}/video_cls/HMDB51/brush_hair_0")
    out = tmp_path / "eval"
    args = ["data", "video-eval", "--dataset", "HMDB51", "--table", str(table), "--out", str(out)]
    assert main([*args, "--labels", str(tmp_path / "labels.txt")]) == 0
    hmdb = load_mmeb_eval(out, tmp_path, names=["HMDB51"])[0]
    assert hmdb.corpus == [("brush_hair", ""), ("ride_bike", ""), ("wave", "")] and hmdb.relevance == [{0: 1.0}]
    charades = tmp_path / "charades.jsonl"
    charades.write_text(json.dumps({"query": "x", "video_path": "3MSZA.mp4"}) + "\n")
    moment = ["data", "video-eval", "--dataset", "Charades-STA", "--table", str(charades), "--out", str(out)]
    capsys.readouterr()
    assert main(moment) == 2
    assert "give the MMEB-V2 root" in capsys.readouterr().err


def test_converted_tables_evaluate_end_to_end(tiny_random_model_dir, tmp_path):
    retrieval = tmp_path / "msrvtt.jsonl"
    retrieval.write_text("".join(json.dumps(row) + "\n" for row in RETRIEVAL["MSR-VTT"][0]))
    nextqa = tmp_path / "nextqa.jsonl"
    row = {"video": 7, "question": "what moves", "answer": 1, **{f"a{i}": f"thing {i}" for i in range(5)}}
    nextqa.write_text(json.dumps(row) + "\n")
    for clip in ("video_ret/MSR-VTT/video7010", "video_ret/MSR-VTT/video7011", "video_qa/NExTQA/7"):
        make_clip(tmp_path, f"{FRAMES}/{clip}", frames=4)
    data = tmp_path / "eval"
    for name, table in (("MSR-VTT", retrieval), ("NExTQA", nextqa)):
        assert main(["data", "video-eval", "--dataset", name, "--table", str(table), "--out", str(data)]) == 0
    report = tmp_path / "report"
    args = ["eval", "--model", str(tiny_random_model_dir), "--data", str(data), "--image-dir", str(tmp_path)]
    assert main([*args, "--protocol", "v2", "--out", str(report)]) == 0
    results = json.loads((report / "results.json").read_text())
    assert sorted(results["datasets"]) == ["MSR-VTT", "NExTQA"]
    table = (report / "results.md").read_text()
    assert "| MSR-VTT | hit@1 | 2 | 2 | global |" in table and "| NExTQA | hit@1 | 1 | 5 | local |" in table
