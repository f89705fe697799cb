r"""Objectives of variational and Wasserstein auto-encoders whose encoder is *implicit*
(Song et al. 2019, Section 5.2), with the entropy term supplied by a score estimator, and an
importance-weighted estimate of the test log-likelihood.

The functions take any networks with these interfaces (the paper's MLPs are in the
repository's ``paper_recipes.vae``):

* an *implicit encoder* ``encoder(x, n_samples, generator) -> z`` of shape
  ``(B, n_samples, z_dim)``: :math:`z = g_\phi(x, \epsilon)` with fresh noise, so
  :math:`q_\phi(z|x)` can be sampled but has no density;
* a *Gaussian encoder* ``encoder(x) -> (mean, log_std)``, each ``(B, z_dim)``, with
  ``encoder.z_dim`` and ``encoder.sample_and_log_prob(x, n_samples, generator) -> (z, log_q)``
  of shapes ``(B, n, z_dim)`` and ``(B, n)``: :math:`q_\phi(z|x) = \mathcal N(\mu_\phi(x),
  \operatorname{diag}\sigma_\phi^2(x))`;
* a *deterministic encoder* ``encoder(x) -> z`` of shape ``(B, z_dim)`` (the WAE's);
* a *decoder* with ``decoder.log_likelihood(x, z)`` :math:`= \log p_\theta(x|z)` for
  ``x (B, x_dim)`` and ``z (B, *, z_dim)``, of shape ``(B, *)``.

The prior is :math:`p(z) = \mathcal N(0, I)`. Losses average over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ._checks import (
    ArgumentTypeError,
    check_batch,
    check_count,
    check_finite,
    check_flag,
    check_generator,
    check_number,
)
from .score_estimators import ScoreEstimator, entropy_surrogate
from .training import train_loop

__all__ = [
    "LOG_2PI", "fit_proposal", "gaussian_elbo_loss", "implicit_elbo_loss",
    "importance_weighted_log_likelihood", "neg_log_prior", "wae_loss",
]

LOG_2PI = math.log(2 * math.pi)


def neg_log_prior(z: torch.Tensor) -> torch.Tensor:
    r""":math:`-\log\mathcal N(z; 0, I) = \tfrac12\|z\|^2 + \tfrac d2\log 2\pi`, over the last dim."""
    return 0.5 * (z**2).sum(-1) + 0.5 * z.shape[-1] * LOG_2PI


def gaussian_elbo_loss(encoder: nn.Module, decoder: nn.Module, x: torch.Tensor, *,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Negative ELBO with the closed-form KL (Kingma & Welling 2014, Eq. 10):
    :math:`-\mathbb E_q[\log p(x|z)] + \mathrm{KL}(q(z|x)\,\|\,\mathcal N(0, I))`."""
    check_batch(x, "x")
    check_generator(generator, x.device, what="x")
    mean, log_std = encoder(x)
    eps = torch.randn(mean.shape, generator=generator, dtype=x.dtype, device=x.device)
    z = mean + eps * log_std.exp()
    kl = 0.5 * (mean**2 + (2 * log_std).exp() - 1).sum(-1) - log_std.sum(-1)
    return (-decoder.log_likelihood(x, z) + kl).mean()


def _check_estimator(estimator: object) -> None:
    if not isinstance(estimator, ScoreEstimator):
        raise ArgumentTypeError(f"estimator must be a ScoreEstimator (e.g. SteinScoreEstimator, "
                                f"NetworkScoreEstimator), got {type(estimator).__name__}")


