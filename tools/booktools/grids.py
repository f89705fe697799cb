r"""Regular 2-D grids for the book's figures and checks (not part of ``ssm_lib``): tabulate a
function on a box, normalise a density on it, compare two tabulated densities."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["dtype_of", "grid_2d", "grid_total_variation", "normalize_on_grid"]

Lim = tuple[float, float]


def check_number(value: object, name: str, *, positive: bool = False) -> float:
    """A finite real number (``> 0`` when ``positive``), as a ``float``; else a ``ValueError``."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool:
        value = value.item()
    what = "a positive finite number" if positive else "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """A whole number ``>= minimum``, as an ``int``; else a ``ValueError``."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value) \
            or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _check_box(xlim: object, ylim: object) -> tuple[Lim, Lim]:
    out = []
    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        if not isinstance(lim, (tuple, list)) or len(lim) != 2:
            raise ValueError(f"{name} must be a pair (low, high), got {lim!r}")
        lo, hi = check_number(lim[0], name), check_number(lim[1], name)
        if not lo < hi:
            raise ValueError(f"{name} must have low < high, got {lim!r}")
        out.append((lo, hi))
    return out[0], out[1]


def dtype_of(fn: object, default: torch.dtype | None = None) -> torch.dtype:
    """The floating dtype a function computes in: that of the parameters of the module it is
    (or is a method of), or the ``dtype`` attribute of the object it is a method of (e.g. a
    density); ``default`` (torch's default dtype when ``None``) otherwise."""
    owner = getattr(fn, "__self__", fn)
    if isinstance(owner, nn.Module):
        for p in owner.parameters():
            if p.is_floating_point():
                return p.dtype
    dtype = getattr(owner, "dtype", None)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    return default or torch.get_default_dtype()


def grid_2d(xlim: tuple[float, float], ylim: tuple[float, float], n: int = 200, *,
            dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A regular ``n`` x ``n`` grid: returns ``(xs, ys, points)`` with ``points`` of shape
    ``(n*n, 2)`` in row-major order (``points.reshape(n, n, 2)[i, j] == (xs[j], ys[i])``),
    in ``dtype`` (default: torch's default dtype)."""
    xlim, ylim = _check_box(xlim, ylim)
    n = check_count(n, "n", 2)
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
    *,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, float]:
    r"""Normalise a 2-D unnormalised log-density numerically on a grid.

    :math:`\log Z \approx \log\sum_{ij} e^{f(x_{ij})}\,\Delta x\,\Delta y` (midpoint rule on the
    box; the mass outside the box is ignored). Returns ``(density, log_Z)`` with ``density``
    of shape ``(n, n)`` (rows follow y, columns follow x, as in :func:`grid_2d`), in float64.
    The function is evaluated on points of ``dtype`` (default: :func:`dtype_of` the function,
    e.g. a float64 model's own dtype).
    """
    if not callable(unnormalized_log_prob):
        raise ValueError("unnormalized_log_prob must be callable, got "
                         f"{type(unnormalized_log_prob).__name__}")
    xs, ys, pts = grid_2d(xlim, ylim, n, dtype=torch.float64)
    with torch.no_grad():
        logf = unnormalized_log_prob(pts.to(dtype or dtype_of(unnormalized_log_prob)))
    if not isinstance(logf, torch.Tensor) or logf.shape != (n * n,):
        got = tuple(logf.shape) if isinstance(logf, torch.Tensor) else type(logf).__name__
        raise ValueError(f"unnormalized_log_prob must return a tensor of shape (n*n,) = "
                         f"({n * n},), got {got}")
    logf = logf.to(torch.float64).cpu()
    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    log_z = float(torch.logsumexp(logf, 0)) + math.log(cell)
    return torch.exp(logf - log_z).reshape(n, n), log_z


def grid_total_variation(p: torch.Tensor, q: torch.Tensor, cell_area: float) -> float:
    r"""Total variation :math:`\tfrac12\int|p - q|` of two densities tabulated on one grid."""
    if not isinstance(p, torch.Tensor) or not isinstance(q, torch.Tensor) or p.shape != q.shape:
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in (p, q)]
        raise ValueError(f"p and q must be tensors of one shape, got {shapes[0]} and {shapes[1]}")
    cell_area = check_number(cell_area, "cell_area", positive=True)
    return 0.5 * float((p - q).abs().sum()) * cell_area
