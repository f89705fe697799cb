r"""The UCI tables of the paper's density-estimation experiments (Song et al. 2019, Sec. 5.1,
following Wenliang et al. 2019), loaded with their preprocessing.

:func:`load_uci` reads a file from a folder the caller names (by default the repository's
``data/uci``, ``paper_recipes.DATA_DIR / "uci"``), checks its md5, and returns
train/validation/test splits:

1. **Columns.** Wines: the 11 physico-chemical columns (quality dropped). Parkinsons: the
   columns after ``subject#``, ``age`` and ``sex``, then, repeatedly, the first column whose
   absolute correlation with another exceeds 0.98 is dropped (15 columns remain).
2. **Dequantisation** (wines, whose columns are recorded on grids): each column gets uniform
   noise on :math:`[-\delta, \delta]`, :math:`\delta` the median gap between its sorted
   distinct values.
3. **Split.** Rows shuffled with ``split_seed``; test :math:`\min(1000, \lfloor N/10\rfloor)`
   rows, validation :math:`\min(1000, \lfloor (N - n_\text{test})/10\rfloor)`, the rest train.
4. **PCA whitening** fitted on the training rows only, :math:`x \mapsto W^\top (x - \mu)` with
   :math:`W = V S^{-1}\sqrt{n}` from the SVD :math:`X - \mu = U S V^\top`, so the whitened
   training rows have zero mean and identity covariance (divisor :math:`n`).
   (The paper's code fits the whitening on all rows, test rows included.)
5. **Noise** :math:`\mathcal N(0, 0.05^2)` added once to every split (``noise_seed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import DATA_DIR
from ._checks import check_count, check_float_dtype, check_nonnegative
from .files import verify_md5

__all__ = [
    "UCI_FILES", "UCI_LABELS", "UCISplits", "dequantise", "drop_correlated", "fit_whitening", "load_uci",
    "read_uci", "split_sizes",
]

#: name -> (file, md5, separator, header lines)
UCI_FILES = {
    "redwine": ("winequality-red.csv", "18625f38d0ab8a40b7d642ae69679a80", ",", 0),
    "whitewine": ("winequality-white.csv", "1ee2565d70413ab16182bae17ce0e82a", ",", 0),
    "parkinsons": ("parkinsons_updrs.data", "4f97310e2c9fbeedb72e8a37822fee45", ",", 1),
}
#: Display names used in the book.
UCI_LABELS = {"redwine": "RedWine", "whitewine": "WhiteWine", "parkinsons": "Parkinsons"}


@dataclass
class UCISplits:
    """Whitened splits (float tensors) and the whitening ``mean`` and ``matrix`` (numpy)."""

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    mean: np.ndarray
    matrix: np.ndarray
    columns: int


def read_uci(name: str, root: str | Path | None = None) -> np.ndarray:
    """The raw table (float64, before preprocessing) after checking its md5; ``root`` is the
    folder holding the tables (default: the repository's ``data/uci``)."""
    if name not in UCI_FILES:
        raise ValueError(f"name must be one of {tuple(UCI_FILES)}, got {name!r}")
    fname, md5, sep, header = UCI_FILES[name]
    root = DATA_DIR / "uci" if root is None else root
    path = Path(root) / fname
    if not path.is_file():
        raise ValueError(f"root: no file {fname} in {Path(root).resolve()} (pass the folder that holds "
                         f"the UCI tables, e.g. the repository's data/uci)")
    verify_md5(path, md5)
    return np.loadtxt(path, delimiter=sep, skiprows=header, dtype=np.float64)


def drop_correlated(data: np.ndarray, threshold: float = 0.98) -> tuple[np.ndarray, list[int]]:
    """Drop, one at a time, the first column whose absolute correlation with another column
    exceeds ``threshold``. Returns the table and the kept column indices."""
    keep = list(range(data.shape[1]))
    while True:
        corr = np.abs(np.corrcoef(data[:, keep].T))
        np.fill_diagonal(corr, 0.0)
        bad = np.where((corr > threshold).any(1))[0]
        if bad.size == 0:
            return data[:, keep], keep
        del keep[int(bad[0])]


def dequantise(data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise on [-gap, gap] per column, gap the median spacing of its distinct values
    (a new array; the input is not modified)."""
    out = data.copy()
    for j in range(out.shape[1]):
        values = np.unique(out[:, j])
        gap = float(np.median(np.diff(values))) if values.size > 1 else 0.0
        out[:, j] += rng.uniform(-gap, gap, size=out.shape[0])
    return out


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, validation, test) sizes of the paper's split of ``n`` rows."""
    n_test = min(1000, n // 10)
    n_val = min(1000, (n - n_test) // 10)
    return n - n_test - n_val, n_val, n_test


def fit_whitening(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, W)`` of PCA whitening fitted on ``train``: ``(x - mean) @ W`` has zero mean and
    identity covariance (divisor n) on the training rows."""
    mean = train.mean(0)
    _, s, vt = np.linalg.svd(train - mean, full_matrices=False)
    return mean, vt.T / s * np.sqrt(train.shape[0])


def load_uci(name: str, root: str | Path | None = None, *, split_seed: int = 2019, dequantise_seed: int = 0,
             noise_seed: int = 1, noise_std: float = 0.05, dtype: torch.dtype = torch.float32) -> UCISplits:
    """Load ``name`` (``"redwine"``, ``"whitewine"``, ``"parkinsons"``) from the folder
    ``root`` (default: the repository's ``data/uci``) with the preprocessing of the module
    docstring. ``noise_std`` (a finite number >= 0) is the standard deviation of step 5; ``0``
    skips it. ``dtype``: a floating torch dtype. Bad arguments are a ``ValueError`` naming them,
    raised before the file is read."""
    if name not in UCI_FILES:
        raise ValueError(f"name must be one of {tuple(UCI_FILES)}, got {name!r}")
    split_seed = check_count(split_seed, "split_seed", 0)
    dequantise_seed = check_count(dequantise_seed, "dequantise_seed", 0)
    noise_seed = check_count(noise_seed, "noise_seed", 0)
    noise_std = check_nonnegative(noise_std, "noise_std")
    dtype = check_float_dtype(dtype, "dtype")
    raw = read_uci(name, root)
    if name == "parkinsons":
        data, _ = drop_correlated(raw[:, 3:], 0.98)
    else:
        data = dequantise(raw[:, :-1], np.random.default_rng(dequantise_seed))
    order = np.random.default_rng(split_seed).permutation(data.shape[0])
    data = data[order]
    n_train, n_val, _ = split_sizes(data.shape[0])
    train, val, test = data[:n_train], data[n_train:n_train + n_val], data[n_train + n_val:]
    mean, w = fit_whitening(train)
    rng = np.random.default_rng(noise_seed)

    def prep(part: np.ndarray) -> torch.Tensor:
        white = (part - mean) @ w
        if noise_std > 0:
            white = white + noise_std * rng.standard_normal(white.shape)
        return torch.as_tensor(white, dtype=dtype)

    return UCISplits(name, prep(train), prep(val), prep(test), mean, w, data.shape[1])
