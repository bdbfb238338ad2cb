"""Images -> (packed binary codes, float re-rank features): the only way codes are made.

Training-time validation, `encode`, `index`, `evaluate` and `search` all call
`encode_images`, so a code in the index is bit-for-bit the code a query gets, unless
the run's `encode.query_shifts` averages queries over shifted views (`as_queries`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from hashsearch.distributed import sharded
from hashsearch.methods.base import HashingMethod
from hashsearch.models.encoder import EncoderOutput


@dataclass(frozen=True)
class Encoded:
    """Codes and features of N items.

    Attributes:
        codes: (N, ceil(bits / 8)) uint8, bits packed most-significant first
            (np.packbits); bit j is 1 where h_j >= 0, i.e. b_j = sign(h_j) = +1; the
            padding bits of a length that is not a multiple of 8 are 0 in every code.
        features: (N, D) float32, the encoder's intermediate feature (not normalised).
        labels: (N,) int64 or (N, K) multi-hot, copied from the data set.
    """

    codes: np.ndarray
    features: np.ndarray
    labels: np.ndarray


def pack_codes(h: np.ndarray) -> np.ndarray:
    """(N, bits) real -> (N, ceil(bits / 8)) uint8, zero-padded; sign(0) counts as +1."""
    assert h.ndim == 2, h.shape
    return np.packbits(h >= 0, axis=1)


def unpack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """(N, ceil(bits / 8)) uint8 -> (N, bits) float32 in {-1, +1}; padding dropped."""
    return np.unpackbits(codes, axis=1, count=bits).astype(np.float32) * 2.0 - 1.0


def forward_batch(
    model: HashingMethod, images: np.ndarray, device: str = "cpu", as_queries: bool = False
) -> EncoderOutput:
    """One eval-mode forward pass over (B, H, W, C) uint8 images (a copy, so a memmap works);
    `as_queries`: they are queries (`HashEncoder.forward`).

    Runs in inference mode (less bookkeeping per op than no_grad: ~10% of a batch of
    16 in a served query's forward pass), so its outputs take no part in autograd.
    Switching to eval mode walks every module, so a model already there is left be.
    """
    if model.training:
        model.eval()
    with torch.inference_mode():
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        x = model.normalize(batch.permute(0, 3, 1, 2))
        return model(x.contiguous(memory_format=torch.channels_last), as_queries)


def forward_batches(
    model: HashingMethod, images: np.ndarray, batch_size: int = 512, device: str = "cpu"
) -> Iterator[tuple[EncoderOutput, slice]]:
    """Eval-mode forward passes over (N, H, W, C) uint8 images, one batch at a time.

    Images may be a memmap: each batch is copied in turn, so memory stays at one
    batch of floats whatever N is. Yields each batch's output and its rows.
    """
    for start in range(0, len(images), batch_size):
        rows = slice(start, start + batch_size)
        yield forward_batch(model, images[rows], device), rows


def encode_images(
    model: HashingMethod,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 512,
    device: str = "cpu",
    as_queries: bool = False,
) -> Encoded:
    """Codes and features of (N, H, W, C) uint8 images, with their labels; `as_queries`:
    they are queries, not items to store (`HashEncoder.forward`).

    Under `torchrun` the batches are shared out over the processes and every
    process gets them all back in order (`hashsearch.distributed.sharded`): the
    same batches as one process encodes, so the same codes.
    """

    def encode_batch(start: int) -> tuple[np.ndarray, np.ndarray]:
        out = forward_batch(model, images[start : start + batch_size], device, as_queries)
        return pack_codes(out.h.float().cpu().numpy()), out.feature.float().cpu().numpy()

    parts = sharded(list(range(0, len(images), batch_size)), encode_batch)
    codes = [np.zeros((0, (model.bits + 7) // 8), np.uint8), *(c for c, _ in parts)]
    features = [np.zeros((0, model.encoder.feature_dim), np.float32), *(f for _, f in parts)]
    return Encoded(np.concatenate(codes), np.concatenate(features), np.asarray(labels))
