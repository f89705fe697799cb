"""Compare the key printed numbers of the executed notebooks with committed reference outputs.

The text printed by every code cell that starts with ``# NBVAL_CHECK_OUTPUT`` in
``experiments/<name>.ipynb`` (the notebook as papermill executed it: no second execution) is
compared with ``notebooks/reference/<name>.txt``, which is committed. The reference holds the
quick profile, seed 0, on a CPU, text outputs only (stdout and ``text/plain`` results; no
images, no stderr)::

    python -m booktools.reference check [NAME ...]    # exit 1 and a diff when a number moved
    python -m booktools.reference update [NAME ...]   # rewrite the reference (``make reference``)

A notebook run with other settings (``profile``, ``seed``, or a CUDA device) is not compared:
``check`` says so and skips it. After ``update``, ``git diff notebooks/reference`` shows
what moved.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

MARKER = "# NBVAL_CHECK_OUTPUT"
# tools/reproduce.py replaces the marker line of an executed notebook by this cell tag
CHECK_TAG = "nbval-check-output"
ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SETTINGS = {"profile": "quick", "seed": 0, "device": "cpu"}


def checked_text(nb: dict) -> str:
    """The text outputs of the cells marked :data:`MARKER`, one block per cell."""
    blocks = []
    marked = [c for c in nb["cells"] if c["cell_type"] == "code"
              and ("".join(c["source"]).lstrip().startswith(MARKER)
                   or CHECK_TAG in c.get("metadata", {}).get("tags", []))]
    for k, cell in enumerate(marked, 1):
        text = []
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream" and out.get("name") == "stdout":
                text.append("".join(out["text"]))
            elif out["output_type"] in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "text/plain" in data and not any(m.startswith("image/") for m in data):
                    text.append("".join(data["text/plain"]) + "\n")
        blocks.append(f"--- checked cell {k} ---\n" + "".join(text))
    return "".join(blocks)


def run_settings(name: str, experiments: Path) -> dict:
    """profile, seed and device of the executed notebook (from the harness's results JSON)."""
    path = experiments / "results" / f"{name}.json"
    meta = json.loads(path.read_text()).get("meta", {}) if path.is_file() else {}
    return {"profile": meta.get("profile"), "seed": meta.get("seed"),
            "device": str(meta.get("device", "")).split(":")[0] or None}


def check(names: list[str], experiments: Path, reference: Path) -> int:
    """Print a unified diff for every notebook whose checked outputs moved; 1 if any did."""
    moved = 0
    for name in names:
        settings = run_settings(name, experiments)
        if settings != REFERENCE_SETTINGS:
            print(f"{name}: not compared (run with {settings}; the reference is {REFERENCE_SETTINGS})")
            continue
        want_path, executed = reference / f"{name}.txt", experiments / f"{name}.ipynb"
        if not executed.is_file():
            moved += 1
            print(f"{name}: {executed} is missing (run `make reproduce` first)")
            continue
        got = checked_text(json.loads(executed.read_text()))
        want = want_path.read_text() if want_path.is_file() else ""
        if got == want:
            print(f"{name}: checked outputs match {want_path.relative_to(reference.parent.parent)}")
            continue
        moved += 1
        sys.stdout.writelines(difflib.unified_diff(
            want.splitlines(keepends=True), got.splitlines(keepends=True),
            fromfile=f"reference/{name}.txt", tofile=f"experiments/{name}.ipynb"))
    if moved:
        print(f"\n{moved} notebook(s) printed numbers that differ from the committed reference. If "
              "the change is intended, run `make reference` and commit notebooks/reference/.")
    return 1 if moved else 0


def update(names: list[str], experiments: Path, reference: Path) -> int:
    reference.mkdir(parents=True, exist_ok=True)
    for name in names:
        settings = run_settings(name, experiments)
        if settings != REFERENCE_SETTINGS:
            print(f"{name}: run with {settings}, not {REFERENCE_SETTINGS}: reference not written")
            return 1
        text = checked_text(json.loads((experiments / f"{name}.ipynb").read_text()))
        (reference / f"{name}.txt").write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m booktools.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("check", "update"))
    p.add_argument("names", nargs="*", help="notebook names (default: every notebooks/*.md)")
    p.add_argument("--experiments", type=Path, default=ROOT / "experiments")
    p.add_argument("--reference", type=Path, default=ROOT / "notebooks" / "reference")
    args = p.parse_args(argv)
    names = args.names or sorted(q.stem for q in (args.reference.parent).glob("*.md"))
    return (check if args.action == "check" else update)(names, args.experiments, args.reference)


if __name__ == "__main__":
    sys.exit(main())
