"""The `hashsearch` command: train | encode | index | search | serve | evaluate | demo | bench.

Every command is a thin layer over `hashsearch.api`; a `HashsearchError` from
anywhere below becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml
from rich.console import Console

from hashsearch import api, distributed
from hashsearch.config import RunConfig, load_run_config, with_overrides
from hashsearch.contact_sheet import write_contact_sheet
from hashsearch.data import list_datasets
from hashsearch.data.corruptions import CORRUPTIONS
from hashsearch.data.protocols import PROTOCOLS
from hashsearch.errors import HashsearchError
from hashsearch.index import Backend
from hashsearch.index.backends import BACKEND_KINDS
from hashsearch.index.features import FeatureForm
from hashsearch.methods import list_methods
from hashsearch.presets import PRESETS, default_preset, preset_config
from hashsearch.report import metrics_table, plot_pr_curve
from hashsearch.rerank import RERANKERS
from hashsearch.study import (
    CONTESTANTS,
    STUDY_PRESETS,
    run_study,
    study_cells,
    study_from_names,
)
from hashsearch.study.robustness import run_robustness, severity_ratio
from hashsearch.study.tuning import read_choices, tune_learning_rates

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Image retrieval with deep supervised hashing and two-stage search.",
)
console = Console(stderr=True)


def _names(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(names)


BackendKind = StrEnum("BackendKind", {kind: kind for kind in BACKEND_KINDS})  # type: ignore[misc]


class Split(StrEnum):
    train = "train"
    val = "val"
    query = "query"
    database = "database"
    all = "all"


RunDir = Annotated[Path, typer.Option("--run", help="A run directory written by `train`.")]
DataPath = Annotated[
    str | None,
    typer.Option("--data", help="Data set path, if it moved since training (default: the run's)."),
]
Device = Annotated[str | None, typer.Option(help="torch device, e.g. cpu or cuda (default: cpu).")]


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """KEY=VALUE strings -> dict, values read as YAML (so 0.5, true, [1, 2] work)."""
    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"\w+(\.\w+)*", key):
            raise HashsearchError(f"{what} {item!r} is not KEY=VALUE with a dotted.key")
        try:
            values[key] = yaml.safe_load(raw)
        except (yaml.YAMLError, ValueError):  # ValueError: a date that is none, 2001-02-30
            raise HashsearchError(f"{what} {item!r}: the value is not valid YAML") from None
    return values


def open_run(run: Path, device: str | None) -> api.Run:
    return api.load_run(run, distributed.process_device(device or "cpu"))


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Run directory to write.")],
    dataset: Annotated[str | None, typer.Option(help=f"One of: {_names(list_datasets())}.")] = None,
    data: Annotated[str | None, typer.Option(help="Path of the data (archive or folder).")] = None,
    protocol: Annotated[
        str | None, typer.Option(help=f"One of: {_names(PROTOCOLS.names())}.")
    ] = None,
    method: Annotated[str | None, typer.Option(help=f"One of: {_names(list_methods())}.")] = None,
    bits: Annotated[int | None, typer.Option(help="Code length in bits, 8-256.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    budget_minutes: Annotated[
        float | None, typer.Option(help="Train as many of the epochs as fit in N minutes.")
    ] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    preset: Annotated[str | None, typer.Option(help=f"One of: {_names(PRESETS.names())}.")] = None,
    config: Annotated[Path | None, typer.Option(help="Start from a YAML RunConfig.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Resize images to N x N.")] = None,
    device: Device = None,
    param: Annotated[list[str], typer.Option(help="Method parameter KEY=VALUE.")] = [],  # noqa: B006
    set_: Annotated[
        list[str], typer.Option("--set", help="Any config key, dotted.key=VALUE.")
    ] = [],  # noqa: B006
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a hashing model and write a run directory (config, weights, metrics)."""
    if config and preset:
        raise HashsearchError("give --config or --preset, not both")
    base = load_run_config(config) if config else preset_config(preset or default_preset(dataset))
    flags = {
        "data.dataset": dataset,
        "data.path": data,
        "data.protocol": protocol,
        "data.image_size": image_size,
        "method.name": method,
        "method.bits": bits,
        "train.epochs": epochs,
        "train.budget_seconds": None if budget_minutes is None else budget_minutes * 60,
        "seed": seed,
        "train.device": device,
    }
    overrides = {k: v for k, v in flags.items() if v is not None}
    # A preset's method parameters belong to its method; another --method starts afresh.
    same_method = method is None or method == base.method.name
    if param or not same_method:
        params = base.method.params if same_method else {}
        overrides["method.params"] = {**params, **parse_assignments(param, "--param")}
    overrides.update(parse_assignments(set_, "--set"))
    run = api.train(with_overrides(base, overrides), out, progress=progress)
    if not distributed.is_main_process():
        return
    metrics = json.loads((out / "metrics.json").read_text())
    plan = metrics.get("budget_plan")
    fitted = (
        f"{plan['epochs']} of {run.config.train.epochs} epochs fitted the budget "
        f"(estimated {plan['estimated_seconds']:.0f} s); "
        if plan
        else ""
    )
    console.print(
        f"trained {run.meta['method']} ({run.meta['bits']} bits) in "
        f"{metrics['train_seconds']:.1f} s; {fitted}best validation epoch "
        f"{metrics['best_epoch']}; run written to {out}"
    )


