"""Fitting a run to a wall-clock budget: how many epochs `train.budget_seconds` allows.

The one-cycle schedule needs its length before the first step, so the budget
becomes an epoch count once, up front, from a short timed probe on a copy of the
model; the run then trains exactly as `train.epochs` set to that count would (on
the same machine, the same seed gives the same weights), and metrics.json records
the plan, so a budgeted run can be repeated without the budget (`config.yaml` keeps
the budget and re-plans). A plan is an estimate: a machine that slows down during
the run overruns it. Steps after `train.stem_epochs` are cheaper than the probed
ones, so a preset that freezes its stem plans on the safe side.
"""

from __future__ import annotations

import copy
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hashsearch.distributed import average_values, main_process_value, world
from hashsearch.encoding import Encoded, encode_images
from hashsearch.errors import HashsearchError
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.training.averaging import weight_average

if TYPE_CHECKING:
    from hashsearch.methods.base import HashingMethod
    from hashsearch.training.trainer import Trainer, TrainingData

# Untimed steps first: oneDNN picks its kernels and the allocator grows over the first
# steps (on a 2-core VM the first took about twice as long as later ones, the second up
# to 1.3x). Then the median of the timed ones, as single steps there vary by +-20%.
WARM_UP_STEPS = 2
TIMED_STEPS = 5  # per input size
VALIDATION_SAMPLE = 512  # images of each split per process: one encoding batch


@dataclass(frozen=True)
class RunCosts:
    """Measured seconds of the parts a run is made of, on this machine.

    Attributes:
        full_step: a training step on full-size images, the median of a few (with the
            weight average's update, under `train.ema`).
        low_res_step: one such step on `augment.low_res` images (`full_step` without them).
        validation: one validation (encoding the validation queries and the training
            sample they search, and the search).
        probe: the probe that measured these.
    """

    full_step: float
    low_res_step: float
    validation: float
    probe: float


def run_seconds(
    epochs: int, costs: RunCosts, steps_per_epoch: int, low_res_share: float, eval_every: int
) -> float:
    """The estimated time of a run of `epochs`: the probe, every step (the first
    `low_res_share` of them at the low-resolution cost) and every validation (one each
    `eval_every` epochs and one after the last)."""
    step = low_res_share * costs.low_res_step + (1 - low_res_share) * costs.full_step
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


def plan_epochs(
    trainer: Trainer,
    method: HashingMethod,
    images: torch.Tensor,
    targets: torch.Tensor,
    data: TrainingData,
    steps_per_epoch: int,
) -> tuple[int, dict[str, Any]]:
    """The epochs `train.budget_seconds` allows (at most `train.epochs`), and the plan
    metrics.json keeps: those epochs, the run's estimated seconds (to set against the
    measured `train_seconds`) and the measured costs. Under torchrun every process
    takes the first process's plan, so all train the same schedule."""
    cfg = trainer.config
    budget = cfg.budget_seconds
    assert budget is not None
    costs = probe_costs(trainer, method, images, targets, data)
    share, every = cfg.augment.low_res_share, cfg.eval_every
    epochs = epochs_within(budget, costs, steps_per_epoch, share, every, cfg.epochs)
    plan = {
        "budget_seconds": budget,
        "epochs": epochs,
        "estimated_seconds": run_seconds(max(1, epochs), costs, steps_per_epoch, share, every),
        **asdict(costs),
    }
    plan = main_process_value(plan)
    if plan["epochs"] == 0:
        raise HashsearchError(
            f"train.budget_seconds {budget:g} fits no epoch here (a one-epoch run takes "
            f"about {plan['estimated_seconds']:.0f} s on this machine); raise the budget "
            "or train a smaller preset"
        )
    return plan["epochs"], plan


def probe_costs(
    trainer: Trainer,
    method: HashingMethod,
    images: torch.Tensor,
    targets: torch.Tensor,
    data: TrainingData,
) -> RunCosts:
    """Time training steps and a validation sample on a copy of `method`.

    The copy trains with its own optimiser, weight average and generator, under a
    forked random state, so `method` and the real run's random draws stay as they
    were (nothing in training draws from the global generators; the fork guards the
    CPU one should anything start to). Under torchrun the processes average their
    figures.
    """
    started = time.perf_counter()
    cfg = trainer.config
    with torch.random.fork_rng(devices=[]):
        model = copy.deepcopy(method)
        # the probe never steps its schedule; any valid length will do
        optimizer, _ = trainer.build_optimizer(model, total_steps=2)
        averaged = weight_average(model, cfg.ema)
        generator = torch.Generator().manual_seed(0)
        rank, size = world()
        rows = torch.arange(min(cfg.batch_size, len(images)))[rank::size]
        batch = (images[rows], targets[rows], generator, optimizer)

        def step() -> None:
            trainer.train_step(model, *batch)
            if averaged is not None:
                averaged.update_parameters(model)

        def step_seconds(progress: float) -> float:
            model.train()
            model.progress = progress
            return _median_seconds(step, WARM_UP_STEPS, TIMED_STEPS)

        # full size from the progress where the low-resolution share ends (0 without one)
        full_step = step_seconds(cfg.augment.low_res_share)
        low_res_step = step_seconds(0.0) if cfg.augment.low_res is not None else full_step
        validation = _validation_seconds(model, data, trainer.device, size)
    measured = {"full_step": full_step, "low_res_step": low_res_step, "validation": validation}
    return RunCosts(**average_values(measured), probe=time.perf_counter() - started)


def _median_seconds(run: Callable[[], Any], warm_ups: int, repeats: int) -> float:
    """The median seconds of `repeats` calls of `run` after `warm_ups` untimed ones."""
    for _ in range(warm_ups):
        run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _validation_seconds(
    model: HashingMethod, data: TrainingData, device: str, processes: int
) -> float:
    """One validation's time, scaled from a sample of each split (one encoding batch per
    process): every validation query is encoded as a query and once more for accuracy,
    every training item of the sample once, and the search grows with their product."""
    count = VALIDATION_SAMPLE * processes

    def encoded(images: np.ndarray, as_queries: bool) -> tuple[Encoded, float]:
        """The sample's codes and seconds per image, timed after an untimed warm-up."""
        sample = images[:count]
        encode = functools.partial(
            encode_images, model, sample, np.zeros(len(sample), np.int64), device=device
        )
        encode(as_queries=as_queries)
        started = time.perf_counter()
        codes = encode(as_queries=as_queries)
        return codes, (time.perf_counter() - started) / max(1, len(sample))

    base, item = encoded(data.retrieval_images, as_queries=False)
    queries, query = encoded(data.val_images, as_queries=True)
    started = time.perf_counter()
    evaluate_retrieval(queries, base, model.bits, rerank="none")
    pairs = len(queries.codes) * len(base.codes)
    search = (time.perf_counter() - started) / max(1, pairs)
    n_val, n_items = len(data.val_images), len(data.retrieval_images)
    return n_val * (query + item) + n_items * item + n_val * n_items * search
