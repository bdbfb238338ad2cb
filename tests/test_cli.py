"""The real pipeline end to end through the CLI on real CIFAR-10 images, and its error paths."""

from __future__ import annotations

import importlib.util
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hashsearch import api
from hashsearch.cli import main
from hashsearch.contact_sheet import CAPTION, CELL, GAP, PAD, fit_cell
from hashsearch.data.decode import decode_image
from hashsearch.encoding import Encoded
from hashsearch.evaluation import evaluate_retrieval
from hashsearch.index import HashIndex
from hashsearch.index.store import current_version
from hashsearch.run import load_run, save_run

TINY = [
    "--set",
    "backbone.widths=[8, 16]",
    "--set",
    "backbone.blocks=[1, 1]",
    "--set",
    "train.batch_size=32",
    "--set",
    "data.val_per_class=2",
    "--set",
    "train.val_retrieval_size=100",
]


def run_cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["hashsearch", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def query_images(cifar10_slice, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("queries")
    with tarfile.open(cifar10_slice) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("test/")][:2]
        archive.extractall(folder, members=members, filter="data")
    return [folder / m.name for m in members]


@pytest.fixture(scope="module")
def trained_run(cifar10_slice, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(
        sys,
        "argv",
        [
            "hashsearch",
            "train",
            "--dataset",
            "cifar10",
            "--data",
            str(cifar10_slice),
            "--protocol",
            "cifar10-2",
            "--method",
            "saeh",
            "--bits",
            "16",
            "--epochs",
            "2",
            "--seed",
            "3",
            "--param",
            "lambda_rec=0.1",  # the fast preset drops SAEH's decoder; test it end to end
            "--out",
            str(run),
            "--no-progress",
            *TINY,
        ],
    )
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, exc.code
    finally:
        mp.undo()
    return run


def test_train_writes_a_complete_run(trained_run):
    assert {p.name for p in trained_run.iterdir()} >= {
        "config.yaml",
        "run.json",
        "model.safetensors",
        "metrics.json",
    }
    meta = json.loads((trained_run / "run.json").read_text())
    assert meta["splits"] == {"train": 220, "val": 20, "query": 60, "database": 240}
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2]
    assert {"loss_cls", "loss_sim", "loss_rec", "val_map_all"} <= set(metrics["history"][-1])


def test_train_within_a_budget_reports_and_keeps_its_plan(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    code, _, stderr = run_cli(
        capsys, monkeypatch, "train", "--preset", "digits", "--epochs", "2",
        "--budget-minutes", "600", "--bits", "16", "--out", out, "--no-progress",
        "--set", "backbone.widths=[8, 16]", "--set", "backbone.blocks=[1, 1]",
    )  # fmt: skip
    assert code == 0
    assert "2 of 2 epochs fitted the budget" in stderr
    plan = json.loads((out / "metrics.json").read_text())["budget_plan"]
    assert plan["budget_seconds"] == 600 * 60 and plan["epochs"] == 2


def test_encode_index_search_evaluate(trained_run, query_images, tmp_path, capsys, monkeypatch):
    for split in ("query", "database"):
        code, _, err = run_cli(
            capsys,
            monkeypatch,
            "encode",
            "--run",
            trained_run,
            "--split",
            split,
            "--out",
            tmp_path / f"{split}.npz",
        )
        assert code == 0, err
    q, db = np.load(tmp_path / "query.npz"), np.load(tmp_path / "database.npz")
    assert q["codes"].dtype == np.uint8 and q["codes"].shape == (60, 2)
    # The fast preset averages queries over shifted views; --items encodes them as stored.
    code, _, err = run_cli(
        capsys, monkeypatch, "encode", "--run", trained_run, "--split", "query", "--items",
        "--out", tmp_path / "query-items.npz",
    )  # fmt: skip
    assert code == 0, err
    as_items = np.load(tmp_path / "query-items.npz")["features"]
    assert as_items.shape == q["features"].shape
    assert not np.allclose(as_items, q["features"], atol=1e-3)
    assert db["features"].dtype == np.float32 and db["features"].shape == (240, 16)
    assert db["labels"].shape == (240,) and len(db["ids"]) == 240

    code, out, err = run_cli(
        capsys, monkeypatch, "evaluate", "--run", trained_run, "--json", "--out", tmp_path / "eval"
    )
    assert code == 0, err
    report = json.loads(out)
    for stage in ("stage1", "two_stage"):
        assert {"map_all", "map_1000", "precision_at_100"} <= set(report[stage])
    assert (tmp_path / "eval" / "pr_curve.png").stat().st_size > 1000
    # The report is reproducible from the exported codes by any outside tool.
    again = evaluate_retrieval(
        Encoded(q["codes"], q["features"], q["labels"]),
        Encoded(db["codes"], db["features"], db["labels"]),
        bits=16,
    )
    assert again["stage1"]["map_all"] == pytest.approx(report["stage1"]["map_all"])
    assert again["two_stage"]["map_all"] == pytest.approx(report["two_stage"]["map_all"])

    code, _, err = run_cli(
        capsys, monkeypatch, "index", "--run", trained_run, "--out", tmp_path / "index"
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys,
        monkeypatch,
        "search",
        "--index",
        tmp_path / "index",
        *query_images,
        "--top",
        "5",
        "--candidates",
        "20",
        "--json",
    )
    assert code == 0, err
    found = json.loads(out)
    assert [r["query"] for r in found] == [str(p) for p in query_images]
    first = found[0]["results"]
    assert len(first) == 5 and {"id", "label", "hamming", "score"} <= set(first[0])
    assert all(a["score"] >= b["score"] for a, b in zip(first, first[1:], strict=False))
    assert first[0]["id"].startswith("train/")
    code, out, _ = run_cli(
        capsys,
        monkeypatch,
        "search",
        "--index",
        tmp_path / "index",
        query_images[0],
        "--rerank",
        "none",
        "--radius",
        "3",
    )
    assert code == 0 and "hamming" in out and "cosine" not in out


def one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_inputs_give_one_line_errors(trained_run, query_images, tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        "train",
        "--dataset",
        "cifar10",
        "--data",
        tmp_path / "nowhere",
        "--out",
        tmp_path / "r",
        "--no-progress",
    )
    one_line_error(code, err, "nowhere")
    code, _, err = run_cli(capsys, monkeypatch, "train", "--bits", "300", "--out", tmp_path / "r")
    one_line_error(code, err, "bits", "300")
    code, _, err = run_cli(
        capsys, monkeypatch, "train", "--method", "nope", "--out", tmp_path / "r"
    )
    one_line_error(code, err, "nope", "saeh")
    code, _, err = run_cli(capsys, monkeypatch, "evaluate", "--run", tmp_path / "missing")
    one_line_error(code, err, "missing")

    run_cli(capsys, monkeypatch, "index", "--run", trained_run, "--out", tmp_path / "ix")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"definitely not a jpeg")
    code, _, err = run_cli(capsys, monkeypatch, "search", "--index", tmp_path / "ix", corrupt)
    one_line_error(code, err, "corrupt.jpg")
    with open(current_version(tmp_path / "ix") / "codes.npy", "r+b") as f:
        f.seek(-3, 2)
        f.write(b"\x00\x01\x02")
    code, _, err = run_cli(
        capsys, monkeypatch, "search", "--index", tmp_path / "ix", query_images[0]
    )
    one_line_error(code, err, "codes.npy", "damaged")


def test_more_bad_inputs(trained_run, query_images, tmp_path, capsys, monkeypatch):
    run_cli(capsys, monkeypatch, "index", "--run", trained_run, "--out", tmp_path / "ix")
    search = ("search", "--index", tmp_path / "ix")
    code, _, err = run_cli(capsys, monkeypatch, *search, tmp_path / "absent.jpg")
    one_line_error(code, err, "absent.jpg", "does not exist")
    code, _, err = run_cli(capsys, monkeypatch, *search, query_images[0], "--top", "0")
    one_line_error(code, err, "--top")
    code, _, err = run_cli(capsys, monkeypatch, *search, query_images[0], "--candidates", "-5")
    one_line_error(code, err, "--candidates")
    code, _, err = run_cli(capsys, monkeypatch, "evaluate", "--run", trained_run, "--radius", "-1")
    one_line_error(code, err, "--radius")

    bare = HashIndex.load(tmp_path / "ix")
    bare.model_dir = None  # saved again, a loaded index keeps its model; this one drops it
    bare.save(tmp_path / "bare")
    code, _, err = run_cli(
        capsys, monkeypatch, "search", "--index", tmp_path / "bare", query_images[0]
    )
    one_line_error(code, err, "holds no model")

    out = ("--out", tmp_path / "r", "--no-progress")
    code, _, err = run_cli(capsys, monkeypatch, "train", "--set", "method.bits=300", *out)
    one_line_error(code, err, "bits", "300")
    code, _, err = run_cli(capsys, monkeypatch, "train", "--set", "seed.x=1", *out)
    one_line_error(code, err, "seed.x")
    code, _, err = run_cli(capsys, monkeypatch, "train", "--device", "tpu9", *out)
    one_line_error(code, err, "tpu9")
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        "train",
        "--preset",
        "digits",
        "--config",
        trained_run / "config.yaml",
        *out,
    )
    one_line_error(code, err, "--config or --preset")
    code, _, err = run_cli(capsys, monkeypatch, "demo", "--dataset", "imagenet")
    one_line_error(code, err, "imagenet")
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        "encode",
        "--run",
        trained_run,
        "--split",
        "query",
        "--out",
        tmp_path / "new" / "q",
        "--device",
        "cpu",
    )
    assert code == 0 and (tmp_path / "new" / "q.npz").is_file(), err


