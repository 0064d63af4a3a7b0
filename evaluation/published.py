"""Published MMEB / MMEB-V2 scores and the MMEB task structure, read from the package data in ``tables/``.

Where each table comes from (section numbers are those of ``REFERENCE.md``; each file's header says the same):

* ``tables/mmeb.yaml``: ``V1_META_TASKS`` / ``V1_OOD`` (§4.1, V1 paper Table 1; IND = has MMEB-train data),
  ``V2_META_TASKS`` / ``HEADLINE_METRIC`` (§4.2, reference ``experiments/report_score_v2.py``) and
  ``MODEL_ALIASES`` (Hub ids -> model keys). V1's meta-tasks are V2's image meta-tasks under their V1 names.
* ``tables/published_scores.csv``: ``PUBLISHED_SCORES["v2.0.0"]`` (Appendix A.1 = reference repo
  ``experiments/public/all_scores/v2.0.0/*.json``) and ``PUBLISHED_SCORES["v2.0.1"]`` (Appendix A.2, MomentSeeker
  de-duplicated to 1602 queries).
* ``tables/published_v1_summary.csv``: ``PUBLISHED_V1_SUMMARY``, §5.1 = V1 paper Table 2 plus the MMEB leaderboard
  row of the 2B V1 model.
* ``tables/published_v2_summary.csv``: ``PUBLISHED_V2_SUMMARY``, §5.2 = V2 paper Table 2. Its V-MRET and Video (18)
  columns do not match the per-dataset JSONs (documented in §5.2); the JSON values are in ``PUBLISHED_SCORES``.
* ``tables/published_v2_updated_summary.csv``: ``PUBLISHED_V2_UPDATED_SUMMARY``, a later MMEB-V2 table with the
  models re-evaluated on the updated VisDoc OOD split (its source is in the file's header); no per-dataset scores
  are published for it.

All scores are x100 and exactly as printed (one decimal): hit@1 for image and video datasets, ndcg_linear@5 for
visual-document datasets. For parity targets use ``PUBLISHED_SCORES`` (the per-dataset JSONs), not the paper tables.
"""

from __future__ import annotations

from pathlib import Path

from vlm2vec_hf.package_data import DataFileError, read_csv, read_yaml

__all__ = [
    "HEADLINE_METRIC",
    "MODEL_ALIASES",
    "PUBLISHED_SCORES",
    "PUBLISHED_V1_SUMMARY",
    "PUBLISHED_V2_SUMMARY",
    "PUBLISHED_V2_UPDATED_SUMMARY",
    "SUMMARY_COLUMN_GROUPS",
    "SUMMARY_MODEL_ALIASES",
    "check_published",
    "is_summary_model",
    "published_group_means",
    "V1_META_TASKS",
    "V1_OOD",
    "V2_META_TASKS",
    "meta_task_of",
    "published_scores",
]

TABLES = Path(__file__).with_name("tables")


def _score(path: Path, row: dict[str, str], column: str) -> float:
    try:
        return float(row[column])
    except ValueError:
        raise DataFileError(f"{path}: {column!r} of {row} is not a number") from None


def _read_scores(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """release -> model key -> dataset -> score, from one row per (release, dataset) and one column per model."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for row in read_csv(path):
        release, dataset = row["release"], row["dataset"]
        models = [column for column in row if column not in ("release", "dataset")]
        by_model = table.setdefault(release, {model: {} for model in models})
        for model in models:
            by_model[model][dataset] = _score(path, row, model)
    return table


def _read_summary(path: Path) -> dict[str, dict[str, float]]:
    """model -> column -> score; an empty cell is a value the source does not give, so it is left out."""
    return {
        row["model"]: {column: _score(path, row, column) for column, cell in row.items() if column != "model" and cell}
        for row in read_csv(path)
    }


_MMEB = read_yaml(TABLES / "mmeb.yaml")
V2_META_TASKS: dict[str, dict[str, list[str]]] = _MMEB["v2_meta_tasks"]
# MMEB (V1): the 36 image datasets under the V1 meta-task names.
V1_META_TASKS: dict[str, list[str]] = {
    v1_name: list(V2_META_TASKS["image"][v2_name]) for v2_name, v1_name in _MMEB["v1_meta_task_names"].items()
}
V1_OOD: frozenset[str] = frozenset(_MMEB["v1_ood"])
HEADLINE_METRIC: dict[str, str] = _MMEB["headline_metric"]
MODEL_ALIASES: dict[str, str] = _MMEB["model_aliases"]
# release -> model key -> dataset -> score (x100, as printed).
PUBLISHED_SCORES: dict[str, dict[str, dict[str, float]]] = _read_scores(TABLES / "published_scores.csv")
PUBLISHED_V1_SUMMARY: dict[str, dict[str, float]] = _read_summary(TABLES / "published_v1_summary.csv")
PUBLISHED_V2_SUMMARY: dict[str, dict[str, float]] = _read_summary(TABLES / "published_v2_summary.csv")
PUBLISHED_V2_UPDATED_SUMMARY: dict[str, dict[str, float]] = _read_summary(TABLES / "published_v2_updated_summary.csv")


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


SUMMARY_MODEL_ALIASES: dict[str, str] = _MMEB["summary_model_aliases"]
SUMMARY_COLUMN_GROUPS: dict[str, str] = _MMEB["summary_column_groups"]


def is_summary_model(model: str) -> bool:
    """Whether ``model`` is published as MMEB-V2 group means only (a row or alias of ``PUBLISHED_V2_UPDATED_SUMMARY``)
    and has no per-dataset scores."""
    try:
        _resolve_model(model)
        return False
    except KeyError:
        return _summary_row(model) is not None


def _summary_row(model: str) -> str | None:
    keys = {key.casefold(): key for key in PUBLISHED_V2_UPDATED_SUMMARY}
    keys.update({alias.casefold(): row for alias, row in SUMMARY_MODEL_ALIASES.items()})
    return keys.get(model.strip().casefold())


def published_group_means(model: str) -> dict[str, float]:
    """A summary-only model's published MMEB-V2 means (x100) by the evaluator's group names (``"I-CLS"``, ...,
    ``"Image"``, ``"Video"``, ``"VisDoc"``, ``"All"``), each over the whole group. Raises ``KeyError`` listing the
    known summary models for an unknown one."""
    row = _summary_row(model)
    if row is None:
        known = sorted(PUBLISHED_V2_UPDATED_SUMMARY) + sorted(SUMMARY_MODEL_ALIASES)
        raise KeyError(f"unknown model {model!r}; known summary models: {', '.join(known)}")
    return {SUMMARY_COLUMN_GROUPS[column]: score for column, score in PUBLISHED_V2_UPDATED_SUMMARY[row].items()}


def check_published(model: str, release: str = "v2.0.1") -> None:
    """Raise ``KeyError`` naming the known models unless ``model`` has per-dataset or summary scores."""
    if is_summary_model(model):
        return
    try:
        published_scores(model, release)
    except KeyError as error:
        raise KeyError(f"{error.args[0]}; summary-only models: {', '.join(sorted(SUMMARY_MODEL_ALIASES))}") from None


def meta_task_of(dataset: str) -> tuple[str, str] | None:
    """``(modality, V2 meta-task)`` of a known MMEB-V2 dataset, e.g. ``("image", "I-VG")`` for "MSCOCO"; else None.

    Exact names first, then a case-insensitive match.
    """
    return _DATASET_META.get(dataset) or _DATASET_META_FOLDED.get(dataset.casefold())
