"""Bad input gets a ValueError naming the argument; inputs are never mutated."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import denoising_score_matching, exact_score_matching, fisher_divergence, sliced_score_matching

LOSSES = {
    "exact_loop": lambda f, x: exact_score_matching(f, x, method="loop"),
    "exact_vmap": lambda f, x: exact_score_matching(f, x, method="vmap"),
    "ssm": lambda f, x: sliced_score_matching(f, x, n_projections=2,
                                              generator=torch.Generator().manual_seed(0)),
    "ssm_vr": lambda f, x: sliced_score_matching(f, x, variance_reduction=True),
    "dsm": lambda f, x: denoising_score_matching(f, x, 0.3, generator=torch.Generator().manual_seed(0)),
}


def model(x):
    return torch.tanh(x) * 2.0 - x


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("requires_grad", [False, True])
def test_x_keeps_values_and_requires_grad(loss, requires_grad):
    x = torch.randn(5, 3, dtype=torch.float64).requires_grad_(requires_grad)
    before = x.detach().clone()
    out = LOSSES[loss](model, x)
    assert torch.isfinite(out)
    assert x.requires_grad == requires_grad
    assert torch.equal(x.detach(), before)
    assert x.grad is None


@pytest.mark.parametrize("loss", list(LOSSES))
def test_wrong_x_shape_names_x(loss):
    with pytest.raises(ValueError, match="x must"):
        LOSSES[loss](model, torch.zeros(3))
    with pytest.raises(ValueError, match="x must"):
        LOSSES[loss](model, [[0.0, 1.0]])


@pytest.mark.parametrize("loss", list(LOSSES))
def test_score_output_shape_mismatch_names_score_fn(loss):
    with pytest.raises(ValueError, match="score_fn"):
        LOSSES[loss](lambda x: x[:, :1], torch.zeros(4, 3))


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf"), torch.tensor([0.1, -0.1]),
                                   torch.ones(3)])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching(model, torch.zeros(2, 3), sigma)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"n_projections": 0}, "n_projections"),
    ({"n_projections": 1.5}, "n_projections"),
    ({"projection": "uniform"}, "projection"),
    ({"method": "magic"}, "method"),
    ({"reduction": "max"}, "reduction"),
    ({"directions": torch.zeros(2, 4, 3)}, "directions"),
])
def test_bad_ssm_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sliced_score_matching(model, torch.zeros(4, 3), **kwargs)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"method": "jacfwd"}, "method"),
    ({"reduction": "avg"}, "reduction"),
    ({"method": "vmap", "chunk_size": 0}, "chunk_size"),
])
def test_bad_exact_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        exact_score_matching(model, torch.zeros(4, 3), **kwargs)


def test_bad_dsm_arguments():
    with pytest.raises(ValueError, match="noise"):
        denoising_score_matching(model, torch.zeros(4, 3), 0.1, noise=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="sigma_weight_power"):
        denoising_score_matching(model, torch.zeros(4, 3), 0.1, sigma_weight_power="two")


def test_non_float_x_and_empty_batch():
    with pytest.raises(ValueError, match="floating"):
        sliced_score_matching(model, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="x must"):
        exact_score_matching(model, torch.zeros(0, 3))


def test_fisher_divergence_checks_both_functions():
    with pytest.raises(ValueError, match="true_score_fn"):
        fisher_divergence(model, lambda x: x[:, :2], torch.zeros(2, 3))
