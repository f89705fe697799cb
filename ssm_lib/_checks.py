"""Input validation shared by the library: every bad input becomes a ``ValueError`` that names
the argument and says what was expected.

The rules, applied by every public function:

* counts (``n_steps``, ``n_projections``, ...) are whole numbers of any type (``int``,
  ``numpy.int64``, a 0-d integer tensor, ``3.0``); ``2.5``, booleans and strings are rejected;
* real parameters (``sigma``, ``step_size``, ...) are finite numbers of any type (``float``,
  ``numpy.float32``, a 0-d tensor, ``int``); booleans and strings are rejected;
* flags (``denoise``, ``variance_reduction``, ...) are ``True``/``False`` or numpy's booleans;
* an argument of the wrong type (a flag that is not one, an estimator, a cost function) raises
  :class:`ArgumentTypeError`, which is both a ``ValueError`` and a ``TypeError``;
* a ``generator`` is a ``torch.Generator`` (or ``None``) on the device of the data;
* a batch is a floating tensor ``(batch, *event_shape)``.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
from collections.abc import Callable

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

REDUCTIONS = ("mean", "sum", "none")


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a flag that is not ``True``/``False``, an estimator that
    is not a :class:`~ssm_lib.score_estimators.ScoreEstimator`, ...). It is a ``ValueError``,
    as every bad input of the library is, and a ``TypeError``, as Python's convention has it:
    ``except ValueError`` and ``except TypeError`` both catch it (as numpy's ``AxisError`` is
    both a ``ValueError`` and an ``IndexError``)."""


def check_batch(x: object, name: str = "x", *, event_shape: tuple[int, ...] | None = None
                ) -> torch.Tensor:
    """``x`` must be a floating tensor of shape ``(batch, *event_shape)`` with ``batch >= 1``
    (and, when ``event_shape`` is given, exactly that event shape)."""
    want = "(batch, *event_shape)" if event_shape is None else f"(batch, {', '.join(map(str, event_shape))})"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {want}, got {type(x).__name__}")
    if x.dim() < 2 or (event_shape is not None and tuple(x.shape[1:]) != tuple(event_shape)):
        raise ValueError(f"{name} must have shape {want}, got shape {tuple(x.shape)}")
    if x.shape[0] < 1 or x.numel() == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def check_reduction(reduction: object) -> str:
    return check_choice(reduction, REDUCTIONS, "reduction")


