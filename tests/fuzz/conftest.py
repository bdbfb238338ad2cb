"""One tiny trained digits run, one of another code length, and an index of the first,
shared by the fuzz modules: seconds to make, so that every generated case runs the real
model."""

from __future__ import annotations

from pathlib import Path

import pytest

from hashsearch import api
from hashsearch.config import with_overrides
from hashsearch.methods import create_method
from hashsearch.presets import preset_config
from hashsearch.run import Run, load_run, save_run

TINY = {
    "train.epochs": 1,
    "train.max_steps": 1,
    "backbone.widths": (8, 16),
    "backbone.blocks": (1, 1),
}


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Run:
    """A 16-bit SAEH run on the digits (10 classes, 8x8 gray). Never changed by a test."""
    config = preset_config("digits", {**TINY, "method.bits": 16})
    return api.train(config, tmp_path_factory.mktemp("fuzz-runs") / "run16", progress=False)


@pytest.fixture(scope="session")
def other_run(digits_run, tmp_path_factory) -> Run:
    """The same network at 24 bits, untrained: a model that fits no index of `digits_run`."""
    config = with_overrides(digits_run.config, {"method.bits": 24})
    model = create_method(config, digits_run.meta["num_classes"], (1, 8, 8))
    folder = tmp_path_factory.mktemp("fuzz-runs") / "run24"
    save_run(folder, config, model, {**digits_run.meta, "bits": 24}, {})
    return load_run(folder)


@pytest.fixture(scope="session")
def digits_index(digits_run, tmp_path_factory) -> Path:
    """An index of `digits_run`'s database split. Never changed by a test: copy it first."""
    folder = tmp_path_factory.mktemp("fuzz-index") / "index"
    api.build_index(digits_run, folder, features="float32")
    return folder
