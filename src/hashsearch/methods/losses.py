"""Loss pieces several hashing methods share (so no method copies another)."""

from __future__ import annotations

from typing import Literal

import torch

Relaxation = Literal["tanh", "sign_ste"]


def relax(h: torch.Tensor, mode: Relaxation, scale: float = 1.0) -> torch.Tensor:
    """A differentiable stand-in for b = sign(h) during training.

    ``"tanh"``: u = tanh(scale h), the classic continuous relaxation (DPSH,
    HashNet); a growing `scale` hardens it into sign(h) (HashNet's continuation).
    ``"sign_ste"``: the forward pass uses the exact codes sign(h), the backward
    pass the gradient of tanh(scale h) (a straight-through estimator, as in
    GreedyHash): the losses then see the binary codes that will be indexed, so
    no quantisation gap opens between training and search.
    """
    u = torch.tanh(scale * h)
    if mode == "tanh":
        return u
    return u + (torch.where(h >= 0, 1.0, -1.0) - u).detach()


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean over the batch of -sum_k y_k log softmax(logits)_k (SAEH, eq. 1).

    Multi-hot targets are normalised to sum to one, so multi-label data works
    unchanged; label smoothing mixes in the uniform distribution.

    Args:
        logits: (B, K). targets: (B, K) multi-hot floats.
    """
    y = targets / targets.sum(dim=1, keepdim=True).clamp_min(1.0)
    y = (1.0 - label_smoothing) * y + label_smoothing / y.shape[1]
    return -(y * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def same_label(targets: torch.Tensor) -> torch.Tensor:
    """S_ij = 1 where items i and j share at least one label. (B, K) -> (B, B)."""
    return (targets @ targets.T > 0).to(targets.dtype)


def pairwise_similar_distance(u: torch.Tensor, similar: torch.Tensor) -> torch.Tensor:
    """(1 / (B^2 bits)) sum_ij S_ij ||u_i - u_j||^2 (SAEH, eq. 2, normalised).

    Dividing by the number of pairs and bits keeps lambda1 meaningful across
    batch sizes and code lengths; with u in [-1, 1] the value lies in [0, 4].

    Args:
        u: (B, bits) relaxed codes. similar: (B, B) 0/1.
    """
    sq = (u * u).sum(dim=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * (u @ u.T)
    return (similar * dist.clamp_min(0.0)).sum() / (u.shape[0] ** 2 * u.shape[1])


def quantization_error(h: torch.Tensor) -> torch.Tensor:
    """Mean over codes and bits of (|tanh h| - 1)^2: 0 when every relaxed bit is +-1."""
    return (torch.tanh(h).abs() - 1.0).pow(2).mean()
