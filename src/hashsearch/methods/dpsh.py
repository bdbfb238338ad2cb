"""DPSH: Deep Pairwise-Supervised Hashing (Li, Wang and Kang, IJCAI 2016).

Eq. 4 of the paper, on the real-valued outputs u = h, b = sign(u),
theta_ij = 1/2 u_i^T u_j:

    L = -sum_{s_ij} (s_ij theta_ij - log(1 + e^theta_ij)) + eta sum_i ||b_i - u_i||^2.

Pairs are those of a batch (as in the paper's mini-batch training). The sums
are means here, the likelihood over the B^2 pairs and the quantisation term
over the B k code entries, so eta keeps its meaning across batch sizes and code
lengths; the paper's eta = 10 belongs to its sums, so eta = 0.1 here is ours,
not tuned yet (docs/study.md).
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat

from hashsearch.methods.base import METHODS, HashingMethod, MethodParams
from hashsearch.methods.losses import binary, pairwise_likelihood, same_label
from hashsearch.models.encoder import EncoderOutput


class DPSHParams(MethodParams):
    eta: NonNegativeFloat = 0.1  # weight of the quantisation term ||b - u||^2


@METHODS.register("dpsh")
class DPSH(HashingMethod):
    """Pairwise likelihood hashing; named losses ``likelihood`` and ``quant``."""

    Params = DPSHParams
    params: DPSHParams

    def losses(
        self, x: torch.Tensor, targets: torch.Tensor, out: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        u = out.h
        theta = 0.5 * (u @ u.T)
        return {
            "likelihood": pairwise_likelihood(theta, same_label(targets)).mean(),
            "quant": self.params.eta * (u - binary(u.detach())).pow(2).mean(),
        }
