"""Refinement strategies: hand-computed orders, and the search and evaluation paths agree."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval, gather_rows
from hashsearch.index import HashIndex
from hashsearch.rerank import RERANKERS, QueryExpansionReranker
from hashsearch.search import two_stage_search

# Four items at Hamming distances 0, 1, 1, 2 from a query with feature (1, 0).
ITEMS = np.array([[0.0, 1.0], [1.0, 0.2], [0.1, 1.0], [1.0, 0.0]], np.float32)
HAMMING = np.array([[0, 1, 1, 2]])
QUERY = np.array([[1.0, 0.0]], np.float32)


def ranking(name, candidate=None, bits=8):
    reranker = RERANKERS.get(name)
    mask = np.ones((1, 4), bool) if candidate is None else np.array([candidate])
    scores = reranker.score(QUERY, reranker.prepare(ITEMS), HAMMING, mask, bits)
    return np.argsort(-scores[0], kind="stable").tolist()


def test_cosine_orders_by_feature_alone():
    assert ranking("cosine") == [3, 1, 2, 0]


def test_bucket_keeps_hamming_order_and_breaks_ties_by_cosine():
    assert ranking("bucket") == [0, 1, 2, 3]  # item 1 (cos .98) before item 2 (cos .10)


def test_fusion_weighs_hamming_similarity_against_cosine():
    # bits 8: Hamming similarity 1, .75, .75, .5; cosine 0, .98, .10, 1.
    # weight .5: 0.5, 1.355, .475, 1.25 -> 1, 3, 0, 2
    assert ranking("fusion") == [1, 3, 0, 2]


def test_query_expansion_averages_the_query_with_its_best_candidates():
    reranker = QueryExpansionReranker(k=1)
    prepared = reranker.prepare(ITEMS)
    # best candidate by cosine is item 3, (1, 0): the expanded query is (2, 0) -> same order
    scores = reranker.score(QUERY, prepared, HAMMING, np.ones((1, 4), bool), 8)
    assert np.argsort(-scores[0], kind="stable").tolist() == [3, 1, 2, 0]
    # with item 3 not a candidate, the best candidate is item 1: the expanded query is
    # the query plus item 1's unit feature, and every item is scored against it.
    only = np.array([[True, True, True, False]])
    scores = reranker.score(QUERY, prepared, HAMMING, only, 8)
    expanded = QUERY[0] + prepared[1]
    expected = prepared @ (expanded / np.linalg.norm(expanded))
    assert scores[0] == pytest.approx(expected, abs=1e-6)


def test_qe_all_moves_the_query_to_the_centroid_of_all_its_candidates():
    reranker = RERANKERS.get("qe-all")
    prepared = reranker.prepare(ITEMS)
    only = np.array([[True, False, True, False]])  # candidates: items 0 and 2
    scores = reranker.score(QUERY, prepared, HAMMING, only, 8)
    expanded = QUERY[0] + prepared[0] + prepared[2]
    assert scores[0] == pytest.approx(prepared @ (expanded / np.linalg.norm(expanded)), abs=1e-6)
    # the same as QE with k as large as the list
    wide = QueryExpansionReranker(k=4).score(QUERY, prepared, HAMMING, only, 8)
    assert scores == pytest.approx(wide, abs=1e-6)
    # all four: query + unit items = (3.08, 2.19), nearest item 1, unlike cosine ([3, 1, 2, 0])
    assert ranking("qe-all") == [1, 3, 2, 0]


def random_set(rng, n, classes=3):
    codes = rng.integers(0, 4, (n, 1), dtype=np.uint8)
    return Encoded(
        codes, rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, classes, n)
    )


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from(RERANKERS.names()[1:]),
    st.integers(0, 2**31),
)
def test_search_and_evaluation_give_the_same_ranking(nb, candidates, name, seed):
    """The top of each evaluated ranking is what `two_stage_search` returns for that query."""
    rng = np.random.default_rng(seed)
    base, query = random_set(rng, nb), random_set(rng, 3)
    index = HashIndex.build(base, [str(i) for i in range(nb)], {})
    found = two_stage_search(
        index, query.codes, query.features, top=nb, candidates=candidates, rerank=name
    )
    # the evaluation ranks the whole database: re-ranked candidates, then the rest in
    # Hamming order; search returns the candidates only, so append stage 1's tail.
    stage1 = two_stage_search(
        index, query.codes, query.features, top=nb, candidates=nb, rerank="none"
    )
    report = evaluate_retrieval(query, base, 8, candidates=candidates, rerank=name)
    aps = []
    for q, hits in enumerate(found):
        ranked = list(hits.items) + [i for i in stage1[q].items if i not in set(hits.items)]
        rel = base.labels[ranked] == query.labels[q]
        hits_so_far = np.cumsum(rel)
        ap = (hits_so_far / np.arange(1, nb + 1))[rel].sum() / max(1, rel.sum())
        aps.append(ap)
    assert report["two_stage"]["map_all"] == pytest.approx(np.mean(aps))


def test_every_strategy_is_reported_with_the_candidate_set_recall():
    rng = np.random.default_rng(0)
    base, query = random_set(rng, 50), random_set(rng, 5)
    report = evaluate_retrieval(query, base, 8, candidates=10, rerank=RERANKERS.names())
    assert set(report["refinements"]) == {"cosine", "bucket", "qe", "fusion", "qe-all"}
    assert "two_stage" not in report  # the first name is "none"
    rel = base.labels[None, :] == query.labels[:, None]
    dist = np.array(
        [[bin(int(a) ^ int(b)).count("1") for b in base.codes[:, 0]] for a in query.codes[:, 0]]
    )
    order = np.argsort(dist, axis=1, kind="stable")
    found = gather_rows(rel, order)[:, :10].sum(axis=1)
    assert report["candidate_set"]["recall"] == pytest.approx(np.mean(found / rel.sum(axis=1)))
    assert report["candidate_set"]["mean_candidates"] == 10
