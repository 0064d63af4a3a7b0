"""Ranking metrics of the MMEB protocols.

V1 (REFERENCE.md §4.1): hit@1 = the gold candidate (index 0) has the highest cosine; `numpy.argmax` returns the first
maximum, so ties go to the gold (here also when a `gold_index` column lists it elsewhere; `hit_at_1`, which the
evaluator calls). V2 (§4.2, the reference's `RankingMetrics`): hit, nDCG (linear and exponential gain), precision,
recall, F1, MAP and MRR at 1, 5 and 10 over a ranking of the candidates. The reference ranks with
`np.argsort(-score)` (quicksort, tie order undefined); here the sort is stable, so tied candidates keep their listed
order and results are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

CUTOFFS = (1, 5, 10)
METRIC_NAMES = ("hit", "ndcg_linear", "ndcg_exponential", "precision", "recall", "f1", "map", "mrr")


def hit_at_1(scores: np.ndarray, relevance: Mapping[int, float]) -> float:
    """MMEB-V1 hit@1 for one query: 1.0 iff a gold candidate (relevance > 0) has the highest score.

    Ties go to the gold: a gold candidate that ties the best score is a hit wherever it is listed. With the gold
    listed first (the reference's layout) this is exactly `argmax(scores) == 0` (`numpy.argmax` returns the first
    maximum), the reference's `get_pred`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    gold = [int(index) for index, grade in relevance.items() if grade > 0]
    if not gold:
        raise ValueError("a query needs at least one relevant candidate")
    return float(scores[gold].max() >= scores.max())


def hit_at_1_gold_first(scores: np.ndarray) -> float:
    """[`hit_at_1`] with the gold candidate at index 0 (the reference's layout)."""
    return hit_at_1(scores, {0: 1.0})


def rank(scores: np.ndarray) -> np.ndarray:
    """Candidate indices from best to worst score (shape `(n,)`); ties keep their listed order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _dcg(gains: Sequence[float]) -> float:
    return sum(gain / math.log2(position + 2) for position, gain in enumerate(gains))


def ranking_metrics(
    ranking: Sequence[int], relevance: Mapping[int, float], cutoffs: Sequence[int] = CUTOFFS
) -> dict[str, float]:
    """Every V2 metric at every cutoff for one query.

    Args:
        ranking: candidate indices, best first (from [`rank`]); only the first `max(cutoffs)` are read.
        relevance: candidate index -> relevance grade (> 0 means relevant; 1 for binary relevance).
        cutoffs: the k of `metric@k`.

    Returns:
        `{"hit@1": ..., "ndcg_linear@5": ..., ...}`, each in [0, 1].
    """
    relevant = {index: grade for index, grade in relevance.items() if grade > 0}
    if not relevant:
        raise ValueError("a query needs at least one relevant candidate")
    grades = [relevant.get(int(index), 0.0) for index in ranking[: max(cutoffs)]]
    ideal = sorted(relevant.values(), reverse=True)
    first_hit = next((position for position, grade in enumerate(grades) if grade > 0), None)
    metrics = {}
    for k in cutoffs:
        top = grades[:k]
        found = sum(1 for grade in top if grade > 0)
        precision, recall = found / k, found / len(relevant)
        precisions_at_hits = [
            sum(1 for grade in top[: position + 1] if grade > 0) / (position + 1)
            for position, grade in enumerate(top)
            if grade > 0
        ]
        metrics[f"hit@{k}"] = float(found > 0)
        metrics[f"ndcg_linear@{k}"] = _dcg(top) / _dcg(ideal[:k])
        metrics[f"ndcg_exponential@{k}"] = _dcg([2**g - 1 for g in top]) / _dcg([2**g - 1 for g in ideal[:k]])
        metrics[f"precision@{k}"] = precision
        metrics[f"recall@{k}"] = recall
        metrics[f"f1@{k}"] = 2 * precision * recall / (precision + recall) if found else 0.0
        metrics[f"map@{k}"] = sum(precisions_at_hits) / min(len(relevant), k)
        metrics[f"mrr@{k}"] = 1.0 / (first_hit + 1) if first_hit is not None and first_hit < k else 0.0
    return metrics


def mean_metrics(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-metric mean over queries."""
    return {name: float(np.mean([metrics[name] for metrics in per_query])) for name in per_query[0]}
