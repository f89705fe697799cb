"""The kernel estimators' pairwise-distance paths: values pinned, float32 accuracy, memory.

``median_bandwidth``, ``rbf_gram`` and the Stein and spectral estimators compute squared
distances from inner products (``|a|^2 + |b|^2 - 2 a.b``) instead of an ``(M, N, d)`` tensor of
differences. These tests hold them to

* values pinned in float64 from the difference-based implementation they replaced (stored
  numbers, and the same estimators run on an explicit ``(M, N, d)`` difference oracle);
* float32 accuracy on data far from the origin, where the plain inner-product formula loses
  every digit to cancellation (the wrong answer the centring guards against);
* memory: no single operation allocates an ``(M, M, d)``-sized block (measured with
  ``torch.profiler``'s memory profiling), at a size where the old path allocated 25 times the
  budget.
"""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from ssm_lib import score_estimators as se
from ssm_lib.score_estimators import SpectralScoreEstimator, SteinScoreEstimator, median_bandwidth, rbf_gram

D64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- the difference-based oracle
def _sq_dist_by_differences(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.unsqueeze(-2) - b.unsqueeze(-3)) ** 2).sum(-1)


def _median_by_differences(z: torch.Tensor) -> torch.Tensor:
    m = z.shape[-2]
    dist = _sq_dist_by_differences(z, z).sqrt()
    iu = torch.triu_indices(m, m, offset=1)
    h = torch.quantile(dist[..., iu[0], iu[1]], 0.5, dim=-1)
    return torch.where(h > 0, h, torch.ones_like(h))


@pytest.fixture
def difference_oracle(monkeypatch):
    """Run the estimators on the explicit difference computation they replaced."""
    def use():
        monkeypatch.setattr(se, "_pairwise_sq_dist", _sq_dist_by_differences)
        monkeypatch.setattr(se, "median_bandwidth", _median_by_differences)
    return use


