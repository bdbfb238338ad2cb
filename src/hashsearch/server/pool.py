"""Searchers in worker processes behind the one HTTP process, each query to the least busy.

Why not uvicorn's worker processes: they share the port, and the kernel gives each
keep-alive connection to whichever process accepts first, so 16 clients' connections
went 16/0 or 13/3 between two processes and one core idled (docs/performance.md,
Serving). Here one process speaks HTTP and every query goes, over a pipe, to the
search process with the fewest queries in hand; each runs a `Searcher`, which
batches what waits for it as it does in one process.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import signal
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from hashsearch.errors import HashsearchError
from hashsearch.server.engine import Answer, Query, Searcher

START_SECONDS = 120  # a search process loads torch, the index and the model in this time


@dataclass
class _Worker:
    """One search process as the HTTP process sees it."""

    number: int
    process: Any  # multiprocessing's Process of the spawn context
    connection: Connection
    busy: int = 0  # queries sent, not yet answered
    answered: int = 0
    alive: bool = True
    pending: dict[int, Query] = field(default_factory=dict)


class SearchPool(Searcher):
    """A `Searcher` whose queries are answered by `processes` search processes.

    It loads the index and model here too (for /info, item images and decoding large
    uploads; a bad index fails here, before any process starts), but never encodes.
    """

    def __init__(self, index_dir: Path, max_pixels: int, processes: int, threads: int) -> None:
        super().__init__(index_dir, max_pixels)
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._workers: list[_Worker] = []
        try:
            for number in range(processes):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_search_process,
                    args=(theirs, str(index_dir), max_pixels, threads),
                    name=f"hashsearch-search-{number}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._workers.append(_Worker(number, process, ours))
            for worker in self._workers:
                _await_ready(worker)
        except BaseException:
            self.close()
            raise
        for worker in self._workers:
            threading.Thread(
                target=self._read_answers, args=(worker,), name="hashsearch-answers", daemon=True
            ).start()

    def submit(self, query: Query) -> Future[Answer]:
        """Send `query` to the least busy live search process; its future as in `Searcher`."""
        with self._lock:
            live = [worker for worker in self._workers if worker.alive]
            if not live:
                query.answer.set_exception(_stopped("every search process"))
                return query.answer
            worker = min(live, key=lambda w: w.busy)
            number = next(self._numbers)
            worker.pending[number] = query
            worker.busy += 1
            request = (number, query.data, query.name, query.params, query.radius_limit)
            try:
                worker.connection.send((*request, query.pixels))
            except (OSError, ValueError):  # the process is gone; its reader fails the rest
                worker.pending.pop(number)
                worker.busy -= 1
                query.answer.set_exception(_stopped(f"search process {worker.number}"))
        return query.answer

    def close(self) -> None:
        """Stop the search processes once they have answered what they hold."""
        for worker in self._workers:
            try:
                worker.connection.send(None)
            except (OSError, ValueError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()

    def _read_answers(self, worker: _Worker) -> None:
        """Hand each answer from `worker` to its query; fail them all if it stops."""
        while True:
            try:
                answers = worker.connection.recv()  # one message a batch
            except (EOFError, OSError):
                break
            with self._lock:
                queries = [worker.pending.pop(number) for number, *_ in answers]
                worker.busy -= len(answers)
                worker.answered += len(answers)
            for query, (_, timings, rows, error) in zip(queries, answers, strict=True):
                query.timings_ms.update(timings)
                if not query.answer.set_running_or_notify_cancel():
                    continue  # the client left
                if error is None:
                    query.answer.set_result(rows)
                else:
                    query.answer.set_exception(error)
        with self._lock:
            worker.alive = False
            orphans, worker.pending = list(worker.pending.values()), {}
        for query in orphans:
            if query.answer.set_running_or_notify_cancel():
                query.answer.set_exception(_stopped(f"search process {worker.number}"))


def _stopped(what: str) -> HashsearchError:
    return HashsearchError(f"{what} of the server stopped; restart `hashsearch serve`")


def _await_ready(worker: _Worker) -> None:
    """Wait for a search process's first word: ready, or why it could not start."""
    if not worker.connection.poll(START_SECONDS):
        raise HashsearchError(f"search process {worker.number} did not start in {START_SECONDS} s")
    try:
        problem = worker.connection.recv()
    except EOFError:
        problem = f"exited with code {worker.process.exitcode}"
    if problem is not None:
        raise HashsearchError(f"search process {worker.number} could not start: {problem}")


def _search_process(connection: Connection, index_dir: str, max_pixels: int, threads: int) -> None:
    """A search process: answer the queries the pipe brings until it brings None."""
    import faiss
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the HTTP process, which stops us
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    try:
        searcher = Searcher(Path(index_dir), max_pixels)
    except Exception as exc:  # noqa: BLE001 - the HTTP process reports it as one line
        connection.send(str(exc))
        return
    connection.send(None)
    while (batch := _next_batch(connection, searcher.max_batch)) is not None:
        searcher.answer([query for _, query in batch])
        connection.send([_reply(number, query) for number, query in batch])


def _next_batch(connection: Connection, size: int) -> list[tuple[int, Query]] | None:
    """The queries the pipe holds, waiting for the first (up to `size`); None: stop."""
    batch: list[tuple[int, Query]] = []
    while len(batch) < size and (not batch or connection.poll(0)):
        try:
            request = connection.recv()
        except EOFError:  # the HTTP process is gone (killed): nobody to answer
            return None
        if request is None:
            return None  # the HTTP process waits for no answer any more
        number, data, name, params, radius_limit, pixels = request
        batch.append((number, Query(data, name, params, radius_limit=radius_limit, pixels=pixels)))
    return batch


def _reply(number: int, query: Query) -> tuple[int, dict[str, float], Answer | None, Any]:
    """An answered query as the HTTP process takes it back; an error that would not
    pickle goes back as its text."""
    error = query.answer.exception()
    if error is not None:
        try:
            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - any exception type may come out of a search
            error = HashsearchError(str(error))
    return number, query.timings_ms, None if error else query.answer.result(), error
