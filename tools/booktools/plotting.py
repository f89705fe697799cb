"""Plotting helpers of the book for 2-D densities, score fields and samples (matplotlib; not
part of ``ssm_lib``).

Functions are evaluated on grid points in the dtype they compute in (see
:func:`booktools.grids.dtype_of`: a float64 model or density gets float64 points), or in the
``dtype`` passed."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from .grids import dtype_of, grid_2d

__all__ = ["plot_density", "plot_grid_values", "plot_samples", "plot_vector_field"]

Lim = tuple[float, float]


def _eval_no_grad(fn: Callable[[torch.Tensor], torch.Tensor], pts: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = fn(pts)
    return out.detach().cpu().double().numpy()


def plot_density(ax: plt.Axes, log_prob: Callable[[torch.Tensor], torch.Tensor], xlim: Lim,
                 ylim: Lim, *, n: int = 200, cmap: str = "Blues", log_scale: bool = False,
                 colorbar: bool = False, label: str = "density", dtype: torch.dtype | None = None):
    """Filled contour plot of ``exp(log_prob)`` (or of ``log_prob`` when ``log_scale``)."""
    xs, ys, pts = grid_2d(xlim, ylim, n, dtype=dtype or dtype_of(log_prob))
    vals = _eval_no_grad(log_prob, pts).reshape(n, n)
    z = vals if log_scale else np.exp(vals)
    cs = ax.contourf(xs.double().numpy(), ys.double().numpy(), z, levels=30, cmap=cmap)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if colorbar:
        ax.figure.colorbar(cs, ax=ax, label="log density" if log_scale else label)
    return cs


def plot_grid_values(ax: plt.Axes, values: torch.Tensor | np.ndarray, xlim: Lim, ylim: Lim, *,
                     cmap: str = "Blues", colorbar: bool = False, label: str = "density"):
    """Filled contour plot of values already tabulated on :func:`~booktools.grids.grid_2d`."""
    vals = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else values
    n = vals.shape[0]
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    cs = ax.contourf(xs, ys, vals, levels=30, cmap=cmap)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if colorbar:
        ax.figure.colorbar(cs, ax=ax, label=label)
    return cs


def plot_vector_field(ax: plt.Axes, field: Callable[[torch.Tensor], torch.Tensor], xlim: Lim,
                      ylim: Lim, *, n: int = 20, color: str = "k", normalize: bool = False,
                      scale: float | None = None, label: str | None = None,
                      dtype: torch.dtype | None = None, **quiver_kw):
    """Quiver plot of a 2-D vector field (e.g. a score) on an ``n`` x ``n`` grid.

    ``normalize=True`` draws unit arrows (direction only); otherwise arrows keep their
    relative lengths, with ``scale`` passed to ``quiver`` (``None``: matplotlib's choice).
    """
    xs, ys, pts = grid_2d(xlim, ylim, n, dtype=dtype or dtype_of(field))
    vec = _eval_no_grad(field, pts)
    if normalize:
        vec = vec / np.maximum(np.linalg.norm(vec, axis=-1, keepdims=True), 1e-12)
    q = ax.quiver(pts[:, 0].double().numpy(), pts[:, 1].double().numpy(), vec[:, 0], vec[:, 1], color=color,
                  scale=scale, angles="xy", label=label, **quiver_kw)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return q


def plot_samples(ax: plt.Axes, x: torch.Tensor, *, xlim: Lim | None = None,
                 ylim: Lim | None = None, s: float = 2.0, alpha: float = 0.5,
                 color: str = "C1", label: str | None = None):
    """Scatter plot of 2-D samples."""
    pts = x.detach().cpu().double().numpy()
    out = ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, color=color, label=label,
                     linewidths=0)
    if xlim:
        ax.set_xlim(*xlim)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return out
