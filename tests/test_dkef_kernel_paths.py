"""DKEF's kernel paths: values pinned in float64 before they were rewritten, float32 accuracy,
and the memory of log Z.

* :class:`~ssm_lib.dkef.GaussianKernelLayer` computes its kernel values from feature distances
  (inner products, centred, clamped) rather than a ``(batch, M, F)`` tensor of differences:
  checked against the explicit differences (values and gradients, float64) and in float32
  on features far from the origin;
* the CP / Approx BP quadratic of alpha applies the kernel layer's identity seed elementwise
  instead of sweeping a dense ``(batch, M, M)`` identity: checked against the generic sweep
  (:func:`ssm_lib.curvature.hessian_diagonal`, which keeps the dense identity) with the same
  random draws, values and parameter gradients (CP's elementwise seed draws only the
  ``(batch, M)`` diagonal of the dense sweep's sign matrix, the only signs that meet a non-zero
  weight; the dense sweep is given those on its diagonal);
* :func:`~ssm_lib.dkef.log_normalizer` evaluates each block of proposal samples in pieces sized
  by ``memory_budget``: the estimate does not depend on the budget, and no operation allocates
  more than the budget;
* stored numbers printed by the implementation before the change.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from ssm_lib.curvature import hessian_diagonal
from ssm_lib.dkef import DKEF, GaussianKernelLayer, dkef_loss, log_normalizer
from ssm_lib.dkef import model as dkef_model
from ssm_lib.dkef.alpha import approx_bp_system, cp_system
from tests.dkef_helpers import varied_dkef

D64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


_model = varied_dkef  # the shared model the pinned values were computed on


def _x(n: int = 6, dim: int = 4) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(3), dtype=D64)


def _kernel_by_differences(u: torch.Tensor, centres: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    diff = u.unsqueeze(-2) - centres
    return torch.exp(-(diff * diff).sum(-1) / (2 * s))


# ---------------------------------------------------------------- stored values (before the change)
def test_values_pinned_from_the_difference_implementation():
    model, x = _model(), _x()
    torch.testing.assert_close(model.unnormalized_log_prob(x).detach(), torch.tensor(
        [-6.84860534133782739, -7.61424682701028832, -7.38606317229754517, -7.33839988549779143,
         -6.76615865205088074, -6.75206795228501200], dtype=D64), rtol=1e-12, atol=0)
    log_z, se = log_normalizer(model, 3000, chunk=1000, generator=torch.Generator().manual_seed(4))
    assert log_z == pytest.approx(-0.12036019757286542, rel=1e-11)
    assert se == pytest.approx(0.004127589403615666, rel=1e-9)
    # CP's b since its kernel-layer seed draws (batch, M) rank-one signs, not a (batch, M, M) matrix
    # (issue 25; before: -0.11810838321782922, -0.08382107581703872, -0.20504230854983385)
    b_cp = [-0.019312705968797455, -0.16143721997662824, -0.23056180247031854]
    b_approx_bp = [-0.10377114257454302, -0.14557897760483623, -0.35575573783031650]
    for system, b3 in ((cp_system, b_cp), (approx_bp_system, b_approx_bp)):
        G, b, c = system(model, x, generator=torch.Generator().manual_seed(5))
        assert G.sum().item() == pytest.approx(0.7041659354444969, rel=1e-11)
        assert G.square().sum().item() == pytest.approx(0.06588166450496079, rel=1e-11)
        torch.testing.assert_close(b[:3].detach(), torch.tensor(b3, dtype=D64), rtol=1e-11, atol=0)
        assert c.item() == pytest.approx(-0.9105572373088561, rel=1e-12)
    assert dkef_loss(model, x, "cp", generator=torch.Generator().manual_seed(6)).item() == pytest.approx(
        -1.1128356527327907, rel=1e-11)
    loss = dkef_loss(model, x, "approx_bp", generator=torch.Generator().manual_seed(6)).item()
    assert loss == pytest.approx(-0.6123329125242828, rel=1e-11)


# ---------------------------------------------------------------- the kernel layer's forward
def test_kernel_layer_matches_differences_with_gradients():
    g = torch.Generator().manual_seed(8)
    u = (torch.randn(7, 5, generator=g, dtype=D64) * 2 + 1).requires_grad_(True)
    c = (torch.randn(9, 5, generator=g, dtype=D64) - 0.5).requires_grad_(True)
    s = torch.tensor(1.7, dtype=D64, requires_grad=True)
    torch.testing.assert_close(GaussianKernelLayer(c, s)(u), _kernel_by_differences(u, c, s),
                               rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(lambda u, c, s: GaussianKernelLayer(c, s)(u), (u, c, s))
    # second derivatives too: the score-matching losses differentiate the score
    assert torch.autograd.gradgradcheck(lambda u, c, s: GaussianKernelLayer(c, s)(u), (u[:3], c[:4], s))
    # a feature vector equal to a centre: kernel value exactly 1 there
    assert GaussianKernelLayer(c, s)(c[2:3].detach().clone())[0, 2].item() == pytest.approx(1.0, abs=1e-14)


def test_kernel_layer_float32_far_from_the_origin():
    """Features at 1e3 from the origin with unit spread: centring keeps float32 accuracy."""
    g = torch.Generator().manual_seed(9)
    u = torch.randn(40, 30, generator=g, dtype=D64) * 0.3 + 1e3
    c = torch.randn(50, 30, generator=g, dtype=D64) * 0.3 + 1e3
    s = torch.tensor(2.0, dtype=D64)
    exact = _kernel_by_differences(u, c, s)
    ours = GaussianKernelLayer(c.float(), s.float())(u.float()).double()
    assert (ours - exact).abs().max().item() < 1e-4


# ---------------------------------------------------------------- CP / Approx BP seeds
def _dense_system(model: DKEF, x: torch.Tensor, method: str, generator: torch.Generator):
    """The quadratic by the generic sweep (a dense identity per row at the kernel layer)."""
    var = model.base_std**2
    w = model.kernel_weights()
    dk, trace = 0, 0
    for j, layers in enumerate(model.kernel_layers()):
        _, g, h = hessian_diagonal(layers, x, method=method, generator=generator)
        dk, trace = dk + w[j] * g, trace + w[j] * h.sum(-1)
    g0 = -x / var
    G = torch.einsum("bmd,bnd->mn", dk, dk) / x.shape[0]
    b = ((dk * g0.unsqueeze(1)).sum(-1) + trace).mean(0)
    return G, b


def _signs_on_the_diagonal(real):
    """The kernel layer's ``(batch, M, M)`` signs of the dense sweep with a ``(batch, M)`` draw on
    the diagonal and zeros elsewhere (there they meet zero weights), as the elementwise CP seed
    draws them."""
    def draw(shape, like, generator):
        if len(shape) == 3 and shape[1] == shape[2]:
            return torch.diag_embed(real(shape[:2], like, generator))
        return real(shape, like, generator)
    return draw


@pytest.mark.parametrize("method", ["cp", "approx_bp"])
def test_curvature_system_matches_the_dense_sweep(method, monkeypatch):
    system = {"cp": cp_system, "approx_bp": approx_bp_system}[method]
    model, x = _model(), _x(8)
    assert model.n_inducing != 6    # the (batch, M, M) draw is told apart by its shape from (batch, M, F)
    params = [p for p in model.parameters() if p.requires_grad]
    G, b, _ = system(model, x, generator=torch.Generator().manual_seed(11))
    monkeypatch.setattr(dkef_model, "rademacher", _signs_on_the_diagonal(dkef_model.rademacher))
    G0, b0 = _dense_system(model, x, method, torch.Generator().manual_seed(11))
    torch.testing.assert_close(G, G0, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(b, b0, rtol=1e-12, atol=1e-14)
    weights = torch.linspace(-1, 2, b.numel(), dtype=D64)
    grads = torch.autograd.grad((G * G).sum() + (b * weights).sum(), params, allow_unused=True)
    grads0 = torch.autograd.grad((G0 * G0).sum() + (b0 * weights).sum(), params, allow_unused=True)
    assert sum(a is not None for a in grads) >= len(params) - 1       # all but the ridge
    for a, a0 in zip(grads, grads0, strict=True):
        assert (a is None) == (a0 is None)
        if a is not None:
            torch.testing.assert_close(a, a0, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- log Z: budget and memory
def test_log_normalizer_does_not_depend_on_the_memory_budget():
    model = _model()
    full = log_normalizer(model, 3000, chunk=1000, generator=torch.Generator().manual_seed(4))
    tiny = log_normalizer(model, 3000, chunk=1000, generator=torch.Generator().manual_seed(4),
                          memory_budget=4096)   # pieces of a few rows
    assert tiny == pytest.approx(full, rel=1e-12)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1GB"])
def test_log_normalizer_memory_budget_is_checked(bad):
    with pytest.raises((ValueError, TypeError), match="memory_budget"):
        log_normalizer(_model(), 10, memory_budget=bad)


def _largest_allocation(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.cpu_memory_usage for e in prof.events())


def test_log_normalizer_stays_within_its_memory_budget():
    """A chunk of 20000 samples against M = 100 inducing points with 30 features (float32):
    the old (chunk, M, F) differences were 240 MB per kernel, one (chunk, M) matrix 8 MB; the
    budget is 2 MiB."""
    model = _model(m=100, dim=5, hidden=30, dtype=torch.float32)
    budget = 2 * 2**20
    largest = _largest_allocation(lambda: log_normalizer(model, 20000, chunk=20000, memory_budget=budget,
                                                         generator=torch.Generator().manual_seed(0)))
    assert largest <= budget


# ---------------------------------------------------------------- points on an inducing point
def _log_p_by_differences(model: DKEF, x: torch.Tensor) -> torch.Tensor:
    """The unnormalised log density from explicit feature differences (no clamp anywhere)."""
    w, s = model.kernel_weights(), model.bandwidths()
    out = model.base_log_prob(x)
    for j, phi in enumerate(model.features):
        out = out + w[j] * _kernel_by_differences(phi(x), phi(model.inducing), s[j]) @ model.alpha
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_second_derivatives_at_the_inducing_points(dtype):
    """Data rows equal to inducing points (the paper's setting: inducing points are training rows,
    so a training batch meets them): there the computed squared feature distance rounds to
    about 0, sometimes below it. The clamp at 0 must not cut the graph, or the Hessian loses
    the kernel's own curvature :math:`-k_m I / s` at that point (exact SM was off by 40-60 % on
    such rows, in float32, on RedWine). Oracle: the per-row Hessian trace of the explicit
    difference formula."""
    model = _model(m=40, dim=4, hidden=6, dtype=dtype)
    x = model.inducing.detach().clone()
    ours = dkef_loss(model, x, "exact", reduction="none").detach().double()
    model64 = copy.deepcopy(model).double()
    rows = []
    for row in x.double():
        def f(r):
            return _log_p_by_differences(model64, r[None])[0]
        grad = torch.autograd.functional.jacobian(f, row)
        trace = torch.autograd.functional.hessian(f, row).diagonal().sum()
        rows.append(0.5 * grad.square().sum() + trace)
    oracle = torch.stack(rows).detach()
    tol = 1e-10 if dtype == torch.float64 else 2e-3
    torch.testing.assert_close(ours, oracle, rtol=tol, atol=tol * oracle.abs().max().item())
