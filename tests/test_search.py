"""Two-stage search: FAISS stage 1 against brute force (ties in item order), stage 2 order."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashsearch.encoding import Encoded
from hashsearch.errors import HashsearchError
from hashsearch.index import HashIndex
from hashsearch.search import rerank_prefix, two_stage_search


def brute_hamming(q, b):
    return np.array([[sum(bin(x).count("1") for x in (qi ^ bi)) for bi in b] for qi in q])


def make_index(rng, n, nbytes, values=4):
    codes = rng.integers(0, values, (n, nbytes), dtype=np.uint8)  # few values: many ties
    features = rng.standard_normal((n, 4)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    return HashIndex.build(Encoded(codes, features, labels), [str(i) for i in range(n)], {})


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 200), st.integers(1, 3), st.integers(1, 50), st.integers(0, 2**31))
def test_stage1_top_k_is_brute_force_with_ties_in_item_order(n, nbytes, k, seed):
    rng = np.random.default_rng(seed)
    index = make_index(rng, n, nbytes)
    q = rng.integers(0, 4, (3, nbytes), dtype=np.uint8)
    found = two_stage_search(
        index, q, np.zeros((3, 4), np.float32), top=k, candidates=k, rerank="none"
    )
    d = brute_hamming(q, index.codes())
    for row, hits in zip(d, found, strict=True):
        expected = np.argsort(row, kind="stable")[:k]
        assert hits.items.tolist() == expected.tolist()
        assert hits.hamming.tolist() == row[expected].tolist()
        assert hits.scores is None


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 200), st.integers(0, 6), st.integers(0, 2**31))
def test_stage1_radius_returns_everything_within_it(n, radius, seed):
    rng = np.random.default_rng(seed)
    index = make_index(rng, n, 2, values=16)
    q = rng.integers(0, 16, (2, 2), dtype=np.uint8)
    found = two_stage_search(
        index, q, np.zeros((2, 4), np.float32), top=n, radius=radius, rerank="none"
    )
    for row, hits in zip(brute_hamming(q, index.codes()), found, strict=True):
        expected = [i for i in np.argsort(row, kind="stable") if row[i] <= radius]
        assert hits.items.tolist() == expected


def test_stage2_reorders_candidates_by_cosine():
    rng = np.random.default_rng(3)
    index = make_index(rng, 60, 2)
    q_codes = index.codes()[:1]
    q_feat = rng.standard_normal((1, 4)).astype(np.float32)
    hits = two_stage_search(index, q_codes, q_feat, top=10, candidates=10)[0]
    stage1 = two_stage_search(index, q_codes, q_feat, top=10, candidates=10, rerank="none")[0]
    assert sorted(hits.items.tolist()) == sorted(stage1.items.tolist())
    unit = q_feat[0] / np.linalg.norm(q_feat[0])
    items = index.features(hits.items)
    expected_scores = items @ unit / np.linalg.norm(items, axis=1)
    assert np.allclose(hits.scores, expected_scores, atol=1e-6)
    assert np.all(np.diff(hits.scores) <= 1e-7)


def test_rerank_prefix_keeps_the_tail_and_breaks_ties_by_rank():
    scores = np.array([[0.1, 0.5, 0.5, 0.9, 0.0]])
    assert rerank_prefix(scores, np.array([3])).tolist() == [[1, 2, 0, 3, 4]]
    assert rerank_prefix(scores, np.array([0])).tolist() == [[0, 1, 2, 3, 4]]


def test_unknown_reranker_lists_known_ones():
    rng = np.random.default_rng(0)
    index = make_index(rng, 5, 1)
    with pytest.raises(HashsearchError, match="known: none, cosine, bucket, qe, fusion"):
        two_stage_search(index, index.codes()[:1], np.zeros((1, 4), np.float32), rerank="l3")
