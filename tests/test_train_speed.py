"""benchmarks/train_speed.py: a preset with progressive resizing is timed at both of
its step sizes, and its whole-run rate mixes them by their shares of the steps."""

from __future__ import annotations

import pytest

from hashsearch.presets import preset_config


@pytest.fixture(scope="module")
def train_speed(load_benchmark):
    return load_benchmark("train_speed")


def spied_rates(train_speed, monkeypatch, config) -> tuple[dict, list]:
    """`train_rates` with each timing replaced by a fixed rate per input size."""
    sizes = []

    def rate(config, steps):
        sizes.append(config.train.augment.low_res)
        return {None: 100.0, 24: 300.0}[config.train.augment.low_res]

    monkeypatch.setattr(train_speed, "train_rate", rate)
    return train_speed.train_rates(config, steps=1), sizes


def test_progressive_preset_gets_full_size_small_and_whole_run_rates(train_speed, monkeypatch):
    config = preset_config("fast", {"train.augment.low_res_until": 0.5})
    rates, sizes = spied_rates(train_speed, monkeypatch, config)
    assert sizes == [None, 24]
    # half the steps at 300 images/s, half at 100: 1 / (0.5/300 + 0.5/100) = 150
    assert rates == {
        "train_images_per_s": 100,
        "low_res_train_images_per_s": 300,
        "run_train_images_per_s": 150,
    }


def test_full_size_preset_gets_one_rate(train_speed, monkeypatch):
    rates, sizes = spied_rates(train_speed, monkeypatch, preset_config("full"))
    assert sizes == [None] and rates == {"train_images_per_s": 100}


def test_step_times_are_each_first_full_size_step_in_order(train_speed, monkeypatch):
    sizes = []
    step = train_speed.Trainer.train_step

    def spied(self, method, *args):
        sizes.append(self.config.augment.input_size(method.progress))
        return step(self, method, *args)

    monkeypatch.setattr(train_speed.Trainer, "train_step", spied)
    config = preset_config("fast", {"backbone.widths": (8, 16, 16), "train.batch_size": 8})
    seconds = train_speed.step_seconds(config, 3)
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
    assert sizes == [None, None, None]  # full size although the preset starts at 24x24
