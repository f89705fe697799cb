"""tools/reproduce.py: mistakes end in one line and status 2 before any kernel starts; a
successful run publishes its notebook, figures and JSON together; a failed or interrupted run
(a real subprocess and a real signal) leaves the previous result untouched and its own outputs
apart, marked; every experiment notebook follows the template."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import sigint_as_in_a_terminal

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.md"))
SCRIPT = ROOT / "tools" / "reproduce.py"

_spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
reproduce = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reproduce)

TOY = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Toy

```{{code-cell}} ipython3
:tags: [parameters]
profile = "quick"
device = "auto"
seed = 0
output_dir = "experiments"
```

```{{code-cell}} ipython3
import os, time
from booktools.experiment import setup

exp = setup("toy", profile=profile, device="cpu", seed=seed, output_dir=output_dir)
(exp.figure_dir / "{figure}.png").write_text("{tag}")
exp.record(tag="{tag}", kernel_pid=os.getpid())
```

```{{code-cell}} ipython3
{last}
```
"""


def _toy(notebook_dir: Path, tag: str, last: str = "print('done')", figure: str = "fig") -> None:
    notebook_dir.mkdir(exist_ok=True)
    (notebook_dir / "toy.md").write_text(TOY.format(tag=tag, last=last, figure=figure))


def _command(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "toy", "--notebook-dir", str(tmp_path / "nb"),
            "--output-dir", str(tmp_path / "out"), "--device", "cpu", *extra]


def _published(out: Path) -> tuple[str, list[str], str]:
    """(the tag in the results JSON, the figure files, the executed notebook's last output)."""
    tag = json.loads((out / "results" / "toy.json").read_text())["tag"]
    figures = sorted(p.name for p in (out / "figures" / "toy").iterdir())
    nb = json.loads((out / "toy.ipynb").read_text())
    return tag, figures, json.dumps(nb["cells"][-1]["outputs"])


