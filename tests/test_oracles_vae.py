"""Oracle tests for the entropy term of the implicit-encoder VAE and the WAE losses (issue 19).

The encoders here are Gaussian location-scale maps z = mu + sigma * eps whose entropy is known,
H = sum_j log sigma_j + const, so dH/d log sigma_j = 1; the score estimator returns their exact
score, and the decoder's likelihood does not depend on z, so the gradient of the loss with
respect to (mu, log sigma) is the prior term's plus the entropy term's, both in closed form.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssm_lib.implicit_vae import implicit_elbo_loss, wae_loss
from ssm_lib.score_estimators import ScoreEstimator

F64 = torch.float64
SIGMA = torch.tensor([0.5, 1.6, 0.8], dtype=F64)
MU = torch.tensor([0.3, -0.2, 0.0], dtype=F64)


class _GaussianImplicitEncoder(nn.Module):
    """``encoder(x, n, generator) -> (B, n, d)``: z = mu + sigma * eps (eps recorded)."""

    def __init__(self):
        super().__init__()
        self.mu = nn.Parameter(MU.clone())
        self.log_sigma = nn.Parameter(SIGMA.log())
        self.eps = None

    def forward(self, x, n_samples=1, generator=None):
        self.eps = torch.randn(x.shape[0], n_samples, 3, generator=generator, dtype=F64)
        return self.mu + self.log_sigma.exp() * self.eps


class _ScaleEncoder(nn.Module):
    """``encoder(x) -> (B, d)``: z = sigma * x (the WAE's deterministic encoder)."""

    def __init__(self):
        super().__init__()
        self.log_sigma = nn.Parameter(SIGMA.log())

    def forward(self, x):
        return self.log_sigma.exp() * x


class _ExactGaussianScore(ScoreEstimator):
    """The exact score -(z - mu) / sigma^2 of N(mu, diag sigma^2), parameters read (detached)
    from ``source``."""

    def __init__(self, source, centred=True):
        self.source, self.centred = source, centred

    def __call__(self, samples, context=None):
        mu = self.source.mu.detach() if self.centred else 0.0
        return -(samples - mu) / self.source.log_sigma.detach().exp() ** 2


class _FlatDecoder:
    """A likelihood that does not depend on z (so only the prior and entropy terms move the
    encoder)."""

    def log_likelihood(self, x, z):
        return -(x**2).sum(-1) + 0.0 * z.sum(-1)


def test_implicit_elbo_entropy_gradient_has_the_right_sign():
    """Mutant: the entropy surrogate's sign flipped in ``implicit_elbo_loss``
    (``- entropy_surrogate(z, score)``: the encoder then minimises entropy). Oracle: for
    q = N(mu, diag sigma^2), d/d log sigma_j of E[-log p(z)] - H[q] is sigma_j^2 - 1 in closed
    form (prior sigma_j^2, entropy -1), and d/d mu_j is mu_j. Per draw the gradient must be
    mean(sigma^2 eps^2 + mu sigma eps - eps^2) (tight), and over 20 000 draws within 5
    standard errors of the closed form; the flipped sign gives sigma^2 + 1."""
    enc = _GaussianImplicitEncoder()
    x = torch.zeros(50, 2, dtype=F64)
    loss, _ = implicit_elbo_loss(enc, _FlatDecoder(), _ExactGaussianScore(enc), x, n_particles=400,
                                 generator=torch.Generator().manual_seed(0))
    g_mu, g_log_sigma = torch.autograd.grad(loss, [enc.mu, enc.log_sigma])
    eps = enc.eps.reshape(-1, 3)
    per_draw = SIGMA**2 * eps**2 + MU * SIGMA * eps - eps**2
    torch.testing.assert_close(g_log_sigma, per_draw.mean(0), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_mu, (MU + SIGMA * eps - eps / SIGMA).mean(0), rtol=1e-10, atol=1e-12)
    se = per_draw.std(0) / eps.shape[0] ** 0.5
    assert bool(((g_log_sigma - (SIGMA**2 - 1)).abs() < 5 * se).all()), (g_log_sigma, SIGMA**2 - 1)
    assert g_log_sigma[0] < 0 < g_log_sigma[1]  # sigma < 1 grows, sigma > 1 shrinks


def test_wae_lambda_weights_the_entropy_term_too():
    """Mutant: ``wae_loss`` applying lambda to the prior term but not to the entropy term
    (``lam * neg_log_prior(z).mean() + entropy_surrogate(z, score)``). Oracle: with
    z = sigma * x and the exact score -z / sigma^2, d/d log sigma_j of
    lambda (E[-log p(z)] - H) is lambda (sigma_j^2 - 1) mean(x_j^2), computed here, at
    lambda = 3; and the gradient at lambda = 3 is three times the one at lambda = 1."""
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    grads = {}
    for lam in (1.0, 3.0):
        enc = _ScaleEncoder()
        loss, _ = wae_loss(enc, _FlatDecoder(), _ExactGaussianScore(enc, centred=False), x, lam=lam)
        (grads[lam],) = torch.autograd.grad(loss, [enc.log_sigma])
    expected = 3.0 * (SIGMA**2 - 1) * (x**2).mean(0)
    torch.testing.assert_close(grads[3.0], expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[3.0], 3 * grads[1.0], rtol=1e-10, atol=1e-12)


def test_wae_cost_replaces_the_likelihood_term():
    """Mutant: ``wae_loss`` ignoring ``cost`` (always the decoder's negative log-likelihood).
    Oracle: with the cost c(x, z) = 2.5 ||x - z||^2 and the flat decoder, the loss with the
    cost minus the loss without it is mean(c) - mean(-log p(x|z)) exactly (the prior and
    entropy terms are the same), and ``info["recon"]`` is mean(c)."""
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=F64)

    def cost(x, z):
        return 2.5 * ((x - z) ** 2).sum(-1)

    enc = _ScaleEncoder()
    score = _ExactGaussianScore(enc, centred=False)
    with_cost, info = wae_loss(enc, _FlatDecoder(), score, x, lam=3.0, cost=cost)
    plain, _ = wae_loss(enc, _FlatDecoder(), score, x, lam=3.0)
    z = SIGMA * x
    expected = cost(x, z).mean() - (x**2).sum(-1).mean()
    torch.testing.assert_close(with_cost - plain, expected, rtol=1e-12, atol=1e-12)
    assert info["recon"] == pytest.approx(cost(x, z).mean().item(), rel=1e-12)
    (g,) = torch.autograd.grad(with_cost, [enc.log_sigma])
    # d/d log sigma_j of mean 2.5 (x_j - sigma_j x_j)^2 = -5 (1 - sigma_j) sigma_j mean(x_j^2)
    recon_part = -5 * (1 - SIGMA) * SIGMA * (x**2).mean(0)
    torch.testing.assert_close(g, recon_part + 3.0 * (SIGMA**2 - 1) * (x**2).mean(0), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="cost"):
        wae_loss(enc, _FlatDecoder(), score, x, cost=lambda x, z: cost(x, z)[:3])
    with pytest.raises(TypeError, match="cost"):
        wae_loss(enc, _FlatDecoder(), score, x, cost="squared")


class _CountingEncoder(_GaussianImplicitEncoder):
    calls = 0

    def forward(self, x, n_samples=1, generator=None):
        self.calls += 1
        return super().forward(x, n_samples, generator)


class _LearningScore(_ExactGaussianScore):
    def __init__(self, source):
        super().__init__(source)
        self.seen = []

    def update(self, samples, context=None):
        self.seen.append(samples.shape)
        return 0.0


def test_an_estimator_that_does_not_learn_gets_no_draws_to_learn_from():
    """A kernel estimator's ``update`` does nothing, so ``implicit_elbo_loss`` draws once per
    step for it (the scored draws), and twice for an estimator that learns (first its
    training draws, then the scored ones)."""
    x = torch.zeros(5, 2, dtype=F64)
    enc = _CountingEncoder()
    implicit_elbo_loss(enc, _FlatDecoder(), _ExactGaussianScore(enc), x, n_particles=4)
    assert enc.calls == 1
    enc = _CountingEncoder()
    learner = _LearningScore(enc)
    implicit_elbo_loss(enc, _FlatDecoder(), learner, x, n_particles=4)
    assert enc.calls == 2 and learner.seen == [torch.Size([5, 4, 3])]
