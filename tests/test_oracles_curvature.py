"""Oracle test for the Softplus derivatives of the one-sweep Hessian estimators (issue 19):
``nn.Softplus(beta, threshold)`` is exactly linear where beta * x > threshold, and the CP /
Approx BP sweeps must switch there, not where x > threshold."""

from __future__ import annotations

import torch
from torch import nn

from ssm_lib.curvature import hessian_diagonal

F64 = torch.float64


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 24), nn.Softplus(beta=2.0, threshold=1.0), nn.Linear(24, 1)).double()


def _autograd_terms(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and Hessian diagonal of the scalar output, per row, by autograd (float64)."""
    grads, diags = [], []
    for row in x:
        grads.append(torch.autograd.functional.jacobian(lambda v: net(v[None])[0, 0], row))
        diags.append(torch.autograd.functional.hessian(lambda v: net(v[None])[0, 0], row).diagonal())
    return torch.stack(grads), torch.stack(diags)


def _inputs(n: int) -> torch.Tensor:
    x = 1.5 * torch.randn(n, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.no_grad():
        pre = _net()[0](x)
    assert int(((pre > 0.5) & (pre < 1.0)).sum()) >= 15  # the region where the mutant differs
    return x


def test_softplus_beta_two_approx_bp_matches_autograd():
    """Mutant: the Softplus linear-region test ignoring beta (``x > thr`` for
    ``beta * x > thr``). Oracle: autograd gradients and Hessian diagonals of a one-hidden-layer
    network with ``nn.Softplus(beta=2, threshold=1)`` in float64 (Approx BP is exact for one
    hidden layer), on inputs whose pre-activations fall in 0.5 < x < 1, where the two region
    tests disagree."""
    net, x = _net(), _inputs(24)
    grad_ref, hdiag_ref = _autograd_terms(net, x)
    _, grad, hdiag = hessian_diagonal(net, x, method="approx_bp")
    torch.testing.assert_close(grad[:, 0], grad_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hdiag[:, 0], hdiag_ref, rtol=1e-10, atol=1e-12)


def test_softplus_beta_two_cp_matches_autograd():
    """Mutant: as above (the region test ignoring beta), seen through the CP sweep. Oracle:
    CP's gradient is exact and its Hessian diagonal unbiased: the mean of 1500 draws must lie
    within 5 standard errors of the autograd Hessian diagonal (float64)."""
    n, reps = 12, 1500
    net, x = _net(), _inputs(n)
    grad_ref, hdiag_ref = _autograd_terms(net, x)
    _, grad, hdiag = hessian_diagonal(net, x.repeat(reps, 1), method="cp",
                                      generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(grad[:n, 0], grad_ref, rtol=1e-10, atol=1e-12)
    draws = hdiag[:, 0].detach().reshape(reps, n, 3)
    mean, se = draws.mean(0), draws.std(0) / reps**0.5
    assert bool(((mean - hdiag_ref).abs() <= 5 * se + 1e-10).all()), ((mean - hdiag_ref) / se).abs().max()
