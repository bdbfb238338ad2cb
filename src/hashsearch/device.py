"""Which torch device to run on: the CPU by default, a GPU only when asked for and present."""

from __future__ import annotations

import torch

from hashsearch.errors import HashsearchError


def check_device(name: str) -> torch.device:
    """`name` as a torch device, or a one-line error if it is malformed or not present."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise HashsearchError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HashsearchError(
            f"device {name!r} asked for, but no CUDA GPU is available; use --device cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise HashsearchError(f"device {name!r} asked for, but MPS is not available")
    return device
