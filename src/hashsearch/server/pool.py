"""Search processes behind the one HTTP process, each query to the least busy.

Why a search process at all: the HTTP process's event loop and a search thread
beside it take turns on one interpreter lock, so one process used about one of
the 2 cores; with the forward passes in a process of their own, the HTTP process
and the search process each have a core. One search process answered 16 clients
with less CPU per answer than two (docs/performance.md, Serving). Part of why:
it gets every waiting query in one batch, and below 8 images a forward pass
costs more an image the smaller its batch (`fast` model, one thread: about 0.5
ms an image in 8, 0.6 in 4, 1.4 alone); the rest is not measured apart.

Why not uvicorn's worker processes: they share the port, and the kernel gives each
keep-alive connection to whichever process accepts first, where it stays; counted
during load runs, 16 clients' connections sat 16/0 on two processes in every
counted run, and a run is as fast as its split is even (docs/performance.md). One
process speaks HTTP and every query goes, over a pipe, to the search process with
the fewest queries in hand. A search process takes whatever queries wait in its
pipe as one batch (`Searcher.answer`: one forward pass) and sends the batch's
answers back as one message.

Requests are written to the pipe by the thread that submits them (the event loop);
a write blocks only while the pipe is full (about 200 kB waiting: large uploads
cross as decoded pixels), until the process takes its next batch; a sender thread
per process, tried, bought nothing measurable (docs/performance.md). A reader
thread per process hands answers to the waiting requests; if a process dies, it
fails the queries the process held (503) and GET /health says so.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import pickle
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import NamedTuple

import numpy as np
from starlette.exceptions import HTTPException

from hashsearch.errors import HashsearchError
from hashsearch.server.engine import Answer, Query, Searcher, SearchParams, ServedIndex

log = logging.getLogger(__name__)
START_SECONDS = 120  # a search process loads torch, the index and the model in this time


class _Request(NamedTuple):
    """A query as it crosses the pipe (its future stays in the HTTP process)."""

    number: int
    data: bytes  # empty when the HTTP process decoded it already (`pixels`)
    name: str
    params: SearchParams
    radius_limit: int | None
    pixels: np.ndarray | None


class _Reply(NamedTuple):
    number: int
    timings_ms: dict[str, float]
    rows: Answer | None
    error: BaseException | None


@dataclass
class _Process:
    """One search process as the HTTP process sees it."""

    number: int
    process: BaseProcess
    connection: Connection
    sending: threading.Lock = field(default_factory=threading.Lock)  # one writer at a time
    pending: dict[int, Query] = field(default_factory=dict)  # sent, not yet answered
    alive: bool = True
    closing: bool = False
    threads: list[threading.Thread] = field(default_factory=list)


class SearchPool(ServedIndex):
    """Queries answered by `processes` search processes, each running a `Searcher`.

    The index and model are loaded here too (for /info, item images and decoding
    large uploads; a bad index fails here, before any process starts), but this
    process never encodes. `start` starts the processes (`submit` does if needed),
    `close` stops them; a later `start` starts new ones.
    """

    def __init__(self, index_dir: Path, max_pixels: int, processes: int, threads: int) -> None:
        super().__init__(index_dir, max_pixels)
        if processes < 1:
            raise HashsearchError(f"workers must be at least 1, not {processes}")
        self.processes, self.threads = processes, threads
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._running: list[_Process] = []
        self._hang_up: Callable[[], None] | None = None

    def start(self) -> None:
        """Start the search processes and wait until each has loaded the model."""
        with self._lock:
            if self._running:
                return
            context = multiprocessing.get_context("spawn")  # no fork of a threaded process
            started: list[_Process] = []
            try:
                for number in range(self.processes):
                    ours, theirs = context.Pipe()
                    process = context.Process(
                        target=_search_process,
                        args=(theirs, str(self.index_dir), self.max_pixels, self.threads),
                        name=f"hashsearch-search-{number}",
                        daemon=True,
                    )
                    process.start()
                    theirs.close()
                    started.append(_Process(number, process, ours))
                for member in started:
                    _await_ready(member)
            except BaseException:
                _stop(started)
                raise
            for member in started:
                thread = threading.Thread(
                    target=self._receive, args=(member,), name="hashsearch-answers", daemon=True
                )
                thread.start()
                member.threads.append(thread)
            self._running = started
            # At exit without `close` (a second Ctrl-C skips the app's shutdown),
            # multiprocessing waits for its daemon children, which stop only when their
            # pipe closes: hang up first (exit handlers run last registered, first).
            self._hang_up = partial(_hang_up, started)
            atexit.register(self._hang_up)

    def submit(self, query: Query) -> Future[Answer]:
        """Hand `query` to the least busy live search process; its future as in `Searcher`."""
        if not self._running:  # the hot path takes the pool's lock once, below
            self.start()
        with self._lock:
            live = [member for member in self._running if member.alive]
            if not live:
                query.answer.set_exception(_stopped("every search process"))
                return query.answer
            member = min(live, key=lambda m: len(m.pending))
            number = next(self._numbers)
            member.pending[number] = query
            data = b"" if query.pixels is not None else query.data
            request = _Request(
                number, data, query.name, query.params, query.radius_limit, query.pixels
            )
        with member.sending:  # not under the pool's lock: the reader needs that one
            try:
                member.connection.send(request)
            except OSError:  # the process is gone: its reader fails what it held
                pass
            except Exception as exc:  # noqa: BLE001 - a request that does not pickle
                with self._lock:
                    member.pending.pop(number, None)
                if query.answer.set_running_or_notify_cancel():
                    query.answer.set_exception(exc)
        return query.answer

    def problem(self) -> str | None:
        with self._lock:
            if self._running and not any(member.alive for member in self._running):
                return str(_stopped("every search process"))
        return None

    def close(self) -> None:
        """Stop the search processes once they have answered what they were sent."""
        with self._lock:
            running, self._running = self._running, []
            for member in running:
                member.closing = True
        for member in running:
            with member.sending:  # after every request before it
                try:
                    member.connection.send(None)
                except OSError:
                    pass
        _stop(running)
        if self._hang_up is not None:
            atexit.unregister(self._hang_up)
            self._hang_up = None

    def _receive(self, member: _Process) -> None:
        """Hand each batch of answers from `member` to its queries; when the process
        stops, fail the queries it still held."""
        while True:
            try:
                replies: list[_Reply] = member.connection.recv()
            except (EOFError, OSError):
                break
            except Exception:  # noqa: BLE001 - an answer that does not unpickle
                log.exception("search process %d sent an unreadable answer", member.number)
                member.process.kill()
                break
            with self._lock:
                queries = [member.pending.pop(reply.number) for reply in replies]
            for query, reply in zip(queries, replies, strict=True):
                query.timings_ms.update(reply.timings_ms)
                if not query.answer.set_running_or_notify_cancel():
                    continue  # the client left
                if reply.error is None:
                    query.answer.set_result(reply.rows or [])
                else:
                    query.answer.set_exception(reply.error)
        with self._lock:
            member.alive = False
            orphans, member.pending = list(member.pending.values()), {}
        if not member.closing:
            member.process.join(timeout=5)
            log.error(
                "search process %d stopped (exit code %s); %d queries failed; the others answer",
                member.number,
                member.process.exitcode,
                len(orphans),
            )
        for query in orphans:
            if query.answer.set_running_or_notify_cancel():
                query.answer.set_exception(_stopped(f"search process {member.number}"))


def _stopped(what: str) -> HashsearchError:
    return HashsearchError(f"{what} of the server stopped; restart `hashsearch serve`")


def _stop(members: list[_Process]) -> None:
    """Wait for `members` to exit (killing one that hangs), then for their threads."""
    for member in members:
        member.process.join(timeout=30)
        if member.process.is_alive():
            member.process.kill()
            member.process.join()
        for thread in member.threads:
            thread.join()
        member.connection.close()


def _hang_up(members: list[_Process]) -> None:
    for member in members:
        member.connection.close()


def _await_ready(member: _Process) -> None:
    """Wait for a search process's first word: ready (None), or why it could not start."""
    if not member.connection.poll(START_SECONDS):
        raise HashsearchError(f"search process {member.number} did not start in {START_SECONDS} s")
    try:
        problem = member.connection.recv()
    except EOFError:
        member.process.join(timeout=5)
        problem = f"it exited with code {member.process.exitcode}"
    if problem is not None:
        raise HashsearchError(f"search process {member.number} could not start: {problem}")


