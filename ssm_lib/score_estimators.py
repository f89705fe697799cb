r"""Score estimators for distributions known only through samples, and the entropy-gradient
surrogate they serve (Song et al. 2019, Section 4.2 and the VAE/WAE experiments of Section 5.2).

An *implicit* distribution :math:`q` can be sampled (:math:`z = g_\phi(\epsilon)`) but has no
density. Its score :math:`\nabla_z \log q(z)` can still be estimated from samples, and the score
is all that the gradient of its entropy needs (see :func:`entropy_surrogate`).

One interface, :class:`ScoreEstimator`:

* ``estimator.update(samples, context=None)`` learns from a fresh batch (a training step of a
  score network; nothing for the kernel estimators) and returns its loss or ``None``;
* ``estimator(samples, context=None)`` returns the estimated score at ``samples``.

``samples`` has shape ``(*batch, M, d)``: ``batch`` groups of ``M`` i.i.d. draws of a
``d``-dimensional variable, each group from its own distribution (e.g. :math:`q_\phi(z|x_b)`
for data point :math:`x_b`). ``context`` (shape ``(*batch, c)``, optional) is what the
distribution is conditioned on; only the network estimator uses it. Kernel estimators treat
each group separately, using the other ``M - 1`` draws of the group.

Estimators:

* :class:`SteinScoreEstimator`: the Stein gradient estimator (Li & Turner 2018, Eq. 9).
* :class:`SpectralScoreEstimator`: the spectral Stein gradient estimator (Shi, Sun & Zhu
  2018, Eqs. 13-16).
* :class:`NetworkScoreEstimator`: a score network :math:`h(z; x)` trained by sliced score
  matching with variance reduction (SSM-VR, Song et al. 2019, Eq. 10 with the second term
  replaced by :math:`\tfrac12\|h\|^2`) on the samples.

Kernel estimators use the RBF kernel :math:`k(z, z') = \exp(-\|z - z'\|^2 / (2 h^2))` with the
bandwidth :math:`h` from :func:`median_bandwidth` unless one is given. Their estimates are
computed from detached samples and carry no gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ._checks import (
    check_choice,
    check_count,
    check_fits_in_memory,
    check_flag,
    check_generator,
    check_number,
)
from ._tensor_ops import pairwise_sq_dist
from .losses import sliced_score_matching
from .models import mlp
from .projections import PROJECTIONS
from .training import DivergenceMonitor, train_loop

__all__ = [
    "NetworkScoreEstimator",
    "ConditionalScoreMLP",
    "ScoreEstimator",
    "SpectralScoreEstimator",
    "SteinScoreEstimator",
    "entropy_surrogate",
    "median_bandwidth",
    "rbf_gram",
]


def _check_samples(samples: object, name: str = "samples", min_points: int = 1, *,
                   gram: bool = False) -> torch.Tensor:
    if not isinstance(samples, torch.Tensor) or samples.dim() < 2 or not samples.is_floating_point():
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"{name} must be a floating-point tensor of shape (*batch, M, d), got {got}")
    if samples.shape[-2] < min_points or samples.shape[-1] < 1:
        raise ValueError(f"{name} must hold at least {min_points} samples of dimension >= 1 per "
                         f"group (shape (*batch, M, d)), got {tuple(samples.shape)}")
    if gram:  # (*batch, M, M) kernel matrices and their temporaries must fit: refused at once
        m = samples.shape[-2]
        check_fits_in_memory(samples[..., 0].numel() * m, samples.dtype, samples.device, name, copies=4)
    if not torch.isfinite(samples).all():
        raise ValueError(f"{name} must be finite")
    return samples


def _check_linalg_dtype(samples: torch.Tensor, name: str = "samples") -> torch.Tensor:
    """The kernel estimators solve / eigendecompose Gram matrices: float32 or float64 only
    (torch has no half-precision linear algebra)."""
    if samples.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64 (the Gram matrix is solved or "
                         f"eigendecomposed, which torch does not do in {samples.dtype}), got {samples.dtype}")
    return samples


def _pairwise_sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_j||^2`` ``(*, M, N)`` from inner products, centred and clamped, exact zeros on
    the diagonal when ``a is b`` (:func:`ssm_lib._tensor_ops.pairwise_sq_dist`)."""
    return pairwise_sq_dist(a, b)


