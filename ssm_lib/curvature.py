r"""The diagonal of an energy's Hessian by one backward sweep: curvature propagation (CP) and
Kingma & LeCun's approximate backpropagation (Approx BP), and the score-matching objectives
built on them (the two extra baselines of Song et al. 2019, Sec. 5.1).

For an energy :math:`E` with score :math:`s = -\nabla_x E`, the trace in the score-matching
loss is :math:`\operatorname{tr}\nabla_x s = -\sum_i \partial^2 E/\partial x_i^2`, the sum of
the Hessian's diagonal. Both methods obtain an estimate of that diagonal, together with the
gradient, from a single backward sweep through the network.

**The layer protocol.** A network is a sequence of layers (an ``nn.Sequential``, possibly
nested) mapping ``(batch, d)`` to ``(batch, K)`` outputs ("channels"). The sweep propagates,
for every channel :math:`k` separately, the gradient :math:`g = \partial y_k/\partial h`
and either an approximate Hessian diagonal (Approx BP) or a pair of random matrices
:math:`(S_\mathrm{re}, S_\mathrm{im})` (CP) from the outputs back to the inputs; every
propagated tensor has shape ``(batch, K, width)``. Supported out of the box: ``nn.Linear``,
the element-wise activations ``Softplus``, ``Tanh``, ``Sigmoid``, ``SiLU`` and ``GELU``
(exact form), nested ``nn.Sequential``, and :class:`SumOfBranches` (e.g. a linear skip
connection). Any other module takes part by implementing two methods::

    approx_bp_backward(inp, out, g, h) -> (g_in, h_in)
    cp_backward(inp, out, g, s_re, s_im, generator) -> (g_in, s_re_in, s_im_in)

where ``inp``/``out`` are the module's input and output in the forward pass. A module that is
neither known nor implements them raises a ``ValueError`` naming it. A composite layer can run
the sweep over its own sub-network with :func:`record_forward`, :func:`sweep_cp` and
:func:`sweep_approx_bp`. For example, an additive coupling layer
:math:`y = (x_1,\ x_2 + m(x_1))` passes :math:`(g_2, S_2)` of its second half through the sweep
of :math:`m` and adds the result to :math:`(g_1, S_1)` for :math:`x_1`, while :math:`x_2`
receives :math:`(g_2, S_2)` unchanged (the curvature of :math:`m` is added inside the sweep).
Such a layer may also define ``forward_with_tape(h) -> (out, tape)``, returning the tape of
its sub-network from the forward pass; the sweep then calls the two methods above with the
keyword ``tape=`` so the sub-network is not run forward a second time (as
:class:`~ssm_lib.flows.AdditiveCoupling` does).

**Approx BP** (Kingma & LeCun 2010, Sec. 3): with :math:`h_y \approx \operatorname{diag}
\nabla^2_y E` at a layer's output, it keeps only diagonal terms:

.. math::

    \begin{aligned}
    y &= Wx + b: & g_x &= W^\top g_y, & h_x &= (W\odot W)^\top h_y;\\
    y &= a(x): & g_x &= a'(x)\, g_y, & h_x &= a'(x)^2 h_y + a''(x)\, g_y.
    \end{aligned}

Exact when every :math:`\nabla^2_y E` it meets is diagonal, e.g. for one hidden layer
(``Linear, activation, Linear``); biased beyond, because
:math:`\operatorname{diag}(W^\top H W) \ne (W\odot W)^\top \operatorname{diag} H` once
:math:`H` has off-diagonal entries.

**CP** (Martens, Sutskever & Swersky 2012, Sec. 4): the Hessian of a composition is
:math:`\nabla^2_x E = J^\top (\nabla^2_y E) J + \sum_k g_{y,k} \nabla^2_x y_k`. If a random
complex matrix :math:`S_y` satisfies :math:`\mathbb E[S_y S_y^\top] = \nabla^2_y E`, then

.. math::

    S_x = J^\top S_y + F\, v, \qquad F F^\top = \sum_k g_{y,k}\nabla_x^2 y_k,\quad
    v \text{ Rademacher, fresh at every node},

satisfies :math:`\mathbb E[S_x S_x^\top] = \nabla^2_x E`. For an element-wise activation the
local curvature :math:`M = a''(x)\,g_y` is diagonal and factorises as
:math:`F = \sqrt{M_+} + i\sqrt{M_-}` (positive and negative parts). Writing
:math:`S = S_\mathrm{re} + i S_\mathrm{im}`, the estimate
:math:`S_\mathrm{re}^2 - S_\mathrm{im}^2` of :math:`\operatorname{diag}\nabla^2_x E` is
unbiased for every depth. Its variance is the price (measured in the tests and the book).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_batch, check_choice, check_generator, check_reduction
from ._tensor_ops import event_sum, rademacher, reduce

__all__ = [
    "HalfSquaredNorm", "METHODS", "SUPPORTED_ACTIVATIONS", "SumOfBranches", "approx_backprop_score_matching",
    "as_layers", "curvature_propagation_score_matching", "energy_hessian_terms", "forward_derivatives",
    "hessian_diagonal", "record_forward", "split_sqrt", "sweep_approx_bp", "sweep_cp",
]

METHODS = ("cp", "approx_bp")

# --------------------------------------------------------------------------------------------
# element-wise activations: a'(x) and a''(x)


def _sigmoid_derivs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.sigmoid(x)
    d1 = s * (1 - s)
    return d1, d1 * (1 - 2 * s)


def _activation_derivatives(act: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    r""":math:`(a'(x), a''(x))` for a supported element-wise activation, else ``None``."""
    kind = type(act)
    if kind is nn.Softplus:
        beta, thr = float(act.beta), float(act.threshold)
        s = torch.sigmoid(beta * x)
        d1, d2 = s, beta * s * (1 - s)
        linear = beta * x > thr  # nn.Softplus is exactly linear there
        return torch.where(linear, torch.ones_like(d1), d1), torch.where(linear, torch.zeros_like(d2), d2)
    if kind is nn.Tanh:
        t = torch.tanh(x)
        d1 = 1 - t * t
        return d1, -2 * t * d1
    if kind is nn.Sigmoid:
        return _sigmoid_derivs(x)
    if kind is nn.SiLU:  # x sigma(x)
        s = torch.sigmoid(x)
        d1 = s * (1 + x * (1 - s))
        return d1, s * (1 - s) * (2 + x * (1 - 2 * s))
    if kind is nn.GELU and act.approximate == "none":  # x Phi(x)
        pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        return cdf + x * pdf, pdf * (2 - x * x)
    return None


SUPPORTED_ACTIVATIONS = (nn.Softplus, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.GELU)


class SumOfBranches(nn.Module):
    r"""Parallel branches applied to the same input, outputs added: :math:`y = \sum_j f_j(x)`
    (e.g. an MLP plus a linear skip connection). Part of the layer protocol: CP is exact
    through it (the propagation is linear in :math:`S`); Approx BP adds the branches'
    diagonals, dropping the cross terms :math:`2\,\operatorname{diag}(J_1^\top H J_2)`."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        if not branches:
            raise ValueError("SumOfBranches needs at least one branch")
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class HalfSquaredNorm(nn.Module):
    r"""The energy :math:`y = \tfrac12\|x\|^2` (one output channel), e.g. the energy of a flow
    with a standard-normal base after its last layer. Its Hessian is the identity, so CP adds
    :math:`\sqrt{g}\,v` and Approx BP adds :math:`g`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x * x).sum(-1, keepdim=True)

    def approx_bp_backward(self, inp, out, g, h):  # noqa: ANN001 - protocol signature
        g_y = g[..., 0:1]  # (batch, K, 1)
        return g_y * inp.unsqueeze(1), h[..., 0:1] * inp.unsqueeze(1) ** 2 + g_y

    def cp_backward(self, inp, out, g, s_re, s_im, generator):  # noqa: ANN001
        g_y = g[..., 0:1]
        jac = inp.unsqueeze(1)  # d y / d x
        v = rademacher(g.shape[:2] + inp.shape[-1:], inp, generator)
        pos, neg = split_sqrt(g_y)
        return g_y * jac, s_re[..., 0:1] * jac + pos * v, s_im[..., 0:1] * jac + neg * v


class _SplitSqrt(torch.autograd.Function):
    r""":math:`(\sqrt{m_+}, \sqrt{m_-})` from one square root of :math:`|m|`; the derivative
    :math:`\pm 1/(2\sqrt{|m|})` of the part that is non-zero, and zero where :math:`m = 0`."""

    @staticmethod
    def forward(ctx, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
        r = m.abs().sqrt_()
        pos = torch.where(m > 0, r, 0.0)
        ctx.save_for_backward(m, r)
        return pos, r - pos      # r - r is exactly 0 where m > 0

    @staticmethod
    def backward(ctx, g_pos: torch.Tensor, g_neg: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        m, r = ctx.saved_tensors
        nonzero = r > 0
        if torch.is_grad_enabled():  # create_graph: r as a differentiable function of m (finite at 0)
            r = torch.where(nonzero, m, 1.0).abs().sqrt()
        else:
            r = torch.where(nonzero, r, 1.0)
        g = torch.where(m > 0, g_pos, -g_neg)
        return torch.where(nonzero, g, 0.0) / (2 * r)


def split_sqrt(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`(\sqrt{m_+}, \sqrt{m_-})`, the square roots of the positive and negative parts
    of ``m``, with zero (not infinite) gradients where a part vanishes. One square root of
    :math:`|m|` serves both parts. (A NaN entry of ``m`` gives a NaN negative part, so that it
    shows in the estimate.)"""
    if not isinstance(m, torch.Tensor) or not m.is_floating_point():
        raise ValueError(f"m must be a floating torch.Tensor, got "
                         f"{m.dtype if isinstance(m, torch.Tensor) else type(m).__name__}")
    return _SplitSqrt.apply(m)


