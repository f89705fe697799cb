"""Reference notebooks for stock nbval: the key printed numbers of every experiment notebook.

The cells of ``notebooks/<name>.md`` that start with ``# NBVAL_CHECK_OUTPUT`` print the
notebook's key numbers (quick profile, seed 0, one CPU thread, no timings). Their expected
outputs live in ``notebooks/reference/<name>.ipynb``: the notebook's own cells, with outputs
on the marked cells only. Stock nbval executes that notebook and compares::

    pytest --nbval-lax --nbval-current-env notebooks/reference/<name>.ipynb   # (make nbval)

This module writes those reference notebooks and guards them::

    python -m booktools.reference update [NAME ...]   # from experiments/<name>.ipynb (make reference)
    python -m booktools.reference verify [NAME ...]   # the static checks below, exit 1 on a problem

``update`` takes the outputs of the marked cells from the notebook as papermill executed it
(``make reproduce``), only for a run with the reference settings (quick, seed 0, on a CPU).
``verify``, and the ``conftest.py`` next to the reference notebooks whenever nbval runs them,
refuse a validation that would compare nothing or the wrong thing: a missing reference
notebook, code that differs from the source (a marked cell added or removed, an edited
cell: ``make reference``), no marked cell, or a marked cell whose reference output is empty.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MARKER = "# NBVAL_CHECK_OUTPUT"
# tools/reproduce.py replaces the marker line of an executed notebook by this cell tag
CHECK_TAG = "nbval-check-output"
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
REFERENCE_SETTINGS = {"profile": "quick", "seed": 0, "device": "cpu"}

__all__ = ["MARKER", "CHECK_TAG", "REFERENCE_SETTINGS", "is_marked", "source_notebook",
           "reference_notebook", "problems", "update", "guard_nbval_collection", "main"]


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_marked(cell) -> bool:
    """A code cell whose printed output is checked: the marker line, or the tag that replaces
    it in the executed notebooks the book shows."""
    return cell.get("cell_type") == "code" and (
        _source(cell).lstrip().startswith(MARKER) or CHECK_TAG in cell.get("metadata", {}).get("tags", []))


def source_notebook(md: Path):
    """``notebooks/<name>.md`` as a notebook for the ``python3`` kernel, without outputs."""
    import hashlib

    import jupytext

    nb = jupytext.read(md)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    seen: dict[str, int] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        # ids from the content, not random: `make reference` rewrites only what moved
        digest = hashlib.sha1(f"{cell.cell_type}:{cell.source}".encode()).hexdigest()[:12]
        seen[digest] = seen.get(digest, 0) + 1
        cell.id = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
    return nb


def _compared(output: dict) -> dict | None:
    """One output as the reference keeps it: image data dropped (nbval does not compare images;
    the output itself stays, so that its text, e.g. ``<Figure size ...>``, is still compared)."""
    if output.get("output_type") == "stream":
        return output
    if output.get("output_type") in ("execute_result", "display_data"):
        return {**output, "data": {k: v for k, v in output.get("data", {}).items()
                                   if not k.startswith("image/")}}
    return None


def _run_settings(executed: dict, results: Path) -> dict:
    """profile, seed and device of a papermill run: its injected parameters, and the device the
    harness resolved (``auto`` becomes ``cpu`` or ``cuda``) from its results JSON."""
    params = executed.get("metadata", {}).get("papermill", {}).get("parameters", {})
    device = str(params.get("device", ""))
    if results.is_file():
        device = str(json.loads(results.read_text()).get("meta", {}).get("device", device))
    return {"profile": params.get("profile"), "seed": params.get("seed"),
            "device": device.split(":")[0] or None}


def reference_notebook(md: Path, executed: dict):
    """The reference notebook of ``md``: its cells, and on each marked cell the text outputs of
    the same marked cell (counted in order) of the executed notebook."""
    import nbformat

    nb = source_notebook(md)
    mine = [c for c in nb.cells if is_marked(c)]
    theirs = [c for c in executed["cells"] if is_marked(c)]
    if len(mine) != len(theirs):
        raise ValueError(f"{md.name}: {len(mine)} marked cells, the executed notebook has {len(theirs)}: "
                         "it is out of date (make reproduce)")
    for cell, done in zip(mine, theirs, strict=True):
        cell.outputs = [nbformat.from_dict(o) for o in map(_compared, done.get("outputs", [])) if o]
    # nbval treats a cell without an execution count as never run (and its outputs as an error)
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), 1):
        cell.execution_count = count
        for out in cell.outputs:
            if "execution_count" in out:
                out["execution_count"] = count
    nbformat.validate(nb)
    return nb


def _has_text(cell) -> bool:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and _source({"source": out.get("text", "")}).strip():
            return True
        if any(v for k, v in out.get("data", {}).items() if not k.startswith("image/")):
            return True
    return False


def problems(name: str, notebooks: Path = NOTEBOOKS, reference: Path | None = None) -> list[str]:
    """Why ``reference/<name>.ipynb`` would not validate ``notebooks/<name>.md`` (empty: it would)."""
    import nbformat

    reference = reference or notebooks / "reference"
    md, ref = notebooks / f"{name}.md", reference / f"{name}.ipynb"
    if not md.is_file():
        return [f"{name}: no source notebook {md}"]
    if not ref.is_file():
        return [f"{name}: no reference notebook {ref} (run `make reference` and commit it)"]
    want = [c for c in source_notebook(md).cells if c.cell_type == "code"]
    got = [c for c in nbformat.read(ref, as_version=4).cells if c.cell_type == "code"]
    found = []
    n_want, n_got = sum(map(is_marked, want)), sum(map(is_marked, got))
    if n_want != n_got:
        found.append(f"{name}: the source has {n_want} marked cell(s), the reference {n_got}")
    elif [c.source for c in want] != [c.source for c in got]:
        pairs = zip(want + [None] * len(got), got + [None] * len(want), strict=False)
        k = next(i for i, (a, b) in enumerate(pairs) if a is None or b is None or a.source != b.source)
        found.append(f"{name}: code cell {k + 1} of the reference differs from the source")
    if found:
        return [found[0] + " (run `make reference` and commit notebooks/reference/)"]
    if n_got == 0:
        return [f"{name}: no cell is marked `{MARKER}`: the validation would compare nothing"]
    empty = [k for k, c in enumerate((c for c in got if is_marked(c)), 1) if not _has_text(c)]
    if empty:
        return [f"{name}: marked cell(s) {empty} have no reference output: they would compare nothing"]
    return []


def update(names: list[str], experiments: Path, notebooks: Path = NOTEBOOKS,
           reference: Path | None = None) -> int:
    """Rewrite ``reference/<name>.ipynb`` from ``experiments/<name>.ipynb``; 1 if one could not be."""
    import nbformat

    reference = reference or notebooks / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = experiments / f"{name}.ipynb"
        if not path.is_file():
            print(f"{name}: {path} is missing (run `make reproduce` first)")
            return 1
        executed = json.loads(path.read_text())
        settings = _run_settings(executed, experiments / "results" / f"{name}.json")
        if settings != REFERENCE_SETTINGS:
            print(f"{name}: run with {settings}, not {REFERENCE_SETTINGS}: reference not written")
            return 1
        nbformat.write(reference_notebook(notebooks / f"{name}.md", executed), reference / f"{name}.ipynb")
        print(f"{name}: wrote {reference / f'{name}.ipynb'}")
    return 0


def verify(names: list[str], notebooks: Path = NOTEBOOKS, reference: Path | None = None) -> int:
    found = [p for name in names for p in problems(name, notebooks, reference)]
    print("\n".join(found) if found else f"{len(names)} reference notebook(s) in order")
    return 1 if found else 0


def guard_nbval_collection(config, items) -> None:
    """For ``notebooks/reference/conftest.py``: when nbval collected reference notebooks, refuse
    to run (``pytest.UsageError``) if one of them has :func:`problems` or nbval found no cell
    in it to compare."""
    import pytest

    if not (getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False)):
        return
    checked: dict[Path, int] = {}
    for item in items:
        path = Path(str(item.path))
        if path.suffix == ".ipynb":
            options = getattr(item, "options", {}) or {}
            checked[path] = checked.get(path, 0) + bool(options.get("check"))
    found = []
    for path, n in sorted(checked.items()):
        found += problems(path.stem, path.parent.parent, path.parent)
        if n == 0 and not found:
            found.append(f"{path.stem}: nbval found no cell to compare")
    if found:
        raise pytest.UsageError("nbval would not validate these notebooks:\n  " + "\n  ".join(found))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m booktools.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("update", "verify"))
    p.add_argument("names", nargs="*", help="notebook names (default: every notebooks/*.md)")
    p.add_argument("--experiments", type=Path, default=ROOT / "experiments")
    p.add_argument("--notebooks", type=Path, default=NOTEBOOKS)
    args = p.parse_args(argv)
    names = args.names or sorted(q.stem for q in args.notebooks.glob("*.md"))
    if args.action == "update":
        return update(names, args.experiments, args.notebooks)
    return verify(names, args.notebooks)


if __name__ == "__main__":
    sys.exit(main())
