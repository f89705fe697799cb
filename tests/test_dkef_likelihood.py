"""DKEF's one-call held-out log-likelihood (standard error, ESS) and its approximate Langevin
sampler, against cases with a known answer: with alpha = 0 the density is the base Gaussian
N(0, sigma0^2 I), so log Z = 0, log p is known in closed form and the importance weights of a
Gaussian proposal have a known second moment."""

from __future__ import annotations

import math

import pytest
import torch

from ssm_lib.dkef import (
    DKEF,
    effective_sample_size_from_se,
    heldout_log_likelihood,
    log_normalizer,
    sample_langevin,
)

F64 = torch.float64


def _model(dim: int = 3, base_std: float = 1.5, alpha: float = 0.0, seed: int = 0) -> DKEF:
    g = torch.Generator().manual_seed(seed)
    model = DKEF(torch.randn(4, dim, generator=g, dtype=F64), n_kernels=1, hidden=4, base_std=base_std,
                 generator=g)
    with torch.no_grad():
        model.alpha.copy_(alpha * torch.randn(4, generator=g, dtype=F64))
    return model


def _gaussian_log_prob(x: torch.Tensor, std: float) -> torch.Tensor:
    d = x.shape[1]
    return -0.5 * (x * x).sum(1) / std**2 - 0.5 * d * math.log(2 * math.pi * std**2)


def test_alpha_zero_gives_the_base_gaussian_log_likelihood_exactly():
    model = _model()
    x = 0.7 + 2.0 * torch.randn(300, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    result = heldout_log_likelihood(model, x, n_samples=1000, generator=torch.Generator().manual_seed(2))
    rows = _gaussian_log_prob(x, 1.5)
    # the proposal is the base density, so every weight is 1: log Z-hat = 0, its se = 0, ESS = N
    assert result.log_z == pytest.approx(0.0, abs=1e-12) and result.log_z_standard_error == pytest.approx(0.0)
    assert result.ess == pytest.approx(1000.0)
    assert result.mean == pytest.approx(rows.mean().item(), rel=1e-12)
    assert result.standard_error == pytest.approx((rows.std() / math.sqrt(300)).item(), rel=1e-9)


def test_the_ess_of_a_mismatched_proposal_matches_its_known_second_moment():
    # p = N(0, a^2 I), q = N(0, b^2 I): E_q[w^2] = (b^2 / (a sqrt(2 b^2 - a^2)))^d, E_q[w] = 1,
    # so ESS / N -> 1 / E_q[w^2] (0.81 here; 1 would mean a uniform-weight answer)
    a, b, d, n = 1.5, 2.0, 3, 40_000
    model = _model(dim=d, base_std=a)
    x = torch.randn(50, d, generator=torch.Generator().manual_seed(3), dtype=F64)
    result = heldout_log_likelihood(model, x, n_samples=n, proposal_std=b,
                                    generator=torch.Generator().manual_seed(4))
    second_moment = (b**2 / (a * math.sqrt(2 * b**2 - a**2))) ** d
    assert result.ess / n == pytest.approx(1 / second_moment, rel=0.03)
    assert abs(result.log_z) < 4 * result.log_z_standard_error + 1e-12  # log Z = 0
    # the standard error combines the rows' spread and log Z's
    assert result.standard_error == pytest.approx(math.hypot(result.rows_standard_error,
                                                             result.log_z_standard_error))
    assert result.standard_error > result.rows_standard_error * (1 + 1e-4)


def test_the_ess_equals_the_weights_ess_of_the_same_draws():
    model = _model(alpha=2.0)
    n = 5000
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    log_z, se = log_normalizer(model, n, generator=g, chunk=n)
    g.set_state(state)
    with torch.no_grad():  # the same draws as log_normalizer's (one chunk, proposal = base)
        y = model.base_std * torch.randn(n, 3, generator=g, dtype=F64)
        lw = -model(y) - _gaussian_log_prob(y, model.base_std)
    w = torch.exp(lw - lw.max())
    assert torch.logsumexp(lw, 0).item() - math.log(n) == pytest.approx(log_z, rel=1e-10)
    direct = (w.sum() ** 2 / (w * w).sum()).item()
    assert direct < 0.9 * n  # weights far from uniform
    assert effective_sample_size_from_se(se, n) == pytest.approx(direct, rel=1e-9)


def test_bad_arguments_are_named():
    model = _model()
    with pytest.raises(ValueError, match="x"):
        heldout_log_likelihood(model, torch.zeros(1, 3, dtype=F64))
    bad = torch.zeros(5, 3, dtype=F64)
    bad[2, 0] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        heldout_log_likelihood(model, bad)
    with pytest.raises(ValueError, match="dtype"):
        heldout_log_likelihood(model, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="n_samples"):
        heldout_log_likelihood(model, torch.zeros(5, 3, dtype=F64), n_samples=1)
    with pytest.raises(ValueError, match="model"):
        heldout_log_likelihood(torch.nn.Linear(3, 1), torch.zeros(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="init"):
        sample_langevin(model, 4, init=torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="step_size"):
        sample_langevin(model, 4, step_size=-1.0)


def test_langevin_samples_have_the_chains_known_stationary_variance():
    # alpha = 0: E = |x|^2 / (2 s^2) + const, and x <- x - eps x / s^2 + sqrt(2 eps) z has the
    # stationary variance s^2 / (1 - eps / (2 s^2)) (2.53 here, against the target's 2.25)
    s, eps = 1.5, 0.5
    model = _model(base_std=s)
    start = torch.zeros(5000, 3, dtype=F64)  # far from the stationary spread: the chain must move
    x = sample_langevin(model, 5000, n_steps=100, step_size=eps, init=start,
                        generator=torch.Generator().manual_seed(6))
    expected = s**2 / (1 - eps / (2 * s**2))
    assert x.var(0).mean().item() == pytest.approx(expected, rel=0.03)
    assert x.mean(0).abs().max().item() < 0.1
    assert not x.requires_grad and torch.equal(start, torch.zeros_like(start))


def test_the_mean_subtracts_log_z_of_an_unnormalised_model():
    model = _model(alpha=2.0)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(7), dtype=F64)
    log_z, se = log_normalizer(model, 4000, generator=torch.Generator().manual_seed(8))
    assert abs(log_z) > 5 * se  # a clearly non-zero log Z
    result = heldout_log_likelihood(model, x, n_samples=4000, generator=torch.Generator().manual_seed(8))
    assert result.log_z == log_z and result.log_z_standard_error == se
    with torch.no_grad():
        expected = (-model(x)).mean().item() - log_z
    assert result.mean == pytest.approx(expected, rel=1e-12)
