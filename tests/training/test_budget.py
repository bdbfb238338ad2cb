"""`train.budget_seconds`: the plan's arithmetic, and a budgeted run is the run of its epochs."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hashsearch import api
from hashsearch.config import with_overrides
from hashsearch.encoding import Encoded
from hashsearch.errors import HashsearchError
from hashsearch.presets import preset_config
from hashsearch.training import budget
from hashsearch.training.budget import RunCosts, epochs_within, run_seconds
from hashsearch.training.trainer import TrainingData

COSTS = RunCosts(full_step=1.0, low_res_step=0.5, validation=10.0, probe=5.0)


def tiny(epochs: int, **changes):
    return preset_config(
        "digits",
        {
            "train.epochs": epochs,
            "train.eval_every": 1,
            "method.bits": 16,
            "backbone.widths": (8, 16),
            "backbone.blocks": (1, 1),
            **changes,
        },
    )


def test_run_seconds_counts_probe_steps_at_their_sizes_and_every_validation():
    # 4 epochs of 10 steps, half of them at half the cost; validations after epochs 2 and 4
    assert run_seconds(4, COSTS, 10, 0.5, 2) == 5 + 40 * 0.75 + 2 * 10
    # 3 epochs validate after epochs 2 and 3
    assert run_seconds(3, COSTS, 10, 0.5, 2) == 5 + 30 * 0.75 + 2 * 10
    assert run_seconds(3, COSTS, 10, 0.0, 1) == 5 + 30 + 3 * 10


@pytest.mark.parametrize(
    ("budget", "expected"), [(55.0, 4), (54.9, 3), (1e9, 6), (47.5, 3), (47.4, 2), (5.0, 0)]
)
def test_epochs_within_is_the_most_that_fit_up_to_the_configured_epochs(budget, expected):
    assert epochs_within(budget, COSTS, 10, 0.5, 2, max_epochs=6) == expected


def test_a_budget_that_fits_everything_trains_the_very_run_of_its_epochs(tmp_path):
    """The probe works on a copy, with its own optimiser, weight average and generator,
    under a forked random state: with every random and stateful part of the recipe on
    (alternating flips, corruption with consistency copies, the weight average, Muon,
    the stem frozen after an epoch, progressive resizing), the budgeted run's weights
    are those of the same config without a budget."""
    config = tiny(
        3,
        **{
            "backbone.name": "whitened",
            "train.augment.low_res": 6,
            "train.augment.flip": "alternating",
            "train.augment.corrupt": 0.5,
            "train.augment.consistency": 0.5,
            "train.ema": 0.75,
            "train.optimizer": "muon",
            "train.stem_epochs": 1,
        },
    )
    plain = api.train(config, tmp_path / "plain", progress=False)
    budgeted = api.train(
        with_overrides(config, {"train.budget_seconds": 1e6}), tmp_path / "budget", progress=False
    )
    a, b = plain.model.state_dict(), budgeted.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plan = json.loads((tmp_path / "budget" / "metrics.json").read_text())["budget_plan"]
    assert plan["epochs"] == 3 and plan["budget_seconds"] == 1e6
    assert plan["full_step"] > 0 and plan["low_res_step"] > 0 and plan["validation"] > 0
    assert plan["estimated_seconds"] > plan["probe"] > 0
    assert "budget_plan" not in json.loads((tmp_path / "plain" / "metrics.json").read_text())


def test_a_tight_budget_trains_fewer_epochs_on_their_own_schedule(tmp_path, monkeypatch):
    """A budget that fits 2 of 4 epochs gives the 2-epoch run (its one-cycle schedule
    ends at the second epoch), not the first half of the 4-epoch one."""
    config = tiny(4)
    costs = RunCosts(full_step=0.0, low_res_step=0.0, validation=1.0, probe=0.0)  # 1 s an epoch
    monkeypatch.setattr(budget, "probe_costs", lambda *args: costs)
    budgeted = with_overrides(config, {"train.budget_seconds": 2.5})
    run = api.train(budgeted, tmp_path / "budget", progress=False)
    two = api.train(with_overrides(config, {"train.epochs": 2}), tmp_path / "two", progress=False)
    metrics = json.loads((tmp_path / "budget" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2]
    assert metrics["budget_plan"]["epochs"] == 2
    assert metrics["budget_plan"]["estimated_seconds"] == 2.0
    a, b = run.model.state_dict(), two.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_budget_too_small_for_one_epoch_is_a_one_line_error(tmp_path):
    config = with_overrides(tiny(2), {"train.budget_seconds": 1e-3})
    with pytest.raises(HashsearchError, match=r"budget_seconds 0.001 fits no epoch here \(a one-"):
        api.train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_validation_estimate_scales_a_sample_to_the_splits(monkeypatch):
    """Each validation query is encoded as a query and again for accuracy, each training
    item once, and the search grows with queries x items: a sample of each split is
    timed (after a warm-up encoding) and scaled to the splits' sizes."""
    now = [0.0]

    def encode(model, images, labels, device, as_queries):
        now[0] += (3.0 if as_queries else 1.0) * len(images)  # seconds per image
        return Encoded(np.zeros((len(images), 2), np.uint8), np.zeros((len(images), 4)), labels)

    def search(queries, base, bits, rerank):
        now[0] += 0.01 * len(queries.codes) * len(base.codes)  # seconds per pair

    monkeypatch.setattr(budget, "encode_images", encode)
    monkeypatch.setattr(budget, "evaluate_retrieval", search)
    monkeypatch.setattr(budget, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    images = np.zeros((1000, 8, 8, 3), np.uint8)
    labels = np.zeros(1000, np.int64)
    data = TrainingData(images, labels, images[:100], labels[:100], images, labels, 10)
    model = SimpleNamespace(bits=16)
    seconds = budget._validation_seconds(model, data, "cpu", processes=1)
    assert seconds == pytest.approx(100 * (3 + 1) + 1000 * 1 + 0.01 * 100 * 1000)
    sample = budget.VALIDATION_SAMPLE
    assert now[0] == pytest.approx(2 * (100 * 3 + sample * 1) + 0.01 * 100 * sample)


def test_a_step_costs_the_median_of_its_timed_calls_after_the_warm_ups(monkeypatch):
    now, calls = [0.0], []
    durations = iter([9.0, 7.0, 1.0, 5.0, 2.0, 1.5, 1.2])  # two warm-ups, then five timed

    def step():
        calls.append(1)
        now[0] += next(durations)

    monkeypatch.setattr(budget, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    assert budget._median_seconds(step, warm_ups=2, repeats=5) == 1.5
    assert len(calls) == 7
