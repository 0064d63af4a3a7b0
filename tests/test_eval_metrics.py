"""MMEB metrics, aggregation and the evaluator's scoring on hand-computed cases."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from vlm2vec_hf.evaluation.aggregate import v1_groups, v2_groups
from vlm2vec_hf.evaluation.data import EvalDataset
from vlm2vec_hf.evaluation.evaluator import MMEBEvaluator
from vlm2vec_hf.evaluation.metrics import hit_at_1, hit_at_1_gold_first, rank, ranking_metrics


def test_v1_hit_at_1_ties_go_to_the_gold_candidate():
    assert hit_at_1_gold_first(np.array([0.5, 0.5, 0.1])) == 1.0
    assert hit_at_1_gold_first(np.array([0.4, 0.5])) == 0.0
    assert hit_at_1_gold_first(np.array([-0.3])) == 1.0  # a single candidate is always right


def test_v1_hit_at_1_ties_go_to_the_gold_wherever_it_is_listed():
    assert hit_at_1(np.array([0.5, 0.5, 0.1]), {1: 1.0}) == 1.0  # a gold_index after a tied candidate
    assert hit_at_1(np.array([0.5, 0.4, 0.5]), {1: 1.0}) == 0.0
    assert hit_at_1(np.array([0.2, 0.9]), {1: 1.0}) == 1.0
    with pytest.raises(ValueError, match="relevant"):
        hit_at_1(np.array([0.2, 0.9]), {0: 0.0})


def test_ranking_is_stable_on_ties():
    assert rank(np.array([0.1, 0.9, 0.9, 0.5])).tolist() == [1, 2, 3, 0]


def test_binary_ranking_metrics_by_hand():
    # ranking: candidate 2, 0, 1, 3; relevant: 0 and 3 -> hits at positions 2 and 4
    metrics = ranking_metrics([2, 0, 1, 3], {0: 1.0, 3: 1.0})
    for name in ("hit", "ndcg_linear", "ndcg_exponential", "precision", "recall", "f1", "map", "mrr"):
        assert metrics[f"{name}@1"] == 0.0
    dcg, idcg = 1 / math.log2(3) + 1 / math.log2(5), 1 + 1 / math.log2(3)
    assert metrics["hit@5"] == 1.0
    assert metrics["ndcg_linear@5"] == pytest.approx(dcg / idcg)
    assert metrics["ndcg_exponential@5"] == pytest.approx(dcg / idcg)  # binary: the two gains coincide
    assert metrics["precision@5"] == pytest.approx(2 / 5)
    assert metrics["recall@5"] == 1.0
    assert metrics["f1@5"] == pytest.approx(2 * 0.4 * 1.0 / 1.4)
    assert metrics["map@5"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert metrics["mrr@5"] == 0.5
    assert metrics["precision@10"] == pytest.approx(2 / 10)


def test_map_divides_by_min_of_relevant_and_k_when_more_are_relevant_than_k():
    # 12 candidates ranked in order 0..11; 7 relevant: 0, 1, 3, 5, 6, 7, 8 (1-based positions 1, 2, 4, 6, 7, 8, 9).
    # precision at each hit: 1/1, 2/2, 3/4, 4/6, 5/7, 6/8, 7/9.
    # MAP@1  = (1/1) / min(7, 1) = 1                                                 (/7 would give 1/7)
    # MAP@5  = (1/1 + 2/2 + 3/4) / min(7, 5) = 2.75 / 5 = 0.55                       (/7 would give 0.3929)
    # MAP@10 = (1 + 1 + 3/4 + 4/6 + 5/7 + 6/8 + 7/9) / min(7, 10) = 5.65873 / 7 = 0.80839  (all 7 within the top 10)
    metrics = ranking_metrics(list(range(12)), dict.fromkeys([0, 1, 3, 5, 6, 7, 8], 1.0))
    assert metrics["map@1"] == pytest.approx(1.0)
    assert metrics["map@5"] == pytest.approx(0.55)
    assert metrics["map@10"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 6 + 5 / 7 + 6 / 8 + 7 / 9) / 7)
    assert metrics["map@10"] == pytest.approx(0.808390, abs=1e-6)
    # recall keeps the full count of relevant items as its denominator: 3 of 7 found in the top 5
    assert metrics["recall@5"] == pytest.approx(3 / 7) and metrics["precision@5"] == pytest.approx(3 / 5)


def test_graded_ndcg_by_hand():
    metrics = ranking_metrics([1, 0], {0: 2.0, 1: 1.0})
    log3 = math.log2(3)
    assert metrics["ndcg_linear@5"] == pytest.approx((1 + 2 / log3) / (2 + 1 / log3))
    assert metrics["ndcg_exponential@5"] == pytest.approx((1 + 3 / log3) / (3 + 1 / log3))
    assert metrics["hit@1"] == 1.0 and metrics["mrr@1"] == 1.0 and metrics["recall@1"] == 0.5


def test_single_candidate_row_and_no_relevant_candidate():
    assert ranking_metrics([0], {0: 1.0})["ndcg_linear@5"] == 1.0
    with pytest.raises(ValueError, match="relevant"):
        ranking_metrics([0, 1], {0: 0.0})


def test_v1_groups_are_unweighted_means_with_counts_and_missing():
    groups = {g.name: g for g in v1_groups({"ImageNet-1K": 0.8, "Place365": 0.4, "OK-VQA": 0.5})}
    assert groups["Classification"].score == pytest.approx(0.6) and groups["Classification"].count == 2
    assert len(groups["Classification"].missing) == 8
    assert groups["VQA"].score == pytest.approx(0.5)
    assert groups["Visual Grounding"].score is None and groups["Visual Grounding"].count == 0
    assert groups["IND"].score == pytest.approx(0.65) and groups["OOD"].score == pytest.approx(0.4)
    assert groups["Overall"].score == pytest.approx((0.8 + 0.4 + 0.5) / 3)
    assert groups["Overall"].to_dict()["expected"] == 36


def test_unpublished_datasets_join_the_groups_their_tasks_json_names():
    meta = {"Digits": {"meta_task": "Classification", "ood": True}, "Odd": {}}
    groups = {g.name: g for g in v1_groups({"Digits": 0.2, "Odd": 0.6}, meta)}
    assert groups["Classification"].datasets == ["Digits"] and groups["OOD"].datasets == ["Digits"]
    assert groups["Overall"].score == pytest.approx(0.4)
    v2 = {
        g.name: g for g in v2_groups({"Docs": 0.3, "VOC2007": 0.9}, {"Docs": {"modality": "visdoc", "meta_task": "D"}})
    }
    assert v2["D"].datasets == ["Docs"] and v2["VisDoc"].score == pytest.approx(0.3)
    assert v2["I-CLS"].score == pytest.approx(0.9) and v2["All"].score == pytest.approx(0.6)
    assert v2["All"].to_dict()["expected"] == 79


class StubModel:
    """`encode` looks each text up in a table of vectors; counts what it encodes."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors
        self.encoded: list = []
        self.model_card_data = SimpleNamespace(set_evaluation_metrics=lambda *args: None)

    def __iter__(self):
        return iter([SimpleNamespace()])

    def __getitem__(self, index):
        return SimpleNamespace()

    def encode(self, inputs, **kwargs):
        self.encoded.extend(inputs)
        rows = [np.asarray(self.vectors[x if isinstance(x, str) else x["text"]], dtype=np.float32) for x in inputs]
        return np.stack([row / np.linalg.norm(row) for row in rows])


