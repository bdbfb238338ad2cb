"""Retrieval metrics over ranked relevance: mAP@k, precision@k, recall@k, precision
within a Hamming radius and the precision-recall curve.

The evaluation pipeline ranks the database for a chunk of queries and passes boolean
relevance already in rank order, so nothing here sorts or breaks ties. Every metric is a
whole-array operation on that (nq, n) chunk. Most of them are read off one int32
cumulative count of hits per ranked position (``hits``), which `MetricAccumulator`
computes once per chunk and shares, so memory is bounded by the chunk, not the query set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hashsearch.errors import HashsearchError


def to_multi_hot(labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Return labels as (n, K) float32 multi-hot, so single- and multi-label data share code.

    Args:
        labels: (n,) int class indices, or (n, K) multi-hot of 0/1 ints or bools.
        num_classes: K for class indices (default ``labels.max() + 1``); for multi-hot
            input it must be None or equal to K.
    """
    if labels.ndim == 2:
        assert num_classes in (None, labels.shape[1]), (num_classes, labels.shape)
        return labels.astype(np.float32)
    width = int(labels.max(initial=-1)) + 1 if num_classes is None else num_classes
    one_hot = np.zeros((len(labels), width), dtype=np.float32)
    one_hot[np.arange(len(labels)), labels] = 1.0
    return one_hot


