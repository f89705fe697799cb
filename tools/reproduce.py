"""Execute one experiment notebook with papermill, and publish its results only if it succeeded.

    python tools/reproduce.py score_fields --profile quick --device auto --seed 0

``notebooks/<name>.md`` (jupytext MyST) runs in a fresh ``python3`` kernel of this interpreter's
environment, with ``experiments/`` as working directory. ``make reproduce`` calls it for every
notebook whose source, ``ssm_lib``, ``booktools`` or run settings changed. What it adds to
papermill:

* The run writes into ``experiments/.running/<name>/`` (papermill's ``output_dir``
  parameter); only when every cell succeeded are its notebook, figures and results JSON moved
  into place (``experiments/<name>.ipynb``, ``experiments/figures/<name>/``,
  ``experiments/results/<name>.json``), the notebook last, so the previous good result stays
  until then.
* A failed or interrupted run (Ctrl-C, SIGTERM) is moved to ``experiments/failed/<name>/``
  with a file ``FAILED.txt`` saying why (the failing cell and its error); exit status 1 for a
  failure, 130 for an interruption, one line of message, no traceback.
* Mistakes on the command line (an unknown notebook, profile or device, a seed that is not an
  integer, an output location that is a file or cannot be written) give one line and exit
  status 2 before any kernel starts.
* The kernel runs with one CPU thread (``OMP_NUM_THREADS=1`` unless set), so that printed
  numbers do not depend on the core count, and without tqdm's notice about Jupyter widgets.
* Progress bars are switched off inside the kernel (``TQDM_DISABLE=1``, tqdm's environment
  default for ``disable``): their redraws would be frozen into the executed notebook, which
  the book renders. papermill's own bar (one per notebook, on a terminal only) still shows.
* ``--profile cpu`` (opt-in, :mod:`booktools.profiles`) is accepted for a notebook whose record
  describes that profile, and refused in one line otherwise.
* ``--smoke-steps N`` (N > 0) runs a notebook that declares ``smoke_steps`` in its parameters
  cell with every long loop cut to N steps (``Experiment.limit``); refused in one line for a
  notebook that does not declare it.
* ``--results-dir`` sets where the long runs keep their per-unit results
  (``BOOKTOOLS_RESULTS_DIR``, default the committed ``results/``); ``--progress-file`` names a
  file that receives one line per finished unit (``BOOKTOOLS_PROGRESS_FILE``), and those lines
  are printed on standard error as they come, so a long run shows its progress in a terminal or
  log while the notebook itself stays free of it.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from booktools.cli import Parser, UsageError, run_command, writable_folder

ROOT = Path(__file__).resolve().parents[1]
PROG = "reproduce.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="notebook name: notebooks/<name>.md")
    p.add_argument("--profile", default="quick",
                   help="quick (CPU, minutes), full (the paper's setting, one GPU) or cpu (the "
                        "paper's data on a 2-core CPU; only for notebooks whose record describes it)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0, help="integer seed passed to the notebook")
    p.add_argument("--output-dir", type=Path, default=ROOT / "experiments",
                   help="where the executed notebooks go (default: experiments/)")
    p.add_argument("--notebook-dir", type=Path, default=ROOT / "notebooks", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=int, default=3600, help="per-cell timeout in seconds")
    p.add_argument("--smoke-steps", type=int, default=0, metavar="N",
                   help="smoke run: every long loop cut to N steps (0: a normal run)")
    p.add_argument("--results-dir", type=Path, default=None,
                   help="where long runs keep their per-unit results (default: results/)")
    p.add_argument("--progress-file", type=Path, default=None,
                   help="file receiving one line per finished unit, also printed on stderr")
    return p.parse_args(argv)


_PARAMETERS_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*?:tags: \[[^\]]*parameters[^\]]*\]\n"
                              r"(.*?)^```", re.M | re.S)


def declares_smoke_steps(source: Path) -> bool:
    """Whether the notebook's parameters cell declares ``smoke_steps`` (its support of the
    full-profile smoke run)."""
    m = _PARAMETERS_CELL.search(source.read_text())
    return bool(m and re.search(r"^smoke_steps\s*=", m.group(1), re.M))


def check(args: argparse.Namespace) -> Path:
    """Everything that can be checked before a kernel starts; returns the notebook's source."""
    from booktools.experiment import check_parameters

    source = args.notebook_dir / f"{args.name}.md"
    if not source.is_file():
        known = sorted(p.stem for p in args.notebook_dir.glob("*.md"))
        raise UsageError(f"no notebook {args.name!r} in {args.notebook_dir} (known: {', '.join(known)})")
    if args.smoke_steps < 0:
        raise UsageError(f"--smoke-steps must be a non-negative integer (0: a normal run), "
                         f"got {args.smoke_steps}")
    if args.smoke_steps and not declares_smoke_steps(source):
        raise UsageError(f"--smoke-steps: {source} does not declare smoke_steps in its parameters cell, "
                         "so it cannot cut its loops short")
    try:
        check_parameters(args.profile, args.device, args.seed, name=args.name)
    except ValueError as err:
        message = str(err).removeprefix(f"profile {args.profile!r}: ")
        raise UsageError(f"--profile {args.profile}: {message}" if "profile" in str(err)[:8]
                         else message) from None
    writable_folder(args.output_dir, "--output-dir")
    if args.results_dir is not None:
        writable_folder(args.results_dir, "--results-dir")
    if args.progress_file is not None:
        writable_folder(args.progress_file.parent, "--progress-file")
        if args.progress_file.is_dir():
            raise UsageError(f"--progress-file {args.progress_file} is a folder, not a file")
    return source


