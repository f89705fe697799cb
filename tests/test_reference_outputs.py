"""The key numbers under stock nbval: ``make reference`` writes notebooks/reference/<name>.ipynb
from the executed notebook (marked cells' outputs only, reference settings only); nbval fails a
moved number; a validation that would compare nothing, or a reference out of step with its
source (a marked cell added or removed), is refused before anything runs; ``make test`` runs
both executions of every notebook side by side."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from booktools import reference

ROOT = Path(__file__).resolve().parents[1]
HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Demo
"""


def _cell(code: str) -> str:
    return f"\n```{{code-cell}} ipython3\n{code}\n```\n"


def _source(tmp_path: Path, marked: int = 1, unmarked_prints: bool = True) -> Path:
    """notebooks/demo.md with ``marked`` marked cells printing the 'Fisher divergence'."""
    body = _cell("x = 0.905")
    if unmarked_prints:
        body += _cell('print("3.2 s")  # a timing: not compared')
    for k in range(marked):
        body += _cell(f'{reference.MARKER}\nprint(f"Fisher divergence {k}: {{x + {k}:.3f}}")')
    folder = tmp_path / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo.md").write_text(HEADER + body)
    return folder


def _executed(tmp_path: Path, fisher: str = "0.905", *, profile="quick", seed=0, device="cpu",
              results: bool = True, figure: bool = True) -> Path:
    """experiments/demo.ipynb (and its results JSON) as papermill and the harness leave it."""
    nb = reference.source_notebook(tmp_path / "notebooks" / "demo.md")
    nb.metadata["papermill"] = {"parameters": {"profile": profile, "seed": seed, "device": "auto"}}
    marked = [c for c in nb.cells if reference.is_marked(c)]
    for k, cell in enumerate(marked):
        value = f"{float(fisher) + k:.3f}"
        cell.outputs = [v4.new_output("stream", name="stdout", text=f"Fisher divergence {k}: {value}\n")]
        if figure:
            cell.outputs.append(v4.new_output("display_data", data={"image/png": "iVBOR" * 100,
                                                                    "text/plain": "<Figure size 640x480>"}))
    exp = tmp_path / "experiments"
    (exp / "results").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, exp / "demo.ipynb")
    if results:
        (exp / "results" / "demo.json").write_text(json.dumps({"meta": {"device": device}}))
    return exp


def test_update_keeps_the_marked_cells_outputs_without_images(tmp_path):
    notebooks = _source(tmp_path, marked=2)
    assert reference.update(["demo"], _executed(tmp_path), notebooks) == 0
    ref = nbformat.read(notebooks / "reference" / "demo.ipynb", as_version=4)
    code = [c for c in ref.cells if c.cell_type == "code"]
    assert [bool(c.outputs) for c in code] == [False, False, True, True]
    assert code[2].outputs[0]["text"] == "Fisher divergence 0: 0.905\n"
    assert code[3].outputs[0]["text"] == "Fisher divergence 1: 1.905\n"
    assert code[2].outputs[1]["data"] == {"text/plain": "<Figure size 640x480>"}  # image dropped
    assert ref.metadata.kernelspec["name"] == "python3" and "jupytext" not in ref.metadata
    assert reference.problems("demo", notebooks) == []


@pytest.mark.parametrize("settings", [{"profile": "full"}, {"seed": 1}, {"device": "cuda:0"},
                                      {"results": False}])  # device "auto", never resolved
def test_other_run_settings_are_not_written(tmp_path, settings, capsys):
    notebooks = _source(tmp_path)
    assert reference.update(["demo"], _executed(tmp_path, **settings), notebooks) == 1
    assert not (notebooks / "reference" / "demo.ipynb").exists()
    assert "reference not written" in capsys.readouterr().out


def _reference_then_edit_source(tmp_path: Path, marked_after: int) -> Path:
    notebooks = _source(tmp_path, marked=2)
    assert reference.update(["demo"], _executed(tmp_path), notebooks) == 0
    _source(tmp_path, marked=marked_after)
    return notebooks


def test_an_extra_or_a_missing_marked_cell_is_a_problem(tmp_path):
    for after in (3, 1):
        found = reference.problems("demo", _reference_then_edit_source(tmp_path, after))
        assert len(found) == 1 and f"source has {after} marked cell(s), the reference 2" in found[0]
        assert "make reference" in found[0]


