"""The registry of objectives: every name builds the loss it says, with its fixed options."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import losses
from ssm_lib.losses import OBJECTIVES, make_objective

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
}
REQUIRED = {"dsm": {"sigma": 0.2}}


def test_every_registered_name_is_tested_here():
    assert set(OBJECTIVES) >= set(DIRECT)
    untested = set(OBJECTIVES) - set(DIRECT)
    assert not untested, f"add {untested} to DIRECT in this test"


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
        make_objective("mle")
    with pytest.raises(ValueError, match="sigma"):
        make_objective("dsm")
    with pytest.raises(ValueError, match="variance_reduction"):
        make_objective("ssm", variance_reduction=True)
