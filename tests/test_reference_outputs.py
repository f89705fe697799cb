"""booktools.reference: a moved key number fails the comparison with a diff that shows it; the
refresh rewrites the reference; only the marked cells' text counts; other run settings are
not compared; `make test` executes each notebook once (no second execution for the check)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from booktools import reference

ROOT = Path(__file__).resolve().parents[1]


def _executed(tmp_path: Path, fisher: str, *, profile: str = "quick", device: str = "cpu") -> Path:
    """experiments/demo.ipynb and its results JSON, as papermill and the harness leave them."""
    v4 = nbformat.v4
    marked = v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(...)", outputs=[
        v4.new_output("stream", name="stdout", text=f"Fisher divergence: {fisher}\n"),
        v4.new_output("stream", name="stderr", text="a warning that is not compared\n"),
        v4.new_output("execute_result", data={"text/plain": "'table'"}, execution_count=1)])
    figure = v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nfig", outputs=[v4.new_output(
        "display_data", data={"image/png": "iVBOR", "text/plain": "<Figure size 640x480>"})])
    unmarked = v4.new_code_cell("print(t)", outputs=[v4.new_output("stream", name="stdout",
                                                                    text="3.2 s\n")])
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# Demo"), marked, unmarked, figure])
    exp = tmp_path / "experiments"
    (exp / "results").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, exp / "demo.ipynb")
    meta = {"profile": profile, "seed": 0, "device": device}
    (exp / "results" / "demo.json").write_text(json.dumps({"meta": meta}))
    return exp


def test_a_moved_number_fails_with_a_diff_until_the_reference_is_refreshed(tmp_path, capsys):
    ref = tmp_path / "notebooks" / "reference"
    exp = _executed(tmp_path, "0.905")
    assert reference.main(["update", "demo", "--experiments", str(exp), "--reference", str(ref)]) == 0
    text = (ref / "demo.txt").read_text()
    assert text == ("--- checked cell 1 ---\nFisher divergence: 0.905\n'table'\n"
                    "--- checked cell 2 ---\n")  # no stderr, no image, no unmarked cell
    assert reference.main(["check", "demo", "--experiments", str(exp), "--reference", str(ref)]) == 0

    _executed(tmp_path, "0.950")  # a change to the library moved the number
    capsys.readouterr()
    assert reference.main(["check", "demo", "--experiments", str(exp), "--reference", str(ref)]) == 1
    out = capsys.readouterr().out
    assert "-Fisher divergence: 0.905" in out and "+Fisher divergence: 0.950" in out
    assert "make reference" in out

    assert reference.main(["update", "demo", "--experiments", str(exp), "--reference", str(ref)]) == 0
    assert reference.main(["check", "demo", "--experiments", str(exp), "--reference", str(ref)]) == 0


def test_a_missing_reference_or_notebook_fails(tmp_path, capsys):
    exp = _executed(tmp_path, "0.905")
    ref = tmp_path / "notebooks" / "reference"
    ref.mkdir(parents=True)
    assert reference.check(["demo"], exp, ref) == 1
    (exp / "demo.ipynb").unlink()
    (ref / "demo.txt").write_text("")
    assert reference.check(["demo"], exp, ref) == 1
    assert "missing" in capsys.readouterr().out


@pytest.mark.parametrize("settings", [{"profile": "full"}, {"device": "cuda:0"}])
def test_other_run_settings_are_not_compared_nor_written(tmp_path, capsys, settings):
    ref = tmp_path / "notebooks" / "reference"
    ref.mkdir(parents=True)
    (ref / "demo.txt").write_text("--- checked cell 1 ---\nFisher divergence: 0.905\n")
    exp = _executed(tmp_path, "0.870", **settings)
    assert reference.check(["demo"], exp, ref) == 0
    assert "not compared" in capsys.readouterr().out
    assert reference.update(["demo"], exp, ref) == 1
    assert "0.905" in (ref / "demo.txt").read_text()


def test_every_notebook_has_a_reference():
    names = {p.stem for p in (ROOT / "notebooks").glob("*.md")}
    refs = {p.stem for p in (ROOT / "notebooks" / "reference").glob("*.txt")}
    assert names == refs, "run `make reference` and commit notebooks/reference/"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_executes_each_notebook_once_then_compares():
    out = subprocess.run(["make", "-n", "-B", "--no-print-directory", "test"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.md"))
    for name in notebooks:
        assert out.count(f"tools/reproduce.py {name} ") == 1, name
    assert "booktools.reference check" in out and "--nbval" not in out
    assert out.index("booktools.reference check") < out.index("jupyter-book build")
