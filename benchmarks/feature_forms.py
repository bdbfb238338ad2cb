"""Re-rank feature storage forms: bytes per image against two-stage mAP (issue 5).

    python benchmarks/feature_forms.py --run runs/bench/full-48b-seed0 \
        --data ../shared/data/cifar10-jpg.tar.gz --out docs/feature_forms.json

Encodes the run's query and database splits once, then for each form builds the
index's feature codec on the database features exactly as `hashsearch index
--features FORM` does, decodes them, and evaluates stage 1 and two-stage
(cosine re-ranking of the top `--candidates`) mAP@all and mAP@1000 on the same
ranking. Prints one JSON line per form with its bytes per image and its mAP
difference from float32, and writes them all to `--out`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hashsearch import api
from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.index.features import FeatureCodec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", default=None, help="data set path, if it moved")
    parser.add_argument("--forms", nargs="+", default=["float32", "float16", "int8", "pq"])
    parser.add_argument("--pq-bytes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    environment = api.environment()
    print(json.dumps(environment), flush=True)
    run = api.load_run(args.run)
    query, _ = api.encode_split(run, "query", args.data)
    database, _ = api.encode_split(run, "database", args.data)
    variants = [
        (form, size) for form in args.forms for size in (args.pq_bytes if form == "pq" else [None])
    ]
    records, baseline = [], None
    for form, size in variants:
        started = time.perf_counter()
        codec = FeatureCodec.fit(database.features, form, size or 32)
        decoded = codec.decode(codec.encode(database.features))
        fitted = time.perf_counter() - started
        stored = Encoded(database.codes, decoded, database.labels)
        report = evaluate_retrieval(query, stored, run.model.bits, args.candidates, None, "cosine")
        record = {
            "run": str(args.run),
            "bits": run.model.bits,
            "form": form,
            "codec": codec.name,
            "feature_bytes_per_image": codec.code_size,
            "code_bytes_per_image": database.codes.shape[1],
            "feature_dim": codec.dim,
            "stage1_map_all": round(report["stage1"]["map_all"], 5),
            "two_stage_map_all": round(report["two_stage"]["map_all"], 5),
            "two_stage_map_1000": round(report["two_stage"]["map_1000"], 5),
            "fit_encode_seconds": round(fitted, 2),
        }
        baseline = baseline or (record if form == "float32" else None)
        if baseline is not None:
            record["two_stage_map_all_minus_float32"] = round(
                record["two_stage_map_all"] - baseline["two_stage_map_all"], 5
            )
        records.append(record)
        print(json.dumps(record), flush=True)
    if args.out:
        args.out.write_text(
            json.dumps({"environment": environment, "records": records}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
