"""The paper's settings as data (booktools.records) and the pre-registered claims
(booktools.claims): the rules of a record, the decision rules against hand-computed oracles,
the notebook-side API, the committed records and the generated report card."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from booktools import report_card
from booktools.claims import Claim, claim_from_record, decide
from booktools.experiment import RecordIncomplete, setup
from booktools.records import (
    RECORDS_DIR,
    RecordError,
    differences_markdown,
    load_record,
    record_names,
)

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
experiment = "toy"
title = "A toy experiment"
paper_section = "Sec. 9"

[settings.steps]
label = "training steps"
paper = 500
source = "Sec. 9, Table 9"
quick = 50
quick_reason = "two CPU cores"

[settings.lr]
label = "learning rate per objective"
paper = { ssm = 1e-4, dsm = 1e-3 }
source = "official config, line 3"

[settings.track_every]
label = "steps between curve points"
paper_unset = true
reason = "only draws a figure"
quick = 5
full = 10

[claims.a_beats_b]
paper = "A is better than B"
where = "Table 9"
statistic = "B minus A over seeds"
rule = "greater"
subjects = ["one", "two"]

[claims.a_like_c]
paper = "A is as good as C"
where = "Figure 9"
statistic = "A minus C over seeds"
rule = "equivalent"
margin = 0.5
margin_reason = "a tenth of the spread between objectives"
"""


