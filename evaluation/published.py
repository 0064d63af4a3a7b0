"""Published MMEB / MMEB-V2 scores, transcribed from ``REFERENCE.md`` (pure data, no third-party imports).

Where each table comes from (section numbers are those of ``REFERENCE.md``):

* ``V1_META_TASKS`` / ``V1_OOD``: §4.1 (the 36 MMEB datasets, 4 meta-tasks, IND/OOD split = V1 paper Table 1;
  IND = has MMEB-train data). Dataset order and spelling follow Appendix A.
* ``V2_META_TASKS`` / ``HEADLINE_METRIC``: §4.2 (reference ``experiments/report_score_v2.py``: ``modality2dataset``
  and the headline metric per modality). Dataset order and spelling follow Appendix A.
* ``PUBLISHED_SCORES["v2.0.0"]``: REFERENCE.md Appendix A.1 = reference repo
  ``experiments/public/all_scores/v2.0.0/*.json``.
* ``PUBLISHED_SCORES["v2.0.1"]``: REFERENCE.md Appendix A.2 = reference repo
  ``experiments/public/all_scores/v2.0.1/*.json`` (MomentSeeker de-duplicated to 1602 queries).
* ``PUBLISHED_V1_SUMMARY``: §5.1 = V1 paper Table 2 (``assets/vlm2vec_results.png``; the Qwen2-VL-7B row from
  ``v1:figures/vlm2vec_results.png``) plus the MMEB leaderboard row for VLM2Vec Qwen2-VL-2B.
* ``PUBLISHED_V2_SUMMARY``: §5.2 = V2 paper Table 2 (``assets/vlm2vec_v2.pdf`` p. 7). Its V-MRET and Video (18)
  columns do not match the per-dataset JSONs (documented in §5.2); the JSON values are in ``PUBLISHED_SCORES``.

All scores are x100 and exactly as printed (one decimal): hit@1 for image and video datasets, ndcg_linear@5 for
visual-document datasets. For parity targets use ``PUBLISHED_SCORES`` (the per-dataset JSONs), not the paper tables.
"""

from __future__ import annotations

__all__ = [
    "HEADLINE_METRIC",
    "MODEL_ALIASES",
    "PUBLISHED_SCORES",
    "PUBLISHED_V1_SUMMARY",
    "PUBLISHED_V2_SUMMARY",
    "V1_META_TASKS",
    "V1_OOD",
    "V2_META_TASKS",
    "meta_task_of",
    "published_scores",
]

# ---------------------------------------------------------------------------------------------------------------
# Task structure
# ---------------------------------------------------------------------------------------------------------------

# MMEB (V1): 36 datasets = Classification 10 + VQA 10 + Retrieval 12 + Visual Grounding 4 (§4.1), Appendix A order
# (within each meta-task the IND datasets come first, then the OOD ones). "MSCOCO" here is the grounding task;
# the retrieval tasks are "MSCOCO_t2i" / "MSCOCO_i2t".
V1_META_TASKS: dict[str, list[str]] = {
    "Classification": [
        "ImageNet-1K", "N24News", "HatefulMemes", "VOC2007", "SUN397",
        "Place365", "ImageNet-A", "ImageNet-R", "ObjectNet", "Country211",
    ],
    "VQA": [
        "OK-VQA", "A-OKVQA", "DocVQA", "InfographicsVQA", "ChartQA", "Visual7W",
        "ScienceQA", "VizWiz", "GQA", "TextVQA",
    ],
    "Retrieval": [
        "VisDial", "CIRR", "VisualNews_t2i", "VisualNews_i2t", "MSCOCO_t2i", "MSCOCO_i2t", "NIGHTS", "WebQA",
        "FashionIQ", "Wiki-SS-NQ", "OVEN", "EDIS",
    ],
    "Visual Grounding": ["MSCOCO", "RefCOCO", "RefCOCO-Matching", "Visual7W-Pointing"],
}  # fmt: skip

# The 16 out-of-distribution datasets (no MMEB-train data; V1 Table 1 / Table 6). The other 20 are IND.
V1_OOD: frozenset[str] = frozenset(
    {
        "Place365", "ImageNet-A", "ImageNet-R", "ObjectNet", "Country211",
        "ScienceQA", "VizWiz", "GQA", "TextVQA",
        "FashionIQ", "Wiki-SS-NQ", "OVEN", "EDIS",
        "RefCOCO", "RefCOCO-Matching", "Visual7W-Pointing",
    }
)  # fmt: skip

