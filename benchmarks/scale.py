"""Search at scale: a million-item index on one core (issue 5).

    python benchmarks/scale.py --run runs/bench/full-64b-seed0 \
        --data ../shared/data/cifar10-jpg.tar.gz --items 1000000 --queries 1000 \
        --cache runs/scale --out docs/performance.json

The database: the run's `database` split (for `cifar10-2`, the training images),
copy 0 as it is and every further copy
under its own random augmentation (translation by up to 4 pixels, reflect
padding, and a random horizontal flip), encoded by the trained model until
`--items` items exist; an item keeps its image's label. Each encoded copy is
cached under `--cache`, so an interrupted build resumes. Encoding is one
forward pass per image (no flip averaging), for queries and items alike.
Queries: `--queries` images of the query split (test images, never in the
database), evenly spaced.

Every search is timed on one thread (FAISS and torch), one query at a time
(p50 / p99 latency), and batched (throughput). Figures:
- stage 1 alone with IndexBinaryFlat (exact), IndexBinaryHash, IndexBinaryMultiHash
  and IndexBinaryIVF, each with its recall of the exact Hamming top-k (ties counted
  as hits: an item as close as the exact k-th one is a correct answer);
- two-stage search through `hashsearch.search.two_stage_search` on the
  saved `HashIndex` (product-quantised features, the `auto` form) with the stored
  flat backend (exact) and the stored IVF backend (`hashsearch index --backend ivf`),
  against exhaustive float search (FAISS
  IndexFlatIP over the L2-normalised float32 features) in the same run;
  mAP@100 of each, relevance by class;
- bytes per image of codes, of re-rank features, of the index on disk, and the
  resident memory the loaded index adds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from hashsearch import api
from hashsearch.config import AugmentConfig
from hashsearch.encoding import Encoded, encode_images
from hashsearch.index import Backend, HashIndex
from hashsearch.index.store import current_version
from hashsearch.metrics import average_precision_at_k
from hashsearch.rerank import l2_normalized
from hashsearch.search import two_stage_search
from hashsearch.training.augment import augment

AUGMENT = AugmentConfig(translate=4, flip=True)


def database_copy(run: api.Run, images: np.ndarray, labels: np.ndarray, copy: int) -> Encoded:
    """Copy 0: the images; copy c: each image under an augmentation drawn from seed c."""
    if copy > 0:
        generator = torch.Generator().manual_seed(copy)
        nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
        images = augment(nchw, AUGMENT, generator).permute(0, 2, 3, 1).contiguous().numpy()
    return encode_images(run.model, images, labels)


def build_database(run: api.Run, data: str | None, items: int, cache: Path) -> Encoded:
    dataset, splits = api.load_data(run.config, data)
    rows = splits.database
    images, labels = dataset.images[rows], dataset.labels[rows]
    copies = -(-items // len(rows))
    parts = []
    cache.mkdir(parents=True, exist_ok=True)
    for copy in range(copies):
        path = cache / f"copy-{copy:03d}.npz"
        if not path.is_file():
            started = time.perf_counter()
            part = database_copy(run, images, labels, copy)
            np.savez(
                path.with_suffix(".tmp.npz"),
                codes=part.codes,
                features=part.features,
                labels=part.labels,
            )
            os.replace(path.with_suffix(".tmp.npz"), path)
            print(
                json.dumps(
                    {
                        "encoded_copy": copy,
                        "items": len(rows),
                        "seconds": round(time.perf_counter() - started, 1),
                    }
                ),
                flush=True,
            )
        saved = np.load(path)
        parts.append(Encoded(saved["codes"], saved["features"], saved["labels"]))
    return Encoded(
        np.concatenate([p.codes for p in parts])[:items],
        np.concatenate([p.features for p in parts])[:items],
        np.concatenate([p.labels for p in parts])[:items],
    )


def queries(run: api.Run, data: str | None, count: int) -> Encoded:
    dataset, splits = api.load_data(run.config, data)
    rows = splits.query[np.linspace(0, len(splits.query) - 1, count).astype(int)]
    return encode_images(run.model, dataset.images[rows], dataset.labels[rows], as_queries=True)


def latencies(search_one, n: int, results: list | None = None) -> dict[str, float]:
    """p50 / p99 milliseconds of `search_one(i)` over queries 0..n-1, in steady state.

    One untimed pass over the queries comes first: the index is memory-mapped, and
    without it the first setting timed after loading pays the page faults of every
    feature page it touches (measured: 2.2 ms instead of 1.3 ms for flat two-stage),
    which a running server pays once. The answers are appended to `results` when it
    is given (no second pass to score them).
    """
    for i in range(n):
        search_one(i)
    times = []
    for i in range(n):
        started = time.perf_counter()
        found = search_one(i)
        times.append((time.perf_counter() - started) * 1000)
        if results is not None:
            results.append(found)
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 4),
        "p99_ms": round(float(np.percentile(times, 99)), 4),
    }


def hamming_recall(found_distances: np.ndarray, exact_kth: np.ndarray) -> float:
    """Share of returned items at most as far as the exact k-th neighbour (ties are hits)."""
    k = found_distances.shape[1]
    hits = (found_distances <= exact_kth[:, None]) & (found_distances >= 0)
    return float(hits.sum() / (k * len(found_distances)))


def map_at(items: np.ndarray, query_labels: np.ndarray, labels: np.ndarray, k: int) -> float:
    relevant = labels[items] == query_labels[:, None]
    return float(average_precision_at_k(relevant, k).mean())


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def saved_index(database: Encoded, kind: str, cache: Path) -> tuple[HashIndex, int, float]:
    """A HashIndex of `kind` saved and loaded back; its bytes on disk and resident MB."""
    directory = cache / f"index-{kind}"
    ids = [str(i) for i in range(len(database.codes))]
    HashIndex.build(database, ids, {"method": "scale"}, backend=Backend(kind)).save(directory)
    loaded_at = resident_mb()
    index = HashIndex.load(directory)
    resident = resident_mb() - loaded_at
    disk = sum(p.stat().st_size for p in current_version(directory).rglob("*") if p.is_file())
    return index, disk, resident


def stage1_indexes(codes: np.ndarray, bits: int, nlist: int) -> dict[str, Any]:
    flat = faiss.IndexBinaryFlat(bits)
    hashed = faiss.IndexBinaryHash(bits, 16)
    hashed.nflip = 2
    multi = faiss.IndexBinaryMultiHash(bits, 4, 16)
    multi.nflip = 1
    quantizer = faiss.IndexBinaryFlat(bits)
    ivf = faiss.IndexBinaryIVF(quantizer, bits, nlist)
    ivf.train(codes[np.random.default_rng(0).permutation(len(codes))[: 64 * nlist]])
    for index in (flat, hashed, multi, ivf):
        index.add(codes)
    return {
        "IndexBinaryFlat": flat,
        "IndexBinaryHash(b=16,nflip=2)": hashed,
        "IndexBinaryMultiHash(4x16,nflip=1)": multi,
        "IndexBinaryIVF": ivf,
        "_quantizer": quantizer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", default=None)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100, help="results scored (mAP@k, recall@k)")
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--nlist", type=int, default=1024, help="IndexBinaryIVF lists")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--cache", type=Path, default=Path("runs/scale"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    environment = api.environment()
    print(json.dumps(environment), flush=True)
    run = api.load_run(args.run)
    run.model.encoder.flip_average = False  # one pass per image: 1M images in minutes
    database = build_database(run, args.data, args.items, args.cache)
    query = queries(run, args.data, args.queries)
    bits, n, k = run.model.bits, len(database.codes), args.k
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "items": n,
        "bits": bits,
        "queries": len(query.codes),
        "k": k,
        "environment": environment,
    }

    # exhaustive float search: the baseline
    normalized = np.ascontiguousarray(l2_normalized(database.features))
    exhaustive = faiss.IndexFlatIP(normalized.shape[1])
    exhaustive.add(normalized)
    q_normalized = np.ascontiguousarray(l2_normalized(query.features))
    timing = latencies(lambda i: exhaustive.search(q_normalized[i : i + 1], k), len(query.codes))
    _, exhaustive_items = exhaustive.search(q_normalized, k)
    exhaustive_map = map_at(exhaustive_items, query.labels, database.labels, k)
    result["exhaustive"] = {**timing, "map_at_k": round(exhaustive_map, 5)}
    print(json.dumps({"exhaustive": result["exhaustive"]}), flush=True)
    exhaustive.reset()  # frees its copy of the float features

    # stage 1 alone
    indexes = stage1_indexes(database.codes, bits, args.nlist)
    exact_d, _ = indexes["IndexBinaryFlat"].search(query.codes, k)
    stage1 = {}
    for name, index in indexes.items():
        if name.startswith("_"):
            continue
        settings = (
            [(p, f"{name}(nprobe={p})") for p in args.nprobe] if "IVF" in name else [(None, name)]
        )
        for nprobe, label in settings:
            if nprobe is not None:
                index.nprobe = nprobe
            timing = latencies(
                lambda i, index=index: index.search(query.codes[i : i + 1], k), len(query.codes)
            )
            started = time.perf_counter()
            distances, _ = index.search(query.codes, k)
            batched = len(query.codes) / (time.perf_counter() - started)
            stage1[label] = {
                **timing,
                "batched_queries_per_s": round(batched, 1),
                "recall_of_exact_top_k": round(hamming_recall(distances, exact_d[:, -1]), 4),
            }
            print(json.dumps({"stage1": label, **stage1[label]}), flush=True)
    result["stage1"] = stage1

    # two-stage through the library's own search on saved HashIndexes (PQ features, auto
    # form): the stored flat backend, and the stored IVF backend at each nprobe
    before = resident_mb()
    index, disk, resident = saved_index(database, "flat", args.cache)
    result["bytes_per_image_detail"] = {
        "codes": bits // 8,
        "rerank_features": index.codec.code_size,
        "rerank_codec": index.codec.name,
        "float32_features": 4 * index.feature_dim,
        "index_on_disk": round(disk / n, 2),
        "resident_after_load": round(resident * 2**20 / n, 2),
    }
    stored_ivf, _, _ = saved_index(database, "ivf", args.cache)
    settings = [(index, "IndexBinaryFlat", None)] + [
        (stored_ivf, f"IndexBinaryIVF(nlist={stored_ivf.store.index.nlist},nprobe={p})", p)
        for p in args.nprobe
    ]
    two_stage = {}
    for index, backend, nprobe in settings:
        if nprobe is not None:
            index.store.index.nprobe = nprobe
        for candidates in args.candidates:

            def search_one(i: int, candidates: int = candidates, index: HashIndex = index) -> list:
                return two_stage_search(
                    index,
                    query.codes[i : i + 1],
                    query.features[i : i + 1],
                    top=k,
                    candidates=candidates,
                )

            answers: list = []
            timing = latencies(search_one, len(query.codes), answers)
            hits = [found[0].items for found in answers]
            width = max(len(h) for h in hits)
            items = np.stack([np.pad(h, (0, width - len(h)), constant_values=h[-1]) for h in hits])
            mean_ap = map_at(items, query.labels, database.labels, k)
            label = f"{backend}+cosine@{candidates}"
            two_stage[label] = {
                **timing,
                "map_at_k": round(mean_ap, 5),
                "speedup_vs_exhaustive": round(
                    result["exhaustive"]["p50_ms"] / timing["p50_ms"], 1
                ),
                "map_ratio_vs_exhaustive": round(mean_ap / exhaustive_map, 4),
            }
            print(json.dumps({"two_stage": label, **two_stage[label]}), flush=True)
    result["two_stage"] = two_stage
    result["rss_before_index_mb"] = round(before, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    # the headline: the fastest two-stage setting that keeps >= 99% of exhaustive mAP@k
    good = {name: r for name, r in two_stage.items() if r["map_ratio_vs_exhaustive"] >= 0.99}
    best_name = min(good or two_stage, key=lambda name: two_stage[name]["p50_ms"])
    best = two_stage[best_name]
    result.update(
        {
            "headline_setting": best_name,
            "two_stage_p50_ms": best["p50_ms"],
            "two_stage_p99_ms": best["p99_ms"],
            "exhaustive_p50_ms": result["exhaustive"]["p50_ms"],
            "speedup_vs_exhaustive": best["speedup_vs_exhaustive"],
            "map100_ratio": best["map_ratio_vs_exhaustive"],
            # what a search needs per item: its code and its compact re-rank features
            "bytes_per_image": result["bytes_per_image_detail"]["codes"]
            + result["bytes_per_image_detail"]["rerank_features"],
        }
    )
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("environment", "stage1", "two_stage")}
        ),
        flush=True,
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
