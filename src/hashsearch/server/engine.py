"""One index and its model, searched from many request threads at once.

FastAPI runs sync endpoints in a thread pool. Decoding and the Hamming search
are safe side by side (FAISS searches and memmap reads mutate nothing), but a
torch module promises no thread safety, and the forward pass is most of a
query's cost: 11 ms for one 32x32 image with the `full` preset's model on one
core, 3.5 ms an image in a batch of 16. So the model runs on one thread of its
own (`BatchEncoder`), on whatever queries are waiting, in one batch: with 16
clients on 2 cores that doubled the throughput of one pass per query
(`benchmarks/load.py`).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch import api
from hashsearch.encoding import Encoded, encode_images
from hashsearch.index import HashIndex
from hashsearch.methods.base import HashingMethod
from hashsearch.search import two_stage_search

MAX_BATCH = 32


@dataclass(frozen=True)
class SearchParams:
    """What a query asks for; the meaning of each is `two_stage_search`'s."""

    top: int = 10
    candidates: int = 100
    radius: int | None = None
    rerank: str = "cosine"


class BatchEncoder:
    """Encodes images on one thread, in batches of whatever requests are waiting.

    Idle, a query is encoded alone, as `hashsearch search` encodes it; under load the
    queries that queued during one pass share the next.
    """

    def __init__(self, model: HashingMethod, device: str, max_batch: int = MAX_BATCH) -> None:
        self.model, self.device, self.max_batch = model, device, max_batch
        self._waiting: queue.SimpleQueue[tuple[np.ndarray, Future[Encoded]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def encode(self, pixels: np.ndarray) -> Encoded:
        """Code and feature of one (H, W, C) uint8 image, as the index's items were made."""
        self._running()
        done: Future[Encoded] = Future()
        self._waiting.put((pixels, done))
        return done.result()

    def close(self) -> None:
        """Stop the encoding thread once the queries before this call are answered; a
        later `encode` starts it again (an app whose lifespan runs twice keeps working)."""
        with self._starting:
            if self._thread is not None:
                self._waiting.put(None)
                self._thread.join()
                self._thread = None

    def _running(self) -> None:
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="hashsearch-encoder", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while (first := self._waiting.get()) is not None:
            batch = [first]
            while len(batch) < self.max_batch and (more := self._next_waiting()) is not None:
                batch.append(more)
            self._encode_batch(batch)

    def _next_waiting(self) -> tuple[np.ndarray, Future[Encoded]] | None:
        try:
            job = self._waiting.get_nowait()
        except queue.Empty:
            return None
        if job is None:  # closing: finish this batch first
            self._waiting.put(None)
        return job

    def _encode_batch(self, batch: list[tuple[np.ndarray, Future[Encoded]]]) -> None:
        try:
            pixels = np.stack([image for image, _ in batch])
            encoded = encode_images(
                self.model, pixels, np.zeros(len(batch), np.int64), device=self.device
            )
        except Exception as exc:  # noqa: BLE001 - the requests waiting on it report it
            for _, done in batch:
                done.set_exception(exc)
            return
        for row, (_, done) in enumerate(batch):
            rows = slice(row, row + 1)
            done.set_result(
                Encoded(encoded.codes[rows], encoded.features[rows], encoded.labels[rows])
            )


class Searcher:
    """Encodes query pixels with the index's own model and runs the two-stage search."""

    def __init__(self, index_dir: Path) -> None:
        self.index = HashIndex.load(index_dir)
        self.run = api.index_model(self.index, index_dir)
        self.image_shape: tuple[int, int, int] = tuple(self.run.meta["image_shape"])
        self.encoder = BatchEncoder(self.run.model, self.run.config.train.device)

    def search(
        self,
        pixels: np.ndarray,
        params: SearchParams,
        timings_ms: dict[str, float],
        radius_limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """JSON-ready hits of one query (`api.hits_as_dicts`); fills encode/stage1/stage2 ms."""
        started = time.perf_counter()
        query = self.encoder.encode(pixels)
        timings_ms["encode"] = (time.perf_counter() - started) * 1e3
        hits = two_stage_search(
            self.index,
            query.codes,
            query.features,
            params.top,
            params.candidates,
            params.radius,
            params.rerank,
            timings_ms=timings_ms,
            radius_limit=radius_limit,
        )
        return api.hits_as_dicts(self.index, hits[0])
