"""Execute the experiment notebooks with papermill: ``notebooks/<name>.md`` (jupytext MyST)
becomes ``experiments/<name>.ipynb`` with its outputs, figures and JSON.

Usage (``make reproduce`` calls it for the notebooks whose source or ``ssm_lib`` changed)::

    python tools/reproduce.py                       # every notebook, quick profile
    python tools/reproduce.py score_fields --profile full --device cuda --seed 1
    python tools/reproduce.py --list

Each notebook runs in a fresh ``python3`` kernel of this interpreter's environment, with the
output folder as working directory and the parameters ``profile``, ``device``, ``seed`` and
``output_dir = "."`` injected after its ``parameters`` cell, so that it writes
``experiments/figures/<name>/<key>.png`` and ``experiments/results/<name>.json``. A notebook
is written to ``experiments/<name>.ipynb`` only when every cell succeeded; a failing one is
kept as ``experiments/<name>.failed.ipynb`` and the script exits with status 1 after naming
the notebook, the cell and the error.

Template for a notebook (``notebooks/<name>.md``), which every experiment follows::

    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---

    # Title

    ```{code-cell} ipython3
    :tags: [parameters]

    profile = "quick"      # "quick" (2-core CPU, minutes) or "full" (one GPU, < 1 hour)
    device = "auto"        # "auto" picks CUDA when present; "cpu", "cuda", "cuda:1"
    seed = 0
    output_dir = "experiments"
    ```

    ```{code-cell} ipython3
    import ssm_lib
    from booktools.experiment import setup

    exp = setup("<name>", profile=profile, device=device, seed=seed, output_dir=output_dir)
    n_steps = exp.pick(quick=300, full=5000)      # sizes per profile
    ```

    ... exp.save_figure(fig, "f3_mixture_score")  # PNG + myst-nb glue (key used by chapters)
    ... exp.record(fisher=value)                  # results/<name>.json
    ... exp.check(value < 0.1, f"... {value:.3g} should be below 0.1")   # asserted claim

    ```{code-cell} ipython3
    # NBVAL_CHECK_OUTPUT
    print(f"Fisher divergence: {value:.3f}")      # compared by nbval with the papermill run
    ```

Rules for the ``# NBVAL_CHECK_OUTPUT`` cells (``make nbval`` re-executes every notebook and
compares their printed text with the stored one): print only rounded, seeded numbers (no
timings, no progress bars, no warnings, no figures), and make the computation behind them
deterministic (explicit generators from ``exp.generator(offset)``, fixed ``torch`` threads).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
PROFILES = ("quick", "full")
# The order in which ``reproduce`` runs the notebooks when none are named (others follow).
PREFERRED_ORDER = ("score_fields", "jacobian_cost", "dsm_variance", "ssm_variance", "learned_fields")


class ReproduceError(RuntimeError):
    """A notebook could not be executed; the message names it."""


def available_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    """Names of the experiment notebooks (``notebooks/<name>.md``), in running order."""
    names = sorted(p.stem for p in notebook_dir.glob("*.md"))
    first = [n for n in PREFERRED_ORDER if n in names]
    return first + [n for n in names if n not in first]


def parse_args(argv: list[str] | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> argparse.Namespace:
    """Parse and validate the command line; raises ``ValueError`` naming a bad argument."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebook names (default: all of them)")
    parser.add_argument("--profile", default="quick", help="quick (CPU, minutes) or full (GPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--seed", default="0", help="integer seed passed to every notebook")
    parser.add_argument("--output-dir", default=str(ROOT / "experiments"),
                        help="build folder for the executed notebooks (default: experiments/)")
    parser.add_argument("--timeout", type=int, default=3600, help="per-cell timeout in seconds")
    parser.add_argument("--list", action="store_true", help="print the notebook names and exit")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)

    if args.profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {args.profile!r}")
    try:
        args.seed = int(args.seed)
    except ValueError:
        raise ValueError(f"seed must be an integer, got {args.seed!r}") from None
    if not args.device or not isinstance(args.device, str):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {args.device!r}")
    known = available_notebooks(notebook_dir)
    names = []
    for raw in args.notebooks:
        # accept "score_fields", "notebooks/score_fields.md" and "experiments/score_fields.ipynb"
        name = Path(raw).name
        for suffix in (".ipynb", ".md"):
            name = name.removesuffix(suffix)
        if name not in known:
            raise ValueError(f"notebook {raw!r} is not one of {known} (in {notebook_dir})")
        names.append(name)
    args.notebooks = names or known
    args.output_dir = Path(args.output_dir)
    return args


