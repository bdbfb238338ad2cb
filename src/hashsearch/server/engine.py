"""One index and its model, answering queries from many requests at once.

The forward pass is most of a query's cost (12 ms for one 32x32 image with the
`full` preset's model on one core, 2.5 ms an image in a batch of 32), and a torch
module promises no thread safety. So one thread of its own (`Searcher`'s)
answers whatever queries are waiting, as one batch: it decodes each upload,
encodes them all in one forward pass and runs one stage-1 + stage-2 search per
group of equal parameters (FAISS scans the codes once for the group). The
request handlers only parse HTTP and await the answer on the event loop: run in
a thread pool, they fought over the interpreter lock with this thread and 16
clients got two thirds of the answers a second (docs/performance.md, Serving).
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from hashsearch import api
from hashsearch.encoding import encode_images
from hashsearch.index import HashIndex
from hashsearch.search import two_stage_search
from hashsearch.server.uploads import query_pixels

MAX_BATCH = 32
Answer = list[dict[str, Any]]  # JSON-ready hits, `api.hits_as_dicts`


@dataclass(frozen=True)
class SearchParams:
    """What a query asks for; the meaning of each is `two_stage_search`'s."""

    top: int = 10
    candidates: int = 100
    radius: int | None = None
    rerank: str = "cosine"


@dataclass
class Query:
    """One uploaded query on its way through the batcher.

    `timings_ms` receives decode (this upload), encode (the forward pass of its whole
    batch), stage1 and stage2 (the search of its group of equal parameters), in
    milliseconds; the time it waited for its batch is in none of them.
    """

    data: bytes
    name: str
    params: SearchParams
    radius_limit: int | None = None
    pixels: np.ndarray | None = None  # decoded already (a large upload, off this thread)
    timings_ms: dict[str, float] = field(default_factory=dict)
    answer: Future[Answer] = field(default_factory=Future)

    def group(self) -> Hashable:
        """Queries searched together: equal parameters; a radius query alone, so that
        a radius finding too many items refuses only its own request."""
        return self.params if self.params.radius is None else id(self)


class ServedIndex(ABC):
    """An index and the model its items were encoded with, as the HTTP side needs them
    (/info, item images, decoding large uploads); a bad index fails here, at once.

    Subclasses say how queries are answered: `Searcher` on a thread of this process,
    `hashsearch.server.pool.SearchPool` in search processes.
    """

    def __init__(self, index_dir: Path, max_pixels: int) -> None:
        self.index_dir = index_dir
        self.index = HashIndex.load(index_dir)
        self.run = api.index_model(self.index, index_dir)
        self.image_shape: tuple[int, int, int] = tuple(self.run.meta["image_shape"])
        self.max_pixels = max_pixels

    def decode(self, data: bytes, name: str) -> np.ndarray:
        """An upload as the model's input, or the `UploadError` that refuses it."""
        return query_pixels(data, name, self.image_shape, self.max_pixels)

    def problem(self) -> str | None:
        """Why queries cannot be answered now, if they cannot (GET /health says it)."""
        return None

    @abstractmethod
    def start(self) -> None:
        """Get ready to answer (the app's startup); `submit` calls it too."""

    @abstractmethod
    def submit(self, query: Query) -> Future[Answer]:
        """Queue `query`; its future gets the hits, or the error that refused it
        (`UploadError` for a bad image, `CandidateLimit`, `HashsearchError`)."""

    @abstractmethod
    def close(self) -> None:
        """Stop once the queries submitted before are answered; `start` again works."""


