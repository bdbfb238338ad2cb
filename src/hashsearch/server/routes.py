"""The endpoints: search by image, item images, health, info and the web page.

Every failure a client can cause is an `HTTPException` with a one-line detail;
`hashsearch.server.app` renders them and turns anything else into a logged 500.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response

from hashsearch import __version__
from hashsearch.errors import CandidateLimit, HashsearchError
from hashsearch.items import ImageUnavailable, ItemImages, UnknownItem
from hashsearch.rerank import RERANKERS
from hashsearch.server.engine import Query as SearchQuery
from hashsearch.server.engine import SearchParams, ServedIndex
from hashsearch.server.schemas import Health, Info, QueryInfo, Result, SearchResponse, Timings

STATIC = Path(__file__).parent / "static"
MAX_TOP = 100
MAX_CANDIDATES = 10_000  # stage 2 cost grows with the candidates; bound what one request buys
MAX_RADIUS = 256  # the longest code: every item
# Searches waiting or being answered at once; beyond, a 503. Each holds its upload
# (up to the upload limit) in memory until answered.
MAX_IN_FLIGHT = 64
# Uploads larger than this are decoded in a worker thread, not on the searcher's
# thread, where a photo of many megapixels would hold up every other query.
LARGE_UPLOAD = 256 * 2**10
Rerank = StrEnum("Rerank", {name: name for name in RERANKERS.names()})  # type: ignore[misc]
DEFAULT_RERANK = Rerank("cosine")


def item_url(request: Request, item_id: str) -> str:
    """The image URL of an item; '/' is escaped too, so an id is one path segment to a
    browser, which never resolves '..' in it."""
    return f"{request.scope.get('root_path', '')}/items/{quote(item_id, safe='')}/image"


def router(searcher: ServedIndex, items: ItemImages) -> APIRouter:
    """All routes of one served index."""
    routes = APIRouter()
    in_flight = [0]  # searches being answered; the event loop's thread alone counts them

    async def read_query(image: UploadFile, params: SearchParams) -> SearchQuery:
        """The upload as a query; a large one is decoded here, in a worker thread."""
        name = (image.filename or "the upload")[:120]
        data = await image.read()
        query = SearchQuery(data, name, params, radius_limit=MAX_CANDIDATES)
        if len(data) > LARGE_UPLOAD:
            started = time.perf_counter()
            query.pixels = await asyncio.to_thread(searcher.decode, data, name)
            query.timings_ms["decode"] = (time.perf_counter() - started) * 1e3
        return query

    @routes.post("/search", response_model=SearchResponse)
    async def search(
        request: Request,
        image: Annotated[UploadFile, File(description="The query image: PNG, JPEG, GIF, ...")],
        top: Annotated[int, Query(ge=1, le=MAX_TOP, description="Results returned")] = 10,
        candidates: Annotated[
            int, Query(ge=1, le=MAX_CANDIDATES, description="Stage-1 list re-ranked")
        ] = 100,
        radius: Annotated[
            int | None, Query(ge=0, le=MAX_RADIUS, description="Stage 1: all within it")
        ] = None,
        rerank: Annotated[Rerank, Query(description="Stage 2; none: off")] = DEFAULT_RERANK,
    ) -> SearchResponse:
        """Search the index with an uploaded image: Hamming candidates, then re-ranking."""
        started = time.perf_counter()
        if in_flight[0] >= MAX_IN_FLIGHT:
            raise HTTPException(
                503, f"the server is answering {MAX_IN_FLIGHT} searches; retry in a moment"
            )
        in_flight[0] += 1
        try:
            query = await read_query(image, SearchParams(top, candidates, radius, rerank.value))
            # encoding and search happen on the searcher's thread, in batches
            rows = await asyncio.wrap_future(searcher.submit(query))
        except CandidateLimit as exc:  # a radius wide enough to cost more than one request may
            raise HTTPException(422, str(exc)) from None
        except HashsearchError as exc:  # the parameters are valid here: the index is at fault
            raise HTTPException(503, str(exc)) from None
        finally:
            in_flight[0] -= 1
        params, name, data = query.params, query.name, query.data
        results = [
            Result(rank=rank, image_url=item_url(request, row["id"]), **row)
            for rank, row in enumerate(rows, 1)
        ]
        timings = query.timings_ms | {"total": (time.perf_counter() - started) * 1e3}
        return SearchResponse(
            results=results,
            timings_ms=Timings(**timings),
            query=QueryInfo(filename=name, bytes=len(data), **asdict(params)),
        )

    @routes.get(
        "/items/{item_id:path}/image",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {}},
    )
    def item_image(item_id: str) -> Response:
        """A database item's image as PNG; only ids the index holds."""
        try:
            png = items.png(item_id)
        except UnknownItem:
            raise HTTPException(404, f"no item {item_id[:200]!r} in the index") from None
        except ImageUnavailable as exc:
            raise HTTPException(404, str(exc)) from None
        except HashsearchError as exc:  # the data set is not where the run says
            raise HTTPException(503, f"{exc}; start the server with --data PATH") from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @routes.get("/health", response_model=Health)
    def health() -> Health:
        problem = searcher.problem()
        if problem is not None:
            raise HTTPException(503, problem)
        return Health(status="ok", count=len(searcher.index))

    @routes.get("/info", response_model=Info)
    def info() -> Info:
        index = searcher.index
        return Info(
            method=index.info.get("method", "unknown"),
            bits=index.bits,
            count=len(index),
            version=__version__,
            classes=index.info.get("classes", []),
            dataset=index.info.get("dataset"),
            split=index.info.get("split"),
            image_shape=list(searcher.image_shape),
            rerankers=RERANKERS.names(),
        )

    @routes.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return routes
