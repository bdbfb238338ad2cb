"""The Python API: train, encode, index, search and evaluate, as the CLI does.

>>> from hashsearch import api
>>> run = api.train(RunConfig(), Path("runs/demo"))           # doctest: +SKIP
>>> report = api.evaluate(run)                                 # doctest: +SKIP
>>> report["two_stage"]["map_all"]                             # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from hashsearch import __version__
from hashsearch.config import RunConfig, with_overrides
from hashsearch.data import load_dataset
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.decode import decode_image
from hashsearch.data.protocols import Splits, make_splits, query_sample
from hashsearch.device import autocast_precision, native_bf16
from hashsearch.distributed import is_main_process, world
from hashsearch.encoding import Encoded, encode_images
from hashsearch.errors import HashsearchError
from hashsearch.evaluation import evaluate_retrieval, reranker_names
from hashsearch.index import Backend, HashIndex
from hashsearch.index.features import DEFAULT_PQ_BYTES
from hashsearch.index.store import FLAT, model_fingerprint
from hashsearch.methods import create_method
from hashsearch.rerank import RERANKERS
from hashsearch.robustness import corruption_records
from hashsearch.run import Run, load_run, save_run
from hashsearch.search import Hits, check_search_args, two_stage_search
from hashsearch.training.trainer import Trainer, TrainingData, seed_everything


def load_data(config: RunConfig, data_path: str | None = None) -> tuple[ImageDataset, Splits]:
    """The data set a config names and its protocol's splits (same seed, same splits)."""
    data = config.data
    dataset = load_dataset(data.dataset, data_path or data.path, data.image_size)
    return dataset, make_splits(dataset, data.protocol, config.seed, data.val_per_class)


def training_data(
    dataset: ImageDataset, splits: Splits, retrieval_size: int, seed: int
) -> TrainingData:
    """Cut train/val arrays, and a fixed training sample for validation queries to search."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.permutation(splits.train)[:retrieval_size])
    return TrainingData(
        train_images=dataset.images[splits.train],
        train_labels=dataset.labels[splits.train],
        val_images=dataset.images[splits.val],
        val_labels=dataset.labels[splits.val],
        retrieval_images=dataset.images[sample],
        retrieval_labels=dataset.labels[sample],
        num_classes=dataset.num_classes,
    )


def environment() -> dict[str, Any]:
    """Software and hardware facts recorded with every run and benchmark."""
    return {
        "hashsearch": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        # a virtual machine's model name may hide the generation ("AMD EPYC"): these tell
        # one from another, and so which records' times compare
        "cpu_family_model": cpu_family_model(),
        # whether precision "auto" trains in bf16 on this CPU (AVX-512 BF16 or AMX)
        "native_bf16": native_bf16("cpu"),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }


def _first_cpu_info() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo, empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]
    pairs = (line.split(":", 1) for line in first.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def cpu_model() -> str:
    return _first_cpu_info().get("model name") or platform.processor() or platform.machine()


def cpu_family_model() -> str | None:
    """The CPU's "family F model M" (x86), None where /proc/cpuinfo does not say."""
    info = _first_cpu_info()
    if "cpu family" not in info or "model" not in info:
        return None
    return f"family {info['cpu family']} model {info['model']}"


def decided_here(config: RunConfig) -> RunConfig:
    """`config` with what this machine decides made concrete: `train.precision` "auto"
    becomes the precision training runs in here, so a saved run says which it was."""
    precision = autocast_precision(config.train.precision, config.train.device)
    return with_overrides(config, {"train.precision": precision})


