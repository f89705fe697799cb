r"""Score and energy models.

Two ways to model a score:

* directly, :math:`s_\theta: \mathbb R^d \to \mathbb R^d` (:class:`ScoreMLP`), cheap to
  evaluate but not necessarily the gradient of anything;
* as the negative gradient of an energy, :math:`s_\theta = -\nabla_x E_\theta` with
  :math:`\log p_\theta = -E_\theta - \log Z_\theta` (:class:`EnergyMLP`,
  :func:`score_from_energy`), which gives an unnormalised density too.

Activations are smooth (SiLU by default) so that second derivatives, needed by every
score-matching objective, exist and are non-trivial.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_positive_int

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def _mlp(n_in: int, n_out: int, hidden: int, depth: int, activation: str) -> nn.Sequential:
    check_positive_int(n_in, "dim")
    check_positive_int(hidden, "hidden")
    check_positive_int(depth, "depth")
    check_choice(activation, tuple(ACTIVATIONS), "activation")
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), ACTIVATIONS[activation]()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


def _check_input(x: torch.Tensor, dim: int, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != dim:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (batch, {dim}), got {got}")


def _activation_and_slope(act: nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
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


class ScoreMLP(nn.Module):
    r"""A score network :math:`s_\theta:\mathbb R^d\to\mathbb R^d`: ``depth`` hidden layers of
    width ``hidden`` with a smooth activation, and a linear output layer.

    Besides ``forward`` it offers the fast exact path of
    :func:`~ssm_lib.losses.sliced_score_matching` (see :mod:`ssm_lib.losses`):
    :meth:`score_and_jvp` returns :math:`(s(x), \nabla_x s(x)\,v)` by carrying the tangent
    through the network alongside the primal (forward-mode differentiation written out by
    hand: for :math:`z = W h + b`, :math:`\dot z = W \dot h`; for :math:`a = \sigma(z)`,
    :math:`\dot a = \sigma'(z)\,\dot z`), with the primal and tangent rows stacked into one
    matrix product per layer; :meth:`projected_score_and_jvp` returns
    :math:`(v^\top s, v^\top J v)` and saves most of the output layer by contracting
    :math:`v` with it first (:math:`u = W_L^\top v`, :math:`v^\top s = u^\top h + v^\top b_L`,
    :math:`v^\top J v = u^\top \dot h`). Both return ``NotImplemented`` (the loss then falls
    back to double backpropagation) when the module was changed so that they would not
    compute the same function as ``forward``: a subclass overriding ``forward``, forward
    hooks, an edited ``net``, or an activation other than SiLU, softplus, tanh and GELU.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, activation: str = "silu"):
        super().__init__()
        self.dim, self.hidden, self.depth, self.activation = dim, hidden, depth, activation
        self.net = _mlp(dim, dim, hidden, depth, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dim)
        return self.net(x)

    def _fast_layers(self) -> tuple[list[tuple[nn.Linear, nn.Module]], nn.Linear] | None:
        """``([(linear, activation), ...], output_linear)`` when the fast path applies."""
        if type(self).forward is not ScoreMLP.forward or not isinstance(self.net, nn.Sequential):
            return None
        if (nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks
                or any(m._forward_hooks or m._forward_pre_hooks for m in self.modules())):
            return None
        mods = list(self.net)
        if len(mods) < 1 or len(mods) % 2 != 1 or any(type(m) is not nn.Linear for m in mods[::2]):
            return None
        pairs = list(zip(mods[:-1:2], mods[1::2], strict=True))
        if any(type(a) not in (nn.SiLU, nn.Tanh, nn.Softplus, nn.GELU) for _, a in pairs):
            return None
        if any(type(a) is nn.GELU and a.approximate not in ("none", "tanh") for _, a in pairs):
            return None
        return pairs, mods[-1]

    def _check_tangent(self, x: torch.Tensor, v: torch.Tensor) -> None:
        _check_input(x, self.dim)
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"v must be a tensor of the shape of x {tuple(x.shape)}, got {got}")

    @staticmethod
    def _hidden_pass(pairs: list[tuple[nn.Linear, nn.Module]], x: torch.Tensor, v: torch.Tensor
                     ) -> torch.Tensor | None:
        """Primal and tangent rows ``[h; h_dot]`` after the hidden layers, one product each."""
        n = x.shape[0]
        h = torch.cat([x, v.to(x.dtype)])
        for lin, act in pairs:
            z = h @ lin.weight.T
            zp = z[:n] if lin.bias is None else z[:n] + lin.bias
            out = _activation_and_slope(act, zp)
            if out is None:
                return None
            a, slope = out
            h = torch.cat([a, slope * z[n:]])
        return h

    def _stacked_hidden(self, x: torch.Tensor, v: torch.Tensor
                        ) -> tuple[torch.Tensor, nn.Linear] | None:
        """The last hidden layer's primal rows stacked on its tangent rows, and the output
        layer; ``None`` when the fast path does not apply to this network."""
        self._check_tangent(x, v)
        layers = self._fast_layers()
        if layers is None:
            return None
        pairs, last = layers
        h = self._hidden_pass(pairs, x, v)
        return None if h is None else (h, last)

    def score_and_jvp(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(s(x), \nabla_x s(x)\, v)` in one stacked primal-and-tangent pass (or
        ``NotImplemented``, see the class docstring). Differentiable in the parameters."""
        stacked = self._stacked_hidden(x, v)
        if stacked is None:
            return NotImplemented
        h, last = stacked
        n = x.shape[0]
        out = h @ last.weight.T
        s = out[:n] if last.bias is None else out[:n] + last.bias
        return s, out[n:]

    def projected_score_and_jvp(self, x: torch.Tensor, v: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(v^\top s(x),\ v^\top \nabla_x s(x)\, v)`, each of shape ``(batch,)``, with
        the output layer contracted with :math:`v` first (or ``NotImplemented``)."""
        stacked = self._stacked_hidden(x, v)
        if stacked is None:
            return NotImplemented
        h, last = stacked
        n = x.shape[0]
        v = v.to(x.dtype)
        u = v @ last.weight  # rows u_i = W_L^T v_i
        vs = (u * h[:n]).sum(1)
        if last.bias is not None:
            vs = vs + v @ last.bias
        return vs, (u * h[n:]).sum(1)


class EnergyMLP(nn.Module):
    r"""An energy network :math:`E_\theta:\mathbb R^d\to\mathbb R`, defining
    :math:`p_\theta(x) = e^{-E_\theta(x)}/Z_\theta`. ``forward`` returns the energies
    ``(batch,)``; :meth:`score` returns :math:`-\nabla_x E_\theta(x)`.

    The network alone can grow at most linearly in :math:`\|x\|` (Lipschitz activations, a
    linear last layer), so :math:`e^{-E_\theta}` need not be integrable and :math:`Z_\theta` may be
    infinite. ``confinement`` :math:`c \ge 0` adds the fixed term
    :math:`E_\theta(x) = \mathrm{net}(x) + \tfrac{c}{2}\|x\|^2`; with :math:`c > 0` the energy
    grows quadratically and :math:`Z_\theta < \infty` for every :math:`\theta`. The default
    ``0`` leaves the network unchanged."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, activation: str = "silu",
                 confinement: float = 0.0):
        super().__init__()
        if not isinstance(confinement, (int, float)) or not math.isfinite(confinement) or confinement < 0:
            raise ValueError(f"confinement must be a finite number >= 0, got {confinement!r}")
        self.dim, self.hidden, self.depth, self.activation = dim, hidden, depth, activation
        self.confinement = float(confinement)
        self.net = _mlp(dim, 1, hidden, depth, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dim)
        energy = self.net(x).squeeze(-1)
        if self.confinement:
            energy = energy + 0.5 * self.confinement * (x**2).sum(-1)
        return energy

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`-E_\theta(x) = \log p_\theta(x) + \log Z_\theta`."""
        return -self(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r"""The model score :math:`-\nabla_x E_\theta(x)`; second derivatives flow."""
        return score_from_energy(self)(x)


class EnergyScore:
    r"""The score :math:`s(x) = -\nabla_x E(x)` of an energy function ``E``.

    The gradient is taken with ``create_graph=True`` whenever gradients are enabled, so the
    result can be differentiated again (with respect to ``x`` for the Jacobian terms of score
    matching, and with respect to the energy's parameters for training). Under
    ``torch.no_grad()`` (e.g. during sampling) it returns a detached tensor. The input is
    never modified: when it does not require grad, a detached copy that does is used.
    """

    def __init__(self, energy_fn: Callable[[torch.Tensor], torch.Tensor]):
        if not callable(energy_fn):
            raise ValueError(f"energy_fn must be callable, got {type(energy_fn).__name__}")
        self.energy_fn = energy_fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if x.requires_grad else x.detach().requires_grad_(True)
            energy = self.energy_fn(x_in)
            if not isinstance(energy, torch.Tensor) or energy.shape != (x.shape[0],):
                got = tuple(energy.shape) if isinstance(energy, torch.Tensor) else type(energy).__name__
                raise ValueError(f"energy_fn must return a tensor of shape (batch,) = "
                                 f"({x.shape[0]},), got {got}")
            (grad,) = torch.autograd.grad(energy.sum(), x_in, create_graph=create_graph)
        return -grad

    def __repr__(self) -> str:
        return f"EnergyScore({self.energy_fn!r})"


def score_from_energy(energy_fn: Callable[[torch.Tensor], torch.Tensor]) -> EnergyScore:
    r"""The score :math:`-\nabla_x E(x)` of ``energy_fn`` as a score function usable in every
    loss of :mod:`ssm_lib.losses` (second derivatives flow). See :class:`EnergyScore`."""
    return EnergyScore(energy_fn)


class NoiseConditionalScoreMLP(nn.Module):
    r"""A noise-conditional score network :math:`s_\theta(x, \sigma)` (Song & Ermon 2019):
    an MLP on :math:`(x, \log\sigma)` whose output is divided by :math:`\sigma`, so that its
    scale follows that of :math:`\nabla\log q_\sigma \approx -(\tilde x - x)/\sigma^2`."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, activation: str = "silu"):
        super().__init__()
        self.dim = dim
        self.net = _mlp(dim + 1, dim, hidden, depth, activation)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        _check_input(x, self.dim)
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sig.dim() == 0:
            sig = sig.expand(x.shape[0])
        if sig.shape != (x.shape[0],) or bool(torch.any(sig <= 0)):
            raise ValueError(f"sigma must be positive, a number or a tensor of shape "
                             f"({x.shape[0]},), got shape {tuple(sig.shape)}")
        h = torch.cat([x, sig.log().unsqueeze(-1)], dim=-1)
        return self.net(h) / sig.unsqueeze(-1)
