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

from collections.abc import Callable

import torch
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


class ScoreMLP(nn.Module):
    r"""A score network :math:`s_\theta:\mathbb R^d\to\mathbb R^d`: ``depth`` hidden layers of
    width ``hidden`` with a smooth activation, and a linear output layer."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, activation: str = "silu"):
        super().__init__()
        self.dim, self.hidden, self.depth, self.activation = dim, hidden, depth, activation
        self.net = _mlp(dim, dim, hidden, depth, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dim)
        return self.net(x)


class EnergyMLP(nn.Module):
    r"""An energy network :math:`E_\theta:\mathbb R^d\to\mathbb R`, defining
    :math:`p_\theta(x) = e^{-E_\theta(x)}/Z_\theta`. ``forward`` returns the energies
    ``(batch,)``; :meth:`score` returns :math:`-\nabla_x E_\theta(x)`."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, activation: str = "silu"):
        super().__init__()
        self.dim, self.hidden, self.depth, self.activation = dim, hidden, depth, activation
        self.net = _mlp(dim, 1, hidden, depth, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dim)
        return self.net(x).squeeze(-1)

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