def _search_process(connection: Connection, index_dir: str, max_pixels: int, threads: int) -> None:
    """A search process: answer what the pipe brings, batch by batch, until the stop."""
    import torch

    # Ctrl-C or a SIGTERM to the process group stops the HTTP process, which stops
    # this one by its pipe once the requests in flight are answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(threads)  # FAISS's: the searcher's, before each search
    try:
        searcher = Searcher(Path(index_dir), max_pixels, threads=threads)
    except Exception as exc:  # noqa: BLE001 - the HTTP process reports it as one line
        connection.send(str(exc))
        return
    connection.send(None)
    stopping = False
    while not stopping:
        batch, stopping = _next_batch(connection, searcher.max_batch)
        if batch:
            searcher.answer([query for _, query in batch])
            try:
                connection.send([_reply(number, query) for number, query in batch])
            except OSError:  # the HTTP process is gone
                return


def _next_batch(connection: Connection, size: int) -> tuple[list[tuple[int, Query]], bool]:
    """The requests waiting in the pipe (blocking for the first), up to `size`, and
    whether the stop came (None, or the HTTP process gone) after them."""
    batch: list[tuple[int, Query]] = []
    while len(batch) < size and (not batch or connection.poll(0)):
        try:
            request: _Request | None = connection.recv()
        except (EOFError, OSError):
            return batch, True
        if request is None:
            return batch, True
        query = Query(
            request.data,
            request.name,
            request.params,
            radius_limit=request.radius_limit,
            pixels=request.pixels,
        )
        batch.append((request.number, query))
    return batch, False


def _reply(number: int, query: Query) -> _Reply:
    """An answered query as the HTTP process takes it back.

    A client's fault (`HTTPException`, `HashsearchError`) goes back as itself; any
    other error is logged here with its traceback and goes back as itself if it
    survives pickling, else as a RuntimeError with its text (a 500 either way).
    """
    error = query.answer.exception()
    if error is None:
        return _Reply(number, query.timings_ms, query.answer.result(), None)
    if not isinstance(error, HTTPException | HashsearchError):
        log.error("search failed", exc_info=error)
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any exception type may come out of a search
        error = RuntimeError(f"{type(error).__name__}: {error}")
    return _Reply(number, query.timings_ms, None, error)
