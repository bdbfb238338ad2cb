"""Which torch device to run on: the CPU by default, a GPU only when asked for and present."""

from __future__ import annotations

import torch

from hashsearch.errors import HashsearchError

# What hashsearch runs on; torch parses more names (meta, xpu, hpu, ...) that it cannot
# train on here, and those fail deep inside torch instead of with a message.
DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(name: str) -> torch.device:
    """`name` as a torch device, or a one-line error if it is malformed or not present."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise HashsearchError(f"unknown device {name!r}; use cpu, cuda or cuda:N")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise HashsearchError(
            f"device {name!r} asked for, but {torch.cuda.device_count()} CUDA GPU(s) are "
            "available; use --device cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise HashsearchError(f"device {name!r} asked for, but MPS is not available")
    return device
