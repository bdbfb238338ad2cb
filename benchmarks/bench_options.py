"""Options the benchmark scripts share: `--set dotted.key=VALUE`, the stage-2
options, and the run directories and threads of the scripts that probe trained runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from hashsearch.cli import parse_assignments
from hashsearch.errors import HashsearchError
from hashsearch.rerank import RERANKERS
from hashsearch.search import check_search_args

# Stage-2 strategies a two-stage figure can name ("none" has no second stage).
STAGE2_RERANKERS = [name for name in RERANKERS.names() if name != "none"]


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        help="config override dotted.key=VALUE (YAML value), repeatable",
    )


def depth(text: str) -> int:
    """A candidate-list length, by search's own rule (argparse type)."""
    value = int(text)
    try:
        check_search_args(value, None)
    except HashsearchError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def add_stage2_options(parser: argparse.ArgumentParser, candidates: int = 1000) -> None:
    """`--rerank R --candidates N`: the one stage 2 that a script's figures are scored with."""
    parser.add_argument(
        "--rerank",
        default="cosine",
        choices=STAGE2_RERANKERS,
        help="stage 2 (chosen by benchmarks/refinement_choice.py)",
    )
    parser.add_argument(
        "--candidates", type=depth, default=candidates, help="stage-1 list re-ranked"
    )


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The `--set` pairs as a dict of dotted keys to values."""
    return parse_assignments(args.changes, "--set")


def probe_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments of a probe script, `RUN ... [--threads N]`; a probe may add its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    return parser


def probe_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments, with torch's threads set to --threads (default 2)."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def probed_runs(doc: str) -> list[Path]:
    """The run directories given to a probe script with no options of its own."""
    return probe_args(probe_parser(doc)).runs
