"""API-contract cases from a new user's report (numpy scalars, the UCI loader's arguments, the
Fisher divergence as a number, a score of the wrong kind given to a sampler).

Same style as ``test_api_contract.py``: each class is a table at the top of its section, and
every bad-input case asserts a ``ValueError`` whose message names the argument.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from paper_recipes.uci import load_uci
from ssm_lib import (
    Banana,
    EnergyMLP,
    LogitTransform,
    NoiseConditionalScoreMLP,
    Ring,
    ScoreMLP,
    annealed_langevin_dynamics,
    denoising_score_matching,
    fisher_divergence,
    langevin_dynamics,
    score_from_energy,
    sliced_score_matching,
)

F64 = torch.float64
X = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
UCI_ROOT = Path(__file__).resolve().parents[1] / "data" / "uci"


# ============================================================================ numpy scalars
# name -> a call with that flag set to the given value
FLAGS = {
    "fast_path": lambda v: ScoreMLP(2, hidden=4, fast_path=v),
    "return_trajectory": lambda v: langevin_dynamics(lambda y: -y, X, step_size=0.1, n_steps=1,
                                                     return_trajectory=v),
    "denoise": lambda v: annealed_langevin_dynamics(lambda y, s: -y, X, sigmas=[1.0], step_size=0.1,
                                                    n_steps_each=1, denoise=v),
    "variance_reduction": lambda v: sliced_score_matching(lambda y: -y, X, variance_reduction=v),
    "differentiable": lambda v: fisher_divergence(lambda y: -y, lambda y: -y, X, differentiable=v),
}


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_], ids=repr)
@pytest.mark.parametrize("name", list(FLAGS))
def test_flags_accept_python_and_numpy_booleans(name, value):
    FLAGS[name](value)


@pytest.mark.parametrize("value", [1, 0, "yes", None, np.int64(1)], ids=repr)
@pytest.mark.parametrize("name", list(FLAGS))
def test_flags_reject_what_is_not_a_boolean(name, value):
    with pytest.raises(ValueError, match=f"{name} must be True or False"):
        FLAGS[name](value)


def test_a_numpy_boolean_means_what_it_says():
    assert ScoreMLP(2, hidden=4, fast_path=np.False_).fast_path is False
    traj = langevin_dynamics(lambda y: -y, X, step_size=0.1, n_steps=2, return_trajectory=np.True_)
    assert traj.shape == (3, *X.shape)


# name -> a call with that number; numpy's float32 and float16 are not subclasses of float
# (float64 is), so they are the cases that a check written as isinstance(v, float) misses
NUMPY_NUMBERS = {
    "alpha": lambda v: LogitTransform(256, alpha=v / 100),
    "confinement": lambda v: EnergyMLP(2, hidden=4, confinement=v),
    "step_size": lambda v: langevin_dynamics(lambda y: -y, X, step_size=v / 10, n_steps=1),
    "sigma": lambda v: denoising_score_matching(lambda y: -y, X, v),
    "curvature": lambda v: Banana(curvature=v),
    "radius": lambda v: Ring(radius=v),
}


@pytest.mark.parametrize("kind", [np.float32, np.float16, np.int64], ids=lambda k: k.__name__)
@pytest.mark.parametrize("name", list(NUMPY_NUMBERS))
def test_numbers_accept_every_numpy_scalar(name, kind):
    NUMPY_NUMBERS[name](kind(1.5) if kind is not np.int64 else kind(1))


def test_logit_transform_takes_numpy_scalars_as_plain_numbers():
    t = LogitTransform(np.int64(256), alpha=np.float32(0.25))
    assert type(t.levels) is int and t.levels == 256
    assert type(t.alpha) is float and t.alpha == 0.25
    with pytest.raises(ValueError, match="alpha must be a number in"):
        LogitTransform(256, alpha=np.float32(0.5))
    with pytest.raises(ValueError, match="levels must be a whole number >= 2"):
        LogitTransform(np.int64(1))


MODELS = {
    "ScoreMLP": ScoreMLP,
    "EnergyMLP": EnergyMLP,
    "NoiseConditionalScoreMLP": NoiseConditionalScoreMLP,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_models_take_numpy_integers_and_store_python_ones(name):
    model = MODELS[name](np.int64(3), hidden=np.int32(5), depth=np.uint8(2))
    config = model.config()
    assert (config["dim"], config["hidden"], config["depth"]) == (3, 5, 2)
    assert all(type(config[k]) is int for k in ("dim", "hidden", "depth"))


# ============================================================================ the UCI loader
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64, "float32",
                                   np.float32, None], ids=repr)
def test_load_uci_refuses_a_dtype_that_is_not_a_floating_torch_dtype(dtype, tmp_path):
    # checked before the file is read: the empty folder is not reached
    with pytest.raises(ValueError, match="dtype must be a floating torch.dtype"):
        load_uci("redwine", tmp_path, dtype=dtype)


@pytest.mark.parametrize("noise_std", [-1, -0.05, float("nan"), float("inf"), True, "0.05", None],
                         ids=repr)
def test_load_uci_refuses_a_noise_std_that_is_not_a_finite_number_at_least_zero(noise_std, tmp_path):
    with pytest.raises(ValueError, match="noise_std must be a finite number >= 0"):
        load_uci("redwine", tmp_path, noise_std=noise_std)


@pytest.mark.parametrize("seed", ["split_seed", "dequantise_seed", "noise_seed"])
def test_load_uci_refuses_seeds_that_are_not_whole_numbers(seed, tmp_path):
    for bad in (-1, 1.5, float("nan"), "1"):
        with pytest.raises(ValueError, match=seed):
            load_uci("redwine", tmp_path, **{seed: bad})


@pytest.mark.skipif(not UCI_ROOT.is_dir(), reason="the UCI tables are not in data/uci")
def test_load_uci_noise_std_zero_and_numpy_arguments():
    plain = load_uci("redwine", UCI_ROOT, noise_std=0, dtype=torch.float64)
    same = load_uci("redwine", UCI_ROOT, noise_std=np.float32(0.0), split_seed=np.int64(2019),
                    dtype=torch.float64)
    assert torch.equal(plain.train, same.train)
    noisy = load_uci("redwine", UCI_ROOT, noise_std=np.float32(0.5), dtype=torch.float64)
    # noise of standard deviation 0.5 on whitened rows: per-entry variance 0.25 (to sampling error)
    assert abs(float((noisy.train - plain.train).var()) - 0.25) < 0.01
    # float16 is honoured too (a floating dtype, not truncated)
    half = load_uci("redwine", UCI_ROOT, dtype=torch.float16)
    assert half.train.dtype == torch.float16 and not torch.equal(half.train, half.train.round())


# ============================================================================ Fisher divergence as a number
def _linear_score(a: torch.Tensor):
    return lambda y: a * y


FISHER_MODELS = {
    "ScoreMLP": lambda: ScoreMLP(3, hidden=8, depth=1).double(),
    "EnergyMLP score": lambda: score_from_energy(EnergyMLP(3, hidden=8, depth=1).double()),
    "a parameter": lambda: _linear_score(torch.tensor(0.5, dtype=F64, requires_grad=True)),
}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", list(FISHER_MODELS))
def test_fisher_divergence_becomes_a_number_without_a_warning(name, reduction):
    torch.manual_seed(0)
    model = FISHER_MODELS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = float(fisher_divergence(model, lambda y: -y, X, reduction=reduction))
    assert math.isfinite(value) and value > 0


def test_fisher_divergence_is_differentiable_when_asked():
    # s(x) = a x against the true score -x: F = 1/(2n) sum_i (a + 1)^2 |x_i|^2, so
    # dF/da = (a + 1)/n sum_i |x_i|^2 (a = 0.5: the value and slope differ from a = 1's)
    a = torch.tensor(0.5, dtype=F64, requires_grad=True)
    value = fisher_divergence(_linear_score(a), lambda y: -y, X, differentiable=True)
    sq = (X**2).sum(1).mean()
    torch.testing.assert_close(value.detach(), 0.5 * 1.5**2 * sq)
    (grad,) = torch.autograd.grad(value, a)
    torch.testing.assert_close(grad, 1.5 * sq)
    # the default is the same number, detached
    plain = fisher_divergence(_linear_score(a), lambda y: -y, X)
    assert not plain.requires_grad and torch.equal(plain, value.detach())


# ============================================================================ a score of the wrong kind
class _Counting(torch.nn.Module):
    """Counts forward calls of a wrapped score."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x, *rest):
        self.calls += 1
        return self.net(x, *rest)


