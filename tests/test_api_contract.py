"""Every public function through the same classes of odd input: event shapes, float64, counts
and numbers of any type, generators and devices, non-finite values, divergence, mutation,
gradients into x, oversized requests.

Each class is a list of entries at the top of its section: a new public function is covered by
adding it to the lists it concerns. Every bad-input case asserts a ``ValueError`` whose message
names the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from booktools.examples import two_gaussian_mixture
from booktools.grids import grid_2d, normalize_on_grid
from ssm_lib import (
    Banana,
    EnergyMLP,
    Gaussian,
    GaussianMixture,
    NoiseConditionalScoreMLP,
    Ring,
    ScoreMLP,
    TrainingDivergedError,
    annealed_langevin_dynamics,
    denoising_score_matching,
    exact_score_matching,
    fisher_divergence,
    fit,
    langevin_dynamics,
    make_generator,
    resolve_device,
    sample_projections,
    score_from_energy,
    sliced_score_matching,
)
from ssm_lib.losses import PROJECTIONS, SSM_METHODS, jacobian_trace, perturb

F64 = torch.float64


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ============================================================================ event shapes
EVENT_SHAPES = [(6,), (2, 3, 2), (2, 2, 3, 2)]


def _mixing_score(d: int):
    """A nonlinear score that mixes all event entries, written on flat vectors."""
    a = torch.randn(d, d, generator=_g(3), dtype=F64) / math.sqrt(d)

    def flat(y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(y @ a) - 0.5 * y

    def shaped(y: torch.Tensor) -> torch.Tensor:
        return flat(y.reshape(y.shape[0], -1)).reshape(y.shape)

    return flat, shaped


# name -> loss(score_fn, x, generator); compared on x of any event shape with the same loss
# on the flattened batch (same generator seed: the draws are the same numbers in the same order)
LOSSES = {
    "exact_loop": lambda f, x, g: exact_score_matching(f, x, method="loop", reduction="none"),
    "exact_vmap": lambda f, x, g: exact_score_matching(f, x, method="vmap", reduction="none"),
    **{f"ssm_{method}_{kind}{'_vr' if vr else ''}": (
        lambda f, x, g, method=method, kind=kind, vr=vr: sliced_score_matching(
            f, x, n_projections=2, projection=kind, method=method, variance_reduction=vr,
            generator=g, reduction="none", fd_step=1e-4))
       for method in SSM_METHODS for kind in PROJECTIONS for vr in (False, True)},
    "dsm": lambda f, x, g: denoising_score_matching(f, x, 0.3, generator=g, reduction="none"),
    "fisher": lambda f, x, g: fisher_divergence(f, lambda y: -y, x, reduction="none", differentiable=True),
}


@pytest.mark.parametrize("event_shape", EVENT_SHAPES, ids=str)
@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_works_on_every_event_shape(loss, event_shape):
    d = math.prod(event_shape)
    flat, shaped = _mixing_score(d)
    x = torch.randn(4, *event_shape, generator=_g(1), dtype=F64)
    got = LOSSES[loss](shaped, x, _g(2))
    want = LOSSES[loss](flat, x.reshape(4, d), _g(2))
    assert got.shape == (4,)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("event_shape", EVENT_SHAPES, ids=str)
@pytest.mark.parametrize("kind", PROJECTIONS)
def test_projections_on_every_event_shape(kind, event_shape):
    d = math.prod(event_shape)
    v = sample_projections(kind, (3000, *event_shape), generator=_g(), dtype=F64, event_dims=len(event_shape))
    flat = v.reshape(3000, d)
    if kind == "sphere":
        torch.testing.assert_close(flat.norm(dim=1), torch.full((3000,), math.sqrt(d), dtype=F64))
    # E[v v^T] = I: the empirical second moment is within a few standard errors of I
    second = flat.T @ flat / 3000
    assert (second - torch.eye(d, dtype=F64)).abs().max() < 6 * math.sqrt(3 / 3000)


@pytest.mark.parametrize("event_shape", EVENT_SHAPES, ids=str)
def test_samplers_on_every_event_shape(event_shape):
    x0 = torch.zeros(5, *event_shape, dtype=F64)
    x = langevin_dynamics(lambda y: -y, x0, step_size=0.1, n_steps=3, generator=_g())
    y = annealed_langevin_dynamics(lambda y, s: -y, x0, sigmas=[1.0, 0.5], step_size=0.1,
                                   n_steps_each=2, generator=_g())
    assert x.shape == y.shape == x0.shape and x.dtype == y.dtype == F64


# ============================================================================ float64
def test_densities_compute_in_the_input_dtype():
    for build in (lambda dt: Gaussian(torch.zeros(2, dtype=dt), torch.eye(2, dtype=dt) * 0.7),
                  two_gaussian_mixture, lambda dt: Banana(dtype=dt), lambda dt: Ring(dtype=dt)):
        p32, p64 = build(torch.float32), build(F64)
        x = torch.randn(5, 2, generator=_g(), dtype=F64) + 0.1
        for method in ("log_prob", "score"):
            got = getattr(p32, method)(x)
            assert got.dtype == F64
            torch.testing.assert_close(got, getattr(p64, method)(x), rtol=1e-6, atol=1e-6)


def test_grids_and_plots_follow_a_float64_model():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from booktools import plotting

    torch.manual_seed(0)
    energy = EnergyMLP(2, hidden=8, depth=1).double()
    density, log_z = normalize_on_grid(energy.unnormalized_log_prob, (-3, 3), (-3, 3), n=50)
    assert density.dtype == F64 and math.isfinite(log_z)
    score = ScoreMLP(2, hidden=8, depth=1).double()
    fig, ax = plt.subplots()
    plotting.plot_density(ax, energy.unnormalized_log_prob, (-3, 3), (-3, 3), n=20)
    plotting.plot_vector_field(ax, score, (-3, 3), (-3, 3), n=5)
    plotting.plot_vector_field(ax, lambda y: score(y), (-3, 3), (-3, 3), n=5, dtype=F64)
    plt.close(fig)


def test_a_model_given_the_wrong_dtype_says_so():
    with pytest.raises(ValueError, match="x has dtype torch.float64"):
        ScoreMLP(2, hidden=4, depth=1)(torch.zeros(3, 2, dtype=F64))


# ============================================================================ counts
def _fit(**kw):
    torch.manual_seed(0)
    args = {"n_steps": 2, "batch_size": 4, "progress": False, **kw}
    return fit(ScoreMLP(2, hidden=4, depth=1), torch.randn(10, 2), "ssm", **args)


X = torch.randn(4, 3, dtype=F64)

# name of the count -> a call with that count set to the given value
COUNTS = {
    "n_projections": lambda n: sliced_score_matching(lambda y: -y, X, n_projections=n),
    "chunk_size": lambda n: exact_score_matching(lambda y: -y, X, method="vmap", chunk_size=n),
    "n_steps": lambda n: langevin_dynamics(lambda y: -y, X, step_size=0.1, n_steps=n),
    "n_steps_each": lambda n: annealed_langevin_dynamics(lambda y, s: -y, X, sigmas=[1.0], step_size=0.1,
                                                         n_steps_each=n),
    "n": lambda n: Gaussian([0.0], [[1.0]]).sample(n),
    "fit n_steps": lambda n: _fit(n_steps=n),
    "batch_size": lambda n: _fit(batch_size=n),
    "dim": lambda n: ScoreMLP(n, hidden=4),
    "hidden": lambda n: EnergyMLP(2, hidden=n),
    "depth": lambda n: NoiseConditionalScoreMLP(2, hidden=4, depth=n),
    "shape": lambda n: sample_projections("gaussian", (n, 3)),
    "grid n": lambda n: grid_2d((0, 1), (0, 1), n),
    "seed": lambda n: make_generator(n),
}
WHOLE = [np.int64(2), torch.tensor(2), 2.0, np.float32(2.0)]
NOT_COUNTS = [2.5, True, "2", float("nan"), torch.tensor([2]), -1]


@pytest.mark.parametrize("value", WHOLE, ids=repr)
@pytest.mark.parametrize("name", list(COUNTS))
def test_whole_numbers_of_any_type_are_counts(name, value):
    COUNTS[name](value)


@pytest.mark.parametrize("value", NOT_COUNTS, ids=repr)
@pytest.mark.parametrize("name", list(COUNTS))
def test_other_values_are_not_counts(name, value):
    with pytest.raises(ValueError, match=name.split()[-1]):
        COUNTS[name](value)


# ============================================================================ real numbers
NUMBERS = {
    "sigma": lambda v: denoising_score_matching(lambda y: -y, X, v),
    "sigma_weight_power": lambda v: denoising_score_matching(lambda y: -y, X, 0.1, sigma_weight_power=v),
    "step_size": lambda v: langevin_dynamics(lambda y: -y, X, step_size=v, n_steps=1),
    "fd_step": lambda v: sliced_score_matching(lambda y: -y, X, method="finite_difference", fd_step=v),
    "lr": lambda v: _fit(lr=v),
    "divergence_factor": lambda v: _fit(divergence_factor=v),
    "curvature": lambda v: Banana(curvature=v),
    "radius": lambda v: Ring(radius=v),
    "sigma1": lambda v: Banana(sigma1=v),
    "noise-conditional sigma": lambda v: NoiseConditionalScoreMLP(2, hidden=4).double()(X[:, :2], v),
}
NOT_NUMBERS = ["0.1", True, float("nan"), float("inf"), [0.1]]


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
@pytest.mark.parametrize("name", list(NUMBERS))
def test_numbers_reject_strings_booleans_and_non_finite_values(name, value):
    with pytest.raises(ValueError, match=name.split()[-1]):
        NUMBERS[name](value)


@pytest.mark.parametrize("name", list(NUMBERS))
def test_numbers_accept_numpy_and_0d_tensors(name):
    NUMBERS[name](np.float64(1.5))
    NUMBERS[name](torch.tensor(1.5))


def test_undefined_parameters_are_rejected_with_their_value():
    with pytest.raises(ValueError, match=r"curvature must be a finite number, got nan"):
        Banana(curvature=float("nan"))
    with pytest.raises(ValueError, match=r"mean must be finite"):
        Gaussian([float("nan"), 0.0], torch.eye(2))
    net = NoiseConditionalScoreMLP(2, hidden=4).double()
    for bad in (torch.tensor([0.1, float("nan"), 0.2, 0.3]), torch.tensor([0.1, -0.2, 0.2, 0.3])):
        with pytest.raises(ValueError, match=r"sigma must be positive and finite, got values in"):
            net(X[:, :2], bad)


# ============================================================================ generators
# name -> a call with the given generator
GENERATOR_USERS = {
    "ssm": lambda g: sliced_score_matching(lambda y: -y, X, generator=g),
    "exact": lambda g: exact_score_matching(lambda y: -y, X, generator=g),
    "dsm": lambda g: denoising_score_matching(lambda y: -y, X, 0.1, generator=g),
    "perturb": lambda g: perturb(X, 0.1, generator=g),
    "sample_projections": lambda g: sample_projections("rademacher", (2, 3), generator=g),
    "Gaussian.sample": lambda g: Gaussian([0.0], [[1.0]]).sample(3, generator=g),
    "GaussianMixture.sample": lambda g: GaussianMixture([1.0], [[0.0]], [[[1.0]]]).sample(3, generator=g),
    "Banana.sample": lambda g: Banana().sample(3, generator=g),
    "Ring.sample": lambda g: Ring().sample(3, generator=g),
    "langevin": lambda g: langevin_dynamics(lambda y: -y, X, step_size=0.1, n_steps=1, generator=g),
    "annealed": lambda g: annealed_langevin_dynamics(lambda y, s: -0.5 * y, X, sigmas=[1.0], step_size=0.1,
                                                     n_steps_each=1, generator=g),
    "fit": lambda g: _fit(generator=g),
}


@pytest.mark.parametrize("bad", [3, np.random.default_rng(0), "seed"], ids=lambda b: type(b).__name__)
@pytest.mark.parametrize("name", list(GENERATOR_USERS))
def test_a_generator_that_is_not_one_is_a_value_error(name, bad):
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        GENERATOR_USERS[name](bad)


@pytest.mark.parametrize("name", list(GENERATOR_USERS))
def test_a_generator_is_used(name):
    a, b, c = (GENERATOR_USERS[name](_g(s)) for s in (4, 4, 5))

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    if name == "fit":
        assert a.losses == b.losses != c.losses
        return
    if name == "exact":  # deterministic: the generator is accepted and not needed
        assert torch.equal(a, c)
        return
    assert torch.equal(first(a), first(b)) and not torch.equal(first(a), first(c))


def test_fit_with_a_generator_equals_fit_with_its_seed():
    data = torch.randn(50, 2, generator=_g(1))
    runs = []
    for kw in ({"seed": 7}, {"generator": _g(7)}):
        torch.manual_seed(0)
        runs.append(fit(ScoreMLP(2, hidden=4, depth=1), data, "ssm", n_steps=5, progress=False, **kw).losses)
    assert runs[0] == runs[1]
    with pytest.raises(ValueError, match="seed or generator"):
        _fit(seed=1, generator=_g())


class _ElsewhereGenerator(torch.Generator):
    """A CPU generator that reports another device: the check must read the device."""

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", 0) if torch.device(super().device).type == "cpu" else torch.device("cpu")


@pytest.mark.parametrize("name", ["ssm", "dsm", "perturb", "langevin", "annealed", "fit"])
def test_a_generator_on_another_device_than_the_data_says_so(name):
    with pytest.raises(ValueError, match=r"generator is on cuda:0 but (x|x0|the model) is on cpu"):
        GENERATOR_USERS[name](_ElsewhereGenerator())


def test_a_generator_on_another_device_than_requested_says_so():
    with pytest.raises(ValueError, match=r"generator is on cuda:0 but the requested device is on cpu"):
        sample_projections("gaussian", (2, 3), generator=_ElsewhereGenerator(), device="cpu")


# ============================================================================ devices
MISSING = "cuda:99" if torch.cuda.is_available() else "cuda"
DEVICE_USERS = {
    "resolve_device": lambda dev: resolve_device(dev),
    "make_generator": lambda dev: make_generator(0, dev),
    "sample_projections": lambda dev: sample_projections("gaussian", (2, 3), device=dev),
}


@pytest.mark.parametrize("device", [MISSING, "tpu", 3.5])
@pytest.mark.parametrize("name", list(DEVICE_USERS))
def test_a_device_that_is_not_there_is_one_clean_value_error(name, device):
    with pytest.raises(ValueError, match="device"):
        DEVICE_USERS[name](device)


# ============================================================================ non-finite values
NAN_X = X.clone()
NAN_X[1, 2] = float("nan")



def _counting_objective(calls):
    def objective(score_fn, x, generator=None):
        calls.append(1)
        return score_fn(x).pow(2).mean()
    return objective


# name of the argument -> a call, with a score (or objective) that records each step, given a
# non-finite value for the argument: it must fail before any step
NON_FINITE_INPUTS = {
    "data": lambda calls: fit(ScoreMLP(2, hidden=4), NAN_X[:, 1:].float(), _counting_objective(calls),
                              n_steps=2, progress=False),
    "sampler data": lambda calls: fit(ScoreMLP(2, hidden=4), lambda n, g: torch.full((n, 2), float("inf")),
                                      _counting_objective(calls), n_steps=2, progress=False),
    "x0": lambda calls: langevin_dynamics(lambda y: calls.append(1) or -y, NAN_X, step_size=0.1, n_steps=1),
    "annealed x0": lambda calls: annealed_langevin_dynamics(lambda y, s: calls.append(1) or -y, NAN_X,
                                                            sigmas=[1.0], step_size=0.1, n_steps_each=1),
    "sigmas": lambda calls: annealed_langevin_dynamics(lambda y, s: calls.append(1) or -y, X,
                                                       sigmas=[1.0, float("nan")], step_size=0.1,
                                                       n_steps_each=1),
}


@pytest.mark.parametrize("name", list(NON_FINITE_INPUTS))
def test_non_finite_input_is_reported_as_such_before_any_step(name):
    calls: list[int] = []
    arg = name.split()[-1]
    with pytest.raises(ValueError, match=rf"{arg}.*(finite|non-finite)"):
        NON_FINITE_INPUTS[name](calls)
    assert not calls


# the library's rule for non-finite x in losses: not looked for, propagated into the loss
@pytest.mark.parametrize("loss", ["exact_loop", "ssm_backward_rademacher", "ssm_auto_sphere_vr", "dsm",
                                  "fisher"])
def test_losses_propagate_non_finite_x(loss):
    out = LOSSES[loss](lambda y: torch.tanh(y) - y, NAN_X, _g())
    assert torch.isnan(out[1]) and torch.isfinite(out[[0, 2, 3]]).all()


def _blowing_up(at_step: int, factor: float):
    step = {"n": 0}

    def objective(score_fn, x, generator=None):
        step["n"] += 1
        loss = score_fn(x).pow(2).mean() + 1.0
        return loss * factor if step["n"] >= at_step else loss

    return objective


def test_fit_stops_on_a_blow_up_naming_the_step():
    data = torch.randn(50, 2, generator=_g())
    with pytest.raises(TrainingDivergedError, match="step 5"):
        fit(ScoreMLP(2, hidden=4, depth=1), data, _blowing_up(5, 1e12), n_steps=10, progress=False)
    # the threshold is adjustable, and can be switched off
    for threshold in (1e14, None):
        hist = fit(ScoreMLP(2, hidden=4, depth=1), data, _blowing_up(5, 1e12), n_steps=10, progress=False,
                   divergence_factor=threshold)
        assert len(hist.losses) == 10


def test_fit_stops_a_real_divergence():
    # exact SM with lr=100: the loss jumps by many orders of magnitude within a few steps
    torch.manual_seed(0)
    data = Gaussian(torch.zeros(2), torch.eye(2)).sample(500, generator=_g())
    with pytest.raises(TrainingDivergedError, match=r"diverged at step \d+"):
        fit(ScoreMLP(2, hidden=32, depth=2), data, "exact", n_steps=200, lr=100.0, progress=False)


# ============================================================================ no mutation
def _mutating(y: torch.Tensor, *rest) -> torch.Tensor:
    with torch.no_grad():
        y.mul_(2.0)
    return torch.tanh(y) - y


MUTATION_TARGETS = {
    **{name: (lambda f, x, name=name: LOSSES[name](f, x, _g())) for name in LOSSES},
    "fisher true_score_fn": lambda f, x: fisher_divergence(lambda y: -y, f, x),
    "langevin": lambda f, x: langevin_dynamics(f, x, step_size=0.1, n_steps=2),
    "annealed": lambda f, x: annealed_langevin_dynamics(f, x, sigmas=[1.0], step_size=0.1, n_steps_each=1),
    "score_from_energy": lambda f, x: score_from_energy(lambda y: _mutating(y).sum(1))(x),
}


@pytest.mark.parametrize("name", list(MUTATION_TARGETS))
def test_a_score_that_modifies_its_input_cannot_reach_the_callers_tensor(name):
    x = torch.randn(4, 3, generator=_g(), dtype=F64)
    before = x.clone()
    try:
        MUTATION_TARGETS[name](_mutating, x)
    except RuntimeError:  # torch may refuse the in-place change; the caller's x must still be intact
        pass
    assert torch.equal(x, before)


# ============================================================================ gradients into x
@pytest.mark.parametrize("loss", list(LOSSES))
def test_no_loss_passes_gradients_into_x(loss):
    torch.manual_seed(0)
    model = ScoreMLP(3, hidden=8, depth=1).double()
    x = torch.randn(4, 3, generator=_g(), dtype=F64).requires_grad_(True)
    out = LOSSES[loss](model, x, _g()).sum()
    assert out.requires_grad  # the parameters get gradients...
    (gx,) = torch.autograd.grad(out, x, allow_unused=True)
    assert gx is None  # ...x does not


# ============================================================================ score_from_energy
def test_an_energy_that_does_not_depend_on_x_has_zero_score():
    w = torch.tensor(1.5, requires_grad=True)
    for energy in (lambda y: y.new_ones(y.shape[0]), lambda y: (w * 2.0).expand(y.shape[0])):
        s = score_from_energy(energy)(X)
        assert torch.equal(s, torch.zeros_like(X))


# ============================================================================ oversized requests
def test_too_many_projections_fail_at_once_with_the_size_needed():
    with pytest.raises(ValueError, match=r"n_projections is too large: .* GiB"):
        sliced_score_matching(lambda y: -y, X, n_projections=10**13)
    with pytest.raises(ValueError, match=r"shape is too large: .* GiB"):
        sample_projections("gaussian", (10**13, 3))


def test_jacobian_trace_checks_like_the_losses():
    with pytest.raises(ValueError, match="chunk_size"):
        jacobian_trace(lambda y: -y, X, method="vmap", chunk_size=2.5)