@contextmanager
def _follow(path: Path | None, prefix: str, stream):
    """Print the lines appended to ``path`` on ``stream`` (the terminal) while the block runs."""
    if path is None:
        yield
        return
    stop = threading.Event()
    path.touch()
    start = path.stat().st_size

    def follow() -> None:
        with path.open() as fh:
            fh.seek(start)
            while True:
                line = fh.readline()
                if line.endswith("\n"):
                    print(f"{prefix}: {line.rstrip()}", file=stream, flush=True)
                elif stop.is_set():
                    return
                else:
                    stop.wait(0.5)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _kernel_environment() -> None:
    """The ``python3`` kernel starts with this interpreter (the project's virtual environment,
    even when it is not activated), one CPU thread unless told otherwise, no widget notice and
    no progress bars (tqdm reads ``TQDM_DISABLE`` as the default of ``disable``)."""
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    share = str(Path(sys.prefix) / "share" / "jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [share, os.environ.get("JUPYTER_PATH")]))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))


def _tidy_for_readers(path: Path) -> None:
    """Hide what is machinery, not content, in the executed notebook the book shows: the cell
    papermill injects with the run's parameters gets the ``remove-cell`` tag (the notebook's own
    ``parameters`` cell still shows the defaults), and the ``# NBVAL_CHECK_OUTPUT`` line of a
    checked cell becomes the cell tag :data:`booktools.reference.CHECK_TAG`."""
    import nbformat

    from booktools.reference import CHECK_TAG, MARKER

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if cell.cell_type == "code" and cell.source.lstrip().startswith(MARKER):
            cell.source = cell.source.lstrip()[len(MARKER):].lstrip("\n")
            if CHECK_TAG not in tags:
                tags.append(CHECK_TAG)
    nbformat.write(nb, path)


def _publish(staging: Path, out: Path, name: str) -> None:
    """Move a successful run's figures, results and notebook into place (the notebook last)."""
    figures, old = out / "figures" / name, out / "figures" / f".{name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if figures.exists():
        figures.rename(old)
    if (staging / "figures" / name).is_dir():
        figures.parent.mkdir(parents=True, exist_ok=True)
        (staging / "figures" / name).rename(figures)
    shutil.rmtree(old, ignore_errors=True)
    results = out / "results" / f"{name}.json"
    if (staging / "results" / f"{name}.json").is_file():
        results.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / "results" / f"{name}.json", results)
    else:
        results.unlink(missing_ok=True)
    os.replace(staging / f"{name}.ipynb", out / f"{name}.ipynb")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(out / "failed" / name, ignore_errors=True)


