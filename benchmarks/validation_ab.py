"""Compare two recipe variants on the validation split, seed by seed.

    python benchmarks/refinement_choice.py --runs runs/r10sel/fast-val500-48b-seed* \
        --rerank cosine --candidates 2500 --out runs/a.json
    python benchmarks/refinement_choice.py --runs runs/r10sel/fast-val500-sim01-48b-seed* \
        --rerank cosine --candidates 2500 --out runs/b.json
    python benchmarks/validation_ab.py runs/a.json runs/b.json --rerank cosine --candidates 2500

Reads the per-run validation scores that `refinement_choice.py --out` writes and
pairs the runs of A and B by seed: a seed fixes the validation split and the
initialisation, so the per-seed difference is free of the split-to-split spread
that dominates a small validation split (1,000 images differ by about 0.01 in
mAP from one draw to the next). Prints each seed's stage-1 and two-stage mAP@all
for A and B, the differences, and their mean with its standard error over the
seeds; B is preferred only where the mean two-stage difference is positive.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench_options import add_stage2_options


def scores_by_seed(path: Path, rerank: str, candidates: int) -> dict[int, dict[str, Any]]:
    """One record per seed from a `refinement_choice.py --out` file, at one stage-2 setting."""
    records = json.loads(path.read_text())["records"]
    chosen = [r for r in records if r["rerank"] == rerank and r["candidates"] == candidates]
    if not chosen:
        raise SystemExit(f"{path}: no scores for --rerank {rerank} --candidates {candidates}")
    by_seed: dict[int, dict[str, Any]] = {}
    for record in chosen:
        if record["seed"] in by_seed:
            raise SystemExit(f"{path}: two runs with seed {record['seed']}; give one per seed")
        by_seed[record["seed"]] = record
    return by_seed


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return statistics.mean(values), error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="refinement_choice.py --out file of variant A")
    parser.add_argument("b", type=Path, help="the same for variant B")
    add_stage2_options(parser, candidates=2500)
    args = parser.parse_args()
    a = scores_by_seed(args.a, args.rerank, args.candidates)
    b = scores_by_seed(args.b, args.rerank, args.candidates)
    seeds = sorted(a.keys() & b.keys())
    if not seeds:
        raise SystemExit(f"{args.a} and {args.b} share no seed; train both variants on one")
    differences: dict[str, list[float]] = {"stage1_map_all": [], "two_stage_map_all": []}
    print("seed  A stage 1  B stage 1  diff     A two-stage  B two-stage  diff")
    for seed in seeds:
        row = [f"{seed:>4}"]
        for key, values in differences.items():
            values.append(b[seed][key] - a[seed][key])
            row.append(f"{a[seed][key]:.4f}     {b[seed][key]:.4f}     {values[-1]:+.4f}")
        print("  ".join(row))
    for key, values in differences.items():
        mean, error = mean_and_error(values)
        wins = sum(value > 0 for value in values)
        print(
            f"B - A, {key}: {mean:+.4f} +- {error:.4f}"
            f" (s.e., {len(values)} seeds; B higher on {wins})"
        )


if __name__ == "__main__":
    main()
