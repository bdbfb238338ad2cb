"""Query corruptions at three severities: noise, blur, JPEG, brightness, contrast, rotation, crop.

The robustness study (`hashsearch bench --corruptions`) corrupts the query
images while the database stays clean, the way a photo taken by a user differs
from the catalogue's. Noise and blur take CIFAR-10-C's levels 1, 3 and 5
(Hendrycks and Dietterich, ICLR 2019); JPEG (quality 80/50/30), brightness (an
RGB shift of 0.1/0.3/0.5) and contrast (x0.75/0.4/0.2) are ours and harsher than
its levels (quality 80/58/40, an HSV value shift of 0.05/0.15/0.3, x0.75/0.4/0.15
for contrast's severity 3 being the one milder); rotation and crop (not in
CIFAR-10-C) stay small, as in a hand-held shot. Every corruption is seeded, so a
study's queries are the same in every run.

>>> import numpy as np
>>> images = np.zeros((2, 32, 32, 3), np.uint8)
>>> corrupt(images, "jpeg", 3, seed=0).shape
(2, 32, 32, 3)
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from hashsearch.errors import HashsearchError
from hashsearch.imageops import gaussian_blur as blur
from hashsearch.imageops import zoom_and_rotate
from hashsearch.registry import Registry

SEVERITIES = (1, 2, 3)
Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """(N, H, W, C) uint8 images under corruption `name` at `severity` (1-3), seeded."""
    if severity not in SEVERITIES:
        raise HashsearchError(f"severity must be one of {SEVERITIES}, got {severity}")
    apply = CORRUPTIONS.get(name)  # an unknown name fails here, listing the known ones
    rng = np.random.default_rng([seed, severity, sorted(CORRUPTIONS.names()).index(name)])
    return apply(images, severity, rng)


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return np.asarray(x).clip(0, 255).round().astype(np.uint8)


def as_batch(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float32, for batch-wise torch operations."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float()


def from_batch(x: torch.Tensor) -> np.ndarray:
    return to_uint8(x.permute(0, 2, 3, 1).numpy())


@CORRUPTIONS.register("gaussian_noise")
def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = 255 * (0.04, 0.08, 0.10)[severity - 1]
    return to_uint8(images + rng.normal(0, sigma, images.shape))


@CORRUPTIONS.register("gaussian_blur")
def gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return from_batch(blur(as_batch(images), (0.4, 0.7, 1.0)[severity - 1]))


@CORRUPTIONS.register("jpeg")
def jpeg(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    quality = (80, 50, 30)[severity - 1]
    out = np.empty_like(images)
    for i, image in enumerate(images):  # PIL's encoder works one image at a time
        buffer = io.BytesIO()
        Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
            buffer, "JPEG", quality=quality
        )
        out[i] = np.asarray(Image.open(buffer)).reshape(image.shape)
    return out


@CORRUPTIONS.register("brightness")
def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    shift = 255 * (0.1, 0.3, 0.5)[severity - 1]
    return to_uint8(images.astype(np.float32) + shift)


@CORRUPTIONS.register("contrast")
def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = (0.75, 0.4, 0.2)[severity - 1]
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return to_uint8((x - mean) * factor + mean)


@CORRUPTIONS.register("rotation")
def rotation(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    degrees = (5, 10, 15)[severity - 1]
    n = len(images)
    angle = torch.from_numpy(np.radians(degrees * rng.choice([-1, 1], n))).float()
    return from_batch(zoom_and_rotate(as_batch(images), torch.ones(n), angle, torch.zeros(n, 2)))


@CORRUPTIONS.register("crop")
def crop(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random window keeping this fraction of each side, scaled back to full size."""
    keep = (0.9, 0.8, 0.7)[severity - 1]
    n = len(images)
    shift = torch.from_numpy(rng.uniform(-(1 - keep), 1 - keep, (n, 2))).float()
    view = zoom_and_rotate(as_batch(images), torch.full((n,), keep), torch.zeros(n), shift)
    return from_batch(view)
