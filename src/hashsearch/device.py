"""Which torch device to run on: the CPU by default, a GPU only when asked for and present."""

from __future__ import annotations

import ctypes
import functools
from typing import Literal

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


def autocast_precision(precision: str, device: torch.device | str) -> Literal["fp32", "bf16"]:
    """The precision a forward pass on `device` runs in: `precision` itself, or for
    "auto" bf16 where the device computes bfloat16 natively and fp32 elsewhere."""
    if precision != "auto":
        return "bf16" if precision == "bf16" else "fp32"
    return "bf16" if native_bf16(torch.device(device).type) else "fp32"


def precision_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The torch dtype of `precision` on `device` ("auto" decided as `autocast_precision`)."""
    bf16 = autocast_precision(precision, torch.device(device).type) == "bf16"
    return torch.bfloat16 if bf16 else torch.float32


def autocast(precision: str, device: torch.device | str) -> torch.autocast:
    """The autocast context of a forward pass on `device` at `precision`."""
    device_type = torch.device(device).type
    bf16 = precision_dtype(precision, device_type) == torch.bfloat16
    return torch.autocast(device_type, torch.bfloat16, enabled=bf16)


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether `device_type` computes bfloat16 in hardware.

    Elsewhere autocast emulates it, and slowly: on a 2-core Intel Xeon virtual
    machine whose CPU flags offer AVX-512 but neither its BF16 extension nor AMX,
    a `fast` training step ran at 340 images/s in bf16 against 981 in fp32,
    `full` at 85 against 307 (docs/recipe.md, round 14).
    """
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        # torch.cpu.get_capabilities is missing from older torch; fp32 is the safe answer
        capabilities = getattr(torch.cpu, "get_capabilities", dict)()
        return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    return False


# glibc mallopt parameters (malloc.h), and the largest mmap threshold every glibc takes
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_MAX_MMAP_THRESHOLD = 32 << 20


def retain_freed_memory(limit: int = 1 << 30) -> bool:
    """Have glibc's malloc reuse freed blocks of up to `limit` bytes (< 2 GiB) instead
    of handing them back to the system; returns whether it could (glibc only).

    A CPU training step allocates and frees activations of tens of MB. glibc serves
    blocks over 128 KiB with fresh mmap pages, which the kernel must fault in and
    zero, and raises that threshold by itself only after freeing such a block, at a
    moment that varies from run to run: epochs 4-7 of two `fast` runs took 27 s
    in one and 31 s in the other (docs/recipe.md, round 5). The cost is that up to
    `limit` bytes of freed memory stay with the process until it exits. glibc
    releases that refuse a threshold over 32 MiB get 32 MiB.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap = libc.mallopt(_M_MMAP_THRESHOLD, limit) or libc.mallopt(
        _M_MMAP_THRESHOLD, min(limit, _GLIBC_MAX_MMAP_THRESHOLD)
    )
    trim = libc.mallopt(_M_TRIM_THRESHOLD, limit)
    return bool(mmap) and bool(trim)
