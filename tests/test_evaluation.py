"""The evaluation pipeline (ranking + re-ranking + metrics) against a naive per-query reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.rerank import Reranker


def naive_ap(rel, k=None):
    rel = rel[:k] if k else rel
    hits, total = 0, 0.0
    for pos, r in enumerate(rel, 1):
        if r:
            hits += 1
            total += hits / pos
    return total / hits if hits else 0.0


def naive_rankings(q, b, candidates, radius):
    """Stage 1: (hamming, item index); two-stage: candidates by cosine desc, then the rest."""
    d = np.array(
        [
            [bin(int.from_bytes((x ^ y).tobytes(), "big")).count("1") for y in b.codes]
            for x in q.codes
        ]
    )
    fq = q.features / np.linalg.norm(q.features, axis=1, keepdims=True)
    fb = b.features / np.linalg.norm(b.features, axis=1, keepdims=True)
    for i in range(len(q.codes)):
        stage1 = sorted(range(len(b.codes)), key=lambda j: (d[i, j], j))
        n_cand = sum(d[i, j] <= radius for j in stage1) if radius is not None else candidates
        head = sorted(stage1[:n_cand], key=lambda j: (-float(fq[i] @ fb[j]), stage1.index(j)))
        yield stage1, head + stage1[n_cand:]


def random_set(rng, n, nbytes, classes):
    labels = rng.integers(0, classes, n)
    codes = rng.integers(0, 4, (n, nbytes), dtype=np.uint8)
    return Encoded(codes, rng.standard_normal((n, 3)).astype(np.float32), labels)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 60),
    st.integers(1, 70),
    st.one_of(st.none(), st.integers(0, 4)),
    st.integers(1, 5),
    st.integers(0, 2**31),
)
def test_pipeline_matches_naive_reference(nq, nb, candidates, radius, chunk, seed):
    rng = np.random.default_rng(seed)
    q, b = random_set(rng, nq, 2, 4), random_set(rng, nb, 2, 4)
    report = evaluate_retrieval(q, b, 16, candidates=candidates, radius=radius, chunk=chunk)
    expected = {"stage1": [], "two_stage": []}
    for i, (stage1, two) in enumerate(naive_rankings(q, b, candidates, radius)):
        for name, order in (("stage1", stage1), ("two_stage", two)):
            rel = [b.labels[j] == q.labels[i] for j in order]
            expected[name].append(
                (
                    naive_ap(rel),
                    naive_ap(rel, 1000),
                    np.mean(rel[:10]) if nb >= 10 else sum(rel[:10]) / nb,
                )
            )
    for name in ("stage1", "two_stage"):
        ap_all, ap_1000, p10 = np.mean(expected[name], axis=0)
        assert report[name]["map_all"] == pytest.approx(ap_all)
        assert report[name]["map_1000"] == pytest.approx(ap_1000)
        assert report[name]["precision_at_10"] == pytest.approx(p10)


def test_query_with_no_relevant_item_scores_zero():
    q = Encoded(np.zeros((2, 1), np.uint8), np.ones((2, 3), np.float32), np.array([0, 1]))
    b = Encoded(np.zeros((4, 1), np.uint8), np.ones((4, 3), np.float32), np.array([1, 1, 1, 1]))
    report = evaluate_retrieval(q, b, 8)
    assert report["stage1"]["map_all"] == pytest.approx(0.5)  # query 0: 0; query 1: 1
    assert report["two_stage"]["map_all"] == pytest.approx(0.5)


def test_multi_label_relevance_shares_one_label():
    labels_b = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]], np.uint8)
    q = Encoded(
        np.array([[0]], np.uint8), np.ones((1, 2), np.float32), np.array([[0, 0, 1]], np.uint8)
    )
    b = Encoded(np.array([[0], [1], [3]], np.uint8), np.ones((3, 2), np.float32), labels_b)
    report = evaluate_retrieval(q, b, 8, rerank="none")
    assert report["stage1"]["map_all"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert "two_stage" not in report


def test_strategies_with_the_default_preparation_prepare_the_database_once(monkeypatch):
    calls = []
    original = Reranker.prepare

    def counted(self, features):
        calls.append(type(self).__name__)
        return original(self, features)

    monkeypatch.setattr(Reranker, "prepare", counted)
    rng = np.random.default_rng(0)
    items = Encoded(
        rng.integers(0, 256, (20, 1), dtype=np.uint8),
        rng.normal(size=(20, 4)).astype(np.float32),
        rng.integers(0, 2, 20),
    )
    evaluate_retrieval(items, items, 8, candidates=5, rerank=["cosine", "bucket", "qe-all"])
    assert len(calls) == 1
