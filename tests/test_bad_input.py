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


@pytest.mark.parametrize(("sigmas", "message"), [
    (torch.tensor([True, False]), "sigmas must hold real numbers"),
    (torch.tensor([1.0 + 0j]), "sigmas must hold real numbers"),
    (torch.ones(2, 2), "sigmas must be a sequence of numbers \\(one dimension\\)"),
    ("1.0", "sigmas must be a sequence of numbers"),
    (1.0, "sigmas must be a sequence of numbers"),
    ([], "sigmas must hold at least one noise level"),
    (torch.tensor([1.0, float("inf")]), "sigmas must be finite"),
    ([1.0, 0.0], "sigmas must be positive and strictly decreasing"),
    ([0.5, 1.0], "sigmas must be positive and strictly decreasing"),
    ([1.0, 1.0], "sigmas must be positive and strictly decreasing"),
])
def test_a_bad_noise_schedule_names_sigmas(sigmas, message):
    from ssm_lib import annealed_langevin_dynamics

    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=message):
        annealed_langevin_dynamics(lambda y, s: -y, x0, sigmas=sigmas, step_size=0.1, n_steps_each=1)
    assert torch.equal(x0, torch.zeros(4, 2))


@pytest.mark.parametrize(("make", "message"), [
    (lambda G, M: G("0, 0", [[1.0, 0.0], [0.0, 1.0]]), "mean must be convertible to a tensor"),
    (lambda G, M: G([True, False], [[1.0, 0.0], [0.0, 1.0]]), "mean must be convertible to a tensor"),
    (lambda G, M: G([0.0, object()], [[1.0, 0.0], [0.0, 1.0]]), "mean must be convertible to a tensor"),
    (lambda G, M: G([0.0, 0.0], [[1.0, 0.0], [0.0, float("nan")]]), "cov must be finite"),
    (lambda G, M: G(torch.tensor([1 + 0j, 0j]), torch.eye(2)), "mean must hold real numbers"),
    (lambda G, M: M([0.5, 0.5], [[0.0], [float("inf")]], [[[1.0]], [[1.0]]]), "means must be finite"),
    (lambda G, M: G(torch.zeros(2, dtype=torch.float16), torch.eye(2)), "mean must be float32 or float64"),
    (lambda G, M: G([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]]), "cov must be symmetric"),
    (lambda G, M: M([0.5, 0.5], [0.0, 1.0], [[[1.0]], [[1.0]]]), "means must have shape \\(K, d\\)"),
    (lambda G, M: M([1.0], [[0.0], [1.0]], [[[1.0]], [[1.0]]]), "weights must have shape \\(K,\\)"),
])
def test_bad_density_parameters_are_named(make, message):
    from ssm_lib import Gaussian, GaussianMixture

    with pytest.raises(ValueError, match=message):
        make(Gaussian, GaussianMixture)


def test_whole_number_density_parameters_take_the_default_dtype():
    from ssm_lib import Gaussian

    p = Gaussian([0, 0], [[1, 0], [0, 1]])
    assert p.mean.dtype == torch.get_default_dtype() and p.cov.dtype == torch.get_default_dtype()


@pytest.mark.parametrize("dtype", [torch.int64, "float64", torch.complex64])
def test_a_density_takes_only_a_floating_dtype(dtype):
    from ssm_lib import Banana, Ring

    for density in (Banana, Ring):
        with pytest.raises(ValueError, match="dtype must be a floating torch.dtype"):
            density(dtype=dtype)


def test_a_ring_whose_constant_overflows_is_refused():
    from ssm_lib import Ring

    with pytest.raises(ValueError, match="width must be a positive number whose square"):
        Ring(width=1e-200)
    with pytest.raises(ValueError, match="overflow the normalising constant"):
        Ring(radius=1e300, width=1e-3)


