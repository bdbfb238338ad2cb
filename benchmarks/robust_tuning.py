"""Choose robustness settings on the validation split, then score the choice on the test queries.

    python benchmarks/robust_tuning.py --config runs/robust48/runs/saeh-48b-seed0/config.yaml \
        --variant "corrupt50-eps05:train.augment.corrupt=0.5,backbone.whiten_eps=0.05" \
        --variant "eps05:backbone.whiten_eps=0.05" --seeds 0 --out runs/robust-tuning

Every variant (a name and dotted config overrides on top of `--config`) and the
baseline (`--config` as it is) is trained once per seed. Each is then scored
with corrupted *validation* images searching the clean *training* images (the
query set plays no part): the issue's measure, the mean two-stage mAP@all over
the corruptions at severity 3 over clean mAP@all, and the clean mAP itself.
The chosen variant is the one with the best measure among those whose clean
validation mAP (mean over seeds) is within `--clean-tolerance` of the
baseline's. Only the baseline and the chosen variant are then scored on the
test queries (`--test-queries-per-class` per class against the database).
Rerun to resume: finished runs and scores are kept in OUT. `--validation-only` scores
no test query (for exploring variants): OUT/tuning.json then has the validation
scores and the rule's choice, and an empty `test`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import yaml

from hashsearch import api
from hashsearch.config import RunConfig, load_run_config, with_overrides
from hashsearch.data.corruptions import CORRUPTIONS
from hashsearch.study.robustness import mean_map, severity_ratio

BASELINE = "baseline"


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """ "name:key=value,key=value" -> (name, {key: value}); values are read as YAML scalars."""
    name, sep, body = text.partition(":")
    if not sep or not name or name == BASELINE:
        raise SystemExit(f"--variant {text!r}: write NAME:key=value,... (NAME not {BASELINE!r})")
    pairs = [item.partition("=") for item in body.split(",") if item]
    if any(not eq for _, eq, _ in pairs):
        raise SystemExit(f"--variant {text!r}: every setting is key=value")
    return name, {key: yaml.safe_load(value) for key, _, value in pairs}


def scored(config: RunConfig, directory: Path, split: str, per_class: int | None) -> list[dict]:
    """Corruption records of the run in `directory` (trained first if missing), cached
    per split and query count; a directory holding another config is refused."""
    run = api.finished_run(directory, config)
    cache = directory / f"tuning-{split}-{per_class or 'all'}.json"
    if run is not None and cache.is_file():
        return json.loads(cache.read_text())
    run = run or api.train(config, directory, progress=False)
    records = api.evaluate_corruptions(
        run, CORRUPTIONS.names(), queries_per_class=per_class, split=split
    )
    cache.write_text(json.dumps(records, indent=1))
    return records


def summary(records: list[dict]) -> dict[str, Any]:
    """The issue's measure, the clean two-stage mAP and, per corruption, severity 3 over
    clean (two-stage) of one run's records."""
    method = records[0]["method"]
    two_stage = [r for r in records if r["stage"] == "two_stage"]
    clean = mean_map(two_stage, severity=0)
    return {
        "ratio": severity_ratio(records, method),
        "clean": clean,
        "severity3": mean_map(two_stage, severity=3),
        "severity3_over_clean": {
            r["corruption"]: r["map_all"] / clean for r in two_stage if r["severity"] == 3
        },
    }


def averaged(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The mean over seeds of each number (not of the per-corruption breakdowns)."""
    numbers = [key for key, value in rows[0].items() if isinstance(value, float)]
    return {key: statistics.fmean(row[key] for row in rows) for key in numbers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the baseline run's config")
    parser.add_argument("--variant", action="append", default=[], help="NAME:key=value,...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--clean-tolerance", type=float, default=0.005)
    parser.add_argument("--test-queries-per-class", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/robust-tuning"))
    parser.add_argument(
        "--validation-only", action="store_true", help="stop after the validation scores"
    )
    args = parser.parse_args()

    base = load_run_config(args.config)
    variants = {BASELINE: {}, **dict(parse_variant(v) for v in args.variant)}
    validation: dict[str, dict[str, Any]] = {}
    for name, overrides in variants.items():
        rows = []
        for seed in args.seeds:
            config = with_overrides(base, {**overrides, "seed": seed})
            rows.append(summary(scored(config, args.out / f"{name}-seed{seed}", "val", None)))
        validation[name] = {"overrides": overrides, **averaged(rows), "per_seed": rows}
        print(json.dumps({"split": "val", "variant": name, **validation[name]}), flush=True)

    floor = validation[BASELINE]["clean"] - args.clean_tolerance
    eligible = [n for n, v in validation.items() if n != BASELINE and v["clean"] >= floor]
    chosen = max(eligible, key=lambda n: validation[n]["ratio"]) if eligible else None
    test: dict[str, Any] = {}
    scored_on_test = [] if args.validation_only else [BASELINE] + ([chosen] if chosen else [])
    for name in scored_on_test:
        rows = []
        for seed in args.seeds:
            config = with_overrides(base, {**variants[name], "seed": seed})
            directory = args.out / f"{name}-seed{seed}"
            rows.append(summary(scored(config, directory, "query", args.test_queries_per_class)))
        test[name] = {**averaged(rows), "per_seed": rows}
        print(json.dumps({"split": "query", "variant": name, **test[name]}), flush=True)
    result = {
        "config": str(args.config),
        "seeds": args.seeds,
        "clean_tolerance": args.clean_tolerance,
        "validation": validation,
        "chosen": chosen,
        "test": test,
    }
    (args.out / "tuning.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({"chosen": chosen, "written": str(args.out / "tuning.json")}))


if __name__ == "__main__":
    main()
