"""Plain-text mathematics of the experiment records, set for a reader.

The records (``tools/paper_recipes/records/*.toml``) write their formulas in ASCII, as one types
them: ``(sigma^4 G + lambda I) alpha = -sigma^4 b``, ``1/sqrt(ESS)``, ``N(0, s^2 I)``. The
pages that show them (the differences tables, the report card) set the same text with the
symbols a reader expects, ``(σ⁴ G + λ I) α = −σ⁴ b``, ``1/√ESS``, ``N(0, s² I)``, through
:func:`math_text`. Only the display changes: the records, and so every fingerprint taken of
them, stay as written.

What is replaced, and only where it stands as a word of its own (``dsm_sigma``, ``lambda_lr``,
``lines 206-248`` and ``one-sided`` are left alone):

- the Greek names ``alpha``, ``beta``, ``gamma``, ``lambda``, ``sigma`` (``sigmas``: ``σs``);
- an integer exponent ``^2``, ``^-1``, ``^D``, ``^d`` by superscripts (``2^0.3`` stays);
- ``sqrt`` by ``√`` (``sqrt(ESS)``: ``√ESS``), ``||`` by ``‖``, ``>=``, ``<=``, ``+-`` by ``≥``, ``≤``, ``±``;
- a minus sign: ``-`` before a one-letter symbol (``-x``) and `` - `` between spaces (a
  subtraction), by ``−``; not before a number, since the numbers the pages print carry the
  ASCII ``-`` and a number quoted from the paper keeps the same sign as ours beside it;
- a lone `` x `` after a number, a superscript or ``)``, or before a number, by ``×``
  (``8 x 8``, ``3 seeds x 9 models``); ``x~`` (x tilde) by ``x̃``.
"""

from __future__ import annotations

import re

__all__ = ["math_text"]

_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "lambda": "λ", "sigma": "σ", "sigmas": "σs"}
_SUPERSCRIPT = str.maketrans("0123456789-Dd", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻ᴰᵈ")

# a word of its own: not inside an identifier (letters, digits, underscores) or a file name
_GREEK_WORD = re.compile(r"(?<![\w.])(" + "|".join(sorted(_GREEK, key=len, reverse=True)) + r")(?![\w])")
# ^2, ^-1, ^10, ^D, ^d; not ^0.3 (no superscript point) and not ^Dx (a longer name)
_EXPONENT = re.compile(r"\^(-?\d+|[Dd])(?!\w|\.\d)")
# sqrt 5, sqrt(ESS): √5, √ESS (one word needs no brackets); sqrt(2 pi): √(2 pi)
_SQRT_OF_WORD = re.compile(r"(?<![\w.])sqrt\((\w+)\)")
_SQRT = re.compile(r"(?<![\w.])sqrt(?:\s+(?=\w)|(?=\())")
# a unary minus before a one-letter symbol (-x, -σ⁴ b), after a space, "(", "[", "=" or ",";
# not a hyphen inside a word or a range (lines 206-248, one-sided, SSM(-VR)), and not before a
# number: the numbers the pages print (effects, tables) carry the ASCII "-", and a quoted -8054
# beside a printed -606.93 keeps the same sign
_UNARY_MINUS = re.compile(r"(?:(?<=[\s(\[=,])|^)-(?=[A-Za-zα-ω](?![A-Za-z]))")
_BINARY_MINUS = re.compile(r"(?<= )-(?= )")
_TILDE = re.compile(r"(?<=\b[a-z])~")
# "8 x 8", "3 seeds x 9 models", "σ⁴ x the loss": a lone x after a number, a superscript or ")",
# or before a number (a variable x stands elsewhere: "-x", "s(x)")
_TIMES = re.compile(r"(?<=[\d⁰¹²³⁴⁵⁶⁷⁸⁹)]) x (?=\S)|(?<=\S) x (?=\d)")


def math_text(text: str) -> str:
    """``text`` with its ASCII mathematics set in Unicode symbols (see the module's docstring);
    text without any is returned unchanged."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out = _GREEK_WORD.sub(lambda m: _GREEK[m.group(1)], text)
    out = _EXPONENT.sub(lambda m: m.group(1).translate(_SUPERSCRIPT), out)
    out = _SQRT.sub("√", _SQRT_OF_WORD.sub(r"√\1", out))
    out = out.replace("||", "‖").replace(">=", "≥").replace("<=", "≤").replace("+-", "±")
    out = _UNARY_MINUS.sub("−", out)
    out = _BINARY_MINUS.sub("−", out)
    out = _TIMES.sub(" × ", out)
    return _TILDE.sub("\u0303", out)
