"""The defects a bad-input audit of the public API found (2026-12-07) in the curvature
objectives, the logit transform, the samplers, DSM's noise level and the implicit-VAE
objectives: each test fails on the code as it was (a silently wrong value, a NaN, a hang or a
deep torch error) and passes on the fix."""

from __future__ import annotations

import math

import pytest
import torch

from paper_recipes.vae import BernoulliDecoder, GaussianEncoder, ImplicitEncoder
from ssm_lib import (
    NICE,
    EnergyMLP,
    SamplerDivergedError,
    SteinScoreEstimator,
    annealed_langevin_dynamics,
    approx_backprop_score_matching,
    curvature_propagation_score_matching,
    denoising_score_matching,
    exact_score_matching,
    langevin_dynamics,
)
from ssm_lib.curvature import as_layers, energy_hessian_terms, forward_derivatives, split_sqrt
from ssm_lib.images import LogitTransform
from ssm_lib.implicit_vae import (
    fit_proposal,
    implicit_elbo_loss,
    importance_weighted_log_likelihood,
    wae_loss,
)

D64 = torch.float64


# ------------------------------------------------------------------ CP and Approx BP


def _confined(c: float = 0.7) -> EnergyMLP:
    torch.manual_seed(0)
    return EnergyMLP(3, hidden=8, depth=1, confinement=c).double()


def test_approx_bp_of_a_confined_energy_is_exact_score_matching():
    """One hidden layer: Approx BP is exact, so it must equal exact SM of the whole energy,
    net(x) + c/2 ||x||^2 (it dropped the quadratic term: 0.06 against -0.99 before the fix)."""
    m = _confined()
    x = torch.randn(40, 3, dtype=D64, generator=torch.Generator().manual_seed(1))
    exact = float(exact_score_matching(m.score, x).detach())
    assert float(approx_backprop_score_matching(m, x).detach()) == pytest.approx(exact, abs=1e-10)


def test_energy_hessian_terms_of_a_confined_energy_match_autograd():
    m = _confined(0.7)
    x = torch.randn(6, 3, dtype=D64, generator=torch.Generator().manual_seed(2))
    y, grad, hdiag = energy_hessian_terms(m, x, method="approx_bp")
    assert torch.allclose(y, m(x), atol=1e-12)
    assert torch.allclose(grad, -m.score(x), atol=1e-12)
    hess = torch.stack([torch.autograd.functional.hessian(lambda v: m(v[None])[0], xi).diagonal()
                        for xi in x])
    assert torch.allclose(hdiag, hess, atol=1e-10)