@app.command()
def encode(
    run: RunDir,
    out: Annotated[Path, typer.Option(help="Output .npz (codes, features, labels, ids).")],
    split: Annotated[Split, typer.Option(help="Which protocol split to encode.")] = Split.database,
    data: DataPath = None,
    device: Device = None,
    queries: Annotated[
        bool | None,
        typer.Option(
            "--queries/--items",
            help="Encode as queries (with the run's encode.query_shifts views) or as "
            "items to store; default: queries for the query and val splits.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Encode a split to packed uint8 codes and float32 features (.npz)."""
    encoded, ids = api.encode_split(open_run(run, device), split.value, data, as_queries=queries)
    written = api.save_encoded(encoded, ids, out)
    console.print(f"encoded {len(ids)} {split.value} items to {written}")


@app.command()
def index(
    run: RunDir,
    out: Annotated[Path, typer.Option(help="Index directory to write.")],
    split: Annotated[Split, typer.Option(help="Which split to index.")] = Split.database,
    data: DataPath = None,
    device: Device = None,
    features: Annotated[
        FeatureForm,
        typer.Option(help="Re-rank feature storage; auto: pq for 4,096+ items, else float32."),
    ] = FeatureForm.auto,
    pq_bytes: Annotated[int, typer.Option(help="Bytes per item of pq features.")] = 32,
    backend: Annotated[
        BackendKind,
        typer.Option(help="Stage 1: flat (exact), hash or ivf (approximate FAISS), or milvus."),
    ] = BackendKind.flat,
    milvus_uri: Annotated[
        str | None,
        typer.Option(help="milvus: a milvus-lite file (x.db) or a server, http://host:19530."),
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="milvus: the collection to create (default: a new name).")
    ] = None,
) -> None:
    """Build a searchable index directory from a split (the database by default)."""
    where = Backend(backend.value, milvus_uri, collection)
    built = api.build_index(
        open_run(run, device), out, split.value, data, features.value, pq_bytes, where
    )
    console.print(
        f"indexed {len(built)} items ({built.bits} bits, {built.codec.code_size} bytes of "
        f"{built.codec.name} re-rank features each, {backend.value} backend) in {out}"
    )


IndexDir = Annotated[Path, typer.Option("--index", help="Index directory.")]


@app.command("index-add")
def index_add(
    images: Annotated[list[Path], typer.Argument(help="Image files to add (ids: their paths).")],
    index: IndexDir,
    label: Annotated[int, typer.Option(help="Class number of the added images.")],
) -> None:
    """Add image files to an index, encoded with its model; saved atomically."""
    updated = api.add_to_index(index, images, [label] * len(images))
    console.print(f"added {len(images)} items; {index} holds {len(updated)}")


@app.command("index-remove")
def index_remove(
    ids: Annotated[list[str], typer.Argument(help="Ids of the items to remove.")],
    index: IndexDir,
) -> None:
    """Remove items from an index by id; saved atomically."""
    removed = api.remove_from_index(index, ids)
    console.print(f"removed {removed} items from {index}")


@app.command()
def search(
    images: Annotated[list[Path], typer.Argument(help="Query image files.")],
    index: Annotated[Path, typer.Option("--index", help="Index directory.")],
    top: Annotated[int, typer.Option(help="Results per query.")] = 10,
    candidates: Annotated[int, typer.Option(help="Stage-1 candidates re-ranked.")] = 100,
    radius: Annotated[int | None, typer.Option(help="Stage 1: all within this radius.")] = None,
    rerank: Annotated[str, typer.Option(help=f"One of: {_names(RERANKERS.names())}.")] = "cosine",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    run: Annotated[
        Path | None,
        typer.Option(help="Encode queries with this run (it must be the index's model)."),
    ] = None,
    device: Device = None,
    contact_sheet: Annotated[
        Path | None,
        typer.Option(help="Also write the queries and their results as one PNG, a row each."),
    ] = None,
    data: DataPath = None,
) -> None:
    """Search an index with query images (two-stage: Hamming, then re-ranking)."""
    model = open_run(run, device) if run is not None else None
    found = api.search_images(index, images, top, candidates, radius, rerank, model)
    if contact_sheet is not None:
        sheet = write_contact_sheet(index, found, contact_sheet, data)
        console.print(f"contact sheet: {sheet}")
    if as_json:
        print(json.dumps(found, indent=2))
        return
    for query in found:
        print(f"query {query['query']}")
        for rank, hit in enumerate(query["results"], 1):
            score = "" if hit["score"] is None else f"  cosine {hit['score']:.4f}"
            print(
                f"  {rank:3d}. {hit['id']}  label {hit['label']}  hamming {hit['hamming']}{score}"
            )


@app.command()
def serve(
    index: IndexDir,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    data: DataPath = None,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads of torch and FAISS.")] = 1,
    max_upload_mb: Annotated[
        float, typer.Option(min=0.01, help="Largest upload accepted, MB.")
    ] = 10.0,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Search processes behind the HTTP process (on 2 cores one answered as "
            "many as two, or more); 0: answer on a thread of the HTTP process.",
        ),
    ] = 1,
) -> None:
    """Serve an index over HTTP: the web page at /, the JSON API (POST /search, /docs)."""
    from hashsearch.server import serve as run_server  # FastAPI loads only for this command

    run_server(index, host, port, data, threads, access_log, int(max_upload_mb * 2**20), workers)


@app.command()
def evaluate(
    run: RunDir,
    candidates: Annotated[int, typer.Option(help="Stage-1 list length re-ranked.")] = 1000,
    radius: Annotated[int | None, typer.Option(help="Re-rank all within this radius.")] = None,
    rerank: Annotated[str, typer.Option(help=f"One of: {_names(RERANKERS.names())}.")] = "cosine",
    out: Annotated[
        Path | None, typer.Option(help="Where to write JSON + PR plot (default: the run).")
    ] = None,
    data: DataPath = None,
    device: Device = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    corruptions: Annotated[
        bool,
        typer.Option(help="Instead: corrupted queries, clean database (corruptions.json)."),
    ] = False,
    queries_per_class: Annotated[
        int | None, typer.Option(min=1, help="With --corruptions: this many queries per class.")
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="query (test queries against the database) or val (validation queries "
            "against the training images: for choosing settings without the query set)."
        ),
    ] = "query",
) -> None:
    """Evaluate stage 1 and two-stage retrieval of the query split against the database
    (or, with --split val, of the validation images against the training images)."""
    api.searched_splits(split)  # a wrong name fails before the model is loaded
    suffix = "" if split == "query" else f"-{split}"  # the query split's files keep their names
    if corruptions:
        records = api.evaluate_corruptions(
            open_run(run, device), CORRUPTIONS.names(), candidates, queries_per_class, data, split
        )
        # a study cell's robustness.json is another file
        path = (out or run) / f"corruptions{suffix}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1))
        ratio = severity_ratio(records, records[0]["method"])
        console.print(f"two-stage mAP at severity 3 / clean = {ratio:.3f}; records in {path}")
        return
    report = api.evaluate(open_run(run, device), candidates, radius, rerank, data, split=split)
    _publish(report, out or run, as_json, suffix)


