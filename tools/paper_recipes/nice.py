r"""Pieces of the NICE experiment's recipe (``notebooks/nice_digits.md``, Table 1 of Song et al.
2019) that are not part of the library: the Parzen-window choice of the DSM noise level and the
official runner's way of drawing validation batches for checkpoint selection.

The experiment's settings themselves (learning rates, σ grid, epochs, ...) are data, in
``tools/paper_recipes/records/nice_digits.toml``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["ValidationBatches", "parzen_bandwidth", "parzen_log_likelihood"]


def _squared_distances(points: torch.Tensor, centres: torch.Tensor, chunk: int) -> torch.Tensor:
    rows = []
    c2 = (centres**2).sum(1)
    for start in range(0, points.shape[0], chunk):
        p = points[start:start + chunk]
        d2 = (p**2).sum(1, keepdim=True) - 2.0 * p @ centres.T + c2
        rows.append(d2.clamp_min(0.0))
    return torch.cat(rows)


def parzen_log_likelihood(log_sigma: float, sq_dist: torch.Tensor, dim: int) -> float:
    r"""Mean log-density of the held-out points under an isotropic Gaussian Parzen window,

    .. math::

        L(\sigma) = \frac1M\sum_{j=1}^M \log\frac1N\sum_{i=1}^N
            \mathcal N(x_j;\, c_i,\, \sigma^2 I),

    from the ``(M, N)`` matrix ``sq_dist`` of squared distances :math:`\|x_j - c_i\|^2` in
    ``dim`` dimensions, at :math:`\sigma` = ``exp(log_sigma)``."""
    inv_two_var = 0.5 * math.exp(-2.0 * log_sigma)
    lse = torch.logsumexp(-inv_two_var * sq_dist, dim=1) - math.log(sq_dist.shape[1])
    return float(lse.mean()) - dim * (log_sigma + 0.5 * math.log(2.0 * math.pi))


def parzen_bandwidth(centres: torch.Tensor, points: torch.Tensor, *, lower: float = 1e-3,
                     upper: float = 1e3, tol: float = 1e-6, chunk: int = 1024) -> float:
    r"""The noise level :math:`\sigma` that maximises the held-out log-likelihood
    :func:`parzen_log_likelihood` of a Gaussian Parzen window centred at ``centres``
    (``(N, d)``, e.g. the training images) and evaluated at ``points`` (``(M, d)``, e.g. the
    validation images).

    This is the heuristic behind the paper's σ = 1.74 for DSM on MNIST: its code fits
    :math:`\log\sigma` of the same Parzen window by Adam on minibatches of held-out points; here
    the one-dimensional maximum is found directly, on a grid of :math:`\log\sigma` over
    ``[lower, upper]`` refined by golden-section search to ``tol`` in :math:`\log\sigma`
    (float64 throughout).

    Raises:
        ValueError: tensors that are not ``(N, d)`` and ``(M, d)`` with the same ``d``, non-finite
            values, or bounds that are not ``0 < lower < upper``.
    """
    for name, t in (("centres", centres), ("points", points)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] < 1:
            raise ValueError(f"{name} must be a tensor of shape (N, d) with N >= 1, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} has non-finite values")
    if centres.shape[1] != points.shape[1]:
        raise ValueError(f"centres and points must have the same dimension, got {centres.shape[1]} "
                         f"and {points.shape[1]}")
    if not (0.0 < lower < upper and math.isfinite(upper)):
        raise ValueError(f"need 0 < lower < upper, got lower={lower!r}, upper={upper!r}")
    dim = centres.shape[1]
    sq = _squared_distances(points.double(), centres.double(), chunk)
    grid = torch.linspace(math.log(lower), math.log(upper), 121).tolist()
    values = [parzen_log_likelihood(t, sq, dim) for t in grid]
    k = max(range(len(grid)), key=values.__getitem__)
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = parzen_log_likelihood(c, sq, dim), parzen_log_likelihood(d, sq, dim)
    while b - a > tol:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = parzen_log_likelihood(c, sq, dim)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = parzen_log_likelihood(d, sq, dim)
    return math.exp(0.5 * (a + b))


class ValidationBatches:
    """Validation batches drawn as the paper's NICE runner draws them for checkpoint selection:
    successive batches of a shuffled pass over the validation set (the last one may be
    smaller), reshuffled when the pass is exhausted. ``next_batch()`` returns the next one."""

    def __init__(self, data: torch.Tensor, batch_size: int, generator: torch.Generator):
        if not isinstance(data, torch.Tensor) or data.dim() < 1 or data.shape[0] < 1:
            raise ValueError("data must be a tensor with at least one row")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self._order = torch.empty(0, dtype=torch.long)
        self._next = 0

    def next_batch(self) -> torch.Tensor:
        if self._next >= len(self._order):
            self._order = torch.randperm(self.data.shape[0], generator=self.generator,
                                         device=self.generator.device).to(self.data.device)
            self._next = 0
        idx = self._order[self._next:self._next + self.batch_size]
        self._next += self.batch_size
        return self.data[idx]