# MMEB-V2: 78 datasets = 36 image + 18 video + 24 visdoc (§4.2). The image meta-tasks are the V1 ones
# (Table 2 of the V2 paper calls I-VG "I-GD", VisRAG "VR" and VisDoc-OOD "VD-OOD").
V2_META_TASKS: dict[str, dict[str, list[str]]] = {
    "image": {
        "I-CLS": [
            "ImageNet-1K",
            "N24News",
            "HatefulMemes",
            "VOC2007",
            "SUN397",
            "Place365",
            "ImageNet-A",
            "ImageNet-R",
            "ObjectNet",
            "Country211",
        ],
        "I-QA": [
            "OK-VQA",
            "A-OKVQA",
            "DocVQA",
            "InfographicsVQA",
            "ChartQA",
            "Visual7W",
            "ScienceQA",
            "VizWiz",
            "GQA",
            "TextVQA",
        ],
        "I-RET": [
            "VisDial",
            "CIRR",
            "VisualNews_t2i",
            "VisualNews_i2t",
            "MSCOCO_t2i",
            "MSCOCO_i2t",
            "NIGHTS",
            "WebQA",
            "FashionIQ",
            "Wiki-SS-NQ",
            "OVEN",
            "EDIS",
        ],
        "I-VG": ["MSCOCO", "RefCOCO", "RefCOCO-Matching", "Visual7W-Pointing"],
    },
    "video": {
        "V-CLS": ["K700", "SmthSmthV2", "HMDB51", "UCF101", "Breakfast"],
        "V-QA": ["MVBench", "Video-MME", "NExTQA", "EgoSchema", "ActivityNetQA"],
        "V-RET": ["DiDeMo", "MSR-VTT", "MSVD", "VATEX", "YouCook2"],
        "V-MRET": ["QVHighlight", "Charades-STA", "MomentSeeker"],
    },
    "visdoc": {
        "VDRv1": [
            "ViDoRe_arxivqa",
            "ViDoRe_docvqa",
            "ViDoRe_infovqa",
            "ViDoRe_tabfquad",
            "ViDoRe_tatdqa",
            "ViDoRe_shiftproject",
            "ViDoRe_syntheticDocQA_artificial_intelligence",
            "ViDoRe_syntheticDocQA_energy",
            "ViDoRe_syntheticDocQA_government_reports",
            "ViDoRe_syntheticDocQA_healthcare_industry",
        ],
        "VDRv2": [
            "ViDoRe_esg_reports_human_labeled_v2",
            "ViDoRe_biomedical_lectures_v2_multilingual",
            "ViDoRe_economics_reports_v2_multilingual",
            "ViDoRe_esg_reports_v2_multilingual",
        ],
        "VisRAG": [
            "VisRAG_ArxivQA",
            "VisRAG_ChartQA",
            "VisRAG_MP-DocVQA",
            "VisRAG_SlideVQA",
            "VisRAG_InfoVQA",
            "VisRAG_PlotQA",
        ],
        "VisDoc-OOD": ["ViDoSeek-page", "ViDoSeek-doc", "MMLongBench-page", "MMLongBench-doc"],
    },
}

# Headline metric per modality (reference experiments/report_score_v2.py).
HEADLINE_METRIC: dict[str, str] = {"image": "hit@1", "video": "hit@1", "visdoc": "ndcg_linear@5"}

# ---------------------------------------------------------------------------------------------------------------
# Per-dataset scores (Appendix A)
# ---------------------------------------------------------------------------------------------------------------

# Column order of the Appendix A tables: V2.0-2B, V1-2B, V1-7B, GME-2B, GME-7B, LamRA-Q2, LamRA-Q2.5, ColPali1.3.
# V1-2B / V1-7B are TIGER-Lab/VLM2Vec-Qwen2VL-{2B,7B} evaluated with the V2 code (980x980 images); LamRA-Qwen2 is
# LamRA-Ret (Qwen2-VL-7B), LamRA-Qwen2.5 is LamRA-Ret-Qwen2.5VL-7b.
_MODELS: tuple[str, ...] = (
    "VLM2Vec-V2.0",
    "VLM2Vec-Qwen2VL-2B",
    "VLM2Vec-Qwen2VL-7B",
    "GME-2B",
    "GME-7B",
    "LamRA-Qwen2",
    "LamRA-Qwen2.5",
    "ColPali-v1.3",
)

