r"""Score and energy models.

Two ways to model a score:

* directly, :math:`s_\theta: \mathbb R^d \to \mathbb R^d` (:class:`ScoreMLP`), cheap to
  evaluate but not necessarily the gradient of anything;
* as the negative gradient of an energy, :math:`s_\theta = -\nabla_x E_\theta` with
  :math:`\log p_\theta = -E_\theta - \log Z_\theta` (:class:`EnergyMLP`,
  :func:`score_from_energy`), which gives an unnormalised density too.

Activations are smooth (SiLU by default) so that second derivatives, needed by every
score-matching objective, exist and are non-trivial. The networks take flat vectors
``(batch, dim)`` in the dtype of their parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._checks import (
    check_batch,
    check_choice,
    check_count,
    check_flag,
    check_noise_levels,
    check_number,
)
from ._tensor_ops import as_grad_input
from .fast_path import Layers, mlp_layers, mlp_projected_score_and_jvp, mlp_score_and_jvp
from .persistence import register_model

#: The activations the networks accept, by name (smooth, so that second derivatives exist).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


__all__ = [
    "ACTIVATIONS", "EnergyMLP", "EnergyScore", "NoiseConditionalScoreMLP", "ScoreMLP", "mlp",
    "score_from_energy",
]


def mlp(n_in: int, n_out: int, hidden: int, depth: int, activation: str) -> nn.Sequential:
    r"""A fully connected network :math:`\mathbb R^{n_\text{in}} \to \mathbb R^{n_\text{out}}`
    with ``depth`` hidden layers of width ``hidden``,

    .. math::

        h_0 = x,\quad h_l = \phi(W_l h_{l-1} + b_l)\ (l = 1, \dots, \text{depth}),\quad
        f(x) = W_{\text{depth}+1} h_\text{depth} + b_{\text{depth}+1},

    :math:`\phi` the activation named by ``activation`` (a key of :data:`ACTIVATIONS`), as an
    ``nn.Sequential`` of alternating ``nn.Linear`` and activation modules (the layout the
    fast paths of :mod:`ssm_lib.fast_path` and :mod:`ssm_lib.curvature` recognise).
    """
    n_in = check_count(n_in, "n_in")
    n_out = check_count(n_out, "n_out")
    hidden = check_count(hidden, "hidden")
    depth = check_count(depth, "depth")
    check_choice(activation, tuple(ACTIVATIONS), "activation")
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), ACTIVATIONS[activation]()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


#: the former private name of :func:`mlp` (kept while other modules move to the public name)


class _Configured:
    """``from_config``, the inverse of a model's ``config()`` (see :mod:`ssm_lib.persistence`)."""

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        """A new (freshly initialised) model built from ``config``, the dictionary returned by
        ``config()``; ``load_state_dict`` then restores trained weights."""
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        return cls(**config)


def _mlp_options(hidden: object, depth: object, activation: object) -> tuple[int, int, str]:
    return (check_count(hidden, "hidden"), check_count(depth, "depth"),
            check_choice(activation, tuple(ACTIVATIONS), "activation"))


def _check_input(module: nn.Module, x: object, dim: int) -> torch.Tensor:
    """``x`` of shape ``(batch, dim)`` in the dtype of ``module``'s parameters."""
    x = check_batch(x, event_shape=(dim,))
    dtype = next(module.parameters()).dtype
    if x.dtype != dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model's parameters have dtype {dtype}; "
                         "convert one of them (e.g. model.double() or x.float())")
    return x


