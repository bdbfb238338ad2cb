"""Loss pieces several hashing methods share (so no method copies another)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import hadamard

CENTRE_SEED = 0  # hash centres are part of a method, not of the run's seed

Relaxation = Literal["tanh", "sign_ste", "sign_identity"]
CentreLayout = Literal["csq", "blocks"]


def binary(h: torch.Tensor) -> torch.Tensor:
    """b = sign(h) with sign(0) = +1, as the index packs codes (torch.sign(0) is 0)."""
    return torch.where(h >= 0, 1.0, -1.0).to(h.dtype)


def relax(h: torch.Tensor, mode: Relaxation, scale: float = 1.0) -> torch.Tensor:
    """A differentiable stand-in for b = sign(h) during training.

    ``"tanh"``: u = tanh(scale h), the classic continuous relaxation (DPSH,
    HashNet); a growing `scale` hardens it into sign(h) (HashNet's continuation).
    ``"sign_ste"``: the forward pass uses the exact codes sign(h), the backward
    pass the gradient of tanh(scale h) (a straight-through estimator, as in
    GreedyHash): the losses then see the binary codes that will be indexed, so
    no quantisation gap opens between training and search.
    ``"sign_identity"``: forward sign(h), backward the identity (GreedyHash's
    greedy principle: the gradient of b is handed to h unchanged).
    """
    sign = binary(h)
    if mode == "sign_identity":
        return h + (sign - h).detach()
    u = torch.tanh(scale * h)
    if mode == "tanh":
        return u
    return u + (sign - u).detach()


def continuation_scale(final_scale: float, progress: float) -> float:
    """beta of tanh(beta h), growing geometrically from 1 to `final_scale` as training
    progresses from 0 to 1 (HashNet's continuation, on the trainer's clock)."""
    return final_scale**progress


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
    return (similar * squared_distances(u)).sum() / (u.shape[0] ** 2 * u.shape[1])


def quantization_error(h: torch.Tensor) -> torch.Tensor:
    """Mean over codes and bits of (|tanh h| - 1)^2: 0 when every relaxed bit is +-1."""
    return (torch.tanh(h).abs() - 1.0).pow(2).mean()


def off_diagonal_mean(pairs: torch.Tensor) -> torch.Tensor:
    """Mean of a (B, B) pair matrix over i != j (a pair of an item with itself says nothing)."""
    n = pairs.shape[0]
    return (pairs.sum() - pairs.diagonal().sum()) / max(1, n * (n - 1))


def squared_distances(u: torch.Tensor) -> torch.Tensor:
    """(B, B) ||u_i - u_j||^2 from one matrix product."""
    sq = (u * u).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * (u @ u.T)).clamp_min(0.0)


def pairwise_likelihood(inner: torch.Tensor, similar: torch.Tensor) -> torch.Tensor:
    """(B, B) -log p(s_ij | theta_ij) = log(1 + e^theta) - s_ij theta, with p = sigmoid(theta).

    The negative log-likelihood of DPSH (eq. 2) and HashNet (eq. 4), in softplus form so
    that a large |theta| neither overflows nor loses its gradient.
    """
    return F.softplus(inner) - similar * inner


def hash_centres(
    num_classes: int, bits: int, layout: CentreLayout = "csq", seed: int = CENTRE_SEED
) -> torch.Tensor:
    """(K, k) class centres in {-1, 1}, far apart so that classes keep apart in Hamming space.

    `layout` "csq" is CSQ's rule (section 3.2): Hadamard rows and their negations where
    they suffice (k a power of two, 2k >= K), else random bits; at k = 48 and K = 10
    random bits leave two centres only 17 bits apart. "blocks" splits k into its powers
    of two (48 = 32 + 16) and gives each part its own Hadamard rows, so every pair of
    centres differs in at least k/2 bits (exactly 24 at 48 bits); a part too short for
    K centres (2p < K) gets random bits. At a power of two the two layouts agree.
    """
    rng = np.random.default_rng(seed)
    powers = [1 << i for i in reversed(range(bits.bit_length())) if bits >> i & 1]
    parts = powers if layout == "blocks" else [bits]
    blocks = []
    for part in parts:
        if part & (part - 1) == 0 and num_classes <= 2 * part:
            rows = hadamard(part)
            blocks.append(np.concatenate([rows, -rows])[:num_classes])
        else:
            blocks.append(rng.integers(0, 2, (num_classes, part)) * 2 - 1)
    return torch.from_numpy(np.concatenate(blocks, axis=1)).float()


def item_centres(centres: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, k) targets in {0, 1}: sign of the sum of each item's class centres (+1 at 0),
    so a multi-label item aims between its labels' centres."""
    return ((targets.float() @ centres) >= 0).float()


def central_similarity(
    h: torch.Tensor, centres: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean BCE((tanh(h) + 1) / 2, (c + 1) / 2) towards each item's centre (CSQ, eq. 6).

    Computed from the logits 2h, since sigmoid(2h) = (tanh(h) + 1) / 2: the same
    loss, but its gradient 2 (sigmoid(2h) - c) never vanishes, where through tanh
    it does once tanh rounds to exactly +-1 in float32 (|h| > 9).

    Args:
        h: (B, k) real-valued codes. centres: (K, k) in {-1, 1}. targets: (B, K) multi-hot.
    """
    return F.binary_cross_entropy_with_logits(2 * h.float(), item_centres(centres, targets))
