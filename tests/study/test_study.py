"""The study: its grid, and `hashsearch bench` end to end on digits (train, resume, outputs)."""

import json
import sys

import pytest

from hashsearch.cli import expand_list_options, main
from hashsearch.errors import HashsearchError
from hashsearch.study import study_cells

REQUIRED = {
    "method",
    "bits",
    "protocol",
    "rerank",
    "seed",
    "map_all",
    "map_1000",
    "precision_at_100",
    "train_seconds",
    "commit",
    "config",
    "candidate_recall",
}


def test_grid_runs_every_seed_only_at_the_seed_bits_and_deep_cells_first():
    cells = study_cells(["lsh", "dsh"], [16, 48], [0, 1, 2])
    names = [c.name for c in cells]
    assert names[:4] == ["dsh-16b-seed0", "dsh-48b-seed0", "dsh-48b-seed1", "dsh-48b-seed2"]
    # lsh hashes the SAEH run's features, so those runs join the grid, before lsh
    assert "saeh-48b-seed2" in names and names.index("saeh-48b-seed2") < names.index(
        "lsh-16b-seed0"
    )
    assert len(names) == 12


def test_pixels_need_no_feature_source_and_unknown_names_fail():
    assert [c.name for c in study_cells(["itq-pixels"], [16], [0])] == ["itq-pixels-16b-seed0"]
    with pytest.raises(HashsearchError, match="unknown contestant 'nope'"):
        study_cells(["nope"], [16], [0])


def test_list_options_take_space_separated_values():
    argv = ["bench", "--bits", "16", "32", "--out", "x", "--methods", "saeh", "dsh"]
    assert expand_list_options(argv) == [
        "bench",
        "--bits",
        "16",
        "--bits",
        "32",
        "--out",
        "x",
        "--methods",
        "saeh",
        "--methods",
        "dsh",
    ]


def bench(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["hashsearch", "bench", *map(str, args)])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return capsys.readouterr()


def test_bench_end_to_end_writes_results_and_resumes(tmp_path, monkeypatch, capsys, caplog):
    args = (
        "--preset",
        "tiny",
        "--bits",
        "16",
        "--seed-bits",
        "16",
        "--seeds",
        "0",
        "1",
        "--methods",
        "saeh",
        "lsh",
        "itq-pixels",
        "--rerank",
        "none",
        "cosine",
        "qe",
        "--candidates",
        "50",
        "--out",
        tmp_path,
    )
    bench(monkeypatch, capsys, *args)
    records = json.loads((tmp_path / "results.json").read_text())
    assert len(records) == 3 * 2 * 3  # methods x seeds x refinements
    assert [REQUIRED - set(r) for r in records if not REQUIRED <= set(r)] == []
    assert {r["method"] for r in records} == {"saeh", "lsh", "itq-pixels"}
    assert {(r["rerank"], r["seed"]) for r in records} == {
        (r, s) for r in ("none", "cosine", "qe") for s in (0, 1)
    }
    assert all(0.0 < r["map_all"] <= 1.0 and r["protocol"] == "holdout" for r in records)
    saeh = [r for r in records if r["method"] == "saeh" and r["rerank"] == "none"]
    assert saeh[0]["map_all"] > 0.5  # digits: far above chance (about 0.1)
    table = (tmp_path / "results.md").read_text()
    assert "## mAP@all" in table and "16 bits qe" in table and " ± " in table
    assert len(list(tmp_path.glob("*.png"))) == 4

    model = tmp_path / "runs" / "saeh-16b-seed0" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    with caplog.at_level("INFO"):
        bench(monkeypatch, capsys, *args)
    assert model.stat().st_mtime_ns == stamp  # nothing retrained
    assert caplog.text.count("(saved)") == 6
    assert json.loads((tmp_path / "results.json").read_text()) == records


def test_learning_rates_are_chosen_on_validation_and_used_by_the_grid(tmp_path):
    from hashsearch.study import study_from_names
    from hashsearch.study.plan import Cell
    from hashsearch.study.tuning import tune_learning_rates

    study = study_from_names("tiny", tmp_path, None, None)
    choices = tune_learning_rates(study, ["saeh", "lsh"], [0.002, 0.05], bits=16, seed=0)
    assert set(choices) == {"saeh"}  # shallow methods have no learning rate
    scores = choices["saeh"]["val_map_all"]
    assert set(scores) == {"0.002", "0.05"}
    assert choices["saeh"]["lr"] == float(max(scores, key=scores.get))
    saved = json.loads((tmp_path / "tuning" / "choices.json").read_text())
    assert saved == choices
    study.learning_rates = {"saeh": choices["saeh"]["lr"]}
    assert study.run_config(Cell("saeh", 16, 0)).train.lr == choices["saeh"]["lr"]


