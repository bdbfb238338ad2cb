"""LSH: sign random projections (Charikar, STOC 2002), the data-independent baseline.

b = sign(W^T (x - mean)) with W a (D, k) Gaussian matrix: two vectors at angle
theta disagree in a bit with probability theta / pi. Only the mean comes from
the data (centring, so that bits split the data rather than all agree).
"""

from __future__ import annotations

import numpy as np

from hashsearch.shallow.base import SHALLOW_METHODS, ShallowHasher


@SHALLOW_METHODS.register("lsh")
class LSH(ShallowHasher):
    def fit(self, vectors: np.ndarray) -> LSH:
        self.check_dimensions(vectors, 1)
        self.mean = np.asarray(vectors, np.float64).mean(axis=0)
        rng = np.random.default_rng(self.seed)
        self.projection = rng.standard_normal((vectors.shape[1], self.bits))
        return self

    def project(self, vectors: np.ndarray) -> np.ndarray:
        return (vectors - self.mean) @ self.projection
