"""The MMEB-V2 video tasks in evaluation: prompts (against the reference strings of the public video fixture), the
video layout loader (frame folders, local lists, global pools), clip de-duplication, metrics and the report columns."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import write_clip, write_rows
from PIL import Image

from vlm2vec_hf.evaluation import prompts_video
from vlm2vec_hf.evaluation.data import EvalDataError, load_mmeb_eval
from vlm2vec_hf.evaluation.embedding_cache import item_key
from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator, encoder_input, unique_items
from vlm2vec_hf.evaluation.metrics import ranking_metrics
from vlm2vec_hf.evaluation.published import published_scores
from vlm2vec_hf.evaluation.report import to_markdown
from vlm2vec_hf.modeling_vlm2vec.backbone_common import MMEB_IMAGE_TAG, MMEB_VIDEO_TAG

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "video_eval_prompts.json").read_text())["cases"]
VID = MMEB_VIDEO_TAG  # the data layer writes MMEB's tags; the processor maps them to its backbone's tokens
CANDIDATE = f"{VID} Understand the content of the provided video."


def reference(case_id: str) -> str:
    return REFERENCE[case_id]["text"]


@pytest.fixture(scope="module")
def qwen_processor(tiny_random_model_dir):
    """The processor of a Qwen2-VL model folder, whose video token the reference's prompts hold."""
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecProcessor

    return VLM2VecProcessor.from_pretrained(tiny_random_model_dir)


def embedded(processor, prompt: str) -> str:
    """The prompt string the processor embeds for a video item whose text is `prompt` (the sentence-transformers
    path: `format_prompt` with one video)."""
    return processor.format_prompt(prompt, num_videos=1)


# ---- prompts: the reference's strings ----------------------------------------------------------------------------


def test_retrieval_classification_and_moment_prompts_equal_the_reference(qwen_processor):
    def qwen(prompt: str) -> str:
        return embedded(qwen_processor, prompt)

    assert qwen(prompts_video.candidate_prompt()) == reference("p01") == reference("p07")
    assert qwen(prompts_video.query_prompt("video_cls", "UCF101", "", [], True)) == reference("p02")
    assert qwen(prompts_video.query_prompt("video_cls", "K700", "", [], True)) == reference("p08")
    caption = "a cat looks around a room"  # text queries: no tag
    assert prompts_video.query_prompt("video_ret", "MSR-VTT", caption, [], False) == reference("p03")
    caption = "a cup of coffee seen from above"
    assert prompts_video.query_prompt("video_ret", "MSVD", caption, [], False) == reference("p12")
    scene = "steam rises from the cup"
    assert qwen(prompts_video.query_prompt("video_mret", "Charades-STA", scene, [], True)) == reference("p06")
    assert qwen(prompts_video.video_prompt_rule("")) == reference("p09")  # empty instruction: trailing space
    # Breakfast's instruction itself ends with a space
    assert prompts_video.query_prompt("video_cls", "Breakfast", "", [], True).endswith("in the video. ")
    # the data layer holds MMEB's tag only; the backbone's token is the processor's business
    assert prompts_video.candidate_prompt().startswith(f"{VID} ") and qwen_processor.video_token not in VID


def test_qa_prompts_equal_the_reference(qwen_processor):
    def qwen(prompt: str) -> str:
        return embedded(qwen_processor, prompt)

    options = ["stands still", "looks at the shops", "rides a bicycle", "talks on the phone", "runs away"]
    question = "what does the man do after walking down the street"
    assert qwen(prompts_video.qa_query("NExTQA", question, options)) == reference("p04")
    assert "Question:  what" in reference("p04")  # TASK_PROMPT's trailing space + the joining space
    assert prompts_video.qa_options(options)[1] == reference("p05")  # qa_template's option string
    # ... which MVBench's candidates are; NExTQA's parser drops them and ranks the raw options
    assert prompts_video.qa_candidates("MVBench", options)[1] == reference("p05")
    assert prompts_video.qa_candidates("NExTQA", options) == options
    assert qwen(prompts_video.qa_query("MVBench", question, options)) == reference("p04")
    mme_options = ["A. a dog", "B. a cat", "C. a bird", "D. a horse"]
    mme = prompts_video.qa_query("Video-MME", "Which animal appears in the video?", mme_options)
    assert qwen(mme) == reference("p13")
    assert prompts_video.qa_candidates("Video-MME", mme_options) == ["a dog", "a cat", "a bird", "a horse"]
    # EgoSchema joins the options with spaces, straight after the question; ActivityNetQA is yes / no
    ego = prompts_video.qa_query("EgoSchema", "What is c doing?", ["A. cooking.", "B. reading."])
    assert ego.endswith("Question:  What is c doing?A. cooking. B. reading.")
    assert prompts_video.qa_candidates("EgoSchema", ["A. cooking.", "B. reading."]) == ["cooking", "reading"]
    anet = prompts_video.qa_query("ActivityNetQA", "is the man outdoors", ["yes", "no"])
    assert anet.endswith("Question:  is the man outdoors? (A) yes; (B) no.")
    assert prompts_video.qa_candidates("ActivityNetQA", ["ignored"]) == ["yes", "no"]


