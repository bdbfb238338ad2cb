"""Images per second for training (forward + backward + step) and for encoding, per preset.

    python benchmarks/train_speed.py [--presets cifar10 ...] [--precisions fp32 bf16]

Each training step is the trainer's own `train_step` (augmentation, normalisation,
SAEH loss with decoder, SGD) on random CIFAR-sized uint8 batches, so the figure
is what an epoch costs apart from data shuffling and validation. Encoding is
`encode_images` (float32, eval mode). Prints the CPU model, thread count and
torch version first. Time it alone: on 2 cores any other job skews it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from hashsearch.api import environment
from hashsearch.config import with_overrides
from hashsearch.encoding import encode_images
from hashsearch.methods import create_method
from hashsearch.presets import PRESETS, preset_config
from hashsearch.training.trainer import Trainer

SHAPE = (3, 32, 32)


def train_rate(config, steps: int) -> float:
    trainer = Trainer(config.train, config.seed)
    method = create_method(config, 10, SHAPE).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    batch = config.train.batch_size
    images = torch.randint(0, 256, (batch, *SHAPE), dtype=torch.uint8, generator=generator)
    targets = torch.eye(10)[torch.arange(batch) % 10]
    method.train()
    for _ in range(2):  # warm-up: oneDNN picks kernels on the first calls
        trainer.train_step(method, images, targets, generator, optimizer)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(method, images, targets, generator, optimizer)
    return steps * batch / (time.perf_counter() - started)


def encode_rate(config, count: int) -> float:
    method = create_method(config, 10, SHAPE)
    images = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    encode_images(method, images[:512], np.zeros(512))
    started = time.perf_counter()
    encode_images(method, images, np.zeros(count))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--presets", nargs="+", default=[n for n in PRESETS.names() if n.startswith("cifar10")]
    )
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--encode", type=int, default=5000, help="images to encode")
    args = parser.parse_args()
    print(json.dumps(environment()), flush=True)
    for name in args.presets:
        for precision in args.precisions:
            config = with_overrides(preset_config(name), {"train.precision": precision})
            print(
                json.dumps(
                    {
                        "preset": name,
                        "precision": precision,
                        "widths": list(config.backbone.widths),
                        "blocks": list(config.backbone.blocks),
                        "batch_size": config.train.batch_size,
                        "train_images_per_s": round(train_rate(config, args.steps)),
                        "encode_images_per_s": round(encode_rate(config, args.encode)),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
