"""D(b): a small upsampling CNN from a code back to the normalised image (SAEH, eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ImageDecoder(nn.Module):
    """(B, bits) -> (B, C, H, W).

    A linear layer makes a (width, H/2^s, W/2^s) map, then s nearest-upsample +
    conv stages double it back; s is at most 3 and limited by the image size.
    Deliberately narrow: the decoder regularises the code, it is not the product,
    and its cost is paid on every training step.
    """

    def __init__(self, bits: int, image_shape: tuple[int, int, int], width: int = 64) -> None:
        super().__init__()
        channels, height, width_px = image_shape
        steps = max(0, min(3, (min(height, width_px)).bit_length() - 1))
        self.start = (width, max(1, height >> steps), max(1, width_px >> steps))
        self.out_hw = (height, width_px)
        self.project = nn.Linear(bits, width * self.start[1] * self.start[2])
        layers: list[nn.Module] = []
        c = width
        for _ in range(steps):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c, max(c // 2, 16), 3, padding=1, bias=False),
                nn.BatchNorm2d(max(c // 2, 16)),
                nn.ReLU(True),
            ]
            c = max(c // 2, 16)
        layers.append(nn.Conv2d(c, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = self.project(codes).view(-1, *self.start)
        x = self.body(x)
        if x.shape[-2:] != self.out_hw:
            x = F.interpolate(x, size=self.out_hw, mode="bilinear", align_corners=False)
        return x
