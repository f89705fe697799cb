"""Argument checks of the recipes: bad input is a ``ValueError`` naming the argument."""

from __future__ import annotations

import numbers


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """A whole number ``>= minimum`` (a Python or numpy integer, or an integral float), as an ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value) \
            or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: object, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