def test_carry_keeps_a_sets_checked_outputs_through_an_edit_elsewhere_and_refuses_a_checked_edit(tmp_path):
    notebooks = _source(tmp_path, marked=2)
    assert reference.update(["demo"], _executed(tmp_path, fisher="0.905"), notebooks) == 0
    ref = notebooks / "reference"
    md = notebooks / "demo.md"
    # an unchecked cell added: the set is out of step until carried, then in step with its outputs
    md.write_text(md.read_text() + _cell('print("a new remark")'))
    assert reference.problems("demo", notebooks)
    assert reference.carry(["demo"], ref, notebooks) == 0
    assert reference.problems("demo", notebooks) == []
    texts = [o["text"] for c in nbformat.read(ref / "demo.ipynb", as_version=4).cells
             if reference.is_marked(c) for o in c.outputs if o.get("name") == "stdout"]
    assert texts == ["Fisher divergence 0: 0.905\n", "Fisher divergence 1: 1.905\n"]
    # a checked cell re-wrapped (the same code): carried with its output
    md.write_text(md.read_text().replace('print(f"Fisher divergence 1: {x + 1:.3f}")',
                                         'print(\n    f"Fisher divergence 1: "\n    f"{x + 1:.3f}"\n)'))
    assert reference.problems("demo", notebooks)
    assert reference.carry(["demo"], ref, notebooks) == 0
    assert reference.problems("demo", notebooks) == []
    texts = [o["text"] for c in nbformat.read(ref / "demo.ipynb", as_version=4).cells
             if reference.is_marked(c) for o in c.outputs if o.get("name") == "stdout"]
    assert texts == ["Fisher divergence 0: 0.905\n", "Fisher divergence 1: 1.905\n"]
    # a checked cell edited: only a run can give its output
    md.write_text(md.read_text().replace("{x + 1:.3f}", "{x + 1:.4f}"))
    assert reference.carry(["demo"], ref, notebooks) == 1
    assert reference.problems("demo", notebooks)


def test_an_edited_cell_or_a_missing_reference_is_a_problem(tmp_path):
    notebooks = _reference_then_edit_source(tmp_path, 2)
    (notebooks / "demo.md").write_text((notebooks / "demo.md").read_text().replace("0.905", "0.95"))
    assert "code cell 1 of the reference differs" in reference.problems("demo", notebooks)[0]
    (notebooks / "reference" / "demo.ipynb").unlink()
    assert "no reference notebook" in reference.problems("demo", notebooks)[0]
    assert reference.verify(["demo"], notebooks) == 1


def test_a_reference_that_compares_nothing_is_a_problem(tmp_path):
    notebooks = _source(tmp_path, marked=0)
    assert reference.update(["demo"], _executed(tmp_path), notebooks) == 0
    assert "would compare nothing" in reference.problems("demo", notebooks)[0]
    notebooks = _source(tmp_path, marked=1)
    assert reference.update(["demo"], _executed(tmp_path), notebooks) == 0
    path = notebooks / "reference" / "demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if reference.is_marked(cell):
            cell.outputs = []  # a marked cell with an empty reference
    nbformat.write(nb, path)
    assert "have no reference output" in reference.problems("demo", notebooks)[0]


def test_every_committed_reference_set_is_in_step_with_its_notebooks():
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.md"))
    assert names, "no notebooks"
    first = ROOT / "notebooks" / "reference"
    sets = reference.reference_folders()
    assert sets[0] == first and {p.stem for p in first.glob("*.ipynb")} == set(names)
    for folder in sets:
        assert folder.name == "reference" or re.fullmatch(r"reference-[0-9a-f]{12}", folder.name), folder.name
        held = sorted(p.stem for p in folder.glob("*.ipynb"))
        assert held and set(held) <= set(names), folder.name
        assert [p for n in held for p in reference.problems(n, reference=folder)] == [], folder.name
        for name in held if folder != first else []:  # only what differs from the first set
            assert (folder / f"{name}.ipynb").read_text() != (first / f"{name}.ipynb").read_text(), name
        assert not (folder / "conftest.py").exists()  # one guard for every set: notebooks/conftest.py


