"""Two-stage search: Hamming candidates (stage 1), then deep-feature re-ranking (stage 2).

Stage 1 asks FAISS for the top `candidates` codes by Hamming distance, ties in
item order, or for every code within `radius`. Stage 2 re-sorts those
candidates by a re-ranker's score (`hashsearch.rerank`), by default the cosine
similarity of the encoder's intermediate features (design document, eq. 5-6),
and keeps the Hamming order among equal scores. The evaluation uses the same
`rerank_prefix`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hashsearch.errors import CandidateLimit, HashsearchError
from hashsearch.index.store import HashIndex
from hashsearch.rerank import RERANKERS


def rerank_prefix(scores_ranked: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """A permutation of each row: its first `prefix[i]` positions by score, the rest unmoved.

    Args:
        scores_ranked: (q, m) scores of the items in stage-1 rank order.
        prefix: (q,) how many leading items of each row are candidates.
    Returns: (q, m) int positions into the stage-1 ranking (eq. 6, R1 = Sort(R0, S)).
    """
    positions = np.arange(scores_ranked.shape[1])
    key = np.where(positions[None, :] < prefix[:, None], -scores_ranked, np.inf)
    return np.argsort(key, axis=1, kind="stable")


def check_search_args(candidates: int, radius: int | None, top: int = 1) -> None:
    """One-line errors for list lengths and radii that cannot mean anything."""
    if top < 1 or candidates < 1:
        raise HashsearchError(f"--top ({top}) and --candidates ({candidates}) must be at least 1")
    if radius is not None and radius < 0:
        raise HashsearchError(f"--radius must be 0 or more, got {radius}")


@dataclass(frozen=True)
class Hits:
    """One query's ranked result. Arrays of equal length, best first."""

    items: np.ndarray  # positions in the index
    hamming: np.ndarray  # Hamming distance of each item's code to the query's
    scores: np.ndarray | None  # re-rank score, None when stage 2 is off


def stage1(
    index: HashIndex, codes: np.ndarray, candidates: int, radius: int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query (hamming, items) in Hamming order, ties broken by item order."""
    if radius is None:
        distances, items = index.store.search(codes, min(candidates, len(index)))
        # an approximate FAISS index pads a short list with -1
        return [(d[i >= 0], i[i >= 0]) for d, i in zip(distances, items, strict=True)]
    # every distance is at most `bits`; FAISS takes the radius as a C int
    lims, distances, items = index.store.range_search(codes, min(radius, index.bits) + 1)
    found = []
    for q in range(len(codes)):
        d, i = distances[lims[q] : lims[q + 1]], items[lims[q] : lims[q + 1]]
        order = np.lexsort((i, d))
        found.append((d[order], i[order]))
    return found


def two_stage_search(
    index: HashIndex,
    codes: np.ndarray,
    features: np.ndarray,
    top: int = 10,
    candidates: int = 100,
    radius: int | None = None,
    rerank: str = "cosine",
    timings_ms: dict[str, float] | None = None,
    radius_limit: int | None = None,
) -> list[Hits]:
    """Search `index` for each query; return at most `top` hits each.

    Args:
        codes: (q, bits // 8) packed uint8 query codes. features: (q, D) query features.
        candidates: stage-1 list length (ignored when `radius` is given).
        radius: if given, stage 1 returns every item within this Hamming distance.
        rerank: a registered re-ranker name; "none" returns stage 1 alone.
        timings_ms: if given, receives the milliseconds spent in "stage1" and "stage2".
        radius_limit: if given, a radius that finds more items than this is refused
            (`CandidateLimit`) before any is re-ranked: what one request may cost.
    """
    reranker = RERANKERS.get(rerank)
    check_search_args(candidates, radius, top)
    if codes.shape[1] * 8 != index.bits or features.shape[1:] != (index.feature_dim,):
        raise HashsearchError(
            f"queries ({codes.shape[1] * 8} bits, features {features.shape[1:]}) do not match "
            f"the index ({index.bits} bits, features ({index.feature_dim},))"
        )
    if len(index) == 0:
        raise HashsearchError("the index is empty; build it from a split that has items")
    started = time.perf_counter()
    found = stage1(index, codes, candidates, radius)
    longest = max((len(items) for _, items in found), default=0)
    if radius_limit is not None and longest > radius_limit:
        raise CandidateLimit(
            f"radius {radius} finds {longest:,} items, over the limit of {radius_limit:,}; "
            "use a smaller radius"
        )
    ranked = time.perf_counter()
    results = []
    for q, (hamming, items) in enumerate(found):
        hamming, items = hamming.astype(np.int64), items.astype(np.int64)
        scores = None
        if reranker is not None and len(items):
            prepared = reranker.prepare(index.features(items))
            everyone = np.ones((1, len(items)), bool)
            scores = reranker.score(
                features[q : q + 1], prepared, hamming[None], everyone, index.bits
            )
            order = rerank_prefix(scores, np.array([len(items)]))[0]
            hamming, items, scores = hamming[order], items[order], scores[0, order]
        results.append(Hits(items[:top], hamming[:top], None if scores is None else scores[:top]))
    if timings_ms is not None:
        timings_ms["stage1"] = (ranked - started) * 1e3
        timings_ms["stage2"] = (time.perf_counter() - ranked) * 1e3
    return results
