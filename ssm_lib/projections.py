r"""Random projection directions for sliced score matching.

Every kind has second moment :math:`\mathbb{E}[v v^\top] = I`, the condition under which the
sliced Fisher divergence equals the Fisher divergence (Song et al. 2019, Sec. 3):

* ``"gaussian"``: :math:`v \sim \mathcal{N}(0, I)`.
* ``"rademacher"``: independent entries :math:`\pm 1` with probability :math:`1/2` each.
* ``"sphere"``: uniform on the sphere of radius :math:`\sqrt{d}`, so
  :math:`\|v\| = \sqrt{d}` exactly and :math:`\mathbb{E}[vv^\top] = (d/d) I = I`.

Here :math:`d` is the product of the event dimensions: the last ``event_dims`` axes of the
requested shape form one vector, and the axes before them index independent draws (see
:func:`sample_projections`).
"""

from __future__ import annotations

import math

import torch

from ._checks import check_choice, check_count, check_fits_in_memory, check_generator
from .devices import resolve_device

__all__ = ["PROJECTIONS", "sample_projections"]

PROJECTIONS = ("gaussian", "rademacher", "sphere")


def sample_projections(
    kind: str,
    shape: tuple[int, ...] | torch.Size,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    event_dims: int = 1,
) -> torch.Tensor:
    r"""Draw projection vectors :math:`v` with :math:`\mathbb{E}[vv^\top] = I`.

    Args:
        kind: ``"gaussian"``, ``"rademacher"`` or ``"sphere"``.
        shape: shape of the returned tensor. The last ``event_dims`` axes form one vector
            :math:`v \in \mathbb{R}^d` (``d`` = their product); the leading axes index
            independent draws.
        generator: source of randomness, on ``device`` (``None``: torch's global generator).
        dtype: of the result (default: torch's default dtype).
        device: of the result (default: the generator's device, else the CPU). A device
            that is not on this machine is a ``ValueError``.
        event_dims: how many trailing axes form one vector (only matters for ``"sphere"``,
            whose norm is taken over them).

    Returns:
        A tensor of shape ``shape``.
    """
    check_choice(kind, PROJECTIONS, "kind")
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 1:
        raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {shape!r}")
    shape = tuple(check_count(size, "shape") for size in shape)
    event_dims = check_count(event_dims, "event_dims")
    if event_dims > len(shape):
        raise ValueError(f"event_dims must be between 1 and len(shape)={len(shape)}, got {event_dims}")
    dtype = dtype or torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    check_generator(generator)
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    else:
        device = resolve_device(device)
    check_generator(generator, device, what="the requested device")
    check_fits_in_memory(math.prod(shape), dtype, device, "shape")
    if kind == "rademacher":
        # drawn straight into the floating dtype (on the CPU the same draws as an integer randint)
        return torch.randint(0, 2, shape, generator=generator, device=device, dtype=dtype).mul_(2).sub_(1)
    v = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    if kind == "gaussian":
        return v
    # sphere of radius sqrt(d): normalise a Gaussian vector (flattened over the event axes,
    # whatever their number), then scale
    lead = shape[:len(shape) - event_dims]
    flat = v.reshape(*lead, -1)
    return (flat / flat.norm(dim=-1, keepdim=True) * math.sqrt(flat.shape[-1])).reshape(shape)
