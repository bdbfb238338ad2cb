"""Several processes, one job: `torchrun` process groups for training and encoding.

`hashsearch train`, `encode` and `index` launched by `torchrun --nproc-per-node N`
(or across machines with `--nnodes`) join one process group (gloo: it runs on
any machine, with or without GPUs). Only the first process (rank 0) writes files.

- Encoding: each process encodes every N-th batch of the collection; the batches
  are gathered, in their order, by every process, so the result equals a single
  process's batch for batch.
- Training (data parallel): every process draws the same shuffled global batch
  and takes every N-th item of it; gradients are averaged over the processes
  after each backward pass, so all hold the same weights after every step.
  BatchNorm statistics and pairwise losses see each process's share of the
  batch (as in PyTorch DDP without SyncBatchNorm); running statistics are
  averaged before each validation, so every process selects the same epoch. A
  training budget's plan (`train.budget_seconds`) is the first process's.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
import torch.distributed as dist

from hashsearch.errors import HashsearchError

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ


def init_from_environment() -> None:
    """Join the process group torchrun describes in the environment (once).

    gloo whatever the device: what travels is encoded batches, NumPy arrays on the CPU.
    The group is left at exit: a process that ends with it still open can abort in
    gloo's threads ("terminate called without an active exception"), seen on a busy
    machine.
    """
    if launched_by_torchrun() and not dist.is_initialized():
        dist.init_process_group("gloo")
        atexit.register(_leave_group)


def _leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over the processes (one all-reduce for all)."""
    size = world()[1]
    grads = [p.grad for p in parameters if p.grad is not None]
    if size == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= size
    for grad, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(part.view_as(grad))


def average_values(values: dict[str, float]) -> dict[str, float]:
    """The mean of each named float over the processes (e.g. loss terms to log)."""
    size = world()[1]
    if size == 1:
        return values
    flat = torch.tensor(list(values.values()), dtype=torch.float64)
    dist.all_reduce(flat)
    return dict(zip(values, (flat / size).tolist(), strict=True))


def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the processes."""
    size = world()[1]
    if size == 1:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer /= size


def check_in_step(module: torch.nn.Module) -> None:
    """Refuse to go on if the processes' weights drifted apart (they never should)."""
    size = world()[1]
    if size == 1:
        return
    checksum = float(sum(p.detach().double().sum() for p in module.parameters()))
    gathered: list[float] = [0.0] * size
    dist.all_gather_object(gathered, checksum)
    if len(set(gathered)) != 1:
        raise HashsearchError(f"data-parallel processes hold different weights: {gathered}")


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


def main_process_value(value: T) -> T:
    """The first process's `value` in every process: for decisions taken from timings,
    which differ between processes, and which all of them must take alike."""
    if world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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
