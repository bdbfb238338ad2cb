"""The one trainer every deep hashing method goes through.

It knows nothing about any method: it feeds normalised, augmented batches and
one-hot/multi-hot targets to `method.losses`, minimises the sum of the named
terms it gets back, and logs each of them. Model selection looks only at the
validation split (validation queries searching a sample of the training items),
never at the query set. Under `torchrun` it trains data-parallel
(`hashsearch.distributed`): each process takes its share of every batch and the
gradients are averaged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from hashsearch.config import TrainConfig
from hashsearch.device import autocast, check_device, precision_dtype, retain_freed_memory
from hashsearch.distributed import (
    average_buffers,
    average_gradients,
    average_values,
    check_in_step,
    process_device,
    world,
)
from hashsearch.encoding import encode_images, forward_batches
from hashsearch.errors import HashsearchError, TrainingDiverged
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.methods.base import HashingMethod
from hashsearch.metrics import to_multi_hot
from hashsearch.training.augment import (
    alternating_flip,
    augment,
    corrupted_copies,
    scaled_down,
)
from hashsearch.training.averaging import weight_average
from hashsearch.training.budget import plan_epochs
from hashsearch.training.optimizers import SGDWithMuon, scale_free_filters

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """The arrays training needs, cut from one data set by a protocol.

    Attributes:
        train_images, val_images, retrieval_images: (N, H, W, C) uint8.
        train_labels, val_labels, retrieval_labels: (N,) int or (N, K) multi-hot.
        num_classes: K.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    retrieval_images: np.ndarray
    retrieval_labels: np.ndarray
    num_classes: int


