r"""The fast exact path of :func:`~ssm_lib.losses.sliced_score_matching`.

A score model may offer the pair :math:`(s(x), \nabla_x s(x)\,v)` itself, through optional
methods

* ``score_fn.score_and_jvp(x, v) -> (s, Jv)``, both of the shape of ``x``, and
* ``score_fn.projected_score_and_jvp(x, v) -> (v.s, v.Jv)``, both of shape ``(batch,)``
  (enough for plain SSM, and cheaper: the output layer is contracted with :math:`v` first),

either of which returns ``None`` to decline (the loss then uses double backpropagation).
With ``method="auto"`` the loss uses them when present. :class:`~ssm_lib.models.ScoreMLP`
offers both, computed by :func:`mlp_score_and_jvp` and :func:`mlp_projected_score_and_jvp`:
the tangent is carried through the network alongside the primal (forward-mode
differentiation written out by hand: for :math:`z = W h + b`, :math:`\dot z = W \dot h`; for
:math:`a = \sigma(z)`, :math:`\dot a = \sigma'(z)\,\dot z`), with the primal and tangent rows
stacked into one matrix product per layer. For plain SSM the output layer is contracted with
:math:`v` first: :math:`u = W_L^\top v`, :math:`v^\top s = u^\top h + v^\top b_L`,
:math:`v^\top J v = u^\top \dot h`.

Limitation: these functions compute with the layers' weights directly, so forward hooks
registered on the network's modules (or globally with
``torch.nn.modules.module.register_module_forward_hook``) are not run. torch offers no public
way to list registered hooks; a model whose hooks change its outputs should be trained with
``method="backward"`` or have its fast path switched off (``ScoreMLP.fast_path = False``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._tensor_ops import event_sum

__all__ = [
    "ACTIVATIONS_WITH_SLOPE", "activation_and_slope", "mlp_layers", "mlp_projected_score_and_jvp",
    "mlp_score_and_jvp", "model_fast_path",
]

ACTIVATIONS_WITH_SLOPE = (nn.SiLU, nn.Tanh, nn.Softplus, nn.GELU)

Layers = tuple[list[tuple[nn.Linear, nn.Module]], nn.Linear]


def activation_and_slope(act: nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    r""":math:`\sigma(z)` and :math:`\sigma'(z)` for the activation module ``act``, written with
    differentiable operations (so :math:`\sigma''` flows when the result is differentiated),
    matching torch's own derivative formulas; ``None`` for an activation not covered here."""
    kind = type(act)
    if kind is nn.SiLU:
        sig = torch.sigmoid(z)
        return z * sig, sig * (1 + z * (1 - sig))
    if kind is nn.Tanh:
        h = torch.tanh(z)
        return h, 1 - h * h
    if kind is nn.Softplus:  # linear above threshold / beta, as nn.Softplus itself
        bz = z * act.beta
        return (F.softplus(z, beta=act.beta, threshold=act.threshold),
                torch.where(bz > act.threshold, torch.ones_like(z), torch.sigmoid(bz)))
    if kind is nn.GELU:
        if act.approximate == "none":  # z Phi(z): slope Phi(z) + z phi(z)
            cdf = 0.5 * (1 + torch.erf(z * (1 / math.sqrt(2))))
            pdf = torch.exp(-0.5 * z * z) * (1 / math.sqrt(2 * math.pi))
            return z * cdf, cdf + z * pdf
        if act.approximate == "tanh":  # z (1 + tanh(k (z + c z^3))) / 2
            k, c = math.sqrt(2 / math.pi), 0.044715
            t = torch.tanh(k * (z + c * z**3))
            return 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + 3 * c * z * z)
    return None


def mlp_layers(net: nn.Module) -> Layers | None:
    """``([(linear, activation), ...], output_linear)`` when ``net`` is an ``nn.Sequential`` of
    linear layers alternating with supported activations; ``None`` otherwise."""
    if not isinstance(net, nn.Sequential):
        return None
    mods = list(net)
    if len(mods) % 2 != 1 or any(type(m) is not nn.Linear for m in mods[::2]):
        return None
    pairs = list(zip(mods[:-1:2], mods[1::2], strict=True))
    if any(type(a) not in ACTIVATIONS_WITH_SLOPE for _, a in pairs):
        return None
    if any(type(a) is nn.GELU and a.approximate not in ("none", "tanh") for _, a in pairs):
        return None
    return pairs, mods[-1]


