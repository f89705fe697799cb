"""Pins of CP and Approx BP on a float64 NICE: the per-sample losses and a probe of the parameter
gradients, recorded from the implementation of 2026-12-06 (commit 0e68fd0).

The oracle tests in ``test_nice_curvature.py`` check CP's mean against autograd Hessians and
Approx BP where it is exact; these pins check that a change made for speed (for example reusing
the coupling's recorded activations in the backward sweep, issue 25) returns the same numbers,
including Approx BP's bias and CP's draws for a fixed generator."""

from __future__ import annotations

import pytest
import torch

from ssm_lib.curvature import approx_backprop_score_matching, curvature_propagation_score_matching
from tests.test_nice_curvature import _nice, _points

PINS = {
    "approx_bp": ([-3.2655273486971987, -2.5694446057154336, 3.0150524636153273, -2.9921697507489471],
                  40.123010052216685),
    "cp": ([-1.8251025623405788, -1.1020919637528181, 4.592993469090735, -1.729974923281163],
           33.807384027104604),
}


@pytest.mark.parametrize("method", sorted(PINS))
def test_nice_curvature_losses_and_gradients_are_pinned(method):
    model = _nice(6, 3, hidden=5, depth=2, seed=11)
    x = _points(4, 6, 5)
    if method == "cp":
        loss = curvature_propagation_score_matching(model, x, reduction="none",
                                                    generator=torch.Generator().manual_seed(3))
    else:
        loss = approx_backprop_score_matching(model, x, reduction="none")
    loss.mean().backward()
    # a fixed linear probe of every parameter's gradient (a swapped or dropped term moves it)
    probe = sum((p.grad * torch.linspace(-1, 1, p.numel(), dtype=p.dtype).reshape(p.shape)).sum()
                for p in model.parameters())
    values, probe_pin = PINS[method]
    torch.testing.assert_close(loss.detach(), torch.tensor(values, dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)
    assert probe.item() == pytest.approx(probe_pin, rel=1e-11)
