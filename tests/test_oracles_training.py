"""Oracle tests for the training loop ``ssm_lib.fit`` that kill mutants the older tests let
through (issue 19): every data row is drawn, and the divergence monitor stops a finite loss
blow-up and a gradient-only blow-up at the step where they pass the factor K.

The objectives here are callables whose value and gradient norm are set by hand at every
step: ``value + scale * (w - sg[w])`` has the value ``value`` and the gradient ``scale`` with
respect to the single weight ``w``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssm_lib import TrainingDivergedError, fit


class _Scripted:
    """A callable objective whose loss value and gradient norm at step t (1-based) are
    ``values[t]`` and ``|scales[t]|`` for a model with one scalar weight."""

    def __init__(self, model: nn.Module, values: dict[int, float], scales: dict[int, float]):
        self.w = next(model.parameters())
        self.values, self.scales, self.step = values, scales, 0

    def __call__(self, score, x, generator=None):
        self.step += 1
        value = self.values.get(self.step, 1.0)
        scale = self.scales.get(self.step, 1.0)
        w = self.w.sum()
        return value + scale * (w - w.detach())


def _one_weight() -> nn.Module:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5)
    return model


def test_every_data_row_is_eventually_drawn():
    """Mutant: ``fit``'s minibatch sampler never drawing the last row
    (``torch.randint(0, N - 1, ...)`` for ``torch.randint(0, N, ...)``). Oracle: 5 distinct
    rows, 40 batches of 8 draws with replacement: each row is missed with probability
    (4/5)^320 < 1e-30, so every row must appear, and each row's share must be near 1/5."""
    data = torch.arange(5, dtype=torch.float32).reshape(5, 1)
    seen = []

    def objective(score, x, generator=None):
        seen.append(x.detach().reshape(-1).clone())
        return (score(x) ** 2).mean()

    fit(nn.Linear(1, 1), data, objective, n_steps=40, batch_size=8, seed=3, progress=False)
    counts = torch.bincount(torch.cat(seen).long(), minlength=5)
    assert counts.numel() == 5 and bool((counts > 0).all()), counts.tolist()
    assert int(counts.sum()) == 320
    assert bool(((counts.double() / 320 - 0.2).abs() < 0.08).all()), counts.tolist()  # ~3.6 sd


def test_finite_loss_blow_up_stops_at_the_step_it_passes_k():
    """Mutant: the divergence monitor comparing with K^2 times the step-1 scale instead of K
    (``self.factor ** 2 * self.ref_loss``). Oracle: K = 10, a loss of 1 that jumps to 50 (finite,
    more than K but less than K^2 times its step-1 scale) at step 4: training must stop with
    ``TrainingDivergedError`` naming step 4; a jump to 9 (less than K) must not stop it."""
    model = _one_weight()
    with pytest.raises(TrainingDivergedError, match=r"step 4\b"):
        fit(model, torch.zeros(4, 1), _Scripted(model, {4: 50.0}, {}), n_steps=8, batch_size=2,
            lr=1e-6, divergence_factor=10.0, progress=False)
    model = _one_weight()
    hist = fit(model, torch.zeros(4, 1), _Scripted(model, {4: 9.0}, {}), n_steps=8, batch_size=2,
               lr=1e-6, divergence_factor=10.0, progress=False)
    assert hist.losses[3] == pytest.approx(9.0)


def test_gradient_only_blow_up_stops_training():
    """Mutant: the divergence monitor ignoring the gradient norm (the clause
    ``or grad_norm > self.factor * self.ref_grad`` dropped). Oracle: the loss stays exactly 1
    while the gradient norm jumps from 1 to 50 at step 3 with K = 10: training must stop at
    step 3, and must not stop when the jump is to 9."""
    model = _one_weight()
    with pytest.raises(TrainingDivergedError, match=r"step 3\b"):
        fit(model, torch.zeros(4, 1), _Scripted(model, {}, {3: 50.0}), n_steps=6, batch_size=2,
            lr=1e-6, divergence_factor=10.0, progress=False)
    model = _one_weight()
    hist = fit(model, torch.zeros(4, 1), _Scripted(model, {}, {3: 9.0}), n_steps=6, batch_size=2,
               lr=1e-6, divergence_factor=10.0, progress=False)
    assert hist.losses == pytest.approx([1.0] * 6)


def test_gradient_blow_up_threshold_is_k_not_k_squared():
    """Mutant: the gradient clause comparing with K^2 (``self.factor ** 2 * self.ref_grad``).
    Oracle: K = 10 and a gradient norm of 2 at step 1 (scale max(2, 1) = 2) that jumps to 60 at
    step 5 (30 times the scale: over K, under K^2) must stop training at step 5."""
    model = _one_weight()
    with pytest.raises(TrainingDivergedError, match=r"step 5\b"):
        fit(model, torch.zeros(4, 1), _Scripted(model, {}, {1: 2.0, 5: 60.0}), n_steps=8, batch_size=2,
            lr=1e-6, divergence_factor=10.0, progress=False)
