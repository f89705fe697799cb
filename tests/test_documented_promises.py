"""Promises of the library's docstrings that a stranger's use found broken (2026-12-08), each
checked here: no gradient into directions or into MLE's x, the fast path and a forward set on
the instance, DKEF and the global generator, a loss that cannot train the model, a sampler's
signature, the metrics' degenerate input, and the submodules reachable from ``import ssm_lib``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ssm_lib import DKEF, NICE, ScoreMLP, fit, sliced_score_matching
from ssm_lib.losses import negative_log_likelihood
from ssm_lib.metrics import loglog_slope, mean_and_standard_error
from ssm_lib.training import train_loop

F64 = torch.float64


@pytest.mark.parametrize("method", ["auto", "backward", "forward", "finite_difference"])
@pytest.mark.parametrize("variance_reduction", [False, True])
def test_no_gradient_flows_into_given_directions(method, variance_reduction):
    torch.manual_seed(0)
    net = ScoreMLP(3, hidden=8, depth=2).double()
    x = torch.randn(4, 3, dtype=F64)
    v = torch.randn(2, 4, 3, dtype=F64, requires_grad=True)
    loss = sliced_score_matching(net, x, n_projections=2, directions=v, method=method,
                                 variance_reduction=variance_reduction)
    loss.backward()
    assert v.grad is None
    assert all(p.grad is not None for p in net.parameters())


def test_no_gradient_flows_into_x_under_mle():
    torch.manual_seed(0)
    flow = NICE(4, hidden=8, n_couplings=2).double()
    x = torch.randn(5, 4, dtype=F64, requires_grad=True)
    negative_log_likelihood(flow, x).backward()
    assert x.grad is None
    assert any(p.grad is not None for p in flow.parameters())


def test_the_fast_path_declines_a_forward_set_on_the_instance():
    torch.manual_seed(0)
    net = ScoreMLP(3, hidden=8, depth=2).double()
    x = torch.randn(6, 3, dtype=F64)
    v = torch.randn(6, 3, dtype=F64)
    assert net.score_and_jvp(x, v) is not None
    net.forward = lambda y: 3.0 * net.net(y)
    assert net.score_and_jvp(x, v) is None and net.projected_score_and_jvp(x, v) is None
    g = torch.Generator().manual_seed(1)
    auto = sliced_score_matching(net, x, generator=g)
    g.manual_seed(1)
    backward = sliced_score_matching(net, x, generator=g, method="backward")
    assert torch.allclose(auto, backward, rtol=1e-10, atol=1e-12)


def test_building_a_dkef_from_a_generator_leaves_the_global_generator_alone():
    inducing = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = DKEF(inducing, n_kernels=2, hidden=6, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(4), expected)
    # the weights still come from the generator alone
    torch.manual_seed(999)
    b = DKEF(inducing, n_kernels=2, hidden=6, generator=torch.Generator().manual_seed(7))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_a_loss_that_cannot_reach_the_model_is_an_error_before_anything_changes():
    torch.manual_seed(0)
    net = ScoreMLP(2, hidden=8, depth=1)
    before = {k: t.clone() for k, t in net.state_dict().items()}
    data = torch.randn(64, 2)
    with pytest.raises(ValueError, match="no parameter being trained received a gradient at step 1"):
        fit(net, data, "ssm", n_steps=5, score_fn=lambda y: net(y).detach(), seed=0, progress=False)
    other = ScoreMLP(2, hidden=8, depth=1)
    with pytest.raises(ValueError, match="received a gradient"):
        fit(net, data, "ssm_vr", n_steps=5, score_fn=other, seed=0, progress=False)
    for k, t in net.state_dict().items():
        assert torch.equal(t, before[k])
    # train_loop, the loop under fit, says the same for its own parameters
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="at step 1"):
        train_loop(lambda step: (w.detach() ** 2).sum() + torch.ones((), requires_grad=True),
                   [w], torch.optim.SGD([w], lr=0.1), 3, progress=False)


def test_a_sampler_of_the_wrong_signature_is_refused_before_the_first_step():
    net = ScoreMLP(2, hidden=8, depth=1)
    with pytest.raises(ValueError, match=r"data must be callable as data\(n, generator\)"):
        fit(net, lambda n: torch.randn(n, 2), "ssm", n_steps=2, seed=0, progress=False)


def test_the_metrics_refuse_degenerate_input_with_the_real_reason():
    with pytest.raises(ValueError, match="two different values"):
        loglog_slope([2.0, 2.0], [1.0, 3.0])
    with pytest.raises(ValueError, match="values must be a tensor, got list"):
        mean_and_standard_error([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 2 entries, got 1"):
        mean_and_standard_error(torch.ones(1))
    assert loglog_slope([1.0, 2.0, 4.0], [3.0, 12.0, 48.0]) == pytest.approx(2.0)


def test_every_public_submodule_is_reachable_from_the_package():
    code = ("import ssm_lib\n"
            "for name in ssm_lib.SUBMODULES:\n"
            "    assert getattr(ssm_lib, name).__name__ == 'ssm_lib.' + name, name\n"
            "try:\n"
            "    ssm_lib.no_such_module\n"
            "except AttributeError as e:\n"
            "    assert 'no_such_module' in str(e)\n"
            "else:\n"
            "    raise SystemExit('no AttributeError')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
