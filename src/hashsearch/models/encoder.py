"""The hashing encoder E(x): preprocessing, backbone, hash layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hashsearch.config import BackboneConfig
from hashsearch.device import autocast
from hashsearch.errors import HashsearchError
from hashsearch.imageops import shifted
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

    def head(self, count: int) -> EncoderOutput:
        """The output of the first `count` images of the batch."""
        return EncoderOutput(self.h[:count], self.feature[:count])


class HashEncoder(nn.Module):
    """Normalised float images -> EncoderOutput; `normalize` turns uint8 pixels into its input."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        bits: int,
        backbone: BackboneConfig,
        normalization: str,
        flip_average: bool = False,
        query_shifts: Sequence[tuple[int, int]] = (),
        precision: str = "fp32",
        hash_batchnorm: bool = False,
    ) -> None:
        super().__init__()
        height, width = image_shape[1:]
        too_far = [(dy, dx) for dy, dx in query_shifts if abs(dy) >= height or abs(dx) >= width]
        if too_far:
            raise HashsearchError(
                f"encode.query_shifts {list(too_far[0])} moves a {width}x{height} image off "
                "itself; use shifts smaller than the image"
            )
        self.normalize = Normalize(normalization, image_shape[0])
        self.backbone = create_backbone(image_shape[0], backbone)
        self.bits = bits
        self.hash_layer: nn.Module = nn.Linear(self.backbone.out_dim, bits)
        if hash_batchnorm:
            norm = nn.BatchNorm1d(bits, affine=False)
            self.hash_layer = nn.Sequential(self.hash_layer, norm)
        self.feature_dim = self.backbone.out_dim
        self.flip_average = flip_average
        self.query_shifts = tuple(query_shifts)
        self.precision = precision

    @torch.no_grad()
    def fit(self, images: torch.Tensor, sample: int = 5000) -> None:
        """Data-dependent set-up before training, from uint8 (N, C, H, W) training images.

        Fits the normalisation statistics on all images, then the backbone's own
        initialisation (e.g. patch whitening) on the first `sample` of them.
        """
        self.normalize.fit(images)
        self.backbone.fit(self.normalize(images[:sample]))

    def forward(self, x: torch.Tensor, as_queries: bool = False) -> EncoderOutput:
        """Args: x: (B, C, H, W) already normalised float (see `normalize`); as_queries:
        the images are queries, not items to store (see `query_shifts`).

        In eval mode, `precision` "bf16" (or "auto" on a device with native
        bfloat16) runs the pass under bfloat16 autocast
        (outputs are float32 again), with `flip_average` h and the feature are the
        means over x and its mirror image, and for queries with `query_shifts` the
        feature is 1/2 x that of x + 1/2 x the mean of those of x moved by each
        (dy, dx) shift (airbench's translation averaging with (1, 1) and (-1, -1)),
        h the hash layer of it.
        Training always sees single images; its precision is the trainer's business.
        """
        if self.training:
            feature = self.backbone(x)
            return EncoderOutput(h=self.hash_layer(feature), feature=feature)
        with autocast(self.precision, x.device):
            feature = self._view_feature(x)
            if as_queries and self.query_shifts:
                moved = [self._view_feature(shifted(x, dy, dx)) for dy, dx in self.query_shifts]
                # in float32: a bf16 sum would round each view's share
                feature = 0.5 * feature.float() + 0.5 * torch.stack(moved).float().mean(0)
            h = self.hash_layer(feature)
        return EncoderOutput(h=h.float(), feature=feature.float())

    def _view_feature(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone feature of x, averaged with its mirror image's under `flip_average`."""
        feature = self.backbone(x)
        return (feature + self.backbone(x.flip(3))) / 2 if self.flip_average else feature