# --------------------------------------------------------------------------------------------
# the sweep


def _leaves(layer: nn.Module) -> list[nn.Module]:
    if type(layer) is nn.Sequential:
        return [leaf for child in layer for leaf in _leaves(child)]
    return [layer]


def _check_layer(layer: nn.Module, method: str) -> None:
    if isinstance(layer, SumOfBranches):
        for branch in layer.branches:
            for leaf in _leaves(branch):
                _check_layer(leaf, method)
        return
    if type(layer) is nn.Linear:
        return
    if isinstance(layer, SUPPORTED_ACTIVATIONS) and type(layer) in SUPPORTED_ACTIVATIONS:
        if type(layer) is nn.GELU and layer.approximate != "none":
            raise ValueError("layers: GELU(approximate='tanh') is not supported by "
                             f"{method}; use GELU() or another activation")
        return
    name = "approx_bp_backward" if method == "approx_bp" else "cp_backward"
    if not callable(getattr(layer, name, None)):
        raise ValueError(f"layers: {type(layer).__name__} is a layer type that {method} does not know; "
                         f"supported are Linear, {', '.join(t.__name__ for t in SUPPORTED_ACTIVATIONS)}, "
                         f"Sequential and SumOfBranches, or a module with a {name}(...) method "
                         f"(see ssm_lib.curvature)")