# Appendix A.1: all_scores/v2.0.0/*.json. One row per dataset: (dataset, *scores in _MODELS order).
_ROWS_V2_0_0: tuple[tuple[str | float, ...], ...] = (
    # image / I-CLS
    ("ImageNet-1K", 80.8, 77.5, 80.1, 58.3, 64.6, 72.3, 58.9, 42.4),
    ("N24News", 72.9, 73.7, 79.7, 50.1, 50.5, 51.3, 29.8, 25.5),
    ("HatefulMemes", 56.3, 58.3, 69.7, 52.5, 53.6, 49.0, 51.3, 50.6),
    ("VOC2007", 85.0, 74.3, 80.7, 75.9, 80.3, 80.1, 78.7, 69.8),
    ("SUN397", 71.0, 73.8, 77.4, 67.3, 69.5, 68.5, 66.5, 56.1),
    ("Place365", 35.9, 35.3, 37.4, 35.8, 39.1, 40.6, 37.4, 27.5),
    ("ImageNet-A", 47.4, 50.9, 58.1, 28.8, 41.2, 47.0, 36.3, 14.9),
    ("ImageNet-R", 89.3, 84.7, 73.9, 78.6, 83.9, 88.5, 77.0, 64.6),
    ("ObjectNet", 65.2, 37.1, 40.1, 70.6, 69.0, 66.4, 59.4, 45.6),
    ("Country211", 25.2, 21.5, 29.8, 26.5, 24.8, 28.3, 21.7, 6.0),
    # image / I-QA
    ("OK-VQA", 51.5, 48.5, 56.8, 29.9, 33.2, 37.8, 39.9, 9.4),
    ("A-OKVQA", 43.6, 39.5, 47.3, 18.6, 21.0, 27.0, 34.1, 6.6),
    ("DocVQA", 90.1, 82.5, 89.7, 29.8, 41.4, 22.3, 37.1, 11.3),
    ("InfographicsVQA", 58.8, 47.7, 60.0, 11.6, 20.3, 16.5, 23.7, 5.0),
    ("ChartQA", 47.4, 42.3, 56.9, 13.4, 17.8, 11.7, 15.0, 5.7),
    ("Visual7W", 52.9, 51.2, 52.7, 16.2, 22.2, 19.6, 24.6, 6.1),
    ("ScienceQA", 38.2, 30.7, 38.5, 27.3, 28.0, 26.3, 31.3, 16.3),
    ("VizWiz", 43.3, 38.6, 39.9, 37.0, 39.0, 32.0, 32.0, 27.6),
    ("GQA", 64.9, 48.3, 55.1, 75.1, 76.9, 38.5, 57.4, 8.3),
    ("TextVQA", 72.2, 63.3, 71.6, 39.7, 46.8, 33.0, 46.1, 18.8),
    # image / I-RET
    ("VisDial", 82.7, 74.3, 81.9, 48.1, 60.8, 61.3, 62.5, 41.2),
    ("CIRR", 57.5, 46.8, 51.1, 44.2, 54.9, 51.7, 44.7, 8.2),
    ("VisualNews_t2i", 74.5, 73.1, 80.5, 74.7, 79.7, 70.4, 70.1, 50.1),
    ("VisualNews_i2t", 78.2, 73.7, 81.2, 78.3, 83.6, 83.9, 74.2, 47.6),
    ("MSCOCO_t2i", 75.3, 73.4, 77.2, 68.1, 71.2, 72.2, 65.7, 59.2),
    ("MSCOCO_i2t", 71.4, 68.5, 73.9, 63.1, 57.7, 73.7, 71.1, 49.9),
    ("NIGHTS", 68.6, 66.3, 67.6, 67.0, 67.6, 65.6, 64.4, 65.5),
    ("WebQA", 90.6, 85.9, 88.3, 88.8, 91.4, 81.0, 85.7, 53.8),
    ("FashionIQ", 19.5, 14.0, 17.1, 32.9, 37.8, 42.0, 33.4, 5.9),
    ("Wiki-SS-NQ", 66.9, 54.2, 62.3, 73.9, 78.2, 69.7, 67.0, 80.5),
    ("OVEN", 64.3, 68.3, 66.5, 72.3, 75.1, 82.0, 84.8, 50.0),
    ("EDIS", 84.1, 81.2, 85.7, 91.8, 96.0, 85.9, 78.7, 64.7),
    # image / I-VG
    ("MSCOCO", 67.1, 66.5, 75.7, 28.6, 31.4, 44.8, 36.0, 36.7),
    ("RefCOCO", 87.1, 80.9, 87.6, 55.9, 60.9, 62.8, 57.1, 64.5),
    ("RefCOCO-Matching", 85.8, 75.7, 84.6, 73.3, 78.4, 75.7, 82.6, 3.9),
    ("Visual7W-Pointing", 69.2, 68.3, 81.0, 64.1, 66.5, 67.3, 51.2, 56.1),
    # video / V-CLS
    ("K700", 38.0, 31.4, 35.5, 35.2, 39.7, 42.3, 32.1, 23.4),
    ("SmthSmthV2", 42.8, 30.9, 32.1, 29.9, 30.6, 36.3, 25.3, 25.1),
    ("HMDB51", 40.9, 33.8, 42.2, 43.4, 47.9, 40.5, 33.8, 24.8),
    ("UCF101", 60.0, 57.5, 61.8, 52.4, 54.7, 60.4, 53.0, 49.4),
    ("Breakfast", 14.8, 13.4, 23.8, 13.6, 14.3, 16.9, 20.1, 10.9),
    # video / V-QA
    ("MVBench", 33.7, 30.4, 28.5, 37.5, 46.6, 37.2, 37.6, 33.7),
    ("Video-MME", 30.7, 26.9, 27.8, 34.3, 39.2, 34.1, 35.1, 30.6),
    ("NExTQA", 20.9, 20.3, 20.3, 39.5, 53.5, 43.7, 44.9, 35.2),
    ("EgoSchema", 34.0, 25.4, 21.8, 40.8, 46.8, 44.8, 47.0, 38.4),
    ("ActivityNetQA", 52.3, 49.6, 51.4, 58.0, 65.6, 53.2, 48.5, 51.3),
    # video / V-RET
    ("DiDeMo", 30.4, 19.4, 29.3, 22.0, 26.4, 24.8, 22.8, 22.8),
    ("MSR-VTT", 28.3, 25.2, 34.5, 27.3, 31.8, 22.1, 25.0, 17.6),
    ("MSVD", 48.1, 38.2, 46.7, 47.6, 49.7, 46.1, 41.9, 45.4),
    ("VATEX", 26.5, 16.1, 25.5, 23.0, 24.9, 19.1, 18.6, 16.7),
    ("YouCook2", 10.6, 4.1, 9.0, 7.9, 9.1, 9.2, 7.5, 5.3),
    # video / V-MRET
    ("QVHighlight", 49.4, 44.2, 57.7, 43.6, 59.5, 53.8, 60.8, 19.9),
    ("Charades-STA", 20.2, 13.6, 19.8, 14.9, 14.0, 10.9, 18.8, 29.0),
    ("MomentSeeker", 40.8, 34.4, 39.3, 34.8, 37.4, 33.8, 31.8, 27.6),
    # visdoc / VDRv1
    ("ViDoRe_arxivqa", 80.6, 48.9, 60.2, 82.8, 86.9, 10.8, 53.0, 81.7),
    ("ViDoRe_docvqa", 44.8, 27.0, 34.7, 53.1, 57.5, 19.1, 25.4, 56.6),
    ("ViDoRe_infovqa", 83.7, 67.2, 70.4, 90.2, 91.6, 46.3, 72.3, 84.9),
    ("ViDoRe_tabfquad", 89.2, 62.6, 78.2, 93.3, 94.6, 42.8, 66.1, 86.9),
    ("ViDoRe_tatdqa", 43.8, 19.8, 27.6, 69.9, 74.1, 11.4, 25.9, 70.9),
    ("ViDoRe_shiftproject", 60.8, 41.8, 38.6, 89.5, 96.8, 12.0, 27.3, 75.1),
    ("ViDoRe_syntheticDocQA_artificial_intelligence", 88.5, 55.0, 67.7, 97.5, 99.6, 10.3, 72.0, 95.7),
    ("ViDoRe_syntheticDocQA_energy", 86.5, 59.1, 60.4, 91.9, 95.3, 24.8, 65.2, 94.7),
    ("ViDoRe_syntheticDocQA_government_reports", 85.0, 57.1, 61.8, 94.6, 98.8, 16.4, 72.2, 93.5),
    ("ViDoRe_syntheticDocQA_healthcare_industry", 92.2, 59.6, 69.9, 98.7, 99.3, 25.9, 83.7, 95.9),
    # visdoc / VDRv2
    ("ViDoRe_esg_reports_human_labeled_v2", 45.6, 12.6, 6.8, 60.9, 63.4, 7.6, 33.0, 51.3),
    ("ViDoRe_biomedical_lectures_v2_multilingual", 44.3, 7.4, 5.1, 54.0, 49.5, 13.3, 35.9, 54.7),
    ("ViDoRe_economics_reports_v2_multilingual", 43.0, 13.9, 13.9, 50.2, 54.2, 19.1, 31.9, 49.0),
    ("ViDoRe_esg_reports_v2_multilingual", 46.6, 20.1, 11.9, 50.7, 55.4, 5.9, 32.5, 52.9),
    # visdoc / VisRAG
    ("VisRAG_ArxivQA", 76.9, 41.8, 52.6, 82.0, 87.3, 2.0, 37.7, 80.9),
    ("VisRAG_ChartQA", 84.4, 57.9, 70.2, 79.9, 81.9, 41.3, 65.9, 78.1),
    ("VisRAG_MP-DocVQA", 71.8, 43.2, 52.8, 84.4, 89.2, 33.4, 54.5, 86.8),
    ("VisRAG_SlideVQA", 91.5, 74.0, 72.8, 93.4, 94.5, 56.5, 76.5, 95.0),
    ("VisRAG_InfoVQA", 85.7, 70.7, 72.0, 91.4, 93.5, 56.3, 73.3, 85.7),
    ("VisRAG_PlotQA", 66.0, 23.4, 34.3, 64.1, 63.4, 34.6, 41.2, 60.3),
    # visdoc / VisDoc-OOD
    ("ViDoSeek-page", 21.9, 17.7, 22.3, 21.6, 23.2, 11.3, 23.1, 22.2),
    ("ViDoSeek-doc", 80.2, 74.3, 77.8, 83.6, 83.9, 37.1, 80.3, 83.7),
    ("MMLongBench-page", 11.9, 9.6, 11.8, 15.8, 16.2, 8.0, 13.5, 14.2),
    ("MMLongBench-doc", 43.7, 32.6, 40.5, 51.4, 54.3, 27.6, 43.5, 52.5),
)  # fmt: skip