def check_choice(value: object, choices: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_flag(value: object, name: str) -> bool:
    """A ``bool`` or a numpy boolean (``numpy.bool_``, called ``numpy.bool`` since numpy 2), as a
    ``bool``; anything else (``0``, ``1``, ``"yes"``, ``None``) is rejected."""
    if isinstance(value, bool) or _is_numpy_bool(value):
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False, got {value!r}")


def _is_numpy_bool(value: object) -> bool:
    """Whether ``value`` is a numpy boolean scalar (without importing numpy)."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")


def _as_scalar(value: object) -> object:
    """A 0-d tensor or numpy scalar as a Python number; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool:
        return value.item()
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()  # type: ignore[union-attr]
    return value


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """A whole number ``>= minimum`` of any numeric type, as an ``int``."""
    if type(value) is int and value >= minimum:  # the common case, fast
        return value
    v = _as_scalar(value)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v != int(v):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if v < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(v)


def check_number(value: object, name: str, *, positive: bool = False) -> float:
    """A finite real number (``> 0`` when ``positive``) of any numeric type, as a ``float``."""
    if type(value) is float and math.isfinite(value) and (value > 0 or not positive):  # fast path
        return value
    v = _as_scalar(value)
    what = "a positive finite number" if positive else "a finite number"
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    v = float(v)
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return (a.index if a.index is not None else index) == (b.index if b.index is not None else index)
    return True


def check_generator(generator: object, device: torch.device | str | None = None,
                    what: str = "x") -> torch.Generator | None:
    """``None`` or a ``torch.Generator``; when ``device`` is given, on that device (the device
    of ``what``)."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if device is not None and not _same_device(generator.device, torch.device(device)):
        raise ValueError(f"generator is on {generator.device} but {what} is on {torch.device(device)}; "
                         "make the generator on the data's device")
    return generator


def check_finite(t: torch.Tensor, name: str) -> torch.Tensor:
    """``t`` holds no NaN or infinity (one device synchronisation)."""
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite: it holds {bad} non-finite value(s) (NaN or inf)")
    return t


@functools.cache
def _available_bytes(device: torch.device) -> int | None:
    """The device's total memory in bytes (``None``: unknown)."""
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def check_fits_in_memory(n_elements: int, dtype: torch.dtype, device: torch.device, name: str,
                         copies: int = 1) -> None:
    """Fail at once, naming ``name``, when ``copies`` tensors of ``n_elements`` entries of
    ``dtype`` would exceed the device's total memory."""
    need = n_elements * copies * dtype.itemsize
    have = _available_bytes(torch.device(device))
    if have is not None and need > have:
        raise ValueError(f"{name} is too large: the computation needs about {need / 2**30:.3g} GiB "
                         f"on {device}, which has {have / 2**30:.3g} GiB in all")


def call_score(score_fn: Callable[..., torch.Tensor], x: torch.Tensor, *condition: torch.Tensor,
               name: str = "score_fn") -> torch.Tensor:
    """Evaluate ``score_fn(x, *condition)`` (``condition``: e.g. the noise levels of a
    noise-conditional score) and check that it returns a tensor of the shape of ``x``."""
    if not callable(score_fn):
        raise ValueError(f"{name} must be callable, got {type(score_fn).__name__}")
    s = score_fn(x, *condition)
    if not isinstance(s, torch.Tensor):
        raise ValueError(f"{name} must return a torch.Tensor, got {type(s).__name__}")
    if s.shape != x.shape:
        raise ValueError(f"{name} must return a tensor of the same shape as its input "
                         f"{tuple(x.shape)}, got {tuple(s.shape)}")
    return s


def _signature(fn: Callable[..., object]) -> inspect.Signature | None:
    """The call signature of ``fn`` (of ``forward`` for a ``torch.nn.Module``, whose
    ``__call__`` takes ``*args``), or ``None`` when Python cannot tell (some builtins)."""
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def check_score_signature(score_fn: object, n_args: int, name: str = "score_fn", *,
                          expected: str, hint: str = "", keywords: tuple[str, ...] = ()) -> None:
    """``score_fn`` must be callable with ``n_args`` positional tensors and the keyword
    arguments ``keywords`` (checked on its signature, without calling it): a clear error up
    front instead of a ``TypeError`` from inside the first call. ``expected`` describes the
    call (e.g. ``"score_fn(x, sigma)"``)."""
    if not callable(score_fn):
        raise ValueError(f"{name} must be callable, got {type(score_fn).__name__}")
    sig = _signature(score_fn)
    if sig is None:
        return
    try:
        sig.bind(*range(n_args), **dict.fromkeys(keywords))
    except TypeError:
        what = type(score_fn).__name__ if isinstance(score_fn, torch.nn.Module) else \
            getattr(score_fn, "__qualname__", type(score_fn).__name__)
        raise ValueError(f"{name} must be callable as {expected}, but {what} has the signature "
                         f"{sig}{'; ' + hint if hint else ''}") from None


def check_noise_levels(sigma: object, x: torch.Tensor, name: str = "sigma") -> torch.Tensor:
    """``sigma`` (a positive number or a ``(batch,)`` tensor of them) as a detached
    ``(batch,)`` tensor of positive finite noise levels in the dtype and on the device of ``x``."""
    batch = x.shape[0]
    if isinstance(sigma, torch.Tensor):
        if sigma.dtype == torch.bool or sigma.is_complex():
            raise ValueError(f"{name} must hold positive real numbers, got a {sigma.dtype} tensor")
        if sigma.dim() == 0:
            sig = sigma.reshape(1).expand(batch)
        elif tuple(sigma.shape) == (batch,):
            sig = sigma
        else:
            raise ValueError(f"{name} must be a positive number or a tensor of shape (batch,) = "
                             f"({batch},), got shape {tuple(sigma.shape)}")
        sig = sig.detach().to(dtype=x.dtype, device=x.device)
        if not bool(torch.all(torch.isfinite(sig) & (sig > 0))):
            raise ValueError(f"{name} must be positive and finite, got values in "
                             f"[{sig.min().item():.3g}, {sig.max().item():.3g}]")
        return sig
    value = check_number(sigma, name, positive=True)
    cast = float(torch.tensor(value, dtype=x.dtype))  # on the CPU: no device synchronisation
    if not (math.isfinite(cast) and cast > 0):
        raise ValueError(f"{name} = {value!r} is {cast!r} in the data's dtype {x.dtype}; use a level "
                         f"that {x.dtype} can hold, or float64 data")
    return torch.full((batch,), value, dtype=x.dtype, device=x.device)
