"""Importance-sampled log Z that can fail silently (issue 20, audit item 5): the estimate carries
its effective sample size and a verdict (``ok`` / ``reliable``), and a proposal matched to the
model rescues the case the base proposal cannot handle.

Oracle: a DKEF with alpha = 0 and base N(0, I) is exactly N(0, I_D) (log Z = 0). The proposal
N(0, 4 I) is the scalability notebook's former one against a model that learned N(0, I): its
weights have E[w^2] = (4 / sqrt(7))^D = 1.51^D (3e11 at D = 64), so the ESS is a handful and the
estimate must be flagged failed; a Gaussian fitted to rows of N(0, I) must get log Z = 0 within
its standard error with a large ESS, as must the defensive mixture of that fit and the base."""

from __future__ import annotations

import math

import pytest
import torch

from ssm_lib.dkef import (
    DEFAULT_MIN_ESS,
    DKEF,
    GaussianProposal,
    LogNormalizerEstimate,
    MixtureProposal,
    estimate_log_normalizer,
    heldout_log_likelihood,
    log_normalizer,
    matched_proposal,
)

F64 = torch.float64


def _gaussian_model(dim: int, base_std: float = 1.0, seed: int = 0) -> DKEF:
    g = torch.Generator().manual_seed(seed)
    model = DKEF(torch.randn(4, dim, generator=g, dtype=F64), n_kernels=1, hidden=4, base_std=base_std,
                 generator=g)
    assert float(model.alpha.abs().max()) == 0.0  # exactly N(0, base_std^2 I): log Z = 0
    return model


def test_a_mismatched_proposal_in_64_dimensions_is_flagged_failed():
    model = _gaussian_model(64)
    n = 20_000
    est = estimate_log_normalizer(model, n, proposal_std=2.0, generator=torch.Generator().manual_seed(1))
    # E_q[w^2] = (4 / sqrt 7)^64 = 3e11 >> n: a handful of effective draws
    assert (4 / math.sqrt(7)) ** 64 > 1e11
    assert est.ess < 20 and not est.ok and not est.reliable(DEFAULT_MIN_ESS)
    assert math.isnan(est.value)
    assert est.describe().startswith("failed (ESS ")
    # the tuple interface gives the same number, unflagged (kept for old callers)
    assert log_normalizer(model, n, proposal_std=2.0, generator=torch.Generator().manual_seed(1)) == (
        est.log_z, est.standard_error)


@pytest.mark.parametrize("matched", ["fit", "mixture"])
def test_a_matched_proposal_gets_log_z_right_with_a_large_ess(matched):
    model = _gaussian_model(64)
    data = torch.randn(4860, 64, generator=torch.Generator().manual_seed(2), dtype=F64)
    proposal = (GaussianProposal.fit(data) if matched == "fit" else matched_proposal(model, data))
    n = 20_000
    est = estimate_log_normalizer(model, n, proposal=proposal, generator=torch.Generator().manual_seed(3))
    assert est.ok and est.ess > 0.3 * n, est
    assert abs(est.log_z) < 4 * est.standard_error + 1e-3, est  # the truth is 0
    assert est.standard_error < 0.05
    assert est.describe().endswith(f"(ESS {est.ess:.0f})")
    assert est.proposal == proposal.label


def test_the_mixture_is_no_worse_than_twice_its_better_part():
    # model N(0, 4 I) (the base itself, alpha = 0), the fit to N(0, I) rows is far too narrow
    # (infinite-variance weights on its own); the 50/50 mixture keeps ESS >= about N / 2
    model = _gaussian_model(16, base_std=2.0)
    narrow = torch.randn(2000, 16, generator=torch.Generator().manual_seed(4), dtype=F64)
    n = 20_000
    est = estimate_log_normalizer(model, n, proposal=matched_proposal(model, narrow),
                                  generator=torch.Generator().manual_seed(5))
    assert est.ess > 0.45 * n and abs(est.log_z) < 4 * est.standard_error + 1e-3, est
    alone = estimate_log_normalizer(model, n, proposal=GaussianProposal.fit(narrow),
                                    generator=torch.Generator().manual_seed(5))
    assert alone.ess < 0.1 * n  # the narrow fit alone is bad here


