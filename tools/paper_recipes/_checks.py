"""Argument checks of the recipes: bad input is a ``ValueError`` naming the argument."""

from __future__ import annotations

import math
import numbers

import torch


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """A whole number ``>= minimum`` (a Python or numpy integer, or an integral float), as an ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value != int(value) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: object, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_nonnegative(value: object, name: str) -> float:
    """A finite number ``>= 0`` (a Python or numpy number, or a 0-d tensor), as a ``float``."""
    v = value.item() if isinstance(value, torch.Tensor) and value.dim() == 0 else value
    if isinstance(v, bool) or type(v).__name__ in ("bool_", "bool") or not isinstance(v, numbers.Real) \
            or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(v)


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """A floating ``torch.dtype`` (``torch.float32``, ``torch.float64``, ...)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating torch.dtype such as torch.float32 or torch.float64, "
                         f"got {dtype!r}")
    return dtype
