"""Stage-2 refinement strategies: how the stage-1 candidates are re-sorted.

Each strategy is one class and one registry entry. It scores the candidates of
a batch of queries (higher first); the caller re-sorts only the candidates and
keeps the Hamming order among equal scores, so every strategy shares one
sorting rule. `search.two_stage_search` calls a strategy with one query and its
candidates; the evaluation calls it with a chunk of queries and the whole
database plus a mask of which items are each query's candidates, so the two
paths give the same ranking.

| name     | score of a candidate                                                      |
|----------|---------------------------------------------------------------------------|
| `none`   | no stage 2: the Hamming order                                             |
| `cosine` | cosine similarity of deep features (design document, eq. 5-6)            |
| `bucket` | Hamming distance first; cosine only orders items at equal distance        |
| `qe`     | cosine to the query averaged with its top `k` candidates (average QE)     |
| `fusion` | cosine + `weight` x Hamming similarity (1 - 2 d / bits): a soft `bucket`  |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from hashsearch.registry import Registry

Array = np.ndarray


def l2_normalized(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)


class Reranker(ABC):
    """Scores stage-1 candidates; `prepare` runs once on the items' features.

    Splitting the two lets the evaluation prepare the database once for all
    query chunks (e.g. L2-normalise it).
    """

    def prepare(self, features: np.ndarray) -> np.ndarray:
        return l2_normalized(features)

    @abstractmethod
    def score(
        self,
        query: Array,
        items: Array,
        hamming: Array,
        candidate: Array,
        bits: int,
    ) -> Array:
        """(q, m) scores of every item for every query; only candidates' scores are used.

        Args:
            query: (q, D) raw query features. items: (m, D) prepared item features.
            hamming: (q, m) Hamming distances of the items' codes to each query's.
            candidate: (q, m) bool, True for the items stage 1 passed to stage 2.
            bits: code length.
        """
        ...


RERANKERS: Registry[Reranker | None] = Registry("re-ranker")
RERANKERS.register("none")(None)


def cosine(query: np.ndarray, items: np.ndarray) -> np.ndarray:
    """S_ij = f_i . f_j / (|f_i| |f_j|) (eq. 5) for L2-normalised `items`."""
    return l2_normalized(query) @ items.T


@dataclass(frozen=True)
class CosineReranker(Reranker):
    """The design document's stage 2: candidates by cosine similarity of deep features."""

    def score(
        self, query: Array, items: Array, hamming: Array, candidate: Array, bits: int
    ) -> Array:
        return cosine(query, items)


@dataclass(frozen=True)
class BucketReranker(Reranker):
    """Keeps the Hamming order between distances; cosine breaks ties within one distance.

    A cosine lies in [-1, 1], so 3 per unit of distance keeps distances apart.
    """

    def score(
        self, query: Array, items: Array, hamming: Array, candidate: Array, bits: int
    ) -> Array:
        return cosine(query, items) - 3.0 * hamming


@dataclass(frozen=True)
class QueryExpansionReranker(Reranker):
    """Average query expansion (Chum et al., ICCV 2007): the query feature is replaced by
    the mean of itself and its `k` best candidates by cosine, then candidates are scored
    by cosine to that mean. Neighbours of the same class pull the query towards the
    class, at the cost of a second similarity pass.

    `k` None takes every candidate: the query moves to the centroid of its whole
    candidate list. Where a class has thousands of items and most of a long list
    shares the query's class, that centroid is a steadier view of the class than
    any few neighbours (validation mAP of the CIFAR-10 presets: docs/recipe.md,
    round 12).
    """

    k: int | None = 5

    def score(
        self, query: Array, items: Array, hamming: Array, candidate: Array, bits: int
    ) -> Array:
        if self.k is None:
            expanded = l2_normalized(query) + candidate.astype(np.float32) @ items
            return cosine(expanded, items)
        first = np.where(candidate, cosine(query, items), -np.inf)
        k = min(self.k, items.shape[0])
        top = np.argpartition(-first, k - 1, axis=1)[:, :k]
        usable = np.take_along_axis(candidate, top, axis=1)[..., None]
        expanded = l2_normalized(query) + (items[top] * usable).sum(axis=1)
        return cosine(expanded, items)


@dataclass(frozen=True)
class FusionReranker(Reranker):
    """cosine + `weight` x (1 - 2 d / bits): both similarities in [-1, 1], summed.

    Cosine alone throws away what the codes learned about the class; Hamming alone
    ranks with only bits + 1 levels. weight 0 is `cosine`, a large weight `bucket`.
    """

    weight: float = 0.5

    def score(
        self, query: Array, items: Array, hamming: Array, candidate: Array, bits: int
    ) -> Array:
        return cosine(query, items) + self.weight * (1.0 - 2.0 * hamming / bits)


RERANKERS.register("cosine")(CosineReranker())
RERANKERS.register("bucket")(BucketReranker())
RERANKERS.register("qe")(QueryExpansionReranker())
RERANKERS.register("fusion")(FusionReranker())
RERANKERS.register("qe-all")(QueryExpansionReranker(k=None))
