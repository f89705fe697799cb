"""Verified library changes (booktools.runs.library_equivalents, tools/verify_library_change.py):
a result made with a library that a verified change leads from counts as current; an unverified
change, a partly different rerun or any other edit still makes it stale; the committed record
holds only complete evidence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from booktools import runs
from booktools.committed import committed_run, results_json
from tests.fingerprint_helpers import copy_inputs

ROOT = Path(__file__).resolve().parents[1]
NAME = "dkef_uci"
sys.path.insert(0, str(ROOT / "tools"))
import verify_library_change as vlc  # noqa: E402


def _record(repo: Path, *changes: dict) -> None:
    path = repo / runs.LIBRARY_CHANGES
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"changes": list(changes)}))


def _change(old: str, new: str, *identical: bool) -> dict:
    units = [{"experiment": NAME, "key": f"k{i}", "identical": same} for i, same in enumerate(identical)]
    return {"from": old, "to": new, "summary": "checks", "verified": {"units": units}}


def _fingerprint(repo: Path) -> runs.Fingerprint:
    return runs.inputs_fingerprint(NAME, repo, units=True, profile="cpu")


def _edit_library(repo: Path, text: str = "\nX = 1\n") -> None:
    init = repo / "ssm_lib" / "__init__.py"
    init.write_text(init.read_text() + text)


def test_a_verified_change_keeps_results_current_and_nothing_else_does(tmp_path):
    repo = copy_inputs(tmp_path, NAME, "repo")
    before = _fingerprint(repo)
    assert before.library_same_as == frozenset()
    _edit_library(repo)
    after = _fingerprint(repo)
    assert after.changed(before.parts) == ["library"]  # no record: stale
    for unverified in (_change(before.library, after.library),  # no units rerun
                       _change(before.library, after.library, True, False),  # one differed
                       {**_change(before.library, after.library, True), "verified": None}):
        _record(repo, unverified)
        assert _fingerprint(repo).changed(before.parts) == ["library"]
    _record(repo, _change(before.library, after.library, True, True))
    now = _fingerprint(repo)
    assert now.library_same_as == {before.library}
    assert now.changed(before.parts) == [] and now.library_verified_since(before.parts)
    assert not now.library_verified_since(now.parts)
    # another part changed too: still stale for that part
    assert now.changed({**before.parts, "record": "x"}) == ["record"]
    # a further, unrecorded edit: the old results are stale again
    _edit_library(repo, "\nY = 2\n")
    assert _fingerprint(repo).changed(before.parts) == ["library"]
    # ... until it too is verified: a chain of verified changes leads back
    latest = runs.library_digest(repo)
    _record(repo, _change(before.library, after.library, True), _change(after.library, latest, True))
    chained = _fingerprint(repo)
    assert chained.library_same_as == {before.library, after.library}
    assert chained.changed(before.parts) == []
    # a change recorded the other way round (new -> old) does not make new results current
    _record(repo, _change(latest, before.library, True))
    assert runs.library_equivalents(repo) == frozenset()


def test_a_store_reruns_nothing_made_before_a_verified_change(tmp_path):
    repo = copy_inputs(tmp_path, NAME, "repo")
    store = runs.RunStore(NAME, "cpu", root=tmp_path / "results",
                          fingerprint=_fingerprint(repo))
    store.save({"seed": 0}, {"value": 1.5})
    old = runs.library_digest(repo)
    _edit_library(repo)

    def reopened() -> runs.RunStore:
        return runs.RunStore(NAME, "cpu", root=tmp_path / "results",
                             fingerprint=_fingerprint(repo))

    assert reopened().read({"seed": 0}).changed == ("library",)
    _record(repo, _change(old, runs.library_digest(repo), True))
    assert reopened().done({"seed": 0})


def test_the_page_says_a_run_is_current_by_verified_changes(tmp_path):
    repo = copy_inputs(tmp_path, NAME, "repo")
    fp = runs.inputs_fingerprint(NAME, repo, profile="cpu").parts
    path = results_json(NAME, "cpu", tmp_path / "results")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"meta": {"provenance": {"commit": "abc", "fingerprint": fp}}, "claims": {}}))
    line = committed_run(NAME, root=tmp_path / "results", repo=repo).status_line()
    assert "Current: the code and settings that produced it are unchanged." in line
    _edit_library(repo)
    _record(repo, _change(fp["library"], runs.library_digest(repo), True))
    run = committed_run(NAME, root=tmp_path / "results", repo=repo)
    assert not run.stale and run.library_verified
    assert "but for library changes verified" in run.status_line()
    # tables redrawn with the changed library, from units made before the change: still said
    current = runs.inputs_fingerprint(NAME, repo, profile="cpu").parts
    cases = (({fp["library"]: 3, current["library"]: 1}, True), ({current["library"]: 4}, False))
    for libraries, said in cases:
        path.write_text(json.dumps({"meta": {"provenance": {"commit": "abc", "fingerprint": current}},
                                    "claims": {}, "units": {"finished": 4, "libraries": libraries}}))
        run = committed_run(NAME, root=tmp_path / "results", repo=repo)
        assert not run.stale and run.library_verified is said
        assert ("but for library changes verified" in run.status_line()) is said


def test_a_malformed_record_is_named(tmp_path):
    repo = copy_inputs(tmp_path, NAME, "repo")
    (repo / "results").mkdir()
    for text in ("not json", '{"changes": [{"from": 1}]}', '{"other": []}'):
        (repo / runs.LIBRARY_CHANGES).write_text(text)
        with pytest.raises(ValueError, match="library_changes.json: not a record"):
            runs.inputs_fingerprint(NAME, repo)


def test_the_comparison_leaves_out_measurements_only():
    payload = {"test_ll": -13.8, "steps": 400, "wall_s": 3.0, "train_s_per_step": 0.1, "curve_seconds": [1],
               "rows": [{"step_s": 1.0, "peak_mb": 20, "official_peak_mb": 3, "objective": "cp"}],
               "rounds": {"cp": {"step": [1.0]}}, "ais_temperatures": 300, "samples": "x", "load": [2.1, 2.0],
               "loader": 1}
    assert vlc.strip_measured(payload) == {"test_ll": -13.8, "steps": 400, "rows": [{"objective": "cp"}],
                                           "ais_temperatures": 300, "samples": "x", "loader": 1}
    assert vlc.first_difference(payload, json.loads(json.dumps(payload))) is None
    assert vlc.first_difference({"a": [1.0, 2.0]}, {"a": [1.0, 2.0000000000000004]}) == \
        "/a[1]: 2.0 != 2.0000000000000004"
    assert vlc.first_difference({"a": 1}, {"a": 1.0}) == "/a: 1 != 1.0"
    assert vlc.first_difference({"a": 1}, {"b": 1}) == "/a: present in only one"
    assert vlc.first_difference([1], [1, 2]) == ": lengths 1 != 2"


def test_the_committed_record_holds_complete_evidence():
    """Every recorded change was verified on at least one unit of each experiment whose committed
    units name its base library, and every rerun unit came out identical."""
    changes = runs.library_changes(ROOT)
    for change in changes:
        verified = change["verified"]
        assert change["summary"] and verified["numerics_fingerprint"] and verified["machine"]["cpu"]
        assert verified["units"] and all(u["identical"] is True and u["difference"] is None
                                         for u in verified["units"])
        made_with = {p.parent.name for p in (ROOT / "results" / "cpu").glob("*/*.json")
                     if json.loads(p.read_text()).get("provenance", {}).get("fingerprint", {})
                     .get("library") == change["from"]}
        assert made_with <= {u["experiment"] for u in verified["units"]}, change["from"]


def _fake_repo_with_units(tmp_path: Path) -> tuple[Path, str]:
    """A tree with two committed units of NAME made with its library; returns it and that
    library's digest."""
    repo = copy_inputs(tmp_path, NAME, "repo")
    store = runs.RunStore(NAME, "cpu", root=repo / "results", fingerprint=_fingerprint(repo))
    for seed in (0, 1):
        store.save({"seed": seed}, {"test_ll": -13.5 - seed, "wall_s": 70.0})
    return repo, runs.library_digest(repo)


