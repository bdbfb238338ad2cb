"""Load and latency of `hashsearch serve` on loopback: throughput, p50/p99, memory, errors.

    python benchmarks/load.py --index /tmp/ix48 --data ../shared/data/cifar10-jpg.tar.gz \
        --out docs/load.json

Starts the server (`--workers` search processes, or with 0 a search thread in the HTTP
process; `--threads` each; no access log) unless
`--url` names a running one (then `--pid` gives its process for the memory figures).
Queries are the first `--query-images` CIFAR-10 test JPEGs (32x32) of the `--data`
archive, sent as multipart uploads (field `image`). Four phases, each printed and
written to `--out`:

1. warm-up: `--warmup` requests from `--clients` clients, then the server's resident
   memory;
2. sequential: `--sequential` requests from one client (latency of a lone query);
3. concurrent: `--requests` requests from `--clients` clients, each with its own
   keep-alive connection, each sending its next request when its last is answered:
   throughput, latency p50/p99, non-200 answers, memory after, the CPU seconds
   per request of the server (in all and by process) and of the clients, and how
   many of the connections
   each server process held a second in;
4. malformed: `--malformed` fuzzed requests (damaged and foreign files, bad
   parameters, no image, an 11 MB body; seeded) from the same number of clients:
   5xx count, then GET /health.

The clients run on the server's machine and take CPU from it; the figures are the
system's, load generator included. The timed phases use one asyncio client
(aiohttp, bodies encoded once) so that the load generator takes little of the 2
cores: the server's share is what a deployment gets. Memory and CPU are the
server's whole process tree (the HTTP process, and with `--workers` > 0 every search
process and multiprocessing's resource tracker).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import tarfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import fastapi
import httpx
import numpy as np
import uvicorn
from PIL import Image
from urllib3 import encode_multipart_formdata

from hashsearch.api import environment
from hashsearch.server.harness import ServerProcess

Request = dict[str, Any]  # keyword arguments of httpx.Client.post("/search", ...)


def query_images(archive: Path, count: int) -> list[bytes]:
    """The first `count` test JPEGs of a CIFAR-10 `<split>/<class>/<file>` archive."""
    images = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.strip("./").startswith("test/"):
                images.append(tar.extractfile(member).read())
                if len(images) == count:
                    break
    return images


Upload = tuple[bytes, str]  # a multipart body and its content type


def search_uploads(images: list[bytes], n: int) -> list[Upload]:
    """`n` query uploads, the images in turn, each encoded once before the clock starts."""
    encoded = [encode_multipart_formdata({"image": ("q.jpg", image)}) for image in images]
    return [encoded[i % len(encoded)] for i in range(n)]


def timed_searches(url: str, uploads: list[Upload], clients: int) -> list[tuple[int, float]]:
    """(status, seconds) per upload, sent by `clients` concurrent keep-alive clients;
    status -1 when the connection failed."""

    async def run() -> list[tuple[int, float]]:
        outcomes: list[tuple[int, float]] = [(-1, 0.0)] * len(uploads)
        connector = aiohttp.TCPConnector(limit=clients)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

            async def client(first: int) -> None:
                for i in range(first, len(uploads), clients):
                    body, content_type = uploads[i]
                    started = time.perf_counter()
                    try:
                        headers = {"Content-Type": content_type}
                        async with session.post("/search", data=body, headers=headers) as answer:
                            await answer.read()
                            status = answer.status
                    except (aiohttp.ClientError, TimeoutError):
                        status = -1
                    outcomes[i] = (status, time.perf_counter() - started)

            await asyncio.gather(*(client(first) for first in range(clients)))
        return outcomes

    return asyncio.run(run())


def malformed_requests(images: list[bytes], n: int, seed: int = 0) -> list[Request]:
    """`n` bad requests of the kinds the server must answer with a 4xx, seeded."""
    rng = np.random.default_rng(seed)

    def damaged() -> bytes:
        data = bytearray(images[rng.integers(len(images))])
        for position in rng.integers(0, len(data), rng.integers(1, 20)):
            data[position] = rng.integers(256)
        return bytes(data)

    kinds: list[Callable[[], Request]] = [
        lambda: upload(rng.bytes(int(rng.integers(0, 4000)))),
        lambda: upload(damaged()),
        lambda: upload(images[0][: rng.integers(0, len(images[0]))]),
        lambda: upload(claiming_png(int(rng.integers(5_000, 100_000)))),
        lambda: upload(images[0], bad_parameter(rng)),
        lambda: {"data": {"picture": "not a file"}},
        lambda: {"json": {"image": images[0].hex()}},
    ]
    requests = [kinds[rng.integers(len(kinds))]() for _ in range(n)]
    for i in range(0, n, 200):  # an oversized body now and then: each is 11 MB to send
        requests[i] = upload(bytes(11 * 2**20))
    return requests


def upload(data: bytes, params: dict[str, Any] | None = None) -> Request:
    return {"files": {"image": ("fuzz.bin", data)}, "params": params or {}}


def claiming_png(side: int) -> bytes:
    """A tiny PNG whose header claims `side` x `side` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = side.to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def bad_parameter(rng: np.random.Generator) -> dict[str, Any]:
    choices = [
        {"top": 0},
        {"top": "many"},
        {"candidates": 10**12},
        {"radius": -1},
        {"rerank": "bogus"},
        {"top": rng.integers(-(10**6), 10**6)},
    ]
    return choices[rng.integers(len(choices))]


