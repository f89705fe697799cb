"""booktools.runs: resumable results with provenance. A unit's file is written atomically and
counts as done only when it reads back; an interrupted loop resumes with the pending units; a
corrupt file is run again with a warning; a result made before a change to the library, the
recipes, the notebook's code or the record's settings is marked stale; every file carries its
provenance."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from booktools import runs
from booktools.records import load_record
from booktools.runs import (
    CorruptResult,
    Fingerprint,
    RunStore,
    UnitFailed,
    code_as_run,
    inputs_fingerprint,
    narrow_stored_units,
    run_units,
    unit_key,
)
from tests.fingerprint_helpers import copy_inputs

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("quick", "cpu", "full")
FP = Fingerprint(library="l1", recipes="r1", notebook="n1", record="s1")
UNITS = [{"dataset": d, "objective": o, "seed": s}
         for d in ("redwine", "parkinsons") for o in ("ssm", "exact") for s in (0, 1)]


def store(tmp_path: Path, fingerprint: Fingerprint = FP, **kw) -> RunStore:
    return RunStore("toy", "cpu", root=tmp_path / "results", fingerprint=fingerprint, **kw)


def test_unit_keys_are_plain_and_bad_units_are_named():
    assert unit_key({"dataset": "redwine", "seed": 3}) == "dataset=redwine__seed=3"
    assert unit_key("warmup") == "warmup"
    with pytest.raises(ValueError, match="'dataset'='red wine'"):
        unit_key({"dataset": "red wine"})
    with pytest.raises(TypeError, match="value of 'sigma' must be an int or a string"):
        unit_key({"sigma": 0.1})
    with pytest.raises(TypeError, match="non-empty mapping"):
        unit_key({})
    with pytest.raises(ValueError, match="profile must be a plain word"):
        RunStore("toy", "../cpu", root=Path("/nonexistent"), fingerprint=FP)
    with pytest.raises(TypeError, match="fingerprint must be a Fingerprint"):
        RunStore("toy", "cpu", root=Path("/nonexistent"), fingerprint="abc")


def test_a_saved_unit_carries_its_provenance(tmp_path):
    s = store(tmp_path, settings={"steps": 500, "lr": {"ssm": 1e-4}})
    path = s.save({"dataset": "redwine", "seed": 4}, {"loss": -1.25}, wall_time=3.5)
    assert path == tmp_path / "results" / "cpu" / "toy" / "dataset=redwine__seed=4.json"
    data = json.loads(path.read_text())
    prov = data["provenance"]
    assert data["payload"] == {"loss": -1.25} and data["unit"] == {"dataset": "redwine", "seed": 4}
    assert prov["profile"] == "cpu" and prov["experiment"] == "toy" and prov["seed"] == 4
    assert prov["settings"] == {"steps": 500, "lr": {"ssm": 1e-4}}
    assert prov["wall_time_s"] == 3.5 and prov["fingerprint"] == FP.parts
    assert prov["torch"] and prov["machine"]["cores"] == os.cpu_count() and prov["machine"]["cpu"]
    assert "gpu" in prov["machine"] and "hostname" not in json.dumps(prov)
    assert len(prov["commit"]) == 40 and isinstance(prov["dirty"], bool)  # the test runs in a checkout
    assert not list(s.folder.glob(".*"))  # no temporary file left behind
    with pytest.raises(ValueError, match="payload of unit dataset=redwine__seed=4 is not JSON"):
        s.save({"dataset": "redwine", "seed": 4}, {"loss": float("nan")})
    assert json.loads(path.read_text())["payload"] == {"loss": -1.25}  # the old file survived


def test_storing_record_settings_does_not_count_as_reading_them(tmp_path):
    record = tmp_path / "toy.toml"
    record.write_text('experiment = "toy"\ntitle = "t"\npaper_section = "s"\n'
                      '[settings.steps]\nlabel = "steps"\npaper = 500\nsource = "Sec. 1"\n'
                      'quick = 5\nquick_reason = "fast"\n')
    cfg = load_record("toy", tmp_path).settings_for("quick")
    s = store(tmp_path, settings=cfg)
    s.save("only", 1)
    assert s.read("only").provenance["settings"] == {"steps": 5}
    assert cfg.unread() == ["steps"]  # exp.finish() still sees that the run never read it


def test_an_interrupted_loop_resumes_with_the_pending_units(tmp_path):
    s, calls = store(tmp_path), []

    def fn(unit):
        calls.append(unit_key(unit))
        if len(calls) == 4:
            raise RuntimeError("diverged at step 17")
        return {"value": unit["seed"] + len(unit["dataset"])}

    with pytest.raises(UnitFailed, match=r"unit dataset=redwine__objective=exact__seed=1 failed "
                                         r"with RuntimeError: diverged at step 17; the 3 finished"):
        run_units(UNITS, fn, s, progress=False)
    assert len(s.load_all()) == 3 and s.pending(UNITS) == UNITS[3:]
    second = []
    out = run_units(UNITS, lambda u: second.append(u) or {"value": u["seed"] + len(u["dataset"])},
                    s, progress=False)
    assert second == UNITS[3:]  # the failed unit and those after it, nothing done twice
    assert list(out) == [unit_key(u) for u in UNITS]
    assert out[unit_key(UNITS[5])] == {"value": 1 + len("parkinsons")}
    done_before = {p.name: p.stat().st_mtime_ns for p in s.folder.glob("*.json")}
    ran = []
    run_units(UNITS, lambda u: ran.append(u) or {}, s, progress=False)
    assert ran == [] and done_before == {p.name: p.stat().st_mtime_ns for p in s.folder.glob("*.json")}


def test_a_half_written_file_never_counts_as_done(tmp_path, monkeypatch):
    s = store(tmp_path)
    unit = UNITS[0]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs.os, "replace", crash)  # the write stops before the rename
    with pytest.raises(OSError, match="disk full"):
        s.save(unit, {"value": 1})
    monkeypatch.undo()
    assert not s.done(unit) and not s.path(unit).exists() and not list(s.folder.iterdir())
    s.folder.joinpath(f".{unit_key(unit)}.json.tmp-999").write_text('{"schema": 1')  # a dead writer's
    assert not s.done(unit) and s.load_all() == {} and s.pending([unit]) == [unit]


@pytest.mark.parametrize("text", ['{"schema": 1, "unit": ', "", '{"schema": 1}', "[1, 2]",
                                  '{"schema": 1, "unit": "other", "payload": 1, "provenance": {}}'])
def test_a_corrupt_file_is_run_again_with_a_warning(tmp_path, text):
    s = store(tmp_path)
    run_units(UNITS[:2], lambda u: {"first": True}, s, progress=False)
    s.path(UNITS[0]).write_text(text)
    assert not s.done(UNITS[0]) and s.done(UNITS[1])
    with pytest.raises(CorruptResult):
        s.read(UNITS[0])
    ran = []
    with pytest.warns(UserWarning, match=r"re-running unit dataset=redwine__objective=ssm__seed=0"):
        out = run_units(UNITS[:2], lambda u: ran.append(u) or {"second": True}, s, progress=False)
    assert ran == [UNITS[0]] and out[unit_key(UNITS[0])] == {"second": True}
    assert out[unit_key(UNITS[1])] == {"first": True} and s.summary().corrupt == ()


def test_results_from_changed_inputs_are_marked_stale(tmp_path):
    run_units(UNITS[:3], lambda u: 1, store(tmp_path), progress=False)
    same = store(tmp_path)
    assert same.stale_units() == [] and same.summary().line() == "All 3 stored results are current."
    changed = store(tmp_path, Fingerprint(library="l2", recipes="r1", notebook="n1", record="s2"))
    assert sorted(changed.stale_units()) == sorted(unit_key(u) for u in UNITS[:3])
    assert all(r.changed == ("library", "record") for r in changed.load_all().values())
    assert changed.summary().line().startswith("STALE: 3 of 3 stored results were produced before "
                                               "a change to library, record")
    # a stale result is not done: resuming runs it again (and says so), so that a sitting after
    # a change never mixes results of the old code into a run it stamps as current
    assert changed.pending(UNITS[:3]) == UNITS[:3]
    calls = []
    out = run_units(UNITS[:4], lambda u: calls.append(u) or 2, changed, progress=False)
    assert calls == UNITS[:4] and list(out.values()) == [2, 2, 2, 2]
    assert changed.stale_units() == []
    assert sorted(store(tmp_path).stale_units()) == sorted(unit_key(u) for u in UNITS[:4])


def _copy_tree(tmp_path: Path) -> Path:
    """A copy of what the fingerprint reads: the library, the recipes, one notebook, its record."""
    return copy_inputs(tmp_path, "ssm_variance")


def test_a_change_to_a_library_file_in_a_copy_marks_the_results_stale(tmp_path):
    tree = _copy_tree(tmp_path)
    fp = inputs_fingerprint("ssm_variance", tree)
    assert fp == inputs_fingerprint("ssm_variance", tree) and "absent" not in fp.parts.values()
    s = RunStore("ssm_variance", "cpu", root=tmp_path / "results", fingerprint=fp)
    run_units(["a", "b"], lambda u: 0, s, progress=False)

    def stale_after(edit) -> list[str]:
        edit()
        now = inputs_fingerprint("ssm_variance", tree)
        return RunStore("ssm_variance", "cpu", root=tmp_path / "results", fingerprint=now).stale_units()

    lib = tree / "ssm_lib" / "dkef" / "alpha.py"  # a file in a subfolder: the glob is recursive
    nb = tree / "notebooks" / "ssm_variance.md"
    rec = tree / "tools" / "paper_recipes" / "records" / "ssm_variance.toml"
    # prose of the notebook and the claims' wording do not shape a number: still current
    assert stale_after(lambda: nb.write_text(nb.read_text().replace("\n# ", "\n# Edited: ", 1))) == []
    assert stale_after(lambda: rec.write_text(rec.read_text() + '\n[claims.extra]\npaper = "x"\n')) == []
    assert stale_after(lambda: lib.write_text(lib.read_text() + "\n# one more line\n")) == ["a", "b"]
    fresh = inputs_fingerprint("ssm_variance", tree)
    assert fp.changed(fresh.parts) == ["library"]
    for edit, part in [
        # (the recipes' __init__ is an input of every notebook; uci.py only of those importing it)
        (lambda: (tree / "tools" / "paper_recipes" / "__init__.py").write_text("x = 1\n"), "recipes"),
        (lambda: nb.write_text(nb.read_text().replace("```{code-cell} ipython3\n",
                                                      "```{code-cell} ipython3\nx = 2\n", 1)), "notebook"),
        (lambda: rec.write_text(rec.read_text() + '\n[settings.new]\nlabel = "n"\npaper = 1\n'
                                                  'source = "s"\n'), "record"),
    ]:
        before = inputs_fingerprint("ssm_variance", tree)
        edit()
        assert before.changed(inputs_fingerprint("ssm_variance", tree).parts) == [part]


def test_progress_bar_only_on_a_terminal_and_lines_to_the_progress_file(tmp_path, monkeypatch, capsys):
    log = tmp_path / "progress.log"
    monkeypatch.setenv(runs.PROGRESS_ENV, str(log))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    run_units(UNITS[:2], lambda u: 0, store(tmp_path), progress=True)  # TQDM_DISABLE wins
    assert capsys.readouterr().err == ""
    lines = log.read_text().splitlines()
    assert lines[0] == "toy/cpu: 0 of 2 units already done"
    assert lines[1].startswith("toy/cpu: [1/2] dataset=redwine__objective=ssm__seed=0 done in ")
    monkeypatch.delenv("TQDM_DISABLE")
    run_units(UNITS[:3], lambda u: 0, store(tmp_path), progress=True)
    assert "toy/cpu" in capsys.readouterr().err  # the bar, asked for explicitly
    run_units(UNITS[:4], lambda u: 0, store(tmp_path))  # default: not a terminal, no bar
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be"):
        run_units(UNITS[:1], lambda u: 0, store(tmp_path), progress="yes")
    with pytest.raises(ValueError, match="units must be distinct"):
        run_units([UNITS[0], UNITS[0]], lambda u: 0, store(tmp_path))


def test_a_sitting_ends_between_units_and_the_next_one_resumes(tmp_path, monkeypatch):
    """$BOOKTOOLS_SITTING_S: no unit starts after the sitting's end; the finished ones are
    returned, the rest listed as pending, and the next sitting runs exactly those."""
    from booktools import runs

    s, ran = store(tmp_path), []
    clock = {"t": runs._IMPORTED}
    monkeypatch.setattr(runs.time, "monotonic", lambda: clock["t"])
    monkeypatch.setenv(runs.SITTING_ENV, "100")

    def slow(unit):  # each unit takes 40 s of the sitting
        ran.append(unit_key(unit))
        clock["t"] += 40
        return {"seed": unit["seed"]}

    first = run_units(UNITS, slow, s, progress=False)
    assert ran == [unit_key(u) for u in UNITS[:3]]  # started at 0, 40 and 80 s; none at 120 s
    assert list(first) == ran and first.pending == [unit_key(u) for u in UNITS[3:]]
    assert not first.complete
    clock["t"] = runs._IMPORTED  # a new sitting (a new kernel), long enough for the rest
    monkeypatch.setenv(runs.SITTING_ENV, "1000")
    ran.clear()
    second = run_units(UNITS, slow, s, progress=False)
    assert ran == [unit_key(u) for u in UNITS[3:]] and second.complete and len(second) == len(UNITS)
    for bad in ("soon", "0", "-5"):
        monkeypatch.setenv(runs.SITTING_ENV, bad)
        with pytest.raises(ValueError, match="BOOKTOOLS_SITTING_S must be"):
            run_units(UNITS + [{"dataset": "x", "objective": "y", "seed": 9}], slow, s, progress=False)


def test_a_unit_whose_items_are_not_in_alphabetical_order_reads_back_as_done(tmp_path):
    """The file is written with sorted keys; a unit given as (seed, dataset) must still count as
    done, with its items in the given order (it once read back as corrupt and ran again)."""
    s = store(tmp_path)
    unit = {"seed": 2, "objective": "ssm", "dataset": "redwine"}
    s.save(unit, {"v": 1.5}, wall_time=3.0)
    assert s.done(unit) and s.pending([unit]) == []
    back = s.read(unit)
    assert back.payload == {"v": 1.5} and list(back.unit) == ["seed", "objective", "dataset"]
    ran = []
    run_units([unit], lambda u: ran.append(u) or {}, s, progress=False)
    assert ran == []


def _toy_settings(tmp_path: Path):
    record = tmp_path / "toy.toml"
    record.write_text('experiment = "toy"\ntitle = "t"\npaper_section = "s"\n'
                      '[settings.steps]\nlabel = "steps"\npaper = 500\nsource = "Sec. 1"\n'
                      'quick = 5\nquick_reason = "fast"\n'
                      '[settings.lr]\nlabel = "lr"\npaper = 0.1\nsource = "Sec. 1"\n'
                      'quick = 0.2\nquick_reason = "fast"\n'
                      '[settings.width]\nlabel = "width"\npaper = 30\nsource = "Sec. 1"\n'
                      'quick = 8\nquick_reason = "fast"\n')
    return lambda: load_record("toy", tmp_path).settings_for("quick")


def test_a_resumed_unit_counts_the_settings_it_read_when_it_ran(tmp_path):
    # a run whose units alone read some settings: when a later sitting takes every unit from
    # the store, exp.finish() must not call those settings unread (the first cpu sitting of
    # dkef_scalability failed so), and settings no unit read stay unread
    new_settings = _toy_settings(tmp_path)

    def fn(cfg):
        return lambda unit: cfg.steps * (cfg.lr if unit == "b" else 1.0)

    first = new_settings()
    run_units(["a", "b"], fn(first), store(tmp_path, settings=first))
    assert store(tmp_path).read("a").provenance["settings_read"] == ["steps"]
    assert store(tmp_path).read("b").provenance["settings_read"] == ["lr", "steps"]

    resumed = new_settings()
    out = run_units(["a", "b"], fn(resumed), store(tmp_path, settings=resumed))
    assert dict(out) == {"a": 5, "b": 1.0}
    assert resumed.unread() == ["width"]
    only_a = new_settings()
    run_units(["a"], fn(only_a), store(tmp_path, settings=only_a))
    assert only_a.unread() == ["lr", "width"]


def test_a_unit_stored_before_reads_were_kept_counts_every_setting_it_ran_with(tmp_path):
    new_settings = _toy_settings(tmp_path)
    old = new_settings()
    store(tmp_path, settings=old).save("a", 1)  # no settings_read: as the first sittings stored
    assert "settings_read" not in store(tmp_path).read("a").provenance
    resumed = new_settings()
    run_units(["a"], lambda unit: 0, store(tmp_path, settings=resumed))
    assert resumed.unread() == []


def test_a_sitting_counts_from_its_start_time_when_one_is_given(tmp_path, monkeypatch):
    """$BOOKTOOLS_SITTING_START (set by tools/reproduce.py at launch): the notebook's set-up
    before its first unit counts against the sitting, not only the time since the import."""
    from booktools import runs

    clock = {"t": 1_000_000.0}
    monkeypatch.setattr(runs.time, "time", lambda: clock["t"])
    monkeypatch.setenv(runs.SITTING_ENV, "100")
    monkeypatch.setenv(runs.SITTING_START_ENV, str(clock["t"] - 95))  # 95 s of set-up already

    def slow(unit):
        clock["t"] += 40
        return 1

    out = run_units(UNITS, slow, store(tmp_path), progress=False)
    assert list(out) == [unit_key(UNITS[0])] and len(out.pending) == len(UNITS) - 1
    monkeypatch.setenv(runs.SITTING_START_ENV, "yesterday")
    with pytest.raises(ValueError, match="BOOKTOOLS_SITTING_START must be"):
        run_units(UNITS, slow, store(tmp_path), progress=False)


def _cells_around_the_units_cell(nb: Path) -> tuple[str, str, str]:
    """A line in a code cell before the units cell, in the units cell, and after it."""
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", nb.read_text(), re.M | re.S)
    units = max(i for i, c in enumerate(cells) if "run_units(" in c)
    assert 0 < units < len(cells) - 1
    return cells[0], cells[units], cells[-1]


def test_a_unit_is_stale_after_a_change_up_to_its_units_cell_but_not_after_it(tmp_path):
    tree = copy_inputs(tmp_path, "nice_digits")
    nb = tree / "notebooks" / "nice_digits.md"
    before_cell, units_cell, after_cell = _cells_around_the_units_cell(nb)
    for cell, units_stale in [(after_cell, False), (units_cell, True), (before_cell, True)]:
        whole = inputs_fingerprint("nice_digits", tree)
        units = inputs_fingerprint("nice_digits", tree, units=True)
        assert whole.notebook != units.notebook  # cells after the units cell: only in the whole
        nb.write_text(nb.read_text().replace(cell, cell + "x = 2\n", 1))
        assert whole.changed(inputs_fingerprint("nice_digits", tree).parts) == ["notebook"]
        assert units.changed(inputs_fingerprint("nice_digits", tree, units=True).parts) == (
            ["notebook"] if units_stale else [])
    # a store made without a fingerprint takes the units' one
    assert RunStore("nice_digits", "cpu", root=tmp_path / "r").fingerprint == inputs_fingerprint(
        "nice_digits", units=True, profile="cpu")


def test_a_profiles_results_are_stale_after_a_change_to_its_own_settings_only(tmp_path):
    tree = copy_inputs(tmp_path, "nice_digits")
    rec = tree / "tools" / "paper_recipes" / "records" / "nice_digits.toml"
    text = rec.read_text()

    def records_after(edited: str) -> set[str]:
        """The profiles whose record digest changes when the record reads ``edited``."""
        rec.write_text(text)
        before = {p: inputs_fingerprint("nice_digits", tree, profile=p).record for p in PROFILES}
        rec.write_text(edited)
        return {p for p in PROFILES if inputs_fingerprint("nice_digits", tree, profile=p).record != before[p]}

    def edit(old: str, new: str) -> str:
        assert text.count(old) >= 1, old
        return text.replace(old, new, 1)

    full_data = next(line for line in text.splitlines() if line.startswith('full = "mnist'))
    assert records_after(edit('label = "data"', 'label = "the data"')) == set()
    assert records_after(edit('cpu_reason = "offline', 'cpu_reason = "Offline')) == set()
    assert records_after(edit(full_data, 'full = "another data set"')) == {"full"}
    # a setting without values of its own: every profile runs with the paper's value
    dequantisation = next(line for line in text.splitlines() if line.startswith('paper = "u = k/(L-1)'))
    assert records_after(edit(dequantisation, 'paper = "edited"')) == set(PROFILES)
    # without a profile, the whole table (any value of any profile)
    rec.write_text(text)
    whole = inputs_fingerprint("nice_digits", tree).record
    rec.write_text(edit(full_data, 'full = "another data set"'))
    assert inputs_fingerprint("nice_digits", tree).record != whole


def test_units_stored_with_the_older_digests_move_to_the_narrower_ones_only_when_current(tmp_path):
    tree = copy_inputs(tmp_path, "nice_digits")
    whole = inputs_fingerprint("nice_digits", tree)  # every code cell, every profile's settings
    units_only = inputs_fingerprint("nice_digits", tree, units=True)  # (this session's first step)
    narrow = inputs_fingerprint("nice_digits", tree, units=True, profile="cpu")
    assert len({whole.notebook, units_only.notebook}) == 2 and len({whole.record, narrow.record}) == 2
    old = RunStore("nice_digits", "cpu", root=tmp_path / "results", fingerprint=whole)
    run_units(["a", "b"], lambda u: {"v": 1}, old, progress=False)
    run_units(["e"], lambda u: {"v": 1}, RunStore("nice_digits", "cpu", root=tmp_path / "results",
                                                  fingerprint=units_only), progress=False)
    other = Fingerprint(**{**whole.parts, "library": "an older library"})
    run_units(["c"], lambda u: {"v": 2}, RunStore("nice_digits", "cpu", root=tmp_path / "results",
                                                  fingerprint=other), progress=False)
    now = RunStore("nice_digits", "cpu", root=tmp_path / "results", fingerprint=narrow)
    assert sorted(now.stale_units()) == ["a", "b", "c", "e"]
    assert narrow_stored_units("nice_digits", "cpu", root=tmp_path / "results", repo=tree) == ["a", "b", "e"]
    assert now.stale_units() == ["c"] and now.read("a").payload == {"v": 1}
    assert now.read("a").provenance["fingerprint"] == narrow.parts
    assert "fingerprint_narrowed_utc" in now.read("a").provenance
    assert narrow_stored_units("nice_digits", "cpu", root=tmp_path / "results", repo=tree) == []
    # units made from a tree whose table cells were edited since: told where they were made,
    # they move; a change before the units cell between the two trees moves nothing
    made_in = copy_inputs(tmp_path, "nice_digits", folder="made_in")
    run_units(["d"], lambda u: 3, RunStore("nice_digits", "cpu", root=tmp_path / "results",
                                           fingerprint=inputs_fingerprint("nice_digits", made_in)),
              progress=False)
    nb = tree / "notebooks" / "nice_digits.md"
    before_cell, _, after_cell = _cells_around_the_units_cell(nb)
    nb.write_text(nb.read_text().replace(after_cell, "y = 1\n", 1))
    assert narrow_stored_units("nice_digits", "cpu", root=tmp_path / "results", repo=tree) == []
    nb.write_text(nb.read_text().replace(before_cell, before_cell + "z = 1\n", 1))
    assert narrow_stored_units("nice_digits", "cpu", root=tmp_path / "results", repo=tree,
                               made_in=made_in) == []
    nb.write_text(nb.read_text().replace(before_cell + "z = 1\n", before_cell, 1))
    assert narrow_stored_units("nice_digits", "cpu", root=tmp_path / "results", repo=tree,
                               made_in=made_in) == ["d"]
    assert RunStore("nice_digits", "cpu", root=tmp_path / "results",
                    fingerprint=inputs_fingerprint("nice_digits", tree, units=True, profile="cpu")).done("d")


CELL = (":tags: [parameters]\n\nsigma = 0.5  # the noise level\n"
        "model = fit(data, sigma=sigma, steps=200, label='dsm')\n"
        "print(f\"{sigma:.2f}: {model.loss:.3f}\")\n")


@pytest.mark.parametrize("rewritten", [
    # re-wrapped to fit the page, the quotes normalised, the comment moved or dropped
    CELL.replace("sigma=sigma, steps=200,", "\n    sigma=sigma,\n    steps=200,\n   ")
        .replace("'dsm'", '"dsm"').replace("  # the noise level", ""),
    CELL.replace("\nsigma = 0.5  # the noise level\n", "\n# the noise level\nsigma = 0.5\n\n\n"),
    # a string split into adjacent literals (plain and formatted)
    CELL.replace("'dsm'", "('ds'\n 'm')").replace('f\"{sigma:.2f}: {model.loss:.3f}\"',
                                                   'f\"{sigma:.2f}: \"\n      f\"{model.loss:.3f}\"'),
])
def test_the_code_a_cell_runs_does_not_depend_on_its_layout(rewritten):
    assert rewritten != CELL and code_as_run(rewritten) == code_as_run(CELL)


@pytest.mark.parametrize("changed", [
    CELL.replace("0.5", "0.25"),  # a value
    CELL.replace("steps=200", "steps=2000"),
    CELL.replace("sigma=sigma", "sigma=sigma ** 2"),  # sigma vs sigma squared
    CELL.replace("'dsm'", "'ssm'"),  # a string
    CELL.replace(":.3f", ":.4f"),  # what is printed
    CELL.replace("[parameters]", "[parameters, remove-input]"),  # the cell's options
    CELL.replace("fit(data,", "fit(data.T,"),
])
def test_a_change_to_what_a_cell_runs_changes_its_code(changed):
    assert code_as_run(changed) != code_as_run(CELL)


def test_docstrings_are_left_out_but_strings_that_are_values_are_not():
    f = 'def f(x):\n    """Twice x."""\n    return 2 * x\n'
    rewrapped = 'def f(x):\n    """Twice\n    x, re-wrapped."""\n    return 2 * x\n'
    assert code_as_run(rewrapped) == code_as_run(f) != code_as_run(f.replace("2 *", "3 *"))
    assert code_as_run('def f(x):\n    """Only a docstring."""\n') == code_as_run("def f(x):\n    pass\n")
    assert code_as_run('class A:\n    """A."""\n    n = 1\n') == code_as_run("class A:\n    n = 1\n")
    # a string that is a value, or that a cell shows as its last line, is code
    assert code_as_run('x = "a"\n') != code_as_run('x = "b"\n')
    assert code_as_run('f(1)\n"shown"\n') != code_as_run('f(1)\n"other"\n')
    assert code_as_run('def f():\n    g()\n    "late"\n') != code_as_run('def f():\n    g()\n')


def test_the_code_of_a_cell_python_cannot_parse_is_its_text_and_empty_fields_are_left_out():
    magic = "%timeit f(x)\n"
    assert code_as_run(magic) == magic and code_as_run(magic + "# c\n") != code_as_run(magic)
    tree = code_as_run("def f(x):\n    return x\n")
    # ast.dump shows type_params=[] from Python 3.12 on; the digest must not depend on it
    assert "FunctionDef(name='f'" in tree and "=[]" not in tree and "None" not in tree
    assert "lineno" not in tree


def test_units_stay_current_when_their_cells_are_re_wrapped_and_older_digests_move(tmp_path):
    tree = copy_inputs(tmp_path, "nice_digits")
    nb = tree / "notebooks" / "nice_digits.md"
    text = nb.read_text()
    before_cell, units_cell, _ = _cells_around_the_units_cell(nb)
    fp = inputs_fingerprint("nice_digits", tree, units=True, profile="cpu")
    written = inputs_fingerprint("nice_digits", tree, units=True, profile="cpu", code_as_written=True)
    assert written.notebook != fp.notebook and written.parts.keys() == fp.parts.keys()
    # a comment and a blank line in the units cell: same code, same fingerprint
    nb.write_text(text.replace(units_cell, "# rewrapped\n\n" + units_cell, 1))
    assert inputs_fingerprint("nice_digits", tree, units=True, profile="cpu") == fp
    nb.write_text(text.replace(units_cell, units_cell + "x = 2\n", 1))
    assert inputs_fingerprint("nice_digits", tree, units=True, profile="cpu") != fp
    nb.write_text(text)
    # units stored with the digest of the text as written move onto the digest of the code
    root = tmp_path / "results"
    run_units(["a"], lambda u: 1, RunStore("nice_digits", "cpu", root=root, fingerprint=written),
              progress=False)
    assert RunStore("nice_digits", "cpu", root=root, fingerprint=fp).stale_units() == ["a"]
    assert narrow_stored_units("nice_digits", "cpu", root=root, repo=tree) == ["a"]
    assert RunStore("nice_digits", "cpu", root=root, fingerprint=fp).stale_units() == []
    # not when the text they were made from is not the text now
    run_units(["b"], lambda u: 1, RunStore("nice_digits", "cpu", root=root, fingerprint=written),
              progress=False)
    nb.write_text(text.replace(before_cell, before_cell + "# a comment\n", 1))
    assert narrow_stored_units("nice_digits", "cpu", root=root, repo=tree) == []


def test_the_commit_is_dirty_for_changed_code_but_not_for_results_being_written(tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    (repo / "results" / "cpu").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "results" / "cpu" / "unit.json").write_text("{}\n")

    def git(*args):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=n", "commit", "-q", "--allow-empty", "-m", "empty")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=n", "commit", "-q", "-m", "c")
    assert runs.git_state(repo)["dirty"] is False
    (repo / "results" / "cpu" / "unit.json").write_text('{"rewritten": 1}\n')  # a sitting writing
    assert runs.git_state(repo)["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    assert runs.git_state(repo)["dirty"] is True


def test_a_warm_up_store_runs_each_unit_once_untimed_and_keeps_the_second_run(tmp_path):
    """A smoke run on a GPU times two steps per phase; the first calls of its kernels would be
    timed as a step. With ``warm_up`` every pending unit runs once before the run whose payload
    and wall time are kept; without it, once."""
    calls = []

    def fn(unit):
        calls.append(unit_key(unit))
        return {"call": len(calls)}

    s = store(tmp_path, warm_up=True)
    out = run_units(UNITS[:3], fn, s, progress=False)
    assert calls == [k for k in (unit_key(u) for u in UNITS[:3]) for _ in (0, 1)]
    assert [p["call"] for p in out.values()] == [2, 4, 6]  # the second run of each is kept
    calls.clear()
    run_units(UNITS[:4], fn, s, progress=False)  # done units are not warmed up again
    assert calls == [unit_key(UNITS[3])] * 2
    calls.clear()
    run_units(UNITS[4:6], fn, store(tmp_path / "plain"), progress=False)
    assert calls == [unit_key(u) for u in UNITS[4:6]]


def test_a_unit_that_fails_in_its_warm_up_is_named(tmp_path):
    def fn(unit):
        raise RuntimeError("out of memory")

    with pytest.raises(UnitFailed, match=r"unit dataset=redwine__objective=ssm__seed=0 failed in its "
                                         r"warm-up with RuntimeError: out of memory"):
        run_units(UNITS, fn, store(tmp_path, warm_up=True), progress=False)


def test_only_a_smoke_run_on_a_gpu_warms_its_units_up(tmp_path, monkeypatch):
    import torch

    from booktools.experiment import setup

    for smoke_steps, device, expected in ((0, "cpu", False), (2, "cpu", False), (0, "cuda", False),
                                          (2, "cuda", True)):
        exp = setup("dkef_uci", profile="full", device="cpu", seed=0, output_dir=tmp_path / "out",
                    smoke_steps=smoke_steps)
        monkeypatch.setattr(exp, "device", torch.device(device))
        assert exp.run_store(fingerprint=FP).warm_up is expected, (smoke_steps, device)
