"""Every preset is a valid configuration that builds its method."""

import pytest

from hashsearch.methods import create_method
from hashsearch.presets import PRESETS, default_preset, preset_config


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
