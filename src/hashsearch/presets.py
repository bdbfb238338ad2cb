"""Named starting configurations: the demo and the CIFAR-10 recipes.

A preset is a set of dotted overrides on `RunConfig()`; command-line flags
override the preset in turn. The evidence behind the CIFAR-10 numbers is in
`docs/results.md`.
"""

from __future__ import annotations

from typing import Any

from hashsearch.config import RunConfig, with_overrides
from hashsearch.errors import HashsearchError
from hashsearch.registry import Registry

PRESETS: Registry[dict[str, Any]] = Registry("preset")

# scikit-learn's 8x8 digits: tiny, so a narrow net and many epochs finish in seconds;
# no flips (a mirrored digit is another glyph) and at most one pixel of translation.
PRESETS.register("digits")(
    {
        "data.dataset": "digits",
        "data.protocol": "holdout",
        "backbone.widths": (32, 64, 128),
        "backbone.blocks": (1, 1, 1),
        "train.epochs": 40,
        "train.batch_size": 64,
        "train.lr": 0.05,
        "train.augment": {"translate": 1, "flip": False},
        "train.eval_every": 5,
    }
)

# CIFAR-10 32x32 from scratch on a CPU: widths and epochs sized for a 2-core machine.
PRESETS.register("cifar10")(
    {
        "data.dataset": "cifar10",
        "data.protocol": "cifar10-2",
        "backbone.widths": (32, 64, 128),
        "backbone.blocks": (1, 1, 1),
        "train.epochs": 10,
        "train.batch_size": 256,
        "train.lr": 0.1,
        "train.augment": {"translate": 2, "flip": True},
        "train.eval_every": 2,
    }
)

# The demo on CIFAR-10: the `cifar10` protocol trains on 5,000 images, so it takes minutes.
PRESETS.register("cifar10-demo")(
    {
        **PRESETS.get("cifar10"),
        "data.protocol": "cifar10",
        "train.epochs": 8,
        "train.eval_every": 4,
    }
)


# The best recipe measured so far (docs/recipe.md: 0.8816 mAP@all at 48 bits, 24.3 min on
# 2 cores): wider, twice the epochs, bf16 autocast (needs a CPU with AVX-512 BF16 or AMX to
# be fast; elsewhere use --set train.precision=fp32), flip-averaged codes.
PRESETS.register("cifar10-wide")(
    {
        **PRESETS.get("cifar10"),
        "backbone.widths": (48, 96, 192),
        "train.epochs": 20,
        "train.precision": "bf16",
        "train.eval_every": 4,
        "encode.flip_average": True,
    }
)

# Any other labelled image folder: a middle-of-the-road recipe for small photos.
PRESETS.register("folder")(
    {
        "data.dataset": "folder",
        "data.protocol": "holdout",
        "backbone.widths": (32, 64, 128),
        "backbone.blocks": (1, 1, 1),
        "train.epochs": 15,
        "train.batch_size": 128,
        "train.lr": 0.05,
        "train.augment": {"translate": 2, "flip": True},
        "train.eval_every": 3,
    }
)

# The preset `train` and `demo` start from when only --dataset is given.
TRAIN_PRESETS = {"digits": "digits", "cifar10": "cifar10", "folder": "folder"}
DEMO_PRESETS = {**TRAIN_PRESETS, "cifar10": "cifar10-demo"}


def default_preset(dataset: str | None, demo: bool = False) -> str:
    """The preset for a data set name (digits when none is given)."""
    table = DEMO_PRESETS if demo else TRAIN_PRESETS
    if dataset is None:
        return "digits"
    if dataset not in table:
        raise HashsearchError(f"unknown data set {dataset!r}; use one of {', '.join(table)}")
    return table[dataset]


def preset_config(name: str, overrides: dict[str, Any] | None = None) -> RunConfig:
    """`RunConfig()` with the preset's overrides, then `overrides` on top."""
    return with_overrides(RunConfig(), {**PRESETS.get(name), **(overrides or {})})