def test_the_numerics_fingerprint_is_stable_and_picks_this_machines_references(tmp_path):
    first = reference.numerics_fingerprint()
    assert re.fullmatch(r"[0-9a-f]{12}", first) and reference.numerics_fingerprint() == first
    # the same in a fresh interpreter with other thread settings (it runs on one thread)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    code = "from booktools.reference import numerics_fingerprint as f; print(f())"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=env).stdout.strip()
    assert fresh == first
    notebooks = tmp_path / "notebooks"
    (notebooks / "reference").mkdir(parents=True)
    for name in ("a", "b"):
        (notebooks / "reference" / f"{name}.ipynb").write_text("{}")
    assert reference.reference_path("a", notebooks, "0123456789ab") == notebooks / "reference" / "a.ipynb"
    own = notebooks / "reference-0123456789ab"
    own.mkdir()
    (own / "a.ipynb").write_text("{}")
    assert reference.reference_folder(notebooks, "0123456789ab") == own
    assert reference.reference_path("a", notebooks, "0123456789ab") == own / "a.ipynb"
    # a notebook this kind computes like the first machines: the first set's reference
    assert reference.reference_path("b", notebooks, "0123456789ab") == notebooks / "reference" / "b.ipynb"
    # another kind of machine: the first set
    assert reference.reference_path("a", notebooks, "ba9876543210") == notebooks / "reference" / "a.ipynb"
    assert reference.reference_folders(notebooks) == [notebooks / "reference", own]
    # the command line names this machine's reference, as make nbval uses it
    out = subprocess.run([sys.executable, "-m", "booktools.reference", "path", "ssm_variance"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert ROOT / out == reference.reference_path("ssm_variance")


def test_update_keeps_no_copy_of_the_first_sets_reference_in_another_set(tmp_path):
    notebooks = _source(tmp_path, marked=2)
    assert reference.update(["demo"], _executed(tmp_path), notebooks) == 0
    own = notebooks / "reference-0123456789ab"
    own.mkdir()
    assert reference.update(["demo"], _executed(tmp_path), notebooks, own) == 0
    assert not (own / "demo.ipynb").exists()  # the same numbers: the first set's reference serves
    assert reference.update(["demo"], _executed(tmp_path, fisher="0.906"), notebooks, own) == 0
    assert "0.906" in (own / "demo.ipynb").read_text()  # other numbers: this kind's own reference
    assert "0.905" in (notebooks / "reference" / "demo.ipynb").read_text()
    assert reference.update(["demo"], _executed(tmp_path), notebooks, own) == 0
    assert not (own / "demo.ipynb").exists()  # back to the first set's numbers: the copy goes


def _nbval(tmp_path: Path, *files: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "notebooks" / "conftest.py", tmp_path / "notebooks")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-rA", "--rootdir", str(tmp_path), *files],
        cwd=tmp_path / "notebooks" / "reference", capture_output=True, text=True, timeout=300)


def test_stock_nbval_passes_the_reference_and_fails_a_moved_number(tmp_path):
    notebooks = _source(tmp_path, marked=2)
    assert reference.update(["demo"], _executed(tmp_path, figure=False), notebooks) == 0
    ref = notebooks / "reference"
    moved = nbformat.read(ref / "demo.ipynb", as_version=4)  # every number moved by 5 %
    for cell in moved.cells:
        for out in cell.get("outputs", []):
            if out.get("name") == "stdout":
                out["text"] = out["text"].replace("0.905", "0.950").replace("1.905", "2.000")
    nbformat.write(moved, ref / "demo_moved.ipynb")
    (notebooks / "demo_moved.md").write_text((notebooks / "demo.md").read_text())
    run = _nbval(tmp_path, "demo.ipynb", "demo_moved.ipynb")
    report = run.stdout
    assert run.returncode == 1, report
    passed = [ln for ln in report.splitlines() if ln.startswith("PASSED")]
    failed = [ln for ln in report.splitlines() if ln.startswith("FAILED")]
    assert len(failed) == 2 and all("demo_moved.ipynb" in ln for ln in failed), report
    assert sum("demo.ipynb" in ln for ln in passed) == 4, report  # its four code cells
    assert "0.950" in report and "0.905" in report


@pytest.mark.parametrize("case", ["nothing marked", "extra marked cell", "missing marked cell"])
def test_nbval_refuses_a_reference_that_compares_nothing_or_is_out_of_step(tmp_path, case):
    if case == "nothing marked":
        notebooks = _source(tmp_path, marked=0)
        assert reference.update(["demo"], _executed(tmp_path), notebooks) == 0
    else:
        _reference_then_edit_source(tmp_path, 3 if case == "extra marked cell" else 1)
    run = _nbval(tmp_path, "demo.ipynb")
    assert run.returncode not in (0, 1), run.stdout + run.stderr  # a usage error, nothing ran
    assert "nbval would not validate these notebooks" in run.stdout + run.stderr
    assert "passed" not in run.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_runs_papermill_and_nbval_once_per_notebook_side_by_side():
    out = subprocess.run(["make", "-n", "-B", "--no-print-directory", "notebooks", "JOBS=2"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    side_by_side, alone = [ln for ln in out.splitlines() if ln.startswith("make ")][:2]
    assert "-j2 " in side_by_side and "-j1 " in alone
    # the timings' papermill run alone; its nbval run (settings only) side by side
    timed = "experiments/jacobian_cost.ipynb"
    assert timed in alone and timed not in side_by_side
    assert ".nbval/jacobian_cost.passed" in side_by_side and ".nbval/" not in alone
    assert "experiments/dkef_uci.ipynb" in side_by_side and ".nbval/dkef_uci.passed" in side_by_side
    for name in sorted(p.stem for p in (ROOT / "notebooks").glob("*.md")):
        assert out.count(f"tools/reproduce.py {name} ") == 1, name
        assert out.count(f"booktools.reference path {name})") == 1, name  # one nbval run, its reference
    assert "--nbval-lax" in out
    plan = subprocess.run(["make", "-n", "-B", "--no-print-directory", "test"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    assert plan.index("-j") < plan.index("jupyter-book build")