@dataclass
class TrainResult:
    """Per-epoch records and the weights of the epoch the validation split liked best."""

    best_state: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_map: float = -math.inf
    train_seconds: float = 0.0
    plan: dict[str, Any] | None = None  # `train.budget_seconds`' plan, if the run had one

    def consider(self, record: dict[str, Any], method: HashingMethod) -> None:
        """Keep `method`'s weights if this validated epoch beats the best so far."""
        if record["val_map_all"] > self.best_val_map:
            self.best_val_map, self.best_epoch = record["val_map_all"], record["epoch"]
            self.best_state = _state_copy(method)


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def data_parallel_generator(
    shuffling: torch.Generator, seed: int, batch_size: int
) -> torch.Generator:
    """The generator augmentation draws from: the shuffling one in a single process (so
    its runs stay as they were), a per-process one under torchrun.

    Under torchrun every process must draw the same shuffles, so the shuffling
    generator may see only the shuffles; each process augments its share with its own
    generator, or all shares would get the same augmentation draws.
    """
    rank, size = world()
    if size == 1:
        return shuffling
    if batch_size % size or batch_size // size < 2:
        raise HashsearchError(
            f"train.batch_size {batch_size} does not split into {size} equal shares of at "
            f"least 2 images (BatchNorm); use a multiple of {size}, at least {2 * size}"
        )
    return torch.Generator().manual_seed(seed * 1_000_003 + rank + 1)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches; a last partial batch is dropped (BatchNorm needs > 1 item)."""
    order = torch.randperm(n, generator=generator)
    size = min(batch_size, n)
    for start in range(0, n - size + 1, size):
        yield order[start : start + size]


class Trainer:
    """Trains a `HashingMethod` with SGD (Muon for the filters with `optimizer: muon`)
    and a one-cycle schedule on a CPU or `config.device`."""

    def __init__(self, config: TrainConfig, seed: int) -> None:
        check_device(config.device)
        self.config = config
        self.device = process_device(config.device)
        self.seed = seed
        if torch.device(self.device).type == "cpu":
            retain_freed_memory()
        if config.threads:
            torch.set_num_threads(config.threads)

    def fit(
        self,
        method: HashingMethod,
        data: TrainingData,
        progress: bool = True,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> TrainResult:
        """Train, validate every `eval_every` epochs, and leave the best weights loaded
        (the best weight average with `train.ema`). With `train.budget_seconds` the
        epochs are the most of `train.epochs` that a timed probe says fit the budget."""
        cfg, generator = self.config, seed_everything(self.seed)
        augmenting = data_parallel_generator(generator, self.seed, cfg.batch_size)
        images, targets = self._prepare(method, data)
        result, started = TrainResult(best_state=_state_copy(method)), time.perf_counter()
        steps_per_epoch = max(1, len(images) // min(cfg.batch_size, len(images)))
        epochs = cfg.epochs
        if cfg.budget_seconds is not None:
            epochs, result.plan = plan_epochs(self, method, images, targets, data, steps_per_epoch)
        total_steps = min(epochs * steps_per_epoch, cfg.max_steps or epochs * steps_per_epoch)
        optimizer, schedule = self.build_optimizer(method, total_steps)
        averaged = weight_average(method, cfg.ema)
        epochs = math.ceil(total_steps / steps_per_epoch)
        first_flips = (
            torch.rand(len(images), generator=augmenting) < 0.5
            if cfg.augment.flip == "alternating"
            else None
        )
        for epoch in range(1, epochs + 1):
            if cfg.stem_epochs is not None and epoch == cfg.stem_epochs + 1:
                method.encoder.backbone.train_stem(False)
            steps = min(steps_per_epoch, total_steps - (epoch - 1) * steps_per_epoch)
            bar = tqdm(
                islice(batches(len(images), cfg.batch_size, generator), steps),
                total=steps,
                desc=f"epoch {epoch}/{epochs}",
                leave=False,
                disable=None if progress else True,
                mininterval=0.5,
            )
            shown = images if first_flips is None else alternating_flip(images, first_flips, epoch)
            record = {
                "epoch": epoch,
                **self._epoch(
                    method, shown, targets, bar, augmenting, optimizer, schedule, averaged
                ),
            }
            if epoch % cfg.eval_every == 0 or epoch == epochs:
                scored = method if averaged is None else cast(HashingMethod, averaged.module)
                scored.progress = method.progress  # the copy's clock stopped when it was made
                average_buffers(scored)  # every process validates the same model
                record.update(self.validate(scored, data))
                result.consider(record, scored)
            result.history.append(record)
            log.info(
                "epoch %d/%d: %s",
                epoch,
                epochs,
                ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"),
            )
            if on_epoch is not None:
                on_epoch(record)
        result.train_seconds = time.perf_counter() - started
        if cfg.stem_epochs is not None:
            method.encoder.backbone.train_stem(True)  # the model leaves as it came
        check_in_step(method)
        method.load_state_dict(result.best_state)
        return result

    def _prepare(
        self, method: HashingMethod, data: TrainingData
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images as one uint8 (N, C, H, W) tensor, targets multi-hot; model on device."""
        images = torch.from_numpy(np.ascontiguousarray(data.train_images)).permute(0, 3, 1, 2)
        targets = torch.from_numpy(to_multi_hot(data.train_labels, data.num_classes))
        method.encoder.fit(images)
        method.to(self.device)
        if self.config.channels_last:
            method.to(memory_format=torch.channels_last)
        return images, targets

    def _epoch(
        self,
        method: HashingMethod,
        images: torch.Tensor,
        targets: torch.Tensor,
        bar: tqdm,
        generator: torch.Generator,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.OneCycleLR,
        averaged: AveragedModel | None,
    ) -> dict[str, float]:
        """One pass over the batches `bar` yields, updating the weight average if any;
        returns mean loss terms and wall time."""
        method.train()
        started, sums, done = time.perf_counter(), {}, 0
        rank, size = world()
        for batch in bar:
            idx = batch[rank::size]  # this process's share of the global batch
            method.progress = schedule.last_epoch / schedule.total_steps
            terms = self.train_step(method, images[idx], targets[idx], generator, optimizer)
            bad = [name for name, value in terms.items() if not math.isfinite(value)]
            if bad:
                raise TrainingDiverged(
                    f"training diverged: loss {', '.join(bad)} is not finite at step "
                    f"{schedule.last_epoch + 1}; lower train.lr (now {self.config.lr:g})"
                )
            schedule.step()
            if averaged is not None:
                averaged.update_parameters(method)
            done += 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            bar.set_postfix({k: f"{v / done:.3f}" for k, v in sums.items()}, refresh=False)
        return {
            "epoch_seconds": time.perf_counter() - started,
            **{f"loss_{k}": v / max(1, done) for k, v in sums.items()},
        }

    def build_optimizer(self, method: HashingMethod, total_steps: int) -> tuple[Any, Any]:
        """The optimiser over `method`'s trainable parameters and its one-cycle schedule."""
        cfg = self.config
        norm_params, other_params = _split_norm_parameters(method, cfg.freeze_norm_scale)
        filters = scale_free_filters(method.encoder.backbone) if cfg.optimizer == "muon" else []
        muon_ids = {id(p) for p in filters}
        groups = [
            {"params": [p for p in other_params if id(p) not in muon_ids]},
            {
                "params": norm_params,
                "lr": cfg.lr * cfg.norm_lr_scale,
                "weight_decay": cfg.weight_decay / cfg.norm_lr_scale,
            },
            {
                "params": filters,
                "lr": cfg.muon_lr,
                "muon_momentum": cfg.muon_momentum,
                "muon_dtype": precision_dtype(cfg.muon_precision, self.device),
            },
        ]
        optimizer = SGDWithMuon(
            [group for group in groups if group["params"]],
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=True,
            weight_decay=cfg.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=max(2, total_steps),
            pct_start=cfg.warmup_fraction,
            anneal_strategy="linear",
            cycle_momentum=cfg.momentum_schedule == "one-cycle",
        )
        return optimizer, schedule

    def train_step(
        self,
        method: HashingMethod,
        images: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
        optimizer: torch.optim.Optimizer,
    ) -> dict[str, float]:
        """One optimisation step on a batch; returns the loss terms as floats.

        With ``precision="bf16"`` (or "auto" on a device with native bfloat16) the
        forward pass runs under bfloat16 autocast (weights, gradients and the
        optimiser stay float32): on CPUs with AVX-512 BF16 this almost doubles
        convolution throughput (docs/recipe.md).
        """
        cfg = self.config
        images, originals = augment(images, cfg.augment, generator, method.progress)
        count, consistent = len(images), cfg.augment.copying(method.progress)
        if consistent:
            rows, copies = corrupted_copies(images, cfg.augment, generator)
            images = torch.cat([images, copies])
        with autocast(cfg.precision, self.device):
            x = method.normalize(images.to(self.device))
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            size = cfg.augment.input_size(method.progress)
            out = method(x if size is None else scaled_down(x, size))
            reproduced = x  # a denoising decoder reconstructs the images before corruption
            if cfg.augment.denoise and originals is not None:
                reproduced = method.normalize(originals.to(self.device))
            terms = method.losses(reproduced[:count], targets.to(self.device), out.head(count))
            if consistent:
                terms["consistency"] = cfg.augment.consistency * code_inconsistency(
                    out.h[count:], out.h[rows.to(self.device)].detach()
                )
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        average_gradients(method.parameters())
        optimizer.step()
        return average_values({name: float(value.detach()) for name, value in terms.items()})

    def validate(self, method: HashingMethod, data: TrainingData) -> dict[str, float]:
        """Validation mAP@all (val queries vs a training sample) and, if any, accuracy."""
        device = self.device
        query = encode_images(
            method, data.val_images, data.val_labels, device=device, as_queries=True
        )
        base = encode_images(method, data.retrieval_images, data.retrieval_labels, device=device)
        report = evaluate_retrieval(query, base, method.bits, rerank="none")
        record = {"val_map_all": report["stage1"]["map_all"]}
        accuracy = self._accuracy(method, data)
        if accuracy is not None:
            record["val_accuracy"] = accuracy
        return record

    def _accuracy(self, method: HashingMethod, data: TrainingData) -> float | None:
        """Top-1 validation accuracy of the method's classifier, if it has one."""
        truth = torch.from_numpy(to_multi_hot(data.val_labels, data.num_classes))
        hits = 0.0
        for out, rows in forward_batches(method, data.val_images, device=self.device):
            with torch.inference_mode():
                logits = method.class_logits(out)
            if logits is None:
                return None
            hits += float(truth[rows].gather(1, logits.argmax(dim=1, keepdim=True).cpu()).sum())
        return hits / max(1, len(data.val_images))


def code_inconsistency(copies: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cosine between the real-valued codes of corrupted copies and of their
    originals: scale-free, so it means the same for every method's h."""
    return (1 - torch.nn.functional.cosine_similarity(copies.float(), originals.float())).mean()


def _split_norm_parameters(
    method: HashingMethod, freeze_scale: bool
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """Trainable BatchNorm parameters and all other trainable ones (optimiser groups).

    With `freeze_scale` the BatchNorm weights stop training (they stay at 1).
    """
    norm_ids: set[int] = set()
    for module in method.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
            if freeze_scale:
                module.weight.requires_grad_(False)
            norm_ids.update(id(p) for p in module.parameters())
    trainable = [p for p in method.parameters() if p.requires_grad]
    return (
        [p for p in trainable if id(p) in norm_ids],
        [p for p in trainable if id(p) not in norm_ids],
    )


def _state_copy(method: HashingMethod) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in method.state_dict().items()}
