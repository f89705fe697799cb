"""Projection distributions: E[v v^T] = I for every kind; sphere vectors have norm sqrt(d)."""

from __future__ import annotations

import math

import pytest
import torch

from ssm_lib import sample_projections
from ssm_lib.projections import PROJECTIONS


@pytest.mark.parametrize("kind", PROJECTIONS)
def test_second_moment_is_identity(kind, gen):
    n, d = 200000, 4
    v = sample_projections(kind, (n, d), generator=gen, dtype=torch.float64)
    second = v.T @ v / n
    # entries of v v^T have variance <= 2 for all kinds, so the standard error is <= sqrt(2/n)
    assert (second - torch.eye(d, dtype=torch.float64)).abs().max() < 5 * math.sqrt(2 / n)
    assert v.mean(0).abs().max() < 5 * math.sqrt(1 / n)


def test_sphere_norm_is_sqrt_d_exactly(gen):
    v = sample_projections("sphere", (1000, 7), generator=gen, dtype=torch.float64)
    torch.testing.assert_close(v.norm(dim=1), torch.full((1000,), math.sqrt(7), dtype=torch.float64),
                               rtol=1e-14, atol=1e-14)
    # with several event dims the norm is over all of them
    w = sample_projections("sphere", (10, 3, 2, 2), generator=gen, dtype=torch.float64, event_dims=2)
    torch.testing.assert_close(w.norm(dim=(2, 3)), torch.full((10, 3), 2.0, dtype=torch.float64))


def test_rademacher_entries_are_plus_minus_one(gen):
    v = sample_projections("rademacher", (500, 5), generator=gen)
    assert set(v.unique().tolist()) == {-1.0, 1.0}
    assert v.dtype == torch.get_default_dtype()


def test_generator_reproducibility_and_dtype():
    a = sample_projections("gaussian", (3, 2), generator=torch.Generator().manual_seed(3))
    b = sample_projections("gaussian", (3, 2), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert sample_projections("sphere", (2, 2), dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize(("args", "kwargs", "name"), [
    (("uniform", (3, 2)), {}, "kind"),
    (("gaussian", (0, 2)), {}, "shape"),
    (("gaussian", ()), {}, "shape"),
    (("sphere", (3, 2)), {"event_dims": 3}, "event_dims"),
])
def test_bad_arguments_name_the_argument(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        sample_projections(*args, **kwargs)
