"""Nesterov SGD, with Muon's update for the convolution filters on request.

Muon (Jordan et al., 2024; airbench94_muon trains this backbone shape with it)
replaces a weight matrix's momentum step by its nearest semi-orthogonal matrix,
so every direction of the update moves at the same rate instead of the few
that dominate the gradient. PyTorch's `torch.optim.Muon` takes 2-D parameters
only; a convolution's (out, in, k, k) filters are its (out, in*k*k) matrix, and
the trainer's one-cycle schedule needs a single optimiser over every group.
Hence this small subclass: groups marked `muon_momentum` take Muon's step, the
others SGD's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

# Muon's quintic Newton-Schulz coefficients: five iterations push every singular value
# of a matrix scaled to norm 1 that is above about 1/500 into about [0.7, 1.2]; exactly
# 1 is not needed for training (Jordan et al.), and the few smaller ones of a gradient
# are noise.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalised(
    matrix: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """About U V^T for `matrix` = U S V^T (2-D): its singular values moved to ~1.

    The iterations run in `dtype`; bfloat16 is what Muon's authors use (the values
    land in the same band), and on a CPU with AMX it takes half float32's time
    (docs/recipe.md, round 24).
    The result comes back in float32.
    """
    a, b, c = NEWTON_SCHULZ
    x = (matrix.float() / (matrix.norm() + 1e-7)).to(dtype)
    wide = x.size(0) <= x.size(1)  # iterate on the smaller Gram matrix
    if not wide:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.T).float()


def scale_free_filters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable weights of `module`'s bias-free convolutions.

    In this project's backbones a convolution without a bias feeds BatchNorm
    (possibly through a max-pool), so its output's scale does not matter; Muon
    holds these filters at a fixed norm, which only such weights tolerate.
    """
    return [
        m.weight
        for m in module.modules()
        if isinstance(m, torch.nn.Conv2d) and m.bias is None and m.weight.requires_grad
    ]


class SGDWithMuon(torch.optim.SGD):
    """`torch.optim.SGD`, except that param groups holding a `muon_momentum` take
    Muon's step: Nesterov momentum at that (fixed) rate, orthogonalised as an
    (out, in*k*k) matrix, after the filters are rescaled to norm sqrt(out channels),
    as airbench94_muon does. Such a group's `lr` follows the schedule like any other;
    its `momentum` (cycled by a one-cycle schedule) and `weight_decay` are unused; its
    optional `muon_dtype` is the precision of the orthogonalisation (float32 if absent).
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:  # gradients first, as SGD's own step does
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if "muon_momentum" not in group:
                continue
            beta, dtype = group["muon_momentum"], group.get("muon_dtype", torch.float32)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "muon_buffer" in state:  # no zeros allocated per step to be discarded
                    buffer = state["muon_buffer"].mul_(beta).add_(p.grad)
                else:
                    buffer = state["muon_buffer"] = p.grad.clone()
                direction = p.grad.add(buffer, alpha=beta)  # Nesterov
                update = orthogonalised(direction.reshape(len(p), -1), dtype=dtype).view(p.shape)
                p.mul_(math.sqrt(len(p)) / p.norm())
                p.add_(update.to(p.dtype), alpha=-group["lr"])
                p.grad = None  # stepped: SGD's step below passes over it
        super().step()
        return loss
