"""Would translation test-time averaging pay? Validation mAP of a run with and without it.

    python benchmarks/tta_probe.py runs/bench/fast-round2-48b-seed0 runs/bench/full-48b-seed0

airbench averages its logits over the image and its copies shifted by one pixel
(each with its mirror image). This probe does the same to the re-ranking feature
(and so to the code computed from it) of a trained run, without an option in the
encoder: it wraps `HashEncoder.forward` for the probe's own process only. Per run
it prints stage-1 and two-stage mAP@all of the 1,000 validation images against
the training images, as encoded (`plain`) and with the feature averaged as
0.5 x the image + 0.25 x each copy shifted by (+1, +1) and (-1, -1) pixels
(reflect padding), flip averaging kept as the run's config says, on both sides
(`translate`) and on the validation queries only, the training images encoded
as usual (`translate-queries`: the extra passes only for the queries, a sixth of
the work of `translate`'s where queries are a sixth of the images). Each side is
encoded once per way of encoding and the three pairings are scored from those.
The query set plays no part. docs/results.md and docs/recipe.md (rounds 4 and
11) have the outcome (not adopted).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import torch
import torch.nn.functional as F
from bench_options import probed_runs

from hashsearch import api
from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.models.encoder import EncoderOutput, HashEncoder
from hashsearch.run import Run, load_run

PLAIN_FORWARD = HashEncoder.forward


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`x` moved by (dy, dx) pixels, the edge reflected into the gap."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]


def translate_averaged(encoder: HashEncoder, x: torch.Tensor) -> EncoderOutput:
    """The eval-mode forward pass with the feature averaged over one-pixel shifts."""
    if encoder.training:
        return PLAIN_FORWARD(encoder, x)
    with torch.autocast(x.device.type, torch.bfloat16, enabled=encoder.precision == "bf16"):

        def feature(z: torch.Tensor) -> torch.Tensor:
            plain = encoder.backbone(z)
            return (plain + encoder.backbone(z.flip(3))) / 2 if encoder.flip_average else plain

        averaged = (
            0.5 * feature(x) + 0.25 * feature(shifted(x, 1, 1)) + 0.25 * feature(shifted(x, -1, -1))
        )
        h = encoder.hash_layer(averaged)
    return EncoderOutput(h=h.float(), feature=averaged.float())


Forward = Callable[..., EncoderOutput]


def encoded_with(forward: Forward, run: Run, split: str) -> Encoded:
    """The split of the run encoded with `forward` in place of `HashEncoder.forward`."""
    HashEncoder.forward = forward  # type: ignore[method-assign]
    try:
        encoded, _ = api.encode_split(run, split)
    finally:
        HashEncoder.forward = PLAIN_FORWARD  # type: ignore[method-assign]
    return encoded


def validation_map(run: Run, query: Encoded, database: Encoded) -> dict[str, float]:
    """Stage-1 and two-stage validation mAP@all of encoded queries against a database."""
    report = evaluate_retrieval(query, database, run.model.bits, 1000, None, "cosine")
    return {
        "stage1_map_all": round(report["stage1"]["map_all"], 4),
        "two_stage_map_all": round(report["two_stage"]["map_all"], 4),
    }


# Each way of encoding the validation queries and the training images.
PAIRINGS = {"plain": ("plain", "plain"), "translate": ("translate", "translate")}
PAIRINGS["translate-queries"] = ("translate", "plain")
FORWARDS: dict[str, Forward] = {"plain": PLAIN_FORWARD, "translate": translate_averaged}


def main() -> None:
    for run_dir in probed_runs(__doc__):
        run = load_run(run_dir)
        queries = {name: encoded_with(f, run, "val") for name, f in FORWARDS.items()}
        database = {name: encoded_with(f, run, "train") for name, f in FORWARDS.items()}
        for name, (query_way, database_way) in PAIRINGS.items():
            figures = validation_map(run, queries[query_way], database[database_way])
            print(json.dumps({"run": str(run_dir), "encoding": name, **figures}))


if __name__ == "__main__":
    main()
