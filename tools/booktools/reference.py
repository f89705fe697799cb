"""Reference notebooks for stock nbval: the key printed numbers of every experiment notebook.

The cells of ``notebooks/<name>.md`` that start with ``# NBVAL_CHECK_OUTPUT`` print the
notebook's key numbers (quick profile, seed 0, one CPU thread, no timings). Their expected
outputs live in ``notebooks/reference/<name>.ipynb``: the notebook's own cells, with outputs
on the marked cells only. Stock nbval executes that notebook and compares::

    pytest --nbval-lax --nbval-current-env notebooks/reference/<name>.ipynb   # (make nbval)

This module writes those reference notebooks and guards them::

    python -m booktools.reference update [NAME ...]   # from experiments/<name>.ipynb (make reference)
    python -m booktools.reference verify [NAME ...]   # the static checks below, exit 1 on a problem
    python -m booktools.reference path NAME           # this machine's reference of NAME (below)
    python -m booktools.reference carry NAME --reference notebooks/reference   # another kind's set
    python -m booktools.reference fingerprint         # this machine's numerics_fingerprint()

``update`` takes the outputs of the marked cells from the notebook as papermill executed it
(``make reproduce``), only for a run with the reference settings (quick, seed 0, on a CPU).
``verify``, and ``notebooks/conftest.py`` whenever nbval runs a reference notebook, refuse a
validation that would compare nothing or the wrong thing: a missing reference notebook, code
that differs from the source (a marked cell added or removed, an edited cell: ``make
reference``), no marked cell, or a marked cell whose reference output is empty.

One set of references per kind of CPU arithmetic. The quick runs train networks for hundreds of
steps, and float32 training amplifies a last-bit difference: MKL takes other GEMM and LAPACK
code paths on a CPU with other vector instructions, and the printed numbers move (measured on
2026-12-07: nice_digits' CP loss 18.9 on the machines the project had run on, 19.0 on an AVX-512
one; ESS values in dkef_scalability, a seed count in dkef_uci, one claim's verdict).
:func:`numerics_fingerprint` digests a few float results that depend on those paths.
``notebooks/reference/`` is the set of the machines the project ran on first (their fingerprint
was not recorded); ``notebooks/reference-<fingerprint>/`` holds, for the machines that share
that fingerprint, the references that differ from it, and only those. :func:`reference_path`
picks this machine's reference of a notebook, ``python -m booktools.reference path NAME``
prints it. A set can be refreshed (``update``) only on its own kind of machine; ``carry`` brings
another kind's set in step with an edit that leaves the checked cells as they were.

One kind can stand in for the other. MKL chooses its kernels by the CPU's vendor as well as its
instruction sets, and ``tools/cpu_kinds/as_intel.sh`` runs a command with MKL believing the CPU
is Intel's (``tools/cpu_kinds/mkl_intel_cpu.c``, loaded by ``LD_PRELOAD``). On the project's
AMD EPYC (AVX-512, fingerprint ``b6d1ee164c98``) that gives ``4bef3deece43``, the Intel
machines' fingerprint, and (measured on 2026-12-08) all ten notebooks pass nbval against the
references the Intel machine wrote, while estimator_statistics fails against ``reference/``.
So ``make reference-intel`` refreshes that set and ``make nbval-intel`` checks it from an AMD
machine with AVX-512; the script refuses where the fingerprint does not come out right.
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
           "reference_notebook", "problems", "update", "carry", "guard_nbval_collection",
           "numerics_fingerprint", "reference_folder", "reference_folders", "reference_path", "main"]


def numerics_fingerprint() -> str:
    """12 hex digits of the SHA-256 of float results computed on one CPU thread: float32 GEMMs
    through softplus, tanh and a reduction, a float64 solve and symmetric eigenvalues. Two
    machines with the same fingerprint take the same MKL code paths for these and, as far as it
    was checked (every notebook's nbval run), compute the quick runs' numbers alike."""
    import hashlib

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(97, 131, generator=g), torch.randn(131, 89, generator=g)
        hidden = torch.nn.functional.softplus(a @ b)
        out = (torch.tanh(hidden @ torch.randn(89, 7, generator=g)).sum(0), hidden.exp().log1p().mean(1))
        m = torch.randn(40, 40, generator=g, dtype=torch.float64)
        spd = m @ m.T + 40 * torch.eye(40, dtype=torch.float64)
        out += (torch.linalg.solve(spd, torch.ones(40, dtype=torch.float64)), torch.linalg.eigvalsh(spd))
    finally:
        torch.set_num_threads(threads)
    digest = hashlib.sha256()
    for t in out:
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def reference_folders(notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Every committed set of references: ``reference/`` and each ``reference-<fingerprint>/``."""
    return sorted(p for p in notebooks.glob("reference*") if p.is_dir())


def reference_folder(notebooks: Path = NOTEBOOKS, fingerprint: str | None = None) -> Path:
    """This machine's set: ``reference-<fingerprint>/`` where it exists, else ``reference/``."""
    own = notebooks / f"reference-{fingerprint or numerics_fingerprint()}"
    return own if own.is_dir() else notebooks / "reference"


def reference_path(name: str, notebooks: Path = NOTEBOOKS, fingerprint: str | None = None) -> Path:
    """This machine's reference of ``name``: in its own set where that set has one, else in
    ``reference/`` (the machine computes that notebook's checked numbers as the first ones did)."""
    own = reference_folder(notebooks, fingerprint) / f"{name}.ipynb"
    return own if own.is_file() else notebooks / "reference" / f"{name}.ipynb"


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


def _number(nb) -> None:
    """Execution counts 1, 2, ... on the code cells (and their results): nbval treats a cell
    without an execution count as never run (and its outputs as an error)."""
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), 1):
        cell.execution_count = count
        for out in cell.outputs:
            if "execution_count" in out:
                out["execution_count"] = count


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
    _number(nb)
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
    """Rewrite ``<reference>/<name>.ipynb`` (default: this machine's set, :func:`reference_folder`)
    from ``experiments/<name>.ipynb``; 1 if one could not be. In a set other than ``reference/``
    a reference that would equal the one there is not kept (:func:`reference_path` falls back)."""
    import nbformat

    reference = reference or reference_folder(notebooks)
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
        nb, path = reference_notebook(notebooks / f"{name}.md", executed), reference / f"{name}.ipynb"
        first = notebooks / "reference" / f"{name}.ipynb"
        if reference != first.parent and first.is_file() and nbformat.writes(nb) == nbformat.writes(
                nbformat.read(first, as_version=4)):
            # this kind of machine prints what the first ones do: no copy in its own set
            path.unlink(missing_ok=True)
            print(f"{name}: the same as {first}; nothing written to {reference}")
            continue
        nbformat.write(nb, path)
        print(f"{name}: wrote {path}")
    return 0


