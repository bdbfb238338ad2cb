"""benchmarks/stage2_ceiling.py: its probe re-rankers score what their docstrings say, and
`evaluate_retrieval` takes them unregistered, by name."""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch.encoding import Encoded, pack_codes
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.rerank import RERANKERS, l2_normalized


@pytest.fixture(scope="module")
def ceiling(load_benchmark):
    return load_benchmark("stage2_ceiling")


def scores(reranker, query, items, candidate):
    prepared = reranker.prepare(items)
    return reranker.score(query, prepared, np.zeros(candidate.shape), candidate, 8)


def test_weighted_expansion_with_alpha_zero_is_qe_all(ceiling):
    rng = np.random.default_rng(0)
    query, items = rng.normal(size=(3, 5)), rng.normal(size=(20, 5))
    candidate = rng.random((3, 20)) < 0.5
    got = scores(ceiling.WeightedQueryExpansion(alpha=0.0), query, items, candidate)
    expected = scores(RERANKERS.get("qe-all"), query, items, candidate)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # alpha > 0: a candidate with negative cosine adds nothing, a non-candidate nothing
    lone = np.zeros((1, 20), bool)
    lone[0, np.argmin(l2_normalized(query[:1]) @ l2_normalized(items).T)] = True
    alone = scores(ceiling.WeightedQueryExpansion(), query[:1], items, lone)
    np.testing.assert_allclose(alone, l2_normalized(query[:1]) @ l2_normalized(items).T, atol=1e-6)


def test_database_augmentation_averages_each_item_with_its_nearest(ceiling):
    items = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], np.float32)
    prepared = ceiling.DatabaseAugmented(k=None, neighbours=1).prepare(items)
    unit = l2_normalized(items)
    np.testing.assert_allclose(prepared[0], l2_normalized(unit[0] + unit[1]), atol=1e-6)
    np.testing.assert_allclose(prepared[2], l2_normalized(unit[2] + unit[1]), atol=1e-6)


def test_class_probability_is_the_chance_of_one_class(ceiling):
    weight, bias = np.eye(3, dtype=np.float32) * 4, np.zeros(3, np.float32)
    probe = ceiling.ClassProbability(weight, bias)
    query = np.array([[1.0, 0.0, 0.0]], np.float32)
    items = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    p_q, p_items = probe.probabilities(query), probe.probabilities(items)
    np.testing.assert_allclose(p_items.sum(axis=1), 1.0, rtol=1e-6)
    got = scores(probe, query, items, np.ones((1, 2), bool))
    np.testing.assert_allclose(got, p_q @ p_items.T, rtol=1e-6)
    assert got[0, 0] > got[0, 1]


def test_unregistered_rerankers_evaluate_by_their_given_names(ceiling):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    features = np.eye(3, dtype=np.float32)[labels] + 0.3 * rng.normal(size=(40, 3)).astype(
        np.float32
    )
    items = Encoded(pack_codes(rng.normal(size=(40, 8))), features, labels)
    probe = ceiling.ClassProbability(np.eye(3, dtype=np.float32) * 4, np.zeros(3, np.float32))
    report = evaluate_retrieval(items, items, 8, 40, None, {"mine": probe, "cosine": None})
    assert list(report["refinements"]) == ["mine"]
    # ranking everything by class probability beats the random codes' Hamming order
    assert report["two_stage"]["map_all"] > report["stage1"]["map_all"] + 0.2


def test_strategies_with_their_own_preparation_are_prepared_each(ceiling):
    """Two instances of one class whose parameters shape `prepare` must not share it."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 30)
    features = rng.normal(size=(30, 3)).astype(np.float32)
    items = Encoded(pack_codes(rng.normal(size=(30, 8))), features, labels)
    weight, bias = rng.normal(size=(3, 3)).astype(np.float32), np.zeros(3, np.float32)
    sharp, flat = ceiling.ClassProbability(weight * 5, bias), ceiling.ClassProbability(weight, bias)
    both = evaluate_retrieval(items, items, 8, 30, None, {"sharp": sharp, "flat": flat})
    alone = evaluate_retrieval(items, items, 8, 30, None, {"flat": flat})
    assert both["refinements"]["flat"] == alone["refinements"]["flat"]