def relevance(labels_q: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
    """(nq, nb) bool: True where query and database item share at least one label.

    A matmul of multi-hot matrices counts shared labels for every pair at once, which is
    the usual multi-label relevance (NUS-WIDE, COCO) and reduces to equality for classes.

    Args:
        labels_q: (nq,) int class indices or (nq, K) multi-hot.
        labels_b: (nb,) or (nb, K), the same form as ``labels_q``.
    """
    assert labels_q.ndim == labels_b.ndim, (labels_q.shape, labels_b.shape)
    num_classes = None
    if labels_q.ndim == 1:
        num_classes = int(max(labels_q.max(initial=-1), labels_b.max(initial=-1))) + 1
    shared = to_multi_hot(labels_q, num_classes) @ to_multi_hot(labels_b, num_classes).T
    return shared > 0


def _cumulative_hits(rel_sorted: np.ndarray) -> np.ndarray:
    """(nq, n) int32: ``hits[i, j]`` = relevant items among the top j + 1 of query i."""
    assert rel_sorted.ndim == 2 and rel_sorted.shape[1] >= 1, rel_sorted.shape
    return np.cumsum(rel_sorted, axis=1, dtype=np.int32)


def _depths(cutoffs: np.ndarray, n: int) -> np.ndarray:
    """How many ranked items each cutoff covers: a cutoff beyond the ranking covers all n."""
    assert np.all(cutoffs >= 1), cutoffs
    return np.minimum(cutoffs, n)


def _precisions(hits: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """(nq, len(cutoffs)) precision at each cutoff, dividing by the items actually ranked."""
    depths = _depths(cutoffs, hits.shape[1])
    return hits[:, depths - 1] / depths


def _recalls(hits: np.ndarray, cutoffs: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """(nq, len(cutoffs)) recall at each cutoff; 0 for a query with nothing to recall."""
    found = hits[:, _depths(cutoffs, hits.shape[1]) - 1]
    total = np.asarray(n_relevant)[:, None]
    return np.divide(found, total, out=np.zeros(found.shape), where=total > 0)


def _average_precisions(
    rel_sorted: np.ndarray, hits: np.ndarray, ks: Sequence[int | None]
) -> list[np.ndarray]:
    """AP@k for each k, visiting only the relevant positions, found once for all ks.

    At the j-th relevant item (0-based rank r) precision is ``hits[r] / (r + 1)``; AP@k is
    the mean of these over the relevant items ranked within the top k.
    """
    nq, n = hits.shape
    flat_positions = np.flatnonzero(rel_sorted)  # several times faster than np.nonzero
    rows, ranks = np.divmod(flat_positions, n)
    precision_at_hit = hits.ravel()[flat_positions] / (ranks + 1.0)
    result = []
    for k in ks:
        depth = n if k is None else int(_depths(np.array([k]), n)[0])
        inside = ranks < depth
        total = np.bincount(rows[inside], weights=precision_at_hit[inside], minlength=nq)
        found = hits[:, depth - 1]
        result.append(np.divide(total, found, out=np.zeros(nq), where=found > 0))
    return result


def average_precision_at_k(rel_sorted: np.ndarray, k: int | None) -> np.ndarray:
    """(nq,) float64 AP@k as in DeepHash-pytorch ``CalcTopMap``; mAP@k is its mean.

    Over the top k (None or k >= n: all n), AP is the mean over relevant positions p
    (1-based) of (relevant in top p) / p. Dividing by the relevant items found, not by all
    relevant items, is that definition; a query with none in the top k scores 0.

    Args:
        rel_sorted: (nq, n) bool relevance in rank order.
        k: how many top-ranked items to score, or None for all.
    """
    return _average_precisions(rel_sorted, _cumulative_hits(rel_sorted), [k])[0]


def precision_at_k(rel_sorted: np.ndarray, k: int) -> np.ndarray:
    """(nq,) float64: relevant items in the top k, divided by k.

    When k > n the ranking holds only n items, so the division is by n: precision measures
    the returned list, and a short database should not be charged for items it lacks.

    Args:
        rel_sorted: (nq, n) bool relevance in rank order.
        k: cutoff, >= 1.
    """
    return _precisions(_cumulative_hits(rel_sorted), np.array([k]))[:, 0]


def recall_at_k(rel_sorted: np.ndarray, k: int, n_relevant: np.ndarray) -> np.ndarray:
    """(nq,) float64: relevant items in the top k over all relevant items of the query.

    The total comes from the caller because a truncated ranking does not hold every
    relevant item; a query with no relevant item scores 0 rather than NaN.

    Args:
        rel_sorted: (nq, n) bool relevance in rank order.
        k: cutoff, >= 1 (k > n means all n).
        n_relevant: (nq,) int, relevant items of each query in the whole database.
    """
    return _recalls(_cumulative_hits(rel_sorted), np.array([k]), n_relevant)[:, 0]


def precision_within_radius(
    distances_sorted: np.ndarray, rel_sorted: np.ndarray, radius: int
) -> np.ndarray:
    """(nq,) float64 precision of the items within Hamming ``radius`` (a hash-lookup result).

    Items are selected by distance, not by rank, so this holds for any ranking order. A
    query with no item within the radius scores 0, the DPSH/DSH convention: an empty
    lookup returns nothing useful and is counted as a failure, not skipped.

    Args:
        distances_sorted: (nq, n) int Hamming distance of each item, in rank order.
        rel_sorted: (nq, n) bool relevance in the same order.
        radius: the largest distance that counts as a hit of the lookup.
    """
    within = distances_sorted <= radius
    returned = within.sum(axis=1)
    relevant_returned = np.logical_and(within, rel_sorted).sum(axis=1)
    return np.divide(relevant_returned, returned, out=np.zeros(len(returned)), where=returned > 0)


def pr_curve_points(
    rel_sorted: np.ndarray, n_relevant: np.ndarray, cutoffs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean precision and mean recall over queries at each rank cutoff, each (len(cutoffs),).

    Args:
        rel_sorted: (nq, n) bool relevance in rank order.
        n_relevant: (nq,) int, relevant items of each query in the whole database.
        cutoffs: (c,) int, 1-based numbers of top items (beyond n means all n).
    """
    hits = _cumulative_hits(rel_sorted)
    precision = _precisions(hits, cutoffs).mean(axis=0)
    return precision, _recalls(hits, cutoffs, n_relevant).mean(axis=0)


def default_cutoffs(n: int, points: int = 50) -> np.ndarray:
    """Sorted unique int64 cutoffs from 1 to n, spaced geometrically, n included.

    Precision changes fastest at the top ranks, so a geometric grid spends its points
    there, and the curve costs ``points`` evaluations whatever the database size.
    """
    assert n >= 1 and points >= 1, (n, points)
    grid = np.rint(np.geomspace(1, n, points)).astype(np.int64)
    return np.unique(np.append(grid, n))


class MetricAccumulator:
    """Sums per-query metrics chunk by chunk, so evaluation memory is one chunk's.

    Each `add` computes one cumulative hit count and reads every rank metric off it;
    `result` divides the sums by the number of queries added.
    """

    def __init__(
        self,
        ks_map: Sequence[int | None] = (None, 1000),
        ks_precision: Sequence[int] = (10, 100, 1000),
        radius: int = 2,
        cutoffs: np.ndarray | None = None,
    ) -> None:
        """``cutoffs`` of the PR curve default to `default_cutoffs` of the first chunk's n."""
        self.ks_map = tuple(ks_map)
        self.ks_precision = np.asarray(ks_precision, dtype=np.int64)
        self.radius = radius
        self.cutoffs = None if cutoffs is None else np.asarray(cutoffs, dtype=np.int64)
        self.num_queries = 0
        self._map_sums = np.zeros(len(self.ks_map))
        self._precision_sums = np.zeros(len(self.ks_precision))
        self._radius_sum: float | None = None
        # Scalar zeros until the first chunk fixes the cutoffs; they broadcast on addition.
        self._pr_precision_sums: np.ndarray | float = 0.0
        self._pr_recall_sums: np.ndarray | float = 0.0

    def add(
        self,
        rel_sorted: np.ndarray,
        distances_sorted: np.ndarray | None,
        n_relevant: np.ndarray,
    ) -> None:
        """Add one chunk of queries.

        Args:
            rel_sorted: (nq, n) bool relevance in rank order.
            distances_sorted: (nq, n) int Hamming distances in the same order, or None to
                skip the radius metric (then for every chunk).
            n_relevant: (nq,) int, relevant items of each query in the whole database.
        """
        hits = _cumulative_hits(rel_sorted)
        if self.cutoffs is None:
            self.cutoffs = default_cutoffs(hits.shape[1])
        aps = _average_precisions(rel_sorted, hits, self.ks_map)
        self._map_sums += [ap.sum() for ap in aps]
        self._precision_sums += _precisions(hits, self.ks_precision).sum(axis=0)
        self._pr_precision_sums += _precisions(hits, self.cutoffs).sum(axis=0)
        self._pr_recall_sums += _recalls(hits, self.cutoffs, n_relevant).sum(axis=0)
        self._add_radius(distances_sorted, rel_sorted)
        self.num_queries += len(rel_sorted)

    def _add_radius(self, distances_sorted: np.ndarray | None, rel_sorted: np.ndarray) -> None:
        """Sum radius precision; a mix of chunks with and without distances is a caller bug."""
        if self.num_queries == 0 and distances_sorted is not None:
            self._radius_sum = 0.0
        assert (distances_sorted is None) == (self._radius_sum is None), "distances: all or none"
        if distances_sorted is not None:
            precision = precision_within_radius(distances_sorted, rel_sorted, self.radius)
            self._radius_sum += float(precision.sum())

    def result(self) -> dict[str, object]:
        """Mean metrics as plain floats and lists, ready for ``json.dumps``."""
        if self.num_queries == 0:
            raise HashsearchError("no queries were evaluated; the query set is empty")
        count = self.num_queries
        out: dict[str, object] = {}
        for k, total in zip(self.ks_map, self._map_sums, strict=True):
            out["map_all" if k is None else f"map_{k}"] = float(total / count)
        for k, total in zip(self.ks_precision, self._precision_sums, strict=True):
            out[f"precision_at_{k}"] = float(total / count)
        if self._radius_sum is not None:
            out[f"precision_radius_{self.radius}"] = self._radius_sum / count
        out["pr_curve"] = {
            "cutoffs": self.cutoffs.tolist(),
            "precision": (self._pr_precision_sums / count).tolist(),
            "recall": (self._pr_recall_sums / count).tolist(),
        }
        out["num_queries"] = count
        return out