@register_model
class ScoreMLP(_Configured, nn.Module):
    r"""A score network :math:`s_\theta:\mathbb R^d\to\mathbb R^d`: ``depth`` hidden layers of
    width ``hidden`` with a smooth activation, and a linear output layer.

    Besides ``forward`` it offers the fast exact path of
    :func:`~ssm_lib.losses.sliced_score_matching` (see :mod:`ssm_lib.fast_path`):
    :meth:`score_and_jvp` and :meth:`projected_score_and_jvp`. Both return ``None`` (the loss
    then falls back to double backpropagation) when ``fast_path`` is ``False`` or the module
    was changed so that they would not compute the same function as ``forward``: a subclass
    overriding ``forward``, a ``forward`` set on the instance, an edited ``net``, or an
    activation other than SiLU, softplus, tanh and GELU. Forward hooks are not detected (see
    :mod:`ssm_lib.fast_path`): set ``fast_path = False`` on a model whose hooks change its
    outputs.

    ``config()`` and ``from_config(config)`` rebuild the model's architecture;
    :func:`ssm_lib.persistence.save_model` and :func:`ssm_lib.persistence.load_model` store it
    with its weights.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, activation: str = "silu",
                 fast_path: bool = True):
        super().__init__()
        self.dim = check_count(dim, "dim")
        self.hidden, self.depth, self.activation = _mlp_options(hidden, depth, activation)
        self.fast_path = check_flag(fast_path, "fast_path")
        self.net = mlp(self.dim, self.dim, self.hidden, self.depth, self.activation)

    def config(self) -> dict[str, Any]:
        """The constructor's arguments, as plain values: ``ScoreMLP(**m.config())`` has the same
        architecture as ``m``."""
        return {"dim": self.dim, "hidden": self.hidden, "depth": self.depth,
                "activation": self.activation, "fast_path": self.fast_path}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_check_input(self, x, self.dim))

    def _fast_layers(self, x: torch.Tensor, v: torch.Tensor) -> Layers | None:
        _check_input(self, x, self.dim)
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"v must be a tensor of the shape of x {tuple(x.shape)}, got {got}")
        # a forward of the class's own, or one set on the instance (m.forward = ...)
        if (not self.fast_path or type(self).forward is not ScoreMLP.forward
                or "forward" in self.__dict__):
            return None
        return mlp_layers(self.net)

    def score_and_jvp(self, x: torch.Tensor, v: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
        r""":math:`(s(x), \nabla_x s(x)\, v)` in one stacked primal-and-tangent pass, or ``None``
        (see the class docstring). Differentiable in the parameters."""
        layers = self._fast_layers(x, v)
        return None if layers is None else mlp_score_and_jvp(layers, x, v)

    def projected_score_and_jvp(self, x: torch.Tensor, v: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor] | None:
        r""":math:`(v^\top s(x),\ v^\top \nabla_x s(x)\, v)`, each of shape ``(batch,)``, with
        the output layer contracted with :math:`v` first, or ``None``."""
        layers = self._fast_layers(x, v)
        return None if layers is None else mlp_projected_score_and_jvp(layers, x, v)


@register_model
class EnergyMLP(_Configured, nn.Module):
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
        self.dim = check_count(dim, "dim")
        self.hidden, self.depth, self.activation = _mlp_options(hidden, depth, activation)
        self.confinement = check_number(confinement, "confinement")
        if self.confinement < 0:
            raise ValueError(f"confinement must be a finite number >= 0, got {confinement!r}")
        self.net = mlp(self.dim, 1, self.hidden, self.depth, self.activation)

    def config(self) -> dict[str, Any]:
        """The constructor's arguments, as plain values (see :meth:`ScoreMLP.config`)."""
        return {"dim": self.dim, "hidden": self.hidden, "depth": self.depth,
                "activation": self.activation, "confinement": self.confinement}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(self, x, self.dim)
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
    never modified: when it does not require grad, a detached copy that does is used. An
    energy that does not depend on ``x`` (a constant) has score zero: zeros are returned.
    """

    def __init__(self, energy_fn: Callable[[torch.Tensor], torch.Tensor]):
        if not callable(energy_fn):
            raise ValueError(f"energy_fn must be callable, got {type(energy_fn).__name__}")
        self.energy_fn = energy_fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x)
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if x.requires_grad else as_grad_input(x)
            energy = self.energy_fn(x_in)
            if not isinstance(energy, torch.Tensor) or energy.shape != (x.shape[0],):
                got = tuple(energy.shape) if isinstance(energy, torch.Tensor) else type(energy).__name__
                raise ValueError(f"energy_fn must return a tensor of shape (batch,) = "
                                 f"({x.shape[0]},), got {got}")
            if not energy.requires_grad:  # a constant energy
                return torch.zeros_like(x)
            (grad,) = torch.autograd.grad(energy.sum(), x_in, create_graph=create_graph,
                                          allow_unused=True)
        return torch.zeros_like(x) if grad is None else -grad

    def __repr__(self) -> str:
        return f"EnergyScore({self.energy_fn!r})"


def score_from_energy(energy_fn: Callable[[torch.Tensor], torch.Tensor]) -> EnergyScore:
    r"""The score :math:`-\nabla_x E(x)` of ``energy_fn`` as a score function usable in every
    loss of :mod:`ssm_lib.losses` (second derivatives flow). See :class:`EnergyScore`."""
    return EnergyScore(energy_fn)


@register_model
class NoiseConditionalScoreMLP(_Configured, nn.Module):
    r"""A noise-conditional score network :math:`s_\theta(x, \sigma)` (Song & Ermon 2019):
    an MLP on :math:`(x, \log\sigma)` whose output is divided by :math:`\sigma`, so that its
    scale follows that of :math:`\nabla\log q_\sigma \approx -(\tilde x - x)/\sigma^2`."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, activation: str = "silu"):
        super().__init__()
        self.dim = check_count(dim, "dim")
        self.hidden, self.depth, self.activation = _mlp_options(hidden, depth, activation)
        self.net = mlp(self.dim + 1, self.dim, self.hidden, self.depth, self.activation)

    def config(self) -> dict[str, Any]:
        """The constructor's arguments, as plain values (see :meth:`ScoreMLP.config`)."""
        return {"dim": self.dim, "hidden": self.hidden, "depth": self.depth, "activation": self.activation}

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """The score at noise level ``sigma``: a positive number or a ``(batch,)`` tensor."""
        _check_input(self, x, self.dim)
        sig = check_noise_levels(sigma, x)
        h = torch.cat([x, sig.log().unsqueeze(-1)], dim=-1)
        return self.net(h) / sig.unsqueeze(-1)
