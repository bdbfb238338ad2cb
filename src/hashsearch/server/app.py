"""The FastAPI app over one index (`create_app`) and the process that serves it (`serve`).

Errors: a client's mistake is a 4xx whose `detail` is one line; anything else is a
500 with a fixed detail, and the ASGI server logs its traceback. Neither stops
the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from hashsearch import __version__
from hashsearch.errors import HashsearchError
from hashsearch.items import ItemImages
from hashsearch.server.engine import Searcher, ServedIndex
from hashsearch.server.pool import SearchPool
from hashsearch.server.routes import STATIC, router
from hashsearch.server.uploads import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, BodyLimit

log = logging.getLogger(__name__)
MAX_DETAIL = 300  # characters: a detail is a reason, not a dump


def create_app(
    index_dir: str | Path,
    data_path: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 0,
    threads: int = 1,
) -> FastAPI:
    """An app serving the index in `index_dir`: JSON API, item images and the web page.

    Args:
        data_path: where the index run's data set is now, if it moved (item images).
        max_upload_bytes: the largest request body accepted.
        max_pixels: the most pixels an uploaded image may have (decompression bombs).
        workers: the search processes (`hashsearch.server.pool`) started with the app
            and stopped with it; 0 answers queries on a thread of this process (an
            embedded app, tests).
        threads: FAISS's threads on the search thread, torch's and FAISS's in each
            search process (torch's in this process are the caller's business:
            `serve` sets them).
    """
    searcher: ServedIndex = (
        Searcher(Path(index_dir), max_pixels, threads=threads)
        if workers == 0
        else SearchPool(Path(index_dir), max_pixels, workers, threads)
    )
    items = ItemImages(searcher.index.ids, searcher.run.config, data_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=_load_images, args=(items,), daemon=True).start()
        searcher.start()
        yield
        searcher.close()

    app = FastAPI(
        title="hashsearch",
        version=__version__,
        summary="Query-by-image search of a deep-hashing index: Hamming search, then re-ranking.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(router(searcher, items))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _load_images(items: ItemImages) -> None:
    """Load the data set behind item images now, so the first result page need not wait."""
    try:
        items.dataset()
    except HashsearchError as exc:
        log.warning("item images unavailable: %s; start the server with --data PATH", exc)


def one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MAX_DETAIL else flat[: MAX_DETAIL - 3] + "..."


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": one_line(exc.detail)}, exc.status_code, exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": one_line(describe_errors(exc.errors()))}, 422)


def describe_errors(errors: Sequence[Any]) -> str:
    """Pydantic's error list as 'top: Input should be ...; image: Field required'."""
    parts = []
    for error in errors:
        where = [str(part) for part in error.get("loc", ()) if part not in ("query", "body")]
        parts.append(f"{'.'.join(where) or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "internal server error; the server log has the details"}, 500)


def serve(
    index_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    data_path: str | None = None,
    threads: int = 1,
    access_log: bool = True,
    max_upload_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 1,
) -> None:
    """Run `create_app` under uvicorn until interrupted.

    `threads` caps torch's and FAISS's thread pools per process: the HTTP process and
    the search processes share the cores, and on 2 cores more threads per pass only
    contend with them. `workers` search processes answer the queries behind this
    one HTTP process, each with its own model and copy of the index (features
    memory-mapped); on 2 cores one answered as many as two, or more
    (docs/performance.md, Serving). 0 answers them on a thread of this process,
    beside its event loop.
    """
    import torch
    import uvicorn

    torch.set_num_threads(threads)  # FAISS's: the searcher's, on the thread that searches
    app = create_app(index_dir, data_path, max_upload_bytes, workers=workers, threads=threads)
    log_settings: dict[str, Any] = {"access_log": access_log, "log_level": "info"}
    # workers=1 said, or uvicorn would take WEB_CONCURRENCY's count of processes
    uvicorn.run(app, host=host, port=port, workers=1, **log_settings)
