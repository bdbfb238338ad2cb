"""The Serving table of docs/performance.md from the load runs in docs/load/.

    python benchmarks/load_table.py            # every run of every configuration
    python benchmarks/load_table.py --earlier  # the same for the previous code's runs

Each configuration's runs are `docs/load/<name>-run<k>.json` (benchmarks/load_rounds.sh
writes three a round); the table gives the median (lowest-highest) over all of them,
and the median 16-client p50 of each round of three, since the machine's speed
changes from one hour to the next.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

LOAD = Path(__file__).resolve().parent.parent / "docs" / "load"
# `--workers`: 1 search process (the default) or 2, or 0, a search thread in the HTTP process
CONFIGS = {
    "full-1search": "`full` (two-stage mAP@all 0.890), 1 search process",
    "fast-1search": "`fast` (0.842), 1 search process",
    "fast-2search": "`fast` (0.842), 2 search processes",
    "fast-noflip-thread": "`fast`, no flip averaging (0.823), search thread in the HTTP process",
    "fast-noflip-1search": "`fast`, no flip averaging (0.823), 1 search process",
    "fast-noflip-2search": "`fast`, no flip averaging (0.823), 2 search processes",
}
# The previous code (before FAISS's threads were set on the search thread, when
# `--workers 1` meant the search thread), kept for comparison: `--earlier`.
EARLIER = {
    "full-1process": "`full` (0.890), search thread",
    "fast-1process": "`fast` (0.842), search thread",
    "fast-2processes": "`fast` (0.842), 2 search processes",
    "fast-noflip-1process": "`fast`, no flip averaging (0.823), search thread",
    "fast-noflip-2processes": "`fast`, no flip averaging (0.823), 2 search processes",
}
HEADER = (
    "| index (model), server | runs | one client: p50 ms | 16 clients: answers/s "
    "| 16 clients: p50 ms | p50 by round | 16 clients: p99 ms | errors "
    "| server CPU ms / answer | memory warm, largest change after load | 5xx of malformed |\n"
    + "|---" * 11
    + "|"
)


def spread(values: list[float], digits: int) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def runs(name: str) -> dict[int, dict]:
    """The runs of one configuration by run number (round k holds runs 3k-2..3k)."""
    found = {
        int(m.group(1)): path
        for path in LOAD.glob(f"{name}-run*.json")
        if (m := re.fullmatch(rf"{re.escape(name)}-run(\d+)\.json", path.name))
    }
    return {k: json.loads(found[k].read_text()) for k in sorted(found)}


def row(name: str, label: str) -> str:
    numbered = runs(name)
    reports = list(numbered.values())
    concurrent = [r["concurrent"] for r in reports]
    p50 = [c["p50_ms"] for c in concurrent]
    by_round: dict[int, list[float]] = {}
    for k, report in numbered.items():
        by_round.setdefault((k - 1) // 3, []).append(report["concurrent"]["p50_ms"])
    rounds = " / ".join(f"{statistics.median(v):.1f}" for _, v in sorted(by_round.items()))
    growth = max(100 * (r["rss_after_load_mb"] / r["rss_warm_mb"] - 1) for r in reports)
    malformed = sum(r["malformed"]["server_errors"] for r in reports)
    sent = sum(r["malformed"]["requests"] for r in reports)
    cells = [
        label,
        str(len(reports)),
        spread([r["sequential"]["p50_ms"] for r in reports], 1),
        spread([c["throughput_rps"] for c in concurrent], 0),
        f"**{spread(p50, 1)}**",
        rounds,
        spread([c["p99_ms"] for c in concurrent], 1),
        str(sum(c["errors"] for c in concurrent)),
        spread([c["server_cpu_ms_per_request"] for c in concurrent], 2),
        f"{statistics.median(r['rss_warm_mb'] for r in reports):.0f} MB, at most {growth:+.1f}%",
        f"{malformed} of {sent}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--earlier", action="store_true", help="the previous code's runs")
    args = parser.parse_args()
    print(HEADER)
    for name, label in (EARLIER if args.earlier else CONFIGS).items():
        print(row(name, label))


if __name__ == "__main__":
    main()