def _first_linear(layer: nn.Module) -> nn.Linear | None:
    """The first ``nn.Linear`` the input meets (inside a :class:`SumOfBranches`, that of its
    first branch), or ``None`` when another layer type comes first."""
    if type(layer) is nn.Linear:
        return layer
    if isinstance(layer, SumOfBranches) and layer.branches:
        leaves = _leaves(layer.branches[0])
        return _first_linear(leaves[0]) if leaves else None
    return None


def _check_input(seq: list[nn.Module], x: torch.Tensor) -> None:
    """``x`` must have the width and dtype of the first linear layer it meets (a clear error
    instead of a matrix-product failure deep in the sweep)."""
    first = _first_linear(seq[0]) if seq else None
    if first is None:
        return  # an activation or a layer of the user's own type first: its own rules apply
    if x.shape[1] != first.in_features:
        raise ValueError(f"x has {x.shape[1]} features per sample (shape {tuple(x.shape)}) but "
                         f"the network's first layer takes {first.in_features}")
    if x.dtype != first.weight.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the network's parameters are "
                         f"{first.weight.dtype}; convert one of them (e.g. x.to({first.weight.dtype}))")


class _OwnTape:
    """What a composite layer recorded in its own forward (``forward_with_tape``), handed back
    to its ``cp_backward`` / ``approx_bp_backward`` as ``tape=`` so the sweep does not run the
    layer's sub-network forward a second time."""

    __slots__ = ("tape",)

    def __init__(self, tape: list):
        self.tape = tape