def test_the_ess_is_the_weights_ess_and_matches_the_se_identity():
    model = _gaussian_model(3, base_std=1.5)
    with torch.no_grad():
        model.alpha.copy_(torch.tensor([2.0, -1.0, 0.5, 1.5], dtype=F64))
    n = 3000
    est = estimate_log_normalizer(model, n, generator=torch.Generator().manual_seed(6), chunk=n)
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        y = 1.5 * torch.randn(n, 3, generator=g, dtype=F64)
        lw = model.unnormalized_log_prob(y) - model.base_log_prob(y)
    w = torch.exp(lw - lw.max())
    assert est.ess == pytest.approx((w.sum() ** 2 / (w * w).sum()).item(), rel=1e-9)
    assert est.ess == pytest.approx(n / (1 + (n - 1) * est.standard_error**2), rel=1e-9)
    assert est.ess < 0.9 * n


def test_one_dominant_weight_saturates_the_se_at_one_and_fails():
    # a proposal so far from the model that one draw carries the sum: SE -> 1, ESS -> 1
    model = _gaussian_model(8, base_std=0.3)
    est = estimate_log_normalizer(model, 2000, proposal_std=5.0, generator=torch.Generator().manual_seed(7))
    assert est.ess < 1.5
    assert est.standard_error == pytest.approx(1.0, abs=0.05)
    assert not est.ok


def test_heldout_log_likelihood_carries_the_flag():
    model = _gaussian_model(64)
    x = torch.randn(50, 64, generator=torch.Generator().manual_seed(8), dtype=F64)
    bad = heldout_log_likelihood(model, x, n_samples=5000, proposal_std=2.0,
                                 generator=torch.Generator().manual_seed(9))
    assert not bad.ok and math.isnan(bad.value) and bad.describe().startswith("failed")
    data = torch.randn(4000, 64, generator=torch.Generator().manual_seed(10), dtype=F64)
    good = heldout_log_likelihood(model, x, n_samples=5000, proposal=matched_proposal(model, data),
                                  generator=torch.Generator().manual_seed(9))
    true = (-0.5 * (x * x).sum(1) - 32 * math.log(2 * math.pi)).mean().item()
    assert good.ok and good.value == good.mean
    assert abs(good.mean - true) < 4 * good.log_z_standard_error + 1e-3
    assert good.reliable(10.0) and not good.reliable(1e9)


def test_the_threshold_decides_and_is_checked():
    est = LogNormalizerEstimate(log_z=-1.0, standard_error=0.1, ess=150.0, n_samples=1000, min_ess=200.0)
    assert not est.ok and est.reliable(100.0) and not est.reliable(151.0)
    assert est.describe() == "failed (ESS 150 < 200)"
    with pytest.raises(ValueError, match="min_ess"):
        est.reliable(-1.0)
    with pytest.raises(ValueError, match="min_ess"):
        estimate_log_normalizer(_gaussian_model(2), 10, min_ess=0.0)


def test_gaussian_proposal_density_and_draws_match_torch():
    g = torch.Generator().manual_seed(11)
    a = torch.randn(3, 3, generator=g, dtype=F64)
    cov = a @ a.T + 0.5 * torch.eye(3, dtype=F64)
    mean = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    q = GaussianProposal(mean, torch.linalg.cholesky(cov))
    ref = torch.distributions.MultivariateNormal(mean, cov)
    y = q.sample(20_000, generator=g)
    torch.testing.assert_close(q.log_prob(y), ref.log_prob(y))
    torch.testing.assert_close(torch.cov(y.T), cov, atol=0.1, rtol=0.05)
    fitted = GaussianProposal.fit(y, diagonal=False)
    torch.testing.assert_close(fitted.scale_tril @ fitted.scale_tril.T, torch.cov(y.T))
    diag = GaussianProposal.fit(y, scale=1.5)
    torch.testing.assert_close(diag.diag**2, 2.25 * y.var(0))
    ref_diag = torch.distributions.Normal(y.mean(0), 1.5 * y.var(0).sqrt())
    torch.testing.assert_close(diag.log_prob(y[:10]), ref_diag.log_prob(y[:10]).sum(-1))