def test_the_18_video_datasets_have_a_task_type_and_the_reference_ranking():
    assert len(prompts_video.VIDEO_TASK_TYPE) == 18
    published = published_scores("VLM2Vec-V2.0")
    assert set(prompts_video.VIDEO_TASK_TYPE) <= set(published)  # our names are the published ones
    global_sets = {n for n, t in prompts_video.VIDEO_TASK_TYPE.items() if prompts_video.ranks_globally(t, n)}
    assert global_sets == {"HMDB51", "UCF101", "K700", "Breakfast", "DiDeMo", "MSR-VTT", "MSVD", "VATEX", "YouCook2"}


# ---- a synthetic video benchmark ---------------------------------------------------------------------------------


@pytest.fixture()
def video_root(tmp_path) -> Path:
    """One dataset per video task type: MSR-VTT (global clip pool, one clip listed twice), UCF101 (global labels),
    SmthSmthV2 (local labels), NExTQA and Video-MME (local QA), Charades-STA (local clips, one shared with MSR-VTT)."""
    a, b, c, d = (
        str(write_clip(tmp_path, name, n, 60 * n).relative_to(tmp_path))
        for name, n in [("a", 3), ("b", 4), ("c", 2), ("d", 5)]
    )
    labels = ["jumping", "running", "swimming"]
    write_rows(
        tmp_path,
        "MSR-VTT",
        [
            {"qry_text": "a square moves", "qry_video": "", "tgt_text": [], "tgt_video": [a]},
            {"qry_text": "a bright frame", "qry_video": "", "tgt_text": [], "tgt_video": [b]},
            {"qry_text": "the same clip again", "qry_video": "", "tgt_text": [], "tgt_video": [a]},
        ],
    )
    write_rows(
        tmp_path,
        "UCF101",
        [
            {"qry_text": "", "qry_video": a, "tgt_text": labels, "tgt_video": [], "gold_index": 0},
            {"qry_text": "", "qry_video": b, "tgt_text": labels, "tgt_video": [], "gold_index": 2},
            {"qry_text": "", "qry_video": a, "tgt_text": labels, "tgt_video": [], "gold_index": 0},
        ],
    )
    write_rows(
        tmp_path,
        "SmthSmthV2",
        [{"qry_text": "", "qry_video": c, "tgt_text": ["Folding something", "Opening something"], "gold_index": 1}],
    )
    write_rows(
        tmp_path,
        "NExTQA",
        [
            {"qry_text": "what moves", "qry_video": a, "tgt_text": ["a square", "a dog"], "gold_index": 0},
            {"qry_text": "what colour", "qry_video": a, "tgt_text": ["blue", "red"], "gold_index": 0},
        ],
    )
    write_rows(
        tmp_path,
        "Video-MME",
        [{"qry_text": "Which shape?", "qry_video": d, "tgt_text": ["A. a square", "B. a circle"], "gold_index": 0}],
    )
    write_rows(
        tmp_path,
        "Charades-STA",
        [{"qry_text": "the square starts", "qry_video": d, "tgt_video": [c, a, b], "gold_index": [1]}],
    )
    return tmp_path


