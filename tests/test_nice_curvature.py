"""CP and Approx BP on the NICE flow, against float64 autograd Hessians of its energy."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import exact_score_matching
from ssm_lib.curvature import (
    approx_backprop_score_matching,
    curvature_propagation_score_matching,
    hessian_diagonal,
)
from ssm_lib.flows import NICE

F64 = torch.float64


def _nice(dim: int, n_couplings: int, hidden: int = 6, depth: int = 2, activation: str = "softplus",
          seed: int = 0) -> NICE:
    """A float64 NICE with non-trivial scales and weights large enough for visible curvature."""
    torch.manual_seed(seed)
    model = NICE(dim, hidden=hidden, depth=depth, n_couplings=n_couplings, activation=activation).double()
    with torch.no_grad():
        model.scaling.log_scale.normal_(0.0, 0.3)
        for c in model.couplings:
            for p in c.shift_net.parameters():
                p.mul_(1.5)
    return model


def _exact_terms(model: NICE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and Hessian diagonal of ``model.energy`` by autograd (independent of the sweep)."""
    xs = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.energy(xs).sum(), xs, create_graph=True)
    diag = torch.stack([torch.autograd.grad(g[:, i].sum(), xs, retain_graph=True)[0][:, i]
                        for i in range(x.shape[1])], 1)
    return g.detach(), diag.detach()


def _points(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("n_couplings", [1, 2, 4])
@pytest.mark.parametrize("dim", [5, 6])
def test_cp_unbiased_on_nice(n_couplings, dim):
    model = _nice(dim, n_couplings, seed=n_couplings + dim)
    x = _points(4, dim, dim)
    g_ref, h_ref = _exact_terms(model, x)
    n = 4000
    _, g, h = hessian_diagonal(model, x.repeat(n, 1), method="cp",
                               generator=torch.Generator().manual_seed(n_couplings))
    torch.testing.assert_close(g[:4, 0], g_ref, rtol=1e-10, atol=1e-12)
    h = h[:, 0].reshape(n, 4, dim).detach()
    # every coordinate of the diagonal, and the trace, within 4.5 standard errors
    assert torch.all((h.mean(0) - h_ref).abs() <= 4.5 * h.std(0) / n**0.5 + 1e-12)
    tr = h.sum(-1)
    assert torch.all((tr.mean(0) - h_ref.sum(-1)).abs() <= 4.5 * tr.std(0) / n**0.5)
    assert torch.all(tr.std(0) > 0)  # CP is random here: the test above can fail


def test_cp_loss_and_its_parameter_gradients_are_unbiased():
    """The CP loss and its gradient in every parameter average to exact SM's (Eq. 2): 40
    independent chunks of 200 draws each give a mean and a standard error."""
    model = _nice(5, 4, activation="tanh", seed=3)
    x = _points(3, 5, 9)
    params = list(model.parameters())
    exact = exact_score_matching(model.score, x)
    exact_grads = torch.autograd.grad(exact, params)
    gen = torch.Generator().manual_seed(4)
    losses, grads = [], []
    for _ in range(40):
        loss = curvature_propagation_score_matching(model, x.repeat(200, 1), generator=gen)
        losses.append(loss.detach())
        grads.append(torch.cat([gp.reshape(-1) for gp in torch.autograd.grad(loss, params)]))
    losses, grads = torch.stack(losses), torch.stack(grads)
    assert abs(losses.mean() - exact.detach()) <= 4.5 * losses.std() / 40**0.5
    ref = torch.cat([gp.reshape(-1) for gp in exact_grads])
    z = (grads.mean(0) - ref) / (grads.std(0) / 40**0.5 + 1e-12)
    assert torch.all(torch.isfinite(grads)) and grads.abs().sum() > 0
    # every parameter (incl. the scaling's log_scale) receives a gradient
    assert all(gp.abs().sum() > 0 for gp in exact_grads)
    # 5 standard errors (t with 39 degrees of freedom) for each of a few hundred coordinates
    assert torch.all(z.abs() <= 5.0), z.abs().max()


def _approx_terms(model: NICE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _, g, h = hessian_diagonal(model, x, method="approx_bp")
    return g[:, 0], h[:, 0]


def test_approx_bp_single_coupling_exact_on_shifted_half_only():
    """One coupling with a one-hidden-layer MLP: Approx BP is exact on the shifted half (its
    Jacobian columns are unit vectors) but not on the fixed half. The Hessian at m's output,
    diag(exp(2 lambda_b)), is diagonal; but m's output is a vector, so the curvature at its
    hidden layer is W^T diag(exp(2 lambda_b)) W, not diagonal, and the input layer needs the
    off-diagonal entries Approx BP drops (an MLP energy with a scalar linear output has a
    diagonal curvature there, which is why one hidden layer is exact for it)."""
    model = _nice(5, 1, hidden=8, depth=1, seed=1)
    x = _points(16, 5, 2)
    g_ref, h_ref = _exact_terms(model, x)
    g, h = _approx_terms(model, x)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    b, a = model.couplings[0].shifted, model.couplings[0].fixed
    torch.testing.assert_close(h[:, b], h_ref[:, b], rtol=1e-10, atol=1e-12)
    rel = ((h[:, a] - h_ref[:, a]).abs().mean() / h_ref[:, a].abs().mean()).item()
    assert rel > 1e-3, rel


def test_approx_bp_exact_for_single_coupling_with_one_hidden_unit():
    """With one hidden unit the Hessians Approx BP meets inside m are 1 x 1, so nothing is
    dropped: the whole diagonal is exact."""
    model = _nice(5, 1, hidden=1, depth=1, seed=2)
    x = _points(8, 5, 3)
    _, h_ref = _exact_terms(model, x)
    _, h = _approx_terms(model, x)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_couplings", [2, 4])
def test_approx_bp_bias_on_nice(n_couplings):
    """Gradient exact, Hessian diagonal biased; the relative error of the trace is measured
    (reported in the book) and must be visibly non-zero; the loss gradients flow."""
    model = _nice(5, n_couplings, seed=n_couplings)
    x = _points(64, 5, 4)
    g_ref, h_ref = _exact_terms(model, x)
    g, h = _approx_terms(model, x)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    rel = ((h.sum(-1) - h_ref.sum(-1)).abs().mean() / h_ref.sum(-1).abs().mean()).item()
    assert rel > 1e-3, rel
    loss = approx_backprop_score_matching(model, x)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert all(torch.isfinite(gp).all() and gp.abs().sum() > 0 for gp in grads)


def test_float32_and_input_untouched():
    model = _nice(6, 4).float()
    x = torch.randn(8, 6)
    a = curvature_propagation_score_matching(model, x, generator=torch.Generator().manual_seed(0))
    b = curvature_propagation_score_matching(model, x, generator=torch.Generator().manual_seed(0))
    c = approx_backprop_score_matching(model, x)
    assert a.item() == b.item() and torch.isfinite(c) and not x.requires_grad


def test_registry_passes_the_flow_itself():
    """``flow_objective("cp" / "approx_bp")`` trains NICE through the registry (takes='model')."""
    from ssm_lib.flow_training import flow_objective

    model = _nice(6, 2, seed=5)
    x = _points(8, 6, 6)
    via = flow_objective("cp")(model, x, torch.Generator().manual_seed(3))
    direct = curvature_propagation_score_matching(model, x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(via, direct)
    torch.testing.assert_close(flow_objective("approx_bp")(model, x, torch.Generator()),
                               approx_backprop_score_matching(model, x))
