"""Oracle test for the UCI loader's observation noise (issue 19): one noise stream for the
three splits, so train, validation and test get different noise."""

from __future__ import annotations

from pathlib import Path

import torch

from paper_recipes.uci import load_uci

ROOT = Path(__file__).resolve().parents[1] / "data" / "uci"


def test_each_split_gets_its_own_noise():
    """Mutant: the noise generator restarting for every split (a fresh
    ``np.random.default_rng(noise_seed)`` per split), so validation and test rows get the same
    noise as the first training rows. Oracle: the noise is the difference between loads with
    ``noise_std=0.05`` and ``noise_std=0``; each split's noise must have standard deviation
    0.05, and the noise of the first rows of different splits must be uncorrelated (a shared
    stream would make them identical, correlation 1)."""
    clean = load_uci("redwine", ROOT, noise_std=0.0, dtype=torch.float64)
    noisy = load_uci("redwine", ROOT, noise_std=0.05, dtype=torch.float64)
    noise = {part: getattr(noisy, part) - getattr(clean, part) for part in ("train", "val", "test")}
    for part, eps in noise.items():
        assert abs(eps.std().item() / 0.05 - 1) < 0.05, (part, eps.std().item())
    n = min(e.shape[0] for e in noise.values())
    flat = {part: eps[:n].reshape(-1) for part, eps in noise.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        corr = torch.corrcoef(torch.stack([flat[a], flat[b]]))[0, 1].item()
        assert abs(corr) < 0.1, (a, b, corr)