def test_loader_builds_each_layout_with_its_prompts(video_root):
    loaded = {d.name: d for d in load_mmeb_eval(video_root, video_root, names=None)}
    assert sorted(loaded) == ["Charades-STA", "MSR-VTT", "NExTQA", "SmthSmthV2", "UCF101", "Video-MME"]
    clip = lambda name: str(video_root / "frames" / name)  # noqa: E731
    msrvtt = loaded["MSR-VTT"]
    assert msrvtt.layout == "video" and msrvtt.eval_type == "global" and msrvtt.task_type == "video_ret"
    assert msrvtt.queries[0] == ("Find a video that contains the following visual content: a square moves", "")
    assert msrvtt.corpus == [(CANDIDATE, "", clip("a")), (CANDIDATE, "", clip("b"))]  # clip a listed twice: one entry
    assert msrvtt.relevance == [{0: 1.0}, {1: 1.0}, {0: 1.0}]
    ucf = loaded["UCF101"]
    assert ucf.eval_type == "global" and ucf.corpus == [("jumping", ""), ("running", ""), ("swimming", "")]
    assert ucf.queries[1] == (prompts_video.query_prompt("video_cls", "UCF101", "", [], True), "", clip("b"))
    assert ucf.relevance == [{0: 1.0}, {2: 1.0}, {0: 1.0}]
    ssv2 = loaded["SmthSmthV2"]
    assert ssv2.eval_type == "local" and ssv2.candidates == [[("Folding something", ""), ("Opening something", "")]]
    nextqa = loaded["NExTQA"]
    assert nextqa.queries[0][0].endswith("Question:  what moves\nOptions:\n(A) a square\n(B) a dog")
    assert nextqa.candidates[1] == [("blue", ""), ("red", "")] and nextqa.eval_type == "local"
    assert loaded["Video-MME"].candidates == [[("a square", ""), ("a circle", "")]]
    charades = loaded["Charades-STA"]
    assert charades.queries[0] == (
        f"{VID} Find the clip that corresponds to the described scene in the given video: the square starts",
        "",
        clip("d"),
    )
    assert charades.candidates[0][1] == (CANDIDATE, "", clip("a")) and charades.relevance == [{1: 1.0}]
    assert encoder_input(charades.queries[0]) == {"text": charades.queries[0][0], "video": clip("d")}


def test_every_clip_is_checked_up_front_and_errors_name_dataset_and_row(video_root):
    rows = (video_root / "UCF101" / "test.jsonl").read_text().splitlines()
    broken = json.loads(rows[2]) | {"qry_video": "frames/missing"}
    (video_root / "UCF101" / "test.jsonl").write_text("\n".join(rows[:2] + [json.dumps(broken)]) + "\n")
    with pytest.raises(EvalDataError, match=r"UCF101 row 2: clip .*frames/missing.* does not exist"):
        load_mmeb_eval(video_root, video_root, names=["UCF101"])
    (video_root / "frames" / "empty").mkdir()
    write_rows(video_root, "MSVD", [{"qry_text": "x", "qry_video": "", "tgt_video": ["frames/empty"]}])
    with pytest.raises(EvalDataError, match="MSVD row 0: clip folder .* holds no frame images"):
        load_mmeb_eval(video_root, video_root, names=["MSVD"])
    write_rows(video_root, "HMDB51", [{"qry_text": "", "qry_video": "", "tgt_text": ["run"]}])
    with pytest.raises(EvalDataError, match="HMDB51 row 0: a video_cls query needs a clip"):
        load_mmeb_eval(video_root, video_root, names=["HMDB51"])
    write_rows(video_root, "MyClips", [{"qry_text": "x", "qry_video": "", "tgt_video": ["frames/a"]}])
    with pytest.raises(EvalDataError, match="MyClips: not one of the 18 MMEB-V2 video datasets"):
        load_mmeb_eval(video_root, video_root, names=["MyClips"])
    (video_root / "tasks.json").write_text(json.dumps({"MyClips": {"task_type": "video_ret", "prompts_of": "MSVD"}}))
    mine = load_mmeb_eval(video_root, video_root, names=["MyClips"])[0]
    assert mine.queries[0][0] == "Find the video snippet that corresponds to the given summary: x"
    assert mine.eval_type == "global"
    (video_root / "tasks.json").write_text(
        json.dumps({"MyClips": {"task_type": "video_ret", "prompts_of": "MSVD", "global": False}})
    )
    assert load_mmeb_eval(video_root, video_root, names=["MyClips"])[0].eval_type == "local"


