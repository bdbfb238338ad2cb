"""SAEH loss pieces against hand-computed values on tiny inputs."""

import math

import pytest
import torch

from hashsearch.methods.losses import (
    pairwise_similar_distance,
    quantization_error,
    relax,
    same_label,
    soft_cross_entropy,
)


def test_soft_cross_entropy_matches_hand_computed_value():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    targets = torch.tensor([[0.0, 1.0]])
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(-math.log(0.75))


def test_soft_cross_entropy_label_smoothing_and_multi_hot():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    smoothed = soft_cross_entropy(logits, torch.tensor([[0.0, 1.0]]), label_smoothing=0.2)
    # y = 0.8 * [0, 1] + 0.1 = [0.1, 0.9]
    assert smoothed.item() == pytest.approx(-(0.1 * math.log(0.25) + 0.9 * math.log(0.75)))
    both = soft_cross_entropy(logits, torch.tensor([[1.0, 1.0]]))
    assert both.item() == pytest.approx(-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)))


def test_same_label_shares_at_least_one_label():
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert torch.equal(same_label(targets), expected)


def test_pairwise_similar_distance_hand_computed():
    u = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    similar = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # similar pairs: (0,1) and (1,0), each ||u0 - u1||^2 = 4; diagonal 0.
    # sum = 8; normalised by B^2 * bits = 9 * 2.
    assert pairwise_similar_distance(u, similar).item() == pytest.approx(8 / 18)


def test_pairwise_similar_distance_matches_naive_sum():
    g = torch.Generator().manual_seed(0)
    u = torch.tanh(torch.randn(6, 8, generator=g))
    similar = same_label(torch.eye(3)[torch.tensor([0, 1, 0, 2, 1, 0])])
    naive = sum(similar[i, j] * (u[i] - u[j]).pow(2).sum() for i in range(6) for j in range(6))
    assert pairwise_similar_distance(u, similar).item() == pytest.approx(
        naive.item() / (36 * 8), rel=1e-5
    )


def test_relaxations_forward_and_gradient():
    h = torch.tensor([-2.0, -0.1, 0.0, 0.5], requires_grad=True)
    assert torch.allclose(relax(h, "tanh"), torch.tanh(h))
    ste = relax(h, "sign_ste")
    assert ste.tolist() == [-1.0, -1.0, 1.0, 1.0]
    ste.sum().backward()
    assert torch.allclose(h.grad, 1 - torch.tanh(h.detach()) ** 2)


def test_quantization_error_hand_computed():
    h = torch.tensor([[math.atanh(0.5), -math.atanh(0.5)], [30.0, -30.0]])
    # (0.5 - 1)^2 twice and 0 twice, averaged over the four entries.
    assert quantization_error(h).item() == pytest.approx(0.125, abs=1e-6)
