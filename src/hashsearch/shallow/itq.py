"""ITQ: Iterative Quantization (Gong and Lazebnik, CVPR 2011), the PCA-ITQ variant.

Project centred vectors on their top k principal directions, V = PCA(x), then
find the rotation R that minimises the quantisation loss ||B - V R||_F^2 by
alternating (section 2.2): B = sign(V R), then R from the SVD of V^T B = U S W^T
as R = U W^T (orthogonal Procrustes). 50 iterations, as in the paper.
"""

from __future__ import annotations

import numpy as np

from hashsearch.shallow.base import PCA, SHALLOW_METHODS, ShallowHasher


@SHALLOW_METHODS.register("itq")
class ITQ(ShallowHasher):
    iterations = 50

    def fit(self, vectors: np.ndarray) -> ITQ:
        self.check_dimensions(vectors, self.bits)
        self.pca = PCA(vectors, self.bits)
        v = self.pca(vectors)
        rng = np.random.default_rng(self.seed)
        rotation, _ = np.linalg.qr(rng.standard_normal((self.bits, self.bits)))
        for _ in range(self.iterations):
            codes = np.where(v @ rotation >= 0, 1.0, -1.0)
            u, _, wt = np.linalg.svd(v.T @ codes)
            rotation = u @ wt
        self.rotation = rotation
        return self

    def project(self, vectors: np.ndarray) -> np.ndarray:
        return self.pca(vectors) @ self.rotation
