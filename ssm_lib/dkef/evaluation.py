r"""DKEF's normalising constant by importance sampling."""

from __future__ import annotations

import math

import torch

from .._checks import check_count, check_number
from .model import DKEF

__all__ = ["log_normalizer"]


def log_normalizer(model: DKEF, n_samples: int = 10**6, *, generator: torch.Generator | None = None,
                   chunk: int = 10**5, proposal_std: float | None = None) -> tuple[float, float]:
    r"""Importance-sampling estimate of :math:`\log Z` with proposal
    :math:`q = \mathcal N(0, \sigma_q^2 I)` (default :math:`\sigma_q = \sigma_0`, then the
    weights are :math:`e^{f(x)}`): :math:`\log\hat Z = \log\frac1n\sum_i \tilde p(x_i)/q(x_i)`,
    and its standard error by the delta method, :math:`\hat{\mathrm{sd}}(w)/(\sqrt n\,\bar w)`.
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