def _forward(layers: list[nn.Module], x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Run the layers, recording ``(layer, input, output, extra)`` for the sweep: ``extra`` is
    the branches' sub-tapes of a :class:`SumOfBranches`, an :class:`_OwnTape` of a layer with
    ``forward_with_tape``, else ``None``."""
    tape = []
    h = x
    for layer in layers:
        if isinstance(layer, SumOfBranches):
            outs, subs = [], []
            for branch in layer.branches:
                o, sub = _forward(_leaves(branch), h)
                outs.append(o)
                subs.append(sub)
            out = outs[0]
            for o in outs[1:]:
                out = out + o
            tape.append((layer, h, out, subs))
        elif callable(getattr(layer, "forward_with_tape", None)):
            out, own = layer.forward_with_tape(h)
            tape.append((layer, h, out, _OwnTape(own)))
        else:
            out = layer(h)
            tape.append((layer, h, out, None))
        h = out
    return h, tape


def _add_parts(parts: list, i: int) -> torch.Tensor:
    """The sum of the branches' ``i``-th propagated tensors (no leading ``0 +`` copy)."""
    out = parts[0][i]
    for p in parts[1:]:
        out = out + p[i]
    return out


def _backward_approx(tape: list, g: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for layer, inp, out, subs in reversed(tape):
        if isinstance(subs, _OwnTape):
            g, h = layer.approx_bp_backward(inp, out, g, h, tape=subs.tape)
        elif subs is not None:
            parts = [_backward_approx(sub, g, h) for sub in subs]
            g, h = _add_parts(parts, 0), _add_parts(parts, 1)
        elif type(layer) is nn.Linear:
            g, h = g @ layer.weight, h @ (layer.weight * layer.weight)
        elif (d := _activation_derivatives(layer, inp)) is not None and type(layer) in SUPPORTED_ACTIVATIONS:
            d1, d2 = d[0].unsqueeze(1), d[1].unsqueeze(1)
            g, h = d1 * g, d1 * d1 * h + d2 * g
        else:
            g, h = layer.approx_bp_backward(inp, out, g, h)
    return g, h


def _backward_cp(tape: list, g: torch.Tensor, s_re: torch.Tensor, s_im: torch.Tensor,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    for layer, inp, out, subs in reversed(tape):
        if isinstance(subs, _OwnTape):
            g, s_re, s_im = layer.cp_backward(inp, out, g, s_re, s_im, generator, tape=subs.tape)
        elif subs is not None:
            parts = [_backward_cp(sub, g, s_re, s_im, generator) for sub in subs]
            g, s_re, s_im = _add_parts(parts, 0), _add_parts(parts, 1), _add_parts(parts, 2)
        elif type(layer) is nn.Linear:
            w = layer.weight
            g, s_re, s_im = g @ w, s_re @ w, s_im @ w
        elif (d := _activation_derivatives(layer, inp)) is not None and type(layer) in SUPPORTED_ACTIVATIONS:
            d1, d2 = d[0].unsqueeze(1), d[1].unsqueeze(1)
            m = d2 * g  # local curvature, diagonal
            v = rademacher(g.shape, g, generator)
            pos, neg = split_sqrt(m)
            s_re = d1 * s_re + pos * v
            s_im = d1 * s_im + neg * v
            g = d1 * g
        else:
            g, s_re, s_im = layer.cp_backward(inp, out, g, s_re, s_im, generator)
    return g, s_re, s_im


def record_forward(layers: nn.Module | Sequence[nn.Module], h: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Run ``layers`` on ``h`` and return ``(output, tape)``; the tape feeds
    :func:`sweep_approx_bp` and :func:`sweep_cp`. For composite layers (see the module
    docstring), e.g. the inner network of a coupling layer inside its ``cp_backward``."""
    if isinstance(layers, nn.Module):
        seq = _leaves(layers)
    else:
        seq = [leaf for layer in layers for leaf in _leaves(layer)]
    if not isinstance(h, torch.Tensor) or h.dim() != 2:
        raise ValueError(f"h must be a tensor of shape (batch, width), got "
                         f"{tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__}")
    _check_input(seq, h)
    return _forward(seq, h)


def sweep_approx_bp(tape: list, g: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Approx BP's backward sweep over a tape: ``(g, h)`` at the output, both
    ``(batch, K, width)``, to ``(g, h)`` at the input."""
    return _backward_approx(tape, g, h)


def sweep_cp(tape: list, g: torch.Tensor, s_re: torch.Tensor, s_im: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CP's backward sweep over a tape: ``(g, S_re, S_im)`` at the output to the input."""
    return _backward_cp(tape, g, s_re, s_im, generator)


def as_layers(model: object) -> list[nn.Module]:
    """The layer sequence of ``model`` for the sweep: ``model.curvature_layers()`` when it
    defines it, the children of an ``nn.Sequential``, or ``model.net`` of an
    :class:`~ssm_lib.models.EnergyMLP`. A score network (not the gradient of an energy) or any
    other object raises a ``ValueError``."""
    from .models import EnergyMLP, ScoreMLP

    if callable(getattr(model, "curvature_layers", None)):
        return _leaves(nn.Sequential(*model.curvature_layers()))  # type: ignore[attr-defined]
    if isinstance(model, EnergyMLP):
        if model.confinement:
            raise ValueError(
                f"energy: EnergyMLP(confinement={model.confinement}) adds c/2 ||x||^2 outside its "
                f"layers, so its layers alone are not its energy; pass the model to "
                f"energy_hessian_terms or to the CP and Approx BP objectives (which add that term's "
                f"exact derivatives), or sweep model.net for the network alone")
        return _leaves(model.net)
    if isinstance(model, nn.Sequential):
        return _leaves(model)
    if isinstance(model, ScoreMLP):
        raise ValueError("energy: CP and Approx BP need an energy network (a score that is the "
                         "gradient of a scalar); a ScoreMLP models the score directly and is not "
                         "a gradient, so its Jacobian's trace is not a Hessian diagonal")
    raise ValueError(f"energy: expected an nn.Sequential of supported layers, an EnergyMLP, or a "
                     f"model with curvature_layers(); got {type(model).__name__}")


def hessian_diagonal(layers: nn.Module | Sequence[nn.Module], x: torch.Tensor, *, method: str = "cp",
                     generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Outputs, gradients and (estimated) Hessian diagonals of every output channel.

    Args:
        layers: the network, mapping ``(batch, d)`` to ``(batch, K)`` (see the module
            docstring for the supported layers).
        x: inputs ``(batch, d)``; never modified.
        method: ``"cp"`` (unbiased, random) or ``"approx_bp"`` (deterministic, biased).
        generator: source of CP's Rademacher vectors.

    Returns:
        ``(y, grad, hdiag)``: ``y`` of shape ``(batch, K)``; ``grad[b, k] =``
        :math:`\nabla_x y_k(x_b)` and ``hdiag[b, k]`` the estimate of
        :math:`\operatorname{diag}\nabla_x^2 y_k(x_b)`, both ``(batch, K, d)``. All are
        differentiable with respect to the network's parameters.
    """
    check_choice(method, METHODS, "method")
    check_batch(x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (batch, d), got {tuple(x.shape)}")
    seq = as_layers(layers) if not isinstance(layers, (list, tuple)) else [
        leaf for layer in layers for leaf in _leaves(layer)]
    for layer in seq:
        _check_layer(layer, method)
    _check_input(seq, x)
    dtype = next((p.dtype for layer in seq for p in layer.parameters()), x.dtype)
    if x.dtype != dtype:
        raise ValueError(f"x has dtype {x.dtype} but the network's parameters are {dtype}; "
                         f"convert one of them (e.g. x.to({dtype}))")
    y, tape = _forward(seq, x.detach())
    if y.dim() != 2:
        raise ValueError(f"layers must map (batch, d) to (batch, K); got output shape {tuple(y.shape)}")
    batch, k = y.shape
    g = torch.eye(k, dtype=y.dtype, device=y.device).expand(batch, k, k)
    zeros = torch.zeros_like(g)
    if method == "approx_bp":
        grad, hdiag = _backward_approx(tape, g, zeros)
    else:
        grad, s_re, s_im = _backward_cp(tape, g, zeros, zeros, generator)
        hdiag = s_re * s_re - s_im * s_im
    return y, grad, hdiag


def _forward_derivatives(seq: list[nn.Module], h: torch.Tensor, jac: torch.Tensor | None,
                         diag: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Forward mode through ``seq``; ``jac``/``diag`` of shape ``(batch, d, width)``, ``None`` for
    the identity / zero at the input."""
    for layer in seq:
        if isinstance(layer, SumOfBranches):
            outs = [_forward_derivatives(_leaves(branch), h, jac, diag) for branch in layer.branches]
            h, jac = _add_parts(outs, 0), _add_parts(outs, 1)
            diags = [o[2] for o in outs if o[2] is not None]
            diag = _add_parts([(t,) for t in diags], 0) if diags else None
        elif type(layer) is nn.Linear:
            w = layer.weight
            h = layer(h)
            jac = w.T.expand(h.shape[0], *w.T.shape) if jac is None else jac @ w.T
            diag = None if diag is None else diag @ w.T
        else:
            d1, d2 = _activation_derivatives(layer, h)
            h = layer(h)
            if jac is None:
                jac = torch.diag_embed(torch.ones_like(h))
            d1, d2 = d1.unsqueeze(1), d2.unsqueeze(1)
            new_diag = d2 * jac * jac
            diag = new_diag if diag is None else torch.addcmul(new_diag, d1, diag)
            jac = d1 * jac
    return h, jac, diag


def forward_derivatives(layers: nn.Module | Sequence[nn.Module], x: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Outputs, Jacobians and exact Hessian diagonals of a network of ``Linear`` layers,
    supported element-wise activations, ``nn.Sequential`` and :class:`SumOfBranches`, by
    forward mode (one pass, no autograd of its own; differentiable in the parameters).

    With :math:`J = \partial h/\partial x` and :math:`D_{f,i} = \partial^2 h_f/\partial x_i^2`
    carried through the layers:

    .. math::

        \begin{aligned}
        h' &= W h + b: & J' &= W J, & D' &= W D;\\
        h' &= a(h): & J' &= a'(h)\, J, & D' &= a''(h)\, J^2 + a'(h)\, D
        \end{aligned}

    (element-wise in the unit, for every input coordinate :math:`i`). The cost is that of the
    forward pass on :math:`d` rows per point, against :math:`d` backward passes through a
    second-order graph for autograd.

    Returns:
        ``(y, jac, diag)``: ``y`` ``(batch, K)``, ``jac[b, i, k]`` :math:`= \partial y_k/\partial x_i`
        and ``diag[b, i, k]`` :math:`= \partial^2 y_k/\partial x_i^2`, both ``(batch, d, K)``
        (the input coordinate before the output unit).

    Raises:
        ValueError: a layer of another type (no forward rule is known for it).
    """
    check_batch(x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (batch, d), got {tuple(x.shape)}")
    seq = (_leaves(layers) if isinstance(layers, nn.Module)
           else [leaf for layer in layers for leaf in _leaves(layer)])
    for layer in seq:
        if not forward_supported(layer):
            raise ValueError(f"layers: forward_derivatives knows Linear, "
                             f"{', '.join(t.__name__ for t in SUPPORTED_ACTIVATIONS)}, Sequential and "
                             f"SumOfBranches, not {type(layer).__name__}")
    _check_input(seq, x)
    y, jac, diag = _forward_derivatives(seq, x, None, None)
    if jac is None:   # no layer at all
        jac = torch.diag_embed(torch.ones_like(x))
    return y, jac, torch.zeros_like(jac) if diag is None else diag


def forward_supported(layer: nn.Module) -> bool:
    """Whether :func:`forward_derivatives` has a rule for every leaf of ``layer``."""
    if isinstance(layer, SumOfBranches):
        return all(forward_supported(leaf) for branch in layer.branches for leaf in _leaves(branch))
    if type(layer) is nn.Sequential:
        return all(forward_supported(leaf) for leaf in _leaves(layer))
    if type(layer) is nn.Linear:
        return True
    if type(layer) is nn.GELU:
        return layer.approximate == "none"
    return type(layer) in SUPPORTED_ACTIVATIONS


def energy_hessian_terms(energy: object, x: torch.Tensor, *, method: str,
                         generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``(E(x), grad E, estimate of diag Hess E)`` with shapes ``(batch,)``, ``(batch, d)``,
    ``(batch, d)`` for a scalar energy. A model may supply them itself through a method
    ``energy_hessian_terms(x, method=, generator=)`` (e.g. :class:`~ssm_lib.dkef.DKEF`);
    otherwise its layers are swept (see :func:`as_layers`)."""
    check_choice(method, METHODS, "method")
    own = getattr(energy, "energy_hessian_terms", None)
    if callable(own):
        return own(x, method=method, generator=generator)
    from .models import EnergyMLP

    confinement = energy.confinement if isinstance(energy, EnergyMLP) else 0.0
    layers = as_layers(energy.net if confinement else energy)
    y, grad, hdiag = hessian_diagonal(layers, x, method=method, generator=generator)
    if y.shape[1] != 1:
        raise ValueError(f"energy must have one output channel, got {y.shape[1]}")
    y, grad, hdiag = y[:, 0], grad[:, 0], hdiag[:, 0]
    if confinement:  # E = net(x) + c/2 ||x||^2: gradient c x and Hessian diagonal c, both exact
        x = x.detach()
        y = y + 0.5 * confinement * (x**2).sum(-1)
        grad = grad + confinement * x
        hdiag = hdiag + confinement
    return y, grad, hdiag


def _hessian_score_matching(energy: object, x: torch.Tensor, method: str,
                            generator: torch.Generator | None, reduction: str) -> torch.Tensor:
    check_reduction(reduction)
    check_batch(x)
    check_generator(generator, x.device)
    dim = getattr(energy, "dim", None)
    if isinstance(dim, int) and not isinstance(dim, bool) and tuple(x.shape[1:]) != (dim,):
        raise ValueError(f"x must have shape (batch, {dim}) for this {type(energy).__name__}, "
                         f"got shape {tuple(x.shape)}")
    _, grad, hdiag = energy_hessian_terms(energy, x, method=method, generator=generator)
    # s = -grad E, tr grad s = -sum diag Hess E
    per_sample = 0.5 * event_sum(grad**2) - event_sum(hdiag)
    return reduce(per_sample, reduction)


def curvature_propagation_score_matching(energy: object, x: torch.Tensor, *,
                                         generator: torch.Generator | None = None,
                                         reduction: str = "mean") -> torch.Tensor:
    r"""Score matching with the trace estimated by curvature propagation (Martens et al. 2012;
    the "CP" baseline of Song et al. 2019, Sec. 5.1):

    .. math::

        \hat J = \tfrac12\|\nabla_x E(x)\|^2
            - \textstyle\sum_i \big(S_{\mathrm{re},i}^2 - S_{\mathrm{im},i}^2\big),

    an unbiased estimate of the exact loss (Eq. 2) for the score :math:`s = -\nabla_x E`.
    ``energy`` must be an energy network in the layer protocol of this module (an
    ``nn.Sequential`` of supported layers with one output, an
    :class:`~ssm_lib.models.EnergyMLP`, or a model with ``curvature_layers()`` or
    ``energy_hessian_terms()``); anything else raises ``ValueError``.
    """
    return _hessian_score_matching(energy, x, "cp", generator, reduction)


def approx_backprop_score_matching(energy: object, x: torch.Tensor, *,
                                   generator: torch.Generator | None = None,
                                   reduction: str = "mean") -> torch.Tensor:
    r"""Score matching with Kingma & LeCun's (2010) approximate Hessian diagonal (the
    "Approx BP" baseline of Song et al. 2019, Sec. 5.1):
    :math:`\tfrac12\|\nabla_x E\|^2 - \sum_i h_i` with :math:`h` from the diagonal-only
    backward sweep. Deterministic (``generator`` is accepted for a uniform signature and
    unused); exact for one hidden layer, biased for deeper networks. Same ``energy``
    requirements as :func:`curvature_propagation_score_matching`."""
    return _hessian_score_matching(energy, x, "approx_bp", generator, reduction)
