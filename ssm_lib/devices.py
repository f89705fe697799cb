"""Device selection: ``"auto"`` picks CUDA when it is present, anything else must exist."""

from __future__ import annotations

import torch

from ._checks import check_count

__all__ = ["make_generator", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` into a usable device.

    Raises ``ValueError`` naming ``device`` when the requested device is not on this machine.
    """
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available on this "
                             "machine; use device='auto' or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} was requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device={device!r} was requested but MPS is not available")
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return dev


SEED_LIMIT = 2**64
"""Seeds are whole numbers in ``[0, 2**64)``, the range of ``torch.Generator.manual_seed``."""


def check_seed(seed: object, name: str = "seed") -> int:
    """A seed: a whole number ``>= 0`` and ``< 2**64``, as an ``int``."""
    seed = check_count(seed, name, 0)
    if seed >= SEED_LIMIT:
        raise ValueError(f"{name} must be a whole number in [0, 2**64), got {seed!r}")
    return seed


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (resolved by :func:`resolve_device`) seeded with
    ``seed``, a whole number in ``[0, 2**64)``. torch's global generator is not touched."""
    seed = check_seed(seed)
    g = torch.Generator(device=resolve_device(device))
    g.manual_seed(seed)
    return g
