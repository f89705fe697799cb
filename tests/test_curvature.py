"""CP and Approx BP against exact float64 Hessian diagonals from autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssm_lib import EnergyMLP, ScoreMLP, exact_score_matching, score_from_energy
from ssm_lib.curvature import (
    HalfSquaredNorm,
    SumOfBranches,
    approx_backprop_score_matching,
    curvature_propagation_score_matching,
    hessian_diagonal,
)

F64 = torch.float64
ACTS = {"softplus": nn.Softplus, "tanh": nn.Tanh, "silu": nn.SiLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def _net(dim: int, hidden: int, depth: int, act: str, seed: int, out: int = 1, skip: bool = False):
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(dim, hidden), ACTS[act]()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), ACTS[act]()]
    layers.append(nn.Linear(hidden, out))
    net = nn.Sequential(*layers)
    if skip:
        net = nn.Sequential(SumOfBranches(net, nn.Linear(dim, out, bias=False)))
    return net.double()


def _exact(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and Hessian diagonal of every output channel, by autograd (float64)."""
    xs = x.detach().requires_grad_(True)
    y = net(xs)
    grads, diags = [], []
    for k in range(y.shape[1]):
        (g,) = torch.autograd.grad(y[:, k].sum(), xs, create_graph=True)
        d = torch.stack([torch.autograd.grad(g[:, i].sum(), xs, retain_graph=True)[0][:, i]
                         for i in range(x.shape[1])], 1)
        grads.append(g.detach())
        diags.append(d)
    return torch.stack(grads, 1), torch.stack(diags, 1)


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_cp_is_unbiased(act, depth):
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(depth), dtype=F64)
    net = _net(3, 6, depth, act, seed=depth)
    g_ref, h_ref = _exact(net, x)
    gen = torch.Generator().manual_seed(7)
    n = 4000
    xs = x.repeat(n, 1)  # n independent draws in one sweep
    _, g, h = hessian_diagonal(net, xs, method="cp", generator=gen)
    torch.testing.assert_close(g[:4], g_ref, rtol=1e-10, atol=1e-12)
    trace = h.sum(-1).reshape(n, 4).detach()  # per-point trace estimates
    mean, se = trace.mean(0), trace.std(0) / n**0.5
    exact = h_ref.sum(-1)[:, 0]
    assert torch.all((mean - exact).abs() <= 4.5 * se + 1e-12), (mean, exact, se)


def test_cp_multichannel_and_skip():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    net = _net(4, 5, 2, "softplus", seed=3, out=2, skip=True)
    g_ref, h_ref = _exact(net, x)
    n = 4000
    _, g, h = hessian_diagonal(net, x.repeat(n, 1), method="cp", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(g[:3], g_ref, rtol=1e-10, atol=1e-12)
    h = h.reshape(n, 3, 2, 4).detach()
    err = (h.mean(0) - h_ref).abs()
    assert torch.all(err <= 4.5 * h.std(0) / n**0.5 + 1e-12)


def test_half_squared_norm_energy():
    x = torch.randn(3, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3), HalfSquaredNorm()).double()
    g_ref, h_ref = _exact(net, x)
    n = 4000
    _, g, h = hessian_diagonal(net, x.repeat(n, 1), method="cp", generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(g[:3], g_ref)
    h = h.reshape(n, 3, 1, 3).detach()
    assert torch.all((h.mean(0) - h_ref).abs() <= 4.5 * h.std(0) / n**0.5 + 1e-12)


@pytest.mark.parametrize("act", list(ACTS))
def test_approx_bp_exact_for_one_hidden_layer(act):
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    net = _net(3, 7, 1, act, seed=11)
    g_ref, h_ref = _exact(net, x)
    _, g, h = hessian_diagonal(net, x, method="approx_bp")
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-12)


def test_approx_bp_biased_for_deeper_networks():
    """Beyond one hidden layer the dropped off-diagonal terms matter: the trace is off by a
    visible fraction (measured here, shown in the book)."""
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    net = _net(3, 16, 3, "softplus", seed=5)
    _, h_ref = _exact(net, x)
    _, _, h = hessian_diagonal(net, x, method="approx_bp")
    rel = ((h.sum(-1) - h_ref.sum(-1)).abs().mean() / h_ref.sum(-1).abs().mean()).item()
    assert rel > 1e-3


