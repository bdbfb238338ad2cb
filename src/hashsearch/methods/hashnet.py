"""HashNet: deep learning to hash by continuation (Cao, Long, Wang and Yu, ICCV 2017).

Eq. 4-6 of the paper: codes u = tanh(beta z), the adaptive sigmoid
sigma(alpha <u_i, u_j>) as the probability that a pair is similar, and the
weighted negative log-likelihood

    L = sum_ij w_ij (log(1 + exp(alpha <u_i, u_j>)) - s_ij alpha <u_i, u_j>),

with w_ij = |S| / |S_1| for similar and |S| / |S_0| for dissimilar pairs of the
batch (eq. 5: class-imbalanced pairs weighted to balance), averaged over |S|.
beta grows from 1 to `final_scale` over training (continuation, section 3.3:
the paper raises beta in steps; here it grows geometrically on the trainer's
clock). alpha = 10 / k as in the authors' released code.
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field, PositiveFloat

from hashsearch.methods.base import METHODS, HashingMethod, MethodParams
from hashsearch.methods.losses import continuation_scale, pairwise_likelihood, relax, same_label
from hashsearch.models.encoder import EncoderOutput


class HashNetParams(MethodParams):
    alpha_bits: PositiveFloat = 10.0  # alpha = alpha_bits / k
    final_scale: Annotated[float, Field(ge=1)] = 10.0  # beta at the end of training


def balance_weights(similar: torch.Tensor) -> torch.Tensor:
    """w_ij of HashNet eq. 5: |S| / |S_1| on similar pairs, |S| / |S_0| on the others."""
    total = similar.numel()
    n_similar = similar.sum().clamp_min(1.0)
    n_dissimilar = (total - similar.sum()).clamp_min(1.0)
    return torch.where(similar > 0, total / n_similar, total / n_dissimilar)


@METHODS.register("hashnet")
class HashNet(HashingMethod):
    """Weighted pairwise cross-entropy with continuation; named loss ``pair``."""

    Params = HashNetParams
    params: HashNetParams

    def losses(
        self, x: torch.Tensor, targets: torch.Tensor, out: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        beta = continuation_scale(self.params.final_scale, self.progress)
        u = relax(out.h, "tanh", beta)
        similar = same_label(targets)
        inner = (self.params.alpha_bits / self.bits) * (u @ u.T)
        weighted = balance_weights(similar) * pairwise_likelihood(inner, similar)
        return {"pair": weighted.mean()}
