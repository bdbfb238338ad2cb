"""Batch image operations on float (B, C, H, W) tensors, shared by training augmentation
(`hashsearch.training.augment`) and query corruption (`hashsearch.data.corruptions`), so
that a model is trained on exactly the blur and geometry it is tested with; and the
shifted views of test-time translation averaging (`hashsearch.models.encoder`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of float (B, C, H, W) images, edges reflected."""
    radius = max(1, min(math.ceil(3 * sigma), x.shape[2] - 1, x.shape[3] - 1))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def zoom_and_rotate(
    x: torch.Tensor, keep: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Float (B, C, H, W) images seen through a window keeping `keep` of each side,
    shifted by `shift` (B, 2) and rotated by `angle` radians; edges reflected."""
    cos, sin = torch.cos(angle) * keep, torch.sin(angle) * keep
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Float (B, C, H, W) images moved by (dy, dx) pixels (|dy| < H, |dx| < W), the edge
    reflected into the gap."""
    height, width = x.shape[-2:]
    pad_y, pad_x = abs(dy), abs(dx)
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y), mode="reflect")
    top, left = pad_y - dy, pad_x - dx
    return padded[..., top : top + height, left : left + width]
