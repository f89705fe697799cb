"""booktools.mathtext: the records' ASCII mathematics set in symbols on the pages, and nothing
else touched (identifiers, file names, line ranges, hyphenated words, decimal exponents)."""

from __future__ import annotations

import pytest

from booktools.mathtext import math_text
from booktools.records import differences_html, differences_markdown, load_record


@pytest.mark.parametrize("ascii_text, page", [
    # the records' own formulas
    ("(sigma^4 G + lambda I) alpha = -sigma^4 b", "(σ⁴ G + λ I) α = −σ⁴ b"),
    ("1/2 ||sigma^2 s(x~) + sigma z||^2 = sigma^4 x the standard DSM loss",
     "1/2 ‖σ² s(x̃) + σ z‖² = σ⁴ × the standard DSM loss"),
    ("base density q0 = N(0, s^2 I): s", "base density q0 = N(0, s² I): s"),
    ("E[w^2] = 1.51^D (3e11 at D = 64)", "E[w²] = 1.51ᴰ (3e11 at D = 64)"),
    ("about 2^d times too wide", "about 2ᵈ times too wide"),
    ("its SE (about 1/sqrt(ESS))", "its SE (about 1/√ESS)"),
    ("randn / sqrt(2 fan_out)", "randn / √(2 fan_out)"),
    ("a = sqrt 5; bias U(-1/sqrt fan_in, 1/sqrt fan_in)", "a = √5; bias U(-1/√fan_in, 1/√fan_in)"),
    ("(se^2 = 1/ESS - 1/N)", "(se² = 1/ESS − 1/N)"),
    ("the true score -x (test)", "the true score −x (test)"),
    ("-x", "−x"),
    ("below -10^6 in the paper.", "below -10⁶ in the paper."),
    ("log sigma = -0.3", "log σ = -0.3"),
    ("among the sigmas of the grid", "among the σs of the grid"),
    ("8 x 8 digits; 3 seeds x 9 models; (n_epochs: 5) x runner line 155",
     "8 × 8 digits; 3 seeds × 9 models; (n_epochs: 5) × runner line 155"),
    ("d >= 128, |effect| <= 0.3, +-0.1", "d ≥ 128, |effect| ≤ 0.3, ±0.1"),
    ("10^-1", "10⁻¹"),
])
def test_ascii_mathematics_is_set_in_symbols(ascii_text, page):
    assert math_text(ascii_text) == page


@pytest.mark.parametrize("text", [
    "dsm_sigma, lambda_lr, select_sigma, cfg.sigma, alphabet, sigmoid",  # identifiers, words
    "runner lines 206-248; one-sided; SSM(-VR); k/(L-1); 2026-12-07",  # ranges and hyphens
    "2^0.3 ≈ 1.23 per doubling",  # no superscript point: the exponent stays
    # a number keeps the ASCII minus of the numbers printed beside it (effects, tables)
    "Table 1 (-8054 against -2428); (SSM-VR -0.11); = -4.6e5",
    "x^Dim",  # a longer name after the caret
    "the score s(x) + x of x and e ~ U(0, 1)",  # a variable x, a spaced tilde
    "no mathematics here",
])
def test_what_is_not_ascii_mathematics_is_left_alone(text):
    assert math_text(text) == text


def test_only_strings_are_taken():
    with pytest.raises(TypeError, match="text must be a str"):
        math_text(3)


def test_the_differences_table_sets_the_symbols_and_the_record_keeps_its_text(tmp_path):
    (tmp_path / "toy.toml").write_text("""\
experiment = "toy"
title = "A toy experiment"
paper_section = "Sec. 9"

[settings.sigma]
label = "DSM noise level sigma"
paper = "sigma^2 = 0.1"
source = "Sec. 9"
quick = "sigma^2 = 0.3"
quick_reason = "E[w^2] grows like 1.51^D"

[settings.alpha_rows]
label = "rows for alpha"
paper = 1000
source = "Sec. 9"
""")
    record = load_record("toy", tmp_path)
    html = differences_html(record, "quick")
    assert "<td>DSM noise level σ</td><td>σ² = 0.1 (Sec. 9)</td><td>σ² = 0.3</td>" in html
    assert "<td>E[w²] grows like 1.51ᴰ</td>" in html
    assert "As in the paper (1 settings): rows for α." in html
    assert "| DSM noise level σ | σ² = 0.1 (Sec. 9) | σ² = 0.3 |" in differences_markdown(record, "quick")
    # the record itself (what the fingerprints of a run are taken of) is unchanged
    assert record.settings["sigma"].label == "DSM noise level sigma"
    assert record.settings["sigma"].values["quick"] == "sigma^2 = 0.3"