def _publish(report: dict[str, Any], directory: Path, as_json: bool, suffix: str = "") -> None:
    """Write `evaluation{suffix}.json` and `pr_curve{suffix}.png`; print the metrics."""
    directory.mkdir(parents=True, exist_ok=True)
    path = api.write_report(report, directory, f"evaluation{suffix}.json")
    plot = plot_pr_curve(report, directory / f"pr_curve{suffix}.png")
    if as_json:
        print(json.dumps(report))
    else:
        Console().print(metrics_table(report))
        console.print(f"report: {path}  precision-recall plot: {plot}")


@app.command()
def demo(
    dataset: Annotated[str, typer.Option(help=f"One of: {_names(list_datasets())}.")] = "digits",
    data: Annotated[str | None, typer.Option(help="Data path (cifar10, folder).")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    bits: Annotated[int, typer.Option()] = 48,
    out: Annotated[Path, typer.Option(help="Where the run, index and report go.")] = Path(
        "runs/demo"
    ),
    device: Device = None,
) -> None:
    """Train SAEH, index the database, search and print the evaluation table."""
    preset = default_preset(dataset, demo=True)
    flags = {"data.path": data, "method.bits": bits, "train.epochs": epochs, "train.device": device}
    config = preset_config(preset, {k: v for k, v in flags.items() if v is not None})
    _run_demo(config, out)


def _run_demo(config: RunConfig, root: Path) -> None:
    console.print(
        f"[bold]demo[/bold]: SAEH, {config.method.bits} bits, {config.data.dataset} "
        f"({config.data.protocol}), {config.train.epochs} epochs"
    )
    run = api.train(config, root / "run")
    built = api.build_index(run, root / "index")
    query, _ = api.encode_split(run, "query")
    hits = api.two_stage_search(built, query.codes[:1], query.features[:1], top=5)
    labels = [run.meta["classes"][int(built.labels[i])] for i in hits[0].items]
    console.print(
        f"indexed {len(built)} items; first query "
        f"(label {run.meta['classes'][int(np.asarray(query.labels[0]))]}) "
        f"-> top 5 labels {labels}"
    )
    report = api.evaluate(run, database=built.encoded(), query=query)
    _publish(report, root / "run", as_json=False)


@app.command()
def bench(
    preset: Annotated[
        str, typer.Option(help=f"Budget: {_names(STUDY_PRESETS.names())}.")
    ] = "budget",
    protocol: Annotated[
        str | None,
        typer.Option(help=f"One of: {_names(PROTOCOLS.names())} (default: the preset's)."),
    ] = None,
    bits: Annotated[list[int] | None, typer.Option(help="Code lengths.")] = None,
    methods: Annotated[
        list[str] | None, typer.Option(help=f"Of: {_names(CONTESTANTS.names())} (default: all).")
    ] = None,
    rerank: Annotated[
        list[str] | None, typer.Option(help=f"Of: {_names(RERANKERS.names())} (default: all).")
    ] = None,
    seeds: Annotated[
        list[int] | None, typer.Option(help="Seeds at --seed-bits (other lengths: the first).")
    ] = None,
    seed_bits: Annotated[int, typer.Option(help="The code length run with every seed.")] = 48,
    candidates: Annotated[int, typer.Option(help="Stage-1 list length re-ranked.")] = 1000,
    radius: Annotated[int | None, typer.Option(help="Re-rank all within this radius.")] = None,
    data: Annotated[str | None, typer.Option(help="Data set path.")] = None,
    out: Annotated[Path, typer.Option(help="Study folder (resumes what it holds).")] = Path(
        "runs/study"
    ),
    tune_lr: Annotated[
        list[float] | None,
        typer.Option(help="Choose each deep method's learning rate from these on validation."),
    ] = None,
    lr_from: Annotated[
        Path | None,
        typer.Option(help="Learning rates chosen before: a study's tuning/choices.json."),
    ] = None,
    device: Device = None,
    corruptions: Annotated[
        bool,
        typer.Option(
            help="Also score corrupted queries (robustness.json, .md, .png; clean database)."
        ),
    ] = False,
) -> None:
    """The comparative study: train, encode and evaluate every method x bits x seed, then
    write results.json, results.md and plots. Rerun to resume; finished cells are kept.

    List options take several values: --bits 16 32 48 64 --methods saeh dsh.
    """
    rerankers = rerank or RERANKERS.names()
    for name in rerankers:
        RERANKERS.get(name)  # an unknown name fails now, not after the first training run
    study = study_from_names(
        preset,
        out,
        data,
        protocol,
        rerankers=rerankers,
        candidates=candidates,
        radius=radius,
        device=device or "cpu",
    )
    contestants, seeds = methods or CONTESTANTS.names(), seeds or [0, 1, 2]
    cells = study_cells(contestants, bits or [16, 32, 48, 64], seeds, seed_bits)
    if tune_lr and lr_from:
        raise HashsearchError("give --tune-lr or --lr-from, not both")
    if tune_lr:
        choices = tune_learning_rates(study, contestants, tune_lr, seed_bits, seeds[0])
    if lr_from:
        choices = read_choices(lr_from)
    if tune_lr or lr_from:
        study.learning_rates = {name: choice["lr"] for name, choice in choices.items()}
        console.print(f"learning rates chosen on validation: {study.learning_rates}")
    console.print(
        f"[bold]bench[/bold]: {len(cells)} cells, preset {preset}, {study.protocol} -> {out}"
    )
    result = run_study(study, cells)
    console.print(
        f"{result['records']} records in {result['seconds']:.0f} s: {result['results']}, "
        f"{result['tables']}, {len(result['plots'])} plots"
    )
    if corruptions:
        records, written = run_robustness(study, cells, CORRUPTIONS.names())
        for name in dict.fromkeys(r["method"] for r in records):
            ratio = severity_ratio(records, name)
            console.print(f"{name}: two-stage mAP at severity 3 / clean = {ratio:.3f}")
        console.print(f"robustness: {', '.join(str(path) for path in written.values())}")


# Options whose values may follow them space-separated (--bits 16 32 48): click wants the
# flag repeated, so `expand_list_options` repeats it.
LIST_OPTIONS = ("--bits", "--methods", "--rerank", "--seeds", "--tune-lr")


def expand_list_options(argv: list[str]) -> list[str]:
    """["--bits", "16", "32"] -> ["--bits", "16", "--bits", "32"] for `LIST_OPTIONS`."""
    expanded: list[str] = []
    current: str | None = None
    for token in argv:
        if token.startswith("-"):
            current = token if token in LIST_OPTIONS else None
            expanded.append(token)
        elif current is not None and expanded[-1] != current:
            expanded += [current, token]
        else:
            expanded.append(token)
    return expanded


def main() -> None:
    """The console script. A refusal is one line on stderr, `error: ...`, and exit status
    2, never a traceback: bad input is the user's to fix, and one line says what and where."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        args = expand_list_options(sys.argv[1:]) or ["--help"]
        if args[:1] in (["train"], ["encode"], ["index"]):
            distributed.init_from_environment()  # under torchrun: data parallel / sharded
            if not distributed.is_main_process():
                logging.getLogger().setLevel(logging.WARNING)  # rank 0 reports for all
        status = app(args=args, standalone_mode=False)  # --help and Ctrl-C: a status
        if status:
            sys.exit(status)
    except typer.TyperException as exc:  # a usage error: click's message names the option
        context = getattr(exc, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except HashsearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a path that cannot be read or written, a full disk
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
