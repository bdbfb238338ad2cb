"""What round 5's two step savings are worth (docs/recipe.md).

    python benchmarks/step_savings.py [--preset fast] [--rounds 3] [--steps 20]

Times the trainer's own step (`train_speed.train_rate`) in four settings, in
turn, `--rounds` times: the stem training or frozen (`train.stem_epochs`: the
epochs after the stem's), each with glibc's default allocator (the step before
round 5) and with freed memory retained (`retain_freed_memory`, which the
trainer now applies on the CPU). Each measurement runs in a fresh process:
once a process has retained freed memory, its heap serves large tensors
whatever the threshold says, so the default cannot be restored in place.
Prints images per second per measurement, then each setting's median as a
ratio to the first's. Time it alone: on 2 cores any other job skews it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from train_speed import train_rate

import hashsearch.training.trainer as trainer_module
from hashsearch.api import environment
from hashsearch.presets import preset_config

SETTINGS = {
    "stem trains, default allocator": (None, False),
    "stem trains, freed memory retained": (None, True),
    "stem frozen, default allocator": (0, False),
    "stem frozen, freed memory retained": (0, True),
}


def measure(preset: str, setting: str, steps: int) -> float:
    """Images per second of one setting, in this (fresh) process."""
    stem_epochs, retained = SETTINGS[setting]
    if not retained:  # the trainer's own call becomes a no-op: glibc's defaults stay
        trainer_module.retain_freed_memory = lambda: False
    config = preset_config(preset, {"train.stem_epochs": stem_epochs})
    return train_rate(config, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--one", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(measure(args.preset, args.one, args.steps))
        return
    print(json.dumps(environment()), flush=True)
    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for round_ in range(args.rounds):
        for name in SETTINGS:
            command = [sys.argv[0], "--preset", args.preset, "--steps", str(args.steps)]
            out = subprocess.run(
                [sys.executable, *command, "--one", name],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            rates[name].append(float(out.stdout.split()[-1]))
            print(json.dumps({"round": round_, "setting": name,
                              "images_per_s": round(rates[name][-1])}), flush=True)  # fmt: skip
    base = statistics.median(rates[next(iter(SETTINGS))])
    for name, values in rates.items():
        median = statistics.median(values)
        print(json.dumps({"setting": name, "median_images_per_s": round(median),
                          "ratio": round(median / base, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
