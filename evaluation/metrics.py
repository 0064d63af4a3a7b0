"""Ranking metrics of the MMEB protocols."""

from __future__ import annotations

import numpy as np


def hit_at_1_gold_first(scores: np.ndarray) -> float:
    """MMEB-V1 hit@1 for one query: 1.0 iff the gold candidate (index 0) has the highest score.

    `numpy.argmax` returns the first maximum, so ties go to the gold candidate, as in the reference's `get_pred`.
    """
    return float(int(np.argmax(scores)) == 0)