def test_a_plain_score_mlp_given_to_annealed_langevin_says_what_is_expected():
    model = ScoreMLP(3, hidden=4, depth=1).double()
    calls = []
    model.register_forward_pre_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match=r"score_fn must be callable as score_fn\(x, sigma\)") as err:
        annealed_langevin_dynamics(model, X, sigmas=[1.0, 0.5], step_size=0.1, n_steps_each=2)
    assert "ScoreMLP" in str(err.value) and "langevin_dynamics" in str(err.value)
    assert calls == []  # refused from its signature, before any call


@pytest.mark.parametrize("score_fn", [lambda y: -y, lambda: 0, lambda y, s, t: -y],
                         ids=["one argument", "none", "three required"])
def test_annealed_langevin_checks_any_callable_signature(score_fn):
    with pytest.raises(ValueError, match="score_fn must be callable as score_fn"):
        annealed_langevin_dynamics(score_fn, X, sigmas=[1.0], step_size=0.1, n_steps_each=1)


def test_a_noise_conditional_score_given_to_langevin_says_what_is_expected():
    model = NoiseConditionalScoreMLP(3, hidden=4, depth=1).double()
    with pytest.raises(ValueError, match=r"score_fn must be callable as score_fn\(x\)") as err:
        langevin_dynamics(model, X, step_size=0.1, n_steps=1)
    assert "NoiseConditionalScoreMLP" in str(err.value) and "annealed_langevin_dynamics" in str(err.value)


def test_scores_with_optional_or_variadic_arguments_are_accepted():
    annealed_langevin_dynamics(lambda y, *rest: -y, X, sigmas=[1.0], step_size=0.1, n_steps_each=1)
    annealed_langevin_dynamics(lambda y, s, t=1.0: -y, X, sigmas=[1.0], step_size=0.1, n_steps_each=1)
    langevin_dynamics(lambda y, s=1.0: -y, X, step_size=0.1, n_steps=1)
    langevin_dynamics(torch.neg, X, step_size=0.1, n_steps=1)  # a builtin


def test_the_network_is_called_once_per_step():
    net = _Counting(NoiseConditionalScoreMLP(3, hidden=4, depth=1).double())
    annealed_langevin_dynamics(net, X, sigmas=[1.0, 0.5], step_size=0.01, n_steps_each=3, denoise=True)
    assert net.calls == 2 * 3 + 1
    plain = _Counting(ScoreMLP(3, hidden=4, depth=1).double())
    langevin_dynamics(lambda y: plain(y), X, step_size=0.01, n_steps=4)
    assert plain.calls == 4
