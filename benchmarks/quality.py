"""Train a preset on the full CIFAR-10 protocol, then print what it cost and what it reached.

    python benchmarks/quality.py --data ../shared/data/cifar10-jpg.tar.gz \
        --preset full --bits 48 --seeds 0 1 2 --out runs/bench --records docs/results.json

Prints the hardware and software it ran on, training wall time, mean epoch time,
validation accuracy (model selection's view), and stage-1 and two-stage mAP@all
and mAP@1000 on the protocol's query set. Two-stage re-ranks the first
`--candidates` (1,000) by `--rerank` (cosine): the design document's setting,
or one chosen on the validation split by `benchmarks/refinement_choice.py`.
Each (preset, bits, seed) result is
appended to `--records` as one JSON record (it replaces an earlier record of the
same run, stage 2 and CPU model; the record says the CPU and the precision
training ran in); a run directory that already holds a
finished model is evaluated again instead of retrained, so an interrupted sweep
resumes where it stopped. With several seeds it ends with mean +- std per
(preset, bits). Time it alone: on 2 cores any other job skews it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_options import add_set_option, add_stage2_options, config_changes

from hashsearch import api
from hashsearch.presets import preset_config


def run_one(
    preset: str,
    data: str,
    bits: int,
    seed: int,
    changes: dict[str, Any],
    tag: str,
    out: Path,
    stage2: tuple[str, int] = ("cosine", 1000),
) -> dict[str, Any]:
    """Train (or reuse) one run and score its query set; `stage2` is (re-ranker, depth)."""
    overrides: dict[str, Any] = {"data.path": data, "method.bits": bits, "seed": seed, **changes}
    config = preset_config(preset, overrides)
    run_dir = out / f"{preset}{'-' + tag if tag else ''}-{bits}b-seed{seed}"
    run = api.finished_run(run_dir, config) or api.train(config, run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    started = time.perf_counter()
    rerank, candidates = stage2
    report = api.evaluate(run, candidates, rerank=rerank)
    history = metrics["history"]
    best = next(r for r in history if r["epoch"] == metrics["best_epoch"])
    return {
        "preset": preset,
        "variant": tag,
        "changes": changes,
        "bits": bits,
        "seed": seed,
        "protocol": config.data.protocol,
        "precision": run.config.train.precision,  # what "auto" meant where it trained
        "epochs": len(history),
        "best_epoch": metrics["best_epoch"],
        "train_seconds": round(metrics["train_seconds"], 1),
        "epoch_seconds": round(sum(r["epoch_seconds"] for r in history) / len(history), 2),
        "accuracy": best.get("val_accuracy"),
        "val_map_all": best["val_map_all"],
        "stage1_map_all": report["stage1"]["map_all"],
        "stage1_map_1000": report["stage1"]["map_1000"],
        "two_stage_map_all": report["two_stage"]["map_all"],
        "two_stage_map_1000": report["two_stage"]["map_1000"],
        "rerank": rerank,
        "candidates": candidates,
        "encode_and_evaluate_seconds": round(time.perf_counter() - started, 1),
        "environment": run.meta["environment"],
    }


def append_record(path: Path, record: dict[str, Any]) -> None:
    records = json.loads(path.read_text()) if path.is_file() else []

    def key(r: dict[str, Any]) -> tuple:
        """One record per run, stage 2 and CPU: a run on another machine adds its own
        (virtual machines of two generations may share a model name, not a family/model)."""
        stage2 = r.get("rerank", "cosine"), r.get("candidates", 1000)
        env = r.get("environment", {})
        cpu = env.get("cpu"), env.get("cpu_family_model")
        return r["preset"], r.get("variant", ""), r["bits"], r["seed"], *stage2, *cpu

    records = [r for r in records if key(r) != key(record)]
    path.write_text(json.dumps([*records, record], indent=2) + "\n")


SUMMARY_KEYS = ("train_seconds", "accuracy", "stage1_map_all", "two_stage_map_all")


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds, per (preset, variant, bits, stage 2)."""
    names = ("preset", "variant", "bits", "rerank", "candidates")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in names), []).append(r)
    rows = []
    for key, group in groups.items():
        row: dict[str, Any] = dict(zip(names, key, strict=True))
        row["seeds"] = [r["seed"] for r in group]
        for key in SUMMARY_KEYS:
            values = [r[key] for r in group if r[key] is not None]
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                row[key] = f"{statistics.fmean(values):.4f} +- {std:.4f}"
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 archive or folder")
    parser.add_argument("--preset", default="full")
    parser.add_argument("--bits", type=int, nargs="+", default=[48])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="override the preset")
    add_set_option(parser)
    parser.add_argument("--tag", default="", help="name of this variant (run dir, record)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--records", type=Path, default=None, help="JSON list to append to")
    add_stage2_options(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    print(json.dumps(api.environment()), flush=True)
    changes = config_changes(args)
    if args.epochs is not None:
        changes["train.epochs"] = args.epochs
    done = []
    for bits in args.bits:
        for seed in args.seeds:
            record = run_one(
                args.preset,
                args.data,
                bits,
                seed,
                changes,
                args.tag,
                args.out,
                (args.rerank, args.candidates),
            )
            print(json.dumps({k: v for k, v in record.items() if k != "environment"}), flush=True)
            if args.records:
                append_record(args.records, record)
            done.append(record)
    for row in summarize(done):
        print(json.dumps({"summary": row}), flush=True)


if __name__ == "__main__":
    main()
