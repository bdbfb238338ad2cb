"""What every deep hashing method is: an encoder plus a loss.

A method subclass declares its parameter schema (`Params`), builds its heads in
`__init__` and writes only its loss in `losses`, returning named, already
weighted terms. The one trainer sums and logs whatever names come back and never
asks which method it is training (pytorch-metric-learning's loss pattern).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from hashsearch.config import RunConfig, validated
from hashsearch.models.encoder import EncoderOutput, HashEncoder
from hashsearch.registry import Registry


class MethodParams(BaseModel):
    """Base of each method's own parameters; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HashingMethod(nn.Module, ABC):
    """Encoder E(x) -> (h, feature) plus the method's training heads and loss."""

    Params: ClassVar[type[MethodParams]] = MethodParams

    def __init__(
        self,
        encoder: HashEncoder,
        num_classes: int,
        image_shape: tuple[int, int, int],
        params: MethodParams,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.params = params
        self.num_classes = num_classes
        self.image_shape = image_shape
        # Fraction of training done, in [0, 1]; the trainer sets it before every step so
        # that a loss with a continuation schedule (HashNet's beta) can read it.
        self.progress = 0.0

    @property
    def bits(self) -> int:
        return self.encoder.bits

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> the normalised float input every loss term sees."""
        return self.encoder.normalize(images)

    def forward(self, x: torch.Tensor, as_queries: bool = False) -> EncoderOutput:
        """Args: x: normalised float (B, C, H, W), from `normalize`; as_queries: they
        are queries, which `encode.query_shifts` encodes differently in eval mode."""
        return self.encoder(x, as_queries)

    @abstractmethod
    def losses(
        self, x: torch.Tensor, targets: torch.Tensor, out: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        """Named, weighted loss terms whose sum is minimised.

        Args:
            x: (B, C, H, W) normalised images, the ones a decoder reconstructs: the
                encoder's input, or that input before corruption
                (`train.augment.denoise`).
            targets: (B, K) float multi-hot labels (one-hot for single-label data).
            out: the encoder's output for the batch.
        """
        ...

    def class_logits(self, out: EncoderOutput) -> torch.Tensor | None:
        """(B, K) class scores if the method has a classifier (reported as accuracy)."""
        return None


METHODS: Registry[type[HashingMethod]] = Registry("method")


def create_method(
    config: RunConfig, num_classes: int, image_shape: tuple[int, int, int]
) -> HashingMethod:
    """Build the configured method, its encoder and heads, with checked parameters."""
    cls = METHODS.get(config.method.name)
    params: Any = validated(cls.Params, config.method.params, f"{config.method.name} parameters")
    encoder = HashEncoder(
        image_shape,
        config.method.bits,
        config.backbone,
        config.data.normalization,
        flip_average=config.encode.flip_average,
        query_shifts=config.encode.query_shifts,
        precision=config.encode.precision,
        hash_batchnorm=config.method.hash_batchnorm,
    )
    return cls(encoder, num_classes, image_shape, params)


def list_methods() -> list[str]:
    return METHODS.names()
