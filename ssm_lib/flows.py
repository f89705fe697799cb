r"""NICE, a normalising flow with an exact likelihood (Dinh, Krueger & Bengio 2015).

A flow is an invertible map :math:`f: \mathbb R^d \to \mathbb R^d` from data :math:`x` to a
latent :math:`z = f(x)` with a standard-normal prior, so by the change of variables

.. math::

    \log p_\theta(x) = \log \mathcal N\big(f(x); 0, I\big)
        + \log\big|\det \nabla_x f(x)\big|.

NICE composes *additive coupling layers* with a final *diagonal scaling*. A coupling layer
splits the coordinates into a fixed set :math:`a` and a shifted set :math:`b` and adds to
:math:`x_b` a function of :math:`x_a` computed by an MLP :math:`m`:

.. math::

    y_a = x_a, \qquad y_b = x_b + m(x_a), \qquad\text{inverse: } x_b = y_b - m(y_a).

Its Jacobian is unit triangular, so its log-determinant is 0 (volume preserving). The scaling
layer :math:`z = e^{\lambda} \odot y` contributes :math:`\sum_i \lambda_i`. Consecutive
couplings alternate the roles of the even and the odd coordinates, so every coordinate is
changed by some layer. With :math:`E_\theta = -\log p_\theta` (normalised, :math:`\log Z = 0`)
the score is :math:`s_\theta = \nabla_x \log p_\theta = -\nabla_x f(x)^\top f(x)`, taken by
autograd so that every score-matching objective of :mod:`ssm_lib.losses` can differentiate
it again, and maximum likelihood uses :func:`~ssm_lib.losses.negative_log_likelihood`.

The layers are exposed for estimators that propagate curvature through the network (CP,
Approx BP): ``NICE.couplings`` (each with its ``fixed`` and ``shifted`` index buffers and
its MLP ``shift_net``, an ``nn.Sequential`` of ``nn.Linear`` and activation modules) and
``NICE.scaling`` (its ``log_scale`` parameter). Both implement the layer protocol of
:mod:`ssm_lib.curvature`, and :meth:`NICE.curvature_layers` lists the layers of the energy
:math:`\tfrac12\|f(x)\|^2` (the log-determinant is constant in :math:`x`), so
:func:`~ssm_lib.curvature.curvature_propagation_score_matching` and
:func:`~ssm_lib.curvature.approx_backprop_score_matching` accept a NICE model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ._checks import (
    _available_bytes,
    check_choice,
    check_count,
    check_fits_in_memory,
    check_generator,
    check_number,
)
from .curvature import HalfSquaredNorm, record_forward, sweep_approx_bp, sweep_cp
from .models import ACTIVATIONS, EnergyScore, mlp
from .persistence import register_model

__all__ = ["AdditiveCoupling", "DiagonalScaling", "NICE", "default_hidden", "nice_parameter_count"]


def default_hidden(dim: int) -> int:
    r"""The default width of NICE's coupling MLPs for ``dim`` coordinates:
    :math:`\min(1000, \max(64, 2d))`. It grows with the input and reaches the paper's 1000 units
    at :math:`d = 500` (so the MNIST model, :math:`d = 784`, keeps its size), while a 2-D flow
    gets 64 units (about 50 thousand parameters, not 12 million)."""
    return min(1000, max(64, 2 * check_count(dim, "dim")))


def nice_parameter_count(dim: int, hidden: int, depth: int, n_couplings: int) -> int:
    r"""The number of parameters of ``NICE(dim, hidden, depth, n_couplings)``: per coupling an
    MLP :math:`a \to h \to \dots \to h \to b` (``depth`` hidden layers, with
    :math:`a = \lceil d/2\rceil` or :math:`\lfloor d/2\rfloor` inputs and the other half as
    outputs), plus the :math:`d` log-scales. Every argument is a whole number ``>= 1``
    (``dim >= 2``)."""
    dim = check_count(dim, "dim")
    if dim < 2:
        raise ValueError(f"dim must be at least 2 for a coupling layer, got {dim}")
    hidden = check_count(hidden, "hidden")
    depth = check_count(depth, "depth")
    n_couplings = check_count(n_couplings, "n_couplings")
    total = dim
    for i in range(n_couplings):
        a = len(range(i % 2, dim, 2))
        b = dim - a
        total += (a + 1) * hidden + (depth - 1) * (hidden + 1) * hidden + (hidden + 1) * b
    return total


def _check_flow_input(x: object, dim: int, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != dim or x.shape[0] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (batch, {dim}) with batch >= 1, got {got}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


class AdditiveCoupling(nn.Module):
    r"""One additive coupling layer :math:`y_a = x_a,\ y_b = x_b + m(x_a)` (Dinh et al. 2015,
    Eq. 6), with :math:`a` the coordinates of parity ``parity`` (0: even indices 0, 2, 4, ...;
    1: odd ones) and :math:`b` the others. :math:`m` is an MLP with ``depth`` hidden layers
    of width ``hidden`` (``depth + 1`` linear layers in all)."""

    def __init__(self, dim: int, parity: int, hidden: int, depth: int, activation: str = "softplus"):
        super().__init__()
        dim = check_count(dim, "dim")
        if dim < 2:
            raise ValueError(f"dim must be at least 2 for a coupling layer, got {dim}")
        if isinstance(parity, bool) or parity not in (0, 1):
            raise ValueError(f"parity must be 0 or 1, got {parity!r}")
        parity = int(parity)
        self.dim, self.parity = dim, parity
        idx = torch.arange(dim)
        self.register_buffer("fixed", idx[parity::2].clone())
        self.register_buffer("shifted", idx[1 - parity::2].clone())
        self.shift_net = mlp(len(self.fixed), len(self.shifted), hidden, depth, activation)

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`m(x_a)`, of shape ``(batch, len(shifted))``."""
        return self.shift_net(x.index_select(1, self.fixed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Data side to latent side; the log-determinant is 0. ``x``: ``(batch, dim)``."""
        _check_flow_input(x, self.dim)
        return x.index_add(1, self.shifted, self.shift(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        _check_flow_input(y, self.dim, "y")
        return y.index_add(1, self.shifted, self.shift(y), alpha=-1.0)

    # the layer protocol of ssm_lib.curvature. With J = I + P_b^T J_m P_a (P_a, P_b select the
    # fixed and shifted coordinates), J^T g = g + P_a^T J_m^T g_b: the shifted half passes
    # (g, h or S) through unchanged and the fixed half adds the sweep of m started from the
    # shifted half's values (m's own curvature sum_k g_k Hess m_k is added inside that sweep).

    def forward_with_tape(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """:meth:`forward` that also returns the tape of :math:`m` (its layers' inputs and
        outputs), which the sweep's ``cp_backward`` / ``approx_bp_backward`` then reuse."""
        m, tape = record_forward(self.shift_net, x.index_select(1, self.fixed))
        return x.index_add(1, self.shifted, m), tape

    def cp_backward(self, inp, out, g, s_re, s_im, generator, tape=None):  # noqa: ANN001 - protocol signature
        r"""CP through the coupling: exact propagation, :math:`S_x = J^\top S_y + F v` with the
        local curvature of :math:`m` factorised inside :func:`~ssm_lib.curvature.sweep_cp`.
        ``tape``: :math:`m`'s tape from :meth:`forward_with_tape` (recorded again if absent)."""
        if tape is None:
            _, tape = record_forward(self.shift_net, inp.index_select(1, self.fixed))
        b = self.shifted
        gm, rm, im = sweep_cp(tape, g.index_select(-1, b), s_re.index_select(-1, b),
                              s_im.index_select(-1, b), generator)
        a = self.fixed
        return g.index_add(-1, a, gm), s_re.index_add(-1, a, rm), s_im.index_add(-1, a, im)

    def approx_bp_backward(self, inp, out, g, h, tape=None):  # noqa: ANN001 - protocol signature
        r"""Approx BP through the coupling: :math:`h_{x_b} = h_{y_b}` (exact given
        :math:`h_y`: the column of :math:`J` for a shifted coordinate is a unit vector) and
        :math:`h_{x_a} = h_{y_a} + \text{(Approx BP of } m \text{ from } (g_{y_b}, h_{y_b}))`,
        which drops the cross terms :math:`2\,\nabla^2_{ab}E\,J_m` and the off-diagonal
        part of :math:`\nabla^2_{bb}E` (a biased estimate of the fixed half). ``tape`` as in
        :meth:`cp_backward`."""
        if tape is None:
            _, tape = record_forward(self.shift_net, inp.index_select(1, self.fixed))
        b = self.shifted
        gm, hm = sweep_approx_bp(tape, g.index_select(-1, b), h.index_select(-1, b))
        a = self.fixed
        return g.index_add(-1, a, gm), h.index_add(-1, a, hm)


class DiagonalScaling(nn.Module):
    r"""The last layer of NICE, :math:`z = e^{\lambda}\odot y` with log-determinant
    :math:`\sum_i \lambda_i` (Dinh et al. 2015, Sec. 3.3); :math:`\lambda` starts at 0."""

    def __init__(self, dim: int):
        super().__init__()
        dim = check_count(dim, "dim")
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def _check_input(self, t: object, name: str) -> None:
        dim = self.log_scale.shape[0]
        if not isinstance(t, torch.Tensor) or t.dim() < 1 or t.shape[-1] != dim:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must have shape (..., {dim}) (its last dimension the {dim} "
                             f"coordinates), got {got}")

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self._check_input(y, "y")
        return y * self.log_scale.exp()

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self._check_input(z, "z")
        return z * (-self.log_scale).exp()

    def log_det(self) -> torch.Tensor:
        return self.log_scale.sum()

    # the layer protocol of ssm_lib.curvature: a linear, diagonal map (no curvature of its
    # own), so both methods are exact through it: g_x = e^l g_y, h_x = e^{2l} h_y, S_x = e^l S_y

    def cp_backward(self, inp, out, g, s_re, s_im, generator):  # noqa: ANN001 - protocol signature
        scale = self.log_scale.exp()
        return g * scale, s_re * scale, s_im * scale

    def approx_bp_backward(self, inp, out, g, h):  # noqa: ANN001 - protocol signature
        scale = self.log_scale.exp()
        return g * scale, h * scale * scale


@register_model
class NICE(nn.Module):
    r"""NICE flow: ``n_couplings`` additive couplings alternating the even and odd halves, an
    MLP per coupling, a diagonal scaling layer and a standard-normal prior.

    The paper's MNIST model (Song et al. 2019, Sec. 5.2; from Dinh et al. 2015) is
    ``NICE(784, hidden=1000, depth=4, n_couplings=4)``: four couplings whose MLPs have five
    linear layers of 1000 softplus units.

    ``hidden`` defaults to :func:`default_hidden` ``(dim)`` = :math:`\min(1000, \max(64, 2d))`,
    which scales with the input: ``NICE(2)`` has 64-unit MLPs, ``NICE(784)`` the paper's 1000.
    Pass ``hidden`` and ``depth`` explicitly for a reproducible architecture. A model whose
    parameters (:func:`nice_parameter_count`, in the default dtype) would not fit in the
    machine's memory is refused with a ``ValueError`` before anything is allocated.
    :meth:`config` and :meth:`from_config` rebuild it (see :mod:`ssm_lib.persistence`).

    Methods: :meth:`forward` (:math:`x \mapsto (z, \log|\det\nabla f|)`), :meth:`inverse`,
    :meth:`log_prob` (exact), :meth:`energy` (:math:`= -\log p`), :meth:`score`
    (:math:`\nabla_x\log p`, differentiable again) and :meth:`sample`.
    """

    def __init__(self, dim: int, hidden: int | None = None, depth: int = 4, n_couplings: int = 4,
                 activation: str = "softplus"):
        super().__init__()
        dim = check_count(dim, "dim")
        hidden = default_hidden(dim) if hidden is None else check_count(hidden, "hidden")
        depth = check_count(depth, "depth")
        n_couplings = check_count(n_couplings, "n_couplings")
        check_choice(activation, tuple(ACTIVATIONS), "activation")
        if dim < 2:
            raise ValueError(f"dim must be at least 2 for a coupling layer, got {dim}")
        n_params = nice_parameter_count(dim, hidden, depth, n_couplings)
        need = n_params * torch.get_default_dtype().itemsize
        have = _available_bytes(torch.device("cpu"))
        if have is not None and need > have:
            raise ValueError(f"dim = {dim} with hidden = {hidden}, depth = {depth}, "
                             f"n_couplings = {n_couplings} "
                             f"gives {n_params:.3g} parameters ({need / 2**30:.3g} GiB), more than this "
                             f"machine's {have / 2**30:.3g} GiB of memory: lower dim or hidden")
        self.dim, self.hidden, self.depth = dim, hidden, depth
        self.n_couplings, self.activation = n_couplings, activation
        self.couplings = nn.ModuleList(
            AdditiveCoupling(dim, i % 2, hidden, depth, activation) for i in range(n_couplings))
        self.scaling = DiagonalScaling(dim)

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (``hidden`` resolved), for :func:`ssm_lib.persistence.save_model`."""
        return {"dim": self.dim, "hidden": self.hidden, "depth": self.depth,
                "n_couplings": self.n_couplings, "activation": self.activation}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NICE:
        """A new NICE built from ``config()``'s dictionary (weights then loaded by
        :func:`ssm_lib.persistence.load_model`)."""
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        return cls(**config)

    def _check_dtype(self, x: torch.Tensor, name: str = "x") -> None:
        dtype = self.scaling.log_scale.dtype
        if x.dtype != dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but the model's parameters are {dtype}; "
                             f"convert one of them (e.g. {name}.to({dtype}) or model.to({x.dtype}))")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(z, log_det)``: the latent :math:`z = f(x)` and :math:`\log|\det\nabla_x f(x)|`
        as a ``(batch,)`` tensor (the same for every point: only the scaling changes volume)."""
        _check_flow_input(x, self.dim)
        self._check_dtype(x)
        y = x
        for layer in self.couplings:
            y = layer(y)
        z = self.scaling(y)
        return z, self.scaling.log_det().expand(x.shape[0])

    def curvature_layers(self) -> list[nn.Module]:
        r"""The layers of the energy :math:`\tfrac12\|f(x)\|^2` for the one-sweep Hessian
        estimators of :mod:`ssm_lib.curvature` (CP, Approx BP): the couplings, the scaling and
        :class:`~ssm_lib.curvature.HalfSquaredNorm`. It differs from :meth:`energy` by the
        constant :math:`\tfrac d2\log 2\pi - \sum_i\lambda_i`, which has no gradient or
        Hessian in :math:`x`, so the score-matching losses built on it are those of
        :meth:`energy`."""
        return [*self.couplings, self.scaling, HalfSquaredNorm()]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`x = f^{-1}(z)`."""
        _check_flow_input(z, self.dim, "z")
        self._check_dtype(z, "z")
        y = self.scaling.inverse(z)
        for layer in reversed(self.couplings):
            y = layer.inverse(y)
        return y

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\log p_\theta(x) = -\tfrac12\|f(x)\|^2 - \tfrac d2\log 2\pi
        + \sum_i\lambda_i`, shape ``(batch,)``."""
        z, log_det = self(x)
        return -0.5 * (z**2).sum(1) - 0.5 * self.dim * math.log(2 * math.pi) + log_det

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`E_\theta(x) = -\log p_\theta(x)` (normalised: :math:`\log Z = 0`)."""
        return -self.log_prob(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla_x \log p_\theta(x)`, by autograd with ``create_graph`` when
        gradients are enabled (see :class:`~ssm_lib.models.EnergyScore`)."""
        _check_flow_input(x, self.dim)
        return EnergyScore(self.energy)(x)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        r"""``n`` samples :math:`f^{-1}(\tau z)`, :math:`z\sim\mathcal N(0, I)` (``temperature``
        :math:`\tau`; 1 samples the model itself)."""
        n = check_count(n, "n")
        temperature = check_number(temperature, "temperature", positive=True)
        p = self.scaling.log_scale
        check_generator(generator, p.device, what="the model")
        check_fits_in_memory(n * self.dim, p.dtype, p.device, "n", copies=4)
        z = torch.randn(n, self.dim, generator=generator, dtype=p.dtype, device=p.device)
        return self.inverse(temperature * z)
