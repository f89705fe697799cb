r"""DKEF's normalising constant by importance sampling."""

from __future__ import annotations

import math

import torch

from .._checks import check_count, check_number
from .model import DKEF

__all__ = ["log_normalizer", "rows_within_budget"]

#: The default working-memory budget of :func:`log_normalizer`, in bytes (256 MiB).
DEFAULT_MEMORY_BUDGET = 2**28


def rows_within_budget(model: DKEF, memory_budget: int) -> int:
    r"""How many rows :meth:`DKEF.unnormalized_log_prob` may evaluate at once (without a graph)
    within ``memory_budget`` bytes: the budget over the bytes a row holds at the peak, taken as
    six ``M``-vectors (distances, kernel values and their weighted sum, with temporaries) plus
    eight feature vectors of width ``F`` and four inputs of dimension ``d``; at least 1.
    ``memory_budget``: a whole number of bytes >= 1 (``ValueError`` otherwise)."""
    memory_budget = check_count(memory_budget, "memory_budget")
    with torch.no_grad():
        width = max(phi(model.inducing[:1]).shape[-1] for phi in model.features)
    per_row = model.alpha.element_size() * (6 * model.n_inducing + 8 * width + 4 * model.dim)
    return max(1, memory_budget // per_row)


def log_normalizer(model: DKEF, n_samples: int = 10**6, *, generator: torch.Generator | None = None,
                   chunk: int = 10**5, proposal_std: float | None = None,
                   memory_budget: int = DEFAULT_MEMORY_BUDGET) -> tuple[float, float]:
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

    The proposal samples are drawn ``chunk`` rows at a time (the draws, hence the estimate for a
    given ``generator``, depend on ``chunk``, not on the budget); each block is evaluated in
    pieces of at most ``rows_within_budget(model, memory_budget)`` rows, so that the working memory of a piece
    stays near ``memory_budget`` bytes (default 256 MiB) whatever ``chunk`` is.

    Returns ``(log_z, standard_error)`` (``n_samples`` at least 2, for the standard error)."""
    check_count(n_samples, "n_samples", 2)
    chunk = check_count(chunk, "chunk")
    std = (model.base_std if proposal_std is None
           else check_number(proposal_std, "proposal_std", positive=True))
    rows = rows_within_budget(model, memory_budget)
    dtype, device = model.alpha.dtype, model.alpha.device
    logs = []
    with torch.no_grad():
        for start in range(0, n_samples, chunk):
            m = min(chunk, n_samples - start)
            xq = std * torch.randn(m, model.dim, generator=generator, dtype=dtype, device=device)
            log_q = -0.5 * (xq * xq).sum(-1) / std**2 - 0.5 * model.dim * math.log(2 * math.pi * std**2)
            logs.extend(model.unnormalized_log_prob(xp) - lq
                        for xp, lq in zip(xq.split(rows), log_q.split(rows), strict=True))
    lw = torch.cat(logs).double()
    log_z = torch.logsumexp(lw, 0) - math.log(lw.numel())
    w = torch.exp(lw - lw.max())
    se = (w.std() / (math.sqrt(lw.numel()) * w.mean())).item()
    return log_z.item(), se
