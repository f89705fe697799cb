"""booktools.committed and Experiment.show_committed: a committed cpu run is read back with its
provenance, its claims reach the report card's glue, and a change to any of its inputs marks it
stale (a page never shows old numbers as current)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from booktools import runs
from booktools.committed import committed_run, results_json
from booktools.experiment import RecordIncomplete, setup
from tests.fingerprint_helpers import copy_inputs

ROOT = Path(__file__).resolve().parents[1]
NAME = "dkef_uci"


def fake_repo(tmp_path: Path) -> Path:
    """A copy of the inputs the fingerprint reads (library, recipes, notebook, record)."""
    return copy_inputs(tmp_path, NAME, "repo")


def write_run(root: Path, fingerprint: dict, claims: dict) -> Path:
    path = results_json(NAME, "cpu", root)
    path.parent.mkdir(parents=True)
    meta = {"profile": "cpu", "torch": "2.13.0", "provenance": {
        "commit": "abcdef1234567", "dirty": False, "machine": {"cpu": "EPYC", "cores": 2},
        "fingerprint": fingerprint, "wall_time_s": 7200.0, "finished": "2026-12-06 14:00 UTC"}}
    units = {"finished": 12, "pending": ["a", "b"], "wall_time_s": 7200.0}
    path.write_text(json.dumps({"meta": meta, "claims": claims, "units": units}))
    return path


def test_no_committed_run_says_so(tmp_path):
    run = committed_run(NAME, root=tmp_path)
    assert not run.available and not run.stale
    assert "No cpu run of dkef_uci is committed yet" in run.status_line()
    assert run.verdict_text("x") == "no cpu run yet" and run.effect_text("x") == ""


def test_a_current_run_and_each_change_that_makes_it_stale(tmp_path):
    repo = fake_repo(tmp_path)
    fp = runs.inputs_fingerprint(NAME, repo, profile="cpu").parts
    claims = {"ssm_vr_beats_ssm_redwine": {"verdict": "reproduced", "effect_line": "-0.1 (-0.2 to 0), n = 5"}}
    write_run(tmp_path / "results", fp, claims)
    run = committed_run(NAME, root=tmp_path / "results", repo=repo)
    assert run.available and not run.stale
    line = run.status_line()
    assert "commit abcdef1234" in line and "EPYC, 2 cores" in line and "2.00 h" in line and "Current" in line
    assert "12 units of work finished, 2 still pending" in line and "partial" in line
    assert run.verdict_text("ssm_vr_beats_ssm_redwine") == "reproduced"
    assert run.effect_text("ssm_vr_beats_ssm_redwine").startswith("-0.1")
    assert run.verdict_text("other") == "not decided in the cpu run"
    edits = {"library": repo / "ssm_lib" / "__init__.py",
             "recipes": repo / "tools" / "paper_recipes" / "uci.py",
             "notebook": repo / "notebooks" / f"{NAME}.md"}
    for part, path in edits.items():
        original = path.read_text()
        path.write_text(original + ("\n```{code-cell} ipython3\nx = 1\n```\n" if part == "notebook"
                                    else "\nX = 1\n"))
        stale = committed_run(NAME, root=tmp_path / "results", repo=repo)
        assert stale.changed == (part,), part
        assert "STALE: the " + part in stale.status_line()
        assert stale.verdict_text("ssm_vr_beats_ssm_redwine") == "reproduced (stale)"
        path.write_text(original)
    assert not committed_run(NAME, root=tmp_path / "results", repo=repo).stale
    # a recipe module the notebook does not import is not an input: the run stays current
    other = repo / "tools" / "paper_recipes" / "vae.py"
    other.write_text(other.read_text() + "\nX = 1\n")
    assert not committed_run(NAME, root=tmp_path / "results", repo=repo).stale
    # one it imports through another (uci -> files) is
    files = repo / "tools" / "paper_recipes" / "files.py"
    files.write_text(files.read_text() + "\nX = 1\n")
    assert committed_run(NAME, root=tmp_path / "results", repo=repo).changed == ("recipes",)


def test_an_unreadable_run_is_reported_not_shown(tmp_path):
    path = results_json(NAME, "cpu", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    run = committed_run(NAME, root=tmp_path)
    assert not run.available and "cannot be read" in run.status_line()


def test_show_committed_glues_every_claim_and_a_cpu_run_records_provenance(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(runs.RESULTS_ENV, str(tmp_path / "committed"))
    exp = setup(NAME, output_dir=tmp_path / "out")
    glued = {}
    monkeypatch.setattr(type(exp), "glue_value", lambda self, k, v: glued.__setitem__(k, v))
    run = exp.show_committed()
    assert not run.available and "No cpu run" in capsys.readouterr().out
    tags = [k for k in glued if k.startswith("cpu_verdict_")]
    n = sum(len(c.get("subjects", [None])) for c in exp.paper_record.claims.values())
    assert len(tags) == n and set(glued[t] for t in tags) == {"no cpu run yet"}
    assert "committed_status" in glued
    full = setup(NAME, profile="full", device="cpu", output_dir=tmp_path / "full")
    full.record(x=1)
    meta = json.loads((tmp_path / "full" / "results" / f"{NAME}.json").read_text())["meta"]
    prov = meta["provenance"]
    assert set(prov["fingerprint"]) == {"library", "recipes", "notebook", "record"}
    assert prov["machine"]["cores"] and "finished" in prov and prov["wall_time_s"] >= 0


def test_finish_requires_the_committed_run_where_the_record_has_a_cpu_profile(tmp_path):
    exp = setup(NAME, output_dir=tmp_path / "out")
    exp._record = dataclasses.replace(exp.paper_record, profiles=("quick", "full", "cpu"))
    with pytest.raises(RecordIncomplete, match=r"; the record describes the cpu profile but the run never "
                                               r"showed the committed cpu run"):
        exp.finish()


def toy_sitting(tmp_path, monkeypatch, sitting_s: int):
    """A full-profile experiment "toy" whose sitting lasts ``sitting_s`` seconds of a fake clock,
    and a unit function that takes 30 of them."""
    monkeypatch.setenv(runs.RESULTS_ENV, str(tmp_path / "committed"))
    exp = setup("toy", profile="full", device="cpu", output_dir=tmp_path / "out")
    monkeypatch.setattr(type(exp), "settings", property(lambda self: {"steps": 5}))
    fp = runs.Fingerprint("l", "r", "n", "s")
    monkeypatch.setattr(runs, "inputs_fingerprint", lambda name, root=None, units=False, profile=None: fp)
    monkeypatch.setattr(type(exp), "provenance",
                        lambda self: {"wall_time_s": self.results.get("wall_time_s")})
    clock = {"t": runs._IMPORTED}
    monkeypatch.setattr(runs.time, "monotonic", lambda: clock["t"])
    monkeypatch.setenv(runs.SITTING_ENV, str(sitting_s))

    def unit(u):
        clock["t"] += 30
        return {"u": u["seed"]}

    return exp, unit


def test_exp_run_units_counts_finished_and_pending_units_and_their_wall_time(tmp_path, monkeypatch):
    exp, unit = toy_sitting(tmp_path, monkeypatch, 50)
    units = [{"seed": s} for s in range(4)]
    out = exp.run_units(units, unit)
    assert len(out) == 2 and out.pending == ["seed=2", "seed=3"]
    data = json.loads((tmp_path / "out" / "results" / "toy.json").read_text())
    assert data["units"]["finished"] == 2 and data["units"]["pending"] == ["seed=2", "seed=3"]
    # the units' own wall times, summed (it once read 0: the stored units were looked up by key)
    assert data["wall_time_s"] == data["units"]["wall_time_s"] > 0


def test_count_units_after_calling_run_units_directly_keeps_the_same_tally(tmp_path, monkeypatch):
    """A notebook that calls booktools.runs.run_units itself (implicit_vae) counts with
    exp.count_units: the tally is the one exp.run_units keeps, over the units it was given."""
    exp, unit = toy_sitting(tmp_path, monkeypatch, 70)
    units = [{"seed": s} for s in range(5)]
    store = exp.run_store()
    out = runs.run_units(units, unit, store)
    tally = exp.count_units(units, out, store)
    assert tally["finished"] == 3 and tally["pending"] == ["seed=3", "seed=4"]
    expected = sum(store.read(u).provenance["wall_time_s"] for u in units[:3])
    assert tally["wall_time_s"] == pytest.approx(expected) and expected > 0
    data = json.loads((tmp_path / "out" / "results" / "toy.json").read_text())
    assert data["units"] == tally and data["wall_time_s"] == tally["wall_time_s"]
    # where the units ran, from their own provenance (the JSON's machine is where it was drawn)
    assert tally["machines"] == {store.read(units[0]).provenance["machine"]["cpu"]: 3}
    assert tally["libraries"] == {runs.inputs_fingerprint("toy", units=True).library: 3}


def test_the_page_names_where_the_units_ran(tmp_path):
    repo = fake_repo(tmp_path)
    fp = runs.inputs_fingerprint(NAME, repo, profile="cpu").parts
    path = write_run(tmp_path / "results", fp, {})
    data = json.loads(path.read_text())
    data["units"] = {"finished": 42, "pending": [], "wall_time_s": 3600.0,
                     "machines": {"Intel Xeon": 6, "AMD EPYC": 36}}
    path.write_text(json.dumps(data))
    line = committed_run(NAME, root=tmp_path / "results", repo=repo).status_line()
    assert "(tables drawn on EPYC, 2 cores, torch 2.13.0), 2.00 h of wall time; its units ran on " \
           "AMD EPYC (36), Intel Xeon (6). 42 units of work finished, none pending." in line


def test_a_cpu_sitting_shows_itself_not_the_committed_file_it_replaces(tmp_path, monkeypatch, capsys):
    """A cpu run's 'committed cpu run' is the run itself: its own units and a current
    fingerprint, not the previous sitting's file (which a change since has made stale)."""
    monkeypatch.setenv(runs.RESULTS_ENV, str(tmp_path / "committed"))
    old = {"library": "0" * 16, "recipes": "0" * 16, "notebook": "0" * 16, "record": "0" * 16}
    write_run(tmp_path / "committed", old, {})
    exp = setup(NAME, profile="cpu", device="cpu", output_dir=tmp_path / "out")
    monkeypatch.setattr(type(exp), "glue_value", lambda self, k, v: None)
    exp.record(units={"finished": 30, "pending": [], "wall_time_s": 99.0}, wall_time_s=99.0)
    run = exp.show_committed()
    assert run.available and not run.stale and run.data["units"]["finished"] == 30
    out = " ".join(capsys.readouterr().out.split())
    assert "30 units of work finished, none pending" in out and "Current" in out
    data = json.loads((tmp_path / "out" / "results" / f"{NAME}.json").read_text())
    assert data["committed_run"] == {"profile": "cpu", "available": True, "stale": False, "changed": []}
    # another profile's run reads the committed file, stale as it is
    quick = setup(NAME, output_dir=tmp_path / "quick")
    monkeypatch.setattr(type(quick), "glue_value", lambda self, k, v: None)
    assert quick.show_committed().stale


