"""Who takes part in the comparative study, and with which of their own parameters.

A contestant is a deep method (trained by the one trainer with the study's
shared backbone and budget) or a shallow one (fitted, without labels, on the
float vectors of the training split: the SAEH run's backbone features at the
same code length and seed, or raw pixels). Ablations are contestants too: the
same method with other parameters. Adding one is one entry here.

Parameter provenance (docs/study.md says more): DSH alpha and margin, HashNet
alpha and CSQ lambda are the papers' values; SAEH's are the CIFAR-10 recipe's,
chosen on the validation split (docs/recipe.md); DPSH eta and GreedyHash alpha
are ours, not tuned yet. Every method shares the trainer's recipe (SGD, one
cycle, learning rate): not tuned per method yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hashsearch.registry import Registry

# SAEH as the CIFAR-10 recipe trains it (docs/recipe.md), with its decoder on.
SAEH_PARAMS: dict[str, Any] = {
    "relaxation": "tanh",
    "final_scale": 10.0,
    "label_smoothing": 0.2,
    "lambda_rec": 0.1,
}


@dataclass(frozen=True)
class Contestant:
    """One row of the study's tables.

    Attributes:
        method: a deep method (`hashsearch.methods`) or shallow one (`hashsearch.shallow`).
        kind: "deep" trains; "shallow" fits on `vectors` of the training split.
        params: the method's own parameters.
        vectors: what a shallow method hashes: the SAEH run's "features" or "pixels".
        overrides: this contestant's own config settings (dotted keys, e.g. its augmentation).
    """

    method: str
    kind: Literal["deep", "shallow"] = "deep"
    params: dict[str, Any] = field(default_factory=dict)
    vectors: Literal["features", "pixels"] = "features"
    overrides: dict[str, Any] = field(default_factory=dict)


CONTESTANTS: Registry[Contestant] = Registry("contestant")
CONTESTANTS.register("saeh")(Contestant("saeh", params=SAEH_PARAMS))
CONTESTANTS.register("saeh-no-decoder")(
    Contestant("saeh", params={**SAEH_PARAMS, "lambda_rec": 0.0})
)
CONTESTANTS.register("saeh-no-pairwise")(
    Contestant("saeh", params={**SAEH_PARAMS, "lambda_sim": 0.0})
)
# SAEH trained on photometrically corrupted images too (docs/robustness.md).
CONTESTANTS.register("saeh-robust")(
    Contestant("saeh", params=SAEH_PARAMS, overrides={"train.augment.corrupt": 0.5})
)
# The same with a whitening that amplifies faint patch directions less (docs/robustness.md).
CONTESTANTS.register("saeh-robust-eps")(
    Contestant(
        "saeh",
        params=SAEH_PARAMS,
        overrides={"train.augment.corrupt": 0.5, "backbone.whiten_eps": 0.05},
    )
)
for _name in ("dsh", "dpsh", "hashnet", "csq", "greedyhash"):
    CONTESTANTS.register(_name)(Contestant(_name))
for _name in ("lsh", "sh", "itq"):
    CONTESTANTS.register(_name)(Contestant(_name, kind="shallow"))
    CONTESTANTS.register(f"{_name}-pixels")(Contestant(_name, kind="shallow", vectors="pixels"))

# The deep run whose backbone features the shallow contestants hash.
FEATURE_SOURCE = "saeh"