def implicit_elbo_loss(encoder: nn.Module, decoder: nn.Module, estimator: ScoreEstimator,
                       x: torch.Tensor, *, n_particles: int = 1, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, float | None]:
    r"""A loss whose gradient is that of the negative ELBO of an implicit encoder,

    .. math::

        -\mathcal L = \mathbb E_{q_\phi(z|x)}[-\log p_\theta(x|z) - \log p(z)] - H[q_\phi(z|x)],

    with the entropy's gradient from the estimated score through
    :func:`~ssm_lib.score_estimators.entropy_surrogate`.
    First the estimator learns from ``n_particles`` fresh draws per data point
    (``estimator.update``: one SSM-VR step for a score network conditioned on :math:`x`;
    skipped, with no draws, for an estimator that does not learn, such as a kernel
    estimator, see :attr:`~ssm_lib.score_estimators.ScoreEstimator.learns`); then new draws
    are scored. The reconstruction term uses
    the first draw of each point, the prior and entropy terms all of them (as the paper's code).

    Returns ``(loss, info)``, ``info`` holding the batch's mean reconstruction term
    ``"recon"`` (:math:`-\log p_\theta(x|z)`) and the estimator's training loss
    ``"estimator_loss"`` (``None`` for kernel estimators). The loss's *value* is not the ELBO
    (the entropy enters only through its gradient).
    """
    _check_estimator(estimator)
    n_particles = check_count(n_particles, "n_particles")
    check_batch(x, "x")
    check_generator(generator, x.device, what="x")
    est_loss = None
    if estimator.learns:
        z_fit = encoder(x, n_particles, generator).detach()
        est_loss = estimator.update(z_fit, x if estimator.uses_context else None)
    z = encoder(x, n_particles, generator)                                  # (B, M, d)
    score = estimator(z, x if estimator.uses_context else None)
    recon = -decoder.log_likelihood(x, z[:, 0])
    loss = recon.mean() + neg_log_prior(z).mean() + entropy_surrogate(z, score)
    return loss, {"recon": float(recon.mean().detach()), "estimator_loss": est_loss}


def wae_loss(encoder: nn.Module, decoder: nn.Module, estimator: ScoreEstimator,
             x: torch.Tensor, *, lam: float = 10.0,
             cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, float | None]:
    r"""WAE loss (Tolstikhin et al. 2018) with a KL penalty between the aggregate posterior
    :math:`q_\phi(z) = \mathbb E_x\,\delta(z - f_\phi(x))` and the prior,

    .. math::

        \mathbb E_x[c(x, z)] + \lambda\big(\mathbb E_{q}[-\log p(z)] - H[q_\phi(z)]\big),
        \qquad z = f_\phi(x),

    with the entropy's gradient from the estimated score of the batch's codes, treated as one
    group of samples of :math:`q_\phi(z)` (the estimator learns from them first when it
    learns, as in :func:`implicit_elbo_loss`).

    Args:
        cost: the reconstruction cost ``cost(x, z)`` of shape ``(B,)``, e.g. a squared error
            :math:`\|x - \mathbb E_\theta[x|z]\|^2` (Song et al.'s code for this experiment);
            ``None``: the decoder's negative log-likelihood :math:`-\log p_\theta(x|z)`.

    Returns ``(loss, info)`` as :func:`implicit_elbo_loss`, ``info["recon"]`` being the batch's
    mean cost.
    """
    if cost is not None and not callable(cost):
        raise ArgumentTypeError(f"cost must be a function cost(x, z) -> (B,) or None, "
                                f"got {type(cost).__name__}")
    _check_estimator(estimator)
    if check_number(lam, "lam") < 0:
        raise ValueError(f"lam must be a finite number >= 0 (the weight of the KL penalty), got {lam!r}")
    est_loss = estimator.update(encoder(x).detach().unsqueeze(0)) if estimator.learns else None
    z = encoder(x)
    score = estimator(z.unsqueeze(0)).squeeze(0)
    recon = -decoder.log_likelihood(x, z) if cost is None else cost(x, z)
    if not isinstance(recon, torch.Tensor) or recon.shape != x.shape[:1]:
        raise ValueError(f"cost(x, z) must return a tensor of shape {tuple(x.shape[:1])} (one cost per "
                         f"data point), got {getattr(recon, 'shape', type(recon).__name__)}")
    loss = recon.mean() + lam * (neg_log_prior(z).mean() + entropy_surrogate(z, score))
    return loss, {"recon": float(recon.mean().detach()), "estimator_loss": est_loss}


