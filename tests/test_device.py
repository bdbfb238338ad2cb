"""The CPU allocator setting the trainer applies (`retain_freed_memory`), and which
precision "auto" means on a device (`autocast_precision`)."""

import json
import platform
import subprocess
import sys

import pytest
import torch

from hashsearch import device
from hashsearch.device import autocast_precision, native_bf16, retain_freed_memory

# Run in a fresh process: in this one, earlier tests' trainers have already retained
# freed memory, which would serve the tensor from the heap whatever the setting.
PROBE = """
import ctypes, json, torch
from hashsearch.device import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

def mmap_growth_of_a_40mb_tensor():
    before = libc.mallinfo2().hblkhd
    block = torch.empty(10 << 20, dtype=torch.float32)
    return libc.mallinfo2().hblkhd - before

# twice: glibc raises its threshold after a free, but never above 32 MiB by itself
default = [mmap_growth_of_a_40mb_tensor(), mmap_growth_of_a_40mb_tensor()]
applied = retain_freed_memory()
print(json.dumps({"default": default, "applied": applied,
                  "retained": mmap_growth_of_a_40mb_tensor()}))
"""


def test_retained_memory_serves_large_tensors_from_the_heap_not_fresh_mmap_pages():
    """With glibc's defaults a 40 MB tensor (a training activation's size) gets its own
    mmap region every time, which the kernel faults in and zeroes; after
    `retain_freed_memory` it comes from the heap. Elsewhere than glibc the function
    says that it could not apply."""
    if platform.libc_ver()[0] != "glibc":
        assert not retain_freed_memory()
        return
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    sizes = json.loads(probe.stdout)
    assert min(sizes["default"]) >= 40 << 20
    assert sizes["applied"] is True
    assert sizes["retained"] == 0


@pytest.mark.parametrize(
    ("capabilities", "native"),
    [
        ({"amx_bf16": True, "avx512_bf16": False}, True),
        ({"amx_bf16": False, "avx512_bf16": True}, True),
        ({"amx_bf16": False, "avx512_bf16": False, "avx512_f": True}, False),
        ({}, False),
    ],
)
def test_a_cpu_computes_bf16_natively_only_with_amx_or_avx512_bf16(
    monkeypatch, capabilities, native
):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    native_bf16.cache_clear()
    try:
        assert native_bf16("cpu") is native
        assert autocast_precision("auto", "cpu") == ("bf16" if native else "fp32")
        assert autocast_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    finally:
        native_bf16.cache_clear()


@pytest.mark.parametrize("native", [True, False])
def test_an_explicit_precision_is_kept_whatever_the_device_computes(monkeypatch, native):
    monkeypatch.setattr(device, "native_bf16", lambda device_type: native)
    assert autocast_precision("bf16", "cpu") == "bf16"
    assert autocast_precision("fp32", "cpu") == "fp32"
    assert autocast_precision("auto", "cpu") == ("bf16" if native else "fp32")
