"""API-contract tests for the cases that ``benchmarks/api_cases.py`` found not ending in a
clear error (issue 21): each asserts the exception type and that the message names the
argument, raised before any work (at construction where the argument is given)."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import (
    NICE,
    Banana,
    ConditionalScoreMLP,
    EnergyMLP,
    Gaussian,
    GaussianMixture,
    NetworkScoreEstimator,
    Ring,
    ScoreMLP,
    SpectralScoreEstimator,
    SteinScoreEstimator,
    approx_backprop_score_matching,
    curvature_propagation_score_matching,
    make_objective,
    save_model,
)
from ssm_lib.dkef import DKEF, sample_langevin, train_dkef
from ssm_lib.flow_training import evaluate_flow
from ssm_lib.losses import negative_log_likelihood
from ssm_lib.score_estimators import median_bandwidth


def _x(dtype=torch.float32) -> torch.Tensor:
    return torch.randn(8, 2, generator=torch.Generator().manual_seed(0)).to(dtype)


def _energy() -> EnergyMLP:
    torch.manual_seed(0)
    return EnergyMLP(2, hidden=8, depth=2)


def _nice() -> NICE:
    torch.manual_seed(0)
    return NICE(2, hidden=8, depth=2, n_couplings=2)


@pytest.mark.parametrize("loss", [curvature_propagation_score_matching, approx_backprop_score_matching])
def test_curvature_losses_name_a_dtype_mismatch_instead_of_crashing_in_torch(loss):
    with pytest.raises(ValueError, match=r"x has dtype torch.float64 .* torch.float32"):
        loss(_energy(), _x(torch.float64))
    assert torch.isfinite(loss(_energy(), _x(), generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    "call",
    [
        lambda g: approx_backprop_score_matching(_energy(), _x(), generator=g),
        lambda g: curvature_propagation_score_matching(_energy(), _x(), generator=g),
        lambda g: negative_log_likelihood(_nice(), _x(), generator=g),
    ],
)
def test_objectives_that_do_not_draw_still_check_their_generator(call):
    with pytest.raises(ValueError, match="generator"):
        call(5)
    call(None)
    call(torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "name, options, arg",
    [
        ("ssm", dict(n_projections=0), "n_projections"),
        ("ssm", dict(n_projections=2.5), "n_projections"),
        ("ssm", dict(projection="bogus"), "projection"),
        ("ssm", dict(variance_reduction="yes"), "variance_reduction"),
        ("ssm", dict(reduction="avg"), "reduction"),
        ("dsm", dict(sigma=-1.0), "sigma"),
        ("dsm", dict(sigma=0.0), "sigma"),
        ("dsm", dict(sigma=float("nan")), "sigma"),
        ("dsm", dict(sigma=0.1, sigma_weight_power=float("inf")), "sigma_weight_power"),
        ("exact", dict(chunk_size=0), "chunk_size"),
        ("exact", dict(memory_budget=-1), "memory_budget"),
    ],
)
def test_make_objective_checks_option_values_when_they_are_given(name, options, arg):
    with pytest.raises(ValueError, match=arg):
        make_objective(name, **options)


def test_make_objective_still_takes_good_values_and_tensor_noise_levels():
    torch.manual_seed(0)
    model, x = ScoreMLP(2, hidden=8, depth=2), _x()
    g = torch.Generator().manual_seed(0)
    assert torch.isfinite(
        make_objective("ssm", n_projections=3, projection="gaussian")(model, x, generator=g)
    )
    assert torch.isfinite(make_objective("dsm", sigma=torch.full((8,), 0.3))(model, x, generator=g))
    assert torch.isfinite(make_objective("exact", chunk_size=None, memory_budget=None)(model, x))


def test_evaluate_flow_names_exact_method_and_chunk_size():
    with pytest.raises(ValueError, match="exact_method"):
        evaluate_flow(_nice(), _x(), exact_method="bogus")
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_flow(_nice(), _x(), chunk_size=0)


def test_network_score_estimator_checks_its_arguments_at_construction():
    model = ConditionalScoreMLP(2, hidden=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        NetworkScoreEstimator(model, "adam")
    with pytest.raises(ValueError, match="model"):
        NetworkScoreEstimator(lambda z: z, opt)
    with pytest.raises(ValueError, match="projection"):
        NetworkScoreEstimator(model, opt, projection="bogus")
    with pytest.raises(ValueError, match="generator"):
        NetworkScoreEstimator(model, opt, generator=5)
    NetworkScoreEstimator(model, opt, projection="rademacher", generator=torch.Generator())


def test_save_model_names_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="path .*does not exist"):
        save_model(ScoreMLP(2, hidden=4, depth=1), tmp_path / "no-such-folder" / "m.pt")
    save_model(ScoreMLP(2, hidden=4, depth=1), tmp_path / "m.pt")
    assert (tmp_path / "m.pt").is_file()


# ---------------------------------------------------------------------------- sizes that cannot fit
# each is refused at once, naming the argument, before any large allocation (the sizes need
# terabytes: more than any machine's memory)


@pytest.mark.parametrize(
    "estimate",
    [
        lambda z: SteinScoreEstimator()(z),
        lambda z: SpectralScoreEstimator()(z),
        lambda z: median_bandwidth(z),
    ],
)
def test_kernel_estimators_refuse_samples_whose_kernel_matrix_cannot_fit(estimate):
    with pytest.raises(ValueError, match="samples is too large"):
        estimate(torch.zeros(400_000, 2))


@pytest.mark.parametrize(
    "sample",
    [
        lambda n: _nice().sample(n),
        lambda n: Banana().sample(n),
        lambda n: Ring().sample(n),
        lambda n: Gaussian(torch.zeros(2), torch.eye(2)).sample(n),
        lambda n: GaussianMixture([0.5, 0.5], torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2)).sample(n),
        lambda n: sample_langevin(DKEF(_x(), n_kernels=1, hidden=4), n, n_steps=1),
    ],
)
def test_samplers_refuse_a_count_that_cannot_fit(sample):
    with pytest.raises(ValueError, match="n is too large"):
        sample(10**11)
    assert sample(3).shape == (3, 2)


def test_spectral_names_more_eigenfunctions_than_samples():
    z = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="n_eigen = 21 is more than the 20 samples"):
        SpectralScoreEstimator(n_eigen=21)(z)
    assert SpectralScoreEstimator(n_eigen=20)(z).shape == (20, 2)


def test_train_dkef_names_a_batch_larger_than_the_training_rows():
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    model = DKEF(x[:5], n_kernels=1, hidden=4)
    with pytest.raises(ValueError, match="batch_size = 30 is more than the 12 rows of train"):
        train_dkef(model, x[:12], x[20:], "ssm", steps=1, batch_size=30, progress=False)