def train(config: RunConfig, out: Path, progress: bool = True) -> Run:
    """Train `config`, keep the epoch the validation split likes best, write the run to `out`."""
    config = decided_here(config)
    dataset, splits = load_data(config)
    seed_everything(config.seed)  # the initial weights depend on the seed, too
    model = create_method(config, dataset.num_classes, dataset.image_shape)
    # Resolve the method's defaults into the saved config, so it records every value used.
    config = with_overrides(config, {"method.params": model.params.model_dump(mode="json")})
    trainer = Trainer(config.train, config.seed)
    data = training_data(dataset, splits, config.train.val_retrieval_size, config.seed)
    result = trainer.fit(model, data, progress=progress and is_main_process())
    meta = {
        "num_classes": dataset.num_classes,
        "classes": list(dataset.classes),
        "image_shape": list(dataset.image_shape),
        "dataset": dataset.name,
        "splits": splits.sizes(),
        "bits": config.method.bits,
        "method": config.method.name,
        "feature_dim": model.encoder.feature_dim,
        "environment": environment(),
        "processes": world()[1],
    }
    metrics = {
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "history": result.history,
        **({"budget_plan": result.plan} if result.plan is not None else {}),
    }
    if is_main_process():  # under torchrun every process trains, one writes
        save_run(out, config, model, meta, metrics)
    return Run(out, config, meta, model.eval())


def finished_run(directory: Path, config: RunConfig) -> Run | None:
    """The run in `directory` if one finished there with `config`, else None.

    Method parameters are compared only where `config` names them, and against the
    loaded method's parameters, not the saved file's: a run saved before a parameter
    existed lacks its key and was trained with its default (a new parameter's default
    keeps the old behaviour), which the loaded method resolves. A `train.precision`
    of "auto" matches the precision it means on this machine. Another config there
    is an error: reusing it would pass off one experiment as another. `config`'s
    encode settings are not compared but applied: they say how the trained weights
    encode, which does not change the weights (the saved ones scored the epochs in
    validation).
    """
    if not (directory / "model.safetensors").is_file():
        return None
    run = load_run(directory, encode=config.encode.model_dump())
    config = decided_here(config)
    exclude: Any = {"method": {"params"}, "train": {"device"}, "encode": True}
    saved_params = run.model.params.model_dump()
    params_match = all(saved_params.get(k) == v for k, v in config.method.params.items())
    if not params_match or run.config.model_dump(exclude=exclude) != config.model_dump(
        exclude=exclude
    ):
        raise HashsearchError(
            f"{directory} holds a run with another config; remove it or choose another output"
        )
    return run


# (queries, database) of each kind of evaluation (`searched_splits`).
SEARCHED_SPLITS = {"query": ("query", "database"), "val": ("val", "train")}
# The splits whose images are queries of an evaluation.
QUERY_SPLITS = tuple(queries for queries, _ in SEARCHED_SPLITS.values())


def encode_split(
    run: Run,
    split: str,
    data_path: str | None = None,
    batch_size: int = 512,
    as_queries: bool | None = None,
) -> tuple[Encoded, list[str]]:
    """Codes, features and labels of one protocol split, plus the items' ids.

    `as_queries` (`encode_images`) defaults to whether the split is one of
    `QUERY_SPLITS`: evaluations search with those and store the others.
    """
    dataset, splits = load_data(run.config, data_path)
    rows = splits.get(split)
    encoded = encode_images(
        run.model,
        dataset.images[rows],
        dataset.labels[rows],
        batch_size=batch_size,
        device=run.config.train.device,
        as_queries=split in QUERY_SPLITS if as_queries is None else as_queries,
    )
    return encoded, [str(i) for i in dataset.ids[rows]]


def save_encoded(encoded: Encoded, ids: list[str], path: Path) -> Path:
    """Write codes, features, labels and ids as one .npz any tool can read; its path."""
    path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    if not is_main_process():  # under torchrun every process encodes, one writes
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        codes=encoded.codes,
        features=encoded.features,
        labels=encoded.labels,
        ids=np.asarray(ids),
    )
    return path


def build_index(
    run: Run,
    out: Path,
    split: str = "database",
    data_path: str | None = None,
    features: str = "auto",
    pq_bytes: int = DEFAULT_PQ_BYTES,
    backend: Backend = FLAT,
) -> HashIndex:
    """Encode a split (the database by default) and save it as an index directory.

    `features` is how re-rank features are stored (`hashsearch.index.features`),
    `backend` where codes live and how stage 1 searches them (`hashsearch.index.backends`).
    """
    encoded, ids = encode_split(run, split, data_path, as_queries=False)
    index = HashIndex.build(
        encoded,
        ids,
        {
            "method": run.meta["method"],
            "classes": run.meta["classes"],
            "split": split,
            "dataset": run.meta["dataset"],
            "protocol": run.config.data.protocol,
            "hashsearch_version": __version__,
        },
        features=features,
        pq_bytes=pq_bytes,
        backend=backend if is_main_process() else FLAT,  # one process fills Milvus
    )
    if is_main_process():  # under torchrun every process encodes, one writes
        index.save(out, model_dir=run.directory)
    return index


