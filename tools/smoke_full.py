"""The full-profile smoke run: every notebook that supports it, at full size for two steps.

    python tools/smoke_full.py [NAME ...] --steps 2 --device cpu --output-dir _build/smoke-full [--jobs 2]

A notebook supports the smoke run when its parameters cell declares ``smoke_steps = 0`` (and
its loops of the paper's length go through ``Experiment.limit``). Each such notebook runs with
``tools/reproduce.py NAME --profile full --smoke-steps N`` in its own process, writing into the
scratch folder (its executed notebook, figures and results JSON, and the per-unit results of
its long runs), never into ``experiments/`` or the committed ``results/``. One line per
notebook, in the order they finish (``--jobs`` side by side, one thread each): its name, ok or
FAILED, the wall time, and the estimate of the full run from the measured cost per step
(``Experiment.time_estimate``) on the device it ran on, or why it failed. On a GPU machine,
``--device cuda`` makes that estimate the GPU's. Exit status 1 when
one failed, 2 for a mistake on the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from booktools.cli import Parser, UsageError, run_command, writable_folder

ROOT = Path(__file__).resolve().parents[1]
PROG = "smoke_full.py"
REPRODUCE = ROOT / "tools" / "reproduce.py"

__all__ = ["estimate_line", "main", "supporting_notebooks"]


def _reproduce():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce", REPRODUCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def supporting_notebooks(notebook_dir: Path) -> list[str]:
    """The notebooks whose parameters cell declares ``smoke_steps``, sorted."""
    declares = _reproduce().declares_smoke_steps
    return sorted(p.stem for p in notebook_dir.glob("*.md") if declares(p))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def estimate_line(results: Path) -> str:
    """The full run's estimate from a smoke run's results JSON (``time_estimates``)."""
    try:
        data = json.loads(results.read_text())
    except (OSError, json.JSONDecodeError):
        return "no results JSON"
    estimates = data.get("time_estimates") or {}
    if not estimates:
        return "no time estimate recorded"
    total = sum(e["seconds"] for e in estimates.values())
    device = next(iter(estimates.values())).get("device", "?")
    return f"full run estimated {_duration(total)} on {device} ({len(estimates)} phases)"


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
        p.add_argument("names", nargs="*", help="notebooks to run (default: every one that supports it)")
        p.add_argument("--steps", type=int, default=2, help="steps of every phase (default 2)")
        p.add_argument("--device", default="cpu")
        p.add_argument("--output-dir", type=Path, default=ROOT / "_build" / "smoke-full")
        p.add_argument("--notebook-dir", type=Path, default=ROOT / "notebooks")
        p.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds")
        p.add_argument("--jobs", type=int, default=1, help="notebooks side by side (one thread each)")
        args = p.parse_args(argv)
        if args.steps < 1:
            raise UsageError(f"--steps must be a positive integer, got {args.steps}")
        if args.jobs < 1:
            raise UsageError(f"--jobs must be a positive integer, got {args.jobs}")
        out = args.output_dir.resolve()
        for kept in (ROOT / "experiments", ROOT / "results"):
            if out == kept or kept in out.parents:
                raise UsageError(f"--output-dir {args.output_dir} is inside {kept.name}/; the smoke run "
                                 "writes into a scratch folder only")
        writable_folder(out, "--output-dir")
        supported = supporting_notebooks(args.notebook_dir)
        names = args.names or supported
        unsupported = [n for n in names if n not in supported]
        if unsupported:
            raise UsageError(f"{', '.join(unsupported)}: no smoke_steps in the parameters cell "
                             f"(notebooks that support the smoke run: {', '.join(supported) or 'none'})")
        if not names:
            print(f"{PROG}: no notebook declares smoke_steps yet; nothing to run")
            return 0
        width = max(len(n) for n in names)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"} if args.jobs > 1 else None

        def one(name: str) -> bool:
            start = time.perf_counter()
            run = subprocess.run(
                [sys.executable, str(REPRODUCE), name, "--profile", "full", "--smoke-steps",
                 str(args.steps), "--device", args.device, "--output-dir", str(out),
                 "--results-dir", str(out / "runs"), "--notebook-dir", str(args.notebook_dir),
                 "--timeout", str(args.timeout)],
                capture_output=True, text=True, env=env)
            wall = time.perf_counter() - start
            if run.returncode == 0:
                what, status = estimate_line(out / "results" / f"{name}.json"), "ok"
            else:
                lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
                what, status = (lines[-1] if lines else f"exit status {run.returncode}"), "FAILED"
            print(f"{name:<{width}}  {status:<6}  {_duration(wall):>8}  {what}", flush=True)
            return run.returncode == 0

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(args.jobs, len(names))) as pool:
            failed = sum(not ok for ok in pool.map(one, names))
        return 1 if failed else 0

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