def _run_tool(monkeypatch, repo: Path, base: str, payload_change: dict, *units: str) -> int:
    """verify_library_change.main on ``repo``, with the notebook's rerun faked: it writes each
    deleted unit again with the committed payload updated by ``payload_change`` (timings always
    differ), after checking that the other units were marked as made with the changed library."""
    import subprocess

    real_run = subprocess.run
    current = runs.library_digest(repo)

    def fake_run(cmd, *args, **kwargs):
        if not (isinstance(cmd, list) and len(cmd) > 1 and str(cmd[1]).endswith("reproduce.py")):
            return real_run(cmd, *args, **kwargs)
        scratch = Path(cmd[cmd.index("--results-dir") + 1]) / "cpu" / cmd[2]
        for path in (repo / "results" / "cpu" / cmd[2]).glob("*.json"):
            copy = scratch / path.name
            if copy.is_file():  # kept: marked as made with the changed library
                assert json.loads(copy.read_text())["provenance"]["fingerprint"]["library"] == current
            else:  # deleted: "run again"
                data = json.loads(path.read_text())
                data["payload"] = {**data["payload"], "wall_s": 99.0, **payload_change}
                copy.write_text(json.dumps(data))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(vlc, "ROOT", repo)
    monkeypatch.setattr(vlc, "base_library_digest", lambda rev: base)
    monkeypatch.setattr(subprocess, "run", fake_run)
    return vlc.main(["--base", "abc", "--summary", "checks only", *units])


