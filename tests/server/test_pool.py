"""Search processes behind one HTTP process: every query answered as in one process,
spread over the processes, and a process that dies fails its queries instead of hanging."""

from __future__ import annotations

import time

import pytest

from hashsearch.errors import HashsearchError
from hashsearch.server.engine import Query, Searcher, SearchParams
from hashsearch.server.pool import SearchPool
from hashsearch.server.uploads import DEFAULT_MAX_PIXELS, UploadError


@pytest.fixture(scope="module")
def pool(served_index):
    pool = SearchPool(served_index, DEFAULT_MAX_PIXELS, processes=2, threads=1)
    yield pool
    pool.close()


def test_queries_are_answered_as_in_one_process_and_spread_over_both(
    pool, served_index, query_files
):
    alone = Searcher(served_index, DEFAULT_MAX_PIXELS)
    params = [SearchParams(), SearchParams(top=3, candidates=20, rerank="none")]
    uploads = [(path.read_bytes(), path.name) for path in query_files[:8]]
    uploads.append((b"no image at all", "bad.jpg"))
    sent = [Query(data, name, p) for data, name in uploads for p in params]
    answers = [pool.submit(query) for query in sent]  # all in flight at once
    for query, answer in zip(sent, answers, strict=True):
        expected = alone.submit(Query(query.data, query.name, query.params)).exception(60)
        if expected is not None:  # the bad upload: the same refusal, carried back
            error = answer.exception(timeout=60)
            assert isinstance(error, UploadError) and error.detail == expected.detail
            continue
        want = alone.submit(Query(query.data, query.name, query.params)).result(60)
        assert answer.result(timeout=60) == want
        assert {"decode", "encode", "stage1", "stage2"} <= set(query.timings_ms)
    alone.close()
    assert all(worker.answered > 0 for worker in pool._workers)
    assert sum(worker.answered for worker in pool._workers) == len(sent)
    assert all(worker.busy == 0 and not worker.pending for worker in pool._workers)


def test_a_search_process_that_dies_fails_its_queries_and_the_rest_carry_on(
    served_index, query_files
):
    pool = SearchPool(served_index, DEFAULT_MAX_PIXELS, processes=2, threads=1)
    data = query_files[0].read_bytes()
    try:
        first, second = pool._workers
        first.process.kill()
        deadline = time.monotonic() + 30
        while first.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not first.alive
        answered = pool.submit(Query(data, "q.jpg", SearchParams())).result(timeout=60)
        assert len(answered) == 10 and second.answered == 1  # the live process took it
        second.process.kill()
        second.process.join()
        query = Query(data, "q.jpg", SearchParams())
        with pytest.raises(HashsearchError, match="stopped; restart `hashsearch serve`"):
            pool.submit(query).result(timeout=60)  # an error (a 503), not a hang
    finally:
        pool.close()
