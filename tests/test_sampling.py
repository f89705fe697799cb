"""Langevin samplers with exact Gaussian scores."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import Gaussian, annealed_langevin_dynamics, langevin_dynamics
from ssm_lib.sampling import SamplerDivergedError


def test_langevin_reproduces_gaussian_mean_and_discretised_covariance(gen):
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
    p = Gaussian(torch.tensor([1.0, -2.0], dtype=torch.float64), cov)
    eps, n = 0.02, 10000
    x0 = torch.zeros(n, 2, dtype=torch.float64)
    x = langevin_dynamics(p.score, x0, step_size=eps, n_steps=600, generator=gen)
    # The unadjusted chain x' = x - eps P (x - mu) + sqrt(2 eps) z is itself Gaussian at
    # stationarity, with covariance C solving C = (I - eps P) C (I - eps P) + 2 eps I, i.e.
    # C = Sigma (I - eps P / 2)^{-1}; it tends to Sigma as eps -> 0.
    eye = torch.eye(2, dtype=torch.float64)
    c_exact = cov @ torch.linalg.inv(eye - 0.5 * eps * p.precision)
    emp_cov = torch.cov(x.T)
    assert (x.mean(0) - p.mean).abs().max() < 4 * (torch.diagonal(c_exact).max() / n) ** 0.5
    assert (emp_cov - c_exact).abs().max() < 4 * (2 / n) ** 0.5 * c_exact.abs().max()
    assert torch.equal(x0, torch.zeros(n, 2, dtype=torch.float64))  # input untouched


def test_langevin_trajectory_and_reproducibility():
    p = Gaussian(torch.zeros(2), torch.eye(2))
    x0 = torch.ones(5, 2)
    a = langevin_dynamics(p.score, x0, step_size=0.1, n_steps=4, return_trajectory=True,
                          generator=torch.Generator().manual_seed(0))
    b = langevin_dynamics(p.score, x0, step_size=0.1, n_steps=4, generator=torch.Generator().manual_seed(0))
    assert a.shape == (5, 5, 2)
    assert torch.equal(a[0], x0) and torch.equal(a[-1], b)


def test_langevin_divergence_names_the_step():
    with pytest.raises(SamplerDivergedError, match="step"):
        langevin_dynamics(lambda x: 1e300 * x, torch.ones(2, 2, dtype=torch.float64), step_size=1.0,
                          n_steps=10)


def test_annealed_langevin_targets_the_data_gaussian(gen):
    # The noise-conditional score of N(mu, s^2 I) perturbed at level sigma is that of
    # N(mu, (s^2 + sigma^2) I); annealing down to a small sigma samples close to the data law.
    mu, s2 = torch.tensor([2.0, -1.0], dtype=torch.float64), 0.5

    def score(x, sigma):
        return -(x - mu) / (s2 + sigma[:, None] ** 2)

    sigmas = torch.logspace(0, -2, 8, dtype=torch.float64).tolist()
    x0 = 3 * torch.randn(20000, 2, generator=gen, dtype=torch.float64)
    x = annealed_langevin_dynamics(score, x0, sigmas=sigmas, step_size=2e-5, n_steps_each=100,
                                   generator=gen)
    assert (x.mean(0) - mu).abs().max() < 0.03
    assert (x.var(0) - s2).abs().max() < 0.05


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"step_size": 0.0, "n_steps": 3}, "step_size"),
    ({"step_size": 0.1, "n_steps": 0}, "n_steps"),
])
def test_langevin_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        langevin_dynamics(lambda x: -x, torch.zeros(2, 2), **kwargs)


def test_annealed_bad_sigmas():
    with pytest.raises(ValueError, match="sigmas"):
        annealed_langevin_dynamics(lambda x, s: -x, torch.zeros(2, 2), sigmas=[0.1, 1.0],
                                   step_size=0.1, n_steps_each=2)


def test_final_denoising_step_gives_tweedies_posterior_mean(gen):
    # Data N(mu, s2); at noise level sigma the noisy law is N(mu, s2 + sigma^2). Starting the
    # chain at that law (stationary, tiny steps), the denoised samples are Tweedie's posterior
    # means E[x | x_noisy] = mu + s2 / (s2 + sigma^2) (x_noisy - mu), of variance
    # s2^2 / (s2 + sigma^2): 1/6 here, against 3/2 without the final step.
    mu, s2, sigma = 1.0, 0.5, 1.0

    def score(x, sig):
        return -(x - mu) / (s2 + sig[:, None] ** 2)

    n = 40000
    x0 = mu + (s2 + sigma**2) ** 0.5 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    x = annealed_langevin_dynamics(score, x0, sigmas=[sigma], step_size=1e-4, n_steps_each=1,
                                   generator=gen)
    var = s2**2 / (s2 + sigma**2)
    assert abs(x.mean().item() - mu) < 4 * (var / n) ** 0.5
    assert abs(x.var().item() - var) < 4 * var * (2 / n) ** 0.5
    raw = annealed_langevin_dynamics(score, x0, sigmas=[sigma], step_size=1e-4, n_steps_each=1,
                                     generator=gen, denoise=False)
    assert abs(raw.var().item() - (s2 + sigma**2)) < 4 * (s2 + sigma**2) * (2 / n) ** 0.5
