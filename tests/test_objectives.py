"""The registry of objectives: every name builds the loss it says, with its fixed options."""

from __future__ import annotations

import math

import pytest
import torch

from ssm_lib import EnergyMLP, ScoreMLP, curvature, fit, losses
from ssm_lib.losses import OBJECTIVES, make_objective, objective_input

F64 = torch.float64


def _score(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x) - 0.5 * x


def _x() -> torch.Tensor:
    return torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)


# Each name and the direct call it must equal (same generator seed on both sides).
DIRECT = {
    "exact": lambda x, g: losses.exact_score_matching(_score, x),
    "ssm": lambda x, g: losses.sliced_score_matching(_score, x, generator=g),
    "ssm_vr": lambda x, g: losses.sliced_score_matching(_score, x, generator=g, variance_reduction=True),
    "dsm": lambda x, g: losses.denoising_score_matching(_score, x, 0.2, generator=g),
    "dsm_sigma4": lambda x, g: losses.denoising_score_matching(_score, x, 0.2, generator=g,
                                                               sigma_weight_power=4),
}
REQUIRED = {"dsm": {"sigma": 0.2}, "dsm_sigma4": {"sigma": 0.2}}


def _energy() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)).double()


class _Gaussian(torch.nn.Module):
    """A model with an exact log-density (standard normal scaled by a parameter)."""

    def __init__(self):
        super().__init__()
        self.log_scale = torch.nn.Parameter(torch.tensor(0.3, dtype=F64))

    def log_prob(self, x):
        z = x / self.log_scale.exp()
        return -0.5 * (z**2).sum(1) - x.shape[1] * (self.log_scale + 0.5 * math.log(2 * math.pi))


# Objectives that take the model itself: each name, the model it is given, and the direct call.
MODEL_DIRECT = {
    "cp": (_energy, lambda m, x, g: curvature.curvature_propagation_score_matching(m, x, generator=g)),
    "approx_bp": (_energy, lambda m, x, g: curvature.approx_backprop_score_matching(m, x)),
    "mle": (_Gaussian, lambda m, x, g: -m.log_prob(x).mean()),
}


def test_every_registered_name_is_tested_here():
    assert set(OBJECTIVES) >= set(DIRECT) | set(MODEL_DIRECT)
    untested = set(OBJECTIVES) - set(DIRECT) - set(MODEL_DIRECT)
    assert not untested, f"add {untested} to DIRECT or MODEL_DIRECT in this test"
    assert all(OBJECTIVES[name].takes == "model" for name in MODEL_DIRECT)
    assert all(OBJECTIVES[name].takes == "score" for name in DIRECT)


@pytest.mark.parametrize("name", list(MODEL_DIRECT))
def test_objectives_that_take_the_model(name):
    make_model, direct = MODEL_DIRECT[name]
    model, x = make_model(), _x()
    assert objective_input(name, model) is model
    got = make_objective(name)(model, x, generator=torch.Generator().manual_seed(5))
    want = direct(model, x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_objective_input_picks_the_score_for_score_objectives():
    model = EnergyMLP(3, hidden=4, depth=1).double()
    assert objective_input("ssm", model) == model.score
    net = ScoreMLP(3, hidden=4, depth=1)
    assert objective_input("dsm", net) is net
    assert objective_input("exact", net, score_fn=_score) is _score
    with pytest.raises(ValueError, match="objective"):
        objective_input("no_such_objective", net)


def test_fit_gives_the_model_to_objectives_that_take_it():
    # MLE on a scaled normal: the fitted scale approaches the data's standard deviation
    model = _Gaussian()
    data = 2.0 * torch.randn(4000, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    fit(model, data, "mle", n_steps=300, lr=0.05, batch_size=256, progress=False)
    assert abs(float(model.log_scale.detach().exp()) - 2.0) < 0.1


@pytest.mark.parametrize("name", list(DIRECT))
def test_make_objective_equals_the_direct_call(name):
    x = _x()
    objective = make_objective(name, **REQUIRED.get(name, {}))
    got = objective(_score, x, generator=torch.Generator().manual_seed(5))
    want = DIRECT[name](x, torch.Generator().manual_seed(5))
    assert torch.equal(got, want)


def test_ssm_and_ssm_vr_differ_and_labels_are_distinct():
    x = _x()
    a = make_objective("ssm")(_score, x, generator=torch.Generator().manual_seed(1))
    b = make_objective("ssm_vr")(_score, x, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a, b)
    labels = [spec.label for spec in OBJECTIVES.values()]
    assert len(set(labels)) == len(labels)
    assert OBJECTIVES["ssm_vr"].label == "SSM-VR" and OBJECTIVES["exact"].label == "Exact SM"


def test_options_are_passed_through():
    x = _x()
    v = torch.ones(3, *x.shape, dtype=F64)
    got = make_objective("ssm", n_projections=3, directions=v)(_score, x)
    assert torch.equal(got, losses.sliced_score_matching(_score, x, n_projections=3, directions=v))


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="objective"):
        make_objective("no_such_objective")
    with pytest.raises(ValueError, match="sigma"):
        make_objective("dsm")
    with pytest.raises(ValueError, match="variance_reduction"):
        make_objective("ssm", variance_reduction=True)