def test_objectives_match_exact_score_matching():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    torch.manual_seed(0)
    one = EnergyMLP(3, hidden=8, depth=1, activation="tanh").double()
    exact = exact_score_matching(score_from_energy(one), x)
    approx = approx_backprop_score_matching(one, x)
    torch.testing.assert_close(approx, exact)
    # parameter gradients agree too (Approx BP is exact here)
    ga = torch.autograd.grad(approx, list(one.parameters()), allow_unused=True)
    ge = torch.autograd.grad(exact_score_matching(score_from_energy(one), x), list(one.parameters()),
                             allow_unused=True)
    for a, b in zip(ga, ge, strict=True):
        if a is not None and b is not None:
            torch.testing.assert_close(a, b)
    # CP: per-sample mean over draws equals the exact loss
    deep = EnergyMLP(3, hidden=8, depth=3, activation="silu").double()
    exact = exact_score_matching(score_from_energy(deep), x, reduction="none")
    n = 3000
    cp = curvature_propagation_score_matching(deep, x.repeat(n, 1), reduction="none",
                                              generator=torch.Generator().manual_seed(0))
    cp = cp.reshape(n, 6).detach()
    assert torch.all((cp.mean(0) - exact.detach()).abs() <= 4.5 * cp.std(0) / n**0.5 + 1e-12)


def test_cp_reproducible_and_input_untouched():
    x = torch.randn(4, 3, dtype=F64)
    net = _net(3, 5, 2, "tanh", seed=0)
    a = curvature_propagation_score_matching(net, x, generator=torch.Generator().manual_seed(1))
    b = curvature_propagation_score_matching(net, x, generator=torch.Generator().manual_seed(1))
    assert a.item() == b.item() and not x.requires_grad


def test_not_applicable_raises():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="not a gradient"):
        curvature_propagation_score_matching(ScoreMLP(3, hidden=4, depth=1), x)
    with pytest.raises(ValueError, match="does not know"):
        approx_backprop_score_matching(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1)), x)
    with pytest.raises(ValueError, match="does not know"):
        curvature_propagation_score_matching(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)), x)
    with pytest.raises(ValueError, match="method"):
        hessian_diagonal(nn.Sequential(nn.Linear(3, 1)), x, method="exact")
    with pytest.raises(ValueError, match="one output channel"):
        curvature_propagation_score_matching(nn.Sequential(nn.Linear(3, 2)), x)


class _Coupling(nn.Module):
    """An additive coupling layer y = (x1, x2 + m(x1)) written with the public sweep helpers."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.k = dim // 2
        self.m = nn.Sequential(nn.Linear(self.k, hidden), nn.Softplus(), nn.Linear(hidden, dim - self.k))

    def forward(self, x):
        return torch.cat([x[:, :self.k], x[:, self.k:] + self.m(x[:, :self.k])], 1)

    def cp_backward(self, inp, out, g, s_re, s_im, generator):
        from ssm_lib.curvature import record_forward, sweep_cp

        _, tape = record_forward(self.m, inp[:, :self.k])
        k = self.k
        gm, rm, im = sweep_cp(tape, g[..., k:], s_re[..., k:], s_im[..., k:], generator)
        return (torch.cat([g[..., :k] + gm, g[..., k:]], -1),
                torch.cat([s_re[..., :k] + rm, s_re[..., k:]], -1),
                torch.cat([s_im[..., :k] + im, s_im[..., k:]], -1))


def test_composite_layer_through_the_public_sweep():
    torch.manual_seed(0)
    net = nn.Sequential(_Coupling(4, 6), nn.Tanh(), nn.Linear(4, 4), HalfSquaredNorm()).double()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=F64)
    g_ref, h_ref = _exact(net, x)
    n = 4000
    _, g, h = hessian_diagonal(net, x.repeat(n, 1), method="cp", generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(g[:3], g_ref)
    h = h.reshape(n, 3, 1, 4).detach()
    assert torch.all((h.mean(0) - h_ref).abs() <= 4.5 * h.std(0) / n**0.5 + 1e-12)
    with pytest.raises(ValueError, match="does not know"):  # no approx_bp_backward
        hessian_diagonal(net, x, method="approx_bp")
