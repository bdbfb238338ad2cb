"""Choose the stage-2 setting (re-ranker and candidate-list length) on the validation split.

    python benchmarks/refinement_choice.py --data ../shared/data/cifar10-jpg.tar.gz \
        --runs runs/bench8/full-* --rerank cosine bucket fusion \
        --candidates 1000 2500 5000 --out docs/refinement-choice-full.json

Every run's validation images query its training images (`api.evaluate(split="val")`,
the query set plays no part); each split is encoded once and every (re-ranker,
depth) pair is scored on the same stage-1 ranking. Prints validation two-stage
mAP@all per run and setting, then the setting with the best mean over the runs:
one choice for all the runs given (e.g. one preset at every code length), so a
choice cannot fit one run's noise. `benchmarks/quality.py --rerank R --candidates N`
then scores the query set with it. `--set encode.KEY=VALUE` encodes the runs with
other encode settings than their own (e.g. `encode.query_shifts=[[1,1],[-1,-1]]`).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path
from typing import Any

from bench_options import STAGE2_RERANKERS, add_set_option, config_changes, depth

from hashsearch import api
from hashsearch.run import load_run


def validation_scores(
    run_dir: Path,
    data: str | None,
    rerankers: list[str],
    depths: list[int],
    device: str,
    encode: dict[str, Any],
) -> list[dict[str, Any]]:
    """One record per (re-ranker, depth): the run's validation stage-1 and two-stage mAP@all,
    with the `encode` settings over the run's own."""
    run = load_run(run_dir, device, encode)
    query_split, database_split = api.searched_splits("val")
    query, _ = api.encode_split(run, query_split, data)
    database, _ = api.encode_split(run, database_split, data)
    records = []
    for candidates in depths:
        report = api.evaluate(
            run, candidates, rerank=rerankers, database=database, query=query, split="val"
        )
        for name, metrics in report["refinements"].items():
            records.append(
                {
                    "run": str(run_dir),
                    "bits": run.model.bits,
                    "seed": run.config.seed,
                    "rerank": name,
                    "candidates": candidates,
                    "stage1_map_all": report["stage1"]["map_all"],
                    "two_stage_map_all": metrics["map_all"],
                }
            )
    return records


def encode_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """`--set` pairs as encode settings; a trained run's other settings cannot change."""
    other = [key for key in changes if not key.startswith("encode.")]
    if other:
        raise SystemExit(f"--set {other[0]}: only encode.* settings apply to trained runs")
    return {key.removeprefix("encode."): value for key, value in changes.items()}


def best_setting(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The (re-ranker, depth) with the highest mean validation two-stage mAP@all."""
    settings: dict[tuple[str, int], list[float]] = {}
    for r in records:
        settings.setdefault((r["rerank"], r["candidates"]), []).append(r["two_stage_map_all"])
    (rerank, candidates), scores = max(settings.items(), key=lambda kv: statistics.mean(kv[1]))
    return {"rerank": rerank, "candidates": candidates, "mean_val_map_all": statistics.mean(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run directories")
    parser.add_argument("--data", default=None, help="data path if not the runs' own")
    parser.add_argument(
        "--rerank", nargs="+", choices=STAGE2_RERANKERS, default=["cosine", "bucket", "fusion"]
    )
    parser.add_argument("--candidates", type=depth, nargs="+", default=[1000, 2500, 5000])
    parser.add_argument("--device", default="cpu", help="where the runs encode (cpu, cuda, ...)")
    parser.add_argument("--out", type=Path, default=None, help="JSON with every score")
    add_set_option(parser)
    args = parser.parse_args()
    encode = encode_changes(config_changes(args))
    logging.basicConfig(level=logging.WARNING)
    records: list[dict[str, Any]] = []
    # A run named twice (overlapping globs) would count twice in the mean.
    for run_dir in {path.resolve(): path for path in args.runs}.values():
        found = validation_scores(
            run_dir, args.data, args.rerank, args.candidates, args.device, encode
        )
        records += found
        print(f"{run_dir}: validation stage 1 {found[0]['stage1_map_all']:.4f}")
        for r in found:
            print(f"  {r['rerank']:>7} top {r['candidates']:>5}: {r['two_stage_map_all']:.4f}")
    choice = best_setting(records)
    print(
        f"chosen on validation: --rerank {choice['rerank']} --candidates {choice['candidates']}"
        f" (mean validation two-stage mAP@all {choice['mean_val_map_all']:.4f})"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        saved = {"choice": choice, "encode": encode, "records": records}
        args.out.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
