"""Images per second for training (forward + backward + step) and for encoding, per preset.

    python benchmarks/train_speed.py [--presets fast full] [--precisions auto bf16 fp32] [--profile]
        [--step-times N]

Each training step is the trainer's own `train_step` (augmentation, normalisation,
the preset's loss, its optimiser) on random CIFAR-sized uint8 batches, so the figure
is what an epoch costs apart from data shuffling and validation; the optimiser's
step is also timed alone (`optimizer_step_ms`). Encoding is
`encode_images` (eval mode, the preset's flip averaging) of items to store, and of
queries (`encode.query_shifts`' extra views, where the preset has them). A preset
that trains its first steps on smaller images (`train.augment.low_res`) gets three
training rates: the full-size step's, the small step's and the whole run's. Prints
the CPU model, thread count and torch version first. The default precision is the
presets' own, `auto`, printed as what it means here: on a CPU without bfloat16
instructions an explicit `bf16` is emulated and runs 3-4x slower than fp32. Time it
alone: on 2 cores any other job skews it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from bench_options import add_set_option, config_changes

from hashsearch.api import environment
from hashsearch.config import RunConfig, with_overrides
from hashsearch.device import autocast_precision
from hashsearch.encoding import encode_images
from hashsearch.methods import create_method
from hashsearch.presets import preset_config
from hashsearch.training.trainer import Trainer

SHAPE = (3, 32, 32)
WARM_UP_STEPS = 2  # oneDNN picks its kernels on the first calls; they are not timed


def step_inputs(config: RunConfig) -> tuple[Trainer, tuple]:
    """What one `train_step` call needs: trainer, model, optimiser, generator, a batch.

    With `train.stem_epochs` set the stem is frozen: the step of the epochs after it.
    """
    trainer = Trainer(config.train, config.seed)
    method = create_method(config, 10, SHAPE).to(memory_format=torch.channels_last)
    if config.train.stem_epochs is not None:
        method.encoder.backbone.train_stem(False)
    optimizer, _ = trainer.build_optimizer(method, total_steps=1000)
    generator = torch.Generator().manual_seed(0)
    batch = config.train.batch_size
    images = torch.randint(0, 256, (batch, *SHAPE), dtype=torch.uint8, generator=generator)
    targets = torch.eye(10)[torch.arange(batch) % 10]
    method.train()
    return trainer, (method, images, targets, generator, optimizer)


def full_size(config: RunConfig) -> RunConfig:
    """`config` with every step at full size (no `train.augment.low_res` phase)."""
    return with_overrides(config, {"train.augment.low_res": None})


def train_rate(config: RunConfig, steps: int) -> float:
    trainer, inputs = step_inputs(config)
    for _ in range(WARM_UP_STEPS):
        trainer.train_step(*inputs)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(*inputs)
    return steps * config.train.batch_size / (time.perf_counter() - started)


def train_rates(config: RunConfig, steps: int) -> dict[str, int]:
    """`train_images_per_s` of the full-size step; for a preset with progressive
    resizing (`train.augment.low_res`) also that of its smaller step and the rate over a
    whole run, the two mixed by the share of steps each takes."""
    rates = {"train_images_per_s": round(train_rate(full_size(config), steps))}
    augment = config.train.augment
    if augment.low_res is not None:
        low = train_rate(config, steps)  # a fresh method's progress is 0: the small step
        share = augment.low_res_until
        run = 1 / (share / low + (1 - share) / rates["train_images_per_s"])
        rates |= {"low_res_train_images_per_s": round(low), "run_train_images_per_s": round(run)}
    return rates


def optimizer_step_ms(config: RunConfig, steps: int) -> float:
    """Median milliseconds of the optimiser's step alone, on random gradients: what an
    optimiser (Muon's Newton-Schulz iterations) adds to a training step, measured apart
    from the forward and backward passes, whose time varies more between runs."""
    _, (*_, optimizer) = step_inputs(config)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    times = []
    for _ in range(WARM_UP_STEPS + steps):
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        started = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[WARM_UP_STEPS:])


def step_seconds(config: RunConfig, steps: int) -> list[float]:
    """Seconds of each of a fresh model's first `steps` full-size training steps, in
    order, none skipped: how many first steps run slow, which a short timing (a time
    budget's probe, `train.budget_seconds`) has to leave out."""
    trainer, inputs = step_inputs(full_size(config))
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        trainer.train_step(*inputs)
        seconds.append(round(time.perf_counter() - started, 3))
    return seconds


def encode_rate(config: RunConfig, count: int, as_queries: bool = False) -> float:
    method = create_method(config, 10, SHAPE)
    images = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    encode_images(method, images[:512], np.zeros(512), as_queries=as_queries)
    started = time.perf_counter()
    encode_images(method, images, np.zeros(count), as_queries=as_queries)
    return count / (time.perf_counter() - started)


def profile_step(config: RunConfig, steps: int = 4, rows: int = 12) -> str:
    """The torch profiler's table of the ops that take the step's time (self CPU time)."""
    trainer, inputs = step_inputs(config)
    trainer.train_step(*inputs)
    with torch.profiler.profile() as prof:
        for _ in range(steps):
            trainer.train_step(*inputs)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["fast", "full"])
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["auto", "bf16", "fp32"],
        default=["auto"],
        help="of training and encoding (auto: bf16 where this CPU computes it natively)",
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--encode", type=int, default=5000, help="images to encode")
    add_set_option(parser)
    parser.add_argument("--profile", action="store_true", help="also print the op profile")
    parser.add_argument(
        "--step-times",
        type=int,
        default=0,
        metavar="N",
        help="also print the seconds of each of a fresh model's first N full-size steps",
    )
    args = parser.parse_args()
    print(json.dumps(environment()), flush=True)
    changes = config_changes(args)
    for name in args.presets:
        for precision in args.precisions:
            config = preset_config(
                name, {"train.precision": precision, "encode.precision": precision, **changes}
            )
            if args.step_times:  # first, so that the first preset's are a fresh process's
                times = step_seconds(config, args.step_times)
                print(json.dumps({"preset": name, "step_seconds": times}), flush=True)
            print(
                json.dumps(
                    {
                        "preset": name,
                        "precision": autocast_precision(precision, "cpu"),
                        "changes": changes,
                        "backbone": config.backbone.name,
                        "widths": list(config.backbone.widths),
                        "blocks": list(config.backbone.blocks),
                        "batch_size": config.train.batch_size,
                        "flip_average": config.encode.flip_average,
                        **train_rates(config, args.steps),
                        "optimizer_step_ms": round(optimizer_step_ms(config, args.steps), 1),
                        "query_shifts": config.encode.query_shifts,
                        "encode_images_per_s": round(encode_rate(config, args.encode)),
                        "query_encode_images_per_s": round(
                            encode_rate(config, args.encode, as_queries=True)
                        ),
                    }
                ),
                flush=True,
            )
            if args.profile:
                print(profile_step(config), flush=True)


if __name__ == "__main__":
    main()
