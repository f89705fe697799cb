r"""Metrics between score functions and densities."""

from __future__ import annotations

import math

import torch

from ._checks import ScoreFn, call_score, check_batch, check_finite, check_flag, check_reduction
from ._tensor_ops import event_sum, private_copy, reduce

__all__ = ["fisher_divergence", "loglog_slope", "mean_and_standard_error"]


def fisher_divergence(score_fn: ScoreFn, true_score_fn: ScoreFn, x: torch.Tensor, *,
                      reduction: str = "mean", differentiable: bool = False) -> torch.Tensor:
    r"""Monte Carlo Fisher divergence on samples ``x`` from :math:`p`:

    .. math::

        F(p, q) = \tfrac12\,\mathbb E_{p(x)}\big\|s_q(x) - \nabla_x\log p(x)\big\|_2^2
            \approx \frac1{2n}\sum_i \|s_q(x_i) - s_p(x_i)\|^2.

    ``reduction="none"`` returns the per-sample values (for an error bar). Each score
    function gets its own copy of ``x`` (neither can modify the caller's tensor), and no
    gradient flows into ``x``.

    As a metric the result is detached by default: ``float(fisher_divergence(model, ...))``
    gives a number without torch's requires-grad warning, and no graph of the model is kept
    alive. ``differentiable=True`` keeps the graph, so that the divergence is differentiable in
    the parameters of ``score_fn`` and ``true_score_fn`` (e.g. to train against a known score);
    detach it yourself before taking a number. The scores are evaluated in the caller's grad
    mode either way (score functions that differentiate internally keep working).
    """
    check_batch(x)
    check_reduction(reduction)
    differentiable = check_flag(differentiable, "differentiable")
    s = call_score(score_fn, private_copy(x))
    s_true = call_score(true_score_fn, private_copy(x), name="true_score_fn")
    value = reduce(0.5 * event_sum((s - s_true) ** 2), reduction)
    return value if differentiable else value.detach()


def mean_and_standard_error(values: torch.Tensor) -> tuple[float, float]:
    r"""Monte Carlo mean of i.i.d. values and its standard error
    :math:`\hat\sigma/\sqrt n` (:math:`\hat\sigma` the sample standard deviation).
    ``values``: a finite floating tensor of any shape, all of whose entries are the values
    (a NaN or infinity is refused, not averaged into a NaN)."""
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"values must be a tensor, got {type(values).__name__} (torch.as_tensor(values))")
    if values.numel() < 2:
        raise ValueError(f"values must have at least 2 entries, got {values.numel()}")
    if not values.is_floating_point():
        raise ValueError(f"values must have a floating dtype, got {values.dtype} "
                         "(convert with values.double())")
    check_finite(values, "values")
    flat = values.detach().reshape(-1)
    return float(flat.mean()), float(flat.std() / math.sqrt(flat.numel()))


def loglog_slope(x, y) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x`: the exponent :math:`p`
    of a power law :math:`y \propto x^p`. ``x`` and ``y`` are positive finite sequences of one
    length."""
    import numpy as np

    xs = np.asarray(x, dtype=float).reshape(-1)
    ys = np.asarray(y, dtype=float).reshape(-1)
    if xs.shape != ys.shape or xs.size < 2:
        raise ValueError(f"x and y must have the same length >= 2, got {xs.size} and {ys.size}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("x and y must be finite for a log-log slope (they hold NaN or inf)")
    if np.any(xs <= 0) or np.any(ys <= 0):
        raise ValueError("x and y must be positive for a log-log slope")
    if np.all(xs == xs[0]):
        raise ValueError(f"x must hold at least two different values for a slope, got only {xs[0]:g}")
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])