class Searcher(ServedIndex):
    """An index, its model, and the thread that answers queries against them.

    `threads` caps FAISS's OpenMP threads on that thread. OpenMP's thread count is a
    per-thread setting: the caller's `faiss.omp_set_num_threads` does not reach this
    thread, whose searches then ran on (and spun) one OpenMP thread per core of a
    loaded server; and where torch shares FAISS's OpenMP library, torch's first op
    on a thread sets the count to torch's. So it is set before every search.
    """

    def __init__(
        self, index_dir: Path, max_pixels: int, *, threads: int = 1, max_batch: int = MAX_BATCH
    ) -> None:
        super().__init__(index_dir, max_pixels)
        self.threads = threads
        self.max_batch = max_batch
        self._waiting: queue.SimpleQueue[Query | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def start(self) -> None:
        """Start the thread, unless it runs (`submit` starts it too)."""
        with self._starting:
            self._start_thread()

    def submit(self, query: Query) -> Future[Answer]:
        """Queue `query`; its future gets the hits, or the error that refused it
        (`UploadError` for a bad image, `CandidateLimit`, `HashsearchError`)."""
        with self._starting:  # not between a `close`'s stop and its join
            self._start_thread()
            self._waiting.put(query)
        return query.answer

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name="hashsearch-queries", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop the thread once the queries before this call are answered; a later
        `submit` starts it again (an app whose lifespan runs twice keeps working)."""
        with self._starting:
            if self._thread is not None:
                self._waiting.put(None)
                self._thread.join()
                self._thread = None

    def _serve(self) -> None:
        while (first := self._waiting.get()) is not None:
            batch = [first]
            while len(batch) < self.max_batch and (more := self._next_waiting()) is not None:
                batch.append(more)
            # a request cancelled while it waited is dropped; the others can no longer be
            # cancelled, so that answering them cannot fail
            self.answer([query for query in batch if query.answer.set_running_or_notify_cancel()])

    def answer(self, batch: list[Query]) -> None:
        """Answer a batch now, on the calling thread: every query's future gets its hits
        or its error, whatever fails. The futures must not be cancelled (`_serve` drops
        those first). Leaves the calling thread's FAISS threads at `threads`."""
        try:
            self._answer(batch)
        except Exception as exc:  # noqa: BLE001 - never leave a request waiting forever
            _fail([query for query in batch if not query.answer.done()], exc)

    def _next_waiting(self) -> Query | None:
        try:
            query = self._waiting.get_nowait()
        except queue.Empty:
            return None
        if query is None:  # closing: answer this batch first
            self._waiting.put(None)
        return query

    def _answer(self, batch: list[Query]) -> None:
        """Decode each query, encode the good ones in one pass, search them by group."""
        decoded: list[tuple[Query, np.ndarray]] = []
        for query in batch:
            if query.pixels is not None:
                decoded.append((query, query.pixels))
                continue
            started = time.perf_counter()
            try:
                pixels = self.decode(query.data, query.name)
            except Exception as exc:  # noqa: BLE001 - the request reports its own upload's fault
                query.answer.set_exception(exc)
                continue
            query.timings_ms["decode"] = (time.perf_counter() - started) * 1e3
            decoded.append((query, pixels))
        if not decoded:
            return
        queries = [query for query, _ in decoded]
        started = time.perf_counter()
        try:
            encoded = encode_images(
                self.run.model,
                np.stack([pixels for _, pixels in decoded]),
                np.zeros(len(decoded), np.int64),
                device=self.run.config.train.device,
                as_queries=True,
            )
        except Exception as exc:  # noqa: BLE001 - every request of the batch reports it
            _fail(queries, exc)
            return
        encode_ms = (time.perf_counter() - started) * 1e3
        groups: dict[Hashable, list[int]] = defaultdict(list)
        for row, query in enumerate(queries):
            query.timings_ms["encode"] = encode_ms
            groups[query.group()].append(row)
        for rows in groups.values():
            self._search(
                [queries[row] for row in rows], encoded.codes[rows], encoded.features[rows]
            )

    def _search(self, queries: list[Query], codes: np.ndarray, features: np.ndarray) -> None:
        params = queries[0].params
        timings: dict[str, float] = {}
        faiss.omp_set_num_threads(self.threads)
        try:
            hits = two_stage_search(
                self.index,
                codes,
                features,
                params.top,
                params.candidates,
                params.radius,
                params.rerank,
                timings_ms=timings,
                radius_limit=queries[0].radius_limit,
            )
        except Exception as exc:  # noqa: BLE001 - the group's requests report it
            _fail(queries, exc)
            return
        for query, found in zip(queries, hits, strict=True):
            query.timings_ms.update(timings)
            query.answer.set_result(api.hits_as_dicts(self.index, found))


def _fail(queries: list[Query], exc: Exception) -> None:
    for query in queries:
        query.answer.set_exception(exc)
