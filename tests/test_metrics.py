"""Metrics against naive loop references written here, plus hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashsearch.errors import HashsearchError
from hashsearch.metrics import (
    MetricAccumulator,
    average_precision_at_k,
    default_cutoffs,
    pr_curve_points,
    precision_at_k,
    precision_within_radius,
    recall_at_k,
    relevance,
    to_multi_hot,
)

SETTINGS = settings(max_examples=60, deadline=None)


# --- naive references: one query at a time, plain Python ---------------------------------


def naive_ap(rel: list[bool], k: int | None) -> float:
    top = rel if k is None else rel[:k]
    precisions = [sum(top[: p + 1]) / (p + 1) for p in range(len(top)) if top[p]]
    return sum(precisions) / len(precisions) if precisions else 0.0


def naive_precision(rel: list[bool], k: int) -> float:
    return sum(rel[:k]) / min(k, len(rel))


def naive_recall(rel: list[bool], k: int, n_relevant: int) -> float:
    return sum(rel[:k]) / n_relevant if n_relevant else 0.0


def naive_radius_precision(distances: list[int], rel: list[bool], radius: int) -> float:
    inside = [r for d, r in zip(distances, rel, strict=True) if d <= radius]
    return sum(inside) / len(inside) if inside else 0.0


def naive_label_sets(labels: np.ndarray) -> list[set[int]]:
    if labels.ndim == 1:
        return [{int(c)} for c in labels]
    return [{c for c in range(labels.shape[1]) if row[c]} for row in labels]


# --- random ranked chunks ------------------------------------------------------------------


@st.composite
def ranked_chunks(draw: st.DrawFn, max_queries: int = 6, max_items: int = 12) -> dict:
    """A chunk of rank-ordered relevance, Hamming distances and full relevant counts."""
    nq = draw(st.integers(1, max_queries))
    n = draw(st.integers(1, max_items))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    rel = rng.random((nq, n)) < density
    rel[0] = False  # always one query with no relevant item
    distances = np.sort(rng.integers(0, 6, (nq, n)), axis=1)
    # relevant items beyond the ranking, as when the caller truncates it
    n_relevant = rel.sum(axis=1) + rng.integers(0, 3, nq)
    return {"rel": rel, "distances": distances, "n_relevant": n_relevant}


# --- relevance ------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.booleans(), st.booleans())
def test_relevance_matches_shared_label_sets(
    seed: int, num_classes: int, multi_label: bool, as_bool: bool
) -> None:
    rng = np.random.default_rng(seed)
    nq, nb = rng.integers(0, 6, 2)
    if multi_label:
        labels_q = rng.integers(0, 2, (nq, num_classes))
        labels_b = rng.integers(0, 2, (nb, num_classes))
        if as_bool:
            labels_q, labels_b = labels_q.astype(bool), labels_b.astype(bool)
    else:
        labels_q, labels_b = rng.integers(0, num_classes, nq), rng.integers(0, num_classes, nb)
    sets_q, sets_b = naive_label_sets(labels_q), naive_label_sets(labels_b)
    expected = [[bool(a & b) for b in sets_b] for a in sets_q]
    got = relevance(labels_q, labels_b)
    assert got.dtype == bool and got.shape == (nq, nb)
    assert got.tolist() == expected


def test_relevance_hand_cases() -> None:
    # classes: the database has a class (3) the queries never use
    assert relevance(np.array([0, 1]), np.array([1, 3, 0])).tolist() == [
        [False, False, True],
        [True, False, False],
    ]
    multi_q = np.array([[1, 0, 1], [0, 0, 0]])
    multi_b = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1]])
    assert relevance(multi_q, multi_b).tolist() == [[True, False, True], [False, False, False]]


def test_to_multi_hot() -> None:
    assert to_multi_hot(np.array([2, 0])).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert to_multi_hot(np.array([1]), num_classes=4).tolist() == [[0, 1, 0, 0]]
    multi = to_multi_hot(np.array([[True, False]]))
    assert multi.dtype == np.float32 and multi.tolist() == [[1.0, 0.0]]


# --- per-query metrics ----------------------------------------------------------------------


@SETTINGS
@given(ranked_chunks(), st.one_of(st.none(), st.integers(1, 15)))
def test_average_precision_matches_reference(chunk: dict, k: int | None) -> None:
    rel = chunk["rel"]
    got = average_precision_at_k(rel, k)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [naive_ap(row, k) for row in rel.tolist()], rtol=1e-12)
    assert got[0] == 0.0


@SETTINGS
@given(ranked_chunks(), st.integers(1, 15))
def test_precision_and_recall_match_reference(chunk: dict, k: int) -> None:
    rel, n_relevant = chunk["rel"], chunk["n_relevant"]
    rows = rel.tolist()
    np.testing.assert_allclose(precision_at_k(rel, k), [naive_precision(r, k) for r in rows])
    expected_recall = [naive_recall(r, k, int(t)) for r, t in zip(rows, n_relevant, strict=True)]
    np.testing.assert_allclose(recall_at_k(rel, k, n_relevant), expected_recall)


@SETTINGS
@given(ranked_chunks(), st.integers(-1, 6))
def test_precision_within_radius_matches_reference(chunk: dict, radius: int) -> None:
    rel, distances = chunk["rel"], chunk["distances"]
    expected = [
        naive_radius_precision(d, r, radius)
        for d, r in zip(distances.tolist(), rel.tolist(), strict=True)
    ]
    np.testing.assert_allclose(precision_within_radius(distances, rel, radius), expected)


@SETTINGS
@given(ranked_chunks(), st.lists(st.integers(1, 15), min_size=1, max_size=5))
def test_pr_curve_points_match_reference(chunk: dict, cutoffs: list[int]) -> None:
    rel, n_relevant = chunk["rel"], chunk["n_relevant"]
    rows = rel.tolist()
    precision, recall = pr_curve_points(rel, n_relevant, np.array(cutoffs))
    expected_precision = [np.mean([naive_precision(r, c) for r in rows]) for c in cutoffs]
    expected_recall = [
        np.mean([naive_recall(r, c, int(t)) for r, t in zip(rows, n_relevant, strict=True)])
        for c in cutoffs
    ]
    np.testing.assert_allclose(precision, expected_precision)
    np.testing.assert_allclose(recall, expected_recall)


def test_hand_computed_cases() -> None:
    rel = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1]], dtype=bool)
    np.testing.assert_allclose(average_precision_at_k(rel, None), [(1 + 2 / 3) / 2, 0, 7 / 12])
    np.testing.assert_allclose(average_precision_at_k(rel, 2), [1, 0, 1 / 2])
    np.testing.assert_allclose(average_precision_at_k(rel, 10), average_precision_at_k(rel, 3))
    np.testing.assert_allclose(precision_at_k(rel, 2), [1 / 2, 0, 1 / 2])
    np.testing.assert_allclose(precision_at_k(rel, 10), [2 / 3, 0, 2 / 3])  # k > n: divide by n
    np.testing.assert_allclose(recall_at_k(rel, 1, np.array([4, 0, 2])), [1 / 4, 0, 0])


def test_radius_with_no_item_inside_scores_zero() -> None:
    rel = np.array([[1, 1], [1, 0]], dtype=bool)
    distances = np.array([[3, 4], [0, 2]])
    np.testing.assert_allclose(precision_within_radius(distances, rel, 2), [0.0, 0.5])


# --- cutoffs and accumulator ----------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 10**7), st.integers(1, 80))
def test_default_cutoffs_is_a_sorted_grid_from_1_to_n(n: int, points: int) -> None:
    cutoffs = default_cutoffs(n, points)
    assert cutoffs[-1] == n and cutoffs[0] == 1
    assert np.all(np.diff(cutoffs) > 0)
    assert len(cutoffs) <= points + 1


def test_default_cutoffs_small_case() -> None:
    assert default_cutoffs(1000, 4).tolist() == [1, 10, 100, 1000]


def expected_result(chunk: dict) -> dict[str, object]:
    """What `result` should say, computed from the per-query functions on one chunk."""
    rel, n_relevant = chunk["rel"], chunk["n_relevant"]
    cutoffs = default_cutoffs(rel.shape[1])
    precision, recall = pr_curve_points(rel, n_relevant, cutoffs)
    return {
        "map_all": average_precision_at_k(rel, None).mean(),
        "map_4": average_precision_at_k(rel, 4).mean(),
        "precision_at_3": precision_at_k(rel, 3).mean(),
        "precision_radius_1": precision_within_radius(chunk["distances"], rel, 1).mean(),
        "pr_curve": {
            "cutoffs": cutoffs.tolist(),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
        },
        "num_queries": len(rel),
    }


def make_accumulator() -> MetricAccumulator:
    return MetricAccumulator(ks_map=(None, 4), ks_precision=(3,), radius=1)


@SETTINGS
@given(ranked_chunks(max_queries=12), st.data())
def test_accumulator_over_chunks_equals_one_chunk(chunk: dict, data: st.DataObject) -> None:
    nq = len(chunk["rel"])
    splits = sorted(data.draw(st.lists(st.integers(0, nq), max_size=4)))
    accumulator = make_accumulator()
    for start, stop in zip([0, *splits], [*splits, nq], strict=True):
        accumulator.add(*(chunk[key][start:stop] for key in ("rel", "distances", "n_relevant")))
    got = accumulator.result()
    assert json.loads(json.dumps(got)) == got
    expected = expected_result(chunk)
    curve, expected_curve = got.pop("pr_curve"), expected.pop("pr_curve")
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert curve["cutoffs"] == expected_curve["cutoffs"]
    for key in ("precision", "recall"):
        assert curve[key] == pytest.approx(expected_curve[key], rel=1e-12, abs=1e-15)


def test_accumulator_default_keys_and_skipped_radius() -> None:
    rel = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    accumulator = MetricAccumulator()
    accumulator.add(rel, None, rel.sum(axis=1))
    got = accumulator.result()
    assert set(got) == {
        "map_all",
        "map_1000",
        "precision_at_10",
        "precision_at_100",
        "precision_at_1000",
        "pr_curve",
        "num_queries",
    }
    assert got["map_all"] == pytest.approx((1 + 2 / 3) / 2 / 2)
    assert got["precision_at_10"] == pytest.approx(2 / 3 / 2)
    assert got["pr_curve"]["cutoffs"] == [1, 2, 3]
    assert got["pr_curve"]["recall"] == pytest.approx([1 / 4, 1 / 4, 1 / 2])


def test_accumulator_reports_radius_key_and_rejects_no_queries() -> None:
    accumulator = MetricAccumulator(radius=0)
    accumulator.add(np.array([[True, False]]), np.array([[0, 0]]), np.array([1]))
    assert accumulator.result()["precision_radius_0"] == pytest.approx(0.5)
    with pytest.raises(HashsearchError):
        MetricAccumulator().result()