@torch.no_grad()
def importance_weighted_log_likelihood(x: torch.Tensor, decoder: nn.Module, proposal: nn.Module,
                                       *, n_samples: int = 1000, chunk: int = 250,
                                       generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The importance-weighted bound (Burda et al. 2016, Eq. 8) per data point,

    .. math::

        \log\frac1K\sum_{k=1}^K \frac{p_\theta(x|z_k)\,p(z_k)}{q(z_k|x)},\qquad z_k\sim q(\cdot|x),

    whose expectation is a lower bound on :math:`\log p_\theta(x)` that tightens as
    :math:`K` = ``n_samples`` grows; exact for every :math:`K` when :math:`q` is the posterior.
    Returns a tensor of shape ``(B,)``.
    """
    k = check_count(n_samples, "n_samples")
    chunk = check_count(chunk, "chunk")
    check_batch(x, "x")
    check_finite(x, "x")
    check_generator(generator, x.device, what="x")
    if not callable(getattr(proposal, "sample_and_log_prob", None)):
        raise ArgumentTypeError(f"proposal must be a Gaussian encoder with "
                                f"sample_and_log_prob(x, n, generator), got {type(proposal).__name__}")
    logw = []
    done = 0
    while done < k:
        n = min(chunk, k - done)
        z, log_q = proposal.sample_and_log_prob(x, n, generator)
        logw.append(decoder.log_likelihood(x, z) - neg_log_prior(z) - log_q)
        done += n
    return torch.logsumexp(torch.cat(logw, dim=1), dim=1) - math.log(k)


def fit_proposal(decoder: nn.Module, proposal: nn.Module, data: torch.Tensor, *, steps: int,
                 batch_size: int = 128, lr: float = 1e-3, generator: torch.Generator | None = None,
                 binarize: bool = True, progress: bool | None = None) -> nn.Module:
    r"""Fit a Gaussian encoder ``proposal`` to a *frozen* decoder by maximising the ELBO
    (minimising :func:`gaussian_elbo_loss` with Adam) on ``data`` (probabilities in [0, 1],
    binarised afresh each step when ``binarize``): the proposal of
    :func:`importance_weighted_log_likelihood` for models without an encoder density.

    ``proposal`` is trained in place and returned; the decoder's parameters are left as they
    were (their ``requires_grad`` is restored). A use of :func:`ssm_lib.training.train_loop`
    (its divergence policy and progress switch): raises
    :class:`~ssm_lib.training.TrainingDivergedError` naming the step where training diverges.
    """
    if not isinstance(proposal, nn.Module):
        raise ArgumentTypeError(f"proposal must be an nn.Module (a Gaussian encoder), "
                                f"got {type(proposal).__name__}")
    steps = check_count(steps, "steps")
    batch_size = check_count(batch_size, "batch_size")
    check_number(lr, "lr", positive=True)
    binarize = check_flag(binarize, "binarize")
    check_batch(data, "data")
    check_generator(generator, data.device, what="data")
    check_finite(data, "data")
    if binarize and (float(data.min()) < 0 or float(data.max()) > 1):
        raise ValueError(f"data must hold probabilities in [0, 1] when binarize=True, got values in "
                         f"[{float(data.min()):g}, {float(data.max()):g}]")
    enc = proposal

    def loss_at(step: int) -> torch.Tensor:
        idx = torch.randint(data.shape[0], (batch_size,), generator=generator, device=data.device)
        xb = data[idx]
        if binarize:
            xb = torch.bernoulli(xb, generator=generator)
        return gaussian_elbo_loss(enc, decoder, xb, generator=generator)

    was_trainable = [p.requires_grad for p in decoder.parameters()]
    for p in decoder.parameters():
        p.requires_grad_(False)
    params = list(enc.parameters())
    try:
        train_loop(loss_at, params, torch.optim.Adam(params, lr=lr), steps, progress=progress,
                   desc="proposal", what="fit_proposal")
    finally:
        for p, trainable in zip(decoder.parameters(), was_trainable, strict=True):
            p.requires_grad_(trainable)
    return enc