def test_index_add_and_remove_keep_the_index_searchable(
    trained_run, query_images, tmp_path, capsys, monkeypatch
):
    ix = tmp_path / "ix"
    code, _, err = run_cli(
        capsys, monkeypatch, "index", "--run", trained_run, "--out", ix, "--features", "int8"
    )
    assert code == 0 and "SQ8" in err
    before = HashIndex.load(ix)
    assert before.codec.name == "SQ8"
    code, _, err = run_cli(
        capsys, monkeypatch, "index-add", "--index", ix, "--label", "1", *query_images
    )
    assert code == 0, err
    added = HashIndex.load(ix)
    assert len(added) == len(before) + 2 and added.ids[-2:] == [str(p) for p in query_images]
    assert added.labels[-1] == 1 and added.model_dir is not None
    search = ("search", "--index", ix, query_images[0], "--candidates", "100000", "--json")
    code, out, _ = run_cli(capsys, monkeypatch, *search)  # every item re-ranked: itself first
    assert code == 0 and json.loads(out)[0]["results"][0]["id"] == str(query_images[0])
    code, _, err = run_cli(capsys, monkeypatch, "index-remove", "--index", ix, str(query_images[0]))
    assert code == 0 and len(HashIndex.load(ix)) == len(before) + 1
    code, _, err = run_cli(capsys, monkeypatch, "index-remove", "--index", ix, "no-such-id")
    one_line_error(code, err, "no-such-id", "nothing removed")
    code, _, err = run_cli(
        capsys, monkeypatch, "index-add", "--index", ix, "--label", "99", query_images[1]
    )
    one_line_error(code, err, "label 99", "classes")
    assert len(HashIndex.load(ix)) == len(before) + 1  # failed commands changed nothing