def send_all(url: str, requests: list[Request], clients: int) -> list[tuple[int, float]]:
    """(status, seconds) per request of any kind (the malformed ones), from `clients`
    threads; status -1 when the connection failed."""

    def client_share(first: int) -> list[tuple[int, int, float]]:
        with httpx.Client(base_url=url, timeout=120) as client:
            return [(i, *send(client, requests[i])) for i in range(first, len(requests), clients)]

    with ThreadPoolExecutor(clients) as pool:
        shares = list(pool.map(client_share, range(clients)))
    ordered = sorted(row for share in shares for row in share)
    return [(status, seconds) for _, status, seconds in ordered]


def send(client: httpx.Client, request: Request) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        status = client.post("/search", **request).status_code
    except httpx.HTTPError:
        status = -1
    return status, time.perf_counter() - started


def latency(outcomes: list[tuple[int, float]], seconds: float | None = None) -> dict[str, Any]:
    ms = np.array([s for _, s in outcomes]) * 1e3
    figures = {
        "requests": len(outcomes),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "errors": sum(status != 200 for status, _ in outcomes),
    }
    if seconds is not None:
        figures |= {"seconds": round(seconds, 2), "throughput_rps": round(len(ms) / seconds, 1)}
    return figures


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc): a server and its worker processes."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            children = [
                int(child)
                for task in Path(f"/proc/{current}/task").iterdir()
                for child in (task / "children").read_text().split()
            ]
        except (FileNotFoundError, ProcessLookupError):  # it ended while we looked
            continue
        tree.append(current)
        pending += children
    return tree


def proc_texts(pid: int, name: str) -> list[str]:
    """/proc/<member>/<name> of `pid` and each descendant still running."""
    texts = []
    for member in process_tree(pid):
        try:
            texts.append(Path(f"/proc/{member}/{name}").read_text())
        except (FileNotFoundError, ProcessLookupError):  # it ended since the tree was read
            continue
    return texts


def connections_per_process(pid: int, port: int) -> list[int]:
    """Established TCP connections on the server's `port` held by each process of
    `pid`'s tree, most first (Linux /proc): how the clients were shared out."""
    ours = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():  # no IPv6 on this machine
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "01":  # ESTABLISHED, the server's end
                ours.add(f"socket:[{inode}]")
    counts = []
    for member in process_tree(pid):
        try:
            fds = list(Path(f"/proc/{member}/fd").iterdir())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # it ended since the tree was read
        links = []
        for fd in fds:
            try:
                links.append(os.readlink(fd))
            except OSError:  # closed while we looked
                continue
        counts.append(sum(link in ours for link in links))
    return sorted(counts, reverse=True)


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of process `pid` and its descendants (Linux /proc), MB."""
    if pid is None:
        return None
    total_kb = sum(
        int(line.split()[1])
        for status in proc_texts(pid, "status")
        for line in status.splitlines()
        if line.startswith("VmRSS:")
    )
    return round(total_kb / 1024, 1)


def cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds so far of process `pid` and of each descendant, by
    process id, `pid` first (Linux /proc)."""
    seconds = {}
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # it ended since the tree was read
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seconds[member] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def machine_probe_ms() -> float:
    """Milliseconds of a fixed workload (numpy matrix products, on BLAS's threads, and a
    Python loop): this virtual machine's speed varies by the hour, and runs are
    compared with it."""
    matrix = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    started = time.perf_counter()
    for _ in range(100):
        matrix @ matrix
    total = 0
    for i in range(1_000_000):
        total += i
    return round((time.perf_counter() - started) * 1e3, 1)


