"""Annealed importance sampling of the implicit-VAE recipes (paper_recipes.vae) against a
linear-Gaussian decoder, whose marginal likelihood is known:
z ~ N(0, I), x | z ~ N(W z + b, s^2 I)  =>  x ~ N(b, W W^T + s^2 I)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paper_recipes.vae import ais_log_likelihood, sigmoid_schedule

Z_DIM, X_DIM, SIGMA = 3, 6, 0.4


def _model(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = 1.3 * torch.randn(X_DIM, Z_DIM, generator=g, dtype=torch.float64)
    b = 0.7 * torch.randn(X_DIM, generator=g, dtype=torch.float64)

    def log_likelihood(x, z):  # (B, x_dim), (B, C, z_dim) -> (B, C)
        mean = z @ w.T + b
        r = x.unsqueeze(1) - mean
        return (-0.5 * (r**2).sum(-1) / SIGMA**2 - X_DIM * math.log(SIGMA)
                - 0.5 * X_DIM * math.log(2 * math.pi))

    cov = w @ w.T + SIGMA**2 * torch.eye(X_DIM, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, covariance_matrix=cov)
    x = b + torch.randn(8, X_DIM, generator=g, dtype=torch.float64) @ \
        torch.linalg.cholesky(cov).T
    return log_likelihood, x, exact.log_prob(x)


def test_sigmoid_schedule_matches_the_official_formula():
    s = sigmoid_schedule(5)
    t = np.linspace(-4, 4, 5)
    raw = 1 / (1 + np.exp(-t))
    assert s[0] == 0 and s[-1] == 1
    np.testing.assert_allclose(s, (raw - raw[0]) / (raw[-1] - raw[0]))
    np.testing.assert_array_equal(sigmoid_schedule(1), [0.0, 1.0])


def test_ais_matches_the_analytic_marginal_likelihood():
    log_likelihood, x, exact = _model()
    est, info = ais_log_likelihood(x, log_likelihood, Z_DIM, n_temperatures=1000, n_chains=32, n_leapfrog=5,
                                   step_size=0.05, generator=torch.Generator().manual_seed(1))
    assert est.dtype == torch.float64 and est.shape == (8,)
    # the posterior is sharp (s = 0.4, |W| ~ 1.3): the prior alone is off by nats (test below);
    # one image's estimate has a Monte Carlo spread of about 0.1 nats here, their mean less
    err = est - exact
    assert abs(err.mean().item()) < 0.08 and err.abs().max().item() < 0.3, err
    assert 0.3 < info["acceptance"] <= 1.0


def test_one_temperature_is_importance_sampling_from_the_prior_and_is_looser():
    log_likelihood, x, exact = _model()
    est, _ = ais_log_likelihood(x, log_likelihood, Z_DIM, n_temperatures=1, n_chains=16, n_leapfrog=1,
                                generator=torch.Generator().manual_seed(2))
    assert (exact - est).mean().item() > 0.5       # the prior is a poor proposal here


def test_bad_arguments_are_named():
    log_likelihood, x, _ = _model()
    with pytest.raises(ValueError, match="n_chains"):
        ais_log_likelihood(x, log_likelihood, Z_DIM, n_temperatures=3, n_chains=0, n_leapfrog=2)
    with pytest.raises(ValueError, match="x must be"):
        ais_log_likelihood(x[0], log_likelihood, Z_DIM, n_temperatures=3, n_chains=2, n_leapfrog=2)
    with pytest.raises(ValueError, match="step_size"):
        ais_log_likelihood(x, log_likelihood, Z_DIM, n_temperatures=3, n_chains=2, n_leapfrog=2, step_size=0)
    with pytest.raises(ValueError, match="shape"):
        ais_log_likelihood(x, lambda x, z: log_likelihood(x, z).sum(-1), Z_DIM, n_temperatures=3,
                           n_chains=2, n_leapfrog=2)
