"""Writes what the browser test measured: _build/browser/report.json and report.md."""

from __future__ import annotations

import json
from pathlib import Path

from .checks import FAILS_AT


def write_report(data: dict, out_dir: Path) -> None:
    """``data[f"{page}@{width}"] = {"page", "width", "found": {check: [items]}, "failed": [checks]}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(data, indent=1, sort_keys=True))
    (out_dir / "report.md").write_text(markdown_table(data))


def markdown_table(data: dict) -> str:
    """One row per page and width, one column per check; failing counts marked with '!'."""
    names = list(FAILS_AT)
    short = {name: "".join(part[0] for part in name.split("_")) for name in names}
    lines = [
        "Counts per page and width; `!` marks a count that fails the page at that width.",
        "",
        "Columns: " + ", ".join(f"{short[n]} = {n}" for n in names),
        "",
        "| page | width | " + " | ".join(short[n] for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for key in sorted(data, key=lambda k: (data[k]["page"], -data[k]["width"])):
        row = data[key]
        cells = []
        for name in names:
            count = len(row["found"].get(name, []))
            cells.append(f"{count}!" if name in row["failed"] else str(count))
        lines.append(f"| {row['page']} | {row['width']} | " + " | ".join(cells) + " |")
    totals = {n: sum(len(r["found"].get(n, [])) for r in data.values()) for n in names}
    lines.append("| **total** | | " + " | ".join(str(totals[n]) for n in names) + " |")
    return "\n".join(lines) + "\n"