def write(tmp_path: Path, text: str, name: str = "toy") -> Path:
    (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


def test_a_record_gives_each_profile_its_value_and_the_paper_value_by_default(tmp_path):
    rec = load_record("toy", write(tmp_path, GOOD))
    quick, full = rec.settings_for("quick"), rec.settings_for("full")
    assert quick["steps"] == 50 and full["steps"] == 500
    assert full.lr == {"ssm": 1e-4, "dsm": 1e-3}
    assert quick["track_every"] == 5 and full["track_every"] == 10
    assert rec.settings["steps"].differs("quick") and not rec.settings["steps"].differs("full")


@pytest.mark.parametrize("edit, message", [
    (("quick_reason = \"two CPU cores\"\n", ""), "quick_reason is missing"),
    (("source = \"Sec. 9, Table 9\"\n", ""), "needs a source"),
    (("reason = \"only draws a figure\"\n", ""), "needs a reason"),
    (("full = 10\n", ""), "needs a value for profile 'full'"),
    (("label = \"training steps\"\n", "label = \"training steps\"\nfull_reason = \"x\"\n"),
     "full_reason given but full equals"),
    (("label = \"training steps\"\n", "label = \"training steps\"\ncolour = 1\n"), "unknown keys"),
    (("paper = 500\n", ""), "needs the paper's value"),
])
def test_a_record_that_breaks_a_rule_is_refused_naming_the_setting(tmp_path, edit, message):
    old, new = edit
    assert old in GOOD
    with pytest.raises(RecordError, match=re.escape(message)):
        load_record("toy", write(tmp_path, GOOD.replace(old, new, 1)))


def test_a_missing_record_and_a_misnamed_one_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no record for experiment 'nope'"):
        load_record("nope", tmp_path)
    with pytest.raises(RecordError, match="experiment = 'toy', expected 'other'"):
        load_record("other", write(tmp_path, GOOD, "other"))


def test_reading_an_unrecorded_setting_fails_and_unread_ones_are_listed(tmp_path):
    cfg = load_record("toy", write(tmp_path, GOOD)).settings_for("quick")
    with pytest.raises(KeyError, match="'batch' is not in the record of 'toy'"):
        cfg["batch"]
    with pytest.raises(AttributeError, match="'batch' is not in the record"):
        _ = cfg.batch
    assert cfg.steps == 50
    assert cfg.unread() == ["lr", "track_every"]


def test_the_differences_table_lists_only_what_differs_with_the_reason(tmp_path):
    rec = load_record("toy", write(tmp_path, GOOD))
    quick = differences_markdown(rec, "quick")
    assert "| training steps | 500 (Sec. 9, Table 9) | 50 | two CPU cores |" in quick
    assert "not set by the paper" in quick and "learning rate per objective" not in quick.split("\n\n")[0]
    assert "As in the paper (1 settings): learning rate per objective." in quick
    full = differences_markdown(rec, "full")
    assert "training steps" not in full.split("\n\n")[0]


# --- the decision rules ------------------------------------------------------------------------

def claim(rule: str, margin: float = 0.0, alpha: float = 0.05) -> Claim:
    raw = {"paper": "p", "where": "w", "statistic": "s", "rule": rule, "margin": margin, "alpha": alpha}
    if margin:
        raw["margin_reason"] = "r"
    return claim_from_record("c", raw)


def test_greater_uses_the_one_sided_t_interval_with_n_minus_one():
    # samples 1, 2, 3: mean 2, sd 1, t(0.95, 2) = 2.919986; half width 1.685854
    d = decide(claim("greater"), samples=[1.0, 2.0, 3.0])
    assert d.effect == 2.0 and d.n == 3
    assert d.low == pytest.approx(2 - 1.6858541, abs=1e-6)
    assert d.high == pytest.approx(2 + 1.6858541, abs=1e-6)
    assert d.verdict == "reproduced"  # a two-sided 95 % interval (t = 4.303) would straddle 0
    # power: (t(0.95, 2) + t(0.8, 2)) * 1 / sqrt(3), t(0.8, 2) = 1.060660
    assert d.detectable == pytest.approx((2.919986 + 1.060660) / math.sqrt(3), abs=1e-5)


@pytest.mark.parametrize("rule, samples, verdict", [
    ("greater", [-1.0, -2.0, -3.0], "not reproduced"),
    ("greater", [1.0, -1.0, 2.0], "inconclusive"),
    ("less", [-1.0, -2.0, -3.0], "reproduced"),
    ("less", [1.0, 2.0, 3.0], "not reproduced"),
    ("greater", [5.0], "inconclusive"),
])
def test_each_rule_gives_each_verdict(rule, samples, verdict):
    assert decide(claim(rule), samples=samples).verdict == verdict


def test_equivalence_is_two_one_sided_tests():
    eq = claim("equivalent", margin=0.5)
    assert decide(eq, samples=[0.1, 0.0, -0.1, 0.05]).verdict == "reproduced"
    assert decide(eq, samples=[2.0, 2.1, 1.9]).verdict == "not reproduced"
    assert decide(eq, samples=[0.0, 1.0, -0.5]).verdict == "inconclusive"
    # the margin is a threshold on the interval, not on the mean: mean 0.3 < 0.5, but the
    # interval reaches past 0.5
    assert decide(eq, samples=[0.1, 0.3, 0.5]).verdict == "inconclusive"


def test_a_threshold_other_than_zero_is_used():
    c = claim("less", margin=3.0)
    assert decide(c, samples=[2.0, 2.1, 1.9]).verdict == "reproduced"
    assert decide(c, samples=[3.5, 3.6, 3.4]).verdict == "not reproduced"


def test_an_estimate_with_a_standard_error_uses_the_normal_quantile():
    d = decide(claim("greater"), estimate=1.0, se=0.5)
    assert d.low == pytest.approx(1 - 1.6448536 * 0.5, abs=1e-6)
    assert d.verdict == "reproduced" and d.n is None
    assert decide(claim("greater"), estimate=0.5, se=0.5).verdict == "inconclusive"


@pytest.mark.parametrize("raw, message", [
    ({"rule": "bigger"}, "rule must be one of"),
    ({"rule": "equivalent"}, "needs a margin > 0"),
    ({"rule": "greater", "margin": 1.0}, "needs a margin_reason"),
    ({"rule": "greater", "alpha": 0.6}, "alpha must be in"),
    ({"rule": "greater", "seeds": 3}, "unknown keys"),
])
def test_a_broken_claim_is_refused_naming_it(raw, message):
    base = {"paper": "p", "where": "w", "statistic": "s"}
    with pytest.raises(ValueError, match=re.escape(message)):
        claim_from_record("c", {**base, **raw})


def test_decide_refuses_non_finite_samples_and_both_forms():
    with pytest.raises(ValueError, match="must be finite"):
        decide(claim("greater"), samples=[1.0, float("nan")])
    with pytest.raises(ValueError, match="either samples="):
        decide(claim("greater"), samples=[1.0], estimate=1.0, se=0.1)


# --- the notebook side ---------------------------------------------------------------------------

def toy_experiment(tmp_path: Path):
    exp = setup("toy", output_dir=tmp_path / "out")
    exp._record = load_record("toy", write(tmp_path, GOOD))
    return exp


def test_finish_names_unread_settings_and_undecided_claims(tmp_path, capsys):
    exp = toy_experiment(tmp_path)
    cfg = exp.settings
    _ = cfg["steps"], cfg["lr"]
    exp.decide("a_beats_b", samples=[1.0, 2.0, 3.0], subject="one")
    with pytest.raises(RecordIncomplete) as err:
        exp.finish()
    text = str(err.value)
    assert "['track_every']" in text and "'a_beats_b' (two) not decided" in text
    assert "'a_like_c' not decided" in text
    _ = cfg["track_every"]
    exp.decide("a_beats_b", samples=[-1.0, -2.0, -3.0], subject="two")
    exp.decide("a_like_c", samples=[0.0, 1.0, -0.5])
    exp.finish()
    out = capsys.readouterr().out
    assert "[claim] a_beats_b_one: REPRODUCED" in out and "[claim] a_beats_b_two: NOT REPRODUCED" in out
    assert "3 verdicts (1 reproduced, 1 not reproduced, 1 inconclusive)" in out
    assert exp.results["claims"]["a_like_c"]["verdict"] == "inconclusive"


def test_a_claim_is_decided_once_and_must_be_registered(tmp_path):
    exp = toy_experiment(tmp_path)
    with pytest.raises(KeyError, match="'nope' is not registered"):
        exp.decide("nope", samples=[1.0, 2.0])
    exp.decide("a_like_c", samples=[0.1, 0.2])
    with pytest.raises(ValueError, match="already decided"):
        exp.decide("a_like_c", samples=[0.1, 0.2])
    with pytest.raises(ValueError, match="decided per subject"):
        exp.decide("a_beats_b", samples=[0.1, 0.2])


def test_a_note_on_the_samples_follows_their_number_on_the_verdict_line(tmp_path, capsys):
    """A clause about the samples (seeds left out, and why) belongs to the claim it qualifies:
    on its verdict line after n, and in its recorded effect, not on a line of its own that
    reads as part of the claim printed before it."""
    exp = toy_experiment(tmp_path)
    exp.decide("a_beats_b", samples=[], subject="one", note="3 of 3 dropped: a log Z failed")
    exp.decide("a_beats_b", samples=[1.0, 2.0, 3.0], subject="two", note="  ")
    lines = capsys.readouterr().out.splitlines()
    one = " ".join(x.strip() for x in lines[:next(i for i, x in enumerate(lines) if "a_beats_b_two" in x)])
    assert "n = 0 seeds (3 of 3 dropped: a log Z failed)" in one
    claims = exp.results["claims"]
    assert claims["a_beats_b_one"]["effect_line"].endswith("n = 0 seeds (3 of 3 dropped: a log Z failed)")
    assert claims["a_beats_b_two"]["effect_line"].endswith("n = 3 seeds")  # a blank note adds nothing
    with pytest.raises(TypeError, match="note must be a string"):
        exp.decide("a_like_c", samples=[0.1, 0.2], note=3)


def test_an_undecidable_claim_is_recorded_without_breaking_the_results_file(tmp_path):
    """No samples (every measurement failed, e.g. a log Z below its ESS threshold) or one sample:
    the verdict is inconclusive with a NaN effect or interval, which the JSON results file must
    hold as a string (JSON has no NaN), not raise."""
    import json

    exp = toy_experiment(tmp_path)
    d0 = exp.decide("a_beats_b", samples=[], subject="one")
    d1 = exp.decide("a_beats_b", samples=[2.0], subject="two")
    assert d0.verdict == d1.verdict == "inconclusive" and math.isnan(d0.effect) and math.isnan(d1.low)
    saved = json.loads((tmp_path / "out" / "results" / "toy.json").read_text())
    assert saved["claims"]["a_beats_b_one"]["effect"] == "nan"
    two = saved["claims"]["a_beats_b_two"]
    assert two["low"] == "nan" and two["effect"] == 2.0


# --- the committed records and the report card ---------------------------------------------------

@pytest.mark.parametrize("name", record_names())
def test_every_committed_record_obeys_the_rules_and_names_a_notebook(name):
    rec = load_record(name)  # raises on a missing source or reason
    assert (ROOT / "notebooks" / f"{name}.md").is_file(), f"{name}.toml has no notebook"
    for claim_id, raw in rec.claims.items():
        claim_from_record(claim_id, raw, rec.path.name)


@pytest.mark.parametrize("name", record_names())
def test_a_notebook_reads_only_recorded_settings_and_finishes(name):
    """The settings a notebook names (``cfg["key"]`` or ``cfg.key``) are all in its record, and
    its last code calls ``exp.finish()`` (which checks the rest at run time)."""
    source = (ROOT / "notebooks" / f"{name}.md").read_text()
    used = set(re.findall(r"\bcfg\[\s*[\"'](\w+)[\"']\s*\]", source))
    used |= {k for k in re.findall(r"\bcfg\.(\w+)\b", source) if k not in {"unread", "record", "profile"}}
    missing = used - set(load_record(name).settings)
    assert not missing, f"notebooks/{name}.md reads settings missing from {name}.toml: {sorted(missing)}"
    assert "exp.finish()" in source, f"notebooks/{name}.md never calls exp.finish()"


def test_committed_records_live_in_paper_recipes():
    assert RECORDS_DIR == ROOT / "tools" / "paper_recipes" / "records"


def test_the_report_card_page_is_current():
    assert report_card.PAGE.read_text() == report_card.render(), \
        "book/report_card.md is out of date: run python -m booktools.report_card"


def test_the_html_table_escapes_and_matches_the_markdown_rows(tmp_path):
    from booktools.records import differences_html
    text = GOOD.replace('quick_reason = "two CPU cores"', 'quick_reason = "two CPU cores <and> a | pipe"')
    rec = load_record("toy", write(tmp_path, text))
    html = differences_html(rec, "quick")
    assert "<td>two CPU cores &lt;and&gt; a | pipe</td>" in html
    assert html.count("<tr>") == 1 + 2  # the header and the two differing settings
    assert "As in the paper (1 settings): learning rate per objective." in html


def test_the_report_card_never_ends_a_sentence_twice():
    # a record's margin reason or rule change that ends with its own full stop gets no second one
    page = report_card.render()
    assert not [line for line in page.splitlines() if ".." in line.replace("...", "")]
