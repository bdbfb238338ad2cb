"""The `--set dotted.key=VALUE` option the benchmark scripts share."""

from __future__ import annotations

import argparse
from typing import Any

from hashsearch.cli import parse_assignments


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        help="config override dotted.key=VALUE (YAML value), repeatable",
    )


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The `--set` pairs as a dict of dotted keys to values."""
    return parse_assignments(args.changes, "--set")
