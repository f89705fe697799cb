"""The UCI loaders on the real files: shapes, md5, splits without leakage, whitening."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from paper_recipes.uci import drop_correlated, load_uci, read_uci, split_sizes

ROOT = Path(__file__).resolve().parents[1] / "data" / "uci"
EXPECTED = {"redwine": (1599, 11), "whitewine": (4898, 11), "parkinsons": (5875, 15)}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shapes_and_split_sizes(name):
    rows, cols = EXPECTED[name]
    d = load_uci(name, ROOT)
    n_train, n_val, n_test = split_sizes(rows)
    assert n_test == min(1000, rows // 10) and n_val == min(1000, (rows - n_test) // 10)
    assert d.train.shape == (n_train, cols) and d.val.shape == (n_val, cols)
    assert d.test.shape == (n_test, cols)
    assert d.train.dtype == torch.float32


@pytest.mark.parametrize("name", list(EXPECTED))
def test_whitening_fitted_on_training_rows(name):
    d = load_uci(name, ROOT, noise_std=0.0, dtype=torch.float64)
    x = d.train.numpy()
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(x.T @ x / x.shape[0], np.eye(x.shape[1]), atol=1e-8)
    # held-out rows are whitened with the training statistics, so theirs are only close
    assert np.abs(d.test.numpy().mean(0)).max() > 1e-6
    # with the noise: covariance I + 0.05^2 I up to sampling error
    n = load_uci(name, ROOT, dtype=torch.float64).train.numpy()
    cov = np.cov(n.T, bias=True)
    assert abs(np.trace(cov) / n.shape[1] - (1 + 0.05**2)) < 0.01


@pytest.mark.parametrize("name", list(EXPECTED))
def test_no_leakage_between_splits(name):
    d = load_uci(name, ROOT, noise_std=0.0, dtype=torch.float64)
    rows = {tuple(np.round(r, 8)) for r in d.train.numpy()}
    for part in (d.val, d.test):
        assert not any(tuple(np.round(r, 8)) in rows for r in part.numpy())
    # every raw row lands in exactly one split: the split sizes add up to the table
    assert d.train.shape[0] + d.val.shape[0] + d.test.shape[0] == EXPECTED[name][0]


def test_reproducible_and_parkinsons_columns():
    a, b = load_uci("redwine", ROOT), load_uci("redwine", ROOT)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    raw = read_uci("parkinsons", ROOT)[:, 3:]
    kept, idx = drop_correlated(raw)
    corr = np.abs(np.corrcoef(kept.T))
    np.fill_diagonal(corr, 0)
    assert kept.shape[1] == 15 and corr.max() <= 0.98 and len(idx) == 15


def test_md5_and_bad_input(tmp_path):
    bad = tmp_path / "winequality-red.csv"
    shutil.copy(ROOT / "winequality-red.csv", bad)
    with open(bad, "a") as fh:
        fh.write("1,2,3,4,5,6,7,8,9,10,11,12\n")
    with pytest.raises(ValueError, match="md5"):
        load_uci("redwine", tmp_path)
    with pytest.raises(ValueError, match="no file"):
        load_uci("whitewine", tmp_path)
    with pytest.raises(ValueError, match="name must be one of"):
        load_uci("iris", ROOT)


def test_dequantisation_stays_within_the_grid_gap():
    raw = read_uci("redwine", ROOT)[:, :-1]
    from paper_recipes.uci import dequantise

    out = dequantise(raw, np.random.default_rng(0))
    assert not np.shares_memory(out, raw) and np.array_equal(raw, read_uci("redwine", ROOT)[:, :-1])
    for j in range(raw.shape[1]):
        gap = np.median(np.diff(np.unique(raw[:, j])))
        noise = out[:, j] - raw[:, j]
        assert np.abs(noise).max() <= gap + 1e-12
        assert noise.std() > 0.4 * gap  # uniform on [-gap, gap] has sd gap / sqrt(3)
