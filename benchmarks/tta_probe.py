"""Would translation test-time averaging pay? Validation mAP of a run with and without it.

    python benchmarks/tta_probe.py runs/bench11/fast-48b-seed0 runs/bench8/full-48b-seed0

airbench averages its logits over the image and its copies shifted by one pixel.
`encode.query_translate` does that to the re-ranking feature (and so to the code
computed from it) of queries. Per run this prints stage-1 and two-stage mAP@all
(top 1,000) of the 1,000 validation images against the training images: as
encoded without it (`plain`), with it (`translate-queries`: the training images
encoded as usual), and with the training images translation-averaged too
(`translate`: three times the passes over the database, the option's road not
taken). Flip averaging stays as the run's config says. Each side is encoded once
per way of encoding and the pairings are scored from those. The query set plays
no part. docs/recipe.md (rounds 4, 11 and 12) has the outcome.
"""

from __future__ import annotations

import json

from bench_options import probed_runs

from hashsearch import api
from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.run import Run, load_run


def encoded(run: Run, split: str, translate: bool) -> Encoded:
    """The split encoded with translation averaging on or off, as queries either way."""
    run.model.encoder.query_translate = translate
    return api.encode_split(run, split, as_queries=True)[0]


def validation_map(run: Run, query: Encoded, database: Encoded) -> dict[str, float]:
    """Stage-1 and two-stage validation mAP@all of encoded queries against a database."""
    report = evaluate_retrieval(query, database, run.model.bits, 1000, None, "cosine")
    return {
        "stage1_map_all": round(report["stage1"]["map_all"], 4),
        "two_stage_map_all": round(report["two_stage"]["map_all"], 4),
    }


# (queries translation-averaged, training images translation-averaged) of each encoding.
PAIRINGS = {
    "plain": (False, False),
    "translate-queries": (True, False),
    "translate": (True, True),
}


def main() -> None:
    for run_dir in probed_runs(__doc__):
        run = load_run(run_dir)
        queries = {on: encoded(run, "val", on) for on in (False, True)}
        database = {on: encoded(run, "train", on) for on in (False, True)}
        for name, (query_way, database_way) in PAIRINGS.items():
            figures = validation_map(run, queries[query_way], database[database_way])
            print(json.dumps({"run": str(run_dir), "encoding": name, **figures}))


if __name__ == "__main__":
    main()
