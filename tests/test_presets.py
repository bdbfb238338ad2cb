"""Every preset is a valid configuration that builds its method."""

from pathlib import Path

import pytest

from hashsearch.methods import create_method
from hashsearch.presets import PRESETS, default_preset, preset_config
from hashsearch.study import Cell, study_from_names


@pytest.mark.parametrize("name", PRESETS.names())
def test_preset_builds_a_valid_config_and_method(name):
    config = preset_config(name, {"method.bits": 16})
    method = create_method(config, 10, (3, 32, 32))
    assert method.bits == 16
    assert config.train.epochs >= 1


def test_cifar10_training_defaults_to_the_fast_preset():
    assert default_preset("cifar10") == "fast"
    assert default_preset("cifar10", demo=True) == "cifar10-demo"
    assert preset_config("full").backbone.widths == (64, 256, 256)


def test_overrides_never_leak_into_the_preset_they_start_from():
    """A nested preset value (the fast preset's augment dict) followed by a dotted key
    into it once wrote that key into the preset itself: every later run got it."""
    robust = preset_config("fast", {"train.augment.corrupt": 0.5})
    assert robust.train.augment.corrupt == 0.5
    assert preset_config("fast").train.augment.corrupt == 0.0
    study = study_from_names("budget", Path("unused"), None, None)
    cells = [Cell(name, 48, 0) for name in ("saeh-robust", "saeh", "dsh")]
    corrupt = [study.run_config(cell).train.augment.corrupt for cell in cells]
    assert corrupt == [0.5, 0.0, 0.0]
