"""What readers see of an executed notebook: the papermill-injected cell hidden, the reference
marker turned into a tag (the reference comparison still finds the cell), and printed lines
that fit the book's ~85-character output boxes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
from nbformat import v4

from booktools import benchmark as bm
from booktools import reference
from booktools.experiment import setup

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("reproduce_for_tidy", ROOT / "tools" / "reproduce.py")
reproduce = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reproduce)


def _notebook(path: Path) -> None:
    injected = v4.new_code_cell('profile = "quick"', metadata={"tags": ["injected-parameters"]})
    marked = v4.new_code_cell(f"{reference.MARKER}\nprint(1)", outputs=[
        v4.new_output("stream", name="stdout", text="1.000\n")])
    plain = v4.new_code_cell("print(2)", outputs=[v4.new_output("stream", name="stdout", text="2\n")])
    nbformat.write(v4.new_notebook(cells=[injected, marked, plain]), path)


def test_tidy_hides_the_injected_cell_and_the_marker_but_keeps_the_checked_output(tmp_path):
    path = tmp_path / "nb.ipynb"
    _notebook(path)
    before = [c.outputs for c in nbformat.read(path, as_version=4).cells if reference.is_marked(c)]
    reproduce._tidy_for_readers(path)
    reproduce._tidy_for_readers(path)  # idempotent
    nb = nbformat.read(path, as_version=4)
    injected, marked, plain = nb.cells
    assert injected.metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert marked.source == "print(1)"
    assert marked.metadata["tags"] == [reference.CHECK_TAG]
    assert plain.metadata.get("tags", []) == []
    after = [c.outputs for c in nb.cells if reference.is_marked(c)]
    assert after == before and after[0][0]["text"] == "1.000\n"  # `make reference` still finds it


def test_check_messages_are_wrapped_to_85_characters(tmp_path, capsys):
    exp = setup("wrap", profile="quick", device="cpu", seed=0, output_dir=tmp_path)
    message = "a claim " * 30 + "with a number 0.123"
    exp.check(True, message)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 1 and all(len(line) <= 85 for line in lines)
    assert lines[0].startswith("[PASS] ") and lines[1].startswith(" " * 7)
    assert " ".join(line.strip() for line in lines) == f"[PASS] {message}"
    assert exp.results["checks"] == {message: True}  # the results file keeps the whole message


def test_benchmark_tables_fit_85_characters():
    rows = [dict(device="cpu", dim=d, label=bm.VARIANTS[m].label, status=bm.STATUS_OK, time_s=1.234,
                 ratio_dsm=2.5, flop_units=1234.5, flop_ratio_dsm=12.3, peak_bytes=123_456_789,
                 n_repeats=11) for d in (2, 1024) for m in bm.VARIANTS]
    assert max(len(line) for line in bm.format_table(rows).splitlines()) <= 85
    targets = [dict(holds=True, target="default SSM on ScoreMLP <= 1.8 x DSM (d=1024, the widest "
                    "network of the sweep, median of the repeats)", value=1.234, limit=1.8)]
    text = bm.format_targets(targets)
    assert max(len(line) for line in text.splitlines()) <= 85
    assert "1.234 (limit 1.8)" in " ".join(text.split())