def _wrong_type_calls():
    """Each public check of an argument's type, called with a value of the wrong type."""
    from paper_recipes.vae import BernoulliDecoder, GaussianEncoder, ImplicitEncoder
    from ssm_lib import sliced_score_matching
    from ssm_lib.dkef import DKEF, train_dkef
    from ssm_lib.implicit_vae import (
        fit_proposal,
        implicit_elbo_loss,
        importance_weighted_log_likelihood,
        wae_loss,
    )
    from ssm_lib.score_estimators import SteinScoreEstimator, median_bandwidth

    torch.manual_seed(0)
    dec, enc = BernoulliDecoder(2, 5, hidden=8, depth=1), ImplicitEncoder(5, 2, hidden=8, depth=1)
    x = torch.bernoulli(torch.full((4, 5), 0.5), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    dkef_x = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    dkef = DKEF(dkef_x[:4], n_kernels=1, hidden=5, generator=gen)
    return {
        "with_diagonal": lambda: median_bandwidth(torch.randn(6, 2), with_diagonal=1),
        "resample_alpha_rows": lambda: train_dkef(dkef, dkef_x, dkef_x, "exact", steps=1,
                                                  resample_alpha_rows=1, progress=False),
        "variance_reduction": lambda: sliced_score_matching(model, torch.randn(3, 2),
                                                            variance_reduction="yes"),
        "estimator": lambda: implicit_elbo_loss(enc, dec, 3, x, n_particles=2),
        "cost": lambda: wae_loss(enc, dec, SteinScoreEstimator(), x, cost="squared"),
        "proposal": lambda: importance_weighted_log_likelihood(x, dec, 3, n_samples=4),
        "proposal ": lambda: fit_proposal(dec, GaussianEncoder, x, steps=1),
    }


@pytest.mark.parametrize("argument", ["with_diagonal", "resample_alpha_rows", "variance_reduction",
                                      "estimator", "cost", "proposal", "proposal "])
def test_a_wrong_type_is_both_a_value_error_and_a_type_error(argument):
    # the library's rule (every bad input a ValueError naming the argument) and Python's (a
    # wrong type a TypeError) at once: `except ValueError` and `except TypeError` both catch it
    with pytest.raises(ValueError, match=argument.strip()) as caught:
        _wrong_type_calls()[argument]()
    assert isinstance(caught.value, TypeError)


def test_numpy_booleans_are_flags_too():
    import numpy as np

    from ssm_lib.score_estimators import median_bandwidth

    s = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    for flag in (True, False):
        assert torch.equal(median_bandwidth(s, with_diagonal=np.bool_(flag)),
                           median_bandwidth(s, with_diagonal=flag))


def test_fit_names_a_bad_model_objective_and_sampler():
    from ssm_lib import ScoreMLP, fit

    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    net = ScoreMLP(2, hidden=8, depth=1)
    with pytest.raises(ValueError, match="objective must be a name in .* or a callable"):
        fit(net, x, 3, n_steps=1, progress=False)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        fit(model, x, "ssm", n_steps=1, progress=False)
    frozen = ScoreMLP(2, hidden=8, depth=1).requires_grad_(False)
    with pytest.raises(ValueError, match="model has no trainable parameters"):
        fit(frozen, x, "ssm", n_steps=1, progress=False)
    with pytest.raises(ValueError, match="must return a tensor of shape \\(n, \\*event_shape\\) with n = 4"):
        fit(net, lambda n, g: x[: n - 1], "ssm", n_steps=1, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="the objective must return a scalar tensor"):
        fit(net, x, lambda f, xb, generator=None: (f(xb) ** 2).sum(1), n_steps=1, batch_size=4,
            progress=False)


def test_a_callable_objective_without_the_generator_keyword_is_named_before_training():
    # fit calls objective(score_fn, x, generator=g); a callable that cannot take it was a
    # TypeError from inside the first step ("got an unexpected keyword argument 'generator'")
    from ssm_lib import ScoreMLP, fit
    from ssm_lib.flow_training import train_with_validation

    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    net = ScoreMLP(2, hidden=8, depth=1)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match=r"objective must be callable as objective\(score_fn, x, "
                                         r"generator=\.\.\.\), but .*lambda.* has the signature \(f, xb\)"):
        fit(net, x, lambda f, xb: (f(xb) ** 2).sum(1).mean(), n_steps=1, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    history = fit(net, x, lambda f, xb, generator: (f(xb) ** 2).sum(1).mean(), n_steps=1,
                  batch_size=4, progress=False)  # the keyword taken by name is enough
    assert len(history.losses) == 1
    with pytest.raises(ValueError, match=r"objective must be callable as objective\(model, x, generator\)"):
        train_with_validation(torch.nn.Linear(2, 2), lambda m, xb: m(xb).sum(), x, x, epochs=1,
                              batch_size=4, generator=torch.Generator().manual_seed(0), progress=False)


def test_train_loop_needs_a_validation_function_for_patience_and_restore():
    from ssm_lib.training import train_loop

    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    for kwargs in ({"patience": 2}, {"restore": torch.nn.Linear(1, 1)}, {"validate_at_start": True}):
        with pytest.raises(ValueError, match="need validate"):
            train_loop(lambda t: (w**2).sum(), [w], opt, 1, progress=False, **kwargs)
    assert torch.equal(w.detach(), torch.zeros(1))  # refused before any step