# --- mistakes: one line, status 2, nothing run ---------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["nope"], "no notebook 'nope'"),
    (["toy", "--profile", "fast"], "profile must be one of"),
    (["toy", "--device", "abacus"], "device"),
    (["toy", "--device", "cuda:99"], "device"),
    (["toy", "--seed", "x"], "invalid int value"),
    (["toy", "--bogus"], "unrecognized arguments"),
])
def test_a_mistake_is_one_line_and_status_2(tmp_path, capsys, args, message):
    _toy(tmp_path / "nb", "x")
    code = reproduce.main([*args, "--notebook-dir", str(tmp_path / "nb"),
                           "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / ".running").exists()


def test_an_output_location_that_is_a_file_or_unwritable_is_found_first(tmp_path, capsys):
    _toy(tmp_path / "nb", "x")
    (tmp_path / "file").write_text("")
    base = ["toy", "--notebook-dir", str(tmp_path / "nb"), "--device", "cpu"]
    assert reproduce.main([*base, "--output-dir", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert reproduce.main([*base, "--output-dir", str(locked / "out")]) == 2
        assert "cannot be written" in capsys.readouterr().err


# --- real runs -----------------------------------------------------------------------------

def test_success_publishes_and_a_failure_keeps_the_last_good_result(tmp_path):
    out = tmp_path / "out"
    _toy(tmp_path / "nb", "good", figure="first")
    run = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert _published(out)[:2] == ("good", ["first.png"])
    assert not (out / ".running" / "toy").exists()

    _toy(tmp_path / "nb", "bad", last="raise ValueError('boom')", figure="second")
    run = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=600)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "ValueError: boom" in run.stderr and "toy failed" in run.stderr
    assert _published(out)[:2] == ("good", ["first.png"])  # untouched, not mixed
    failed = out / "failed" / "toy"
    assert "raise ValueError('boom')" in (failed / "FAILED.txt").read_text()
    assert json.loads((failed / "results" / "toy.json").read_text())["tag"] == "bad"
    assert (failed / "toy.ipynb").exists() and (failed / "figures" / "toy" / "second.png").exists()

    _toy(tmp_path / "nb", "new", figure="third")  # a later success replaces all of it
    run = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert _published(out)[:2] == ("new", ["third.png"]) and not failed.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_keeps_the_last_good_result(tmp_path, signum):
    out = tmp_path / "out"
    (out / "figures" / "toy").mkdir(parents=True)  # a previous good result
    (out / "figures" / "toy" / "fig.png").write_text("good")
    (out / "results").mkdir()
    (out / "results" / "toy.json").write_text('{"tag": "good"}')
    (out / "toy.ipynb").write_text('{"cells": [{"outputs": ["good"]}]}')
    before = _published(out)

    _toy(tmp_path / "nb", "partial", last="time.sleep(300)", figure="other")
    proc = subprocess.Popen(_command(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=sigint_as_in_a_terminal)
    running = out / ".running" / "toy" / "results" / "toy.json"
    deadline = time.monotonic() + 300
    while not running.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running.exists(), "the run never reached its last cell"
    time.sleep(0.5)
    kernel_pid = json.loads(running.read_text())["kernel_pid"]
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "interrupted" in stderr
    assert _published(out) == before
    failed = out / "failed" / "toy"
    assert (failed / "FAILED.txt").read_text().strip() == "interrupted"
    assert json.loads((failed / "results" / "toy.json").read_text())["tag"] == "partial"
    for _ in range(50):  # the kernel was shut down with the run
        if not Path(f"/proc/{kernel_pid}").exists():
            break
        time.sleep(0.2)
    else:
        os.kill(kernel_pid, signal.SIGKILL)
        pytest.fail("the kernel outlived the interrupted run")


# --- the experiment notebooks --------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_follows_the_template(path):
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec python3"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for name in ("profile", "device", "seed", "output_dir"):
        assert re.search(rf"^{name}\s*=", params[0].source, re.M), f"parameter {name} missing"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(rf"setup\(\s*['\"]{path.stem}['\"]", code), "setup('<name>', ...) missing"
    assert "# NBVAL_CHECK_OUTPUT" in code, "no cell marked for the reference comparison"
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("# NBVAL_CHECK_OUTPUT"):
            for clock in ("elapsed(", "perf_counter", "time.time", "timeit", "monotonic"):
                assert clock not in cell.source, f"a compared cell must not print timings ({clock})"


# --- issue 24: the cpu profile, the smoke run, results and progress of long runs -----------

SMOKE_TOY = TOY.replace('output_dir = "experiments"\n',
                        'output_dir = "experiments"\nsmoke_steps = 0\n').replace(
    "exp = setup(\"toy\", profile=profile, device=\"cpu\", seed=seed, output_dir=output_dir)",
    "exp = setup(\"toy\", profile=profile, device=\"cpu\", seed=seed, output_dir=output_dir, "
    "smoke_steps=smoke_steps)")

SMOKE_LAST = """\
from booktools.runs import RunStore, Fingerprint, run_units
steps = exp.limit(1000)
exp.time_estimate("train", seconds_per_step=0.5, steps=1000)
store = RunStore("toy", profile, fingerprint=Fingerprint("l", "r", "n", "s"))
run_units([{"seed": 0}, {"seed": 1}], lambda u: {"steps": steps}, store)
exp.record(steps=steps)
"""


@pytest.mark.parametrize("args, message", [
    (["--smoke-steps", "-1"], "--smoke-steps must be a non-negative integer"),
    (["--smoke-steps", "2"], "--smoke-steps: "),
    (["--smoke-steps", "two"], "argument --smoke-steps: invalid int value"),
    (["--profile", "cpu"], "--profile cpu: experiment 'toy' has no record"),
    (["--profile", "medium"], "--profile medium: profile must be one of ('quick', 'full', 'cpu')"),
])
def test_issue24_mistakes_name_the_argument(tmp_path, capsys, args, message):
    _toy(tmp_path / "nb", "x")  # declares no smoke_steps
    code = reproduce.main(["toy", *args, "--notebook-dir", str(tmp_path / "nb"),
                           "--output-dir", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    if "does not declare" in err:
        assert "does not declare smoke_steps in its parameters cell" in err


def test_issue24_results_and_progress_locations_are_checked_first(tmp_path, capsys):
    _toy(tmp_path / "nb", "x")
    (tmp_path / "file").write_text("")
    base = ["toy", "--notebook-dir", str(tmp_path / "nb"), "--output-dir", str(tmp_path / "out"),
            "--device", "cpu"]
    assert reproduce.main([*base, "--results-dir", str(tmp_path / "file")]) == 2
    assert "--results-dir" in capsys.readouterr().err
    assert reproduce.main([*base, "--progress-file", str(tmp_path)]) == 2
    assert "--progress-file" in capsys.readouterr().err


def test_declares_smoke_steps_reads_the_parameters_cell_only(tmp_path):
    (tmp_path / "a.md").write_text(SMOKE_TOY.format(tag="t", last="", figure="f"))
    (tmp_path / "b.md").write_text(TOY.format(tag="t", last="smoke_steps = 0", figure="f"))
    assert reproduce.declares_smoke_steps(tmp_path / "a.md")
    assert not reproduce.declares_smoke_steps(tmp_path / "b.md")  # declared elsewhere: not support


def test_a_smoke_run_cuts_loops_estimates_time_and_reports_units(tmp_path):
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "toy.md").write_text(SMOKE_TOY.format(tag="smoke", last=SMOKE_LAST, figure="f"))
    progress = tmp_path / "progress.log"
    run = subprocess.run(_command(tmp_path, "--profile", "full", "--smoke-steps", "2",
                                  "--results-dir", str(tmp_path / "res"),
                                  "--progress-file", str(progress)),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "out" / "results" / "toy.json").read_text())
    assert data["steps"] == 2 and data["meta"]["smoke_steps"] == 2 and data["meta"]["profile"] == "full"
    assert data["time_estimates"]["train"]["seconds"] == 500.0 and data["time_estimate_total_s"] == 500.0
    assert sorted(p.name for p in (tmp_path / "res" / "full" / "toy").iterdir()) == [
        "seed=0.json", "seed=1.json"]
    assert "toy/full: [2/2] seed=1 done in" in progress.read_text()
    assert "toy: toy/full: [1/2] seed=0 done in" in run.stderr  # followed onto the terminal
    nb_json = json.loads((tmp_path / "out" / "toy.ipynb").read_text())
    assert "[estimate] train: 500 ms/step x 1000 steps = 8.33 min" in json.dumps(nb_json)
    assert "it/s" not in json.dumps(nb_json)  # no progress bar in the rendered notebook


_spec_smoke = importlib.util.spec_from_file_location("smoke_full", ROOT / "tools" / "smoke_full.py")
smoke_full = importlib.util.module_from_spec(_spec_smoke)
_spec_smoke.loader.exec_module(smoke_full)


@pytest.mark.parametrize("args, message", [
    (["--output-dir", str(ROOT / "experiments" / "smoke")], "--output-dir"),
    (["--output-dir", str(ROOT / "results")], "inside results/"),
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
    (["plain"], "plain: no smoke_steps in the parameters cell (notebooks that support the smoke run: toy)"),
])
def test_smoke_full_mistakes_are_one_line(tmp_path, capsys, args, message):
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "toy.md").write_text(SMOKE_TOY.format(tag="t", last="", figure="f"))
    (nb / "plain.md").write_text(TOY.format(tag="t", last="", figure="f"))
    base = ["--notebook-dir", str(nb), "--output-dir", str(tmp_path / "scratch")]
    assert smoke_full.main([*base, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_smoke_full_prints_one_line_per_notebook(tmp_path, capsys):
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "toy.md").write_text(SMOKE_TOY.format(tag="t", last=SMOKE_LAST, figure="f"))
    (nb / "bad.md").write_text(SMOKE_TOY.format(tag="t", last="raise RuntimeError('shape (2, 3)')",
                                                figure="f"))
    (nb / "plain.md").write_text(TOY.format(tag="t", last="", figure="f"))  # not supported: skipped
    assert smoke_full.supporting_notebooks(nb) == ["bad", "toy"]
    code = smoke_full.main(["--notebook-dir", str(nb), "--output-dir", str(tmp_path / "scratch")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1 and len(lines) == 2, lines
    assert re.match(r"^bad +FAILED +[\d.]+ s +reproduce.py: bad failed: cell \d+ .*RuntimeError: shape "
                    r"\(2, 3\)", lines[0]), lines[0]
    assert re.match(r"^toy +ok +[\d.]+ s +full run estimated 8.3 min on cpu \(1 phases\)$",
                    lines[1]), lines[1]
    assert (tmp_path / "scratch" / "runs" / "full" / "toy" / "seed=1.json").is_file()
    # side by side (make test: --jobs $(JOBS)): the same lines, in the order the runs finish
    code = smoke_full.main(["--notebook-dir", str(nb), "--output-dir", str(tmp_path / "scratch2"),
                            "--jobs", "2"])
    both = sorted(capsys.readouterr().out.strip().splitlines())
    assert code == 1 and [ln.split()[:2] for ln in both] == [["bad", "FAILED"], ["toy", "ok"]], both


def test_make_routes_the_cpu_profile_and_the_smoke_run():
    """``make reproduce PROFILE=cpu`` runs reproduce-cpu (resumable, progress file, results/cpu),
    ``make smoke-full`` writes into a scratch folder (dry runs: nothing executed)."""
    def dry(*args: str) -> str:
        run = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    out = dry("reproduce", "PROFILE=cpu", "CPU_NOTEBOOKS=dkef_uci nice_digits", "CPU_JOBS=2")
    assert "-k -j2 cpu-run/dkef_uci cpu-run/nice_digits" in out
    for name in ("dkef_uci", "nice_digits"):
        assert re.search(rf"tools/reproduce.py {name} --profile cpu .*--output-dir results/cpu "
                         rf"\\\s+--progress-file results/cpu/logs/{name}.progress 2>&1 \| tee -a "
                         rf"results/cpu/logs/{name}.log", out, re.S), out
    smoke = dry("smoke-full")
    assert re.search(r"tools/smoke_full.py --steps 2 --device cpu --output-dir _build/smoke-full --jobs \d+",
                     smoke), smoke
    # make test includes the full-profile smoke run
    test_line = next(ln for ln in (ROOT / "Makefile").read_text().splitlines() if ln.startswith("test:"))
    assert "smoke-full" in test_line.split()