def test_backends_answer_alike_and_queries_need_the_index_model(
    trained_run, query_images, tmp_path, capsys, monkeypatch
):
    """The same command against flat FAISS, Milvus (embedded milvus-lite) and IVF."""
    indexes = {
        "flat": (),
        "milvus": ("--backend", "milvus", "--milvus-uri", tmp_path / "milvus.db"),
        "ivf": ("--backend", "ivf"),
    }
    answers = {}
    for name, options in indexes.items():
        code, _, err = run_cli(
            capsys, monkeypatch, "index", "--run", trained_run, "--out", tmp_path / name, *options
        )
        assert code == 0 and f"{name} backend" in " ".join(err.split()), err
        code, out, err = run_cli(
            capsys, monkeypatch, "search", "--index", tmp_path / name, *query_images, "--json"
        )
        assert code == 0, err
        answers[name] = json.loads(out)
    assert answers["milvus"] == answers["flat"]
    assert len(answers["ivf"][0]["results"]) == 10

    search = ("search", "--index", tmp_path / "flat", *query_images, "--json")
    code, out, _ = run_cli(capsys, monkeypatch, *search, "--run", trained_run)
    assert code == 0 and json.loads(out) == answers["flat"]
    other = load_run(trained_run)
    with torch.no_grad():
        next(other.model.parameters()).add_(0.01)
    save_run(tmp_path / "other", other.config, other.model, other.meta, {})
    code, _, err = run_cli(capsys, monkeypatch, *search, "--run", tmp_path / "other")
    one_line_error(code, err, "not the model index", "was built with")


