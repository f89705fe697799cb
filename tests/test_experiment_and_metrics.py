"""Metrics."""

from __future__ import annotations

import math

import pytest
import torch

from booktools.grids import grid_total_variation, normalize_on_grid
from ssm_lib import Gaussian, fisher_divergence, resolve_device

from .conftest import standard_error


def test_resolve_device():
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_fisher_divergence_between_gaussians(gen):
    # p = N(0, S), model score -Q x: F = 1/2 E|(Q - P) x|^2 = 1/2 tr((Q - P) S (Q - P)^T)
    s = torch.tensor([[1.0, 0.3], [0.3, 0.6]], dtype=torch.float64)
    p = Gaussian(torch.zeros(2, dtype=torch.float64), s)
    q = torch.tensor([[1.5, 0.0], [0.0, 1.0]], dtype=torch.float64)
    x = p.sample(100000, generator=gen)
    per = fisher_divergence(lambda y: -y @ q, p.score, x, reduction="none")
    diff = q - p.precision
    expected = 0.5 * torch.trace(diff @ s @ diff.T).item()
    assert abs(per.mean().item() - expected) < 4 * standard_error(per)


def test_normalize_on_grid_recovers_gaussian_normaliser():
    p = Gaussian(torch.tensor([0.2, -0.1]), torch.tensor([[0.5, 0.1], [0.1, 0.4]]))
    density, log_z = normalize_on_grid(p.unnormalized_log_prob, (-5, 5), (-5, 5), n=400)
    assert abs(log_z - p.log_normalizer) < 1e-3
    cell = (10 / 399) ** 2
    assert math.isclose(float(density.sum()) * cell, 1.0, rel_tol=1e-9)



def test_grid_total_variation_between_shifted_gaussians():
    # TV(N(a, I), N(b, I)) = 2 Phi(|a - b| / 2) - 1 (closed form)
    a, b = torch.tensor([0.0, 0.0], dtype=torch.float64), torch.tensor([0.6, -0.8], dtype=torch.float64)
    p = Gaussian(a, torch.eye(2, dtype=torch.float64))
    q = Gaussian(b, torch.eye(2, dtype=torch.float64))
    dp, _ = normalize_on_grid(p.log_prob, (-7, 7), (-7, 7), n=500)
    dq, _ = normalize_on_grid(q.log_prob, (-7, 7), (-7, 7), n=500)
    tv = grid_total_variation(dp, dq, (14 / 499) ** 2)
    expected = 2 * 0.5 * (1 + math.erf(float((a - b).norm()) / 2 / math.sqrt(2))) - 1
    assert abs(tv - expected) < 1e-4


def test_loglog_slope_and_standard_error(gen):
    from ssm_lib.metrics import loglog_slope, mean_and_standard_error

    x = [1e-3, 1e-2, 1e-1, 1.0]
    assert math.isclose(loglog_slope(x, [3.0 * v**-2 for v in x]), -2.0, rel_tol=1e-9)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="length"):
        loglog_slope([1.0, 2.0], [1.0])
    v = torch.randn(40000, generator=gen, dtype=torch.float64) * 2.0 + 1.0
    mean, se = mean_and_standard_error(v)
    assert abs(mean - 1.0) < 4 * se and math.isclose(se, 2.0 / 200.0, rel_tol=0.05)