def test_cp_of_a_confined_energy_is_unbiased():
    m = _confined(0.7)
    x = torch.randn(30, 3, dtype=D64, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    draws = torch.stack([curvature_propagation_score_matching(m, x, generator=g).detach()
                         for _ in range(300)])
    exact = float(exact_score_matching(m.score, x).detach())
    se = float(draws.std()) / math.sqrt(len(draws))
    assert abs(float(draws.mean()) - exact) < 5 * se + 1e-9
    assert abs(0.7 * 3 / 2) > 20 * se  # the half-weighted term, a plausible slip, is far outside


def test_the_layers_of_a_confined_energy_are_not_its_energy():
    with pytest.raises(ValueError, match="confinement"):
        as_layers(_confined())
    assert len(as_layers(EnergyMLP(3, hidden=8, depth=1))) == 3  # unconfined: the network is all


def test_curvature_objectives_name_a_width_or_dtype_mismatch():
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        curvature_propagation_score_matching(EnergyMLP(2), torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        approx_backprop_score_matching(NICE(2), torch.randn(4, 3))
    with pytest.raises(ValueError, match="3 features"):
        forward_derivatives(EnergyMLP(2).net, torch.randn(4, 3))
    with pytest.raises(ValueError, match="dtype"):
        forward_derivatives(EnergyMLP(2).net, torch.randn(4, 2, dtype=D64))


def test_split_sqrt_names_a_bad_argument():
    with pytest.raises(ValueError, match="m must"):
        split_sqrt([1.0, -1.0])
    with pytest.raises(ValueError, match="m must"):
        split_sqrt(torch.tensor([1, -1]))


# ------------------------------------------------------------------ the logit transform


@pytest.mark.parametrize("levels", [17, 256])
def test_the_affine_squash_is_finite_on_the_darkest_and_brightest_pixels(levels):
    """The dequantised bins of 0 and L-1 reach past 0 and 1; the affine squash gave NaN there
    (half of the draws) before it mapped the whole dequantised range."""
    t = LogitTransform(levels, squash="affine")
    k = torch.tensor([0, levels - 1]).repeat(2000, 1)
    y = t(k, generator=torch.Generator().manual_seed(0), dtype=D64)
    assert bool(torch.isfinite(y).all())
    u0, u1 = -0.5 / levels, 1 + 0.5 / levels
    edge = math.log((1 - 1e-3) / 1e-3)
    ends, _ = t.to_logit(torch.tensor([[u0, u1]], dtype=D64))
    assert torch.allclose(ends, torch.tensor([[-edge, edge]], dtype=D64), atol=1e-9)


def test_dequantize_names_bad_pixels():
    t = LogitTransform(17)
    for bad, match in [(torch.tensor([[float("nan"), 1.0]]), "finite"),
                       (torch.tensor([[2.5]]), "whole numbers"),
                       (torch.tensor(3), "shape"),
                       (torch.tensor([[1 + 1j]]), "real")]:
        with pytest.raises(ValueError, match=match):
            t.dequantize(bad)
    with pytest.raises(ValueError, match="dtype"):
        t.dequantize(torch.tensor([[2]]), dtype=torch.int64)
    with pytest.raises(ValueError, match="generator"):
        t.dequantize(torch.tensor([[2]]), generator=1)
    with pytest.raises(ValueError, match="u must"):
        t.to_logit([0.5])
    u = t.dequantize(torch.tensor([[2.0, 16.0]]), generator=torch.Generator().manual_seed(0))
    assert u.shape == (1, 2)  # whole numbers in a float tensor are pixels


# ------------------------------------------------------------------ samplers and DSM


def test_annealed_langevin_stops_when_the_denoising_step_diverges():
    calls = []

    def score(x, sigma):  # finite at the two levels' steps, NaN at the third call (the denoising)
        calls.append(1)
        return torch.full_like(x, float("nan")) if len(calls) == 3 else -x

    with pytest.raises(SamplerDivergedError, match="final denoising step"):
        annealed_langevin_dynamics(score, torch.randn(4, 2), sigmas=[2.0, 0.5], step_size=1e-3,
                                   n_steps_each=1, denoise=True, generator=torch.Generator().manual_seed(0))
    calls.clear()
    out = annealed_langevin_dynamics(score, torch.randn(4, 2), sigmas=[2.0, 0.5], step_size=1e-3,
                                     n_steps_each=1, denoise=False,
                                     generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(out).all()) and len(calls) == 2


def test_samplers_name_bad_progress_sigmas_and_trajectory_size():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="progress"):
        langevin_dynamics(lambda t: -t, x, step_size=0.1, n_steps=2, progress="y")
    with pytest.raises(ValueError, match="progress"):
        annealed_langevin_dynamics(lambda t, s: -t, x, sigmas=[1.0], step_size=0.1, n_steps_each=1,
                                   progress="y")
    with pytest.raises(ValueError, match="sigmas"):
        annealed_langevin_dynamics(lambda t, s: -t, x, sigmas=torch.tensor([[2.0, 1.0]]), step_size=0.1,
                                   n_steps_each=1)
    with pytest.raises(ValueError, match="return_trajectory"):
        langevin_dynamics(lambda t: -t, torch.randn(100, 100), step_size=0.01, n_steps=10**12,
                          return_trajectory=True)


def test_dsm_names_a_noise_level_its_dtype_cannot_hold():
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching(lambda t: -t, torch.randn(4, 2), 1e-50)
    loss = denoising_score_matching(lambda t: -t, torch.randn(4, 2, dtype=D64), 1e-50)
    assert bool(torch.isfinite(loss))  # float64 holds it


# ------------------------------------------------------------------ implicit VAE objectives


def _vae():
    torch.manual_seed(0)
    return BernoulliDecoder(2, 5, hidden=8, depth=1), GaussianEncoder(5, 2, hidden=8, depth=1)


def test_iw_bound_names_its_chunk_instead_of_hanging():
    dec, prop = _vae()
    x = torch.bernoulli(torch.full((3, 5), 0.5), generator=torch.Generator().manual_seed(0))
    for chunk in (-1, 2.5, 0):  # 0 looped for ever before the fix (so it comes last)
        with pytest.raises(ValueError, match="chunk"):
            importance_weighted_log_likelihood(x, dec, prop, n_samples=4, chunk=chunk)


def test_auto_encoder_losses_name_their_bad_arguments():
    dec, _ = _vae()
    x = torch.bernoulli(torch.full((4, 5), 0.5), generator=torch.Generator().manual_seed(0))
    enc = ImplicitEncoder(5, 2, hidden=8, depth=1)
    with pytest.raises(ValueError, match="n_particles"):
        implicit_elbo_loss(enc, dec, SteinScoreEstimator(), x, n_particles=0)
    with pytest.raises(TypeError, match="estimator"):
        implicit_elbo_loss(enc, dec, 3, x, n_particles=2)
    with pytest.raises(ValueError, match="generator"):
        implicit_elbo_loss(enc, dec, SteinScoreEstimator(), x, n_particles=2, generator=1)
    for lam in (float("nan"), -1.0, "a"):
        with pytest.raises(ValueError, match="lam"):
            wae_loss(lambda t: t[:, :2], dec, SteinScoreEstimator(), x, lam=lam)


def test_fit_proposal_names_its_bad_arguments():
    dec, prop = _vae()
    data = torch.rand(20, 5, generator=torch.Generator().manual_seed(0))
    for kw, match in [({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"),
                      ({"binarize": "no"}, "binarize"), ({"generator": 1}, "generator")]:
        with pytest.raises(ValueError, match=match):
            fit_proposal(dec, prop, data, steps=1, **kw)
    with pytest.raises(ValueError, match="data"):
        fit_proposal(dec, prop, data + 1.0, steps=1)
    with pytest.raises(ValueError, match="data"):
        fit_proposal(dec, prop, data[:0], steps=1)
    fit_proposal(dec, prop, data + 1.0, steps=1, binarize=False)  # no range rule without binarising


# ------------------------------------------------------------------ a second pass


def test_iw_bound_names_non_finite_data_and_a_proposal_without_a_density():
    dec, prop = _vae()
    x = torch.bernoulli(torch.full((3, 5), 0.5), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="x must be finite"):
        importance_weighted_log_likelihood(x.masked_fill(x > 0, float("nan")), dec, prop, n_samples=4)
    with pytest.raises(TypeError, match="proposal"):
        importance_weighted_log_likelihood(x, dec, 3, n_samples=4)
    with pytest.raises(ValueError, match="x must be a torch.Tensor"):
        implicit_elbo_loss(ImplicitEncoder(5, 2, hidden=8, depth=1), dec, SteinScoreEstimator(),
                           x.tolist(), n_particles=2)


def test_gaussian_elbo_names_its_generator_and_data():
    from ssm_lib.implicit_vae import gaussian_elbo_loss

    dec, enc = _vae()
    x = torch.bernoulli(torch.full((3, 5), 0.5), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="generator"):
        gaussian_elbo_loss(enc, dec, x, generator=1)
    with pytest.raises(ValueError, match="x must"):
        gaussian_elbo_loss(enc, dec, x[0])


def test_record_forward_names_a_width_mismatch():
    from ssm_lib.curvature import record_forward

    with pytest.raises(ValueError, match="3 features"):
        record_forward(EnergyMLP(2).net, torch.randn(4, 3))
    with pytest.raises(ValueError, match="h must"):
        record_forward(EnergyMLP(2).net, [[0.0, 0.0]])


def test_train_loop_names_its_bad_arguments():
    from ssm_lib.training import train_loop

    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1)

    def loss(step):
        return (p**2).sum()

    for kw, match in [({"loss_at": 3}, "loss_at"), ({"optimizer": None}, "optimizer"),
                      ({"first_step": -5}, "first_step"), ({"validate": 3}, "validate"),
                      ({"after_step": "x"}, "after_step")]:
        args = {"loss_at": loss, "params": [p], "optimizer": opt, "n_steps": 1, **kw}
        with pytest.raises(ValueError, match=match):
            train_loop(**args)
    assert train_loop(loss, [p], opt, 2, first_step=0) is not None
