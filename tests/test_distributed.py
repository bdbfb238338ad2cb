"""Sharded encoding under torchrun (2 processes, gloo) equals one process's encoding."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hashsearch import api
from hashsearch.config import RunConfig
from hashsearch.index import HashIndex
from hashsearch.presets import preset_config


def tiny_digits(epochs: int) -> RunConfig:
    """A small digits model, as the torchrun commands below train it."""
    overrides = {"train.epochs": epochs, "method.bits": 24}
    return preset_config(
        "digits", {**overrides, "backbone.widths": (8, 16), "backbone.blocks": (1, 1)}
    )


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    return api.train(tiny_digits(2), tmp_path_factory.mktemp("run") / "run", progress=False)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """`hashsearch ARGS` in 2 processes of one gloo group, as a user would launch it."""
    bin_dir = os.path.dirname(sys.executable)
    command = [os.path.join(bin_dir, "torchrun"), "--standalone", "--nproc-per-node", "2"]
    return subprocess.run(
        [*command, "--", os.path.join(bin_dir, "hashsearch"), *args],  # "--": ours, not its
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_torchrun_encode_equals_one_process(digits_run, tmp_path):
    done = torchrun("encode", "--run", str(digits_run.directory), "--out", str(tmp_path / "q.npz"))
    assert done.returncode == 0, done.stderr[-2000:]
    sharded = np.load(tmp_path / "q.npz")
    single, ids = api.encode_split(digits_run, "database")
    assert sharded["ids"].tolist() == ids
    assert np.array_equal(sharded["codes"], single.codes)
    assert np.allclose(sharded["features"], single.features, atol=1e-5)


def test_torchrun_index_equals_the_single_process_index(digits_run, tmp_path):
    args = ["--run", str(digits_run.directory), "--features", "float32"]
    done = torchrun("index", *args, "--out", str(tmp_path / "sharded"))
    assert done.returncode == 0, done.stderr[-2000:]
    api.build_index(digits_run, tmp_path / "single", features="float32")
    sharded, single = HashIndex.load(tmp_path / "sharded"), HashIndex.load(tmp_path / "single")
    assert sharded.ids == single.ids and np.array_equal(sharded.codes(), single.codes())
    assert np.allclose(sharded.features(), single.features(), atol=1e-5)


def test_under_torchrun_cuda_means_the_local_rank_gpu(monkeypatch):
    from hashsearch.distributed import process_device

    assert process_device("cuda") == "cuda" and process_device("cpu") == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_device("cuda") == "cuda:1" and process_device("cuda:0") == "cuda:0"
    assert process_device("cpu") == "cpu"


def test_torchrun_trains_data_parallel_in_step(tmp_path):
    """2 processes train one model: the run is written once and matches one process's quality."""
    options = [
        "--preset", "digits", "--epochs", "3", "--bits", "24", "--no-progress",
        "--set", "backbone.widths=[8, 16]", "--set", "backbone.blocks=[1, 1]",
        "--budget-minutes", "600",  # every process takes the first one's plan
    ]  # fmt: skip
    done = torchrun("train", *options, "--out", str(tmp_path / "parallel"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("trained saeh") == 1  # rank 0 reports and writes
    assert "3 of 3 epochs fitted the budget" in done.stderr
    parallel = api.load_run(tmp_path / "parallel")
    assert parallel.meta["processes"] == 2
    single = api.train(tiny_digits(3), tmp_path / "single", progress=False)
    maps = [api.evaluate(run)["two_stage"]["map_all"] for run in (parallel, single)]
    assert maps[0] > 0.5 and abs(maps[0] - maps[1]) < 0.1, maps