def _keep_failed(staging: Path, out: Path, name: str, why: str) -> Path:
    """Move a failed run's outputs to ``failed/<name>/`` and write why into ``FAILED.txt``."""
    failed = out / "failed" / name
    shutil.rmtree(failed, ignore_errors=True)
    failed.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(failed)
    (failed / "FAILED.txt").write_text(why + "\n")
    return failed


def _interrupt(signum, frame):  # SIGTERM ends the run like Ctrl-C
    raise KeyboardInterrupt


def run(args: argparse.Namespace, source: Path) -> int:
    import jupytext
    import papermill as pm

    from booktools.stderr import native_stderr_to

    name, out = args.name, args.output_dir.resolve()
    staging = out / ".running" / name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata.pop("jupytext", None)  # the .ipynb is a build product, not a paired file
    _kernel_environment()
    if args.results_dir is not None:
        os.environ["BOOKTOOLS_RESULTS_DIR"] = str(args.results_dir.resolve())
    if args.progress_file is not None:
        os.environ["BOOKTOOLS_PROGRESS_FILE"] = str(args.progress_file.resolve())
    if os.environ.get("BOOKTOOLS_SITTING_S"):  # the sitting starts now, not at the first unit
        os.environ.setdefault("BOOKTOOLS_SITTING_START", f"{time.time():.0f}")
    parameters = {"profile": args.profile, "device": args.device, "seed": args.seed,
                  "output_dir": str(staging.relative_to(out))}
    if args.smoke_steps:
        parameters["smoke_steps"] = args.smoke_steps
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        # the kernel's start-up warnings and papermill's log go to a file, not the terminal
        with native_stderr_to(staging / "kernel-stderr.log") as terminal, \
                _follow(args.progress_file, name, terminal):
            # disable=False given explicitly: it wins over the TQDM_DISABLE default set above
            bar = ({"file": terminal, "desc": name, "leave": False, "disable": False}
                   if terminal.isatty() else False)
            pm.execute_notebook(
                nb, str(staging / f"{name}.ipynb"),
                parameters=parameters,
                kernel_name="python3", language="python", cwd=str(out), progress_bar=bar,
                execution_timeout=args.timeout, log_output=False)
    except KeyboardInterrupt:
        # the killed kernel leaves a pending asyncio task whose "exception was never retrieved"
        # report would reach the terminal at exit: the one-line message below says it all
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        failed = _keep_failed(staging, out, name, "interrupted")
        print(f"{PROG}: {name} interrupted; the previous result is unchanged, this run's partial "
              f"outputs are in {failed}", file=sys.stderr)
        return 130
    except Exception as err:  # PapermillExecutionError (a cell raised), a dead kernel, a timeout
        if isinstance(err, pm.PapermillExecutionError):
            first = next((ln for ln in err.source.splitlines() if ln.strip()), "")
            why = f"cell {err.cell_index} ({first[:60]!r}) raised {err.ename}: {err.evalue}"
        else:
            why = f"{type(err).__name__}: {err}"
        failed = _keep_failed(staging, out, name, why)
        print(f"{PROG}: {name} failed: {why}; the previous result is unchanged, this run is in "
              f"{failed}", file=sys.stderr)
        return 1
    _tidy_for_readers(staging / f"{name}.ipynb")
    _publish(staging, out, name)
    return 0


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = parse_args(argv)
        return run(args, check(args))

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