def _samples(seed: int = 25):
    """Anisotropic, off-centre samples (scales 0.1-3, offset 3) in two groups, and queries."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([0.5, 1, 2, 3, 0.1], dtype=D64)
    z = torch.randn(2, 40, 5, generator=g, dtype=D64) * scale + 3.0
    q = torch.randn(2, 7, 5, generator=g, dtype=D64) + 3.0
    return z, q


# ---------------------------------------------------------------- values pinned in float64
def test_values_pinned_from_the_difference_implementation():
    """Numbers printed by the (M, M, d) implementation before the change (float64)."""
    z, q = _samples()
    torch.testing.assert_close(median_bandwidth(z), torch.tensor([4.79711010861029408, 4.40752904899060116],
                                                                 dtype=D64), rtol=1e-12, atol=0)
    stein = SteinScoreEstimator(eta=0.05)(z)
    torch.testing.assert_close(stein[0, :2], torch.tensor(
        [[-0.02671035068932631, -0.46521273108995248, -0.12556473189453493, 0.51266736499617360,
          2.02324324447167969],
         [-1.36220374243176834, 1.07247141614822050, 0.49270977523468518, 0.07807018018433889,
          1.44394429599690666]], dtype=D64), rtol=1e-9, atol=1e-11)
    assert stein.square().sum().item() == pytest.approx(535.83225748811844369, rel=1e-9)
    spectral = SpectralScoreEstimator(n_eigen=6, eta=0.01)(z, queries=q)
    torch.testing.assert_close(spectral[1, :2], torch.tensor(
        [[-0.09361383492504492, -0.68745815060989368, -0.21360589254552240, 0.08089888067546912,
          -0.04038153737560016],
         [-0.04119788798814222, -0.94197234601934543, 0.15473345434183383, 0.45909111194940444,
          -0.02974231992619133]], dtype=D64), rtol=1e-9, atol=1e-11)
    assert spectral.square().sum().item() == pytest.approx(11.19850782433073277, rel=1e-9)
    assert SpectralScoreEstimator()(z).square().sum().item() == pytest.approx(430.56842220660792009, rel=1e-9)


@pytest.mark.parametrize("shape", [(2, 3), (13, 1), (3, 30, 4), (2, 2, 17, 6)])
def test_distance_gram_and_median_match_differences(shape):
    g = torch.Generator().manual_seed(sum(shape))
    z = torch.randn(*shape, generator=g, dtype=D64) * 2.0 - 1.5
    b = torch.randn(*shape[:-2], 5, shape[-1], generator=g, dtype=D64)
    torch.testing.assert_close(se._pairwise_sq_dist(z, b), _sq_dist_by_differences(z, b),
                               rtol=1e-12, atol=1e-12)
    sq = se._pairwise_sq_dist(z, z)
    assert (sq.diagonal(dim1=-2, dim2=-1) == 0).all()          # exact zeros for a point with itself
    assert (sq >= 0).all()
    h = median_bandwidth(z)
    torch.testing.assert_close(h, _median_by_differences(z), rtol=1e-13, atol=0)
    oracle = torch.exp(-_sq_dist_by_differences(z, b) / (2 * h[..., None, None] ** 2))
    torch.testing.assert_close(rbf_gram(z, b, h), oracle, rtol=1e-12, atol=1e-14)


def test_median_of_coincident_samples_falls_back_to_one():
    z = torch.ones(2, 6, 3, dtype=D64)
    z[1, :3] = 0.0               # group 1: half the pairs at distance sqrt(3), median between
    h = median_bandwidth(z)
    assert h[0].item() == 1.0
    torch.testing.assert_close(h[1], _median_by_differences(z)[1], rtol=1e-14, atol=0)


@pytest.mark.parametrize("make", [lambda: SteinScoreEstimator(eta=0.05),
                                  lambda: SteinScoreEstimator(eta=0.3, bandwidth=1.7),
                                  lambda: SpectralScoreEstimator(n_eigen=6, eta=0.01),
                                  lambda: SpectralScoreEstimator(eigen_threshold=0.9)],
                         ids=["stein", "stein-fixed-h", "spectral", "spectral-threshold"])
def test_estimators_match_the_difference_oracle(make, difference_oracle):
    z, q = _samples(7)
    kw = {"queries": q} if isinstance(make(), SpectralScoreEstimator) else {}
    ours = make()(z, **kw)
    difference_oracle()
    torch.testing.assert_close(ours, make()(z, **kw), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- float32 cancellation
def test_float32_far_from_the_origin():
    """Samples at distance 1e3 from the origin with unit spread: |a|^2 ~ 5e6 while the
    distances^2 are ~10, so the uncentred inner-product formula would lose all of them in
    float32 (eps * 5e6 ~ 0.3 per term). Centring keeps the float64 answer to ~1e-5."""
    g = torch.Generator().manual_seed(3)
    z64 = torch.randn(2, 50, 5, generator=g, dtype=D64) + 1e3
    z32 = z64.float()
    exact = _sq_dist_by_differences(z64, z64)
    assert (se._pairwise_sq_dist(z32, z32).double() - exact).abs().max().item() < 1e-3 * exact.mean().item()
    copy = se._pairwise_sq_dist(z32, z32.clone())      # not the same tensor: no exact diagonal
    assert (copy >= 0).all()                           # rounding below zero is clamped
    assert copy.diagonal(dim1=-2, dim2=-1).abs().max().item() < 1e-3 * exact.mean().item()
    torch.testing.assert_close(median_bandwidth(z32).double(), _median_by_differences(z64), rtol=1e-5, atol=0)
    for est in (SteinScoreEstimator(eta=0.1), SpectralScoreEstimator(n_eigen=5)):
        torch.testing.assert_close(est(z32).double(), est(z64), rtol=2e-3, atol=2e-3)


# ---------------------------------------------------------------- memory
def _largest_allocation(fn) -> int:
    """The largest block any single torch operation allocated while ``fn`` ran (bytes)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.cpu_memory_usage for e in prof.events())


@pytest.mark.parametrize("which", ["median", "stein", "spectral"])
def test_no_operation_allocates_an_m_by_m_by_d_block(which):
    """M = 400 samples of d = 200 dimensions (float64): an (M, M, d) difference tensor is
    256 MB; the budget is 8 (M, M) matrices, 10 MB (the old path: 25 times over)."""
    m, d = 400, 200
    z = torch.randn(m, d, generator=torch.Generator().manual_seed(0), dtype=D64)
    fn = {"median": lambda: median_bandwidth(z), "stein": lambda: SteinScoreEstimator()(z),
          "spectral": lambda: SpectralScoreEstimator()(z)}[which]
    budget = 8 * m * m * 8
    assert _largest_allocation(fn) < budget
