"""Spectral Hashing (Weiss, Torralba and Fergus, NIPS 2008).

Assume the data, rotated by PCA, is uniform on a box [a_j, b_j] per principal
direction. The eigenfunctions of the Laplacian of that box are
Phi_{j,m}(x) = sin(pi / 2 + m pi / (b_j - a_j) (x_j - a_j)) with eigenvalues
growing with (m / (b_j - a_j))^2 (eq. 6-7). Spectral Hashing keeps the k
single-direction eigenfunctions with the smallest eigenvalues (m >= 1) and
thresholds each at zero: wide directions get several bits of rising frequency,
narrow ones none.
"""

from __future__ import annotations

import numpy as np

from hashsearch.shallow.base import PCA, SHALLOW_METHODS, ShallowHasher


@SHALLOW_METHODS.register("sh")
class SpectralHashing(ShallowHasher):
    def fit(self, vectors: np.ndarray) -> SpectralHashing:
        directions = min(self.bits, vectors.shape[1])
        self.check_dimensions(vectors, 1)
        self.pca = PCA(vectors, directions)
        v = self.pca(vectors)
        self.low = v.min(axis=0) - 1e-9
        width = v.max(axis=0) + 1e-9 - self.low
        # Candidate (direction, mode) pairs: up to `bits` modes per direction suffice.
        modes = np.arange(1, self.bits + 1)
        eigen = (modes[None, :] / width[:, None]) ** 2  # (directions, modes)
        best = np.argsort(eigen, axis=None, kind="stable")[: self.bits]
        self.direction, mode = np.unravel_index(best, eigen.shape)
        self.frequency = (mode + 1) * np.pi / width[self.direction]
        return self

    def project(self, vectors: np.ndarray) -> np.ndarray:
        v = self.pca(vectors)[:, self.direction] - self.low[self.direction]
        return np.sin(np.pi / 2 + v * self.frequency)
