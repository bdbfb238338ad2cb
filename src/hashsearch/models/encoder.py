"""The hashing encoder E(x): preprocessing, backbone, hash layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hashsearch.config import BackboneConfig
from hashsearch.models.backbone import create_backbone
from hashsearch.models.preprocess import Normalize


@dataclass
class EncoderOutput:
    """What one forward pass gives every method and the index.

    Attributes:
        h: (B, bits) real-valued code before binarisation; b = sign(h).
        feature: (B, D) the intermediate feature stage 2 re-ranks with.
    """

    h: torch.Tensor
    feature: torch.Tensor


class HashEncoder(nn.Module):
    """Normalised float images -> EncoderOutput; `normalize` turns uint8 pixels into its input."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        bits: int,
        backbone: BackboneConfig,
        normalization: str,
        flip_average: bool = False,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(normalization, image_shape[0])
        self.backbone = create_backbone(image_shape[0], backbone)
        self.hash_layer = nn.Linear(self.backbone.out_dim, bits)
        self.feature_dim = self.backbone.out_dim
        self.flip_average = flip_average

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        """Args: x: (B, C, H, W) already normalised float (see `normalize`).

        In eval mode with `flip_average`, h and the feature are the means over x
        and its mirror image; training always sees single images.
        """
        feature = self.backbone(x)
        if self.flip_average and not self.training:
            feature = (feature + self.backbone(x.flip(3))) / 2
        return EncoderOutput(h=self.hash_layer(feature), feature=feature)
