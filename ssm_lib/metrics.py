r"""Metrics between score functions and densities."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._checks import ScoreFn, call_score, check_batch, check_reduction, event_sum, reduce


def fisher_divergence(score_fn: ScoreFn, true_score_fn: ScoreFn, x: torch.Tensor, *,
                      reduction: str = "mean") -> torch.Tensor:
    r"""Monte Carlo Fisher divergence on samples ``x`` from :math:`p`:

    .. math::

        F(p, q) = \tfrac12\,\mathbb E_{p(x)}\big\|s_q(x) - \nabla_x\log p(x)\big\|_2^2
            \approx \frac1{2n}\sum_i \|s_q(x_i) - s_p(x_i)\|^2.

    ``reduction="none"`` returns the per-sample values (for an error bar).
    """
    check_batch(x)
    check_reduction(reduction)
    s = call_score(score_fn, x)
    s_true = call_score(true_score_fn, x, "true_score_fn")
    return reduce(0.5 * event_sum((s - s_true) ** 2), reduction)


def grid_2d(xlim: tuple[float, float], ylim: tuple[float, float], n: int = 200, *,
            dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A regular ``n`` x ``n`` grid: returns ``(xs, ys, points)`` with ``points`` of shape
    ``(n*n, 2)`` in row-major order (``points.reshape(n, n, 2)[i, j] == (xs[j], ys[i])``)."""
    dtype = dtype or torch.get_default_dtype()
    xs = torch.linspace(xlim[0], xlim[1], n, dtype=dtype)
    ys = torch.linspace(ylim[0], ylim[1], n, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return xs, ys, torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def normalize_on_grid(
    unnormalized_log_prob: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n: int = 200,
) -> tuple[torch.Tensor, float]:
    r"""Normalise a 2-D unnormalised log-density numerically on a grid.

    :math:`\log Z \approx \log\sum_{ij} e^{f(x_{ij})}\,\Delta x\,\Delta y` (midpoint rule on the
    box; the mass outside the box is ignored). Returns ``(density, log_Z)`` with ``density``
    of shape ``(n, n)`` (rows follow y, columns follow x, as in :func:`grid_2d`).
    """
    xs, ys, pts = grid_2d(xlim, ylim, n, dtype=torch.float64)
    with torch.no_grad():
        logf = unnormalized_log_prob(pts.to(torch.get_default_dtype())).to(torch.float64)
    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    log_z = float(torch.logsumexp(logf, 0)) + math.log(cell)
    return torch.exp(logf - log_z).reshape(n, n), log_z


def grid_total_variation(p: torch.Tensor, q: torch.Tensor, cell_area: float) -> float:
    r"""Total variation :math:`\tfrac12\int|p - q|` of two densities tabulated on one grid."""
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return 0.5 * float((p - q).abs().sum()) * cell_area


def mean_and_standard_error(values: torch.Tensor) -> tuple[float, float]:
    r"""Monte Carlo mean of i.i.d. values and its standard error
    :math:`\hat\sigma/\sqrt n` (:math:`\hat\sigma` the sample standard deviation)."""
    if not isinstance(values, torch.Tensor) or values.numel() < 2:
        raise ValueError("values must be a tensor with at least 2 entries")
    flat = values.detach().reshape(-1)
    return float(flat.mean()), float(flat.std() / math.sqrt(flat.numel()))


def loglog_slope(x, y) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x`: the exponent :math:`p`
    of a power law :math:`y \propto x^p`. ``x`` and ``y`` are positive sequences of one length."""
    import numpy as np

    xs = np.asarray(x, dtype=float).reshape(-1)
    ys = np.asarray(y, dtype=float).reshape(-1)
    if xs.shape != ys.shape or xs.size < 2:
        raise ValueError(f"x and y must have the same length >= 2, got {xs.size} and {ys.size}")
    if np.any(xs <= 0) or np.any(ys <= 0):
        raise ValueError("x and y must be positive for a log-log slope")
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])
