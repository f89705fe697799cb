"""Small tensor operations shared by the losses, metrics and kernels: batch reductions, sums
over the event dimensions, private copies of an input, and pairwise squared distances."""

from __future__ import annotations

import torch


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply a batch reduction (``"mean"``, ``"sum"`` or ``"none"``) to per-sample values of
    shape ``(batch,)``."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def event_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first (the event dimensions)."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def as_grad_input(x: torch.Tensor) -> torch.Tensor:
    """A leaf with the values of ``x`` that requires grad, in its own storage: neither the
    caller's ``x`` nor its ``requires_grad`` flag can be changed through it."""
    return x.detach().clone().requires_grad_(True)


def private_copy(x: torch.Tensor) -> torch.Tensor:
    """A detached copy of ``x`` in its own storage (for a function that might modify it)."""
    return x.detach().clone()


def repeat_batch(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` repeated ``n`` times along a new leading axis, flattened into the batch axis."""
    if n == 1:
        return x
    return x.unsqueeze(0).expand(n, *x.shape).reshape(n * x.shape[0], *x.shape[1:])


def per_sample(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ``(batch,)`` tensor reshaped to broadcast against ``x`` of shape ``(batch, *event)``."""
    return t.reshape(-1, *([1] * (x.dim() - 1)))


def rademacher(shape: tuple[int, ...] | torch.Size, like: torch.Tensor,
               generator: torch.Generator | None) -> torch.Tensor:
    """Independent :math:`\\pm 1` entries (probability 1/2 each) of the given shape, with the
    dtype and device of ``like``; the same draws as
    ``ssm_lib.projections.sample_projections("rademacher", shape, ...)``, without its argument
    checks (for the inner loops of the curvature sweeps). The bits are drawn straight into the
    floating dtype (on the CPU the same draws as an integer ``randint``; tested), then mapped in place
    to :math:`2b - 1`: no integer intermediate."""
    bits = torch.randint(0, 2, tuple(shape), generator=generator, device=like.device, dtype=like.dtype)
    return bits.mul_(2).sub_(1)


def pairwise_sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""``||a_i - b_j||^2`` for ``a (*, M, d)``, ``b (*, N, d)`` (or ``(N, d)``): ``(*, M, N)``.

    Computed from inner products, :math:`\|a_i - c\|^2 + \|b_j - c\|^2 - 2 (a_i - c)^\top
    (b_j - c)` clamped at 0 (in value only: the derivatives are those of the unclamped
    expression, exact also where a point meets another), without the ``(*, M, N, d)`` tensor
    of differences (one matrix product instead of ``M N d`` subtractions, and ``(M, N)`` memory
    instead of ``(M, N, d)``).
    The shift :math:`c` (the mean of ``b``) leaves the distances unchanged and keeps the
    cancellation at the scale of the points' spread rather than their distance from the origin
    (float32 points at :math:`10^3` from the origin would otherwise lose every digit). When
    ``a is b`` the diagonal is set to exact zeros. Differentiable.
    """
    c = b.mean(-2, keepdim=True)
    ac = a - c
    bc = ac if a is b else b - c
    sq = (ac @ bc.transpose(-1, -2)).mul_(-2)
    sq.add_((ac * ac).sum(-1).unsqueeze(-1)).add_((bc * bc).sum(-1).unsqueeze(-2))
    if sq.requires_grad:
        # the value clamped, the derivatives those of the unclamped polynomial: where a point
        # meets a centre the sum rounds to about 0, sometimes below it, and a plain clamp there
        # would cut the graph and drop the second derivative 2 I of the squared distance
        sq = sq + (sq.detach().clamp_min(0) - sq.detach())
    else:
        sq.clamp_min_(0)
    if a is b:
        sq.diagonal(dim1=-2, dim2=-1).zero_()
    return sq
