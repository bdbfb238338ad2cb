"""How compact each class is in code and feature space, per trained run, on the validation split.

    python benchmarks/code_geometry.py runs/bench/full-48b-seed0 runs/robust-full48-c25-eps2

Why: `full-robust` runs lose clean mAP@all against `full` while their validation
accuracy is as high or higher (docs/robustness.md), so the cost is in how the
codes and features of a class lie, not in telling classes apart. Printed per run,
over the validation images against each other: the share of code entries near the
sign threshold (|h| under 0.1 and 0.25 of h's root mean square: bits a small change
flips), the mean Hamming distance between codes of the same class and of different
classes, the same for the cosine of the re-ranking features, and how often an
image's code is nearest its own class's mean code. Single-label data sets only;
the run's data set where its config says, on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from bench_options import probed_runs

from hashsearch import api
from hashsearch.encoding import forward_batches
from hashsearch.run import load_run


def geometry(run_dir: Path) -> dict[str, float]:
    """The figures above for one run."""
    run = load_run(run_dir)
    dataset, splits = api.load_data(run.config)
    rows = splits.get("val")
    labels = dataset.labels[rows]
    h_parts, f_parts = [], []
    for out, _ in forward_batches(run.model, dataset.images[rows], 500):
        h_parts.append(out.h.float().numpy())
        f_parts.append(out.feature.float().numpy())
    h, features = np.concatenate(h_parts), np.concatenate(f_parts)
    codes = np.where(h >= 0, 1.0, -1.0)
    rms = np.sqrt(np.mean(h**2))
    same = labels[:, None] == labels[None, :]
    other = ~np.eye(len(h), dtype=bool)
    hamming = (h.shape[1] - codes @ codes.T) / 2
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosine = unit @ unit.T
    classes = np.unique(labels)
    centroids = np.stack([codes[labels == c].mean(axis=0) for c in classes])
    nearest = classes[(codes @ centroids.T).argmax(axis=1)]
    return {
        "near_threshold_0.1": float(np.mean(np.abs(h) < 0.1 * rms)),
        "near_threshold_0.25": float(np.mean(np.abs(h) < 0.25 * rms)),
        "hamming_same_class": float(hamming[same & other].mean()),
        "hamming_other_class": float(hamming[~same].mean()),
        "cosine_same_class": float(cosine[same & other].mean()),
        "cosine_other_class": float(cosine[~same].mean()),
        "nearest_class_mean_code": float(np.mean(nearest == labels)),
    }


def main() -> None:
    for run_dir in probed_runs(__doc__):
        figures = {name: round(value, 4) for name, value in geometry(run_dir).items()}
        print(json.dumps({"run": str(run_dir), **figures}))


if __name__ == "__main__":
    main()
