"""Batch augmentation on uint8 tensors: random translation, horizontal flips, and
corruption (noise, blur, brightness, contrast, zoom, rotation).

Done on whole batches with tensor ops (no per-image Python loop), because on a
2-core CPU a per-image PIL pipeline costs as much as the forward pass.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from hashsearch.config import AugmentConfig
from hashsearch.imageops import gaussian_blur, zoom_and_rotate


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


def flipped(images: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """`images` (B, C, H, W) with those where the boolean `which` (B,) is set mirrored."""
    return torch.where(which[:, None, None, None], images.flip(3), images)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return flipped(images, torch.rand(len(images), generator=generator) < 0.5)


def alternating_flip(images: torch.Tensor, first: torch.Tensor, epoch: int) -> torch.Tensor:
    """The whole training set as epoch `epoch` (from 1) sees it under `flip:
    "alternating"`: the images `first` marks mirrored in odd epochs, the others in even
    ones. One pass over the stored tensor an epoch, not a draw per batch."""
    return flipped(images, first if epoch % 2 else ~first)


def random_corruption(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """A `config.corrupt` share of the images gets one random corruption.

    Kinds and strengths are drawn per image; each kind runs once on its images.
    """
    n = len(images)
    chosen = torch.rand(n, generator=generator) < config.corrupt
    kind = torch.randint(0, 6, (n,), generator=generator)
    strength = torch.rand(n, generator=generator)[:, None, None, None]
    if not chosen.any():
        return images
    x = images.float()
    out = x.clone()
    noise = torch.randn(x.shape, generator=generator) * strength * config.noise * 255
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    sign = torch.where(strength < 0.5, -1.0, 1.0)  # darker or brighter, |shift| up to color
    changed = {
        0: x + noise,
        2: x + sign * (2 * strength - 1).abs() * config.color * 255,
        3: (x - mean) * (1 - strength * 1.6 * config.color) + mean,
    }
    for k, value in changed.items():
        rows = chosen & (kind == k)
        out[rows] = value[rows]
    blurred = chosen & (kind == 1)
    if blurred.any() and config.blur > 0:  # two strengths, so that blur runs twice a batch
        strong = blurred & (strength.flatten() >= 0.5)
        for rows, sigma in ((blurred & ~strong, config.blur / 2), (strong, config.blur)):
            if rows.any():
                out[rows] = gaussian_blur(x[rows], sigma)
    framed = chosen & (kind >= 4)
    if framed.any():
        s = strength.flatten()[framed]
        zoomed = kind[framed] == 4
        keep = torch.where(zoomed, 1 - s * config.zoom, torch.ones_like(s))
        angle = torch.where(zoomed, 0.0, (2 * s - 1) * math.radians(config.rotate))
        shift = (torch.rand(len(s), 2, generator=generator) * 2 - 1) * (1 - keep)[:, None]
        out[framed] = zoom_and_rotate(x[framed], keep, angle, shift)
    return out.clamp(0, 255).round().to(images.dtype)


def corrupted_copies(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A corrupted copy of a `config.corrupt` share (at least one) of the images.

    Returns: (rows, copies): the indices of the originals and one random corruption
    of each, for the consistency term (`AugmentConfig.consistency`).
    """
    count = max(1, round(len(images) * config.corrupt))
    rows = torch.randperm(len(images), generator=generator)[:count]
    every = config.model_copy(update={"corrupt": 1.0})
    return rows, random_corruption(images[rows], every, generator)


def scaled_down(images: torch.Tensor, size: int) -> torch.Tensor:
    """`images` (B, C, H, W) resized so that their shorter side is `size`, the aspect
    kept and antialiased as a photo is (progressive resizing, `AugmentConfig.low_res`);
    images no larger than that are returned as they are: a preset's `low_res` never
    scales a small data set up."""
    height, width = images.shape[-2:]
    scale = size / min(height, width)
    if scale >= 1:
        return images
    target = (round(height * scale), round(width * scale))
    return F.interpolate(images, size=target, mode="bilinear", antialias=True)


class Augmented(NamedTuple):
    """A training batch: what the encoder sees, and the same images before corruption
    (what a denoising decoder reconstructs, `AugmentConfig.denoise`), None where no
    image was corrupted (then they are the inputs)."""

    inputs: torch.Tensor
    originals: torch.Tensor | None


def augment(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator, progress: float = 0.0
) -> Augmented:
    """Args: images: (B, C, H, W) uint8 on the CPU; progress: the fraction of training
    done (corruption stops at `config.corrupt_until`). Returns the batches, each of the
    input's shape and dtype.

    Corruption replaces originals here only without the consistency term; with it the
    trainer adds `corrupted_copies` instead. Flips are drawn here only with `flip:
    true`; `"alternating"` ones are the trainer's, on the whole set each epoch.
    """
    pad = min(config.translate, images.shape[2] - 1, images.shape[3] - 1)
    images = random_translate(images, pad, generator)
    images = random_flip(images, generator) if config.flip is True else images
    if not config.replacing(progress):
        return Augmented(images, None)
    return Augmented(random_corruption(images, config, generator), images)