def carry(names: list[str], reference: Path, notebooks: Path = NOTEBOOKS) -> int:
    """Bring ``<reference>/<name>.ipynb`` in step with an edited ``notebooks/<name>.md`` without
    running it, for a set whose kind of machine is not at hand: the checked outputs stay those
    already in the set, carried cell by cell by the code they run (:func:`booktools.runs.code_as_run`:
    a checked cell re-wrapped, or with its comments edited, keeps its output). Refused (1) when
    what a checked cell runs changed or a checked cell is new: its output can only come from a
    run (``update``)."""
    import nbformat

    from booktools.runs import code_as_run

    for name in names:
        old = nbformat.read(reference / f"{name}.ipynb", as_version=4)
        kept = {code_as_run(_source(c)): c for c in old.cells if is_marked(c)}
        nb = source_notebook(notebooks / f"{name}.md")
        marked = [c for c in nb.cells if is_marked(c)]
        missing = [k for k, c in enumerate(marked, 1) if code_as_run(_source(c)) not in kept]
        if missing:
            print(f"{name}: checked cell(s) {missing} are new or edited: run `make reference` on a "
                  f"machine of {reference.name}'s kind")
            return 1
        for cell in marked:
            cell.outputs = kept[code_as_run(_source(cell))].outputs
        _number(nb)
        nbformat.write(nb, reference / f"{name}.ipynb")
        print(f"{name}: carried {len(kept)} checked output(s) into {reference / f'{name}.ipynb'}")
    return 0


def verify(names: list[str], notebooks: Path = NOTEBOOKS, reference: Path | None = None) -> int:
    """The static checks of ``reference``'s notebooks (default: this machine's reference of each)."""
    found = [p for name in names
             for p in problems(name, notebooks, reference or reference_path(name, notebooks).parent)]
    print("\n".join(found) if found else f"{len(names)} reference notebook(s) in order")
    return 1 if found else 0


def guard_nbval_collection(config, items) -> None:
    """For ``notebooks/conftest.py``: when nbval collected reference notebooks, refuse
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
    p.add_argument("action", choices=("update", "verify", "path", "carry", "fingerprint"))
    p.add_argument("names", nargs="*", help="notebook names (default: every notebooks/*.md)")
    p.add_argument("--experiments", type=Path, default=ROOT / "experiments")
    p.add_argument("--notebooks", type=Path, default=NOTEBOOKS)
    p.add_argument("--reference", type=Path, default=None,
                   help="the set to write or check (default: this machine's, see `path`)")
    args = p.parse_args(argv)
    if args.action == "fingerprint":
        if args.names:
            p.error("fingerprint takes no notebook name")
        print(numerics_fingerprint())
        return 0
    names = args.names or sorted(q.stem for q in args.notebooks.glob("*.md"))
    if args.action == "path":
        if len(args.names) != 1:
            p.error("path takes one notebook name")
        path = reference_path(args.names[0], args.notebooks)
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        return 0
    if args.action == "update":
        return update(names, args.experiments, args.notebooks, args.reference)
    if args.action == "carry":
        if args.reference is None:
            p.error("carry needs --reference (the set of a kind of machine not at hand)")
        return carry(names, args.reference, args.notebooks)
    return verify(names, args.notebooks, args.reference)


if __name__ == "__main__":
    sys.exit(main())