def index_model(index: HashIndex, index_dir: Path, run: Run | None = None) -> Run:
    """The model an index's items were encoded with (queries and new items need it).

    A `run` given instead (e.g. the training run, to encode on another device) must
    be that very model: codes of another model are meaningless against the index.
    """
    if run is not None:
        expected = index.info.get("model_fingerprint")
        if expected is not None and model_fingerprint(run.directory) != expected:
            raise HashsearchError(
                f"run {run.directory} is not the model index {index_dir} was built with; "
                "search with the index's own model or rebuild the index from this run"
            )
        return run
    if index.model_dir is None:
        raise HashsearchError(
            f"index {index_dir} holds no model to encode images with; "
            "rebuild it with `hashsearch index --run RUN`"
        )
    return load_run(index.model_dir)


def encode_files(run: Run, images: list[Path], as_queries: bool) -> Encoded:
    """Image files encoded by `run`'s model, converted as its training images were, as
    queries or as items to store (`encode_images`)."""
    shape = tuple(run.meta["image_shape"])
    pixels = np.stack([load_query_image(path, shape) for path in images])
    return encode_images(run.model, pixels, np.zeros(len(images), np.int64), as_queries=as_queries)


def add_to_index(index_dir: Path, images: list[Path], labels: list[int]) -> HashIndex:
    """Encode image files with the index's model and add them (ids: their paths); saved."""
    with HashIndex.editing(index_dir) as index:
        classes = index.info.get("classes", [])
        bad = [label for label in labels if not 0 <= label < max(1, len(classes))]
        if bad:
            raise HashsearchError(
                f"label {bad[0]} is out of range; the index has {len(classes)} classes"
            )
        if np.asarray(index.labels).ndim != 1:
            raise HashsearchError(f"index {index_dir} is multi-label; adding files needs one label")
        encoded = encode_files(index_model(index, index_dir), images, as_queries=False)
        encoded = Encoded(encoded.codes, encoded.features, np.asarray(labels, np.int64))
        index.add(encoded, [str(path) for path in images])
    return index


def remove_from_index(index_dir: Path, ids: list[str]) -> int:
    """Remove items by id from a saved index; how many were removed."""
    with HashIndex.editing(index_dir) as index:
        return index.remove(ids)


EvaluationSplit = Literal["query", "val"]


def searched_splits(split: str) -> tuple[str, str]:
    """(queries, database) of an evaluation: the protocol's query set against its
    database, or (`val`) the validation images against the training images, which
    lets settings such as the re-ranking depth be chosen without the query set."""
    if split not in SEARCHED_SPLITS:
        raise HashsearchError(f"unknown evaluation split {split!r}; use query or val")
    return SEARCHED_SPLITS[split]


def evaluate(
    run: Run,
    candidates: int = 1000,
    radius: int | None = None,
    rerank: str | Sequence[str] = "cosine",
    data_path: str | None = None,
    database: Encoded | None = None,
    query: Encoded | None = None,
    split: EvaluationSplit = "query",
) -> dict[str, Any]:
    """Stage-1 and two-stage metrics of the query split against the database split
    (or of `split` "val": validation images against training images).

    `database` and `query` may be passed when they are already encoded (e.g. read back
    from an index), so that no split is encoded twice; they must then be `split`'s,
    which only labels the report. `rerank` may name several strategies, all scored
    on one stage-1 ranking (`evaluate_retrieval`).
    """
    check_search_args(candidates, radius)  # before encoding, not after
    names = reranker_names(rerank)
    query_split, database_split = searched_splits(split)
    if query is None:
        query, _ = encode_split(run, query_split, data_path)
    if database is None:
        database, _ = encode_split(run, database_split, data_path)
    report = evaluate_retrieval(query, database, run.model.bits, candidates, radius, names)
    report["run"] = str(run.directory)
    report["settings"]["split"] = split
    return report