def test_search_writes_a_contact_sheet(
    trained_run, query_images, cifar10_slice, tmp_path, capsys, monkeypatch
):
    run_cli(capsys, monkeypatch, "index", "--run", trained_run, "--out", tmp_path / "ix")
    sheet = tmp_path / "sheet.png"
    code, out, err = run_cli(
        capsys, monkeypatch, "search", "--index", tmp_path / "ix", *query_images,
        "--top", "4", "--json", "--contact-sheet", sheet,
    )  # fmt: skip
    assert code == 0 and "contact sheet" in err, err
    image = np.asarray(Image.open(sheet))
    rows, columns = len(query_images), 1 + 4
    assert image.shape == (
        PAD + rows * (CELL + CAPTION + PAD),
        PAD + columns * (CELL + PAD) + GAP,
        3,
    )
    hit = json.loads(out)[1]["results"][0]  # the second row's best result is its image
    with tarfile.open(cifar10_slice) as archive:
        jpeg = archive.extractfile(hit["id"]).read()
    top, left = PAD + CELL + CAPTION + PAD, PAD + CELL + PAD + GAP
    np.testing.assert_array_equal(
        image[top : top + CELL, left : left + CELL],
        np.asarray(fit_cell(decode_image(jpeg, hit["id"]))),
    )


def test_evaluate_corruptions_scores_clean_as_evaluate_does(
    trained_run, tmp_path, capsys, monkeypatch
):
    options = ("--run", trained_run, "--candidates", "50", "--out", tmp_path)
    code, out, err = run_cli(capsys, monkeypatch, "evaluate", *options, "--json")
    assert code == 0, err
    report = json.loads(out)
    code, _, err = run_cli(capsys, monkeypatch, "evaluate", *options, "--corruptions")
    assert code == 0 and "severity 3 / clean" in err, err
    records = json.loads((tmp_path / "corruptions.json").read_text())
    assert len(records) == (1 + 7 * 3) * 2 and {r["queries"] for r in records} == {60}
    clean = {r["stage"]: r["map_all"] for r in records if r["corruption"] == "clean"}
    assert clean["stage1"] == pytest.approx(report["stage1"]["map_all"])
    assert clean["two_stage"] == pytest.approx(report["two_stage"]["map_all"])
    code, _, err = run_cli(
        capsys, monkeypatch, "evaluate", *options, "--corruptions", "--queries-per-class", "2"
    )
    assert code == 0 and {
        r["queries"] for r in json.loads((tmp_path / "corruptions.json").read_text())
    } == {20}


