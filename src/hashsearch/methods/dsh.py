"""DSH: Deep Supervised Hashing (Liu, Wang, Shan and Chen, CVPR 2016).

Eq. 3 of the paper, for every pair (i, j) of a batch with y_ij = 0 for images
of one class and 1 otherwise, on the real-valued outputs b = h (no sigmoid or
tanh: the regulariser does the binarising):

    L = 1/2 (1 - y) ||b_i - b_j||^2 + 1/2 y max(m - ||b_i - b_j||^2, 0)
        + alpha (|| |b_i| - 1 ||_1 + || |b_j| - 1 ||_1),   m = 2k.

The paper sums over pairs; here it is averaged over the B (B - 1) ordered pairs
of distinct items, which keeps the ratio between the terms, and divided by k so
that one learning rate suits every code length. alpha = 0.01 and m = 2k are the
paper's values.
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat, PositiveFloat

from hashsearch.methods.base import METHODS, HashingMethod, MethodParams
from hashsearch.methods.losses import off_diagonal_mean, same_label, squared_distances
from hashsearch.models.encoder import EncoderOutput


class DSHParams(MethodParams):
    margin_per_bit: PositiveFloat = 2.0  # m = margin_per_bit x k (the paper: m = 2k)
    alpha: NonNegativeFloat = 0.01  # weight of the |b| -> 1 regulariser


@METHODS.register("dsh")
class DSH(HashingMethod):
    """Pairwise contrastive hashing; named losses ``pair`` and ``reg``."""

    Params = DSHParams
    params: DSHParams

    def losses(
        self, x: torch.Tensor, targets: torch.Tensor, out: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        b, k = out.h, self.bits
        dissimilar = 1.0 - same_label(targets)
        dist = squared_distances(b)
        margin = self.params.margin_per_bit * k
        pair = 0.5 * (1 - dissimilar) * dist + 0.5 * dissimilar * (margin - dist).clamp_min(0)
        regulariser = (b.abs() - 1).abs().sum(dim=1).mean()
        return {
            "pair": off_diagonal_mean(pair) / k,
            "reg": self.params.alpha * 2 * regulariser / k,
        }