def _environment_for_kernel() -> None:
    """Make the ``python3`` kernel start with this interpreter (the project's virtual
    environment) even when the environment is not activated."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + path
    share = str(Path(sys.prefix) / "share" / "jupyter")
    jp = os.environ.get("JUPYTER_PATH", "")
    if share not in jp.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = share + (os.pathsep + jp if jp else "")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # tqdm.auto warns once per kernel that ipywidgets is missing; its text bars work anyway
    warn = "ignore:IProgress not found"
    if warn not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), warn]))


def _failed_cell(nb_path: Path) -> str:
    """Describe the first cell of an executed notebook that raised (index and first line)."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # pragma: no cover - unreadable output
        return "an unknown cell"
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
            return f"code cell {code_index} (starting {first[:70]!r})"
    return "an unknown cell"


def run_notebook(name: str, *, profile: str, device: str, seed: int, output_dir: Path,
                 timeout: int = 3600, progress: bool = True,
                 notebook_dir: Path = NOTEBOOK_DIR) -> Path:
    """Execute ``notebook_dir/<name>.md`` into ``output_dir/<name>.ipynb``; returns that path.

    Raises :class:`ReproduceError` naming the notebook and the failing cell.
    """
    import jupytext
    import papermill as pm

    source = notebook_dir / f"{name}.md"
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / f"{name}.ipynb"
    partial = output_dir / f"{name}.running.ipynb"
    failed = output_dir / f"{name}.failed.ipynb"
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata.pop("jupytext", None)  # the .ipynb is a build product, not a paired file
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ReproduceError(f"notebook {name!r} ({source}) has no cell tagged 'parameters'")
    for stale in (final, failed):
        stale.unlink(missing_ok=True)
    bar = {"desc": f"{name:>15}", "leave": True} if progress else False
    try:
        pm.execute_notebook(
            nb, str(partial),
            parameters={"profile": profile, "device": device, "seed": seed, "output_dir": "."},
            kernel_name="python3", language="python", cwd=str(output_dir),
            progress_bar=bar, execution_timeout=timeout, log_output=False,
            request_save_on_cell_execute=False,
        )
    except Exception as err:  # PapermillExecutionError, kernel death, timeouts
        where = _failed_cell(partial) if partial.exists() else "start-up"
        if partial.exists():
            partial.replace(failed)
        detail = getattr(err, "ename", type(err).__name__)
        evalue = getattr(err, "evalue", str(err))
        raise ReproduceError(
            f"notebook {name!r} failed in {where}: {detail}: {evalue}\n"
            f"  source: {source}\n  executed copy with the traceback: {failed}") from err
    partial.replace(final)
    return final


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except ValueError as err:
        print(f"reproduce.py: error: {err}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(args.notebooks))
        return 0
    try:  # fail before starting any kernel when the device is not on this machine
        from ssm_lib.devices import resolve_device

        resolve_device(args.device)
    except ValueError as err:
        print(f"reproduce.py: error: {err}", file=sys.stderr)
        return 2
    _environment_for_kernel()
    from tqdm.auto import tqdm

    started = time.perf_counter()
    names = args.notebooks
    outer = tqdm(names, desc="notebooks", unit="nb", disable=args.no_progress or len(names) < 2,
                 position=0, leave=True)
    for name in outer:
        outer.set_postfix(running=name)
        t0 = time.perf_counter()
        try:
            path = run_notebook(name, profile=args.profile, device=args.device, seed=args.seed,
                                output_dir=args.output_dir, timeout=args.timeout,
                                progress=not args.no_progress)
        except ReproduceError as err:
            outer.close()
            print(f"\nreproduce.py: FAILED: {err}", file=sys.stderr)
            return 1
        tqdm.write(f"{name}: {time.perf_counter() - t0:.1f} s ({args.profile}) -> {path}")
    outer.close()
    print(f"reproduce.py: {len(names)} notebook(s) in {time.perf_counter() - started:.1f} s "
          f"({args.profile} profile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