def _hidden_pass(pairs: list[tuple[nn.Linear, nn.Module]], x: torch.Tensor, v: torch.Tensor
                 ) -> torch.Tensor | None:
    """Primal and tangent rows ``[h; h_dot]`` after the hidden layers, one product each."""
    n = x.shape[0]
    h = torch.cat([x, v.to(x.dtype)])
    for lin, act in pairs:
        z = h @ lin.weight.T
        zp = z[:n] if lin.bias is None else z[:n] + lin.bias
        out = activation_and_slope(act, zp)
        if out is None:
            return None
        a, slope = out
        h = torch.cat([a, slope * z[n:]])
    return h


def _check_mlp_inputs(layers: object, x: object, v: object) -> None:
    """``layers`` from :func:`mlp_layers`, ``x (batch, n_in)`` in the layers' dtype and ``v`` of
    the shape of ``x`` (shapes and dtypes only: no device synchronisation)."""
    if (not isinstance(layers, (tuple, list)) or len(layers) != 2 or not isinstance(layers[1], nn.Linear)
            or not isinstance(layers[0], (list, tuple))):
        raise ValueError(f"layers must be ([(linear, activation), ...], output_linear) as returned by "
                         f"mlp_layers(net) (which gives None for a network it does not cover), "
                         f"got {type(layers).__name__}")
    pairs, last = layers
    first = pairs[0][0] if pairs else last
    n_in, dtype = first.in_features, first.weight.dtype
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != n_in:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (batch, {n_in}), got {got}")
    if x.dtype != dtype:
        raise ValueError(f"x has dtype {x.dtype} but the network's parameters are {dtype}")
    if not isinstance(v, torch.Tensor) or v.shape != x.shape or not v.is_floating_point():
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"v must be a floating tensor of the shape of x {tuple(x.shape)}, got {got}")


def mlp_score_and_jvp(layers: Layers, x: torch.Tensor, v: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
    r""":math:`(s(x), \nabla_x s(x)\, v)` of the MLP ``layers`` (from :func:`mlp_layers`) in one
    stacked primal-and-tangent pass; differentiable in the parameters. ``x``: ``(batch, n_in)``
    in the layers' dtype; ``v``: the shape of ``x`` (else a ``ValueError``)."""
    _check_mlp_inputs(layers, x, v)
    pairs, last = layers
    h = _hidden_pass(pairs, x, v)
    if h is None:
        return None
    n = x.shape[0]
    out = h @ last.weight.T
    s = out[:n] if last.bias is None else out[:n] + last.bias
    return s, out[n:]


def mlp_projected_score_and_jvp(layers: Layers, x: torch.Tensor, v: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor] | None:
    r""":math:`(v^\top s(x),\ v^\top \nabla_x s(x)\, v)`, each of shape ``(batch,)``, with the
    output layer contracted with :math:`v` first. Inputs as in :func:`mlp_score_and_jvp`."""
    _check_mlp_inputs(layers, x, v)
    pairs, last = layers
    h = _hidden_pass(pairs, x, v)
    if h is None:
        return None
    n = x.shape[0]
    v = v.to(x.dtype)
    u = v @ last.weight  # rows u_i = W_L^T v_i
    vs = (u * h[:n]).sum(1)
    if last.bias is not None:
        vs = vs + v @ last.bias
    return vs, (u * h[n:]).sum(1)


def _checked_pair(out: object, shape: tuple[int, ...], what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if (not isinstance(out, tuple) or len(out) != 2
            or any(not isinstance(t, torch.Tensor) or tuple(t.shape) != shape for t in out)):
        raise ValueError(f"score_fn.{what} must return None or two tensors of shape {shape}")
    return out


def model_fast_path(score_fn: Callable[..., torch.Tensor], x: torch.Tensor, v: torch.Tensor,
                    projected: bool) -> tuple[str, torch.Tensor, torch.Tensor] | None:
    """The model's own exact path, if it offers one.

    Returns ``("projected", v.s, v.Jv)`` (only when ``projected``: plain SSM) or
    ``("pair", s, v.Jv)``, or ``None`` when the model offers neither or declines."""
    if projected:
        fn = getattr(score_fn, "projected_score_and_jvp", None)
        if callable(fn):
            out = fn(x, v)
            if out is not None:
                vs, vjv = _checked_pair(out, (x.shape[0],), "projected_score_and_jvp")
                return "projected", vs, vjv
    fn = getattr(score_fn, "score_and_jvp", None)
    if callable(fn):
        out = fn(x, v)
        if out is not None:
            s, jv = _checked_pair(out, tuple(x.shape), "score_and_jvp")
            return "pair", s, event_sum(v * jv)
    return None
