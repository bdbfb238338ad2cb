"""GreedyHash (Su, Zhang, Huang and Tian, NeurIPS 2018).

The code layer is b = sign(h) in the forward pass, and in the backward pass the
gradient of b is passed to h unchanged (eq. 7: the greedy principle, "sign with
an identity gradient"), so the classifier and its loss see the very codes that
will be indexed. The supervised loss (eq. 9) is

    L = CE(W^T b, y) + alpha || |h| - 1 ||_3^3 / (B k),

the cross-entropy of a linear classifier on b plus the cubed penalty that pulls
h towards +-1 so that sign() changes it little. alpha = 0.1 is ours, not tuned
(docs/study.md).
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat
from torch import nn

from hashsearch.methods.base import METHODS, HashingMethod, MethodParams
from hashsearch.methods.losses import relax, soft_cross_entropy
from hashsearch.models.encoder import EncoderOutput, HashEncoder


class GreedyHashParams(MethodParams):
    alpha: NonNegativeFloat = 0.1


@METHODS.register("greedyhash")
class GreedyHash(HashingMethod):
    """Classification through sign() with an identity gradient; losses ``cls`` and ``quant``."""

    Params = GreedyHashParams
    params: GreedyHashParams

    def __init__(
        self,
        encoder: HashEncoder,
        num_classes: int,
        image_shape: tuple[int, int, int],
        params: GreedyHashParams,
    ) -> None:
        super().__init__(encoder, num_classes, image_shape, params)
        self.classifier = nn.Linear(self.bits, num_classes)

    def losses(
        self, x: torch.Tensor, targets: torch.Tensor, out: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        return {
            "cls": soft_cross_entropy(self.class_logits(out), targets),
            "quant": self.params.alpha * (out.h.abs() - 1).abs().pow(3).mean(),
        }

    def class_logits(self, out: EncoderOutput) -> torch.Tensor:
        return self.classifier(relax(out.h, "sign_identity"))
