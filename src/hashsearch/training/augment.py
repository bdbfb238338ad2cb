"""Batch augmentation on uint8 tensors: random translation and horizontal flips.

Done on whole batches with tensor ops (no per-image Python loop), because on a
2-core CPU a per-image PIL pipeline costs as much as the forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hashsearch.config import AugmentConfig


def random_translate(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y, filling by reflection.

    Equivalent to "reflect-pad then random crop"; images sharing an offset are
    cropped together, so the loop runs over the (2 pad + 1)^2 offsets, not images.
    """
    if pad == 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="reflect").to(images.dtype)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    out = torch.empty_like(images)
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            sel = torch.nonzero((dy == oy) & (dx == ox)).flatten()
            if len(sel):
                out[sel] = padded[sel, :, oy : oy + h, ox : ox + w]
    return out


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def augment(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Args: images: (B, C, H, W) uint8 on the CPU. Returns the same shape and dtype."""
    pad = min(config.translate, images.shape[2] - 1, images.shape[3] - 1)
    images = random_translate(images, pad, generator)
    return random_flip(images, generator) if config.flip else images
