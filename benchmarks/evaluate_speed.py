"""Time the evaluation code path at CIFAR-10 scale: 10,000 queries x 50,000 items.

    python benchmarks/evaluate_speed.py [--queries 10000] [--items 50000] [--bits 48]

Codes are drawn around 10 class centres so that rankings have realistic ties and
relevance; features are random (the re-rank cost does not depend on their values).
Prints the wall time of stage 1 + two-stage metrics and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from hashsearch.api import environment
from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval


def synthetic(
    rng: np.random.Generator, n: int, bits: int, dim: int, centres: np.ndarray
) -> Encoded:
    labels = rng.integers(0, len(centres), n)
    h = centres[labels] + 1.5 * rng.standard_normal((n, bits))
    features = rng.standard_normal((n, dim)).astype(np.float32)
    return Encoded(np.packbits(h >= 0, axis=1), features, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--bits", type=int, default=48)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, args.bits))
    query = synthetic(rng, args.queries, args.bits, args.dim, centres)
    database = synthetic(rng, args.items, args.bits, args.dim, centres)
    started = time.perf_counter()
    report = evaluate_retrieval(query, database, args.bits, candidates=1000)
    seconds = time.perf_counter() - started
    print(json.dumps(environment()))
    print(
        json.dumps(
            {
                "queries": args.queries,
                "items": args.items,
                "bits": args.bits,
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "stage1_map_all": round(report["stage1"]["map_all"], 4),
                "two_stage_map_all": round(report["two_stage"]["map_all"], 4),
            }
        )
    )


if __name__ == "__main__":
    main()