def test_evaluate_corruptions_on_the_validation_split_leaves_the_query_set_alone(
    trained_run, tmp_path, capsys, monkeypatch
):
    options = ("--run", trained_run, "--candidates", "50", "--out", tmp_path, "--corruptions")
    code, _, err = run_cli(capsys, monkeypatch, "evaluate", *options, "--split", "val")
    assert code == 0, err
    assert not (tmp_path / "corruptions.json").exists()  # the query split's records are others
    records = json.loads((tmp_path / "corruptions-val.json").read_text())
    splits = json.loads((trained_run / "run.json").read_text())["splits"]
    assert {r["split"] for r in records} == {"val"}
    assert {r["queries"] for r in records} == {splits["val"]}
    code, _, err = run_cli(capsys, monkeypatch, "evaluate", *options, "--split", "test")
    assert code != 0 and "unknown evaluation split 'test'" in err
    assert len(err.strip().splitlines()) == 1


def test_evaluate_on_the_validation_split_searches_the_training_images(
    trained_run, tmp_path, capsys, monkeypatch
):
    """Settings are chosen on this report; it must never touch the query set's files."""
    options = ("--run", trained_run, "--candidates", "50", "--out", tmp_path, "--json")
    code, out, err = run_cli(capsys, monkeypatch, "evaluate", *options, "--split", "val")
    assert code == 0, err
    assert not (tmp_path / "evaluation.json").exists()
    assert (tmp_path / "pr_curve-val.png").is_file()
    report = json.loads((tmp_path / "evaluation-val.json").read_text())
    splits = json.loads((trained_run / "run.json").read_text())["splits"]
    assert report["settings"]["split"] == "val"
    assert report["settings"]["num_database"] == splits["train"] != splits["database"]
    code, out, err = run_cli(capsys, monkeypatch, "evaluate", *options)
    query_report = json.loads((tmp_path / "evaluation.json").read_text())
    assert code == 0 and query_report["settings"]["num_database"] == splits["database"]
    assert query_report["stage1"]["map_all"] != report["stage1"]["map_all"]


def test_refinement_choice_picks_the_best_validation_setting(
    trained_run, tmp_path, capsys, monkeypatch
):
    """The benchmark's choice is the setting the validation split scores highest."""
    benchmarks = Path(__file__).parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(benchmarks)  # as `python benchmarks/...` would have it
    spec = importlib.util.spec_from_file_location(
        "refinement_choice", benchmarks / "refinement_choice.py"
    )
    choice_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(choice_script)
    out = tmp_path / "choice.json"
    # the same run twice counts once
    argv = ["refinement_choice.py", "--runs", str(trained_run), str(trained_run), "--candidates"]
    argv += ["5", "50"]
    monkeypatch.setattr(sys, "argv", [*argv, "--rerank", "cosine", "bucket", "--out", str(out)])
    choice_script.main()
    found = json.loads(out.read_text())
    assert len(found["records"]) == 4
    assert {(r["rerank"], r["candidates"]) for r in found["records"]} == {
        ("cosine", 5),
        ("cosine", 50),
        ("bucket", 5),
        ("bucket", 50),
    }
    run = load_run(trained_run)
    for record in found["records"]:
        report = api.evaluate(run, record["candidates"], rerank=record["rerank"], split="val")
        assert record["two_stage_map_all"] == pytest.approx(report["two_stage"]["map_all"])
    best = max(found["records"], key=lambda r: r["two_stage_map_all"])
    assert found["choice"]["mean_val_map_all"] == best["two_stage_map_all"]
    assert (found["choice"]["rerank"], found["choice"]["candidates"]) == (
        best["rerank"],
        best["candidates"],
    )
    assert "chosen on validation" in capsys.readouterr().out
    for bad in (["--rerank", "none"], ["--candidates", "0"]):  # refused before any encoding
        monkeypatch.setattr(sys, "argv", [*argv, *bad])
        with pytest.raises(SystemExit):
            choice_script.main()
        assert bad[1] in capsys.readouterr().err