# Appendix A.2: all_scores/v2.0.1/*.json (MomentSeeker is the de-duplicated 1602-query version).
_ROWS_V2_0_1: tuple[tuple[str | float, ...], ...] = (
    # image / I-CLS
    ("ImageNet-1K", 80.8, 77.5, 80.2, 58.1, 64.7, 72.6, 59.2, 42.3),
    ("N24News", 73.0, 73.8, 79.5, 50.3, 50.3, 51.6, 30.4, 25.6),
    ("HatefulMemes", 55.8, 57.9, 70.3, 53.7, 53.9, 49.1, 50.2, 50.9),
    ("VOC2007", 84.9, 74.3, 80.6, 75.8, 80.1, 80.0, 78.2, 69.8),
    ("SUN397", 70.9, 73.7, 77.3, 67.0, 69.4, 68.7, 64.9, 56.2),
    ("Place365", 36.1, 35.0, 37.2, 36.1, 39.1, 40.5, 35.9, 27.7),
    ("ImageNet-A", 47.6, 50.6, 57.6, 28.4, 40.6, 47.2, 36.3, 15.2),
    ("ImageNet-R", 89.3, 84.7, 74.2, 78.5, 83.9, 88.4, 77.0, 65.2),
    ("ObjectNet", 65.1, 36.9, 40.5, 71.2, 69.0, 66.3, 59.2, 45.6),
    ("Country211", 25.8, 21.7, 30.2, 26.4, 24.6, 28.3, 20.6, 6.0),
    # image / I-QA
    ("OK-VQA", 51.7, 48.2, 56.8, 30.1, 33.1, 37.9, 37.7, 9.4),
    ("A-OKVQA", 44.0, 39.7, 47.5, 18.6, 20.8, 26.9, 31.2, 6.4),
    ("DocVQA", 90.1, 82.7, 88.8, 30.0, 41.1, 22.4, 37.9, 11.3),
    ("InfographicsVQA", 59.1, 47.3, 59.0, 11.8, 20.5, 16.5, 23.2, 5.0),
    ("ChartQA", 48.1, 42.2, 56.6, 13.3, 17.7, 11.6, 14.5, 5.7),
    ("Visual7W", 52.8, 50.9, 52.7, 15.6, 22.2, 19.8, 24.4, 6.1),
    ("ScienceQA", 38.1, 30.5, 38.2, 27.1, 28.2, 26.5, 31.7, 16.5),
    ("VizWiz", 43.3, 38.8, 39.6, 37.1, 38.9, 31.9, 32.0, 27.4),
    ("GQA", 65.4, 48.1, 54.4, 75.3, 76.8, 38.3, 55.0, 8.1),
    ("TextVQA", 71.6, 63.2, 71.6, 39.5, 46.4, 33.1, 45.5, 18.9),
    # image / I-RET
    ("VisDial", 82.7, 75.1, 81.6, 47.7, 60.9, 61.0, 63.0, 41.1),
    ("CIRR", 57.3, 46.8, 51.4, 43.1, 54.9, 52.1, 46.6, 8.2),
    ("VisualNews_t2i", 74.7, 73.4, 80.3, 74.8, 79.5, 70.9, 69.9, 50.5),
    ("VisualNews_i2t", 78.3, 73.8, 81.2, 77.7, 83.6, 84.1, 75.5, 47.7),
    ("MSCOCO_t2i", 75.9, 73.1, 77.5, 68.3, 71.5, 72.0, 68.0, 58.6),
    ("MSCOCO_i2t", 71.1, 68.3, 73.6, 63.2, 57.4, 73.6, 71.4, 50.4),
    ("NIGHTS", 68.4, 65.8, 67.5, 67.6, 67.6, 65.7, 65.8, 65.4),
    ("WebQA", 90.6, 85.8, 88.3, 88.8, 91.3, 81.2, 85.7, 54.2),
    ("FashionIQ", 19.6, 13.8, 16.8, 32.2, 37.6, 41.7, 34.7, 5.9),
    ("Wiki-SS-NQ", 67.6, 54.6, 62.1, 73.8, 78.4, 70.1, 66.5, 80.5),
    ("OVEN", 64.8, 68.4, 66.6, 72.1, 75.6, 82.2, 85.0, 50.1),
    ("EDIS", 84.2, 81.4, 85.9, 91.7, 96.1, 86.1, 80.5, 65.2),
    # image / I-VG
    ("MSCOCO", 66.2, 65.7, 75.4, 28.4, 31.4, 44.7, 38.7, 36.5),
    ("RefCOCO", 87.0, 80.8, 87.1, 55.8, 61.2, 62.5, 59.1, 65.0),
    ("RefCOCO-Matching", 86.3, 76.6, 84.4, 73.7, 78.7, 76.2, 84.5, 1.2),
    ("Visual7W-Pointing", 69.0, 69.1, 80.7, 64.6, 66.5, 67.1, 51.5, 56.3),
    # video / V-CLS
    ("K700", 38.2, 31.0, 35.4, 34.9, 39.6, 42.3, 32.2, 23.3),
    ("SmthSmthV2", 43.0, 30.8, 32.0, 30.1, 30.5, 36.1, 25.5, 24.9),
    ("HMDB51", 40.2, 34.0, 41.9, 43.0, 48.0, 40.4, 34.4, 24.8),
    ("UCF101", 60.0, 57.6, 62.1, 52.1, 54.4, 60.7, 51.1, 49.3),
    ("Breakfast", 14.8, 12.9, 23.6, 13.6, 13.9, 17.6, 19.9, 10.9),
    # video / V-QA
    ("MVBench", 33.6, 30.5, 28.5, 37.6, 46.3, 37.3, 37.5, 33.6),
    ("Video-MME", 30.8, 27.1, 28.0, 34.0, 39.2, 34.1, 35.3, 30.6),
    ("NExTQA", 20.9, 20.2, 20.3, 39.4, 53.5, 43.7, 45.0, 35.1),
    ("EgoSchema", 35.0, 25.6, 22.2, 40.6, 46.4, 44.8, 47.2, 38.4),
    ("ActivityNetQA", 53.0, 49.9, 51.4, 57.2, 66.0, 53.8, 48.5, 51.4),
    # video / V-RET
    ("DiDeMo", 30.0, 19.1, 29.6, 21.5, 26.3, 25.0, 23.7, 22.5),
    ("MSR-VTT", 27.8, 25.6, 34.7, 27.0, 31.8, 22.6, 25.9, 17.7),
    ("MSVD", 47.3, 37.5, 46.7, 47.3, 49.6, 46.4, 42.8, 45.4),
    ("VATEX", 26.2, 15.7, 25.4, 23.0, 24.7, 19.1, 18.3, 16.7),
    ("YouCook2", 10.6, 4.4, 9.0, 7.9, 8.9, 9.2, 7.6, 5.2),
    # video / V-MRET
    ("QVHighlight", 49.7, 43.7, 57.9, 44.0, 59.4, 53.9, 61.6, 20.1),
    ("Charades-STA", 20.1, 12.9, 18.6, 14.3, 13.9, 10.9, 19.0, 29.0),
    ("MomentSeeker", 42.9, 35.4, 41.0, 37.1, 39.3, 36.0, 33.3, 29.3),
    # visdoc / VDRv1
    ("ViDoRe_arxivqa", 78.9, 18.1, 28.2, 82.5, 87.5, 31.5, 53.0, 83.3),
    ("ViDoRe_docvqa", 37.1, 14.0, 19.0, 55.2, 56.6, 19.9, 25.4, 59.2),
    ("ViDoRe_infovqa", 82.7, 39.5, 44.8, 90.7, 92.2, 63.7, 72.2, 85.4),
    ("ViDoRe_tabfquad", 87.8, 36.0, 17.0, 93.3, 92.7, 53.5, 66.5, 86.6),
    ("ViDoRe_tatdqa", 44.3, 10.5, 5.7, 70.3, 76.6, 7.9, 26.0, 70.5),
    ("ViDoRe_shiftproject", 61.0, 8.4, 1.6, 92.8, 95.6, 15.9, 28.1, 76.8),
    ("ViDoRe_syntheticDocQA_artificial_intelligence", 89.1, 17.0, 18.2, 98.1, 99.6, 29.8, 70.3, 96.3),
    ("ViDoRe_syntheticDocQA_energy", 86.3, 16.4, 23.9, 92.6, 95.7, 36.0, 66.3, 95.0),
    ("ViDoRe_syntheticDocQA_government_reports", 85.6, 25.2, 13.9, 97.2, 99.5, 41.2, 72.2, 95.6),
    ("ViDoRe_syntheticDocQA_healthcare_industry", 91.1, 20.8, 27.6, 98.5, 99.5, 38.8, 83.8, 97.0),
    # visdoc / VDRv2
    ("ViDoRe_esg_reports_human_labeled_v2", 45.8, 13.1, 7.0, 60.3, 62.8, 6.9, 33.0, 57.2),
    ("ViDoRe_biomedical_lectures_v2_multilingual", 44.6, 6.5, 5.2, 54.0, 49.8, 13.4, 35.9, 56.2),
    ("ViDoRe_economics_reports_v2_multilingual", 42.3, 12.9, 13.8, 50.8, 53.9, 19.4, 32.4, 50.2),
    ("ViDoRe_esg_reports_v2_multilingual", 45.7, 20.3, 11.1, 50.4, 55.4, 6.4, 33.3, 55.6),
    # visdoc / VisRAG
    ("VisRAG_ArxivQA", 76.7, 41.2, 52.8, 82.0, 87.7, 2.0, 38.0, 80.9),
    ("VisRAG_ChartQA", 84.2, 59.5, 69.0, 79.1, 81.3, 42.7, 65.2, 77.0),
    ("VisRAG_MP-DocVQA", 71.8, 43.6, 52.7, 84.3, 89.1, 33.4, 54.1, 87.0),
    ("VisRAG_SlideVQA", 91.4, 74.5, 72.8, 93.7, 94.7, 56.3, 76.6, 95.1),
    ("VisRAG_InfoVQA", 85.9, 71.1, 71.3, 91.4, 93.5, 56.9, 73.5, 85.7),
    ("VisRAG_PlotQA", 65.9, 23.5, 34.5, 64.1, 63.4, 34.1, 41.5, 60.2),
    # visdoc / VisDoc-OOD
    ("ViDoSeek-page", 20.9, 15.6, 13.6, 22.7, 23.6, 8.0, 22.9, 22.5),
    ("ViDoSeek-doc", 80.3, 56.3, 54.2, 82.5, 83.0, 54.7, 80.3, 83.5),
    ("MMLongBench-page", 11.9, 5.9, 4.9, 16.3, 15.4, 2.1, 13.7, 14.9),
    ("MMLongBench-doc", 42.8, 26.0, 24.0, 51.9, 53.4, 14.8, 43.6, 52.7),
)  # fmt: skip


