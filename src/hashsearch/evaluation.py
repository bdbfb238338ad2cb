"""The one evaluation code path: rank the database for every query, then score the ranking.

Stage 1 ranks all database items by Hamming distance, ties in item order (a
stable sort of integer distances, so the same codes always give the same
ranking). Two-stage keeps that ranking but re-sorts its first `candidates`
items (or those within `radius`) by the re-ranker: "the re-ranked candidates
followed by the rest in Hamming order". Queries go in chunks whose size bounds
memory to a few (chunk x database) arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hashsearch.encoding import Encoded, unpack_codes
from hashsearch.errors import HashsearchError
from hashsearch.metrics import MetricAccumulator, relevance
from hashsearch.rerank import RERANKERS, Reranker
from hashsearch.search import check_search_args, rerank_prefix

CHUNK_ELEMENTS = 8_000_000  # per (chunk x database) array: ~8-64 MB depending on dtype


def hamming_distances(signs_q: np.ndarray, signs_b: np.ndarray) -> np.ndarray:
    """(q, nb) uint16 Hamming distances of +-1 codes via a matrix product (exact in float32).

    d(b_i, b_j) = (bits - b_i . b_j) / 2; one BLAS call beats XOR + popcount in NumPy.
    """
    inner = signs_q @ signs_b.T
    return ((signs_q.shape[1] - inner) * 0.5).astype(np.uint16)


def reranker_names(rerank: str | Sequence[str]) -> list[str]:
    """`rerank` as a list of registered strategy names; a one-line error for an unknown
    name or an empty list (callers run it before encoding anything)."""
    names = [rerank] if isinstance(rerank, str) else list(rerank)
    if not names:
        raise HashsearchError("no re-ranker named; name one of " + ", ".join(RERANKERS.names()))
    for name in names:
        RERANKERS.get(name)
    return names


def named_rerankers(
    rerank: str | Sequence[str] | Mapping[str, Reranker | None],
) -> dict[str, Reranker | None]:
    """Registered strategy names, or strategies given by name (a probe's own, unregistered),
    as {name: strategy}; a one-line error for an unknown name or none at all."""
    if not isinstance(rerank, Mapping):
        return {name: RERANKERS.get(name) for name in reranker_names(rerank)}
    if not rerank:
        raise HashsearchError("no re-ranker given")
    return dict(rerank)


def evaluate_retrieval(
    query: Encoded,
    database: Encoded,
    bits: int,
    candidates: int = 1000,
    radius: int | None = None,
    rerank: str | Sequence[str] | Mapping[str, Reranker | None] = "cosine",
    chunk: int | None = None,
) -> dict[str, Any]:
    """mAP@all, mAP@1000, precision@k, precision within radius 2 and PR points.

    `rerank` names one refinement strategy or several (all evaluated on the same
    stage-1 ranking, so a study pays for stage 1 once), or maps names to strategies
    that are not registered (a probe's). Returns
    ``{"stage1": {...}, "two_stage": {...}, "refinements": {name: {...}},
    "candidate_set": {...}, "settings": {...}}``: "two_stage" is the first
    strategy's metrics (omitted when it is "none"), "refinements" every strategy
    but "none", and "candidate_set" the mean number of candidates and their
    recall (the share of all relevant items that stage 1 passes to stage 2).
    """
    rerankers = named_rerankers(rerank)
    names = list(rerankers)
    check_search_args(candidates, radius)
    if len(database.codes) == 0:
        raise HashsearchError("the database split is empty; nothing to evaluate")
    signs_b = unpack_codes(database.codes, bits)
    active = {name: r for name, r in rerankers.items() if r is not None}
    # Strategies that keep the default preparation share one prepared copy of the database.
    shared: dict[object, np.ndarray] = {}
    prepared: dict[str, np.ndarray] = {}
    for name, reranker in active.items():
        key = preparation_key(reranker)
        if key not in shared:
            shared[key] = reranker.prepare(database.features)
        prepared[name] = shared[key]
    chunk = chunk or max(1, CHUNK_ELEMENTS // max(1, len(database.codes)))
    stage1, refined = MetricAccumulator(), {name: MetricAccumulator() for name in active}
    candidate_set = CandidateSetAccumulator()
    for start in range(0, len(query.codes), chunk):
        rows = slice(start, start + chunk)
        dist = hamming_distances(unpack_codes(query.codes[rows], bits), signs_b)
        order = np.argsort(dist, axis=1, kind="stable")
        rel = relevance(query.labels[rows], database.labels)
        n_relevant = rel.sum(axis=1)
        rel_sorted, dist_sorted = gather_rows(rel, order), gather_rows(dist, order)
        stage1.add(rel_sorted, dist_sorted, n_relevant)
        prefix = _candidate_counts(dist_sorted, candidates, radius)
        candidate_set.add(rel_sorted, prefix, n_relevant)
        if not active:
            continue
        is_candidate = candidate_mask(order, prefix)
        for name, reranker in active.items():
            scores = reranker.score(query.features[rows], prepared[name], dist, is_candidate, bits)
            rel_r, dist_r = rel_sorted.copy(), dist_sorted.copy()
            rerank_chunk(rel_r, dist_r, order, scores, prefix)
            refined[name].add(rel_r, dist_r, n_relevant)
    report: dict[str, Any] = {"stage1": stage1.result()}
    if names[0] in refined:
        report["two_stage"] = refined[names[0]].result()
    report["refinements"] = {name: acc.result() for name, acc in refined.items()}
    report["candidate_set"] = candidate_set.result()
    report["settings"] = {
        "candidates": candidates,
        "radius": radius,
        "rerank": names[0],
        "rerankers": names,
        "bits": bits,
        "num_database": len(database.codes),
        "ties": "Hamming ties in database order",
    }
    return report


def preparation_key(reranker: Reranker) -> object:
    """What decides a strategy's prepared features: the shared default, or the strategy
    itself where it overrides `prepare` (its own parameters may shape them)."""
    default = type(reranker).prepare is Reranker.prepare
    return Reranker.prepare if default else id(reranker)


class CandidateSetAccumulator:
    """Mean size and recall of stage 1's candidate sets, chunk by chunk."""

    def __init__(self) -> None:
        self.count_sum = 0.0
        self.recall_sum = 0.0
        self.num_queries = 0

    def add(self, rel_sorted: np.ndarray, prefix: np.ndarray, n_relevant: np.ndarray) -> None:
        width = int(prefix.max()) if len(prefix) else 0
        inside = np.arange(width)[None, :] < prefix[:, None]
        found = (rel_sorted[:, :width] & inside).sum(axis=1)
        recall = np.divide(found, n_relevant, out=np.zeros(len(found)), where=n_relevant > 0)
        self.count_sum += float(prefix.sum())
        self.recall_sum += float(recall.sum())
        self.num_queries += len(prefix)

    def result(self) -> dict[str, float]:
        count = max(1, self.num_queries)
        return {"mean_candidates": self.count_sum / count, "recall": self.recall_sum / count}


def candidate_mask(order: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """(q, nb) bool in database order: True for each query's first `prefix[i]` ranked items."""
    width = int(prefix.max()) if len(prefix) else 0
    mask = np.zeros(order.shape, bool)
    inside = np.arange(width)[None, :] < prefix[:, None]
    np.put_along_axis(mask, order[:, :width], inside, axis=1)
    return mask


def rerank_chunk(
    rel: np.ndarray, dist: np.ndarray, order: np.ndarray, scores: np.ndarray, prefix: np.ndarray
) -> None:
    """Re-sort each row's first `prefix[i]` ranked items by score, in place (stage 2).

    Args:
        rel, dist: (q, nb) relevance and Hamming distance in stage-1 rank order.
        order: (q, nb) database positions in stage-1 rank order.
        scores: (q, nb) re-rank scores in database order.
        prefix: (q,) candidates per query. The tail keeps its Hamming order.
    """
    width = int(prefix.max()) if len(prefix) else 0
    within = rerank_prefix(gather_rows(scores, order[:, :width]), prefix)
    rel[:, :width] = gather_rows(rel[:, :width], within)
    dist[:, :width] = gather_rows(dist[:, :width], within)


def gather_rows(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """values[i, positions[i]] for every row; a per-row `np.take` beats `take_along_axis`."""
    return (
        np.stack([np.take(v, p) for v, p in zip(values, positions, strict=True)])
        if len(values)
        else (values[:, :0])
    )


def _candidate_counts(dist_sorted: np.ndarray, candidates: int, radius: int | None) -> np.ndarray:
    """How many leading items of each stage-1 ranking stage 2 re-ranks."""
    if radius is None:
        return np.full(len(dist_sorted), min(candidates, dist_sorted.shape[1]))
    return (dist_sorted <= radius).sum(axis=1)
