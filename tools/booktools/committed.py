"""The committed results of a long run (the ``cpu`` profile), read back for the pages.

A ``cpu`` run (``make reproduce-cpu``) executes a notebook with ``--output-dir results/cpu``: its
per-unit results land in ``results/cpu/<name>/`` (:mod:`booktools.runs`), and its results JSON,
with the verdicts of the registered claims and the run's provenance (commit, machine, torch,
wall time and the inputs fingerprint), in ``results/cpu/results/<name>.json``. All of it is
committed. The quick run that the book executes reads that JSON back with
:func:`committed_run` (``exp.show_committed()``), shows it beside the paper's numbers and its own,
and marks it **stale** when the library, the recipes, the notebook's code or the record's
settings have changed since the run (:func:`booktools.runs.inputs_fingerprint`), so that a page
never shows old numbers as current.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from booktools.runs import inputs_fingerprint, results_root

__all__ = ["CommittedRun", "committed_run", "committed_names", "status_report", "main", "results_json"]


def results_json(name: str, profile: str = "cpu", root: Path | None = None) -> Path:
    """Where a committed run of ``name`` keeps its results JSON:
    ``<root>/<profile>/results/<name>.json`` (``root``: ``results/`` or ``$BOOKTOOLS_RESULTS_DIR``)."""
    return Path(root if root is not None else results_root()) / profile / "results" / f"{name}.json"


@dataclass(frozen=True)
class CommittedRun:
    """A committed run's results JSON (``data``; ``None`` when there is none) and the parts of
    its inputs that changed since it ran (``changed``; empty: current)."""

    name: str
    profile: str
    path: Path
    data: dict[str, Any] | None
    changed: tuple[str, ...] = ()
    unreadable: str = field(default="")
    #: the library changed since the run by verified changes only (``results/library_changes.json``)
    library_verified: bool = False

    @property
    def available(self) -> bool:
        return self.data is not None

    @property
    def stale(self) -> bool:
        return bool(self.changed)

    @property
    def meta(self) -> dict[str, Any]:
        return (self.data or {}).get("meta", {})

    @property
    def claims(self) -> dict[str, dict[str, Any]]:
        """The decided claims, by tag (``<id>`` or ``<id>_<subject>``)."""
        return (self.data or {}).get("claims", {})

    def status_line(self) -> str:
        """One sentence for the page: which run the numbers come from, and whether it is current."""
        if self.unreadable:
            return f"The committed {self.profile} run of {self.name} cannot be read ({self.unreadable})."
        if not self.available:
            return (f"No {self.profile} run of {self.name} is committed yet (make reproduce-cpu "
                    f"CPU_NOTEBOOKS={self.name}); the numbers on this page come from the quick run.")
        m, prov = self.meta, self.meta.get("provenance", {})
        commit = (prov.get("commit") or "unknown commit")[:10] + (" (with uncommitted changes)"
                                                                 if prov.get("dirty") else "")
        mach = prov.get("machine", {})
        where = (f"{mach.get('cpu', 'unknown CPU')}, {mach.get('cores', '?')} cores, "
                 f"torch {m.get('torch', '?')}")
        wall = prov.get("wall_time_s")
        hours = f"{wall / 3600:.2f} h of wall time" if isinstance(wall, (int, float)) else "wall time unknown"
        units = (self.data or {}).get("units")
        ran_on = units.get("machines") if isinstance(units, dict) else None
        if isinstance(ran_on, dict) and ran_on:  # the units' CPUs; the JSON's is where it was drawn
            machines = ", ".join(f"{cpu} ({n})" for cpu, n in sorted(ran_on.items(), key=lambda kv: -kv[1]))
            text = (f"The {self.profile} run: commit {commit}, finished {prov.get('finished', '?')} "
                    f"(tables drawn on {where}), {hours}; its units ran on {machines}.")
        else:
            text = (f"The {self.profile} run: commit {commit}, finished {prov.get('finished', '?')}, "
                    f"on {where}, {hours}.")
        if isinstance(units, dict) and "finished" in units:  # the tally of exp.run_units
            pending = len(units.get("pending", []))
            text += (f" {units.get('finished', 0)} units of work finished"
                     + (f", {pending} still pending (later sittings add them): its numbers are "
                        "partial." if pending else ", none pending."))
        if self.stale:
            text += (f" STALE: the {', '.join(self.changed)} changed since this run; its numbers are "
                     "shown for reference and must be rerun before they are quoted.")
        elif self.library_verified:
            text += (" Current: the code and settings that produced it are unchanged, but for library "
                     "changes verified to leave its results as they were (units rerun with them came "
                     "out identical; results/library_changes.json).")
        else:
            text += " Current: the code and settings that produced it are unchanged."
        return text

    def verdict_text(self, tag: str) -> str:
        """The verdict of claim ``tag`` in this run, for the report card (``"no cpu run yet"``
        when there is none, with ``"(stale)"`` appended when the run is stale)."""
        if not self.available:
            return f"no {self.profile} run yet"
        c = self.claims.get(tag)
        if c is None:
            return f"not decided in the {self.profile} run"
        return str(c.get("verdict", "?")) + (" (stale)" if self.stale else "")

    def effect_text(self, tag: str) -> str:
        """The effect line of claim ``tag`` in this run (the notebook's own wording), or ``""``."""
        c = self.claims.get(tag) if self.available else None
        if not c:
            return ""
        return str(c.get("effect_line", c.get("estimate", "")))


def committed_run(name: str, profile: str = "cpu", root: Path | None = None,
                  repo: Path | None = None, *, data: dict[str, Any] | None = None) -> CommittedRun:
    """Read the committed ``profile`` run of ``name`` and compare its inputs fingerprint with the
    current tree's (``repo``: the repository, default this one).

    ``data``: a results JSON to judge instead of the file (a run of ``profile`` judging itself
    before it replaces the file)."""
    path = results_json(name, profile, root)
    if data is None and not path.is_file():
        return CommittedRun(name, profile, path, None)
    try:
        data = json.loads(path.read_text()) if data is None else data
        stored = data["meta"]["provenance"]["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return CommittedRun(name, profile, path, None, unreadable=f"{path}: {err!r}")
    current = inputs_fingerprint(name, profile=profile) if repo is None else \
        inputs_fingerprint(name, repo, profile=profile)
    # verified library changes since the run, or since some of its units were made (the tally
    # of exp.run_units counts the units' library digests)
    unit_libraries = (data.get("units") or {}).get("libraries") or {} if isinstance(data, dict) else {}
    verified = (isinstance(stored, dict) and current.library_verified_since(stored)) or any(
        current.library_verified_since({"library": digest}) for digest in unit_libraries)
    return CommittedRun(name, profile, path, data, tuple(current.changed(stored)), library_verified=verified)


def committed_names(profile: str = "cpu", root: Path | None = None) -> list[str]:
    """The experiments with a committed ``profile`` run (``<root>/<profile>/results/*.json``)."""
    folder = results_json("x", profile, root).parent
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def status_report(profile: str = "cpu", root: Path | None = None,
                  repo: Path | None = None) -> tuple[list[str], list[str]]:
    """``(lines, stale)``: one line per committed ``profile`` run (current, current but for
    verified library changes, STALE with what changed, or unreadable), and the names of the runs
    that a page would mark stale or cannot read."""
    lines, stale = [], []
    for name in committed_names(profile, root):
        run = committed_run(name, profile, root, repo)
        if run.unreadable or run.stale:
            stale.append(name)
            what = run.unreadable or f"the {', '.join(run.changed)} changed since the run"
            lines.append(f"{name}: STALE ({what})")
        else:
            but = " (but for verified library changes)" if run.library_verified else ""
            lines.append(f"{name}: current{but}")
    return lines, stale


def main(argv: list[str] | None = None) -> int:
    """``python -m booktools.committed [--strict]``: print whether each committed cpu run is
    current, as the pages will say. A stale run is shown on its page marked STALE; ``--strict``
    makes that an error (exit 1)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m booktools.committed", description=main.__doc__)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a committed run is stale")
    args = parser.parse_args(argv)
    lines, stale = status_report(args.profile)
    print(f"committed {args.profile} runs, as their pages will show them:" + ("" if lines else " none"))
    for line in lines:
        print("  " + line)
    if stale:
        print(f"  -> the book marks {', '.join(stale)} STALE. When only cells after run_units changed, "
              f"a sitting of one second redraws them from the stored units without training:\n"
              f"     make reproduce-cpu CPU_NOTEBOOKS=\"{' '.join(stale)}\" CPU_SITTING=1\n"
              f"     (otherwise a sitting reruns the stale units); then commit results/{args.profile}/")
    return 1 if stale and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
