"""NICE and DKEF: saved and loaded with their configuration (bit-for-bit outputs after load),
NICE's default width scales with the input, and a NICE too large for memory is refused before
anything is allocated (issue 21, items 7 and 8 and the persistence feature)."""

from __future__ import annotations

import io
import time

import pytest
import torch

from ssm_lib import NICE, load_model, save_model
from ssm_lib.dkef import DKEF
from ssm_lib.flows import default_hidden, nice_parameter_count

F64 = torch.float64


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.add_(0.1 * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return model


def _round_trip(model: torch.nn.Module) -> torch.nn.Module:
    buffer = io.BytesIO()
    save_model(model, buffer)
    buffer.seek(0)
    torch.manual_seed(123)  # the rebuilt model's initialisation differs from the saved weights
    return load_model(buffer)


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_nice_round_trips_bit_for_bit(dtype):
    torch.manual_seed(0)
    model = _perturb(NICE(5, hidden=7, depth=2, n_couplings=3, activation="tanh").to(dtype))
    loaded = _round_trip(model)
    assert type(loaded) is NICE and loaded.config() == model.config()
    assert loaded.config() == {"dim": 5, "hidden": 7, "depth": 2, "n_couplings": 3, "activation": "tanh"}
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert torch.equal(loaded.inverse(x), model.inverse(x))
    assert loaded.scaling.log_scale.dtype == dtype


def test_nice_config_records_the_resolved_default_width():
    model = NICE(6, depth=1, n_couplings=2)
    assert model.config()["hidden"] == default_hidden(6) == 64
    assert NICE.from_config(model.config()).hidden == 64


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_dkef_round_trips_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(0)
    inducing = torch.randn(6, 3, generator=g, dtype=dtype)
    model = DKEF(inducing, n_kernels=2, hidden=5, log10_bandwidths=(0.3, -0.2), base_std=1.7,
                 log10_lambda=-1.5, train_inducing=False, skip=False, generator=g)
    _perturb(model, seed=1)  # alpha (a buffer) included
    assert bool(model.alpha.abs().min() > 0)
    loaded = _round_trip(model)
    assert type(loaded) is DKEF and loaded.config() == model.config()
    assert loaded.config()["inducing_shape"] == [6, 3]
    assert loaded.base_std == 1.7 and loaded.inducing.requires_grad is False
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=dtype)
    assert torch.equal(loaded(x), model(x))
    assert torch.equal(loaded.score(x), model.score(x))
    assert torch.equal(loaded.inducing, model.inducing) and torch.equal(loaded.alpha, model.alpha)


def test_dkef_from_config_names_a_bad_inducing_shape():
    with pytest.raises(ValueError, match="inducing_shape"):
        DKEF.from_config({"n_kernels": 2})
    with pytest.raises(ValueError, match="inducing_shape"):
        DKEF.from_config({"inducing_shape": [0, 3]})


def test_nice_default_width_scales_with_the_input():
    small = NICE(2)
    n = sum(p.numel() for p in small.parameters())
    assert small.hidden == 64 and n == nice_parameter_count(2, 64, 4, 4) < 100_000
    # the paper's MNIST model keeps its size by default
    assert default_hidden(784) == 1000 and default_hidden(100) == 200
    assert nice_parameter_count(784, 1000, 4, 4) == sum(
        p.numel() for p in NICE(784, hidden=1000, depth=4, n_couplings=4).parameters())


def test_a_nice_too_large_for_memory_is_refused_before_allocating():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"dim = 10000000 .*hidden = 1000.*memory"):
        NICE(10**7)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(ValueError, match="hidden"):
        NICE(10**5, hidden=10**6)
    with pytest.raises(ValueError, match="dim"):
        NICE(1)
