"""Would translation test-time averaging pay? Validation mAP of runs with and without it.

    python benchmarks/tta_probe.py runs/bench11/fast-48b-seed0 runs/bench8/full-48b-seed0 \
        [--shifts '[[1,1],[-1,-1]]' '[[1,1],[-1,-1],[1,-1],[-1,1]]'] [--both-sides] \
        [--rerank qe-all --candidates 4000]

airbench averages its logits over the image and its copies shifted by one pixel.
`encode.query_shifts` does that to the re-ranking feature (and so to the code
computed from it) of queries. Per run this prints stage-1 and two-stage mAP@all
(stage 2 by `--rerank` over the first `--candidates`: by default cosine over
1,000, the setting of rounds 4-12) of the 1,000 validation images against the
training images: as
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

from bench_options import add_stage2_options, probe_args, probe_parser

from hashsearch import api
from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.run import Run, load_run

Shifts = tuple[tuple[int, int], ...]


def encoded(run: Run, split: str, shifts: Shifts) -> Encoded:
    """The split encoded as queries averaged over `shifts` (none: a single view)."""
    run.model.encoder.query_shifts = shifts
    return api.encode_split(run, split, as_queries=True)[0]


def report(
    run: Run,
    name: str,
    shifts: Shifts,
    query: Encoded,
    database: Encoded,
    stage2: tuple[str, int],
) -> None:
    """Print one line: stage-1 and two-stage validation mAP@all of the encoded queries;
    `stage2` is (re-ranker, depth)."""
    rerank, candidates = stage2
    found = evaluate_retrieval(query, database, run.model.bits, candidates, None, rerank)
    line = {
        "run": str(run.directory),
        "encoding": name,
        "shifts": shifts,
        "rerank": rerank,
        "candidates": candidates,
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
    add_stage2_options(parser)
    args = probe_args(parser)
    stage2 = args.rerank, args.candidates
    for run_dir in args.runs:
        run = load_run(run_dir)
        database = encoded(run, "train", ())
        report(run, "plain", (), encoded(run, "val", ()), database, stage2)
        for shifts in args.shifts:
            query = encoded(run, "val", shifts)
            report(run, "translate-queries", shifts, query, database, stage2)
            if args.both_sides:
                both = encoded(run, "train", shifts)
                report(run, "translate", shifts, query, both, stage2)


if __name__ == "__main__":
    main()