def median_bandwidth(samples: torch.Tensor, *, with_diagonal: bool = False) -> torch.Tensor:
    r"""The median heuristic for the RBF bandwidth, one :math:`h` per group of
    ``samples (*batch, M, d)``; shape ``batch``.

    * ``with_diagonal=False`` (default): the median of the :math:`M(M-1)/2` distances
      :math:`\|z_i - z_j\|`, :math:`i < j` (for an even number of pairs, the midpoint of the two
      middle distances).
    * ``with_diagonal=True``: the :math:`\lfloor M^2/2 \rfloor`-th largest of all :math:`M^2`
      distances :math:`\|z_i - z_j\|`, :math:`i, j = 1 \dots M`, the :math:`M` zeros of
      :math:`i = j` and both orders of every pair included. This is the rule of the reference
      code of Song et al. (2019) (``heuristic_kernel_width`` in its
      ``models/kernel_score_estimators.py``); it sits at the quantile
      :math:`\approx \tfrac12 - \tfrac1{2(M-1)}` of the pairwise distances, slightly below
      the median.

    The ranks are found on the squared distances of ``_pairwise_sq_dist`` (one ``(M, M)``
    matrix per group, no ``(M, M, d)`` differences); the distances of the selected pairs are
    then recomputed from the differences of the two samples, so the result carries no
    cancellation error. Falls back to 1 for a group whose selected distance is 0 (e.g. all
    samples equal).
    """
    samples = _check_samples(samples, min_points=2, gram=True).detach()
    with_diagonal = check_flag(with_diagonal, "with_diagonal")
    m, d = samples.shape[-2:]
    batch = samples.shape[:-2]
    z = samples.reshape(-1, m, d)
    sq = _pairwise_sq_dist(z, z)
    rows = torch.arange(z.shape[0], device=z.device)
    if with_diagonal:
        flat = sq.reshape(z.shape[0], m * m)
    else:
        lower = torch.ones(m, m, dtype=torch.bool, device=z.device).tril()
        flat = sq.masked_fill_(lower, math.inf).reshape(z.shape[0], m * m)   # pairs i < j, then +inf

    def ranked(k: int) -> torch.Tensor:   # the distance of rank k (0-based, ascending)
        idx = flat.kthvalue(k + 1, dim=-1).indices
        diff = z[rows, idx // m] - z[rows, idx % m]
        return (diff * diff).sum(-1).sqrt()

    if with_diagonal:
        n = m * m
        h = ranked(n - n // 2)             # the (n // 2)-th largest of n values
    else:
        n_pairs = m * (m - 1) // 2
        lo, hi = (n_pairs - 1) // 2, n_pairs // 2
        h = ranked(lo) if lo == hi else torch.lerp(ranked(lo), ranked(hi), 0.5)
    h = h.reshape(batch)
    return torch.where(h > 0, h, torch.ones_like(h))


def rbf_gram(a: torch.Tensor, b: torch.Tensor, bandwidth: torch.Tensor) -> torch.Tensor:
    r""":math:`K_{ij} = \exp(-\|a_i - b_j\|^2 / (2h^2))` for ``a (*, M, d)``, ``b (*, N, d)`` and
    ``bandwidth`` :math:`h` of shape ``batch`` (or a scalar): shape ``(*, M, N)``. ``a`` and
    ``b`` are floating tensors of one dtype and device with the same ``d``."""
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2 or not t.is_floating_point():
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a floating-point tensor of shape (*, M, d), got {got}")
    if a.shape[-1] != b.shape[-1] or a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"a and b must have the same last dimension d, dtype and device, got a "
                         f"{tuple(a.shape)} {a.dtype} on {a.device} and b {tuple(b.shape)} {b.dtype} "
                         f"on {b.device}")
    check_fits_in_memory(a[..., 0].numel() * b.shape[-2], a.dtype, a.device, "a, b (their Gram matrix)")
    h = torch.as_tensor(bandwidth, dtype=a.dtype, device=a.device)
    return torch.exp(-_pairwise_sq_dist(a, b) / (2 * h[..., None, None] ** 2))


_Bandwidth = float | Callable[[torch.Tensor], torch.Tensor] | None


def _check_bandwidth(bandwidth: object) -> _Bandwidth:
    if bandwidth is None or callable(bandwidth):
        return bandwidth
    return check_number(bandwidth, "bandwidth", positive=True)


def _bandwidth(samples: torch.Tensor, bandwidth: _Bandwidth) -> torch.Tensor:
    if bandwidth is None:
        return median_bandwidth(samples)
    if callable(bandwidth):
        h = bandwidth(samples)
        if (not isinstance(h, torch.Tensor) or h.shape != samples.shape[:-2]
                or not bool(torch.isfinite(h).all() and (h > 0).all())):
            raise ValueError(f"bandwidth(samples) must return positive finite bandwidths of shape "
                             f"{tuple(samples.shape[:-2])} (one per group), got "
                             f"{getattr(h, 'shape', type(h).__name__)}")
        return h.to(samples.dtype)
    return torch.full(samples.shape[:-2], bandwidth, dtype=samples.dtype, device=samples.device)


class ScoreEstimator:
    """Base class: ``update(samples, context)`` then ``estimator(samples, context)``."""

    uses_context = False

    @property
    def learns(self) -> bool:
        """Whether :meth:`update` learns from samples: ``True`` for a subclass that overrides
        it (a score network), ``False`` for the kernel estimators, which need no training (the
        objectives of :mod:`ssm_lib.implicit_vae` then draw no samples for it)."""
        return type(self).update is not ScoreEstimator.update

    def update(self, samples: torch.Tensor, context: torch.Tensor | None = None) -> float | None:
        """Learn from ``samples (*batch, M, d)``; returns the training loss, or ``None`` for
        estimators that need no training."""
        _check_samples(samples)
        return None

    def __call__(self, samples: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The estimated score :math:`\\nabla_z \\log q(z)` at ``samples``; same shape."""
        raise NotImplementedError


class SteinScoreEstimator(ScoreEstimator):
    r"""The Stein gradient estimator (Li & Turner 2018, Eq. 9).

    Stein's identity with the kernel features :math:`k(\cdot, z_j)` as test functions,
    :math:`\mathbb E_q[k(z, z_j)\nabla_z\log q(z) + \nabla_z k(z, z_j)] = 0`, estimated by the
    :math:`M` samples, reads :math:`K G \approx -\langle\nabla, K\rangle`, where
    :math:`G_{i,:} = \nabla\log q(z_i)^\top` and
    :math:`\langle\nabla, K\rangle_{i,:} = \sum_j \nabla_{z_j} k(z_i, z_j)^\top
    = \sum_j k(z_i, z_j)\,(z_i - z_j)^\top / h^2` for the RBF kernel. Ridge regularisation
    gives the estimate at the samples,

    .. math::

        \hat G = -(K + \eta I)^{-1}\langle\nabla, K\rangle .

    Args:
        eta: the ridge :math:`\eta > 0` added to the Gram matrix. The default 0.001 is the
            paper's code's value, kept so that the comparison is the paper's; on a few hundred
            samples it can be worse than predicting zero (relative squared error about 1 in 2
            dimensions and about 2 in 8, for 200 draws of a standard Gaussian), while :math:`\eta` between 0.1
            and 1 gives about 0.1 to 0.3 there. Choose it on held-out samples in your own use.
        bandwidth: a fixed RBF bandwidth :math:`h`; a function of the samples
            ``(*batch, M, d)`` returning one bandwidth per group (shape ``batch``), e.g.
            ``functools.partial(median_bandwidth, with_diagonal=True)``; ``None``:
            :func:`median_bandwidth`.
    """

    def __init__(self, eta: float = 1e-3, bandwidth: _Bandwidth = None):
        self.eta = check_number(eta, "eta", positive=True)
        self.bandwidth = _check_bandwidth(bandwidth)

    def __call__(self, samples: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        z = _check_linalg_dtype(_check_samples(samples, min_points=2, gram=True)).detach()
        m = z.shape[-2]
        h = _bandwidth(z, self.bandwidth)
        k = rbf_gram(z, z, h)
        # sum_j k(z_i, z_j)(z_i - z_j) / h^2 = (rowsum(K) z_i - K z) / h^2: matrix products, no
        # (M, M, d) differences; shift-invariant, so computed on centred samples (less cancellation)
        zc = z - z.mean(-2, keepdim=True)
        grad_k = (k.sum(-1, keepdim=True) * zc - k @ zc) / h[..., None, None] ** 2
        eye = torch.eye(m, dtype=z.dtype, device=z.device)
        return -torch.linalg.solve(k + self.eta * eye, grad_k)


class SpectralScoreEstimator(ScoreEstimator):
    r"""The spectral Stein gradient estimator (Shi, Sun & Zhu 2018, Eqs. 13-16).

    The score is expanded in the eigenfunctions :math:`\psi_j` of the kernel's integral
    operator under :math:`q`, :math:`\nabla\log q = \sum_j \beta_j \psi_j` with
    :math:`\beta_j = -\mathbb E_q[\nabla\psi_j]` (integration by parts). With the eigenpairs
    :math:`K u_j = \lambda_j u_j` of the Gram matrix of the :math:`M` samples, the Nyström
    method gives

    .. math::

        \hat\psi_j(z) = \frac{\sqrt M}{\lambda_j}\sum_{m=1}^M k(z, z_m)\, u_{jm},
        \qquad
        \hat\beta_j = -\frac1M\sum_{i=1}^M \nabla\hat\psi_j(z_i),

    and the estimate :math:`\hat g(z) = \sum_{j=1}^J \hat\beta_j \hat\psi_j(z)` keeps the
    :math:`J` eigenfunctions of largest eigenvalue, which both truncates the noisy tail of the
    spectrum and lets the estimate be evaluated at any point (out of sample).

    Args:
        n_eigen: the number :math:`J` of eigenfunctions kept; ``None``: the smallest number whose
            eigenvalues hold a share ``eigen_threshold`` of the trace, per group.
        eigen_threshold: that share, in (0, 1] (the paper's code: 0.99).
        eta: a ridge :math:`\eta \ge 0` added to the Gram matrix before the eigendecomposition
            (the paper's code: none).
        bandwidth: a fixed RBF bandwidth :math:`h`; a function of the samples
            ``(*batch, M, d)`` returning one bandwidth per group (shape ``batch``), e.g.
            ``functools.partial(median_bandwidth, with_diagonal=True)``; ``None``:
            :func:`median_bandwidth`.
    """

    def __init__(self, n_eigen: int | None = None, eigen_threshold: float = 0.99, eta: float = 0.0,
                 bandwidth: _Bandwidth = None):
        self.n_eigen = None if n_eigen is None else check_count(n_eigen, "n_eigen")
        if (isinstance(eigen_threshold, bool) or not isinstance(eigen_threshold, (int, float))
                or not 0 < eigen_threshold <= 1):
            raise ValueError(f"eigen_threshold must be a number in (0, 1], got {eigen_threshold!r}")
        self.eigen_threshold = float(eigen_threshold)
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta) or eta < 0:
            raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
        self.eta = float(eta)
        self.bandwidth = _check_bandwidth(bandwidth)

    def __call__(self, samples: torch.Tensor, context: torch.Tensor | None = None, *,
                 queries: torch.Tensor | None = None) -> torch.Tensor:
        """The estimate at ``queries (*batch, N, d)`` (default: at ``samples`` themselves)."""
        z = _check_linalg_dtype(_check_samples(samples, min_points=2, gram=True)).detach()
        x = z if queries is None else _check_samples(queries, "queries").detach()
        if x.shape[:-2] != z.shape[:-2] or x.shape[-1] != z.shape[-1]:
            raise ValueError(f"queries must have shape (*batch, N, d) with (*batch, d) of samples "
                             f"{tuple(z.shape)}, got {tuple(x.shape)}")
        if x.dtype != z.dtype or x.device != z.device:
            raise ValueError(f"queries must have the dtype and device of samples ({z.dtype} on {z.device}), "
                             f"got {x.dtype} on {x.device}")
        m = z.shape[-2]
        h = _bandwidth(z, self.bandwidth)
        h2 = h[..., None, None] ** 2
        k = rbf_gram(z, z, h)
        k_reg = k + self.eta * torch.eye(m, dtype=z.dtype, device=z.device) if self.eta > 0 else k
        lam, u = torch.linalg.eigh(k_reg)                    # ascending
        lam, u = lam.flip(-1), u.flip(-1)                    # descending: column j is u_j
        if self.n_eigen is not None:
            if self.n_eigen > m:
                raise ValueError(f"n_eigen = {self.n_eigen} is more than the {m} samples per group: "
                                 f"at most M = {m} eigenfunctions exist")
            keep = torch.arange(m, device=z.device) < self.n_eigen
            keep = keep.expand(lam.shape)
        else:
            share = lam.clamp_min(0) / lam.clamp_min(0).sum(-1, keepdim=True)
            before = share.cumsum(-1) - share                # share held by the larger ones
            keep = before < self.eigen_threshold
        keep = keep & (lam > 0)
        inv_lam = torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), 0.0)
        # grad_z k(z, z_m) at z = z_i is k(z_i, z_m)(z_m - z_i) / h^2; mean over i:
        # mean_i [k(z_i, z_m) z_m - k(z_i, z_m) z_i] / h^2, an (M, d) matrix over m
        # (the ridge is no part of the kernel's derivative); shift-invariant, so on centred samples
        zc = z - z.mean(-2, keepdim=True)
        grad_mean = (k.sum(-2).unsqueeze(-1) * zc - k.transpose(-1, -2) @ zc) / (m * h2)
        beta = -math.sqrt(m) * inv_lam.unsqueeze(-1) * (u.transpose(-1, -2) @ grad_mean)  # (J, d)
        psi = math.sqrt(m) * (rbf_gram(x, z, h) @ u) * inv_lam.unsqueeze(-2)              # (N, J)
        return psi @ beta


class ConditionalScoreMLP(nn.Module):
    r"""A score network :math:`h_\theta(z; x)` for a distribution over :math:`z\in\mathbb R^d`
    conditioned on :math:`x\in\mathbb R^c` (``context_dim = 0``: unconditional): an MLP on the
    concatenation :math:`[z, x]` with ``depth`` hidden layers of width ``hidden``."""

    def __init__(self, dim: int, context_dim: int = 0, hidden: int = 256, depth: int = 2,
                 activation: str = "tanh"):
        super().__init__()
        self.dim = check_count(dim, "dim")
        self.context_dim = context_dim = check_count(context_dim, "context_dim", 0)
        self.net = mlp(dim + context_dim, dim, hidden, depth, activation)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``h(z; context)`` for ``z (..., dim)`` and ``context (..., context_dim)`` (``None``
        when ``context_dim = 0``), both in the dtype of the network's parameters."""
        dtype = self.net[0].weight.dtype
        for name, t in (("z", z), ("context", context)):
            if t is None:
                continue
            if not isinstance(t, torch.Tensor) or t.dim() < 1:
                raise ValueError(f"{name} must be a torch.Tensor of shape (..., "
                                 f"{self.dim if name == 'z' else self.context_dim}), got {type(t).__name__}")
            if t.dtype != dtype:
                raise ValueError(f"{name} has dtype {t.dtype} but the network's parameters are {dtype}; "
                                 f"convert one of them (e.g. {name}.to({dtype}) or model.to({t.dtype}))")
        if z.shape[-1] != self.dim:
            raise ValueError(f"z must have last dimension {self.dim}, got shape {tuple(z.shape)}")
        if not self.context_dim and context is not None:
            raise ValueError(f"context was given but this network is unconditional (context_dim = 0); "
                             f"build it with context_dim = {context.shape[-1]} or pass context=None")
        if self.context_dim:
            if context is None or context.shape[-1] != self.context_dim or context.shape[:-1] != z.shape[:-1]:
                got = None if context is None else tuple(context.shape)
                raise ValueError(f"context must have shape {(*z.shape[:-1], self.context_dim)}, got {got}")
            z = torch.cat([z, context], dim=-1)
        return self.net(z)


def _detached(context: object) -> object:
    return context.detach() if isinstance(context, torch.Tensor) else context


class NetworkScoreEstimator(ScoreEstimator):
    r"""A score network trained by sliced score matching with variance reduction (SSM-VR).

    Each :meth:`update` takes ``n_steps`` optimiser steps on

    .. math::

        \hat J(\theta) = \frac1n\sum_i \Big[v_i^\top \nabla_z h_\theta(z_i; x_i)\, v_i
            + \tfrac12\|h_\theta(z_i; x_i)\|^2\Big]

    (Song et al. 2019, Eq. 10 with variance reduction; one Gaussian direction per sample, as
    in the paper's VAE/WAE experiments) over the given samples, treated as data: no gradient
    flows into the samples. The paper takes one step of the score network per step of the
    model whose samples it scores.

    Args:
        model: a module called as ``model(z, context)`` (e.g. :class:`ConditionalScoreMLP`).
        optimizer: the optimiser of ``model``'s parameters.
        n_steps: optimiser steps per :meth:`update`.
        projection: distribution of the directions (``"gaussian"`` in the paper).
        generator: source of the directions.
        divergence_factor: the blow-up factor of :class:`~ssm_lib.training.DivergenceMonitor`.
    """

    uses_context = True

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, n_steps: int = 1,
                 projection: str = "gaussian", generator: torch.Generator | None = None,
                 divergence_factor: float | None = 1e8):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.model, self.optimizer = model, optimizer
        self.n_steps = check_count(n_steps, "n_steps")
        self._monitor = DivergenceMonitor(divergence_factor)
        self.projection = check_choice(projection, PROJECTIONS, "projection")
        self.generator = check_generator(generator)
        self.step = 0

    def _flatten(self, samples: torch.Tensor, context: object):
        p = next(self.model.parameters(), None) if isinstance(self.model, ConditionalScoreMLP) else None
        for name, t in (("samples", samples), ("context", context)):
            if p is not None and isinstance(t, torch.Tensor) and t.dtype != p.dtype:
                raise ValueError(f"{name} has dtype {t.dtype} but the score network's parameters are "
                                 f"{p.dtype}; convert one of them (e.g. {name}.to({p.dtype}))")
        z = samples.reshape(-1, samples.shape[-1])
        if context is None:
            return z, None
        if not isinstance(context, torch.Tensor):
            raise ValueError(f"context must be a torch.Tensor of shape (*batch, c) or None, got "
                             f"{type(context).__name__}")
        if context.dim() < 1 or context.shape[:-1] != samples.shape[:-2]:
            raise ValueError(f"context must have shape (*batch, c) with batch = {tuple(samples.shape[:-2])},"
                             f" got {tuple(context.shape)}")
        c = context.unsqueeze(-2).expand(*samples.shape[:-1], context.shape[-1])
        return z, c.reshape(-1, context.shape[-1])

    def loss(self, samples: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The SSM-VR loss of the network on ``samples`` (differentiable in its parameters)."""
        z, c = self._flatten(_check_samples(samples).detach(), _detached(context))
        return sliced_score_matching(lambda t: self.model(t, c), z, variance_reduction=True,
                                     projection=self.projection, generator=self.generator,
                                     method="backward")

    def update(self, samples: torch.Tensor, context: torch.Tensor | None = None) -> float:
        """``n_steps`` optimiser steps on the samples (a use of
        :func:`ssm_lib.training.train_loop`, whose divergence policy keeps its reference scale
        from the estimator's first step); returns the last loss. Raises
        :class:`~ssm_lib.training.TrainingDivergedError` naming the step (counted over the
        estimator's life) and the cause."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        record = train_loop(lambda step: self.loss(samples, context), params, self.optimizer, self.n_steps,
                            monitor=self._monitor, first_step=self.step + 1, progress=False,
                            what="the score network")
        self.step += self.n_steps
        return record.losses[-1]

    def __call__(self, samples: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        z, c = self._flatten(_check_samples(samples).detach(), _detached(context))
        with torch.no_grad():
            return self.model(z, c).reshape(samples.shape)


def entropy_surrogate(z: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    r"""A loss whose gradient in :math:`\phi` estimates :math:`-\nabla_\phi H[q_\phi]`.

    For a reparameterised :math:`z = g_\phi(\epsilon)` with score
    :math:`s(z) = \nabla_z \log q_\phi(z)`,

    .. math::

        \nabla_\phi H[q_\phi] = -\mathbb E_\epsilon\big[s(z)^\top \partial_\phi z\big]

    (the term :math:`\mathbb E[\partial_\phi \log q_\phi(z)]` at fixed :math:`z` is zero). So
    with the score held fixed, :math:`L = \frac1n\sum_i \mathrm{sg}[s(z_i)]^\top z_i` has
    :math:`\nabla_\phi L = -\widehat{\nabla_\phi H}`: add ``entropy_surrogate`` to a loss to
    *maximise* entropy. Its value is meaningless; only its gradient is.

    Args:
        z: samples ``(*batch, d)`` that carry the gradient to :math:`\phi`.
        score: estimated score at ``z``, same shape (detached here).

    Returns:
        The scalar :math:`\frac1n\sum \mathrm{sg}[s]^\top z`, summed over the last dimension and
        averaged over all others.
    """
    if not isinstance(z, torch.Tensor) or not isinstance(score, torch.Tensor) or z.shape != score.shape:
        raise ValueError(f"score must be a tensor of the shape of z, got "
                         f"{getattr(score, 'shape', type(score).__name__)} and {getattr(z, 'shape', None)}")
    return (score.detach() * z).sum(-1).mean()
