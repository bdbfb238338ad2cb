"""SAEH: supervised auto-encoder hashing (the design document, section 3.2).

Encoder E(x) -> h, b = sign(h); a supervisory network (a linear classifier on
the code) adds L_cls (eq. 1) and the pairwise L_sim (eq. 2); a decoder D(b)
reconstructs the normalised image, L_rec (eq. 3); training minimises
L = L_cls + lambda1 L_sim + lambda2 L_rec (eq. 4) with b relaxed as `relax` says.
lambda2 = 0 removes the decoder entirely (the study's ablation). Optional terms,
each off at 0: a quantisation term, CSQ's class-centre term and an auxiliary
classifier on the backbone feature (`SAEHParams`).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import nn

from hashsearch.methods.base import METHODS, HashingMethod, MethodParams
from hashsearch.methods.losses import (
    CentreLayout,
    Relaxation,
    central_similarity,
    continuation_scale,
    hash_centres,
    pairwise_similar_distance,
    quantization_error,
    relax,
    same_label,
    soft_cross_entropy,
)
from hashsearch.models.decoder import ImageDecoder
from hashsearch.models.encoder import EncoderOutput, HashEncoder


class SAEHParams(MethodParams):
    lambda_sim: NonNegativeFloat = 1.0  # lambda1 of eq. 4
    lambda_rec: NonNegativeFloat = 0.1  # lambda2 of eq. 4; 0 turns the decoder off
    # Weight of mean (|tanh h| - 1)^2, which pulls the relaxed code towards +-1 so that
    # sign() changes it little (the quantisation term of DSH and DPSH); 0 leaves eq. 4 as is.
    lambda_quant: NonNegativeFloat = 0.0
    # Weight of CSQ's central similarity term (`central_similarity`): every code pulled
    # towards a fixed centre of its class, so each class's codes stay close together
    # (wider within-class spread is what costs corruption-trained runs clean mAP,
    # docs/robustness.md). It acts on h itself, as in CSQ, whatever the relaxation's
    # scale; 0 leaves eq. 4 as is.
    lambda_centre: NonNegativeFloat = 0.0
    # Where the class centres lie (`hash_centres`): "csq", CSQ's rule (random bits unless
    # the code length is a power of two), or "blocks", Hadamard rows per power-of-two
    # part, so that centres stay at least k/2 bits apart when every part has room for
    # half the classes (48 bits: 24 apart, where CSQ's random bits leave two 17 apart).
    centre_layout: CentreLayout = "csq"
    # Weight of an auxiliary cross-entropy from a linear classifier on the backbone
    # feature (the head the fast CIFAR-10 recipes train): the code classifier's gradient
    # reaches the backbone through tanh(beta h), which saturates as beta hardens, so
    # late in training it teaches the backbone little. 0 leaves eq. 4 as is.
    lambda_feature_cls: NonNegativeFloat = 0.0
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # Label smoothing of the feature classifier alone; None: `label_smoothing`. Smoothing
    # the code's classifier evens out the code's distances to every other class, which
    # shapes the Hamming ranking; the feature's classifier only teaches the backbone,
    # so the two may want different amounts. Without that classifier
    # (lambda_feature_cls 0) it has nothing to act on.
    feature_label_smoothing: Annotated[float | None, Field(ge=0, lt=1)] = None
    relaxation: Relaxation = "sign_ste"
    # The relaxation is tanh(beta h) with beta growing geometrically from 1 to this
    # value over training (HashNet's continuation): smooth gradients early, codes
    # that equal sign(h) late. 1 keeps beta = 1 throughout.
    final_scale: Annotated[float, Field(ge=1)] = 1.0
    decoder_width: PositiveInt = 64


@METHODS.register("saeh")
class SAEH(HashingMethod):
    """Supervised auto-encoder hashing; named losses ``cls``, ``sim``, ``rec`` and the optional
    ``quant``, ``centre``, ``feature_cls``.

    >>> from hashsearch.config import RunConfig
    >>> from hashsearch.methods import create_method
    >>> m = create_method(RunConfig(), num_classes=10, image_shape=(1, 8, 8))
    >>> x = m.normalize(torch.randint(0, 255, (4, 1, 8, 8), dtype=torch.uint8))
    >>> sorted(m.losses(x, torch.eye(10)[:4], m(x)))
    ['cls', 'rec', 'sim']
    """

    Params = SAEHParams
    params: SAEHParams
    centres: torch.Tensor  # (K, bits) buffer

    def __init__(
        self,
        encoder: HashEncoder,
        num_classes: int,
        image_shape: tuple[int, int, int],
        params: SAEHParams,
    ) -> None:
        super().__init__(encoder, num_classes, image_shape, params)
        self.classifier = nn.Linear(self.bits, num_classes)
        self.decoder = (
            ImageDecoder(self.bits, image_shape, params.decoder_width)
            if params.lambda_rec > 0
            else None
        )
        if params.lambda_centre > 0:
            self.register_buffer(
                "centres", hash_centres(num_classes, self.bits, params.centre_layout)
            )
        self.feature_classifier = (
            nn.Linear(encoder.feature_dim, num_classes) if params.lambda_feature_cls > 0 else None
        )

    def losses(
        self, x: torch.Tensor, targets: torch.Tensor, out: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        b = self.relaxed_code(out.h)
        terms = {
            "cls": soft_cross_entropy(self.classifier(b), targets, self.params.label_smoothing),
            "sim": self.params.lambda_sim * pairwise_similar_distance(b, same_label(targets)),
        }
        if self.params.lambda_quant > 0:
            terms["quant"] = self.params.lambda_quant * quantization_error(out.h)
        if self.params.lambda_centre > 0:
            terms["centre"] = self.params.lambda_centre * central_similarity(
                out.h, self.centres, targets
            )
        if self.feature_classifier is not None:
            smoothing = self.params.feature_label_smoothing
            if smoothing is None:
                smoothing = self.params.label_smoothing
            terms["feature_cls"] = self.params.lambda_feature_cls * soft_cross_entropy(
                self.feature_classifier(out.feature), targets, smoothing
            )
        if self.decoder is not None:
            terms["rec"] = self.params.lambda_rec * (self.decoder(b) - x).pow(2).mean()
        return terms

    def relaxed_code(self, h: torch.Tensor) -> torch.Tensor:
        """b of eq. 1-3 during training: `relaxation` of h at the current continuation scale."""
        scale = continuation_scale(self.params.final_scale, self.progress)
        return relax(h, self.params.relaxation, scale)

    def class_logits(self, out: EncoderOutput) -> torch.Tensor:
        return self.classifier(self.relaxed_code(out.h))
