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

Since (tanh(h) + 1) / 2 = sigmoid(2h), the BCE is computed from the logits 2h:
the same loss, but its gradient 2 (sigmoid(2h) - c) never vanishes. Computed on
tanh(h) it does once tanh rounds to exactly +-1 in float32 (|h| > 9): the
budget study's first CSQ runs froze there with every code saturated.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat
from scipy.linalg import hadamard

from hashsearch.methods.base import METHODS, HashingMethod, MethodParams
from hashsearch.methods.losses import quantization_error
from hashsearch.models.encoder import EncoderOutput, HashEncoder

CENTRE_SEED = 0  # the centres are part of the method, not of the run's seed


class CSQParams(MethodParams):
    lambda_quant: NonNegativeFloat = 1e-4


def hash_centres(num_classes: int, bits: int, seed: int = CENTRE_SEED) -> torch.Tensor:
    """(K, k) centres in {-1, 1}: Hadamard rows where they suffice, else random bits."""
    if bits & (bits - 1) == 0 and num_classes <= 2 * bits:
        rows = hadamard(bits)
        return torch.from_numpy(np.concatenate([rows, -rows])[:num_classes]).float()
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 2, (num_classes, bits)) * 2.0 - 1.0).float()


@METHODS.register("csq")
class CSQ(HashingMethod):
    """Codes pulled to per-class hash centres; named losses ``centre`` and ``quant``."""

    Params = CSQParams
    params: CSQParams

    def __init__(
        self,
        encoder: HashEncoder,
        num_classes: int,
        image_shape: tuple[int, int, int],
        params: CSQParams,
    ) -> None:
        super().__init__(encoder, num_classes, image_shape, params)
        self.register_buffer("centres", hash_centres(num_classes, self.bits))

    def item_centres(self, targets: torch.Tensor) -> torch.Tensor:
        """(B, k) targets in {0, 1}: sign of the sum of the item's class centres (+1 at 0)."""
        return ((targets.float() @ self.centres) >= 0).float()

    def losses(
        self, x: torch.Tensor, targets: torch.Tensor, out: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        logits = 2 * out.h.float()  # sigmoid(2h) = (tanh(h) + 1) / 2
        centre = F.binary_cross_entropy_with_logits(logits, self.item_centres(targets))
        return {"centre": centre, "quant": self.params.lambda_quant * quantization_error(out.h)}

    def class_logits(self, out: EncoderOutput) -> torch.Tensor:
        """The class whose centre is nearest (largest inner product with tanh h)."""
        return torch.tanh(out.h.float()) @ self.centres.T
