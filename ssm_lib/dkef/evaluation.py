r"""DKEF's normalising constant by importance sampling."""

from __future__ import annotations

import math

import torch

from .._checks import check_count, check_number
from .model import DKEF

__all__ = ["log_normalizer"]


def log_normalizer(model: DKEF, n_samples: int = 10**6, *, generator: torch.Generator | None = None,
                   chunk: int = 10**5, proposal_std: float | None = None) -> tuple[float, float]:
    r"""Importance-sampling estimate of :math:`\log Z` and its standard error.

    With :math:`n` draws :math:`x_i\sim q = \mathcal N(0, \sigma_q^2 I)` (default
    :math:`\sigma_q = \sigma_0`, the base density, so that the weights are :math:`e^{f(x_i)}`)
    and weights :math:`w_i = \tilde p(x_i)/q(x_i)`,

    .. math::

        \log\hat Z = \log\frac1n\sum_{i=1}^n w_i, \qquad
        \mathrm{SE} = \frac{\hat\sigma_w}{\sqrt n\,\bar w},

    the delta-method standard error of :math:`\log\hat Z` (:math:`\hat\sigma_w` the sample
    standard deviation of the weights). :math:`\hat Z` is unbiased for :math:`Z`, but
    :math:`\log\hat Z` is biased low, :math:`\mathbb E\log\hat Z\approx\log Z - \mathrm{SE}^2/2`,
    so log-likelihoods computed with it are optimistic by about :math:`\mathrm{SE}^2/2`. With
    heavy-tailed weights the rare large weights are usually missed and both the estimate and the SE
    come out too small; check the effective sample size
    :math:`n_{\mathrm{eff}} = (\sum_i w_i)^2/\sum_i w_i^2`
    (:math:`\mathrm{SE}^2\approx 1/n_{\mathrm{eff}} - 1/n`): an :math:`n_{\mathrm{eff}}` that is a
    small fraction of :math:`n` means the estimate is not to be trusted. The weights' variance is
    infinite when :math:`\sigma_q \le \sigma_0/\sqrt 2`; the SE then means nothing.

    Returns ``(log_z, standard_error)`` (``n_samples`` at least 2, for the standard error)."""
    check_count(n_samples, "n_samples", 2)
    chunk = check_count(chunk, "chunk")
    std = (model.base_std if proposal_std is None
           else check_number(proposal_std, "proposal_std", positive=True))
    dtype, device = model.alpha.dtype, model.alpha.device
    logs = []
    with torch.no_grad():
        for start in range(0, n_samples, chunk):
            m = min(chunk, n_samples - start)
            xq = std * torch.randn(m, model.dim, generator=generator, dtype=dtype, device=device)
            log_q = -0.5 * (xq * xq).sum(-1) / std**2 - 0.5 * model.dim * math.log(2 * math.pi * std**2)
            logs.append(model.unnormalized_log_prob(xq) - log_q)
    lw = torch.cat(logs).double()
    log_z = torch.logsumexp(lw, 0) - math.log(lw.numel())
    w = torch.exp(lw - lw.max())
    se = (w.std() / (math.sqrt(lw.numel()) * w.mean())).item()
    return log_z.item(), se
