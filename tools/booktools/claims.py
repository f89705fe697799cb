r"""The paper's claims as pre-registered tests.

Each claim an experiment addresses is a table in the experiment's record
(``tools/paper_recipes/records/<name>.toml``, see :mod:`booktools.records`), written before the
run: the paper's statement (in our words) and where it is made, the statistic, and the decision
rule with its margin and the reason for it::

    [claims.ssm_vr_beats_ssm]
    paper = "variance reduction improves sliced score matching"
    where = "Sec. 5.1, Figure 1"
    statistic = "paired difference of test SM loss, SSM minus SSM-VR, over seeds"
    rule = "greater"          # "greater" | "less" | "equivalent"
    margin = 0.0              # the threshold (greater/less) or the equivalence margin
    margin_reason = "..."     # required unless the threshold is 0
    alpha = 0.05              # one-sided level (the interval: two-sided 1 - 2 alpha)
    subjects = ["redwine", "whitewine", "parkinsons"]   # optional: a verdict each
    figure = "fig-dkef-uci"   # a label (or a /document path) that shows the evidence
    digits = 2                # decimals of the printed effect
    unit = "nats"             # optional
    samples_over = "seeds"    # what one sample is (default "seeds")

The notebook passes the data, never the rule: :func:`decide` computes the mean :math:`\bar d`
of the ``n`` per-seed samples (paired differences on the same splits) and the interval

.. math:: \bar d \pm t_{1-\alpha,\,n-1}\, s / \sqrt{n}

(or, for one ``estimate`` with standard error ``se``, :math:`\hat d \pm z_{1-\alpha}\,\mathrm{se}`),
and returns

* ``greater``: *reproduced* if the interval lies above the margin, *not reproduced* if it lies
  below, *inconclusive* otherwise (one-sided tests at level :math:`\alpha` both ways);
* ``less``: the mirror image;
* ``equivalent`` (two one-sided tests): *reproduced* if the interval lies inside
  :math:`(-m, m)`, *not reproduced* if it lies wholly outside, *inconclusive* otherwise.

Fewer than two samples decide nothing (*inconclusive*). Beside each verdict the rule's power is
stated as the effect it would detect with probability 0.8 at this ``n`` and spread,
:math:`(t_{1-\alpha,n-1} + t_{0.8,n-1})\, s/\sqrt{n}`. A claim that does not reproduce never
fails a notebook; only the project's own invariants do (``Experiment.check``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

__all__ = [
    "CLAIM_KEYS",
    "RULES",
    "VERDICTS",
    "Claim",
    "Decision",
    "claim_from_record",
    "decide",
]

RULES = ("greater", "less", "equivalent")
VERDICTS = ("reproduced", "not reproduced", "inconclusive")
CLAIM_KEYS = {"paper", "where", "statistic", "rule", "margin", "margin_reason", "alpha", "subjects",
              "figure", "digits", "unit", "rule_change", "samples_over"}


@dataclass(frozen=True)
class Claim:
    """One pre-registered claim (see the module docstring for the fields)."""

    id: str
    paper: str
    where: str
    statistic: str
    rule: str
    margin: float = 0.0
    margin_reason: str = ""
    alpha: float = 0.05
    subjects: tuple[str, ...] = ()
    figure: str = ""
    digits: int = 2
    unit: str = ""
    rule_change: str = ""
    samples_over: str = "seeds"

    def rule_text(self) -> str:
        """The decision rule in words, e.g. ``"> 0 (one-sided, 5 %)"``."""
        level = f"{100 * self.alpha:g} %"
        m = f"{self.margin:g}"
        if self.rule == "equivalent":
            return f"|effect| < {m} (two one-sided tests, {level})"
        sign = ">" if self.rule == "greater" else "<"
        return f"effect {sign} {m} (one-sided, {level})"


def claim_from_record(claim_id: str, raw: dict[str, Any], source: str = "record") -> Claim:
    """Check a claim's table from a record and build the :class:`Claim`; ``ValueError`` names
    the claim and the broken rule."""
    where = f"{source}: claim {claim_id!r}"
    unknown = set(raw) - CLAIM_KEYS
    if unknown:
        raise ValueError(f"{where} has unknown keys {sorted(unknown)} (allowed: {sorted(CLAIM_KEYS)})")
    for key in ("paper", "where", "statistic", "rule"):
        if not str(raw.get(key, "")).strip():
            raise ValueError(f"{where} needs {key!r}")
    rule = raw["rule"]
    if rule not in RULES:
        raise ValueError(f"{where}: rule must be one of {RULES}, got {rule!r}")
    margin = float(raw.get("margin", 0.0))
    if not math.isfinite(margin):
        raise ValueError(f"{where}: margin must be finite")
    if rule == "equivalent" and margin <= 0:
        raise ValueError(f"{where}: an equivalence claim needs a margin > 0")
    if margin != 0 and not str(raw.get("margin_reason", "")).strip():
        raise ValueError(f"{where}: margin {margin:g} needs a margin_reason (chosen before the run)")
    alpha = float(raw.get("alpha", 0.05))
    if not 0 < alpha < 0.5:
        raise ValueError(f"{where}: alpha must be in (0, 0.5), got {alpha}")
    subjects = raw.get("subjects", [])
    if not isinstance(subjects, list) or not all(isinstance(s, str) and s for s in subjects) \
            or len(set(subjects)) != len(subjects):
        raise ValueError(f"{where}: subjects must be a list of distinct names")
    digits = raw.get("digits", 2)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 6:
        raise ValueError(f"{where}: digits must be an integer in 0..6")
    return Claim(id=claim_id, paper=raw["paper"].strip(), where=raw["where"].strip(),
                 statistic=raw["statistic"].strip(), rule=rule, margin=margin,
                 margin_reason=str(raw.get("margin_reason", "")).strip(), alpha=alpha,
                 subjects=tuple(subjects), figure=str(raw.get("figure", "")).strip(), digits=digits,
                 unit=str(raw.get("unit", "")).strip(), rule_change=str(raw.get("rule_change", "")).strip(),
                 samples_over=str(raw.get("samples_over", "seeds")).strip() or "seeds")


@dataclass(frozen=True)
class Decision:
    """The verdict of one claim (for one subject): the effect (mean paired difference or the
    estimate), its ``1 - 2 alpha`` interval, the number of samples (``None`` for an estimate with
    a standard error) and the effect detectable with 80 % power."""

    claim: str
    subject: str | None
    verdict: str
    effect: float
    low: float
    high: float
    n: int | None
    detectable: float
    rule: str
    level: float = 0.9

    def effect_text(self, digits: int = 2, unit: str = "") -> str:
        """``"+0.12 (90% interval -0.05 to +0.29)"`` (the level is ``1 - 2 alpha``)."""
        if not math.isfinite(self.effect):
            return "no estimate"
        u = f" {unit}" if unit else ""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{self.effect:+.{digits}f}{u} (one sample: no interval)"
        return (f"{self.effect:+.{digits}f}{u} ({100 * self.level:g}% interval "
                f"{self.low:+.{digits}f} to {self.high:+.{digits}f})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verdict(rule: str, margin: float, low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if rule == "greater":
        return "reproduced" if low > margin else "not reproduced" if high < margin else "inconclusive"
    if rule == "less":
        return "reproduced" if high < margin else "not reproduced" if low > margin else "inconclusive"
    if -margin < low and high < margin:
        return "reproduced"
    if low > margin or high < -margin:
        return "not reproduced"
    return "inconclusive"


def decide(claim: Claim, *, samples: Sequence[float] | None = None, estimate: float | None = None,
           se: float | None = None, subject: str | None = None) -> Decision:
    """Apply ``claim``'s pre-registered rule to per-seed ``samples`` or to one ``estimate`` with
    its standard error ``se`` (exactly one of the two forms). Non-finite samples are refused:
    a failed measurement must be dropped, and said, before the decision."""
    if (samples is None) == (estimate is None):
        raise ValueError("pass either samples= (one number per seed) or estimate= with se=")
    if claim.subjects and subject not in claim.subjects:
        raise ValueError(f"claim {claim.id!r} is decided per subject {list(claim.subjects)}; "
                         f"got subject={subject!r}")
    if not claim.subjects and subject is not None:
        raise ValueError(f"claim {claim.id!r} has no subjects; got subject={subject!r}")
    a = claim.alpha
    if samples is not None:
        xs = [float(x) for x in samples]
        if not all(math.isfinite(x) for x in xs):
            raise ValueError(f"claim {claim.id!r}: samples must be finite, got {xs}")
        n = len(xs)
        effect = sum(xs) / n if n else math.nan
        if n < 2:
            low = high = detectable = math.nan
        else:
            sd = math.sqrt(sum((x - effect) ** 2 for x in xs) / (n - 1))
            t_level, t_power = float(stats.t.ppf(1 - a, n - 1)), float(stats.t.ppf(0.8, n - 1))
            half = t_level * sd / math.sqrt(n)
            low, high = effect - half, effect + half
            detectable = (t_level + t_power) * sd / math.sqrt(n)
        count: int | None = n
    else:
        if se is None or not math.isfinite(float(se)) or float(se) < 0:
            raise ValueError(f"claim {claim.id!r}: an estimate needs a finite se >= 0, got {se!r}")
        effect, se = float(estimate), float(se)
        if not math.isfinite(effect):
            raise ValueError(f"claim {claim.id!r}: the estimate must be finite, got {effect}")
        z = float(stats.norm.ppf(1 - a))
        low, high = effect - z * se, effect + z * se
        detectable = (z + float(stats.norm.ppf(0.8))) * se
        count = None
    verdict = _verdict(claim.rule, claim.margin, low, high)
    return Decision(claim=claim.id, subject=subject, verdict=verdict, effect=effect, low=low, high=high,
                    n=count, detectable=detectable, rule=claim.rule_text(), level=1 - 2 * a)
