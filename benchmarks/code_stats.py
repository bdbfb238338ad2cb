"""How a run's codes use their bits: balance, distinct codes, class purity.

    python benchmarks/code_stats.py --run runs/study-dsh-lr/tuning/dsh-48b-seed0-lr0.2 \
        --split query

A method without a balance term can leave bits constant over the data (a bit
that is 1 for every image carries nothing) or collapse many classes onto few
codes; both cap mAP whatever the ranking does. Prints, as one JSON line: the
share of ones per bit (min, median, max), how many bits are nearly constant
(under 5% or over 95% ones), the number of distinct codes, the share of items
whose code is shared with an item of another class, and the mean Hamming
distance within and between classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hashsearch import api
from hashsearch.encoding import unpack_codes
from hashsearch.evaluation import hamming_distances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--split", default="query")
    parser.add_argument("--data", default=None)
    parser.add_argument("--sample", type=int, default=2000, help="items for Hamming means")
    args = parser.parse_args()
    run = api.load_run(args.run)
    encoded, _ = api.encode_split(run, args.split, args.data)
    signs = unpack_codes(encoded.codes, run.model.bits)
    bits = signs > 0
    labels = np.asarray(encoded.labels)
    ones = bits.mean(axis=0)
    codes, inverse = np.unique(encoded.codes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    code_label_pairs = np.unique(np.stack([inverse, labels]), axis=1)  # single-label data
    mixed = np.bincount(code_label_pairs[0], minlength=len(codes)) > 1
    rows = np.random.default_rng(0).permutation(len(bits))[: args.sample]
    sample_labels = labels[rows]
    distances = hamming_distances(signs[rows], signs[rows]).astype(np.int64)
    same = sample_labels[:, None] == sample_labels[None, :]
    off_diagonal = ~np.eye(len(rows), dtype=bool)
    print(
        json.dumps(
            {
                "run": str(args.run),
                "split": args.split,
                "items": len(bits),
                "bits": int(run.model.bits),
                "ones_per_bit_min_median_max": [
                    round(float(v), 3) for v in np.quantile(ones, [0, 0.5, 1])
                ],
                "nearly_constant_bits": int(((ones < 0.05) | (ones > 0.95)).sum()),
                "distinct_codes": len(codes),
                "items_sharing_a_code_across_classes": round(float(mixed[inverse].mean()), 4),
                "mean_hamming_same_class": round(float(distances[same & off_diagonal].mean()), 2),
                "mean_hamming_other_class": round(float(distances[~same].mean()), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
