"""Input validation shared by the library: every bad input becomes a ``ValueError`` that names
the argument and says what was expected."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

REDUCTIONS = ("mean", "sum", "none")


def check_batch(x: object, name: str = "x") -> torch.Tensor:
    """``x`` must be a floating tensor of shape ``(batch, *event_shape)`` with ``batch >= 1``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (batch, *event_shape), "
                         f"got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (batch, *event_shape) with at least 2 "
                         f"dimensions, got shape {tuple(x.shape)}")
    if x.shape[0] < 1 or x.numel() == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_choice(value: str, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_positive_float(value: object, name: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def call_score(score_fn: ScoreFn, x: torch.Tensor, name: str = "score_fn") -> torch.Tensor:
    """Evaluate ``score_fn(x)`` and check that it returns a tensor of the shape of ``x``."""
    if not callable(score_fn):
        raise ValueError(f"{name} must be callable, got {type(score_fn).__name__}")
    s = score_fn(x)
    if not isinstance(s, torch.Tensor):
        raise ValueError(f"{name} must return a torch.Tensor, got {type(s).__name__}")
    if s.shape != x.shape:
        raise ValueError(f"{name} must return a tensor of the same shape as its input "
                         f"{tuple(x.shape)}, got {tuple(s.shape)}")
    return s


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply a batch reduction to per-sample values of shape ``(batch,)``."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def event_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first (the event dimensions)."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def as_grad_input(x: torch.Tensor) -> torch.Tensor:
    """A tensor with the values of ``x`` that requires grad, without touching ``x`` itself."""
    return x.detach().requires_grad_(True)
