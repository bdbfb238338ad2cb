"""Shallow (unsupervised, non-deep) hashing: fit on float vectors, then encode them.

These are the classic baselines of the study. They never see a label: they are
fitted on the training split's float vectors (a trained backbone's features or
raw pixels, `hashsearch.study` decides) and encode the query and database
vectors into the same packed codes the deep methods produce, so one evaluation
code path scores them all. A new method is one module with one subclass and
one registry entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from hashsearch.encoding import pack_codes
from hashsearch.errors import HashsearchError
from hashsearch.registry import Registry


class ShallowHasher(ABC):
    """Fit on (n, D) float vectors; `encode` gives (n, bits // 8) packed codes."""

    def __init__(self, bits: int, seed: int = 0) -> None:
        self.bits = bits
        self.seed = seed

    @abstractmethod
    def fit(self, vectors: np.ndarray) -> ShallowHasher: ...

    @abstractmethod
    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(n, bits) real values whose signs are the codes."""
        ...

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        return pack_codes(self.project(np.asarray(vectors, np.float64)))

    def check_dimensions(self, vectors: np.ndarray, needed: int) -> None:
        if vectors.ndim != 2 or vectors.shape[1] < needed or len(vectors) < 2:
            raise HashsearchError(
                f"{type(self).__name__} needs at least 2 vectors of dimension >= {needed} "
                f"for {self.bits} bits, got shape {vectors.shape}"
            )


SHALLOW_METHODS: Registry[type[ShallowHasher]] = Registry("shallow method")


class PCA:
    """Mean and the top principal directions of (n, D) vectors, from the covariance in float64."""

    def __init__(self, vectors: np.ndarray, components: int) -> None:
        x = np.asarray(vectors, np.float64)
        self.mean = x.mean(axis=0)
        centred = x - self.mean
        values, vectors_ = np.linalg.eigh(centred.T @ centred / max(1, len(x) - 1))
        top = np.argsort(values)[::-1][:components]
        self.components = vectors_[:, top]  # (D, components)
        self.variances = values[top]

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, np.float64) - self.mean) @ self.components
