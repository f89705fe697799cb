"""booktools.profiles: the cpu profile is opt-in per record. A record that does not list it
cannot be run with it (so no record claims, by omission, that its cpu profile is the paper's
setting); one that lists it follows the rules of the other profiles. The experiment harness:
setup() accepts cpu only for such a record, pick() refuses it, limit() and time_estimate() make
the smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from booktools import profiles
from booktools.experiment import setup
from booktools.profiles import NotDescribed, declared_profiles, describes, opt_in_values
from booktools.records import (
    PROFILES,
    RecordError,
    differences_markdown,
    load_record,
    record_names,
    settings_markdown,
)

HEAD = 'experiment = "toy"\ntitle = "t"\npaper_section = "s"\n'
STEPS = ('[settings.steps]\nlabel = "steps"\npaper = 500\nsource = "Sec. 1"\nquick = 5\n'
         'quick_reason = "fast"\n')
UNSET = '[settings.every]\nlabel = "every"\npaper_unset = true\nreason = "a figure"\nquick = 1\nfull = 2\n'


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "toy.toml").write_text(text)
    return tmp_path


def test_profiles_in_one_place_and_every_committed_record_describes_quick_and_full():
    assert profiles.RUN_PROFILES == (*PROFILES, "cpu") and PROFILES == ("quick", "full")
    for name in record_names():
        declared = declared_profiles(name)
        assert declared[:2] == PROFILES and set(declared) <= set(profiles.RUN_PROFILES)
        assert describes(name, "quick") and describes(name, "full")
        assert describes(name, "cpu") == ("cpu" in declared)
    # the paper experiments opt in; the theory notebooks have nothing to reduce
    assert describes("dkef_uci", "cpu") and not describes("ssm_variance", "cpu")
    with pytest.raises(ValueError, match="profile must be one of"):
        describes("toy", "medium")


def test_a_record_without_cpu_refuses_the_cpu_profile(tmp_path):
    d = write(tmp_path, HEAD + STEPS)
    assert declared_profiles("toy", d) == ("quick", "full") and not describes("toy", "cpu", d)
    with pytest.raises(NotDescribed, match=r"does not describe the 'cpu' profile yet: add profiles = "
                                           r"\['quick', 'full', 'cpu'\]"):
        opt_in_values("toy", "cpu", d)
    with pytest.raises(NotDescribed, match="has no record"):
        opt_in_values("other", "cpu", d)


def test_an_opted_in_record_follows_the_rules_of_the_other_profiles(tmp_path):
    good = (HEAD + 'profiles = ["quick", "full", "cpu"]\n' + STEPS
            + 'cpu = 60\ncpu_reason = "2 h on 2 cores"\n' + UNSET + 'cpu = 3\n'
            + '[settings.lr]\nlabel = "lr"\npaper = 1e-4\nsource = "config"\n')
    d = write(tmp_path, good)
    assert describes("toy", "cpu", d)
    vals = opt_in_values("toy", "cpu", d)
    assert (vals["steps"].value, vals["steps"].differs, vals["steps"].reason) == (60, True, "2 h on 2 cores")
    assert (vals["lr"].value, vals["lr"].differs) == (1e-4, False)  # omitted: the paper's value
    assert (vals["every"].value, vals["every"].reason) == (3, "a figure")
    for text, message in [
        (good.replace('cpu_reason = "2 h on 2 cores"\n', ""), "profile 'cpu' uses 60 where the paper uses "
                                                              "500, and cpu_reason is missing"),
        (good.replace("cpu = 60", "cpu = 500"), "cpu_reason given but cpu equals the paper's value"),
        (good.replace("cpu = 3\n", ""), "is paper_unset and needs a value for profile 'cpu'"),
        (good.replace('"quick", "full", "cpu"', '"quick", "cpu"'), r"missing \['full'\]"),
        (good.replace('"quick", "full", "cpu"', '"quick", "full", "gpu"'), r"unknown \['gpu'\]"),
    ]:
        with pytest.raises(RecordError, match=message):
            opt_in_values("toy", "cpu", write(tmp_path, text))


def test_the_harness_accepts_cpu_only_where_the_record_describes_it(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="profile 'cpu': experiment 'toy' has no record"):
        setup("toy", profile="cpu", output_dir=tmp_path)
    d = write(tmp_path, HEAD + 'profiles = ["quick", "full", "cpu"]\n' + STEPS)
    monkeypatch.setattr(profiles, "RECORDS_DIR", d)
    monkeypatch.setattr(profiles.opt_in_values, "__defaults__", ("cpu", d))
    exp = setup("toy", profile="cpu", device="cpu", output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="pick\\(\\) knows the quick and full profiles only"):
        exp.pick(1, 2)
    # the records module takes the declared profile in: the notebook reads its cpu values
    record = load_record("toy", d)
    assert record.profiles == ("quick", "full", "cpu")
    cfg = record.settings_for("cpu")
    assert cfg["steps"] == 500 and record.settings_for("quick")["steps"] == 5
    assert "| steps | 500 (Sec. 1) | 5 |" in differences_markdown(record, "quick")
    assert "(none) | | | the cpu profile is the paper's setting" in differences_markdown(record, "cpu")
    assert "| setting | paper | source | quick | full | cpu |" in settings_markdown(record)


def test_a_record_without_cpu_refuses_cpu_settings_and_stray_cpu_values(tmp_path):
    d = write(tmp_path, HEAD + STEPS)
    with pytest.raises(ValueError, match="has not opted in to 'cpu'"):
        load_record("toy", d).settings_for("cpu")
    with pytest.raises(ValueError, match="has not opted in to 'cpu'"):
        differences_markdown(load_record("toy", d), "cpu")
    d = write(tmp_path, HEAD + STEPS + "cpu = 60\ncpu_reason = \"x\"\n")
    with pytest.raises(RecordError, match="does not list that profile in its top-level profiles"):
        load_record("toy", d)
    d = write(tmp_path, HEAD + 'profiles = ["quick", "full", "cpu", "cpu"]\n' + STEPS)
    with pytest.raises(RecordError, match="listed twice"):
        load_record("toy", d)


def test_limit_and_time_estimate_make_the_smoke_run(tmp_path, capsys):
    normal = setup("t", profile="full", device="cpu", output_dir=tmp_path)
    assert normal.limit(1000) == 1000 and not normal.smoke
    smoke = setup("t", profile="full", device="cpu", output_dir=tmp_path, smoke_steps=3)
    assert smoke.smoke and smoke.limit(1000) == 3 and smoke.limit(2) == 2 and smoke.limit(0) == 0
    total = smoke.time_estimate("train ssm", seconds_per_step=0.25, steps=40_000)
    smoke.time_estimate("log Z", seconds_per_step=2.0, steps=30)
    assert total == 10_000.0
    out = capsys.readouterr().out
    assert "[estimate] train ssm: 250 ms/step x 40000 steps = 2.78 h on cpu (full profile)" in out
    data = json.loads((tmp_path / "results" / "t.json").read_text())
    assert data["time_estimate_total_s"] == 10_060.0 and data["meta"]["smoke_steps"] == 3
    assert data["time_estimates"]["log Z"] == {"seconds_per_step": 2.0, "steps": 30, "seconds": 60.0,
                                               "device": "cpu"}
    for bad, message in [(dict(smoke_steps=-1), "smoke_steps must be a non-negative integer"),
                         (dict(smoke_steps=True), "smoke_steps must be")]:
        with pytest.raises(ValueError, match=message):
            setup("t", output_dir=tmp_path, **bad)
    for args, message in [((1.5,), "n must be a non-negative integer"), ((-1,), "n must be")]:
        with pytest.raises(ValueError, match=message):
            smoke.limit(*args)
    with pytest.raises(ValueError, match="seconds_per_step must be a finite number"):
        smoke.time_estimate("x", float("nan"), 3)
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        smoke.time_estimate("x", 1.0, 2.5)


def test_run_store_of_a_quick_or_smoke_run_stays_out_of_the_committed_results(tmp_path, monkeypatch):
    from booktools import runs

    monkeypatch.setenv(runs.RESULTS_ENV, str(tmp_path / "committed"))
    fp = runs.Fingerprint("l", "r", "n", "s")
    quick = setup("toy", output_dir=tmp_path / "out")
    monkeypatch.setattr(type(quick), "settings", property(lambda self: {"steps": 5}))
    assert quick.run_store(fingerprint=fp).folder == tmp_path / "out" / "runs" / "quick" / "toy"
    smoke = setup("toy", profile="full", output_dir=tmp_path / "out", smoke_steps=2)
    assert smoke.run_store(fingerprint=fp).folder == tmp_path / "out" / "runs" / "full" / "toy"
    full = setup("toy", profile="full", output_dir=tmp_path / "out")
    assert full.run_store(fingerprint=fp).folder == tmp_path / "committed" / "full" / "toy"
