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

The full-profile smoke run (``make smoke-full``): a notebook that declares ``smoke_steps = 0``
in its parameters cell is run with ``smoke_steps = 2``, and caps every loop of the paper's
length by :meth:`Experiment.limit` (``range(exp.limit(cfg.steps))``), so that every phase runs
at full size for two steps; :meth:`Experiment.time_estimate` turns the measured cost per step
into the time of the full run::

    exp.time_estimate("train ssm_vr", seconds_per_step=t / n, steps=cfg.steps)

Long runs keep one result per unit of work with its provenance (:meth:`Experiment.run_store`,
:mod:`booktools.runs`), so that an interrupted run resumes. A run in a profile other than
``quick`` writes its provenance (commit, machine, inputs fingerprint, wall time) into its results
JSON. The quick run shows the committed ``cpu`` run beside its own numbers, marked stale when
its inputs changed (:meth:`Experiment.show_committed`, :mod:`booktools.committed`)::

    cpu = exp.show_committed()              # prints which run, glues cpu_verdict_<claim> etc.
    if cpu.available: ...                   # cpu.data: that run's results JSON
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
from booktools.profiles import RUN_PROFILES, NotDescribed, opt_in_values
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
    smoke_steps: int = 0
    _provenance: dict[str, Any] | None = field(default=None, repr=False)
    _committed: Any = field(default=None, repr=False)

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        """The quick-profile or the full-profile value of a setting (only these two profiles:
        another profile reads its values from the record, ``exp.settings``)."""
        if self.profile not in PROFILES:
            raise ValueError(f"pick() knows the quick and full profiles only; the {self.profile!r} "
                             "profile reads its values from the record (exp.settings)")
        return quick if self.quick else full

    # --- the full-profile smoke run and time estimates ---------------------------------------
    @property
    def smoke(self) -> bool:
        """Whether this is a smoke run (``smoke_steps > 0``): every long loop cut short."""
        return self.smoke_steps > 0

    def limit(self, n: int) -> int:
        """``n`` in a normal run; ``min(n, smoke_steps)`` in a smoke run. Wrap every count of the
        paper's length in it (steps, epochs, iterations, sample counts of an estimate)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return min(n, self.smoke_steps) if self.smoke else n

    def time_estimate(self, name: str, seconds_per_step: float, steps: int) -> float:
        """Record and print the extrapolated time of a phase of the full run: seconds per step
        (measured in this run) times ``steps`` (the phase's length in this profile, before
        :meth:`limit`). Returns the estimate in seconds; the results JSON keeps every phase
        under ``time_estimates`` and their sum under ``time_estimate_total_s``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if (isinstance(seconds_per_step, bool) or not isinstance(seconds_per_step, (int, float))
                or not math.isfinite(seconds_per_step) or seconds_per_step < 0):
            raise ValueError(f"seconds_per_step must be a finite number >= 0, got {seconds_per_step!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        total = float(seconds_per_step) * steps
        estimates = self.results.setdefault("time_estimates", {})
        estimates[name] = {"seconds_per_step": float(seconds_per_step), "steps": steps,
                           "seconds": total, "device": str(self.device)}
        self.results["time_estimate_total_s"] = sum(e["seconds"] for e in estimates.values())
        self.record()
        print(f"[estimate] {name}: {_duration(seconds_per_step)}/step x {steps} steps = "
              f"{_duration(total)} on {self.device} ({self.profile} profile)")
        return total

    def run_store(self, *, fingerprint: Any = None, root: str | Path | None = None):
        """A :class:`booktools.runs.RunStore` for this experiment and profile, with this
        profile's settings and device in every unit's provenance. Results go to the committed
        ``results/<profile>/<name>/`` (or ``$BOOKTOOLS_RESULTS_DIR``); a quick or smoke run's go
        to ``<output_dir>/runs/`` (build products, never committed). A smoke run on a GPU warms
        each unit up (``RunStore.warm_up``)."""
        from booktools.runs import RunStore

        if root is None and (self.quick or self.smoke):
            root = self.output_dir / "runs"
        # a smoke run on a GPU times two steps per phase: each unit first runs once untimed, so
        # that its kernels' first calls (loading, cuBLAS set-up, allocations) are not counted
        warm_up = self.smoke and torch.device(self.device).type == "cuda"
        return RunStore(self.name, self.profile, root=Path(root) if root is not None else None,
                        fingerprint=fingerprint, settings=self.settings, device=self.device,
                        warm_up=warm_up)

    def run_units(self, units: Any, fn: Any, store: Any = None):
        """:func:`booktools.runs.run_units` with this run's store (default
        :meth:`run_store`), keeping count in the results JSON under ``units``
        (:meth:`count_units`)."""
        from booktools.runs import run_units

        store = self.run_store() if store is None else store
        units = list(units)
        out = run_units(units, fn, store)
        self.count_units(units, out, store)
        return out

    def count_units(self, units: Any, finished: Any, store: Any) -> dict[str, Any]:
        """Keep count of a sitting's units in the results JSON under ``units``: how many are
        finished, which are pending for a later sitting, and the wall time the finished units
        took (summed over sittings; it becomes the run's ``wall_time_s``), and on which CPUs
        (``machines``: CPU name -> units; the results JSON's own machine is the one that drew the
        tables, which may not be where the units ran) and with which library (``libraries``:
        library digest -> units; a unit made before a verified library change keeps the older
        digest, :func:`booktools.runs.library_equivalents`). ``finished`` is what
        :func:`booktools.runs.run_units` returned for ``units`` with ``store``; a notebook that
        calls that function itself counts with this, as :meth:`run_units` does. Returns the
        tally."""
        from booktools.runs import CorruptResult, unit_key

        units = list(units)
        wall = 0.0
        machines: dict[str, int] = {}
        libraries: dict[str, int] = {}
        for unit in units:
            if unit_key(unit) not in finished:
                continue
            try:
                provenance = store.read(unit).provenance
                wall += float(provenance.get("wall_time_s") or 0.0)
                cpu = str((provenance.get("machine") or {}).get("cpu") or "unknown CPU")
                machines[cpu] = machines.get(cpu, 0) + 1
                library = str((provenance.get("fingerprint") or {}).get("library") or "unknown")
                libraries[library] = libraries.get(library, 0) + 1
            except (OSError, CorruptResult, TypeError, ValueError, AttributeError):  # not fatal
                pass
        tally = self.results.setdefault("units", {"finished": 0, "pending": [], "wall_time_s": 0.0})
        tally["finished"] += sum(unit_key(u) in finished for u in units)
        tally["pending"] = [*tally["pending"], *finished.pending]
        tally["wall_time_s"] += wall
        for name, counts in (("machines", machines), ("libraries", libraries)):
            for key, n in counts.items():
                tally.setdefault(name, {})[key] = tally.get(name, {}).get(key, 0) + n
        if not self.quick and not self.smoke:
            self.results["wall_time_s"] = tally["wall_time_s"]
        self.record()
        return tally

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
        text = json.dumps({"meta": self._meta(), **self.results}, indent=2, sort_keys=True,
                          allow_nan=False)
        (path / f"{self.name}.json").write_text(text)

    def _meta(self) -> dict[str, Any]:
        """The results JSON's ``meta``: what ran, and (outside the quick profile) its provenance."""
        meta = {"notebook": self.name, "profile": self.profile, "device": str(self.device),
                "seed": self.seed, "torch": torch.__version__}
        if self.smoke:
            meta["smoke_steps"] = self.smoke_steps
        if not self.quick:
            meta["provenance"] = self.provenance()
        return meta

    def provenance(self) -> dict[str, Any]:
        """Where and from what this run's numbers come: the git commit (and whether the tree
        had uncommitted changes), the machine, the inputs fingerprint
        (:func:`booktools.runs.inputs_fingerprint`), when it finished and its wall time (the
        ``wall_time_s`` recorded by the notebook, e.g. summed over a resumed run's units, or
        else the time since :func:`setup`)."""
        if self._provenance is None:
            from booktools.runs import git_state, inputs_fingerprint, machine

            self._provenance = {**git_state(), "machine": machine(self.device),
                                "fingerprint": inputs_fingerprint(self.name, profile=self.profile).parts}
        wall = self.results.get("wall_time_s", self.elapsed())
        return {**self._provenance, "wall_time_s": float(wall),
                "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}

    def show_committed(self, profile: str = "cpu"):
        """Read the committed ``profile`` run of this experiment (:func:`booktools.committed.
        committed_run`), print which run it is and whether it is current, and glue for the
        pages ``committed_status`` and, for every registered claim (and subject),
        ``cpu_verdict_<tag>`` and ``cpu_effect_<tag>`` (the report card's column). Returns the
        :class:`~booktools.committed.CommittedRun`; ``.data`` is that run's results JSON.

        A run of ``profile`` itself (a ``cpu`` sitting) is the run it will commit: it reads its
        own numbers and provenance, not the file it is about to replace (which would show the
        previous sitting's numbers, stale against the code this sitting runs)."""
        from booktools.committed import committed_run

        own = profile == self.profile and not self.quick and not self.smoke
        run = committed_run(self.name, profile,
                            data=json.loads(json.dumps({"meta": self._meta(), **self.results}))
                            if own else None)
        print(textwrap.fill(run.status_line(), width=85, break_long_words=False, break_on_hyphens=False))
        self.glue_value("committed_status", run.status_line())
        for claim_id in self.paper_record.claims:
            for subject in (self.claim(claim_id).subjects or (None,)):
                tag = claim_id + (f"_{subject}" if subject else "")
                self.glue_value(f"{profile}_verdict_{tag}", run.verdict_text(tag))
                self.glue_value(f"{profile}_effect_{tag}", run.effect_text(tag) or "-")
        self.results["committed_run"] = {"profile": profile, "available": run.available,
                                         "stale": run.stale, "changed": list(run.changed)}
        self.record()
        self._committed = run
        return run

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

    def show_differences(self) -> None:
        """Display the "Differences from the paper" table of this profile and glue it under
        ``differences``, for the chapters' ``{glue}`` directive with ``:doc:``. Both are HTML:
        the book renders Markdown outputs without table support, and cross-page glue carries
        HTML only. Without IPython the Markdown form is printed."""
        try:
            from IPython.display import HTML, display
        except ImportError:  # pragma: no cover
            print(differences_markdown(self.paper_record, self.profile))
            return
        table = HTML(differences_html(self.paper_record, self.profile))
        display(table)
        try:
            from myst_nb import glue as nb_glue
        except ImportError:  # pragma: no cover
            return
        nb_glue("differences", table, display=False)

    def claim(self, claim_id: str) -> Claim:
        """The registered claim ``claim_id`` of this experiment's record."""
        raw = self.paper_record.claims.get(claim_id)
        if raw is None:
            raise KeyError(f"claim {claim_id!r} is not registered in {self.paper_record.path}; "
                           f"registered: {sorted(self.paper_record.claims)}")
        return claim_from_record(claim_id, raw, self.paper_record.path.name)

    def decide(self, claim_id: str, *, samples: Any = None, estimate: float | None = None,
               se: float | None = None, subject: str | None = None, note: str = "") -> Decision:
        """Apply the registered rule of ``claim_id`` (see :func:`booktools.claims.decide`), print
        the verdict line, record it under ``claims`` and glue ``verdict_<id>[_<subject>]`` and
        ``effect_<id>[_<subject>]`` for the chapters. A claim is decided once per subject.
        ``note``: a short clause about the samples (e.g. how many seeds were left out, and why),
        set in brackets after their number, on the verdict line and in the recorded effect."""
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
        if not isinstance(note, str):
            raise TypeError(f"note must be a string, got {type(note).__name__}")
        if note.strip():
            size += f" ({note.strip()})"
        power = (f"; detectable with 80% power: {d.detectable:.{claim.digits}f}"
                 if math.isfinite(d.detectable) else "")
        print(textwrap.fill(f"[claim] {tag}: {d.verdict.upper()}. Effect {effect}; rule "
                            f"{d.rule}; {size}{power}", width=85, subsequent_indent=" " * 8,
                            break_long_words=False, break_on_hyphens=False))
        # _jsonable: an interval of fewer than two samples is NaN, which JSON cannot hold
        self.results.setdefault("claims", {})[tag] = _jsonable({**d.as_dict(), "profile": self.profile,
                                                                "samples": samples,
                                                                "effect_line": f"{effect}, {size}"})
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
        if ("cpu" in self.paper_record.profiles and self.profile != "cpu" and not self.smoke
                and self._committed is None):
            problems.append("the record describes the cpu profile but the run never showed the "
                            "committed cpu run (exp.show_committed())")
        if problems:
            raise RecordIncomplete(f"{self.name}: " + "; ".join(problems))
        counts = {v: sum(d.verdict == v for d in self._decisions.values())
                  for v in ("reproduced", "not reproduced", "inconclusive")}
        print(f"Record complete: {len(self.paper_record.settings)} settings read, {len(self._decisions)} "
              f"verdicts ({counts['reproduced']} reproduced, {counts['not reproduced']} not "
              f"reproduced, {counts['inconclusive']} inconclusive).")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def check_parameters(profile: str, device: str, seed: int, smoke_steps: int = 0,
                     name: str | None = None) -> torch.device:
    """Validate a notebook's papermill parameters; returns the device they name.

    Raises ``ValueError`` for an unknown ``profile`` (one of
    :data:`booktools.profiles.RUN_PROFILES`; an opt-in profile such as ``cpu`` only for an
    experiment ``name`` whose record describes it), a ``device`` that is not there, a ``seed``
    that is not an integer or a ``smoke_steps`` that is not a non-negative integer.
    ``tools/reproduce.py`` calls it before starting a kernel.
    """
    if profile not in RUN_PROFILES:
        raise ValueError(f"profile must be one of {RUN_PROFILES}, got {profile!r}")
    if profile not in PROFILES:  # opt-in: the record must describe it (and follow the rules)
        if name is None:
            raise ValueError(f"profile {profile!r} is opt-in per record: name the experiment")
        try:
            opt_in_values(name, profile)
        except NotDescribed as err:
            raise ValueError(f"profile {profile!r}: {err}") from None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(smoke_steps, bool) or not isinstance(smoke_steps, int) or smoke_steps < 0:
        raise ValueError(f"smoke_steps must be a non-negative integer (0: a normal run), got {smoke_steps!r}")
    return resolve_device(device)


def setup(name: str, *, profile: str = "quick", device: str = "auto", seed: int = 0,
          output_dir: str | Path = "experiments", smoke_steps: int = 0) -> Experiment:
    """Validate the papermill parameters (:func:`check_parameters`), seed torch's global
    generator with ``seed`` and prepare the output folder. ``smoke_steps > 0``: a smoke run
    (see :meth:`Experiment.limit`). Outside the quick profile the run's provenance (commit,
    machine, inputs fingerprint) is taken here, at the start."""
    dev = check_parameters(profile, device, seed, smoke_steps, name)
    torch.manual_seed(seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    exp = Experiment(name=name, profile=profile, device=dev, seed=seed, output_dir=out,
                     smoke_steps=smoke_steps)
    if not exp.quick:
        # Taken now, at the start: a long run's provenance names the commit and inputs it
        # started from, even when the tree is edited or committed to while it runs.
        exp.provenance()
    return exp