def measure(url: str, pid: int | None, images: list[bytes], args: argparse.Namespace) -> dict:
    report: dict[str, Any] = {"rss_start_mb": rss_mb(pid), "machine_probe_ms": machine_probe_ms()}
    report["server_processes"] = None if pid is None else len(process_tree(pid))
    # as many connections as the load will use, so that every search process is warm
    timed_searches(url, search_uploads(images, args.warmup), args.clients)
    report["rss_warm_mb"] = rss_mb(pid)
    report["sequential"] = latency(timed_searches(url, search_uploads(images, args.sequential), 1))
    uploads = search_uploads(images, args.requests)
    server_cpu = None if pid is None else cpu_seconds(pid)
    client_cpu = time.process_time()
    split: list[int] = []
    if pid is not None:  # counted once the clients are connected, a second into the load
        port = urlsplit(url).port or 80
        sampler = threading.Timer(1.0, lambda: split.extend(connections_per_process(pid, port)))
        sampler.start()
    started = time.perf_counter()
    outcomes = timed_searches(url, uploads, args.clients)
    report["concurrent"] = latency(outcomes, time.perf_counter() - started)
    report["concurrent"]["clients"] = args.clients
    report["concurrent"]["client_cpu_ms_per_request"] = round(
        (time.process_time() - client_cpu) / len(uploads) * 1e3, 3
    )
    if server_cpu is not None:
        after = cpu_seconds(pid)
        spent = [(after[member] - server_cpu.get(member, 0.0)) * 1e3 for member in after]
        concurrent = report["concurrent"]
        concurrent["server_cpu_ms_per_request"] = round(sum(spent) / len(uploads), 3)
        # the HTTP process first, then the search processes (and multiprocessing's tracker)
        concurrent["server_cpu_ms_per_request_by_process"] = [
            round(ms / len(uploads), 3) for ms in spent
        ]
        sampler.join()
        report["concurrent"]["connections_per_process"] = split
    report["rss_after_load_mb"] = rss_mb(pid)
    statuses = [
        s for s, _ in send_all(url, malformed_requests(images, args.malformed), args.clients)
    ]
    report["malformed"] = {
        "requests": len(statuses),
        "status_counts": {str(k): v for k, v in sorted(Counter(statuses).items())},
        "server_errors": sum(s >= 500 for s in statuses),
        "connection_errors": statuses.count(-1),
        "healthy_after": httpx.get(url + "/health", timeout=30).status_code == 200,
    }
    report["rss_after_malformed_mb"] = rss_mb(pid)
    return report


def goals(report: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's goals, met or not (None: not measured)."""
    warm, after = report["rss_warm_mb"], report["rss_after_load_mb"]
    return {
        "zero_errors": report["concurrent"]["errors"] == 0,
        "memory_growth_under_10pct": None if warm is None else after <= 1.1 * warm,
        "p50_under_20ms_sequential": report["sequential"]["p50_ms"] < 20,
        "p50_under_20ms_concurrent": report["concurrent"]["p50_ms"] < 20,
        "zero_5xx_malformed": report["malformed"]["server_errors"] == 0,
        "healthy_after_malformed": report["malformed"]["healthy_after"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="index to serve (unless --url)")
    parser.add_argument("--data", required=True, help="the CIFAR-10 JPEG archive (queries)")
    parser.add_argument("--url", help="a running server instead of starting one")
    parser.add_argument("--pid", type=int, help="the --url server's process, for memory")
    parser.add_argument("--threads", type=int, default=1, help="the started server's --threads")
    parser.add_argument("--workers", type=int, default=1, help="the started server's --workers")
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--malformed", type=int, default=1_000)
    parser.add_argument("--query-images", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if (args.index is None) == (args.url is None):
        parser.error("give --index (start a server) or --url (use a running one)")
    images = query_images(Path(args.data), args.query_images)
    versions = {
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "aiohttp": aiohttp.__version__,
    }
    # the server's threads are its --threads; environment()'s would be this client's
    report = {"environment": {k: v for k, v in environment().items() if k != "threads"} | versions}
    report["server"] = {
        "index": str(args.index or args.url),
        "threads": args.threads,
        "workers": args.workers,
        # what --workers meant: search processes, or (0) the HTTP process's search thread;
        # before this field, `--workers 1` meant the search thread
        "search": f"{args.workers} search processes" if args.workers else "search thread",
    }
    if args.url:
        report |= measure(args.url, args.pid, images, args)
    else:
        serve_args = ["--no-access-log", "--threads", str(args.threads), "--data", args.data]
        serve_args += ["--workers", str(args.workers)]
        with ServerProcess(args.index, serve_args) as server:
            report["server"]["info"] = httpx.get(server.url + "/info").json()
            report |= measure(server.url, server.pid, images, args)
    report["goals"] = goals(report)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