class CountingModel:
    """`encode` returns a fixed vector per input (keyed by text and media path) and records every call's inputs."""

    def __init__(self, vector_of):
        self.vector_of = vector_of
        self.calls: list[list] = []
        self.model_card_data = SimpleNamespace(set_evaluation_metrics=lambda *args: None)

    def __iter__(self):
        return iter([SimpleNamespace()])

    def __getitem__(self, index):
        return SimpleNamespace()

    def state_dict(self) -> dict:
        return {}

    def encode(self, inputs, **kwargs):
        self.calls.append(list(inputs))
        return np.stack([self.vector_of(x) for x in inputs]).astype(np.float32)


def _vector(x) -> np.ndarray:
    key = json.dumps(x, sort_keys=True) if isinstance(x, dict) else x
    rng = np.random.default_rng(abs(hash(key)) % 2**32)
    v = rng.normal(size=8)
    return v / np.linalg.norm(v)


def test_each_distinct_clip_item_is_encoded_once_in_its_own_call(video_root, tmp_path):
    loaded = load_mmeb_eval(video_root, video_root)
    model = CountingModel(_vector)
    evaluator = MMEBEvaluator(loaded, protocol="v2", cache_dir=tmp_path / "cache")
    evaluator(model)
    encoded = [x for call in model.calls for x in call]
    keys = [json.dumps(x, sort_keys=True) if isinstance(x, dict) else x for x in encoded]
    assert len(keys) == len(set(keys)) == len(unique_items(loaded))  # nothing encoded twice
    clip_a = {"text": CANDIDATE, "video": str(video_root / "frames" / "a")}
    assert keys.count(json.dumps(clip_a, sort_keys=True)) == 1  # in MSR-VTT's pool twice and in Charades-STA
    # UCF101 rows 0 and 2 are the same (prompt, clip) query: one item
    ucf_query = {"text": prompts_video.query_prompt("video_cls", "UCF101", "", [], True)}
    assert sum(1 for x in encoded if isinstance(x, dict) and x["text"] == ucf_query["text"]) == 2  # clips a, b
    kinds = [{("video" if isinstance(x, dict) else "text") for x in call} for call in model.calls]
    assert kinds == [{"text"}, {"video"}]  # one text call, one video call (no image items here)
    naive = evaluator.results["encoding"]["naive_items"]
    # listed: MSR-VTT 3 + 2, UCF101 3 + 3, SSv2 1 + 2, NExTQA 2 + 4, Video-MME 1 + 2, Charades 1 + 3 = 27;
    # distinct: 13 texts (3 captions, 3 + 2 labels, 4 + 2 answers with "a square" in both NExTQA and Video-MME) +
    # 10 clip items (UCF101 a, b; SSv2 c; NExTQA's two questions on a; Video-MME d; Charades d; the candidate prompt
    # on a, b, c, shared by MSR-VTT and Charades)
    assert naive == 27 and evaluator.results["encoding"]["unique_items"] == len(encoded) == 23
    again = CountingModel(_vector)
    MMEBEvaluator(loaded, protocol="v2", cache_dir=tmp_path / "cache")(again)
    assert again.calls == []  # every clip embedding came from the cache


def test_a_changed_frame_changes_the_clip_cache_key(video_root):
    item = (CANDIDATE, "", str(video_root / "frames" / "a"))
    before = item_key(item)
    Image.new("RGB", (40, 32)).save(video_root / "frames" / "a" / "0001.png")
    assert item_key(item) != before
    assert item_key(("x", "")) == item_key(("x", ""))  # text items keep their keys


