"""Several processes, one job: `torchrun` process groups for sharded encoding.

`hashsearch encode` and `hashsearch index` launched by `torchrun --nproc-per-node N`
join one process group (gloo: what travels is encoded batches on the CPU). Each
process encodes every N-th batch of the collection; the batches are gathered,
in their order, by every process, so the result equals a single process's batch
for batch, and only the first process (rank 0) writes files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ


def init_from_environment() -> None:
    """Join the process group torchrun describes in the environment (once).

    gloo whatever the device: what travels is encoded batches, NumPy arrays on the CPU.
    """
    if launched_by_torchrun() and not dist.is_initialized():
        dist.init_process_group("gloo")


def process_device(device: str) -> str:
    """This process's device: under torchrun, plain ``cuda`` means the GPU of its local rank."""
    if device == "cuda" and launched_by_torchrun():
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return world()[0] == 0


def sharded(starts: list[int], work: Callable[[int], T]) -> list[T]:
    """`work(start)` for every start, split over the group's processes; results in order.

    Process r runs the starts at positions r, r + N, r + 2N, ...; every process gets
    the whole list back.
    """
    rank, size = world()
    if size == 1:
        return [work(start) for start in starts]
    mine = {i: work(start) for i, start in enumerate(starts) if i % size == rank}
    gathered: list[dict[int, T]] = [{} for _ in range(size)]
    dist.all_gather_object(gathered, mine)
    merged = {i: result for part in gathered for i, result in part.items()}
    return [merged[i] for i in range(len(starts))]
