"""Queries answered in batches: each as if alone, bad uploads refused one by one, and the
load benchmark against a real multi-process server."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from pathlib import Path

import faiss
import httpx
import pytest
from server_helpers import assert_same_answer, outcome

from hashsearch import api
from hashsearch.cli import main
from hashsearch.server.engine import Query, Searcher, SearchParams
from hashsearch.server.harness import ServerProcess
from hashsearch.server.uploads import DEFAULT_MAX_PIXELS, UploadError

PARAMS = [SearchParams(), SearchParams(top=3, candidates=20, rerank="none"), SearchParams(radius=4)]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_batch_answers_each_query_as_if_it_came_alone(served_index, query_files, precision):
    searcher = Searcher(served_index, DEFAULT_MAX_PIXELS)
    searcher.run.model.encoder.precision = precision  # bf16 kernels differ by batch size
    batch = [
        Query(path.read_bytes(), path.name, PARAMS[i % 3]) for i, path in enumerate(query_files[:9])
    ]
    batch.insert(4, Query(b"not an image", "junk.jpg", SearchParams()))
    batch.insert(7, Query(query_files[0].read_bytes()[:300], "cut.jpg", PARAMS[1]))
    searcher._answer(batch)  # one forward pass, one search per group of equal parameters
    for query in batch:
        alone = Query(query.data, query.name, query.params)
        searcher._answer([alone])
        assert_same_answer(outcome(query), outcome(alone))
    refused = [outcome(q) for q in batch if q.answer.exception() is not None]
    assert [status for status, _ in refused] == [415, 422]
    assert all(isinstance(q.answer.exception(), UploadError | type(None)) for q in batch)
    assert batch[0].timings_ms.keys() == {"decode", "encode", "stage1", "stage2"}


def test_a_too_wide_radius_refuses_only_its_own_query(served_index, query_files):
    searcher = Searcher(served_index, DEFAULT_MAX_PIXELS)
    image = query_files[0].read_bytes()  # radius 16 finds all 240 items, radius 0 fewer
    wide = Query(image, "wide.jpg", SearchParams(radius=16), radius_limit=200)
    narrow = Query(image, "narrow.jpg", SearchParams(radius=0), radius_limit=200)
    plain = Query(image, "plain.jpg", SearchParams(), radius_limit=200)
    searcher._answer([wide, narrow, plain])
    assert "240 items, over the limit of 200" in str(wide.answer.exception())
    assert narrow.answer.exception() is None and len(plain.answer.result()) == 10


def load_benchmark():
    path = Path(__file__).parents[2] / "benchmarks" / "load.py"
    spec = importlib.util.spec_from_file_location("load_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_load_benchmark_against_two_search_processes(
    served_index, cifar10_slice, monkeypatch, tmp_path, capsys
):
    out = tmp_path / "load.json"
    argv = [
        "load.py", "--index", str(served_index), "--data", str(cifar10_slice), "--workers", "2",
        "--requests", "200", "--clients", "8", "--sequential", "20", "--warmup", "10",
        "--malformed", "40", "--query-images", "20", "--out", str(out),
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    load_benchmark().main()
    report = json.loads(out.read_text())
    assert report["concurrent"]["requests"] == 200 and report["concurrent"]["errors"] == 0
    assert report["concurrent"]["server_cpu_ms_per_request"] > 0
    assert report["malformed"]["server_errors"] == 0 and report["malformed"]["healthy_after"]
    assert report["server_processes"] >= 3  # HTTP and two search processes, memory of all
    assert report["goals"]["zero_errors"] and report["goals"]["zero_5xx_malformed"]


@pytest.mark.parametrize("workers", ["0", "1", "2"])
def test_served_answers_do_not_depend_on_the_worker_count(served_index, query_files, workers):
    with ServerProcess(served_index, ["--no-access-log", "--workers", workers]) as server:
        answers = [
            httpx.post(server.url + "/search", files={"image": path.read_bytes()}).json()
            for path in query_files[:3]
        ]
    expected = api.search_images(served_index, query_files[:3], 10, 100)
    for answer, want in zip(answers, expected, strict=True):
        assert [r["id"] for r in answer["results"]] == [r["id"] for r in want["results"]]


def test_a_failure_anywhere_in_a_batch_answers_its_requests(served_index, query_files, monkeypatch):
    searcher = Searcher(served_index, DEFAULT_MAX_PIXELS)

    def broken(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr("hashsearch.server.engine.api.hits_as_dicts", broken)
    query = Query(query_files[0].read_bytes(), "q.jpg", SearchParams())
    with pytest.raises(RuntimeError, match="broken"):
        searcher.submit(query).result(timeout=60)  # not a hang
    monkeypatch.undo()
    again = Query(query_files[0].read_bytes(), "q.jpg", SearchParams())
    assert len(searcher.submit(again).result(timeout=60)) == 10  # the thread still answers
    searcher.close()


def test_the_search_thread_runs_faiss_on_the_threads_it_was_given(
    served_index, query_files, monkeypatch
):
    # OpenMP's thread count is per thread (and torch may reset it): unless set on
    # the search thread, each search ran on one OpenMP thread per core
    default = []
    reader = threading.Thread(target=lambda: default.append(faiss.omp_get_max_threads()))
    reader.start()
    reader.join()
    wanted = default[0] + 1  # what a new thread would not have
    searcher = Searcher(served_index, DEFAULT_MAX_PIXELS, threads=wanted)
    seen = []
    hits_as_dicts = api.hits_as_dicts

    def recording(*args, **kwargs):
        seen.append(faiss.omp_get_max_threads())
        return hits_as_dicts(*args, **kwargs)

    monkeypatch.setattr("hashsearch.server.engine.api.hits_as_dicts", recording)
    query = Query(query_files[0].read_bytes(), "q.jpg", SearchParams())
    try:
        assert len(searcher.submit(query).result(timeout=60)) == 10
    finally:
        searcher.close()
    assert seen == [wanted]


def test_a_request_cancelled_while_waiting_is_dropped_and_the_others_answered(
    served_index, query_files
):
    searcher = Searcher(served_index, DEFAULT_MAX_PIXELS)
    waiting = [Query(path.read_bytes(), path.name, SearchParams()) for path in query_files[:3]]
    for query in waiting:
        searcher._waiting.put(query)
    searcher._waiting.put(None)
    # cancelled before its batch (its handler task was cancelled, e.g. at shutdown)
    assert waiting[1].answer.cancel()
    searcher._serve()  # this thread plays the searcher's: one batch, then the stop
    assert all(len(q.answer.result(timeout=0)) == 10 for q in (waiting[0], waiting[2]))


def test_workers_refuse_an_index_they_cannot_load_in_one_line(tmp_path, capsys):
    broken = tmp_path / "index"
    broken.mkdir()
    (broken / "CURRENT").write_text("v-missing\n")
    with pytest.raises(SystemExit) as exit_info:
        with pytest.MonkeyPatch.context() as patch:
            argv = ["hashsearch", "serve", "--index", str(broken), "--workers", "2"]
            patch.setattr(sys, "argv", argv)
            main()  # returns at once: no worker process is started for it
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code not in (0, None) and len(err.splitlines()) == 1, err
    assert str(broken) in " ".join(err.split())