def test_a_learning_rate_that_diverges_is_never_chosen(tmp_path, monkeypatch):
    from hashsearch import api
    from hashsearch.errors import TrainingDiverged
    from hashsearch.study import study_from_names
    from hashsearch.study.tuning import tune_learning_rates

    real_train = api.train

    def train(config, out, progress=True):
        if config.train.lr == 0.05:
            raise TrainingDiverged("training diverged: loss cls is not finite at step 3")
        return real_train(config, out, progress)

    monkeypatch.setattr(api, "train", train)
    study = study_from_names("tiny", tmp_path, None, None)
    choices = tune_learning_rates(study, ["saeh"], [0.05, 0.002], bits=16, seed=0)
    assert choices["saeh"]["lr"] == 0.002 and choices["saeh"]["val_map_all"]["0.05"] is None
    with pytest.raises(TrainingDiverged, match="every learning rate"):
        tune_learning_rates(study, ["saeh"], [0.05], bits=16, seed=0)


def test_a_cell_trained_before_tuning_keeps_its_run_and_the_tuned_rate_trains_beside_it(
    tmp_path,
):
    from hashsearch.study import study_from_names
    from hashsearch.study.plan import Cell
    from hashsearch.study.tuning import tune_learning_rates

    study = study_from_names("tiny", tmp_path, None, None)
    cell = Cell("saeh", 16, 0)
    first = study.run_cell(cell)  # the preset's shared learning rate
    shared_lr = study.run_config(cell).train.lr
    other = 0.002 if shared_lr != 0.002 else 0.01
    choices = tune_learning_rates(study, ["saeh"], [shared_lr, other], bits=16, seed=0)
    assert (tmp_path / "tuning" / f"{cell.name}-lr{other:g}" / "model.safetensors").is_file()
    assert not (tmp_path / "tuning" / f"{cell.name}-lr{shared_lr:g}").exists()  # reused
    study.learning_rates = {"saeh": other}
    again = study.run_cell(cell)  # the grid at the other rate: no clash with the old run
    assert again[0]["config"]["train"]["lr"] == other
    assert first[0]["config"]["train"]["lr"] == shared_lr
    assert set(choices["saeh"]["val_map_all"]) == {f"{shared_lr:g}", f"{other:g}"}


def test_a_stale_run_of_another_config_is_an_error_not_passed_over(tmp_path):
    from hashsearch.config import with_overrides
    from hashsearch.errors import HashsearchError
    from hashsearch.study import study_from_names
    from hashsearch.study.plan import Cell

    study = study_from_names("tiny", tmp_path, None, None)
    cell = Cell("saeh", 16, 0)
    study.run_cell(cell)
    changed = with_overrides(study.run_config(cell), {"train.epochs": 5})
    with pytest.raises(HashsearchError, match="another config"):
        study.finished(cell, changed)


def test_bench_corruptions_scores_every_method_under_every_corruption(
    tmp_path, monkeypatch, capsys
):
    args = ["--preset", "tiny", "--bits", "16", "--seed-bits", "16", "--seeds", "0"]
    args += ["--methods", "saeh", "itq-pixels", "--rerank", "none", "cosine"]
    bench(monkeypatch, capsys, *args, "--candidates", "50", "--out", tmp_path, "--corruptions")
    records = json.loads((tmp_path / "robustness.json").read_text())
    assert len(records) == 2 * (1 + 7 * 3) * 2  # methods x (clean + 7 x 3) x stages
    study = json.loads((tmp_path / "results.json").read_text())
    for r in (r for r in records if r["corruption"] == "clean"):  # the study's own figure
        rerank = "none" if r["stage"] == "stage1" else "cosine"
        same = [s for s in study if s["method"] == r["method"] and s["rerank"] == rerank]
        assert same[0]["map_all"] == pytest.approx(r["map_all"])
    noisy = {
        (r["method"], r["stage"]): r["map_all"]
        for r in records
        if r["corruption"] == "gaussian_noise" and r["severity"] == 3
    }
    clean = {(r["method"], r["stage"]): r["map_all"] for r in records if r["severity"] == 0}
    assert all(noisy[key] != clean[key] for key in clean)
    table = (tmp_path / "robustness.md").read_text()
    assert "| saeh |" in table and "severity-3 mean / clean" in table
    assert (tmp_path / "robustness.png").stat().st_size > 1000
    saved = (tmp_path / "runs" / "saeh-16b-seed0" / "robustness.json").stat().st_mtime_ns
    bench(monkeypatch, capsys, *args, "--candidates", "50", "--out", tmp_path, "--corruptions")
    assert (tmp_path / "runs" / "saeh-16b-seed0" / "robustness.json").stat().st_mtime_ns == saved
