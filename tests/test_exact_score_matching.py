"""Exact score matching against analytic values and an explicit float64 Jacobian."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import Gaussian, exact_score_matching, fisher_divergence, score_from_energy
from ssm_lib.losses import jacobian_trace

from .conftest import standard_error


def explicit_trace(score_fn, x: torch.Tensor) -> torch.Tensor:
    """Trace of the Jacobian, one sample at a time, by torch.autograd.functional.jacobian."""
    traces = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: score_fn(v.unsqueeze(0)).squeeze(0), xi)
        traces.append(torch.diagonal(jac).sum())
    return torch.stack(traces)


def test_true_gaussian_score_gives_minus_half_trace_of_precision(gaussian3, gen):
    # J(true score) = E[1/2 |P(x-mu)|^2] - tr P = 1/2 tr P - tr P = -1/2 tr P.
    x = gaussian3.sample(40000, generator=gen)
    per = exact_score_matching(gaussian3.score, x, reduction="none")
    expected = -0.5 * torch.trace(gaussian3.precision).item()
    assert abs(per.mean().item() - expected) < 4 * standard_error(per)
    # pointwise: 1/2 |P(x-mu)|^2 - tr P, exactly
    pointwise = 0.5 * (gaussian3.score(x[:50]) ** 2).sum(1) - torch.trace(gaussian3.precision)
    torch.testing.assert_close(per[:50], pointwise, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["loop", "vmap"])
def test_methods_match_explicit_jacobian_on_mlp(score_mlp, method, gen):
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    s, trace = jacobian_trace(score_mlp, x, method=method)
    torch.testing.assert_close(trace, explicit_trace(score_mlp, x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s, score_mlp(x))
    per = exact_score_matching(score_mlp, x, method=method, reduction="none")
    torch.testing.assert_close(per, 0.5 * (s**2).sum(1) + trace)


def test_vmap_chunks_match_loop_on_energy_model(energy_mlp, gen):
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    score = score_from_energy(energy_mlp)
    loop = exact_score_matching(score, x, method="loop", reduction="none")
    for chunk in (None, 1, 3):
        vm = exact_score_matching(score, x, method="vmap", chunk_size=chunk, reduction="none")
        torch.testing.assert_close(vm, loop, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loop - 0.5 * (score(x) ** 2).sum(1), explicit_trace(score, x),
                               rtol=1e-10, atol=1e-12)


def test_multidimensional_event_shape(gen):
    # a score on (batch, 2, 3) events: the trace runs over all 6 event entries
    w = torch.randn(6, 6, generator=gen, dtype=torch.float64)

    def score(x):
        return torch.tanh(x.reshape(x.shape[0], 6) @ w).reshape(x.shape)

    x = torch.randn(4, 2, 3, generator=gen, dtype=torch.float64)
    flat = exact_score_matching(lambda y: score(y.reshape(-1, 2, 3)).reshape(-1, 6),
                                x.reshape(4, 6), reduction="none")
    for method in ("loop", "vmap"):
        torch.testing.assert_close(exact_score_matching(score, x, method=method, reduction="none"), flat)


def test_objective_minus_true_objective_is_fisher_divergence(gen):
    # Integration by parts (Hyvarinen 2005): J(theta) = F(theta) + J(true score), pointwise in
    # expectation. Check per-sample differences average to zero within Monte Carlo error.
    p = Gaussian(torch.tensor([0.3, -0.2], dtype=torch.float64),
                 torch.tensor([[1.0, 0.4], [0.4, 0.7]], dtype=torch.float64))
    w = torch.tensor([[-0.9, 0.3], [0.2, -1.4]], dtype=torch.float64)

    def model(x):
        return x @ w.T + torch.sin(x) * 0.3 + 0.1

    x = p.sample(100000, generator=gen)
    j_model = exact_score_matching(model, x, reduction="none")
    j_true = exact_score_matching(p.score, x, reduction="none")
    fisher = fisher_divergence(model, p.score, x, reduction="none")
    diff = j_model - j_true - fisher
    assert fisher.mean().item() > 0.1  # the model is genuinely wrong
    assert abs(diff.mean().item()) < 4 * standard_error(diff)


def test_reductions(score_mlp, gen):
    x = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    per = exact_score_matching(score_mlp, x, reduction="none")
    assert per.shape == (7,)
    torch.testing.assert_close(exact_score_matching(score_mlp, x), per.mean())
    torch.testing.assert_close(exact_score_matching(score_mlp, x, reduction="sum"), per.sum())


def test_parameter_gradients_match_the_closed_form_for_a_linear_score(gen):
    # s(x) = W x + b: J = 1/n sum_i [1/2 |W x_i + b|^2] + tr W, so
    # dJ/dW = 1/n sum_i (W x_i + b) x_i^T + I and dJ/db = 1/n sum_i (W x_i + b)
    lin = torch.nn.Linear(4, 4).double()
    x = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    s = (x @ lin.weight.T + lin.bias).detach()
    want_w = s.T @ x / 9 + torch.eye(4, dtype=torch.float64)
    want_b = s.mean(0)
    for method in ("loop", "vmap"):
        lin.zero_grad()
        exact_score_matching(lin, x, method=method).backward()
        torch.testing.assert_close(lin.weight.grad, want_w, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(lin.bias.grad, want_b, rtol=1e-12, atol=1e-12)


def test_constant_score_has_zero_trace(gen):
    x = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    const = torch.tensor([1.0, -2.0], dtype=torch.float64)
    for method in ("loop", "vmap"):
        per = exact_score_matching(lambda y: const.expand_as(y), x, method=method, reduction="none")
        torch.testing.assert_close(per, torch.full((3,), 2.5, dtype=torch.float64))
