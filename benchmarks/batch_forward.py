"""Milliseconds of forward pass per image by batch size, for the model an index was built with.

    python benchmarks/batch_forward.py /tmp/ixfast48-noflip

Why: a search process answers whatever queries wait as one batch, so how the cost
of an image falls with the batch decides how many search processes a server
should run (docs/performance.md, Serving). The pass is the served one
(`hashsearch.encoding.forward_batch`: the run's precision and flip averaging) on
`--threads` threads, over random 32x32 uint8 images; each batch size is timed
`--repeats` times after a warm-up, and the median is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hashsearch import api
from hashsearch.encoding import forward_batch
from hashsearch.index import HashIndex
from hashsearch.run import Run


def ms_per_image(run: Run, batch: int, repeats: int, rng: np.random.Generator) -> float:
    """Median milliseconds per image of `repeats` forward passes of one batch."""
    channels, height, width = run.meta["image_shape"]
    images = rng.integers(0, 256, (batch, height, width, channels), dtype=np.uint8)
    for _ in range(10):
        forward_batch(run.model, images)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        forward_batch(run.model, images)
        times.append((time.perf_counter() - started) * 1e3 / batch)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = api.index_model(HashIndex.load(args.index), args.index)
    rng = np.random.default_rng(0)
    figures = {b: round(ms_per_image(run, b, args.repeats, rng), 3) for b in args.batches}
    encode = run.config.encode
    print(
        json.dumps(
            {
                "environment": api.environment(),
                "index": str(args.index),
                "precision": encode.precision,
                "flip_average": encode.flip_average,
                "threads": args.threads,
                "ms_per_image_by_batch": figures,
            }
        )
    )


if __name__ == "__main__":
    main()