def test_video_metrics_follow_the_formulas_and_fill_the_video_columns(video_root):
    loaded = load_mmeb_eval(video_root, video_root)
    model = CountingModel(_vector)
    evaluator = MMEBEvaluator(loaded, protocol="v2")
    evaluator(model)
    results = evaluator.results
    # recompute each dataset's headline hit@1 and MRR@10 from the same vectors by hand

    def vec(item):
        return _vector(encoder_input(item))

    for dataset in loaded:
        per_query = []
        for i, query in enumerate(dataset.queries):
            pool = dataset.corpus if dataset.corpus is not None else dataset.candidates[i]
            scores = np.array([vec(c) @ vec(query) for c in pool])
            order = sorted(range(len(pool)), key=lambda j: (-scores[j], j))
            gold = set(dataset.relevance[i])
            first = next(r for r, j in enumerate(order) if j in gold)
            per_query.append((float(order[0] in gold), 1 / (first + 1) if first < 10 else 0.0))
        ours = results["datasets"][dataset.name]
        assert ours["headline_metric"] == "hit@1"
        assert ours["score"] == pytest.approx(np.mean([h for h, _ in per_query]))
        assert ours["metrics"]["mrr@10"] == pytest.approx(np.mean([m for _, m in per_query]))
    groups = results["groups"]
    assert groups["V-RET"]["datasets"] == ["MSR-VTT"] and groups["V-MRET"]["datasets"] == ["Charades-STA"]
    assert groups["V-CLS"]["datasets"] == ["SmthSmthV2", "UCF101"] and groups["V-QA"]["count"] == 2
    scores = {name: r["score"] for name, r in results["datasets"].items()}
    assert groups["V-CLS"]["score"] == pytest.approx((scores["SmthSmthV2"] + scores["UCF101"]) / 2)
    assert groups["Video"]["count"] == 6 and groups["Video"]["score"] == pytest.approx(np.mean(list(scores.values())))
    assert groups["Video"]["missing"] and groups["Image"]["count"] == 0
    published = published_scores("VLM2Vec-V2.0", "v2.0.1")
    theirs = {name: published[name] for name in results["datasets"]}
    table = to_markdown(results, "ours", theirs, "VLM2Vec-V2.0")
    assert "| model | V-CLS (2) | V-QA (2) | V-RET (1) | V-MRET (1) | Video (6) | All (6) |" in table
    assert "| MSR-VTT | hit@1 | 3 | 2 | global |" in table and f" {published['MSR-VTT']:.1f} |" in table
    expected_video = np.mean([published[n] for n in results["datasets"]])
    published_row = next(line for line in table.splitlines() if line.startswith("| VLM2Vec-V2.0 (published)"))
    assert f"| {expected_video:.1f} |" in published_row


def test_ranking_metrics_on_a_two_clip_pool_by_hand():
    # a moment query whose relevant clip is ranked second of three
    metrics = ranking_metrics([2, 1, 0], {1: 1.0})
    assert (
        metrics["hit@1"] == 0.0
        and metrics["mrr@10"] == 0.5
        and metrics["ndcg_linear@5"] == pytest.approx(1 / np.log2(3))
    )


