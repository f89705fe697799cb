"""The NICE recipe's Parzen-window noise level and validation batches (tools/paper_recipes/nice.py),
against closed forms and an independent float64 grid search."""

import math

import numpy as np
import pytest
import torch

from paper_recipes.nice import ValidationBatches, parzen_bandwidth, parzen_log_likelihood


def test_one_centre_gives_the_closed_form_variance():
    # one centre c: L(sigma) = -mean||x - c||^2 / (2 sigma^2) - d log sigma + const, maximised at
    # sigma^2 = mean||x - c||^2 / d
    g = torch.Generator().manual_seed(0)
    d = 5
    c = torch.randn(1, d, generator=g, dtype=torch.float64)
    x = c + 0.37 * torch.randn(400, d, generator=g, dtype=torch.float64)
    expected = math.sqrt(float(((x - c) ** 2).sum(1).mean()) / d)
    assert parzen_bandwidth(c, x) == pytest.approx(expected, rel=1e-5)


def test_matches_an_independent_grid_search_with_many_centres():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(60, 3)) * np.array([1.0, 2.0, 0.5])
    points = rng.normal(size=(40, 3)) * np.array([1.0, 2.0, 0.5])
    sq = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    sigmas = np.exp(np.linspace(np.log(0.05), np.log(5.0), 20001))

    def mean_log_density(s):
        logk = -sq / (2 * s**2) - 3 * np.log(s) - 1.5 * np.log(2 * np.pi) - np.log(len(centres))
        m = logk.max(1, keepdims=True)
        return float((m[:, 0] + np.log(np.exp(logk - m).sum(1))).mean())

    values = [mean_log_density(s) for s in sigmas]
    best = sigmas[int(np.argmax(values))]
    got = parzen_bandwidth(torch.from_numpy(centres), torch.from_numpy(points))
    assert got == pytest.approx(best, rel=2e-3)
    # and the likelihood it maximises is the mixture's, normalising constant included
    sq_t = torch.from_numpy(sq)
    assert parzen_log_likelihood(math.log(0.7), sq_t, 3) == pytest.approx(mean_log_density(0.7), rel=1e-10)


@pytest.mark.parametrize("bad", [
    dict(centres=torch.zeros(3), points=torch.zeros(2, 3)),
    dict(centres=torch.zeros(3, 2), points=torch.zeros(2, 3)),
    dict(centres=torch.full((3, 2), math.nan), points=torch.zeros(2, 2)),
])
def test_bad_input_is_named(bad):
    with pytest.raises(ValueError, match="centres|points"):
        parzen_bandwidth(**bad)


def test_validation_batches_cycle_through_shuffled_passes():
    data = torch.arange(10).float()[:, None]
    batches = ValidationBatches(data, 4, torch.Generator().manual_seed(0))
    first_pass = [batches.next_batch() for _ in range(3)]
    assert [len(b) for b in first_pass] == [4, 4, 2]
    assert sorted(torch.cat(first_pass)[:, 0].tolist()) == list(range(10))
    assert len(batches.next_batch()) == 4  # a new pass starts