def test_mixture_density_is_the_weighted_sum():
    q1 = GaussianProposal.isotropic(2, 1.0)
    q2 = GaussianProposal(torch.tensor([3.0, 0.0], dtype=F64), 0.5 * torch.eye(2, dtype=F64))
    mix = MixtureProposal([q1, q2], [0.3, 0.7])
    y = mix.sample(40_000, generator=torch.Generator().manual_seed(12))
    expected = torch.log(0.3 * q1.log_prob(y).exp() + 0.7 * q2.log_prob(y).exp())
    torch.testing.assert_close(mix.log_prob(y), expected)
    # P(y_1 > 1.5) = 0.3 (1 - Phi(1.5)) + 0.7 (1 - Phi(-3)) = 0.7191 (equal weights would give 0.51)
    phi = torch.distributions.Normal(0.0, 1.0).cdf
    expected_tail = 0.3 * (1 - phi(torch.tensor(1.5))) + 0.7 * (1 - phi(torch.tensor(-3.0)))
    assert (y[:, 0] > 1.5).double().mean().item() == pytest.approx(expected_tail.item(), abs=0.006)


def test_bad_proposals_are_named():
    model = _gaussian_model(3)
    with pytest.raises(ValueError, match="not both"):
        estimate_log_normalizer(model, 10, proposal=GaussianProposal.isotropic(3, 1.0), proposal_std=1.0)
    with pytest.raises(ValueError, match="dimension"):
        estimate_log_normalizer(model, 10, proposal=GaussianProposal.isotropic(2, 1.0))
    with pytest.raises(ValueError, match="proposal"):
        estimate_log_normalizer(model, 10, proposal=object())
    with pytest.raises(ValueError, match="base_weight"):
        matched_proposal(model, torch.zeros(5, 3, dtype=F64) + torch.arange(5.0, dtype=F64)[:, None],
                         base_weight=1.0)
    with pytest.raises(ValueError, match="x"):
        matched_proposal(model, torch.zeros(5, 2, dtype=F64))
    with pytest.raises(ValueError, match="constant column"):
        GaussianProposal.fit(torch.ones(5, 3, dtype=F64))
    # n <= d rows: a rank-deficient covariance, refused by its shape. Random rows, whose Cholesky
    # can round to a tiny positive pivot and pass (2 x 3 rows on an AVX-512 CPU: 9.4e-9), are
    # refused on every CPU; so is n = d, one row short; n = d + 1 random rows fit.
    gen = torch.Generator().manual_seed(0)
    for n in (2, 3):
        rows = torch.randn(n, 3, generator=gen, dtype=F64)
        with pytest.raises(ValueError, match=f"x has {n} rows for 3 columns.*diagonal=True"):
            GaussianProposal.fit(rows, diagonal=False)
    assert GaussianProposal.fit(torch.randn(4, 3, generator=gen, dtype=F64), diagonal=False).diag is None
    # collinear columns with n > d: a covariance of ones, whose Cholesky meets the pivot
    # 1 - 1 * 1 = 0 exactly on any CPU
    collinear = torch.arange(5, dtype=F64)[:, None].expand(5, 3)
    with pytest.raises(ValueError, match="collinear"):
        GaussianProposal.fit(collinear, diagonal=False)
    with pytest.raises(ValueError, match="scale_tril"):
        GaussianProposal(torch.zeros(2, dtype=F64), -torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="weights"):
        MixtureProposal([GaussianProposal.isotropic(2, 1.0)], [0.5])
