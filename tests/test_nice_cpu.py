"""The NICE experiment's cpu profile (issue 24): the paper's data space and units on the shipped
MNIST digits, reduced only in width, epochs and evaluation sizes, each with its reason; the
notebook's hooks for the smoke run, resumable units and the committed run's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from booktools.records import load_record
from paper_recipes.images import load_mnist

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "nice_digits.md"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.M | re.S)


@pytest.fixture(scope="module")
def record():
    return load_record("nice_digits")


def test_the_cpu_profile_keeps_the_papers_space_depth_and_optimisation(record):
    assert "cpu" in record.profiles
    s = record.settings
    cpu = {k: v.values["cpu"] for k, v in s.items()}
    assert cpu["data"] == "mnist, the 10,000 shipped digits"
    same = ("dequantisation", "logit_alpha", "val_fraction", "n_couplings", "depth", "activation", "init",
            "optimizer", "lr", "batch_size", "ssm_projection", "dsm_heuristic", "dsm_weight_power",
            "val_every", "val_batch_size", "test_metrics")
    for key in same:
        assert not s[key].differs("cpu"), f"{key}: the cpu profile should keep the paper's value"
    assert 0.1 in cpu["dsm_sigmas"] and cpu["dsm_sigmas"] == s["dsm_sigmas"].values["full"]
    assert cpu["n_seeds"] >= 3  # the claims are paired differences over seeds


def test_each_cpu_reduction_has_a_measured_reason(record):
    s = record.settings
    for key in ("hidden", "epochs", "n_test_sm"):
        assert s[key].differs("cpu")
        assert s[key].values["cpu"] < s[key].paper
        assert "measured" in s[key].reasons["cpu"], key
    assert s["hidden"].values["cpu"] >= s["hidden"].values["quick"]
    assert s["epochs"].values["cpu"] > s["epochs"].values["quick"]


def test_the_split_the_cpu_reasons_describe(record):
    data = load_mnist("shipped")
    assert (len(data.pixels), data.dim, data.levels) == (10000, 784, 256)
    s = record.settings
    parts = data.split(n_test=s["n_test"].values["cpu"], val_fraction=s["val_fraction"].paper, seed=0)
    sizes = tuple(len(parts[k]) for k in ("train", "val", "test"))
    assert sizes == (8100, 900, 1000)
    assert "8,100 training and 900 validation" in s["data"].reasons["cpu"]


def test_the_notebook_has_the_smoke_resume_and_committed_hooks():
    text = NOTEBOOK.read_text()
    cells = CELL.findall(text)
    params = next(c for c in cells if c.startswith(":tags: [parameters]"))
    assert re.search(r"^smoke_steps = 0\b", params, re.M)
    assert "smoke_steps=smoke_steps" in text
    assert "exp.pick(" not in text  # pick() refuses the cpu profile
    for count in ("cfg.epochs", "steps_per_epoch", "cfg.n_test_sm", "cfg.n_val_track"):
        assert f"exp.limit({count})" in text, count
    assert "exp.time_estimate(" in text and "exp.run_units(" in text
    committed = [c for c in cells if "exp.show_committed()" in c]
    assert len(committed) == 1 and committed[0].strip() == "cpu = exp.show_committed()"
    assert "cpu.stale" in text and "STALE" in text