def test_vlm2vec_eval_end_to_end_on_the_synthetic_video_set(tiny_random_model_dir, video_root, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.cli import main

    out = tmp_path / "report"
    args = ["eval", "--model", str(tiny_random_model_dir), "--data", str(video_root), "--image-dir", str(video_root)]
    assert main([*args, "--protocol", "v2", "--out", str(out), "--compare", "VLM2Vec-V2.0"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["datasets"]) == 6 and results["groups"]["Video"]["count"] == 6
    assert {"name": "frames", "reason": "no test data"} in results["skipped"]
    assert results["encoding"]["unique_items"] == 23 < results["encoding"]["naive_items"] == 27
    table = (out / "results.md").read_text()
    assert "| V-CLS (2) | V-QA (2) | V-RET (1) | V-MRET (1) | Video (6) | All (6) |" in table
    assert (
        "| NExTQA | hit@1 | 2 | 2 | local |" in table
        and f" {published_scores('VLM2Vec-V2.0')['NExTQA']:.1f} |" in table
    )
    # MSR-VTT's hit@1, recomputed from the model's own embeddings of the loaded items
    model = SentenceTransformer(str(tiny_random_model_dir), trust_remote_code=True, device="cpu")
    msrvtt = load_mmeb_eval(video_root, video_root, names=["MSR-VTT"])[0]
    queries = model.encode([encoder_input(q) for q in msrvtt.queries], normalize_embeddings=True)
    pool = model.encode([encoder_input(c) for c in msrvtt.corpus], normalize_embeddings=True)
    best = np.argmax(queries @ pool.T, axis=1)
    expected = np.mean([float(b in relevant) for b, relevant in zip(best, msrvtt.relevance)])
    assert results["datasets"]["MSR-VTT"]["score"] == pytest.approx(expected)
    assert "MSR-VTT" in capsys.readouterr().out


def test_momentseeker_queries_are_text_image_or_clip_with_their_own_instructions(video_root):
    Image.new("RGB", (32, 32), (9, 9, 9)).save(video_root / "still.png")
    clips = ["frames/a", "frames/b", "frames/c"]
    write_rows(
        video_root,
        "MomentSeeker",
        [
            {"qry_text": "a square", "qry_video": "", "tgt_video": clips, "gold_index": [0, 2]},
            {"qry_text": "this one", "qry_video": "", "qry_image": "still.png", "tgt_video": clips, "gold_index": 1},
            {"qry_text": "after this", "qry_video": "frames/d", "tgt_video": clips, "gold_index": 0},
        ],
    )
    seeker = load_mmeb_eval(video_root, video_root, names=["MomentSeeker"])[0]
    assert seeker.queries == [
        ("Find the clip that corresponds to the given text: a square", ""),
        (
            f"{MMEB_IMAGE_TAG} Select the video clip that aligns with the given text and image: this one",
            str(video_root / "still.png"),
        ),
        (
            f"{VID} Find the clip that corresponds to the given sentence and video segment: after this",
            "",
            str(video_root / "frames" / "d"),
        ),
    ]
    assert seeker.candidates[0][0] == (
        f"{VID} Understand the content of the provided video clip.",
        "",
        clips_abs(video_root, "a"),
    )
    assert seeker.relevance == [{0: 1.0, 2: 1.0}, {1: 1.0}, {0: 1.0}] and seeker.eval_type == "local"
    write_rows(
        video_root, "QVHighlight", [{"qry_text": "x", "qry_image": "still.png", "qry_video": "", "tgt_video": clips}]
    )
    with pytest.raises(EvalDataError, match="QVHighlight row 0: 'qry_image' is for MomentSeeker"):
        load_mmeb_eval(video_root, video_root, names=["QVHighlight"])


def clips_abs(root: Path, name: str) -> str:
    return str(root / "frames" / name)


@pytest.mark.parametrize("suffix", [".gif", ".tif", ".ppm"])
def test_clip_folders_of_any_frame_format_the_model_reads_are_accepted(video_root, suffix):
    """The eval check lists frames as the processor does (`list_frame_files`): it once rejected these formats."""
    folder = video_root / "frames" / f"only{suffix}"
    folder.mkdir()
    for index in range(2):
        Image.new("RGB", (8, 8), "red").save(folder / f"{index:04d}{suffix}")
    write_rows(video_root, "MSVD", [{"qry_text": "x", "qry_video": "", "tgt_video": [f"frames/only{suffix}"]}])
    (loaded,) = load_mmeb_eval(video_root, video_root, names=["MSVD"])
    assert loaded.corpus == [(CANDIDATE, "", str(folder))]


def test_mmeb_tags_embed_as_the_backbones_own_tokens(tiny_random_model_dir, qwen_processor, video_root):
    """The data layer writes MMEB's `<|video_1|>` / `<|image_1|>`; the processor maps them to the backbone's tokens,
    so the embeddings equal those of prompts written with the tokens themselves (`__call__` and `encode`)."""
    from sentence_transformers import SentenceTransformer

    video_token, image_token = qwen_processor.video_token, qwen_processor.image_token
    clip = str(video_root / "frames" / "a")
    image = str(video_root / "frames" / "a" / "0000.png")
    text = " Understand the content of the provided video."
    by_tag = qwen_processor(text=[VID + text], videos=[clip])
    by_token = qwen_processor(text=[video_token + text], videos=[clip])
    assert by_tag["input_ids"].tolist() == by_token["input_ids"].tolist()
    assert (by_tag["input_ids"] == qwen_processor.video_token_id).sum() > 0
    model = SentenceTransformer(str(tiny_random_model_dir), trust_remote_code=True, device="cpu")
    inputs = [
        ({"text": VID + text, "video": clip}, {"text": video_token + text, "video": clip}),
        ({"text": f"{MMEB_IMAGE_TAG} a frame", "image": image}, {"text": f"{image_token} a frame", "image": image}),
    ]
    for tagged, native in inputs:
        assert np.array_equal(model.encode([tagged]), model.encode([native]))