def _by_model(rows: tuple[tuple[str | float, ...], ...]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {model: {} for model in _MODELS}
    for dataset, *scores in rows:
        for model, score in zip(_MODELS, scores, strict=True):
            table[model][str(dataset)] = float(score)
    return table


# release -> model key -> dataset -> score (x100, as printed).
PUBLISHED_SCORES: dict[str, dict[str, dict[str, float]]] = {
    "v2.0.0": _by_model(_ROWS_V2_0_0),
    "v2.0.1": _by_model(_ROWS_V2_0_1),
}

# Hugging Face Hub ids of the published checkpoints -> model keys of PUBLISHED_SCORES. (The LamRA checkpoints have
# no single canonical Hub id in the reference, so they are reachable by model key only.)
MODEL_ALIASES: dict[str, str] = {
    "VLM2Vec/VLM2Vec-V2.0": "VLM2Vec-V2.0",
    "TIGER-Lab/VLM2Vec-Qwen2VL-2B": "VLM2Vec-Qwen2VL-2B",
    "TIGER-Lab/VLM2Vec-Qwen2VL-7B": "VLM2Vec-Qwen2VL-7B",
    "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct": "GME-2B",
    "Alibaba-NLP/gme-Qwen2-VL-7B-Instruct": "GME-7B",
    "vidore/colpali-v1.3": "ColPali-v1.3",
}

# ---------------------------------------------------------------------------------------------------------------
# Paper summaries (§5.1, §5.2)
# ---------------------------------------------------------------------------------------------------------------

# §5.1: V1 paper Table 2 (MMEB, 36 tasks, Precision@1). Keys: model -> meta-task / IND (20) / OOD (16) / Overall (36).
# Notes:
# * "VLM2Vec Qwen2-VL-7B LoRA high-res" is the "Qwen2-VL(-7B)" row of v1:figures/vlm2vec_results.png.
# * "VLM2Vec Qwen2-VL-2B" is the later MMEB leaderboard row, 59.3 (59.0, 49.4, 65.4, 73.4). The repo README news
#   says 60.1 for the 2B, with no breakdown; the leaderboard says 59.3. The 36-task-weighted mean of the four
#   leaderboard meta-task numbers is 60.07, i.e. the README's 60.1, not 59.3, so the leaderboard row is not
#   self-consistent. (60.1 is also the Phi-3.5-V LoRA overall.) The V2 code re-scores this checkpoint at 59.7
#   (Appendix A.1), see PUBLISHED_V2_SUMMARY["VLM2Vec-Qwen2VL (2B)"].
# * "SigLIP": its four meta-task numbers give a weighted mean of 30.7, not the printed Overall 34.8 (IND/OOD do give
#   34.8), so one of its meta-task cells is off in the source table; transcribed as printed.
PUBLISHED_V1_SUMMARY: dict[str, dict[str, float]] = {
    "CLIP": {
        "Classification": 42.8,
        "VQA": 9.1,
        "Retrieval": 53.0,
        "Visual Grounding": 51.8,
        "IND": 37.1,
        "OOD": 38.7,
        "Overall": 37.8,
    },
    "BLIP2": {
        "Classification": 27.0,
        "VQA": 4.2,
        "Retrieval": 33.9,
        "Visual Grounding": 47.0,
        "IND": 25.3,
        "OOD": 25.1,
        "Overall": 25.2,
    },
    "SigLIP": {
        "Classification": 40.3,
        "VQA": 8.4,
        "Retrieval": 31.6,
        "Visual Grounding": 59.5,
        "IND": 32.3,
        "OOD": 38.0,
        "Overall": 34.8,
    },
    "OpenCLIP": {
        "Classification": 47.8,
        "VQA": 10.9,
        "Retrieval": 52.3,
        "Visual Grounding": 53.3,
        "IND": 39.3,
        "OOD": 40.2,
        "Overall": 39.7,
    },
    "UniIR (BLIP_FF)": {
        "Classification": 42.1,
        "VQA": 15.0,
        "Retrieval": 60.1,
        "Visual Grounding": 62.2,
        "IND": 44.7,
        "OOD": 40.4,
        "Overall": 42.8,
    },
    "UniIR (CLIP_SF)": {
        "Classification": 44.3,
        "VQA": 16.2,
        "Retrieval": 61.8,
        "Visual Grounding": 65.3,
        "IND": 47.1,
        "OOD": 41.7,
        "Overall": 44.7,
    },
    "E5-V": {
        "Classification": 21.8,
        "VQA": 4.9,
        "Retrieval": 11.5,
        "Visual Grounding": 19.0,
        "IND": 14.9,
        "OOD": 11.5,
        "Overall": 13.3,
    },
    "MagicLens": {
        "Classification": 38.8,
        "VQA": 8.3,
        "Retrieval": 35.4,
        "Visual Grounding": 26.0,
        "IND": 31.0,
        "OOD": 23.7,
        "Overall": 27.8,
    },
    "CLIP-FFT (MMEB-trained)": {
        "Classification": 55.2,
        "VQA": 19.7,
        "Retrieval": 53.2,
        "Visual Grounding": 62.2,
        "IND": 47.6,
        "OOD": 42.8,
        "Overall": 45.4,
    },
    "OpenCLIP-FFT": {
        "Classification": 56.0,
        "VQA": 21.9,
        "Retrieval": 55.4,
        "Visual Grounding": 64.1,
        "IND": 50.5,
        "OOD": 43.1,
        "Overall": 47.2,
    },
    "VLM2Vec Phi-3.5-V FFT (bs 1024)": {
        "Classification": 52.8,
        "VQA": 50.3,
        "Retrieval": 57.8,
        "Visual Grounding": 72.3,
        "IND": 62.8,
        "OOD": 47.4,
        "Overall": 55.9,
    },
    "VLM2Vec Phi-3.5-V LoRA (bs 1024)": {
        "Classification": 54.8,
        "VQA": 54.9,
        "Retrieval": 62.3,
        "Visual Grounding": 79.5,
        "IND": 66.5,
        "OOD": 52.0,
        "Overall": 60.1,
    },
    "VLM2Vec LLaVA-1.6 LoRA (336²)": {
        "Classification": 54.7,
        "VQA": 50.3,
        "Retrieval": 56.2,
        "Visual Grounding": 64.0,
        "IND": 61.0,
        "OOD": 47.5,
        "Overall": 55.0,
    },
    "VLM2Vec LLaVA-1.6 LoRA (1344²)": {
        "Classification": 61.2,
        "VQA": 49.9,
        "Retrieval": 67.4,
        "Visual Grounding": 86.1,
        "IND": 67.5,
        "OOD": 57.1,
        "Overall": 62.9,
    },
    "VLM2Vec Qwen2-VL-7B LoRA high-res": {
        "Classification": 62.6,
        "VQA": 57.8,
        "Retrieval": 69.9,
        "Visual Grounding": 81.7,
        "IND": 72.2,
        "OOD": 57.8,
        "Overall": 65.8,
    },
    "VLM2Vec Qwen2-VL-2B": {
        "Classification": 59.0,
        "VQA": 49.4,
        "Retrieval": 65.4,
        "Visual Grounding": 73.4,
        "Overall": 59.3,
    },
}

# §5.2: V2 paper Table 2 (MMEB-V2, 78 tasks). Keys: model -> column header of that table.
# The paper appendix and all_scores/v2.0.0 agree with this table except the V-MRET and Video (18) columns of every
# model but ColPali: the JSONs (PUBLISHED_SCORES["v2.0.0"]) give V-MRET 36.8 / Video 34.6 for VLM2Vec-V2, and
# V-MRET 31.1 (GME-2B), 37.0 (GME-7B), 32.8 (LamRA-Qwen2), 37.2 (LamRA-Qwen2.5), 30.7 (V1-2B), 38.9 (V1-7B).
PUBLISHED_V2_SUMMARY: dict[str, dict[str, float]] = {
    "ColPali v1.3 (3B)": {
        "I-CLS": 40.3,
        "I-QA": 11.5,
        "I-RET": 48.1,
        "I-GD": 40.3,
        "Image (36)": 34.9,
        "V-CLS": 26.7,
        "V-QA": 37.8,
        "V-RET": 21.6,
        "V-MRET": 25.5,
        "Video (18)": 28.2,
        "VDRv1": 83.6,
        "VDRv2": 52.0,
        "VR": 81.1,
        "VD-OOD": 43.1,
        "VisDoc (24)": 71.0,
        "All (78)": 44.4,
    },
    "GME (2B)": {
        "I-CLS": 54.4,
        "I-QA": 29.9,
        "I-RET": 66.9,
        "I-GD": 55.5,
        "Image (36)": 51.9,
        "V-CLS": 34.9,
        "V-QA": 42.0,
        "V-RET": 25.6,
        "V-MRET": 32.4,
        "Video (18)": 33.9,
        "VDRv1": 86.1,
        "VDRv2": 54.0,
        "VR": 82.5,
        "VD-OOD": 43.1,
        "VisDoc (24)": 72.7,
        "All (78)": 54.1,
    },
    "GME (7B)": {
        "I-CLS": 57.7,
        "I-QA": 34.7,
        "I-RET": 71.2,
        "I-GD": 59.3,
        "Image (36)": 56.0,
        "V-CLS": 37.4,
        "V-QA": 50.4,
        "V-RET": 28.4,
        "V-MRET": 38.2,
        "Video (18)": 38.6,
        "VDRv1": 89.4,
        "VDRv2": 55.6,
        "VR": 85.0,
        "VD-OOD": 44.4,
        "VisDoc (24)": 75.2,
        "All (78)": 57.8,
    },
    "LamRA-Qwen2 (7B)": {
        "I-CLS": 59.2,
        "I-QA": 26.5,
        "I-RET": 70.0,
        "I-GD": 62.7,
        "Image (36)": 54.1,
        "V-CLS": 39.3,
        "V-QA": 42.6,
        "V-RET": 24.3,
        "V-MRET": 34.6,
        "Video (18)": 35.2,
        "VDRv1": 22.0,
        "VDRv2": 11.5,
        "VR": 37.4,
        "VD-OOD": 21.0,
        "VisDoc (24)": 23.9,
        "All (78)": 40.4,
    },
    "LamRA-Qwen2.5 (7B)": {
        "I-CLS": 51.7,
        "I-QA": 34.1,
        "I-RET": 66.9,
        "I-GD": 56.7,
        "Image (36)": 52.4,
        "V-CLS": 32.9,
        "V-QA": 42.6,
        "V-RET": 23.2,
        "V-MRET": 37.6,
        "Video (18)": 33.7,
        "VDRv1": 56.3,
        "VDRv2": 33.3,
        "VR": 58.2,
        "VD-OOD": 40.1,
        "VisDoc (24)": 50.2,
        "All (78)": 47.4,
    },
    "VLM2Vec-Qwen2VL (2B)": {
        "I-CLS": 58.7,
        "I-QA": 49.3,
        "I-RET": 65.0,
        "I-GD": 72.9,
        "Image (36)": 59.7,
        "V-CLS": 33.4,
        "V-QA": 30.5,
        "V-RET": 20.6,
        "V-MRET": 33.0,
        "Video (18)": 29.0,
        "VDRv1": 49.8,
        "VDRv2": 13.5,
        "VR": 51.8,
        "VD-OOD": 33.5,
        "VisDoc (24)": 41.6,
        "All (78)": 47.0,
    },
    "VLM2Vec-Qwen2VL (7B)": {
        "I-CLS": 62.7,
        "I-QA": 56.9,
        "I-RET": 69.4,
        "I-GD": 82.2,
        "Image (36)": 65.5,
        "V-CLS": 39.1,
        "V-QA": 30.0,
        "V-RET": 29.0,
        "V-MRET": 40.6,
        "Video (18)": 34.0,
        "VDRv1": 56.9,
        "VDRv2": 9.4,
        "VR": 59.1,
        "VD-OOD": 38.1,
        "VisDoc (24)": 46.4,
        "All (78)": 52.3,
    },
    "VLM2Vec-V2 (2B)": {
        "I-CLS": 62.9,
        "I-QA": 56.3,
        "I-RET": 69.5,
        "I-GD": 77.3,
        "Image (36)": 64.9,
        "V-CLS": 39.3,
        "V-QA": 34.3,
        "V-RET": 28.8,
        "V-MRET": 38.5,
        "Video (18)": 34.9,
        "VDRv1": 75.5,
        "VDRv2": 44.9,
        "VR": 79.4,
        "VD-OOD": 39.4,
        "VisDoc (24)": 65.4,
        "All (78)": 58.0,
    },
}

# ---------------------------------------------------------------------------------------------------------------
# Accessors
# ---------------------------------------------------------------------------------------------------------------

_DATASET_META: dict[str, tuple[str, str]] = {
    dataset: (modality, meta_task)
    for modality, meta_tasks in V2_META_TASKS.items()
    for meta_task, datasets in meta_tasks.items()
    for dataset in datasets
}
_DATASET_META_FOLDED: dict[str, tuple[str, str]] = {name.casefold(): meta for name, meta in _DATASET_META.items()}


def _resolve_model(model: str) -> str:
    keys = {key.casefold(): key for key in PUBLISHED_SCORES["v2.0.0"]}
    keys.update({alias.casefold(): key for alias, key in MODEL_ALIASES.items()})
    try:
        return keys[model.strip().casefold()]
    except KeyError:
        known = sorted(PUBLISHED_SCORES["v2.0.0"]) + sorted(MODEL_ALIASES)
        raise KeyError(f"unknown model {model!r}; known model keys and Hub ids: {', '.join(known)}") from None


def published_scores(model: str, release: str = "v2.0.1") -> dict[str, float]:
    """Per-dataset published MMEB-V2 scores (x100) of ``model`` in ``release`` ("v2.0.0" or "v2.0.1").

    ``model`` is a model key of ``PUBLISHED_SCORES`` (e.g. "VLM2Vec-V2.0") or a Hub id of ``MODEL_ALIASES``
    (e.g. "VLM2Vec/VLM2Vec-V2.0"), case-insensitive. Returns a fresh dict (dataset -> score) covering all 78
    datasets. Raises ``KeyError`` listing the known keys for an unknown model or release.
    """
    if release not in PUBLISHED_SCORES:
        raise KeyError(f"unknown release {release!r}; known releases: {', '.join(PUBLISHED_SCORES)}")
    return dict(PUBLISHED_SCORES[release][_resolve_model(model)])


def meta_task_of(dataset: str) -> tuple[str, str] | None:
    """``(modality, V2 meta-task)`` of a known MMEB-V2 dataset, e.g. ``("image", "I-VG")`` for "MSCOCO"; else None.

    Exact names first, then a case-insensitive match.
    """
    return _DATASET_META.get(dataset) or _DATASET_META_FOLDED.get(dataset.casefold())
