"""How much can stage 2 still gain? Validation mAP@all of stronger re-rankers than the presets'.

    python benchmarks/stage2_ceiling.py runs/r20/fast-48b-seed0 --candidates 4000 10000 49000

Per run, the 1,000 validation images query the training images (the query set
plays no part), each split encoded once as the run's config says, and one
stage-1 ranking is re-ranked, at each `--candidates` depth, by:

- `qe-all` and `cosine`: the presets' stage 2 and the design document's;
- `alpha-qe`: query expansion over every candidate weighted by cosine^3
  (Radenovic et al.'s alpha-QE) instead of `qe-all`'s equal weights;
- `dba`: `qe-all` on item features each averaged with its 10 nearest
  neighbours in the whole database (database-side augmentation). Search
  prepares only a query's candidates, so this would have to be computed when
  the index is built: a probe, not a strategy the index can serve as it is;
- `class-probability`: P(same class) = sum_c p(c | query) p(c | item), p the
  softmax of the run's feature classifier: the order that maximises expected
  precision for single-label relevance if p were calibrated. At the depth of
  the whole database it orders everything, no Hamming stage at all: a
  ceiling of what any re-ranking of these features could reach, not a search.

Prints one JSON line per run and depth. docs/recipe.md (round 20) has the outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import faiss
import numpy as np
from bench_options import depth, probe_args, probe_parser
from scipy.special import softmax

from hashsearch import api
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.rerank import RERANKERS, QueryExpansionReranker, Reranker, l2_normalized
from hashsearch.run import Run, load_run

Array = np.ndarray


@dataclass(frozen=True)
class WeightedQueryExpansion(Reranker):
    """The query plus its candidates weighted by max(cosine, 0)^alpha, then cosine to that."""

    alpha: float = 3.0

    def score(
        self, query: Array, items: Array, hamming: Array, candidate: Array, bits: int
    ) -> Array:
        unit = l2_normalized(query)
        weights = np.where(candidate, (unit @ items.T).clip(0) ** self.alpha, 0.0)
        return l2_normalized(unit + weights.astype(np.float32) @ items) @ items.T


@dataclass(frozen=True)
class DatabaseAugmented(QueryExpansionReranker):
    """`qe-all` on items averaged with their `neighbours` nearest by cosine (self included)."""

    neighbours: int = 10

    def prepare(self, features: Array) -> Array:
        unit = l2_normalized(features)
        index = faiss.IndexFlatIP(unit.shape[1])
        index.add(unit)
        _, nearest = index.search(unit, self.neighbours + 1)
        return l2_normalized(unit[nearest].sum(axis=1))


@dataclass(frozen=True, eq=False)
class ClassProbability(Reranker):
    """sum_c p(c | query) p(c | item), p = softmax(weight @ feature + bias)."""

    weight: Array = field(repr=False)
    bias: Array = field(repr=False)

    def probabilities(self, features: Array) -> Array:
        return softmax(features @ self.weight.T + self.bias, axis=1).astype(np.float32)

    def prepare(self, features: Array) -> Array:
        return self.probabilities(features)

    def score(
        self, query: Array, items: Array, hamming: Array, candidate: Array, bits: int
    ) -> Array:
        return self.probabilities(query) @ items.T


def probe_rerankers(run: Run) -> dict[str, Reranker | None]:
    """The registered baselines and the probe's strategies, by the names it prints."""
    classifier = getattr(run.model, "feature_classifier", None)
    if classifier is None:
        raise SystemExit(f"{run.directory}: the run has no feature classifier to probe with")
    return {
        "qe-all": RERANKERS.get("qe-all"),
        "cosine": RERANKERS.get("cosine"),
        "alpha-qe": WeightedQueryExpansion(),
        "dba": DatabaseAugmented(k=None),
        "class-probability": ClassProbability(
            classifier.weight.detach().float().numpy(), classifier.bias.detach().float().numpy()
        ),
    }


def main() -> None:
    parser = probe_parser(__doc__)
    parser.add_argument("--candidates", type=depth, nargs="+", default=[4000])
    args = probe_args(parser)
    query_split, database_split = api.searched_splits("val")
    for run_dir in args.runs:
        run = load_run(run_dir)
        rerankers = probe_rerankers(run)
        query = api.encode_split(run, query_split)[0]
        database = api.encode_split(run, database_split)[0]
        for candidates in args.candidates:
            found = evaluate_retrieval(query, database, run.model.bits, candidates, None, rerankers)
            line = {
                "run": str(run_dir),
                "candidates": candidates,
                "stage1_map_all": round(found["stage1"]["map_all"], 4),
                **{name: round(m["map_all"], 4) for name, m in found["refinements"].items()},
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
