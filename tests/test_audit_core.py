"""Audit of the core modules' bad-input handling (training, flows, flow training, persistence,
score estimators, metrics, densities, exact chunking, fast path, devices, losses): each call
that ended in a deep torch error, a silent NaN or wrong result, or a message blaming another
argument is now a ``ValueError`` naming the argument; valid neighbours still work."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import NICE, ConditionalScoreMLP, NetworkScoreEstimator, NoiseConditionalScoreMLP, ScoreMLP, fit
from ssm_lib import exact_chunking as ec
from ssm_lib.densities import Gaussian, Ring
from ssm_lib.devices import make_generator
from ssm_lib.fast_path import mlp_layers, mlp_projected_score_and_jvp, mlp_score_and_jvp
from ssm_lib.flow_training import evaluate_flow, flow_objective, train_with_validation
from ssm_lib.flows import AdditiveCoupling, DiagonalScaling, nice_parameter_count
from ssm_lib.losses import denoising_score_matching, exact_score_matching, sliced_score_matching
from ssm_lib.metrics import loglog_slope, mean_and_standard_error
from ssm_lib.persistence import load_model, save_model
from ssm_lib.score_estimators import SpectralScoreEstimator, SteinScoreEstimator, rbf_gram

CPU = torch.device("cpu")


def _x(n: int = 4, d: int = 2) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# ---------------------------------------------------------------------------- fit / devices

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_rejects_a_missing_device_before_moving_the_model():
    model = ScoreMLP(2, hidden=4, depth=1)
    with pytest.raises(ValueError, match="device"):
        fit(model, _x(), "ssm", n_steps=1, device="cuda", progress=False)
    with pytest.raises(ValueError, match="device"):
        fit(model, _x(), "ssm", n_steps=1, device="meta", progress=False)
    assert next(model.parameters()).device == CPU  # not moved
    fit(model, _x(), "ssm", n_steps=1, device="cpu", progress=False, seed=0)


def test_fit_rejects_a_batch_size_too_large_for_memory():
    with pytest.raises(ValueError, match="batch_size"):
        fit(ScoreMLP(2, hidden=4, depth=1), _x(), "ssm", n_steps=1, batch_size=10**13, progress=False)


def test_make_generator_rejects_a_seed_out_of_range():
    with pytest.raises(ValueError, match="seed"):
        make_generator(2**64)
    assert make_generator(2**64 - 1).initial_seed() == 2**64 - 1
    with pytest.raises(ValueError, match="seed"):
        fit(ScoreMLP(2, hidden=4, depth=1), _x(), "ssm", n_steps=1, seed=2**64, progress=False)


# ---------------------------------------------------------------------------- nice

def test_additive_coupling_checks_its_input_and_accepts_a_whole_float_dim():
    layer = AdditiveCoupling(2.0, 0, 4, 1)
    assert layer(_x()).shape == (4, 2)
    with pytest.raises(ValueError, match="x must have shape"):
        AdditiveCoupling(2, 0, 4, 1)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="y must have shape"):
        AdditiveCoupling(2, 0, 4, 1).inverse(torch.randn(4, 3))
    with pytest.raises(ValueError, match="parity"):
        AdditiveCoupling(2, True, 4, 1)


def test_diagonal_scaling_does_not_broadcast_a_wrong_width():
    with pytest.raises(ValueError, match="y must have shape"):
        DiagonalScaling(2)(torch.randn(4, 1))
    with pytest.raises(ValueError, match="z must have shape"):
        DiagonalScaling(2).inverse(torch.randn(4, 3))


def test_nice_parameter_count_checks_its_arguments():
    with pytest.raises(ValueError, match="dim"):
        nice_parameter_count(-3, 8, 1, 2)
    with pytest.raises(ValueError, match="hidden"):
        nice_parameter_count(2, 0, 1, 2)
    with pytest.raises(ValueError, match="n_couplings"):
        nice_parameter_count(2, 8, 1, 2.5)


def test_nice_sample_checks_the_generator():
    with pytest.raises(ValueError, match="generator"):
        NICE(2, hidden=4, depth=1).sample(3, generator=1)


# ---------------------------------------------------------------------------- flow training

def _nice() -> NICE:
    torch.manual_seed(0)
    return NICE(2, hidden=4, depth=1, n_couplings=2)


def test_train_with_validation_names_bad_arguments():
    x, obj = _x(), flow_objective("mle")
    with pytest.raises(ValueError, match="model"):
        train_with_validation(3, obj, x, x, epochs=1, generator=_g())
    with pytest.raises(ValueError, match="objective"):
        train_with_validation(_nice(), 3, x, x, epochs=1, generator=_g())
    with pytest.raises(ValueError, match="track"):
        train_with_validation(_nice(), obj, x, x, epochs=1, generator=_g(), track=[len])
    with pytest.raises(ValueError, match="track"):
        train_with_validation(_nice(), obj, x, x, epochs=1, generator=_g(), track={"a": 3})
    with pytest.raises(ValueError, match="select"):
        train_with_validation(_nice(), obj, x, x, epochs=1, generator=_g(), select=3)
    with pytest.raises(ValueError, match="train_x"):
        train_with_validation(_nice(), obj, torch.ones(4, 2, dtype=torch.long), x, epochs=1, generator=_g())
    with pytest.raises(ValueError, match="generator"):
        train_with_validation(_nice(), obj, x, x, epochs=1, generator=1)


def test_evaluate_flow_names_bad_arguments():
    with pytest.raises(ValueError, match="model"):
        evaluate_flow(ScoreMLP(2), _x())
    with pytest.raises(ValueError, match="sm_loss"):
        evaluate_flow(_nice(), _x(), sm_loss="no")
    assert set(evaluate_flow(_nice(), _x(), sm_loss=False)) == {"log_prob"}


# ---------------------------------------------------------------------------- persist

def test_save_model_to_a_folder_names_path(tmp_path):
    with pytest.raises(ValueError, match="path"):
        save_model(_nice(), tmp_path)


def test_load_model_names_a_bad_map_location(tmp_path):
    path = tmp_path / "m.pt"
    save_model(_nice(), path)
    for bad in ("bogus", 3.5):
        with pytest.raises(ValueError, match="map_location"):
            load_model(path, map_location=bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="map_location"):
            load_model(path, map_location="cuda")
    load_model(path, map_location=torch.device("cpu"))
    load_model(path, map_location=None)


# ---------------------------------------------------------------------------- estimator

def test_conditional_score_mlp_checks_dtype_type_and_context():
    net = ConditionalScoreMLP(2, hidden=4)
    with pytest.raises(ValueError, match="z has dtype"):
        net(torch.randn(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="z has dtype"):
        net(torch.ones(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="z must be a torch.Tensor"):
        net([[1.0, 2.0]])
    with pytest.raises(ValueError, match="context"):
        net(_x(), torch.randn(4, 3))
    cond = ConditionalScoreMLP(2, 3, hidden=4)
    with pytest.raises(ValueError, match="context has dtype"):
        cond(_x(), torch.randn(4, 3, dtype=torch.float64))
    assert cond(_x(), torch.randn(4, 3)).shape == (4, 2)


def test_network_score_estimator_names_samples_and_context():
    net = ConditionalScoreMLP(2, hidden=4)
    est = NetworkScoreEstimator(net, torch.optim.SGD(net.parameters(), lr=0.1), generator=_g())
    with pytest.raises(ValueError, match="samples has dtype"):
        est.update(torch.randn(3, 5, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="context"):
        est.update(torch.randn(3, 5, 2), torch.randn(3, 4))  # an unconditional network
    with pytest.raises(ValueError, match="context must be a torch.Tensor"):
        est(torch.randn(3, 5, 2), [[1.0]])


def test_kernel_estimators_reject_half_precision_and_mismatched_queries():
    with pytest.raises(ValueError, match="samples must be float32 or float64"):
        SteinScoreEstimator()(torch.randn(3, 6, 2).half())
    with pytest.raises(ValueError, match="samples must be float32 or float64"):
        SpectralScoreEstimator()(torch.randn(3, 6, 2).half())
    with pytest.raises(ValueError, match="queries"):
        SpectralScoreEstimator()(torch.randn(3, 6, 2), queries=torch.randn(3, 6, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="eigen_threshold"):
        SpectralScoreEstimator(eigen_threshold=True)
    with pytest.raises(ValueError, match="eta"):
        SpectralScoreEstimator(eta=True)


def test_rbf_gram_checks_its_inputs_and_memory():
    with pytest.raises(ValueError, match="a must be"):
        rbf_gram([[1.0]], _x(), 1.0)
    with pytest.raises(ValueError, match="a and b"):
        rbf_gram(torch.randn(3, 2), torch.randn(3, 3), 1.0)
    with pytest.raises(ValueError, match="a, b"):
        rbf_gram(torch.zeros(10**7, 1), torch.zeros(10**7, 1), 1.0)


# ---------------------------------------------------------------------------- model / density

def test_metrics_refuse_non_finite_and_integer_values():
    with pytest.raises(ValueError, match="values"):
        mean_and_standard_error(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="values"):
        mean_and_standard_error(torch.tensor([1.0, float("nan"), 2.0]))
    with pytest.raises(ValueError, match="x and y must be finite"):
        loglog_slope([1, 2, 3], [1, float("nan"), 2])
    with pytest.raises(ValueError, match="x and y must be finite"):
        loglog_slope([1, 2, float("inf")], [1, 2, 3])


def test_densities_refuse_half_empty_and_degenerate_parameters():
    with pytest.raises(ValueError, match="mean"):
        Gaussian(torch.zeros(2, dtype=torch.float16), torch.eye(2))
    with pytest.raises(ValueError, match="mean"):
        Gaussian(torch.zeros(0), torch.zeros(0, 0))
    with pytest.raises(ValueError, match="width"):
        Ring(radius=1.0, width=1e-200)
    with pytest.raises(ValueError, match="radius"):
        Ring(radius=1e300, width=1e-100)


# ---------------------------------------------------------------------------- more edge cases

def test_exact_chunking_plan_checks_its_arguments_and_takes_a_device_name():
    with pytest.raises(ValueError, match="method"):
        ec.plan("foo", 4, 100, CPU)
    with pytest.raises(ValueError, match="dim"):
        ec.plan("vmap", 0, 100, CPU)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="chunk_size"):
            ec.plan("vmap", 4, 100, CPU, chunk_size=bad)
    with pytest.raises(ValueError, match="batch"):
        ec.plan("auto", 40, 100, CPU, batch=-1)
    with pytest.raises(ValueError, match="memory_budget"):
        ec.plan("vmap", 4, 100, CPU, memory_budget=-5)
    with pytest.raises(ValueError, match="memory_budget"):
        ec.plan("loop", 4, 100, CPU, memory_budget=-5)
    with pytest.raises(ValueError, match="memory_budget"):
        ec.budget_bytes(CPU, memory_budget=0)
    with pytest.raises(ValueError, match="device"):
        ec.plan("auto", 40, 100, "bogus")
    assert ec.plan("auto", 40, 100, "cpu") == ec.plan("auto", 40, 100, CPU)
    assert ec.budget_bytes("cpu") == ec.budget_bytes(CPU)
    assert ec.available_memory("cpu") > 0


def test_fast_path_checks_layers_and_shapes():
    torch.manual_seed(0)
    model = ScoreMLP(2, hidden=4, depth=1)
    layers = mlp_layers(model.net)
    for fn in (mlp_score_and_jvp, mlp_projected_score_and_jvp):
        with pytest.raises(ValueError, match="v must be"):
            fn(layers, _x(), torch.randn(3, 2))
        with pytest.raises(ValueError, match="x must have shape"):
            fn(layers, torch.randn(4, 3), torch.randn(4, 3))
        with pytest.raises(ValueError, match="x has dtype"):
            fn(layers, _x().double(), _x())
        with pytest.raises(ValueError, match="layers"):
            fn(None, _x(), _x())
    s, jv = mlp_score_and_jvp(layers, _x(), _x())
    assert torch.equal(s, model(_x()))


def test_losses_name_a_score_of_the_wrong_signature():
    nc = NoiseConditionalScoreMLP(2, 8, 1)
    with pytest.raises(ValueError, match="score_fn must be callable as score_fn\\(x\\)"):
        sliced_score_matching(nc, _x(), generator=_g())
    with pytest.raises(ValueError, match="score_fn must be callable as score_fn\\(x\\)"):
        sliced_score_matching(nc, _x(), generator=_g(), method="forward")
    with pytest.raises(ValueError, match="score_fn must be callable as score_fn\\(x\\)"):
        exact_score_matching(nc, _x())
    with pytest.raises(ValueError, match="score_fn.*noise_conditional=True"):
        denoising_score_matching(nc, _x(), 0.1, generator=_g())
    with pytest.raises(ValueError, match="score_fn.*noise_conditional=False"):
        denoising_score_matching(ScoreMLP(2, hidden=4), _x(), 0.1, generator=_g(), noise_conditional=True)

    def broken(x):  # a TypeError from inside a score of the right signature is left as it is
        raise TypeError("inside")
    with pytest.raises(TypeError, match="inside"):
        sliced_score_matching(broken, _x(), generator=_g())


def test_sliced_score_matching_rejects_complex_directions():
    with pytest.raises(ValueError, match="directions"):
        sliced_score_matching(ScoreMLP(2, hidden=4), _x(),
                              directions=torch.randn(1, 4, 2, dtype=torch.complex64))
