"""Every preset is a valid configuration that builds its method."""

from pathlib import Path

import pytest

from hashsearch.methods import create_method
from hashsearch.presets import PRESETS, default_preset, preset_config
from hashsearch.study import Cell, study_from_names
from hashsearch.study.plan import STUDY_PRESETS


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


def changed_settings(old_name: str, new_name: str) -> tuple[set, dict, dict]:
    """The (section, key) pairs in which preset `new_name` differs from `old_name`,
    and the two presets' method parameters."""
    old, new = (preset_config(name).model_dump() for name in (old_name, new_name))
    changed = {
        (section, key)
        for section in old
        if isinstance(old[section], dict)
        for key in old[section]
        if old[section][key] != new[section][key]
    }
    return changed, old["method"]["params"], new["method"]["params"]


LATER_ROUNDS_PARAMS = {"lambda_feature_cls": 1.0}
# `fast`'s loss since round 11 (the pairwise weight chosen on the 5,000-image selection
# split), `full`'s since round 13.
CENTRES_AND_WEAK_PAIRS_PARAMS = {"lambda_centre": 1.0, "centre_layout": "blocks", "lambda_sim": 0.1}


def test_fast_is_round_2s_recipe_with_later_rounds_changes_and_the_study_keeps_round_2():
    """The published figures of the method study and of fast-robust were measured on
    round 2's `fast`; they must keep reproducing now that `fast` has moved on."""
    changed, old_params, new_params = changed_settings("fast-round2", "fast")
    assert changed == {
        ("backbone", "whiten_eps"),
        ("method", "params"),
        ("train", "stem_epochs"),
        ("train", "epochs"),
        ("encode", "query_shifts"),  # round 12, +0.0055 validation mAP over three seeds
        ("train", "optimizer"),  # round 15: Muon for the filters, +0.0074 (three seeds)
        ("train", "augment"),  # round 19: progressive resizing, +0.0056 (three seeds)
    }
    fast_augment = preset_config("fast").train.augment
    assert (fast_augment.low_res, fast_augment.low_res_until) == (24, 0.5)
    assert fast_augment.flip == "alternating"  # round 23: +0.0041 validation (three seeds)
    assert preset_config("fast").train.epochs == 19
    assert preset_config("full").train.augment.low_res is None
    assert preset_config("fast").train.muon_lr == 0.1  # chosen over 0.2 on validation
    assert preset_config("fast").encode.query_shifts == ((1, 1), (-1, -1))
    assert preset_config("full").encode.query_shifts == preset_config("fast").encode.query_shifts
    assert new_params == {**old_params, **LATER_ROUNDS_PARAMS, **CENTRES_AND_WEAK_PAIRS_PARAMS}
    assert {STUDY_PRESETS.get(name).base for name in ("budget", "full")} == {"fast-round2"}
    robust = preset_config("fast-robust")
    assert robust.train.stem_epochs is None and robust.train.epochs == 14
    assert "centre_layout" not in robust.method.params  # CSQ's centres, as measured


def test_full_is_round_2s_recipe_with_later_rounds_changes_and_full_robust_keeps_round_2():
    """docs/robustness.md measured `full-robust` on round 2's `full`; `full` moving on
    (round 13: `fast`'s loss, no decoder, 18 epochs; round 16: Muon) must not move it."""
    changed, old_params, new_params = changed_settings("full-round2", "full")
    assert changed == {
        ("backbone", "whiten_eps"),
        ("method", "params"),
        ("train", "stem_epochs"),
        ("train", "epochs"),
        ("train", "optimizer"),  # round 16: Muon for the filters, as `fast` (three seeds)
        ("encode", "query_shifts"),  # round 16: +0.0019 validation mAP on the Muon runs
        ("train", "augment"),  # round 24: alternating flips (5,000-image selection split)
    }
    assert preset_config("full").train.muon_lr == preset_config("fast").train.muon_lr == 0.1
    without_decoder = {"lambda_rec": 0.0}
    assert new_params == {
        **old_params,
        **LATER_ROUNDS_PARAMS,
        **CENTRES_AND_WEAK_PAIRS_PARAMS,
        **without_decoder,
    }
    assert preset_config("full").train.epochs == 18
    full_augment = preset_config("full").train.augment
    assert full_augment == preset_config("full-round2").train.augment.model_copy(
        update={"flip": "alternating"}
    )
    robust = preset_config("full-robust")
    assert robust.train.stem_epochs is None
    assert "lambda_centre" not in robust.method.params
    assert robust.backbone.widths == (64, 256, 256) and robust.train.epochs == 15
