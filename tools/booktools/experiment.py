"""Shared set-up for the experiment notebooks: profile, device, seed, output folder, and the
saving of figures (PNG) and numbers (JSON), plus checked claims.

A notebook's parameters cell (papermill) holds ``profile``, ``device``, ``seed`` and
``output_dir``; its next cell calls :func:`setup` and uses what it returns everywhere::

    exp = setup("score_fields", profile=profile, device=device, seed=seed, output_dir=output_dir)
    exp.save_figure(fig, "mixture_score")       # output_dir/figures/score_fields/mixture_score.png
    exp.record(fisher=0.123)                    # output_dir/results/score_fields.json
    exp.check(slope > 0.7, f"exact-SM slope {slope:.2f} should exceed 0.7")

The paper experiments also read their settings from the experiment's record
(:mod:`booktools.records`) and decide the paper's claims by pre-registered rules
(:mod:`booktools.claims`)::

    cfg = exp.settings                      # cfg["steps"]: this profile's value
    exp.show_differences()                  # the "Differences from the paper" table (glued)
    exp.decide("ssm_vr_beats_ssm", samples=diffs, subject="redwine")
    exp.finish()                            # every setting read, every claim decided

``check`` is for the project's own invariants; a paper claim that does not reproduce is a
verdict, never a failure.
"""

from __future__ import annotations

import json
import math
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from booktools.claims import Claim, Decision, claim_from_record, decide
from booktools.records import (
    PROFILES,
    Record,
    Settings,
    differences_html,
    differences_markdown,
    load_record,
)
from ssm_lib.devices import make_generator, resolve_device


class ClaimFailed(AssertionError):
    """One of the project's own invariants (``Experiment.check``) did not hold."""


class RecordIncomplete(AssertionError):
    """A run that left recorded settings unread or registered claims undecided."""


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: tensors and numpy values become numbers or lists, and a
    non-finite number becomes the string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has none)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    elif callable(getattr(value, "tolist", None)):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass
class Experiment:
    """Handle returned by :func:`setup`."""

    name: str
    profile: str
    device: torch.device
    seed: int
    output_dir: Path
    results: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    _record: Record | None = field(default=None, repr=False)
    _settings: Settings | None = field(default=None, repr=False)
    _decisions: dict[tuple[str, str | None], Decision] = field(default_factory=dict, repr=False)

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        """The quick-profile or the full-profile value of a setting."""
        return quick if self.quick else full

    def generator(self, offset: int = 0, device: torch.device | str | None = None) -> torch.Generator:
        """A fresh generator seeded with ``seed + offset`` (on the experiment's device)."""
        return make_generator(self.seed + offset, device or self.device)

    @property
    def figure_dir(self) -> Path:
        path = self.output_dir / "figures" / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_figure(self, fig, key: str, *, dpi: int = 150) -> Path:
        """Write ``fig`` to ``figures/<name>/<key>.png``; chapters show it with the MyST
        ``{figure}`` directive (``../experiments/figures/<name>/<key>.png``)."""
        path = self.figure_dir / f"{key}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return path

    def glue_value(self, key: str, value: Any) -> None:
        """Glue a number or string for inline use in the chapters (``{glue:text}``)."""
        try:
            from myst_nb import glue as nb_glue
        except ImportError:  # pragma: no cover
            return
        nb_glue(key, value, display=False)

    def record(self, **values: Any) -> None:
        """Add numbers to ``results/<name>.json`` (rewritten on every call)."""
        self.results.update(_jsonable(values))
        path = self.output_dir / "results"
        path.mkdir(parents=True, exist_ok=True)
        meta = {"notebook": self.name, "profile": self.profile, "device": str(self.device),
                "seed": self.seed, "torch": torch.__version__}
        text = json.dumps({"meta": meta, **self.results}, indent=2, sort_keys=True, allow_nan=False)
        (path / f"{self.name}.json").write_text(text)

    def check(self, condition: bool, message: str) -> None:
        """Assert a claim of the experiment; the message says what was expected and measured."""
        status = "PASS" if condition else "FAIL"
        # wrapped to the book's ~85-character output width; the results file keeps one line
        print(textwrap.fill(f"[{status}] {message}", width=85, subsequent_indent=" " * 7,
                            break_long_words=False, break_on_hyphens=False))
        self.results.setdefault("checks", {})[message] = bool(condition)
        self.record()  # keep the JSON file in step with the checks made so far
        if not condition:
            raise ClaimFailed(message)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    # --- the record: settings and pre-registered claims -------------------------------------
    @property
    def paper_record(self) -> Record:
        """The experiment's record, ``tools/paper_recipes/records/<name>.toml``."""
        if self._record is None:
            self._record = load_record(self.name)
        return self._record

    @property
    def settings(self) -> Settings:
        """This profile's settings from the record; reading a key that is not recorded raises
        ``KeyError``."""
        if self._settings is None:
            self._settings = self.paper_record.settings_for(self.profile)
        return self._settings

    def show_differences(self) -> str:
        """Display the "Differences from the paper" table of this profile and glue it (as HTML)
        under ``differences``, for the chapters' ``{glue}`` directive with ``:doc:``; returns
        the Markdown."""
        text = differences_markdown(self.paper_record, self.profile)
        try:
            from IPython.display import HTML, Markdown, display
        except ImportError:  # pragma: no cover
            print(text)
            return text
        display(Markdown(text))
        try:
            from myst_nb import glue as nb_glue
        except ImportError:  # pragma: no cover
            return text
        nb_glue("differences", HTML(differences_html(self.paper_record, self.profile)), display=False)
        return text

    def claim(self, claim_id: str) -> Claim:
        """The registered claim ``claim_id`` of this experiment's record."""
        raw = self.paper_record.claims.get(claim_id)
        if raw is None:
            raise KeyError(f"claim {claim_id!r} is not registered in {self.paper_record.path}; "
                           f"registered: {sorted(self.paper_record.claims)}")
        return claim_from_record(claim_id, raw, self.paper_record.path.name)

    def decide(self, claim_id: str, *, samples: Any = None, estimate: float | None = None,
               se: float | None = None, subject: str | None = None) -> Decision:
        """Apply the registered rule of ``claim_id`` (see :func:`booktools.claims.decide`), print
        the verdict line, record it under ``claims`` and glue ``verdict_<id>[_<subject>]`` and
        ``effect_<id>[_<subject>]`` for the chapters. A claim is decided once per subject."""
        claim = self.claim(claim_id)
        if samples is not None:
            samples = _jsonable(samples)
            samples = samples if isinstance(samples, list) else [samples]
        key = (claim_id, subject)
        if key in self._decisions:
            raise ValueError(f"claim {claim_id!r} (subject {subject!r}) was already decided in this run")
        d = decide(claim, samples=samples, estimate=estimate, se=se, subject=subject)
        self._decisions[key] = d
        tag = claim_id + (f"_{subject}" if subject else "")
        effect = d.effect_text(claim.digits, claim.unit)
        size = (f"n = {d.n} {claim.samples_over}" if d.n is not None
                else "one estimate with its standard error")
        power = (f"; detectable with 80% power: {d.detectable:.{claim.digits}f}"
                 if math.isfinite(d.detectable) else "")
        print(textwrap.fill(f"[claim] {tag}: {d.verdict.upper()}. Effect {effect}; rule "
                            f"{d.rule}; {size}{power}", width=85, subsequent_indent=" " * 8,
                            break_long_words=False, break_on_hyphens=False))
        self.results.setdefault("claims", {})[tag] = {**d.as_dict(), "profile": self.profile,
                                                      "samples": samples}
        self.record()
        self.glue_value(f"verdict_{tag}", d.verdict)
        self.glue_value(f"effect_{tag}", f"{effect}, {size}, {self.profile} profile")
        return d

    def finish(self) -> None:
        """The run's closing invariant: every recorded setting was read and every registered
        claim decided (for each of its subjects). Raises :class:`RecordIncomplete` naming what
        is missing."""
        problems = []
        if self._settings is not None or self.paper_record.settings:
            unread = self.settings.unread()
            if unread:
                problems.append(f"settings recorded but never read: {unread}")
        for claim_id in self.paper_record.claims:
            claim = self.claim(claim_id)
            for subject in (claim.subjects or (None,)):
                if (claim_id, subject) not in self._decisions:
                    name = f"{claim_id!r}" + (f" ({subject})" if subject else "")
                    problems.append(f"claim {name} not decided")
        if problems:
            raise RecordIncomplete(f"{self.name}: " + "; ".join(problems))
        counts = {v: sum(d.verdict == v for d in self._decisions.values())
                  for v in ("reproduced", "not reproduced", "inconclusive")}
        print(f"Record complete: {len(self.paper_record.settings)} settings read, {len(self._decisions)} "
              f"verdicts ({counts['reproduced']} reproduced, {counts['not reproduced']} not "
              f"reproduced, {counts['inconclusive']} inconclusive).")


def check_parameters(profile: str, device: str, seed: int) -> torch.device:
    """Validate a notebook's papermill parameters; returns the device they name.

    Raises ``ValueError`` for an unknown ``profile``, a ``device`` that is not there or a
    ``seed`` that is not an integer. ``tools/reproduce.py`` calls it before starting a kernel.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return resolve_device(device)


def setup(name: str, *, profile: str = "quick", device: str = "auto", seed: int = 0,
          output_dir: str | Path = "experiments") -> Experiment:
    """Validate the papermill parameters (:func:`check_parameters`), seed torch's global
    generator with ``seed`` and prepare the output folder."""
    dev = check_parameters(profile, device, seed)
    torch.manual_seed(seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Experiment(name=name, profile=profile, device=dev, seed=seed, output_dir=out)