def test_evaluator_scores_encodes_each_item_once_and_ranks_globally():
    vectors = {"q1": [1, 0], "q2": [0, 1], "cat": [1, 0.1], "dog": [0.1, 1], "tie": [1, 0.1]}
    labels = [("cat", ""), ("dog", ""), ("tie", "")]
    local = EvalDataset(
        "ImageNet-1K",
        queries=[("q1", ""), ("q2", ""), ("q1", "")],
        candidates=[labels, labels, [("tie", ""), ("cat", "")]],
        relevance=[{0: 1.0}, {1: 1.0}, {0: 1.0}],
    )
    pool = EvalDataset(
        "ViDoRe_arxivqa",
        queries=[("q1", ""), ("q2", "")],
        candidates=[[], []],
        relevance=[{1: 1.0}, {1: 1.0}],
        corpus=[("cat", ""), ("dog", "")],
        layout="visdoc",
    )
    model = StubModel(vectors)
    v1 = MMEBEvaluator([local], protocol="v1")
    metrics = v1(model)
    # q1 -> cat (gold) wins over tie only by order: a tie goes to the gold; q2 -> dog is the gold at index 1
    assert metrics["mmeb_ImageNet-1K_hit@1"] == 1.0 and metrics["mmeb_hit@1"] == 1.0
    assert sorted(model.encoded) == ["cat", "dog", "q1", "q2", "tie"]  # 11 listed items, 5 distinct
    assert v1.results["encoding"] == {
        "naive_items": 11,
        "unique_items": 5,
        "encoded": 5,
        "from_cache": 0,
        "forward_passes_saved": 6,
    }
    v2 = MMEBEvaluator([local, pool], protocol="v2")
    v2(StubModel(vectors))
    docs = v2.results["datasets"]["ViDoRe_arxivqa"]
    assert docs["headline_metric"] == "ndcg_linear@5" and docs["eval_type"] == "global"
    # q1 ranks cat (irrelevant) above dog (relevant): ndcg = 1/log2(3); q2 ranks dog first: 1
    assert docs["score"] == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert v2.results["groups"]["VDRv1"]["count"] == 1 and v2.results["groups"]["I-CLS"]["count"] == 1


def test_evaluator_v1_counts_a_tie_with_a_non_gold_candidate_as_a_hit():
    # "tie" and "cat" embed identically, so they score exactly the same against q1; "dog" is orthogonal to q1.
    vectors = {"q1": [1, 0], "cat": [1, 0.1], "tie": [1, 0.1], "dog": [0, 1]}
    dataset = EvalDataset(
        "Tied",
        queries=[("q1", ""), ("q1", ""), ("q1", "")],
        candidates=[[("tie", ""), ("cat", "")], [("cat", ""), ("tie", "")], [("dog", ""), ("cat", "")]],
        # row 0: the gold (a gold_index of 1) ties the non-gold candidate listed before it -> hit;
        # row 1: the gold listed first ties the one after it -> hit; row 2: the gold scores lowest -> miss.
        relevance=[{1: 1.0}, {0: 1.0}, {0: 1.0}],
    )
    evaluator = MMEBEvaluator([dataset], protocol="v1")
    metrics = evaluator(StubModel(vectors))
    assert metrics["mmeb_Tied_hit@1"] == pytest.approx(2 / 3)
    # the evaluator's rule is the metric's own function
    q1, cat, dog = (np.array(vectors[name], dtype=np.float32) for name in ("q1", "cat", "dog"))
    cat, dog = cat / np.linalg.norm(cat), dog / np.linalg.norm(dog)
    per_query = [np.array([cat @ q1, cat @ q1]), np.array([cat @ q1, cat @ q1]), np.array([dog @ q1, cat @ q1])]
    assert [hit_at_1(s, r) for s, r in zip(per_query, dataset.relevance)] == [1.0, 1.0, 0.0]
