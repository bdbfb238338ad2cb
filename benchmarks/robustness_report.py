"""Merge robustness records of several studies and runs into one table, plot and JSON.

    python benchmarks/robustness_report.py \
        runs/robust48/robustness.json runs/robust48-saeh/robustness.json \
        runs/robust48-eps/robustness.json runs/robust-full48/corruptions.json:full \
        --out docs/robustness

Inputs are `hashsearch bench --corruptions` outputs (OUT/robustness.json) or
`hashsearch evaluate --corruptions` outputs; `PATH:LABEL` sets the records'
preset (a single run's records carry none). A method seen in an earlier file is
not taken again from a later one, so the first study that ran it is its source.
Writes OUT.json (the records), OUT-table.md (the tables) and OUT.png (the plot).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hashsearch.study.robustness import robustness_markdown, robustness_plot


def merged(sources: list[str]) -> list[dict]:
    """Records of every source; a (method, preset) already taken is skipped."""
    records: list[dict] = []
    for source in sources:
        path, _, label = source.partition(":")
        found = json.loads(Path(path).read_text())
        for record in found:
            record.setdefault("preset", label or "unknown")
            if label:
                record["preset"] = label
        taken = {(r["method"], r["preset"]) for r in records}
        records += [r for r in found if (r["method"], r["preset"]) not in taken]
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="robustness.json files, PATH or PATH:LABEL")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()
    records = merged(args.sources)
    for record in records:  # one row per (method, preset) in the tables and the plot
        if record["preset"] != "budget":
            record["method"] = f"{record['method']} ({record['preset']})"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(records, indent=1))
    args.out.with_name(args.out.name + "-table.md").write_text(robustness_markdown(records))
    robustness_plot(records, args.out.with_suffix(".png"))
    print(f"{len(records)} records -> {args.out}.json, {args.out}-table.md, {args.out}.png")


if __name__ == "__main__":
    main()
