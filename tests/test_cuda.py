"""The library on a GPU: every objective, model, sampler and the training core, against the CPU.

Skipped where CUDA is not there (CI and the project's machines); tools/device/gpu_smoke.sh runs
it first on a lent GPU machine. Float64 throughout, so a CUDA result must equal the CPU's to
rounding (``rtol`` 1e-9): what is random is drawn on the CPU and moved, or passed explicitly
(``directions=``, ``noise=``); what must be drawn on the device (CP's vectors, Langevin's noise,
training batches) is checked for being reproducible and against its float64 oracle by its mean.
``SSM_LIB_TEST_DEVICE=cpu`` runs the same tests with the CPU in the GPU's place, which is how
they were themselves tested here.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

from ssm_lib import (
    DKEF,
    NICE,
    EnergyMLP,
    Gaussian,
    ScoreMLP,
    approx_backprop_score_matching,
    curvature_propagation_score_matching,
    denoising_score_matching,
    exact_score_matching,
    fit,
    langevin_dynamics,
    make_generator,
    sample_projections,
    sliced_score_matching,
)
from ssm_lib.losses import jacobian_trace

DEVICE = torch.device(os.environ.get("SSM_LIB_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(),
                                reason="no CUDA device (tools/device/gpu_smoke.sh runs these on one)")
F64 = torch.float64
RTOL, ATOL = 1e-9, 1e-11


def _data(n: int = 32, d: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64) * 1.3 + 0.2


def _energy(d: int = 5, seed: int = 1) -> EnergyMLP:
    torch.manual_seed(seed)
    return EnergyMLP(d, hidden=24, depth=2).double()


def _score(d: int = 5, seed: int = 2) -> ScoreMLP:
    torch.manual_seed(seed)
    return ScoreMLP(d, hidden=24, depth=2).double()


def _on_both(model: torch.nn.Module, loss_fn) -> None:  # noqa: ANN001
    """``loss_fn(model, to)`` on the CPU and on DEVICE: the same loss and parameter gradients."""
    results = []
    for device in (torch.device("cpu"), DEVICE):
        m = copy.deepcopy(model).to(device)
        loss = loss_fn(m, lambda t, device=device: t.to(device))
        assert loss.device.type == device.type and loss.dtype == F64
        grads = torch.autograd.grad(loss, [p for p in m.parameters() if p.requires_grad], allow_unused=True)
        results.append((loss.detach().cpu(), [None if g is None else g.cpu() for g in grads]))
    (l_cpu, g_cpu), (l_dev, g_dev) = results
    torch.testing.assert_close(l_dev, l_cpu, rtol=RTOL, atol=ATOL)
    for a, b in zip(g_dev, g_cpu, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_exact_score_matching_on_the_device_equals_the_cpu():
    x = _data()
    _on_both(_score(), lambda m, to: exact_score_matching(m, to(x)))
    _on_both(_energy(), lambda m, to: exact_score_matching(m.score, to(x)))


@pytest.mark.parametrize("vr", [False, True])
@pytest.mark.parametrize("method", ["auto", "backward", "forward"])
def test_sliced_score_matching_with_given_directions_equals_the_cpu(vr, method):
    x = _data()
    v = sample_projections("gaussian", (3, *x.shape), generator=torch.Generator().manual_seed(5), dtype=F64)
    _on_both(_score(), lambda m, to: sliced_score_matching(m, to(x), n_projections=3, directions=to(v),
                                                           variance_reduction=vr, method=method))


@pytest.mark.parametrize("power", [0.0, 2.0])
def test_denoising_score_matching_with_given_noise_equals_the_cpu(power):
    x = _data()
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=F64)
    _on_both(_score(), lambda m, to: denoising_score_matching(m, to(x), 0.37, noise=to(z),
                                                              sigma_weight_power=power))


def test_approx_bp_on_the_device_equals_the_cpu():
    x = _data()
    _on_both(_energy(), lambda m, to: approx_backprop_score_matching(m, to(x)))


def test_curvature_propagation_on_the_device_is_reproducible_and_unbiased():
    x = _data(n=8)
    energy = _energy().to(DEVICE)
    xs = x.to(DEVICE).repeat(4000, 1)  # 4000 independent draws per point in one sweep

    def draws(seed: int) -> torch.Tensor:
        g = make_generator(seed, DEVICE)
        return curvature_propagation_score_matching(energy, xs, generator=g, reduction="none").detach()

    first = draws(3)
    assert first.device.type == DEVICE.type
    torch.testing.assert_close(draws(3), first, rtol=0, atol=0)
    per_point = first.reshape(4000, 8)
    exact = exact_score_matching(energy.score, x.to(DEVICE), reduction="none").detach()
    z = (per_point.mean(0) - exact) / (per_point.std(0) / 4000**0.5)
    assert z.abs().max() < 4.5, z


@pytest.mark.parametrize("method", ["loop", "vmap", "auto"])
def test_jacobian_trace_by_every_method_equals_the_cpu_loop(method):
    x = _data(n=16, d=7)
    model = _score(d=7)
    _, ref = jacobian_trace(model, x, method="loop")
    _, got = jacobian_trace(copy.deepcopy(model).to(DEVICE), x.to(DEVICE), method=method)
    torch.testing.assert_close(got.detach().cpu(), ref.detach(), rtol=RTOL, atol=ATOL)


def test_nice_log_prob_and_score_on_the_device_equal_the_cpu():
    torch.manual_seed(4)
    flow = NICE(6, hidden=16, depth=2, n_couplings=4).double()
    x = _data(n=20, d=6)
    _on_both(flow, lambda m, to: m.log_prob(to(x)).mean())
    _on_both(flow, lambda m, to: exact_score_matching(lambda y, m=m: -torch.func.grad(
        lambda t: m.energy(t).sum())(y), to(x)))


@pytest.mark.parametrize("objective", ["exact", "ssm_vr", "approx_bp"])
def test_dkef_alpha_system_on_the_device_equals_the_cpu(objective):
    x = _data(n=40, d=4)
    model = DKEF(x[:10], n_kernels=2, hidden=8, generator=torch.Generator().manual_seed(2)).double()
    results = []
    for device in (torch.device("cpu"), DEVICE):
        m = copy.deepcopy(model).to(device)
        # ssm_vr draws its directions on the device: the same seed on the CPU and the GPU
        # gives different draws, so it is compared through its expectation below
        gen = make_generator(8, device)
        G, b, _ = m.alpha_system(x.to(device), objective, generator=gen, create_graph=False)
        results.append((G.detach().cpu(), b.detach().cpu()))
    (G0, b0), (G1, b1) = results
    if objective != "ssm_vr":
        torch.testing.assert_close(G1, G0, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(b1, b0, rtol=RTOL, atol=ATOL)
    else:  # SSM-VR keeps exact SM's G; only b's trace term is estimated
        torch.testing.assert_close(G1, G0, rtol=RTOL, atol=ATOL)
        assert torch.isfinite(b1).all()


def test_langevin_on_the_device_is_reproducible_and_reaches_its_target():
    target = Gaussian(torch.tensor([0.5, -1.0], dtype=F64),
                      torch.tensor([[1.0, 0.4], [0.4, 0.6]], dtype=F64))  # score moves to x's device
    x0 = torch.zeros(4000, 2, dtype=F64, device=DEVICE)

    def run(seed: int) -> torch.Tensor:
        return langevin_dynamics(target.score, x0, step_size=0.01, n_steps=800,
                                 generator=make_generator(seed, DEVICE))

    x = run(1)
    assert x.device.type == DEVICE.type and torch.equal(x0, torch.zeros_like(x0))
    torch.testing.assert_close(run(1), x, rtol=0, atol=0)
    # the chain's stationary law with step 0.01 is within about 1% of the target's moments
    torch.testing.assert_close(x.mean(0).cpu(), target.mean, rtol=0, atol=0.06)
    torch.testing.assert_close(torch.cov(x.T).cpu(), target.cov, rtol=0, atol=0.08)


def test_fit_on_the_device_trains_and_is_reproducible():
    data = _data(n=512, d=3, seed=9).to(DEVICE)

    def run() -> list[float]:
        model = _score(d=3).to(DEVICE)
        history = fit(model, data, "ssm_vr", n_steps=60, batch_size=64, lr=3e-3, seed=0, progress=False)
        assert next(model.parameters()).device.type == DEVICE.type
        return history.losses

    losses = run()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10  # it learns
    torch.testing.assert_close(torch.tensor(run()), torch.tensor(losses), rtol=1e-6, atol=1e-9)
