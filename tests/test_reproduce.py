"""The experiment infrastructure is wired: tools/reproduce.py validates its arguments, every
notebook follows the template, and the Makefile runs papermill and nbval. Fast: no kernel."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.md"))


def _load_reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "tools" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reproduce = _load_reproduce()


@pytest.fixture
def notebook_dir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    for name in ("learned_fields", "score_fields", "extra"):
        (d / f"{name}.md").write_text("# x\n")
    return d


def test_unknown_profile_is_rejected(notebook_dir):
    with pytest.raises(ValueError, match="profile must be one of .*'fast'"):
        reproduce.parse_args(["--profile", "fast"], notebook_dir)


def test_unknown_notebook_is_rejected_by_name(notebook_dir):
    with pytest.raises(ValueError, match="notebook 'nope' is not one of"):
        reproduce.parse_args(["nope"], notebook_dir)


def test_bad_seed_is_rejected(notebook_dir):
    with pytest.raises(ValueError, match="seed must be an integer"):
        reproduce.parse_args(["--seed", "x"], notebook_dir)


def test_names_paths_and_order(notebook_dir):
    args = reproduce.parse_args([], notebook_dir)
    assert args.notebooks == ["score_fields", "learned_fields", "extra"]
    args = reproduce.parse_args(["notebooks/score_fields.md", "experiments/extra.ipynb"], notebook_dir)
    assert args.notebooks == ["score_fields", "extra"]
    assert args.profile == "quick" and args.device == "auto" and args.seed == 0


def test_main_exits_2_with_a_clear_message(capsys):
    assert reproduce.main(["--profile", "slow"]) == 2
    assert "profile must be one of" in capsys.readouterr().err
    assert reproduce.main(["no_such_notebook"]) == 2
    assert "no_such_notebook" in capsys.readouterr().err
    assert reproduce.main(["--device", "cuda:99"]) == 2
    assert "device='cuda:99' was requested" in capsys.readouterr().err
    assert reproduce.main(["--device", "abacus"]) == 2
    assert "device must be" in capsys.readouterr().err


def test_notebook_without_parameters_cell_fails_by_name(tmp_path):
    (tmp_path / "bare.md").write_text("---\njupytext:\n  text_representation:\n    format_name: myst\n"
                                      "---\n\n# Bare\n\n```{code-cell} ipython3\nx = 1\n```\n")
    with pytest.raises(reproduce.ReproduceError, match="'bare'.*no cell tagged 'parameters'"):
        reproduce.run_notebook("bare", profile="quick", device="cpu", seed=0,
                               output_dir=tmp_path / "out", notebook_dir=tmp_path)
    assert not (tmp_path / "out" / "bare.ipynb").exists()


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
    assert "# NBVAL_CHECK_OUTPUT" in code, "no cell marked for nbval"
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("# NBVAL_CHECK_OUTPUT"):
            for clock in ("elapsed(", "perf_counter", "time.time", "timeit", "monotonic"):
                assert clock not in cell.source, f"a cell compared by nbval must not print timings ({clock})"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_wires_reproduce_and_nbval():
    out = subprocess.run(["make", "-n", "-B", "--no-print-directory", "nbval"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "--nbval-lax" in out or not NOTEBOOKS
    out = subprocess.run(["make", "-n", "-B", "reproduce", "PROFILE=full"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    if NOTEBOOKS:
        assert "tools/reproduce.py" in out and "--profile full" in out
