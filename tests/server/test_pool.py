"""Search processes behind one HTTP process: every query answered as in one process,
each sent to the least busy process, nothing lost at a stop, and a process that dies
fails its queries (a 503) instead of leaving them waiting."""

from __future__ import annotations

import os
import signal
import time

import pytest
from server_helpers import assert_same_answer, outcome

from hashsearch.errors import HashsearchError
from hashsearch.server.engine import Query, Searcher, SearchParams
from hashsearch.server.pool import SearchPool
from hashsearch.server.uploads import DEFAULT_MAX_PIXELS, UploadError


@pytest.fixture
def pool(served_index):
    pool = SearchPool(served_index, DEFAULT_MAX_PIXELS, processes=2, threads=1)
    pool.start()
    yield pool
    for member in pool._running:  # a test may leave one stopped
        if member.process.is_alive():
            os.kill(member.process.pid, signal.SIGCONT)
    pool.close()


def pause(pool: SearchPool, number: int, signal_number: int = signal.SIGSTOP) -> None:
    os.kill(pool._running[number].process.pid, signal_number)


def test_queries_are_answered_as_in_one_process(pool, served_index, query_files):
    alone = Searcher(served_index, DEFAULT_MAX_PIXELS)
    params = [SearchParams(), SearchParams(top=3, candidates=20, rerank="none")]
    uploads = [(path.read_bytes(), path.name) for path in query_files[:8]]
    uploads.append((b"no image at all", "bad.jpg"))
    sent = [Query(data, name, p) for data, name in uploads for p in params]
    decoded = Query(b"", "decoded.jpg", params[0], pixels=alone.decode(*uploads[0]))
    sent.append(decoded)  # a large upload is decoded by the HTTP process; its bytes stay
    answers = [pool.submit(query) for query in sent]  # all in flight at once
    for query, answer in zip(sent, answers, strict=True):
        again = Query(query.data, query.name, query.params, pixels=query.pixels)
        alone.submit(again).exception(timeout=60)
        answer.exception(timeout=60)
        if again.answer.exception() is not None:  # the bad upload: its refusal, carried back
            assert isinstance(answer.exception(), UploadError)
        else:
            assert {"encode", "stage1", "stage2"} <= set(query.timings_ms)
        # batches form by timing: scores equal to float precision (tests/server/test_batching)
        assert_same_answer(outcome(query), outcome(again))
    alone.close()
    assert all(not member.pending for member in pool._running)


def test_each_query_goes_to_the_least_busy_process(pool, query_files):
    for number in (0, 1):
        pause(pool, number)  # nothing is answered: what each holds only grows
    data = query_files[0].read_bytes()
    sent = [pool.submit(Query(data, "q.jpg", SearchParams())) for _ in range(5)]
    assert [len(member.pending) for member in pool._running] == [3, 2]
    for number in (0, 1):
        pause(pool, number, signal.SIGCONT)
    assert all(len(answer.result(timeout=60)) == 10 for answer in sent)


def test_close_answers_what_the_processes_were_sent_and_start_begins_again(pool, query_files):
    data = query_files[0].read_bytes()
    sent = [pool.submit(Query(data, "q.jpg", SearchParams())) for _ in range(20)]
    pool.close()
    assert all(len(answer.result(timeout=0)) == 10 for answer in sent)  # none failed
    assert pool.submit(Query(data, "q.jpg", SearchParams())).result(timeout=60)


def test_a_search_process_that_dies_fails_its_queries_and_the_rest_carry_on(pool, query_files):
    data = query_files[0].read_bytes()
    pause(pool, 0)
    held = pool.submit(Query(data, "q.jpg", SearchParams()))  # the least busy: process 0
    assert len(pool._running[0].pending) == 1
    pause(pool, 0, signal.SIGKILL)
    with pytest.raises(HashsearchError, match="search process 0 of the server stopped"):
        held.result(timeout=60)  # failed, not left waiting
    assert pool.problem() is None  # one process still answers
    assert len(pool.submit(Query(data, "q.jpg", SearchParams())).result(timeout=60)) == 10
    pause(pool, 1, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pool.problem() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "every search process of the server stopped" in (pool.problem() or "")
    with pytest.raises(HashsearchError, match="restart `hashsearch serve`"):
        pool.submit(Query(data, "q.jpg", SearchParams())).result(timeout=60)


def test_fewer_than_one_search_process_is_refused(served_index):
    with pytest.raises(HashsearchError, match="workers must be at least 1, not 0"):
        SearchPool(served_index, DEFAULT_MAX_PIXELS, processes=0, threads=1)
