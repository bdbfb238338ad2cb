"""uint8 pixels -> normalised floats, as a module so that checkpoints carry the statistics."""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """Normalise a uint8 batch (B, C, H, W).

    ``mode="image"``: every image to zero mean and unit variance over its own
    pixels (design document, section 3.1); needs no statistics, so a query image
    is treated exactly like a database image. ``mode="channel"``: subtract and
    divide by per-channel statistics of the training split, stored as buffers so
    that a saved model normalises queries the same way.
    """

    def __init__(self, mode: str, channels: int) -> None:
        super().__init__()
        assert mode in ("image", "channel"), mode
        self.mode = mode
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    @torch.no_grad()
    def fit(self, images: torch.Tensor, chunk: int = 4096) -> None:
        """Per-channel statistics of uint8 (N, C, H, W) training images ("channel" mode only).

        Accumulated in float64 chunk by chunk, so 50,000 images never become one
        600 MB float tensor.
        """
        if self.mode != "channel":
            return
        total = torch.zeros(images.shape[1], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for start in range(0, len(images), chunk):
            x = images[start : start + chunk].double().div_(255.0)
            total += x.sum(dim=(0, 2, 3))
            squares += x.pow(2).sum(dim=(0, 2, 3))
        count = images.numel() / images.shape[1]
        mean = total / count
        std = (squares / count - mean.pow(2)).clamp_min(1e-12).sqrt()
        self.mean.copy_(mean.view_as(self.mean))
        self.std.copy_(std.view_as(self.std))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0
        if self.mode == "image":
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
            return (x - mean) / std
        return (x - self.mean) / self.std
