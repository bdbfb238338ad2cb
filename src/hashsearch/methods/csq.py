"""CSQ: Central Similarity Quantization (Yuan, Wang, Zhang, Zhou, Tian, Feng and Feng, CVPR 2020).

Each class gets a hash centre c_k in {-1, 1}^k, far from the others: rows of a
Hadamard matrix and their negations when k is a power of two and 2k >= K
(every pair of centres then differs in k/2 bits or all k), otherwise random
Bernoulli(1/2) bits (section 3.2). A multi-label item's centre is the sign of
the sum of its labels' centres. With u = tanh(h), eq. 6-7 minimise

    L = mean BCE((u + 1) / 2, (c + 1) / 2) + lambda mean (|u| - 1)^2,

the central similarity term (every code towards its centre, so codes of one
class meet and centres keep classes apart) and the quantisation term, with the
paper's lambda = 1e-4. The centres are a buffer: they travel with the weights.
The BCE is computed from the logits 2h (`central_similarity`): computed on tanh(h)
the budget study's first CSQ runs froze with every code saturated.
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat

from hashsearch.methods.base import METHODS, HashingMethod, MethodParams
from hashsearch.methods.losses import central_similarity, hash_centres, quantization_error
from hashsearch.models.encoder import EncoderOutput, HashEncoder


class CSQParams(MethodParams):
    lambda_quant: NonNegativeFloat = 1e-4


@METHODS.register("csq")
class CSQ(HashingMethod):
    """Codes pulled to per-class hash centres; named losses ``centre`` and ``quant``."""

    Params = CSQParams
    params: CSQParams
    centres: torch.Tensor  # (K, bits) buffer

    def __init__(
        self,
        encoder: HashEncoder,
        num_classes: int,
        image_shape: tuple[int, int, int],
        params: CSQParams,
    ) -> None:
        super().__init__(encoder, num_classes, image_shape, params)
        self.register_buffer("centres", hash_centres(num_classes, self.bits))

    def losses(
        self, x: torch.Tensor, targets: torch.Tensor, out: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        centre = central_similarity(out.h, self.centres, targets)
        return {"centre": centre, "quant": self.params.lambda_quant * quantization_error(out.h)}

    def class_logits(self, out: EncoderOutput) -> torch.Tensor:
        """The class whose centre is nearest (largest inner product with tanh h)."""
        return torch.tanh(out.h.float()) @ self.centres.T
