"""Fitting a run to a wall-clock budget: how many epochs `train.budget_seconds` allows.

The one-cycle schedule needs its length before the first step, so the budget
becomes an epoch count once, up front, from a short timed probe on a copy of the
model; the run then trains exactly as `train.epochs` set to that count would (the
same seed gives the same weights), and metrics.json records the plan, so a
budgeted run can be repeated on any machine without the budget. A plan is an
estimate: a machine that slows down during the run overruns it.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hashsearch.distributed import average_values, world
from hashsearch.encoding import encode_images

if TYPE_CHECKING:
    from hashsearch.methods.base import HashingMethod
    from hashsearch.training.trainer import Trainer, TrainingData

TIMED_STEPS = 3  # per input size, after one untimed step (oneDNN picks kernels on first use)
VALIDATION_SAMPLE = 512  # images per split whose encoding time is scaled to the whole split


@dataclass(frozen=True)
class RunCosts:
    """Measured seconds of the parts a run is made of, on this machine.

    Attributes:
        step: one training step on full-size images.
        low_res_step: one step on `augment.low_res` images (`step` without them).
        validation: one validation (encoding the validation queries and the
            training sample they search; the search itself is not counted).
        probe: the probe that measured these.
    """

    step: float
    low_res_step: float
    validation: float
    probe: float


def run_seconds(
    epochs: int, costs: RunCosts, steps_per_epoch: int, low_res_share: float, eval_every: int
) -> float:
    """The estimated time of a run of `epochs`: the probe, every step (the first
    `low_res_share` of them at the low-resolution cost) and every validation (one each
    `eval_every` epochs and one after the last)."""
    step = low_res_share * costs.low_res_step + (1 - low_res_share) * costs.step
    validations = -(-epochs // eval_every)
    return costs.probe + epochs * steps_per_epoch * step + validations * costs.validation


def epochs_within(
    budget: float,
    costs: RunCosts,
    steps_per_epoch: int,
    low_res_share: float,
    eval_every: int,
    max_epochs: int,
) -> int:
    """The most epochs, up to `max_epochs`, whose `run_seconds` fit `budget`; 0 if none."""
    for epochs in range(max_epochs, 0, -1):
        if run_seconds(epochs, costs, steps_per_epoch, low_res_share, eval_every) <= budget:
            return epochs
    return 0


def probe_costs(
    trainer: Trainer,
    method: HashingMethod,
    images: torch.Tensor,
    targets: torch.Tensor,
    data: TrainingData,
) -> RunCosts:
    """Time training steps and validation encoding on a copy of `method`.

    The copy trains with its own optimiser and generator under a forked global
    random state, so `method` and every random draw of the real run stay as they
    were. Under torchrun the processes average their figures, so all plan alike.
    """
    started = time.perf_counter()
    cfg = trainer.config
    with torch.random.fork_rng(devices=[]):
        model = copy.deepcopy(method)
        optimizer, _ = trainer.build_optimizer(model, total_steps=2 * (TIMED_STEPS + 1))
        generator = torch.Generator().manual_seed(0)
        rank, size = world()
        rows = torch.arange(min(cfg.batch_size, len(images)))[rank::size]

        step_inputs = (model, images[rows], targets[rows], generator, optimizer)

        def step_seconds(progress: float) -> float:
            model.train()
            model.progress = progress
            return _timed(functools.partial(trainer.train_step, *step_inputs), TIMED_STEPS)

        step = step_seconds(cfg.augment.low_res_until if cfg.augment.low_res else 0.0)
        low_res_step = step_seconds(0.0) if cfg.augment.low_res else step
        validation = _validation_seconds(model, data, trainer.device)
    measured = {"step": step, "low_res_step": low_res_step, "validation": validation}
    return RunCosts(**average_values(measured), probe=time.perf_counter() - started)


def _timed(run: Callable[[], Any], repeats: int) -> float:
    """Mean seconds of `run` over `repeats` calls after an untimed one."""
    run()
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - started) / repeats


def _validation_seconds(model: HashingMethod, data: TrainingData, device: str) -> float:
    """One validation's encoding time, scaled from a sample of each split: every
    validation query is encoded as a query and once more for accuracy, every training
    item of the sample once."""

    def per_image(images: np.ndarray, as_queries: bool) -> float:
        sample = images[:VALIDATION_SAMPLE]
        labels = np.zeros(len(sample), np.int64)
        started = time.perf_counter()
        encode_images(model, sample, labels, device=device, as_queries=as_queries)
        return (time.perf_counter() - started) / max(1, len(sample))

    item = per_image(data.retrieval_images, as_queries=False)
    query = per_image(data.val_images, as_queries=True)
    return len(data.val_images) * (query + item) + len(data.retrieval_images) * item


def plan_record(epochs: int, budget: float, estimate: float, costs: RunCosts) -> dict[str, Any]:
    """What metrics.json keeps of a budget's plan: the epochs, the estimated seconds of
    the run they make (to set against the measured `train_seconds`) and the costs."""
    return {
        "budget_seconds": budget,
        "epochs": epochs,
        "estimated_seconds": estimate,
        **asdict(costs),
    }