def write_report(report: dict[str, Any], directory: Path, name: str = "evaluation.json") -> Path:
    """Save an evaluation report as `directory/name`; its path."""
    path = directory / name
    path.write_text(json.dumps(report, indent=2))
    return path


def load_query_image(
    data: bytes | Path, image_shape: tuple[int, int, int], name: str | None = None
) -> np.ndarray:
    """A query file (its path, or its bytes named `name`) as the model's (H, W, C) uint8
    input, converted like the database."""
    channels, height, width = image_shape
    rgb = decode_image(
        data,
        name or str(data),
        image_size=height if height == width else None,
        expected_hw=(height, width),
    )
    if channels == 1:
        return np.asarray(Image.fromarray(rgb).convert("L"))[..., None]
    return rgb


def search_images(
    index_dir: Path,
    images: list[Path],
    top: int = 10,
    candidates: int = 100,
    radius: int | None = None,
    rerank: str = "cosine",
    run: Run | None = None,
) -> list[dict[str, Any]]:
    """Two-stage search of an index directory with query image files; JSON-ready results.

    Queries are encoded by the index's own model, or by `run` if it is that model.
    """
    check_search_args(candidates, radius, top)  # before loading and encoding, not after
    RERANKERS.get(rerank)
    index = HashIndex.load(index_dir)
    query = encode_files(index_model(index, index_dir, run), images, as_queries=True)
    found = two_stage_search(index, query.codes, query.features, top, candidates, radius, rerank)
    return [
        {"query": str(path), "results": hits_as_dicts(index, hits)}
        for path, hits in zip(images, found, strict=True)
    ]


def hits_as_dicts(index: HashIndex, hits: Hits) -> list[dict[str, Any]]:
    """One query's hits as JSON-ready rows: position, id, label names, distance, score."""
    classes = index.info.get("classes", [])  # an index built from Python may name none
    rows = []
    for pos, item in enumerate(hits.items):
        label = np.asarray(index.labels[item])
        numbers = np.flatnonzero(label) if label.ndim else [int(label)]
        names = [classes[i] if i < len(classes) else str(i) for i in numbers]
        rows.append(
            {
                "item": int(item),
                "id": index.ids[item],
                "label": ",".join(names),
                "hamming": int(hits.hamming[pos]),
                "score": None if hits.scores is None else float(hits.scores[pos]),
            }
        )
    return rows


def evaluate_corruptions(
    run: Run,
    corruptions: list[str],
    candidates: int = 1000,
    queries_per_class: int | None = None,
    data_path: str | None = None,
    split: EvaluationSplit = "query",
) -> list[dict[str, Any]]:
    """`hashsearch.robustness.corruption_records` for a run: its query split (or
    `queries_per_class` of it, the same draw every time), corrupted, against its clean
    database. With `split="val"` the validation images query the training images
    instead, so that robustness settings can be chosen without the query set."""
    check_search_args(candidates, None)  # before encoding, not after
    query_split, database_split = searched_splits(split)
    dataset, splits = load_data(run.config, data_path)
    rows, base = splits.get(query_split), splits.get(database_split)
    if queries_per_class is not None:
        rows = query_sample(dataset.labels, rows, queries_per_class)
    device = run.config.train.device

    def encode_queries(images: np.ndarray, labels: np.ndarray) -> Encoded:
        return encode_images(run.model, images, labels, device=device, as_queries=True)

    database = encode_images(run.model, dataset.images[base], dataset.labels[base], device=device)
    found = corruption_records(
        encode_queries,
        database,
        dataset.images[rows],
        dataset.labels[rows],
        run.model.bits,
        corruptions,
        candidates,
        seed=run.config.seed,
    )
    about = {
        "method": run.meta["method"],
        "bits": run.model.bits,
        "seed": run.config.seed,
        "split": split,
    }
    return [{**about, "run": str(run.directory), **record} for record in found]
