"""The scalability notebook's cpu profile, smoke run and resumable units (issue 24)."""

from __future__ import annotations

import re
from pathlib import Path

from booktools.records import load_record
from booktools.runs import RunStore, inputs_fingerprint, unit_key

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "dkef_scalability.md"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.M | re.S)


def cells() -> list[str]:
    return CELL.findall(NOTEBOOK.read_text())


def test_the_cpu_profile_keeps_the_papers_model_data_and_timing():
    record = load_record("dkef_scalability")
    assert "cpu" in record.profiles
    for name in ("split_sizes", "n_inducing", "n_kernels", "hidden", "batch_size", "refit_rows",
                 "quality_steps", "base_std", "lr", "dsm_sigma", "dsm_ridge", "n_alpha"):
        setting = record.settings[name]
        assert setting.values["cpu"] == setting.paper, name
    dims = record.settings["dims"].values["cpu"]
    assert dims == sorted(dims) and max(dims) >= 512  # up to where exact SM exceeds the budget
    assert set(record.settings["quality_dims"].values["cpu"]) <= set(dims)
    assert record.settings["seeds"].values["cpu"] >= 3  # the claims' rule needs 3 paired samples
    assert record.settings["timing_rounds"].values["cpu"] >= 3


def test_the_notebook_declares_the_smoke_run_and_limits_the_papers_counts():
    source = cells()
    params = next(c for c in source if "smoke_steps = 0" in c)
    assert 'profile = "quick"' in params
    text = "\n".join(source)
    assert "smoke_steps=smoke_steps" in text and "exp.pick(" not in text
    for count in ("timing_rounds", "timing_block", "quality_steps", "lambda_steps", "n_logz"):
        assert f"exp.limit(cfg.{count})" in text, count
    assert "exp.time_estimate(" in text and "exp.run_store()" in text


def test_show_committed_has_its_own_unchecked_cell():
    (cell,) = [c for c in cells() if "exp.show_committed()" in c]
    assert cell.strip() == "cpu = exp.show_committed()"


def _unit_builders() -> dict:
    text = "\n".join(cells())
    namespace: dict = {}
    for name in ("timing_unit", "quality_unit"):
        match = re.search(rf"^def {name}\(.*?(?=^\S)", text + "\nEND", re.M | re.S)
        assert match, name
        exec(match.group(0), namespace)  # noqa: S102 - the notebook's own two-line builders
    return namespace


def test_the_units_read_back_as_finished_from_a_store(tmp_path):
    """A unit is done when its file reads back under its own key (the store writes the unit with
    sorted keys, so a unit whose keys were not in that order would be rerun at every sitting)."""
    ns = _unit_builders()
    store = RunStore("dkef_scalability", "cpu", root=tmp_path,
                     fingerprint=inputs_fingerprint("dkef_scalability"))
    units = [ns["timing_unit"](8), ns["quality_unit"](32, 2, "ssm_vr")]
    for unit in units:
        store.save(unit, {"x": 1.5}, wall_time=0.25)
    assert store.pending(units) == []
    assert [store.read(u).key for u in units] == [unit_key(u) for u in units]
    assert store.read(units[1]).provenance["seed"] == 2
