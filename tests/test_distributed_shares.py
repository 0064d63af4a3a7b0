"""Cost-balanced shares of a work list and the launcher's ranks (`vlm2vec_hf.distributed`)."""

from __future__ import annotations

import random

import pytest

from vlm2vec_hf.distributed import Ranks, balanced_shares, estimate_cost, launched_ranks


def test_shares_cover_every_item_once_and_balance_a_skewed_list():
    rng = random.Random(0)
    costs = [rng.choice([10, 10, 10, 300, 2000]) * rng.uniform(0.5, 1.5) for _ in range(500)]
    for world_size in (2, 4, 8):
        shares = balanced_shares(costs, world_size)
        assert sorted(i for share in shares for i in share) == list(range(len(costs)))
        totals = [sum(costs[i] for i in share) for share in shares]
        assert max(totals) / (sum(totals) / world_size) <= 1.1
    # By count, the same list is far from balanced in cost: the split is by cost, not by count.
    by_count = [sum(costs[i::4]) for i in range(4)]
    assert max(by_count) / (sum(by_count) / 4) > 1.05


def test_shares_are_deterministic_and_sorted():
    costs = [5.0, 5.0, 1.0, 9.0, 5.0]
    assert balanced_shares(costs, 2) == balanced_shares(list(costs), 2) == [[3, 4], [0, 1, 2]]
    assert balanced_shares([], 3) == [[], [], []]
    with pytest.raises(ValueError, match="world_size must be at least 1"):
        balanced_shares(costs, 0)


def test_cost_counts_text_images_and_clips():
    assert estimate_cost("x" * 40) == 10
    assert estimate_cost("", num_images=2, image_tokens=100) == 200
    assert estimate_cost(None, num_clips=1, clip_tokens=700) == 700
    assert estimate_cost("") == 1


def test_ranks_come_from_the_launcher_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launched_ranks() == Ranks(0, 1, 0) and launched_ranks().is_main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launched_ranks() == Ranks(3, 4, 1) and launched_ranks().distributed
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4 is outside WORLD_SIZE=4"):
        launched_ranks()
