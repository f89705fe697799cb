"""Sliced score matching: unbiased for exact score matching for every projection kind."""

from __future__ import annotations

import math

import pytest
import torch

from ssm_lib import exact_score_matching, sample_projections, score_from_energy, sliced_score_matching
from ssm_lib.losses import jacobian_trace

KINDS = ["gaussian", "rademacher", "sphere"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("vr", [False, True])
def test_mean_over_projections_converges_to_exact(score_mlp, kind, vr, gen):
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    exact = exact_score_matching(score_mlp, x, reduction="none")
    # R independent estimates, each averaging M projections, per sample
    estimates = torch.stack([
        sliced_score_matching(score_mlp, x, n_projections=400, projection=kind,
                              variance_reduction=vr, generator=gen, reduction="none")
        for _ in range(40)
    ])  # (R, batch)
    mean, se = estimates.mean(0), estimates.std(0) / math.sqrt(estimates.shape[0])
    assert torch.all((mean - exact).abs() < 4.5 * se + 1e-12), (mean - exact) / se


def test_matches_closed_form_with_given_projections(score_mlp, gen):
    # with explicit v, the estimate is (1/M) sum_m [v_m^T J v_m + 1/2 (v_m^T s)^2], J explicit
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    v = sample_projections("gaussian", (5, 3, 4), generator=gen, dtype=torch.float64)
    got = sliced_score_matching(score_mlp, x, n_projections=5, directions=v, reduction="none")
    got_vr = sliced_score_matching(score_mlp, x, n_projections=5, directions=v,
                                   variance_reduction=True, reduction="none")
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda y: score_mlp(y.unsqueeze(0)).squeeze(0), x[b])
        s = score_mlp(x[b:b + 1]).squeeze(0).detach()
        vjv = torch.stack([v[m, b] @ jac @ v[m, b] for m in range(5)])
        expected = (vjv + 0.5 * (v[:, b] @ s) ** 2).mean()
        expected_vr = (vjv + 0.5 * (s @ s)).mean()
        torch.testing.assert_close(got[b], expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got_vr[b], expected_vr, rtol=1e-10, atol=1e-12)


def test_energy_model_ssm_vr_with_identity_basis_equals_exact(energy_mlp, gen):
    # Projecting on sqrt(d) e_i for all i with weights 1/d: mean of v^T J v = tr J exactly.
    x = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    score = score_from_energy(energy_mlp)
    d = 4
    basis = torch.eye(d, dtype=torch.float64) * math.sqrt(d)
    v = basis.unsqueeze(1).expand(d, 4, d).contiguous()
    got = sliced_score_matching(score, x, n_projections=d, directions=v, variance_reduction=True,
                                reduction="none")
    torch.testing.assert_close(got, exact_score_matching(score, x, reduction="none"), rtol=1e-10, atol=1e-12)


def test_single_backward_pass_gives_vjv(gen):
    # For a linear score s(x) = A x, v^T J v = v^T A v for every v.
    a = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    x = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    v = sample_projections("rademacher", (1, 8, 5), generator=gen, dtype=torch.float64)
    got = sliced_score_matching(lambda y: y @ a.T, x, directions=v, reduction="none")
    s = x @ a.T
    expected = torch.einsum("bi,ij,bj->b", v[0], a, v[0]) + 0.5 * (v[0] * s).sum(1) ** 2
    torch.testing.assert_close(got, expected)


def test_generator_makes_it_reproducible(score_mlp):
    x = torch.randn(5, 4, dtype=torch.float64)
    a = sliced_score_matching(score_mlp, x, n_projections=3, generator=torch.Generator().manual_seed(7))
    b = sliced_score_matching(score_mlp, x, n_projections=3, generator=torch.Generator().manual_seed(7))
    c = sliced_score_matching(score_mlp, x, n_projections=3, generator=torch.Generator().manual_seed(8))
    assert a.item() == b.item()
    assert a.item() != c.item()


def test_ssm_gradient_is_unbiased_for_exact_gradient(gen):
    # d/dtheta of SSM averages to d/dtheta of exact SM (linear model, many projections)
    w = torch.tensor([[-1.0, 0.2, 0.0], [0.1, -0.8, 0.3], [0.0, 0.4, -1.2]], dtype=torch.float64,
                     requires_grad=True)
    x = torch.randn(64, 3, generator=gen, dtype=torch.float64)

    def model(y):
        return torch.tanh(y @ w.T)

    (g_exact,) = torch.autograd.grad(exact_score_matching(model, x), w)
    grads = torch.stack([torch.autograd.grad(sliced_score_matching(model, x, n_projections=20,
                                                                   generator=gen), w)[0]
                         for _ in range(60)])
    se = grads.std(0) / math.sqrt(grads.shape[0])
    assert torch.all((grads.mean(0) - g_exact).abs() < 4.5 * se + 1e-12)


def test_trace_oracle_of_jacobian_trace_helper(score_mlp, gen):
    # Hutchinson: E[v^T J v] = tr J, checked against jacobian_trace with 20000 Rademacher draws
    x = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    _, trace = jacobian_trace(score_mlp, x)
    v = sample_projections("rademacher", (20000, 2, 4), generator=gen, dtype=torch.float64)
    per = sliced_score_matching(score_mlp, x, n_projections=20000, directions=v,
                                variance_reduction=True, reduction="none")
    s = score_mlp(x)
    est_trace = per - 0.5 * (s**2).sum(1)
    assert torch.all((est_trace - trace).abs() < 0.05 * trace.abs().clamp_min(1.0))

