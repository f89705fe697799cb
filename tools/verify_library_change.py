"""Verify that a change to ``ssm_lib`` leaves the committed results as they were, and record it.

Any edit to the library changes its digest, and every committed unit made with the old digest
becomes stale (:mod:`booktools.runs`): the ``cpu`` runs hold about 16 hours of units, so an
input check or a docstring would cost them all. This tool gives such a change a measured way
through, and nothing else:

1. ``--base REV``: the library as it was at a commit (its digest is what the committed units
   name). The working tree's library is the changed one.
2. For each ``EXPERIMENT:KEY`` named, the unit is run again with the changed library, in a
   scratch copy of the committed results where the other units made with the base library are
   marked as made with this one (so that only the named units run): the experiment's notebook
   is executed in the ``cpu`` profile by ``tools/reproduce.py`` exactly as ``make reproduce-cpu``
   does, into a scratch folder. Nothing under ``results/`` is touched by the rerun.
3. Each rerun unit's payload is compared with the committed one, value for value (floats
   exactly), leaving out only what measures the machine rather than the method: time and
   memory (keys ending in ``_s``, ``_seconds``, ``_mb``, ``_s_per_...``, and ``rounds``, the
   timing rounds) and ``load``, the machine's load average around a timing.
4. Only when every named unit came out identical, the change is appended to
   ``results/library_changes.json`` with the evidence (units, machine, numerics fingerprint,
   base and working commits, date); from then on results made with the base library count as
   current (:func:`booktools.runs.library_equivalents`) and the pages say so. Any difference:
   nothing is recorded, the tool prints the first differing values and exits 1.

A unit counts as made with the base library when it names the base's digest or one that earlier
verified changes lead from to it (:func:`booktools.runs.library_equivalents`, so a second change
is verified on units made before the first). Every experiment with committed units made with the
base library must have at least one unit named, and every other unit of a named experiment must
have been made with it too: one that was not would be stale in the scratch copy and run again
with the rest, for hours, so the tool refuses before anything runs. The units should be ones
made on this kind of machine (same CPU name in their provenance): another CPU's rounding can
differ in the last bits, which the comparison would report as a difference (a refusal, never a
false pass).

Usage::

    python tools/verify_library_change.py --base d08dd10 \\
        --summary "input checks only: ..." dkef_uci:dataset=redwine__objective=exact__seed=0 ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from booktools.runs import (  # noqa: E402
    LIBRARY_CHANGES,
    git_state,
    library_changes,
    library_digest,
    library_equivalents,
    machine,
)

PROFILE = "cpu"
#: keys whose values measure the machine (time, memory, load average), not the method
MEASURED_KEY = re.compile(r"(^|_)(s|seconds|mb)(_per_[a-z_]+)?$|^rounds$|^load$")


def strip_measured(value: Any) -> Any:
    """``value`` without the entries of :data:`MEASURED_KEY` (at any depth)."""
    if isinstance(value, dict):
        return {k: strip_measured(v) for k, v in value.items() if not MEASURED_KEY.search(k)}
    if isinstance(value, list):
        return [strip_measured(v) for v in value]
    return value


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where ``a`` and ``b`` (JSON data) first differ, as ``path: a != b``; ``None`` when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}: present in only one"
            d = first_difference(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b and type(a) is type(b) else f"{path}: {a!r} != {b!r}"


def base_library_digest(rev: str) -> str:
    """The library digest of the tree at commit ``rev``."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "ssm_lib"],
                                 capture_output=True, check=False)
        if archive.returncode != 0:
            sys.exit(f"--base {rev}: git archive failed: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        return library_digest(Path(tmp))


def _unit_library(path: Path) -> str | None:
    return json.loads(path.read_text()).get("provenance", {}).get("fingerprint", {}).get("library")


def scratch_results(experiment: str, keys: list[str], base: frozenset[str], current: str,
                    tmp: Path) -> int:
    """Copy the committed units of ``experiment`` into ``tmp/<profile>/<experiment>``, mark
    those made with a ``base`` library (its digest and those verified equivalent to it) as made
    with ``current``, and leave out ``keys`` (to be run again). Returns how many were marked."""
    src = ROOT / "results" / PROFILE / experiment
    dst = tmp / PROFILE / experiment
    dst.mkdir(parents=True)
    marked = 0
    for path in sorted(src.glob("*.json")):
        if path.stem in keys:
            continue
        data = json.loads(path.read_text())
        fp = data.get("provenance", {}).get("fingerprint", {})
        if fp.get("library") in base:
            fp["library"] = current
            marked += 1
        (dst / path.name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return marked


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="verify_library_change.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("units", nargs="+", metavar="EXPERIMENT:KEY",
                   help="committed units to run again, e.g. "
                        "dkef_uci:dataset=redwine__objective=exact__seed=0")
    p.add_argument("--base", required=True, help="the commit whose library made the committed units")
    p.add_argument("--summary", required=True, help="what the change is, in a sentence")
    p.add_argument("--seed", type=int, default=0, help="the seed the cpu runs were made with (0)")
    p.add_argument("--timeout", type=int, default=86400, help="per-cell timeout in seconds")
    p.add_argument("--jobs", type=int, default=2, help="experiments rerun side by side (one thread each)")
    args = p.parse_args(argv)

    base, current = base_library_digest(args.base), library_digest(ROOT)
    if base == current:
        print(f"the library at {args.base} is the working tree's ({current}): nothing to verify")
        return 0
    # the base's digest and those that verified changes lead from to it
    base_set = frozenset({base}) | library_equivalents(ROOT, current=base)
    wanted: dict[str, list[str]] = {}
    for item in args.units:
        experiment, sep, key = item.partition(":")
        if not sep or not (ROOT / "results" / PROFILE / experiment / f"{key}.json").is_file():
            p.error(f"{item}: no committed unit results/{PROFILE}/{experiment}/{key}.json")
        wanted.setdefault(experiment, []).append(key)
    made_with_base = sorted(
        folder.name for folder in (ROOT / "results" / PROFILE).iterdir()
        if folder.is_dir() and any(_unit_library(f) in base_set for f in folder.glob("*.json")))
    missing = sorted(set(made_with_base) - set(wanted))
    if missing:
        p.error(f"name at least one unit of every experiment made with the base library; missing: "
                f"{', '.join(missing)}")
    for experiment, keys in wanted.items():
        others = [f.stem for f in sorted((ROOT / "results" / PROFILE / experiment).glob("*.json"))
                  if f.stem not in keys and _unit_library(f) not in base_set]
        if others:
            p.error(f"{experiment}: {len(others)} committed units (e.g. {others[0]}) were not made with "
                    f"the base library {base} or one verified equivalent to it; the rerun would run "
                    "them all again. Is --base the commit whose library made them?")

    here = machine("cpu")
    from booktools.reference import numerics_fingerprint

    def verify(experiment: str, keys: list[str]) -> tuple[list[dict[str, Any]], str | None]:
        """Rerun ``keys`` of ``experiment``; its rows, and why it failed (``None``: it ran)."""
        with tempfile.TemporaryDirectory(prefix=f"verify-{experiment}-") as tmp_name:
            tmp = Path(tmp_name)
            marked = scratch_results(experiment, keys, base_set, current, tmp)
            print(f"{experiment}: {marked} units marked as made with the changed library; rerunning "
                  f"{len(keys)}", flush=True)
            env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
            env.pop("BOOKTOOLS_SITTING_S", None)
            start = time.monotonic()
            run = subprocess.run(
                [sys.executable, str(ROOT / "tools" / "reproduce.py"), experiment, "--profile", PROFILE,
                 "--device", "cpu", "--seed", str(args.seed), "--timeout", str(args.timeout),
                 "--output-dir", str(tmp / "out"), "--results-dir", str(tmp)],
                env=env, cwd=ROOT, capture_output=True, text=True, check=False)
            wall = time.monotonic() - start
            if run.returncode != 0:
                return [], (f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}\n{experiment}: the rerun "
                            f"failed (exit {run.returncode})")
            rows = []
            for key in keys:
                old = json.loads((ROOT / "results" / PROFILE / experiment / f"{key}.json").read_text())
                new_path = tmp / PROFILE / experiment / f"{key}.json"
                if not new_path.is_file():
                    return rows, f"{experiment}:{key}: the rerun did not write this unit"
                new = json.loads(new_path.read_text())
                diff = first_difference(strip_measured(old["payload"]), strip_measured(new["payload"]))
                committed_on = old["provenance"].get("machine", {}).get("cpu")
                rows.append({"experiment": experiment, "key": key, "identical": diff is None,
                             "difference": diff, "committed_on": committed_on,
                             "rerun_wall_time_s": round(float(new["provenance"].get("wall_time_s") or 0), 1)})
                print(f"{experiment}:{key}: " + ("identical" if diff is None else f"DIFFERS at {diff}")
                      + ("" if committed_on == here["cpu"] else " (committed on another CPU)"), flush=True)
            print(f"{experiment}: notebook rerun in {wall / 60:.1f} min", flush=True)
            return rows, None

    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each rerun is its own process
        done = list(pool.map(lambda item: verify(*item), wanted.items()))
    for got, failure in done:
        rows += got
        if failure:
            print(failure)
    if any(failure for _, failure in done):
        print("not recorded: a rerun failed")
        return 1
    ok = all(row["identical"] for row in rows)
    if not ok:
        print("not recorded: a rerun unit differs from the committed one")
        return 1
    path = ROOT / LIBRARY_CHANGES
    changes = library_changes(ROOT)
    changes.append({
        "from": base, "to": current, "summary": args.summary,
        "verified": {"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "base_commit": args.base,
                     "commit": git_state(ROOT)["commit"], "dirty": git_state(ROOT)["dirty"],
                     "machine": {k: here[k] for k in ("cpu", "cores", "torch", "python")},
                     "numerics_fingerprint": numerics_fingerprint(), "units": rows}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"about": "Library changes verified to leave the committed results as they "
                                         "were (tools/verify_library_change.py).",
                                "changes": changes}, indent=1) + "\n")
    print(f"recorded in {path.relative_to(ROOT)}: {base} -> {current}, {len(rows)} units identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
