"""Analytic densities: normalised, scores equal autograd of log_prob, exact samplers."""

from __future__ import annotations

import math

import pytest
import torch

from booktools.examples import two_gaussian_mixture
from booktools.grids import grid_2d, normalize_on_grid
from ssm_lib import Banana, Gaussian, GaussianMixture, Ring

TWO_D = {
    "banana": lambda: Banana(dtype=torch.float64),
    "ring": lambda: Ring(dtype=torch.float64),
    "mixture": lambda: two_gaussian_mixture(torch.float64),
    "gaussian": lambda: Gaussian(torch.tensor([0.5, -0.3], dtype=torch.float64),
                                 torch.tensor([[0.8, 0.3], [0.3, 0.5]], dtype=torch.float64)),
}
BOXES = {"banana": ((-8.0, 8.0), (-4.0, 20.0))}
DEFAULT_BOX = ((-6.0, 6.0), (-6.0, 8.0))


@pytest.mark.parametrize("name", list(TWO_D))
def test_log_prob_integrates_to_one(name):
    p = TWO_D[name]()
    xs, ys, pts = grid_2d(*BOXES.get(name, DEFAULT_BOX), n=800, dtype=torch.float64)
    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    mass = float(torch.exp(p.log_prob(pts)).sum()) * cell
    assert abs(mass - 1.0) < 2e-3


@pytest.mark.parametrize("name", list(TWO_D))
def test_score_is_gradient_of_log_prob(name, gen):
    p = TWO_D[name]()
    x = p.sample(64, generator=gen).requires_grad_(True)
    (auto,) = torch.autograd.grad(p.log_prob(x).sum(), x)
    torch.testing.assert_close(p.score(x.detach()), auto, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(TWO_D))
def test_unnormalized_log_prob_differs_by_log_normalizer(name, gen):
    p = TWO_D[name]()
    x = p.sample(10, generator=gen)
    torch.testing.assert_close(p.unnormalized_log_prob(x) - p.log_prob(x),
                               torch.full((10,), p.log_normalizer, dtype=torch.float64))


@pytest.mark.parametrize("name", list(TWO_D))
def test_samples_follow_the_density(name, gen):
    # compare the sample mean and second moments with numerical integrals of the density
    p = TWO_D[name]()
    n = 100000
    x = p.sample(n, generator=gen)
    xs, ys, pts = grid_2d(*BOXES.get(name, DEFAULT_BOX), n=800, dtype=torch.float64)
    w = torch.exp(p.log_prob(pts))
    w = w / w.sum()
    feats = lambda y: torch.stack([y[:, 0], y[:, 1], y[:, 0] ** 2, y[:, 1] ** 2, y[:, 0] * y[:, 1]], 1)  # noqa: E731
    expected = (w[:, None] * feats(pts)).sum(0)
    f = feats(x)
    se = f.std(0) / math.sqrt(n)
    assert torch.all((f.mean(0) - expected).abs() < 5 * se + 2e-3), (f.mean(0), expected)


def test_gaussian_matches_torch_distributions(gen):
    mean = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    cov = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=torch.float64)
    p = Gaussian(mean, cov)
    ref = torch.distributions.MultivariateNormal(mean, cov)
    x = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(p.log_prob(x), ref.log_prob(x))
    # Z = (2 pi)^{d/2} |Sigma|^{1/2}
    assert math.isclose(p.log_normalizer, 1.5 * math.log(2 * math.pi) + 0.5 * math.log(torch.det(cov).item()),
                        rel_tol=1e-12)


def test_mixture_matches_torch_distributions(gen):
    p = two_gaussian_mixture(torch.float64)
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(p.weights),
                                                torch.distributions.MultivariateNormal(p.means, p.covs))
    x = torch.randn(20, 2, generator=gen, dtype=torch.float64) * 2
    torch.testing.assert_close(p.log_prob(x), ref.log_prob(x))


def test_ring_normaliser_matches_grid():
    ring = Ring(radius=1.5, width=0.4, dtype=torch.float64)
    _, log_z = normalize_on_grid(ring.unnormalized_log_prob, (-4, 4), (-4, 4), n=800)
    assert abs(log_z - ring.log_normalizer) < 1e-3


@pytest.mark.parametrize(("factory", "name"), [
    (lambda: Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), "cov"),
    (lambda: Gaussian([0.0, 0.0], [[1.0, 0.0]]), "cov"),
    (lambda: Gaussian([[0.0]], [[1.0]]), "mean"),
    (lambda: GaussianMixture([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]]), "weights"),
    (lambda: GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0]]]), "covs"),
    (lambda: Ring(radius=-1.0), "radius"),
    (lambda: Banana(sigma2=0.0), "sigma2"),
])
def test_bad_parameters_name_the_argument(factory, name):
    with pytest.raises(ValueError, match=name):
        factory()


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got shape \(3, 3\)"):
        Banana().score(torch.zeros(3, 3))
