"""DKEF: the closed-form alpha against the generic losses, an iterative minimiser, autograd
and a grid integral (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from ssm_lib import denoising_score_matching, exact_score_matching, sliced_score_matching
from ssm_lib.dkef import DKEF, closed_form_objectives, dkef_loss, log_normalizer, train_dkef
from ssm_lib.projections import sample_projections

F64 = torch.float64


def _model(dim=3, m=6, seed=0, n_kernels=2, hidden=5):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(m, dim, generator=gen, dtype=F64)
    return DKEF(z, n_kernels=n_kernels, hidden=hidden, generator=gen)


def _x(n=7, dim=3, seed=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _quad(G, b, c, a):
    return 0.5 * a @ G @ a + b @ a + c


@pytest.mark.parametrize("objective", ["exact", "ssm", "ssm_vr", "dsm", "approx_bp"])
def test_quadratic_form_equals_direct_loss(objective):
    """(G, b, c) reproduce the generic loss of the library for any alpha, with the same
    random directions / noise."""
    model, x = _model(), _x()
    alpha = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=F64)
    G, b, c = model.alpha_system(x, objective, generator=torch.Generator().manual_seed(5), sigma=0.3)
    score = model.with_alpha(alpha)
    g = torch.Generator().manual_seed(5)
    if objective == "exact":
        direct = exact_score_matching(score, x)
    elif objective in ("ssm", "ssm_vr"):
        v = sample_projections("rademacher", x.shape, generator=g, dtype=F64)
        direct = sliced_score_matching(score, x, directions=v[None],
                                       variance_reduction=objective == "ssm_vr")
    elif objective == "dsm":
        z = torch.randn(x.shape, generator=g, dtype=F64)
        direct = denoising_score_matching(score, x, 0.3, noise=z)
    else:  # Approx BP is linear in alpha, so its quadratic form is exact too
        direct = dkef_loss(model, x, objective, alpha)
    torch.testing.assert_close(_quad(G, b, c, alpha), direct, rtol=1e-10, atol=1e-10)


def test_cp_quadratic_is_unbiased():
    model, x = _model(), _x(n=3)
    G_ex, b_ex, c_ex = model.alpha_system(x, "exact", create_graph=False)
    n = 3000
    draws = [model.alpha_system(x, "cp", generator=torch.Generator().manual_seed(i), create_graph=False)
             for i in range(n // 100)]
    # many draws at once: repeat the batch (the mean over rows of i.i.d. draws)
    G, b, _ = model.alpha_system(x.repeat(n, 1), "cp", generator=torch.Generator().manual_seed(9),
                                 create_graph=False)
    torch.testing.assert_close(G, G_ex)  # the gradient part is exact
    bs = torch.stack([d[1] for d in draws])
    se = bs.std(0) / math.sqrt(bs.shape[0])
    assert torch.all((b - b_ex).abs() <= 4.5 * se / math.sqrt(100) + 1e-10)
    # and the direct CP loss is an unbiased estimate of the exact loss
    alpha = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=F64)
    cp = dkef_loss(model, x.repeat(n, 1), "cp", alpha, generator=torch.Generator().manual_seed(2),
                   reduction="none").detach().reshape(n, 3).mean(1)
    exact = dkef_loss(model, x, "exact", alpha).detach()
    assert abs(cp.mean() - exact) <= 4.5 * cp.std() / math.sqrt(n)


@pytest.mark.parametrize("objective", ["exact", "ssm_vr", "dsm"])
def test_closed_form_alpha_minimises(objective):
    model, x = _model(), _x(n=20)
    lam = model.ridge().detach()
    G, b, _ = model.alpha_system(x, objective, generator=torch.Generator().manual_seed(5), sigma=0.3,
                                 create_graph=False)
    a_star = model.solve_alpha(G, b).detach()

    def total(a):
        g = torch.Generator().manual_seed(5)
        if objective == "exact":
            loss = exact_score_matching(model.with_alpha(a), x)
        elif objective == "ssm_vr":
            v = sample_projections("rademacher", x.shape, generator=g, dtype=F64)
            loss = sliced_score_matching(model.with_alpha(a), x, directions=v[None], variance_reduction=True)
        else:
            z = torch.randn(x.shape, generator=g, dtype=F64)
            loss = denoising_score_matching(model.with_alpha(a), x, 0.3, noise=z)
        return loss + 0.5 * lam * (a * a).sum()

    a = a_star.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(total(a), a)
    assert grad.abs().max() < 1e-8
    # an iterative minimiser from zero finds the same point
    a = torch.zeros_like(a_star, requires_grad=True)
    opt = torch.optim.LBFGS([a], lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = total(a)
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(a.detach(), a_star, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert total(a_star) <= total(a.detach()) + 1e-10


def test_score_and_curvature_terms_match_autograd():
    model, x = _model(), _x()
    model.alpha.copy_(torch.randn(6, generator=torch.Generator().manual_seed(4), dtype=F64))
    xs = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(model.unnormalized_log_prob(xs).sum(), xs)
    torch.testing.assert_close(model.score(x), ref)
    # finite differences of the log-density, an independent check
    eps = 1e-6
    fd = torch.stack([(model.unnormalized_log_prob(x + eps * e) - model.unnormalized_log_prob(x - eps * e))
                      / (2 * eps) for e in torch.eye(3, dtype=F64)], 1)
    torch.testing.assert_close(model.score(x), fd, rtol=1e-6, atol=1e-7)
    for method in ("cp", "approx_bp"):
        energy, grad, _ = model.energy_hessian_terms(x, method=method, generator=torch.Generator())
        torch.testing.assert_close(energy, -model.unnormalized_log_prob(x))
        torch.testing.assert_close(-grad, ref)


def test_log_normalizer_matches_grid_in_2d():
    model = _model(dim=2, m=4, seed=3)
    model.alpha.copy_(torch.tensor([1.5, -0.7, 0.9, 0.4], dtype=F64))
    t = torch.linspace(-14, 14, 801, dtype=F64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        lp = model.unnormalized_log_prob(grid)
    cell = (t[1] - t[0]) ** 2
    log_z_grid = (torch.logsumexp(lp, 0) + torch.log(cell)).item()
    log_z, se = log_normalizer(model, 200_000, generator=torch.Generator().manual_seed(0))
    assert abs(log_z - log_z_grid) <= 4 * se + 1e-4, (log_z, log_z_grid, se)
    assert 0 < se < 0.05


def test_training_lowers_the_validation_loss():
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(300, 2, generator=gen, dtype=F64) * torch.tensor([1.0, 0.3], dtype=F64)
    model = DKEF(data[:10].clone(), n_kernels=1, hidden=8, generator=gen)
    model.fit_alpha(data[:200], "ssm_vr", generator=gen)
    before = dkef_loss(model, data[200:], "exact").item()
    hist = train_dkef(model, data[:200], data[200:], "ssm_vr", steps=30, batch_size=40, val_every=10,
                      lambda_steps=5, generator=gen)
    after = dkef_loss(model, data[200:], "exact").item()
    assert after < before and len(hist.train) == 30


def test_bad_input():
    model, x = _model(), _x()
    with pytest.raises(ValueError, match="sigma"):
        model.alpha_system(x, "dsm")
    with pytest.raises(ValueError, match="objective"):
        model.alpha_system(x, "mle")
    with pytest.raises(ValueError, match=r"shape \(batch, 3\)"):
        model.alpha_system(_x(dim=2), "exact")
    assert set(closed_form_objectives()) == {"exact", "ssm", "ssm_vr", "dsm", "dsm_sigma4", "cp", "approx_bp"}


def test_cp_gradients_are_finite():
    """CP's square roots of curvature parts that vanish exactly (e.g. the other channels in
    the per-inducing-point sweep) must not give NaN gradients."""
    model, x = _model(), _x()
    G, b, _ = model.alpha_system(x, "cp", generator=torch.Generator().manual_seed(0))
    loss = dkef_loss(model, x, "cp", model.solve_alpha(G, b), generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)


def test_non_finite_inducing_points_are_named():
    """A NaN inducing point used to give NaN densities silently (issue 21, item 6)."""
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    z[0, 0] = float("nan")
    with pytest.raises(ValueError, match="inducing"):
        DKEF(z)
