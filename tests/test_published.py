"""The published MMEB numbers in ``vlm2vec_hf.evaluation.published`` against the counts and aggregates REFERENCE.md
states (§4.1, §4.2, §5.1, §5.2, Appendix A): a mistyped per-dataset score shows up as a meta-task mean that no
longer reproduces the published summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlm2vec_hf.evaluation.published import (
    HEADLINE_METRIC,
    MODEL_ALIASES,
    PUBLISHED_SCORES,
    PUBLISHED_V1_SUMMARY,
    PUBLISHED_V2_SUMMARY,
    PUBLISHED_V2_UPDATED_SUMMARY,
    V1_META_TASKS,
    V1_OOD,
    V2_META_TASKS,
    meta_task_of,
    published_scores,
)

# Summaries are means of one-decimal per-dataset values, compared with a one-decimal published aggregate: each side
# is off by at most 0.05 (plus float noise).
TOL = 0.06 + 1e-9
RELEASES = ("v2.0.0", "v2.0.1")
MODEL_KEYS = (
    "VLM2Vec-V2.0",
    "VLM2Vec-Qwen2VL-2B",
    "VLM2Vec-Qwen2VL-7B",
    "GME-2B",
    "GME-7B",
    "LamRA-Qwen2",
    "LamRA-Qwen2.5",
    "ColPali-v1.3",
)
IMAGE = [d for ds in V1_META_TASKS.values() for d in ds]
ALL_DATASETS = [d for mts in V2_META_TASKS.values() for ds in mts.values() for d in ds]

# V2 paper Table 2 row -> model key; Table 2 column -> (modality, meta-task) or modality.
TABLE2_ROWS = {
    "ColPali v1.3 (3B)": "ColPali-v1.3",
    "GME (2B)": "GME-2B",
    "GME (7B)": "GME-7B",
    "LamRA-Qwen2 (7B)": "LamRA-Qwen2",
    "LamRA-Qwen2.5 (7B)": "LamRA-Qwen2.5",
    "VLM2Vec-Qwen2VL (2B)": "VLM2Vec-Qwen2VL-2B",
    "VLM2Vec-Qwen2VL (7B)": "VLM2Vec-Qwen2VL-7B",
    "VLM2Vec-V2 (2B)": "VLM2Vec-V2.0",
}
TABLE2_COLUMNS: dict[str, tuple[str, str | None]] = {
    "I-CLS": ("image", "I-CLS"),
    "I-QA": ("image", "I-QA"),
    "I-RET": ("image", "I-RET"),
    "I-GD": ("image", "I-VG"),
    "Image (36)": ("image", None),
    "V-CLS": ("video", "V-CLS"),
    "V-QA": ("video", "V-QA"),
    "V-RET": ("video", "V-RET"),
    "V-MRET": ("video", "V-MRET"),
    "Video (18)": ("video", None),
    "VDRv1": ("visdoc", "VDRv1"),
    "VDRv2": ("visdoc", "VDRv2"),
    "VR": ("visdoc", "VisRAG"),
    "VD-OOD": ("visdoc", "VisDoc-OOD"),
    "VisDoc (24)": ("visdoc", None),
}
# REFERENCE §5.2: Table 2's V-MRET and Video (18) columns disagree with the paper appendix and the v2.0.0 JSONs for
# every model except ColPali; these are the values REFERENCE says the JSONs give (Video overall only stated for V2).
# They are means of the unrounded JSON values, so they are checked with the full rounding bound, 0.05 + 0.05: the
# mean of the printed LamRA-Qwen2.5 values is 37.13 (60.8, 18.8, 31.8), REFERENCE says 37.2 (true mean >= 37.15).
JSON_VMRET_TOL = 0.1 + 1e-9
JSON_VMRET = {
    "VLM2Vec-V2.0": 36.8,
    "GME-2B": 31.1,
    "GME-7B": 37.0,
    "LamRA-Qwen2": 32.8,
    "LamRA-Qwen2.5": 37.2,
    "VLM2Vec-Qwen2VL-2B": 30.7,
    "VLM2Vec-Qwen2VL-7B": 38.9,
}


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def meta_mean(model: str, modality: str, meta_task: str | None, release: str = "v2.0.0") -> float:
    scores = PUBLISHED_SCORES[release][model]
    groups = V2_META_TASKS[modality]
    datasets = groups[meta_task] if meta_task else [d for ds in groups.values() for d in ds]
    return mean([scores[d] for d in datasets])


# --------------------------------------------------------------------------------------------------------------
# Task structure (§4.1, §4.2)
# --------------------------------------------------------------------------------------------------------------


def test_v1_meta_tasks() -> None:
    assert list(V1_META_TASKS) == ["Classification", "VQA", "Retrieval", "Visual Grounding"]
    assert [len(v) for v in V1_META_TASKS.values()] == [10, 10, 12, 4]
    assert len(set(IMAGE)) == 36
    assert V1_META_TASKS["Classification"][-1] == "Country211"
    assert V1_META_TASKS["Visual Grounding"] == ["MSCOCO", "RefCOCO", "RefCOCO-Matching", "Visual7W-Pointing"]
    assert {"MSCOCO_t2i", "MSCOCO_i2t"} <= set(V1_META_TASKS["Retrieval"])


def test_v1_ind_ood() -> None:
    assert isinstance(V1_OOD, frozenset)
    assert len(V1_OOD) == 16 and V1_OOD <= set(IMAGE)
    assert len(set(IMAGE) - V1_OOD) == 20
    # per meta-task IND/OOD counts of the §4.1 table
    counts = {
        mt: (len([d for d in ds if d not in V1_OOD]), len([d for d in ds if d in V1_OOD]))
        for mt, ds in V1_META_TASKS.items()
    }
    assert counts == {"Classification": (5, 5), "VQA": (6, 4), "Retrieval": (8, 4), "Visual Grounding": (1, 3)}
    assert "MSCOCO" not in V1_OOD and "Visual7W" not in V1_OOD and "Visual7W-Pointing" in V1_OOD


def test_v2_meta_tasks() -> None:
    assert {m: {mt: len(ds) for mt, ds in mts.items()} for m, mts in V2_META_TASKS.items()} == {
        "image": {"I-CLS": 10, "I-QA": 10, "I-RET": 12, "I-VG": 4},
        "video": {"V-CLS": 5, "V-QA": 5, "V-RET": 5, "V-MRET": 3},
        "visdoc": {"VDRv1": 10, "VDRv2": 4, "VisRAG": 6, "VisDoc-OOD": 4},
    }
    assert len(ALL_DATASETS) == len(set(ALL_DATASETS)) == 78
    assert len({d.casefold() for d in ALL_DATASETS}) == 78
    # the V2 image meta-tasks are the V1 ones, same order
    assert list(V2_META_TASKS["image"].values()) == list(V1_META_TASKS.values())
    assert HEADLINE_METRIC == {"image": "hit@1", "video": "hit@1", "visdoc": "ndcg_linear@5"}


def test_meta_task_of() -> None:
    assert meta_task_of("MSCOCO") == ("image", "I-VG")
    assert meta_task_of("MSCOCO_t2i") == ("image", "I-RET")
    assert meta_task_of("Country211") == ("image", "I-CLS")
    assert meta_task_of("MomentSeeker") == ("video", "V-MRET")
    assert meta_task_of("smthsmthv2") == ("video", "V-CLS")
    assert meta_task_of("ViDoSeek-page") == ("visdoc", "VisDoc-OOD")
    assert meta_task_of("VisRAG_PlotQA") == ("visdoc", "VisRAG")
    assert meta_task_of("CIFAR-100") is None  # on the Hub but not one of the scored datasets
    assert meta_task_of("MomentSeeker_1k8") is None
    for modality, mts in V2_META_TASKS.items():
        for mt, datasets in mts.items():
            for d in datasets:
                assert meta_task_of(d) == (modality, mt)


# --------------------------------------------------------------------------------------------------------------
# Per-dataset tables (Appendix A)
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
def test_every_model_has_all_78_datasets(release: str) -> None:
    table = PUBLISHED_SCORES[release]
    assert tuple(table) == MODEL_KEYS
    for model, scores in table.items():
        assert list(scores) == ALL_DATASETS, model
        assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in scores.values()), model


@pytest.mark.parametrize(
    ("release", "model", "dataset", "value"),
    [
        ("v2.0.0", "VLM2Vec-V2.0", "ImageNet-1K", 80.8),
        ("v2.0.1", "ColPali-v1.3", "RefCOCO-Matching", 1.2),
        ("v2.0.0", "ColPali-v1.3", "RefCOCO-Matching", 3.9),
        ("v2.0.0", "VLM2Vec-Qwen2VL-7B", "MSCOCO", 75.7),
        ("v2.0.0", "GME-7B", "EDIS", 96.0),
        ("v2.0.0", "LamRA-Qwen2", "VisRAG_ArxivQA", 2.0),
        ("v2.0.0", "LamRA-Qwen2.5", "QVHighlight", 60.8),
        ("v2.0.0", "VLM2Vec-Qwen2VL-2B", "YouCook2", 4.1),
        ("v2.0.0", "VLM2Vec-V2.0", "MomentSeeker", 40.8),
        ("v2.0.1", "VLM2Vec-V2.0", "MomentSeeker", 42.9),
        ("v2.0.1", "VLM2Vec-Qwen2VL-7B", "ViDoRe_shiftproject", 1.6),
        ("v2.0.1", "GME-2B", "ViDoRe_syntheticDocQA_healthcare_industry", 98.5),
        ("v2.0.1", "LamRA-Qwen2.5", "MMLongBench-doc", 43.6),
        ("v2.0.1", "ColPali-v1.3", "ViDoRe_esg_reports_v2_multilingual", 55.6),
    ],
)
def test_spot_values(release: str, model: str, dataset: str, value: float) -> None:
    assert PUBLISHED_SCORES[release][model][dataset] == value


# --------------------------------------------------------------------------------------------------------------
# Aggregates against the summaries REFERENCE.md states
# --------------------------------------------------------------------------------------------------------------


def test_v2_image_means_reproduce_table2() -> None:
    row = PUBLISHED_V2_SUMMARY["VLM2Vec-V2 (2B)"]
    expected = {"I-CLS": 62.9, "I-QA": 56.3, "I-RET": 69.5, "I-GD": 77.3, "Image (36)": 64.9}
    assert {k: row[k] for k in expected} == expected
    for column, value in expected.items():
        assert meta_mean("VLM2Vec-V2.0", *TABLE2_COLUMNS[column]) == pytest.approx(value, abs=TOL), column


def test_v2_ind_ood() -> None:
    scores = PUBLISHED_SCORES["v2.0.0"]["VLM2Vec-V2.0"]
    assert mean([scores[d] for d in IMAGE if d not in V1_OOD]) == pytest.approx(68.8, abs=TOL)
    assert mean([scores[d] for d in IMAGE if d in V1_OOD]) == pytest.approx(59.9, abs=TOL)


def test_v2_video_and_visdoc_means() -> None:
    for modality, meta_task, value in [
        ("visdoc", "VDRv1", 75.5),
        ("visdoc", "VDRv2", 44.9),
        ("visdoc", "VisRAG", 79.4),
        ("visdoc", "VisDoc-OOD", 39.4),
        ("visdoc", None, 65.4),
        ("video", "V-CLS", 39.3),
        ("video", "V-QA", 34.3),
        ("video", "V-RET", 28.8),
    ]:
        assert meta_mean("VLM2Vec-V2.0", modality, meta_task) == pytest.approx(value, abs=TOL), meta_task
    # Issue #130's "official" VisDoc numbers for V2.0 (two decimals): 65.36 (75.52, 44.86, 79.38, 39.43).
    for meta_task, value in [
        (None, 65.36),
        ("VDRv1", 75.52),
        ("VDRv2", 44.86),
        ("VisRAG", 79.38),
        ("VisDoc-OOD", 39.43),
    ]:
        assert meta_mean("VLM2Vec-V2.0", "visdoc", meta_task) == pytest.approx(value, abs=0.06), meta_task


def test_v2_vmret_inconsistency_documented_in_reference() -> None:
    # REFERENCE §5.2: Table 2 says V-MRET 38.5 / Video 34.9 for VLM2Vec-V2, but the JSONs give 36.8 / 34.6;
    # assert what the JSONs give, and that Table 2 indeed differs (if the tables get fixed, revisit this test).
    assert meta_mean("VLM2Vec-V2.0", "video", "V-MRET") == pytest.approx(36.8, abs=TOL)
    assert meta_mean("VLM2Vec-V2.0", "video", None) == pytest.approx(34.6, abs=TOL)
    assert PUBLISHED_V2_SUMMARY["VLM2Vec-V2 (2B)"]["V-MRET"] == 38.5
    assert PUBLISHED_V2_SUMMARY["VLM2Vec-V2 (2B)"]["Video (18)"] == 34.9
    for model, value in JSON_VMRET.items():
        assert meta_mean(model, "video", "V-MRET") == pytest.approx(value, abs=JSON_VMRET_TOL), model


@pytest.mark.parametrize("row", list(TABLE2_ROWS))
def test_table2_matches_v2_0_0_json_means(row: str) -> None:
    """Every cell of V2 Table 2 is the v2.0.0 JSON mean, except V-MRET / Video (18) (see the test above)."""
    model = TABLE2_ROWS[row]
    summary = PUBLISHED_V2_SUMMARY[row]
    assert list(summary) == [*TABLE2_COLUMNS, "All (78)"]
    for column, (modality, meta_task) in TABLE2_COLUMNS.items():
        computed = meta_mean(model, modality, meta_task)
        if column in ("V-MRET", "Video (18)") and model in JSON_VMRET:
            assert abs(computed - summary[column]) > TOL, (row, column)  # the documented paper inconsistency
            if column == "V-MRET":
                assert computed == pytest.approx(JSON_VMRET[model], abs=JSON_VMRET_TOL)
            continue
        assert computed == pytest.approx(summary[column], abs=TOL), (row, column)
    overall = mean(list(PUBLISHED_SCORES["v2.0.0"][model].values()))
    assert overall == pytest.approx(summary["All (78)"], abs=TOL), row


def test_v1_checkpoints_rescored_with_v2_code() -> None:
    # §5.1 "V1 Qwen2-VL checkpoints re-scored with the V2 code" (v2.0.0 JSONs): CLS, QA, RET, GD, IND, OOD, overall.
    expected = {
        "VLM2Vec-Qwen2VL-2B": (58.7, 49.3, 65.0, 72.9, 64.9, 53.3, 59.7),
        "VLM2Vec-Qwen2VL-7B": (62.7, 56.9, 69.4, 82.2, 71.4, 58.1, 65.5),
    }
    for model, values in expected.items():
        scores = PUBLISHED_SCORES["v2.0.0"][model]
        computed = [mean([scores[d] for d in ds]) for ds in V1_META_TASKS.values()]
        computed += [
            mean([scores[d] for d in IMAGE if d not in V1_OOD]),
            mean([scores[d] for d in IMAGE if d in V1_OOD]),
        ]
        computed += [mean([scores[d] for d in IMAGE])]
        assert computed == pytest.approx(list(values), abs=TOL), model


def test_release_churn_and_v2_0_1_summary() -> None:
    # §4.2: V1-7B ViDoRe-v1 average fell from 56.9 to 20.0 between v2.0.0 and v2.0.1; V2.0 went from 75.5 to 74.4.
    assert meta_mean("VLM2Vec-Qwen2VL-7B", "visdoc", "VDRv1", "v2.0.0") == pytest.approx(56.9, abs=TOL)
    assert meta_mean("VLM2Vec-Qwen2VL-7B", "visdoc", "VDRv1", "v2.0.1") == pytest.approx(20.0, abs=TOL)
    assert meta_mean("VLM2Vec-V2.0", "visdoc", "VDRv1", "v2.0.1") == pytest.approx(74.4, abs=TOL)
    # §5.2: the v2.0.1 JSONs give V2.0 Image 64.9, Video 34.7, VisDoc 64.8, All 57.9.
    for modality, value in [("image", 64.9), ("video", 34.7), ("visdoc", 64.8)]:
        assert meta_mean("VLM2Vec-V2.0", modality, None, "v2.0.1") == pytest.approx(value, abs=TOL), modality
    assert mean(list(PUBLISHED_SCORES["v2.0.1"]["VLM2Vec-V2.0"].values())) == pytest.approx(57.9, abs=TOL)


def test_releases_agree_on_image_and_video() -> None:
    """v2.0.1 re-ran the same image/video evaluation (only MomentSeeker was rebuilt), so per-dataset scores move by
    at most ~3 points (largest: LamRA-Qwen2.5 A-OKVQA, 2.9); this catches gross typos in the v2.0.1 table, for which
    REFERENCE states no per-meta-task summaries except VLM2Vec-V2.0's. VisDoc is excluded: it changed a lot
    (e.g. V1-7B ViDoRe-v1 56.9 -> 20.0, LamRA-Qwen2 22.0 -> 33.8)."""
    old, new = PUBLISHED_SCORES["v2.0.0"], PUBLISHED_SCORES["v2.0.1"]
    datasets = [d for m in ("image", "video") for ds in V2_META_TASKS[m].values() for d in ds if d != "MomentSeeker"]
    for model in MODEL_KEYS:
        for d in datasets:
            assert abs(old[model][d] - new[model][d]) <= 3.0, (model, d)


def test_v1_summary() -> None:
    keys = ["Classification", "VQA", "Retrieval", "Visual Grounding", "IND", "OOD", "Overall"]
    assert len(PUBLISHED_V1_SUMMARY) == 16
    assert PUBLISHED_V1_SUMMARY["VLM2Vec Qwen2-VL-7B LoRA high-res"] == dict(
        zip(keys, [62.6, 57.8, 69.9, 81.7, 72.2, 57.8, 65.8])
    )
    assert PUBLISHED_V1_SUMMARY["VLM2Vec LLaVA-1.6 LoRA (1344²)"]["Overall"] == 62.9
    assert PUBLISHED_V1_SUMMARY["VLM2Vec Qwen2-VL-2B"] == {
        "Classification": 59.0,
        "VQA": 49.4,
        "Retrieval": 65.4,
        "Visual Grounding": 73.4,
        "Overall": 59.3,
    }
    # Each meta-task / IND / OOD number is a mean over 10/10/12/4 and 20/16 datasets: both weightings must give the
    # overall (within the rounding of four resp. two one-decimal numbers).
    for model, row in PUBLISHED_V1_SUMMARY.items():
        assert set(row) <= set(keys) and "Overall" in row, model
        if "IND" in row:
            assert (20 * row["IND"] + 16 * row["OOD"]) / 36 == pytest.approx(row["Overall"], abs=0.1), model
        weighted = (
            10 * row["Classification"] + 10 * row["VQA"] + 12 * row["Retrieval"] + 4 * row["Visual Grounding"]
        ) / 36
        if model == "SigLIP":
            # REFERENCE / V1 Table 2 inconsistency: SigLIP's meta-task cells give 30.7, its IND/OOD give 34.8.
            assert weighted == pytest.approx(30.67, abs=0.01)
        elif model == "VLM2Vec Qwen2-VL-2B":
            # Leaderboard inconsistency: the four meta-task numbers give 60.07, i.e. the README's 60.1, not 59.3.
            assert weighted == pytest.approx(60.07, abs=0.01)
        else:
            assert weighted == pytest.approx(row["Overall"], abs=0.1), model


# --------------------------------------------------------------------------------------------------------------
# Accessors
# --------------------------------------------------------------------------------------------------------------


def test_published_scores_accessor() -> None:
    assert published_scores("VLM2Vec-V2.0") == PUBLISHED_SCORES["v2.0.1"]["VLM2Vec-V2.0"]
    assert published_scores("vlm2vec/vlm2vec-v2.0", "v2.0.0")["ImageNet-1K"] == 80.8
    assert published_scores("TIGER-Lab/VLM2Vec-Qwen2VL-7B", release="v2.0.0")["MSCOCO"] == 75.7
    assert published_scores("colpali-V1.3")["RefCOCO-Matching"] == 1.2
    assert published_scores("lamra-qwen2.5", "v2.0.0")["QVHighlight"] == 60.8
    for hub_id, key in MODEL_ALIASES.items():
        assert key in MODEL_KEYS
        assert published_scores(hub_id) == PUBLISHED_SCORES["v2.0.1"][key]
    # a fresh dict: mutating it leaves the module table intact
    scores = published_scores("GME-2B")
    scores["ImageNet-1K"] = -1.0
    assert PUBLISHED_SCORES["v2.0.1"]["GME-2B"]["ImageNet-1K"] == 58.1


def test_published_scores_unknown() -> None:
    with pytest.raises(KeyError, match="VLM2Vec-V2.0") as info:
        published_scores("no-such-model")
    assert "GME-7B" in str(info.value) and "vidore/colpali-v1.3" in str(info.value)
    with pytest.raises(KeyError, match="v2.0.1"):
        published_scores("VLM2Vec-V2.0", release="v9")


APPENDIX_A = Path(__file__).parent / "fixtures" / "reference_appendix_a.md"  # REFERENCE.md Appendix A, verbatim


def test_tables_equal_reference_md_appendix() -> None:
    """Cell-by-cell comparison with the Appendix A markdown tables."""
    text = APPENDIX_A.read_text(encoding="utf-8")
    for release, start, stop in [("v2.0.0", "### A.1", "### A.2"), ("v2.0.1", "### A.2", None)]:
        section = text[text.index(start) : text.index(stop) if stop else None]
        rows = [line for line in section.splitlines() if line.startswith(("| image/", "| video/", "| visdoc/"))]
        assert len(rows) == 78
        for line in rows:
            _, dataset, *cells = (c.strip() for c in line.strip().strip("|").split("|"))
            got = [PUBLISHED_SCORES[release][model][dataset] for model in MODEL_KEYS]
            assert got == [float(c) for c in cells], (release, dataset)


def test_updated_v2_table_holds_qwen3_vl_embedding_and_adds_up() -> None:
    """The Qwen3-VL-Embedding README's MMEB-V2 table: its headline rows, and every row's modality means and overall
    are the dataset-weighted means of its columns (36 image, 18 video, 24 visual-document datasets), except where the
    README itself does not add up (Seed-1.6's VisDoc: its columns give 81.8, it prints 82.2)."""
    for model, (overall, image, video, visdoc) in {
        "Qwen3-VL-Embedding (2B)": (73.2, 75.0, 61.9, 79.2),
        "Qwen3-VL-Embedding (8B)": (77.8, 80.1, 67.1, 82.4),
        "VLM2Vec-V2 (2B)": (59.2, 64.9, 34.6, 69.2),
    }.items():
        row = PUBLISHED_V2_UPDATED_SUMMARY[model]
        assert (row["All (78)"], row["Image (36)"], row["Video (18)"], row["VisDoc (24)"]) == (
            overall,
            image,
            video,
            visdoc,
        )
    weights = {"I-CLS": 10, "I-QA": 10, "I-RET": 12, "I-GD": 4, "V-CLS": 5, "V-QA": 5, "V-RET": 5, "V-MRET": 3}
    weights |= {"VDRv1": 10, "VDRv2": 4, "VR": 6, "VD-OOD": 4}
    groups = {"Image (36)": ("I-",), "Video (18)": ("V-",), "VisDoc (24)": ("VD", "VR")}
    for model, row in PUBLISHED_V2_UPDATED_SUMMARY.items():
        for group, prefixes in groups.items():
            if (model, group) == ("Seed-1.6-embedding-1215", "VisDoc (24)"):
                continue
            members = {column: n for column, n in weights.items() if column.startswith(prefixes)}
            mean = sum(row[column] * n for column, n in members.items()) / sum(members.values())
            assert mean == pytest.approx(row[group], abs=0.2), (model, group)  # of one-decimal means
        overall = sum(row[group] * int(group.split("(")[1][:-1]) for group in groups) / 78
        assert overall == pytest.approx(row["All (78)"], abs=0.2), model
