"""Would translation test-time averaging pay? Validation mAP of runs with and without it.

    python benchmarks/tta_probe.py runs/bench11/fast-48b-seed0 runs/bench8/full-48b-seed0 \
        [--shifts '[[1,1],[-1,-1]]' '[[1,1],[-1,-1],[1,-1],[-1,1]]'] [--both-sides]

airbench averages its logits over the image and its copies shifted by one pixel.
`encode.query_shifts` does that to the re-ranking feature (and so to the code
computed from it) of queries. Per run this prints stage-1 and two-stage mAP@all
(top 1,000) of the 1,000 validation images against the training images: as
encoded without shifts (`plain`), and with the queries averaged over each
`--shifts` set (`translate-queries`: the training images encoded as usual; with
`--both-sides` also `translate`: the training images averaged over the same
shifts, three times the passes over the database, the option's road not taken).
Flip averaging stays as the run's config says. Each side is encoded once per way
of encoding and the pairings are scored from those. The query set plays no part.
docs/recipe.md (rounds 4, 11 and 12) has the outcome.
"""

from __future__ import annotations

import json

from bench_options import probe_args, probe_parser

from hashsearch import api
from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.run import Run, load_run

Shifts = tuple[tuple[int, int], ...]


def encoded(run: Run, split: str, shifts: Shifts) -> Encoded:
    """The split encoded as queries averaged over `shifts` (none: a single view)."""
    run.model.encoder.query_shifts = shifts
    return api.encode_split(run, split, as_queries=True)[0]


def report(run: Run, name: str, shifts: Shifts, query: Encoded, database: Encoded) -> None:
    """Print one line: stage-1 and two-stage validation mAP@all of the encoded queries."""
    found = evaluate_retrieval(query, database, run.model.bits, 1000, None, "cosine")
    line = {
        "run": str(run.directory),
        "encoding": name,
        "shifts": shifts,
        "stage1_map_all": round(found["stage1"]["map_all"], 4),
        "two_stage_map_all": round(found["two_stage"]["map_all"], 4),
    }
    print(json.dumps(line), flush=True)


def shift_set(text: str) -> Shifts:
    """A JSON list of [dy, dx] pairs (argparse type)."""
    return tuple((int(dy), int(dx)) for dy, dx in json.loads(text))


def main() -> None:
    parser = probe_parser(__doc__)
    parser.add_argument("--shifts", type=shift_set, nargs="+", default=[((1, 1), (-1, -1))])
    parser.add_argument("--both-sides", action="store_true", help="also shift the database")
    args = probe_args(parser)
    for run_dir in args.runs:
        run = load_run(run_dir)
        database = encoded(run, "train", ())
        report(run, "plain", (), encoded(run, "val", ()), database)
        for shifts in args.shifts:
            query = encoded(run, "val", shifts)
            report(run, "translate-queries", shifts, query, database)
            if args.both_sides:
                report(run, "translate", shifts, query, encoded(run, "train", shifts))


if __name__ == "__main__":
    main()
