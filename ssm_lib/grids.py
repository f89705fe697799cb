r"""Regular 2-D grids: tabulate a function on a box, normalise a density on it, compare two
tabulated densities."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


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