def test_status_report_and_the_command_name_a_stale_run(tmp_path, monkeypatch, capsys):
    """``python -m booktools.committed`` (run by make test) prints what each page will say; a
    stale run is named with the command that redraws it, and ``--strict`` makes it an error."""
    from booktools import committed

    repo = fake_repo(tmp_path)
    write_run(tmp_path / "results", runs.inputs_fingerprint(NAME, repo, profile="cpu").parts, {})
    assert committed.committed_names(root=tmp_path / "results") == [NAME]
    assert committed.status_report(root=tmp_path / "results", repo=repo) == ([f"{NAME}: current"], [])
    notebook = repo / "notebooks" / f"{NAME}.md"
    notebook.write_text(notebook.read_text() + "\n```{code-cell} ipython3\nx = 1\n```\n")
    lines, stale = committed.status_report(root=tmp_path / "results", repo=repo)
    assert stale == [NAME] and lines == [f"{NAME}: STALE (the notebook changed since the run)"]
    assert committed.status_report(root=tmp_path / "nothing") == ([], [])

    monkeypatch.setattr(committed, "status_report", lambda profile: (lines, stale))
    assert committed.main([]) == 0
    out = capsys.readouterr().out
    assert f"{NAME}: STALE" in out and f'CPU_NOTEBOOKS="{NAME}" CPU_SITTING=1' in out
    assert committed.main(["--strict"]) == 1
    capsys.readouterr()
    monkeypatch.setattr(committed, "status_report", lambda profile: ([f"{NAME}: current"], []))
    assert committed.main(["--strict"]) == 0 and "STALE" not in capsys.readouterr().out