def test_the_tool_records_a_change_only_when_every_rerun_unit_is_identical(tmp_path, monkeypatch):
    repo, base = _fake_repo_with_units(tmp_path)
    _edit_library(repo)
    unit = f"{NAME}:seed=0"
    # a unit that differs in its last bit: nothing recorded, the results stay stale
    assert _run_tool(monkeypatch, repo, base, {"test_ll": -13.500000000000002}, unit) == 1
    assert runs.library_changes(repo) == []
    assert runs.RunStore(NAME, "cpu", root=repo / "results", fingerprint=_fingerprint(repo)) \
        .read({"seed": 0}).changed == ("library",)
    # identical but for the timing: recorded with its evidence, and the units are current
    assert _run_tool(monkeypatch, repo, base, {}, unit) == 0
    (change,) = runs.library_changes(repo)
    assert (change["from"], change["to"]) == (base, runs.library_digest(repo))
    assert change["summary"] == "checks only"
    assert [(u["key"], u["identical"]) for u in change["verified"]["units"]] == [("seed=0", True)]
    store = runs.RunStore(NAME, "cpu", root=repo / "results", fingerprint=_fingerprint(repo))
    assert store.done({"seed": 0}) and store.done({"seed": 1})


def test_the_tool_wants_a_unit_of_every_experiment_made_with_the_base(tmp_path, monkeypatch, capsys):
    repo, base = _fake_repo_with_units(tmp_path)
    other = runs.RunStore("other", "cpu", root=repo / "results", fingerprint=_fingerprint(repo))
    other.save({"seed": 0}, {"x": 1.0})
    _edit_library(repo)
    with pytest.raises(SystemExit):
        _run_tool(monkeypatch, repo, base, {}, f"{NAME}:seed=0")
    assert "missing: other" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run_tool(monkeypatch, repo, base, {}, f"{NAME}:seed=7")
    assert "no committed unit results/cpu/dkef_uci/seed=7.json" in capsys.readouterr().err
    assert runs.library_changes(repo) == []


def test_a_second_change_is_verified_on_units_made_before_the_first(tmp_path, monkeypatch):
    """The units name the first library A; a verified change A -> B is on record; the tool is
    run for B -> C with --base at B: the units made with A count as made with the base (they
    are marked, not run again), and after the record every unit is current under C."""
    repo, a = _fake_repo_with_units(tmp_path)
    _edit_library(repo, "\nX = 1\n")
    b = runs.library_digest(repo)
    _record(repo, _change(a, b, True))
    _edit_library(repo, "\nY = 2\n")
    assert _run_tool(monkeypatch, repo, b, {}, f"{NAME}:seed=0") == 0  # fake_run checks the marking
    c = runs.library_digest(repo)
    assert [(ch["from"], ch["to"]) for ch in runs.library_changes(repo)] == [(a, b), (b, c)]
    store = runs.RunStore(NAME, "cpu", root=repo / "results", fingerprint=_fingerprint(repo))
    assert store.done({"seed": 0}) and store.done({"seed": 1})


def test_the_tool_refuses_when_other_units_would_all_run_again(tmp_path, monkeypatch, capsys):
    """A --base whose library did not make the experiment's other units (here: an unrelated
    digest) would leave them stale in the scratch copy, and the rerun would run every one: the
    tool refuses before anything runs."""
    repo, _ = _fake_repo_with_units(tmp_path)
    _edit_library(repo)
    with pytest.raises(SystemExit):
        _run_tool(monkeypatch, repo, "0123456789abcdef", {}, f"{NAME}:seed=0")
    assert "were not made with the base library 0123456789abcdef" in capsys.readouterr().err
    assert runs.library_changes(repo) == []
