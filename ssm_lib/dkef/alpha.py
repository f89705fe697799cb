r"""DKEF's coefficients :math:`\alpha` in closed form: the quadratic each objective induces,
its ridge solve, and its accumulation over chunks.

The score :math:`s(x) = \sum_m \alpha_m \nabla_x K(x, z_m) + \nabla\log q_0(x)` is linear in
:math:`\alpha`, so every score-matching objective is a quadratic
:math:`J(\alpha) = \tfrac12\alpha^\top G\alpha + b^\top\alpha + c` (means over the batch).
With :math:`\kappa_m = \nabla_x K(x, z_m)` and :math:`g_0 = \nabla\log q_0 = -x/\sigma_0^2`:

* exact SM (:func:`exact_system`): :math:`G = \mathbb E[\sum_i \kappa_{m,i}\kappa_{m',i}]`,
  :math:`b_m = \mathbb E[\kappa_m^\top g_0 + \operatorname{tr}\nabla_x^2 K(x, z_m)]`,
  :math:`c = \mathbb E[\tfrac12\|g_0\|^2] - d/\sigma_0^2`;
* SSM (:func:`ssm_system`): :math:`\kappa_m` replaced by :math:`v^\top\kappa_m` in :math:`G`
  and :math:`b`, the trace by :math:`v^\top\nabla_x^2 K v` (Rademacher :math:`v`);
* SSM-VR (:func:`ssm_vr_system`): exact SM's :math:`G`, the trace by
  :math:`v^\top\nabla_x^2 K v`;
* DSM (:func:`dsm_system`): at :math:`\tilde x = x + \sigma z`, with :math:`g_0 + z/\sigma`
  for :math:`g_0` and no trace;
* DSM weighted by :math:`\sigma^4` (:func:`dsm_sigma4_system`, the objective ``"dsm_sigma4"``):
  DSM's :math:`(G, b, c)` times :math:`\sigma^4`, so that the ridge solve is
  :math:`(\sigma^4 G + \lambda I)\alpha = -\sigma^4 b`, i.e.
  :math:`(G + \lambda\sigma^{-4} I)\alpha = -b`: the same :math:`\lambda` regularises
  :math:`\sigma^{-4}` times more strongly than under ``"dsm"`` (the scaling of Song et al.'s
  code for DKEF);
* CP and Approx BP (:func:`cp_system`, :func:`approx_bp_system`): the trace by their
  estimates of the Hessian's diagonal (:mod:`ssm_lib.curvature`).

Which builder an objective uses is recorded in its entry of
:data:`ssm_lib.losses.OBJECTIVES` (``alpha_system``); an objective without one has no closed
form. The ridge-regularised minimiser is :math:`\alpha = -(G + \lambda I)^{-1} b`
(:func:`solve_alpha`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .._checks import check_count, check_finite, check_flag, check_generator, check_number
from ..curvature import record_forward, sweep_approx_bp, sweep_cp
from ..losses import OBJECTIVES
from ..projections import sample_projections

if TYPE_CHECKING:
    from .model import DKEF

__all__ = [
    "accumulate_system", "alpha_system", "approx_bp_system", "closed_form_objectives", "cp_system",
    "dsm_sigma4_system", "dsm_system", "exact_system", "exact_system_autograd", "solve_alpha", "ssm_system",
    "ssm_vr_system",
]

System = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def closed_form_objectives() -> tuple[str, ...]:
    """The names in :data:`ssm_lib.losses.OBJECTIVES` under which DKEF's alpha has a closed form."""
    return tuple(name for name, spec in OBJECTIVES.items() if spec.alpha_system is not None)


def check_objective(objective: object) -> str:
    names = closed_form_objectives()
    if not isinstance(objective, str) or objective not in names:
        raise ValueError(f"objective must be one of {names} (those of ssm_lib.losses.OBJECTIVES with a "
                         f"closed-form alpha), got {objective!r}")
    return objective


def _check_model(model: object) -> None:
    from .model import DKEF  # here: model.py imports this module

    if not isinstance(model, DKEF):
        raise ValueError(f"model must be a ssm_lib.dkef.DKEF, got {type(model).__name__}")


def _mean_system(dk: torch.Tensor, g0: torch.Tensor, trace: torch.Tensor, c: torch.Tensor) -> System:
    r""":math:`G = \mathbb E[\sum_i \kappa_{m,i}\kappa_{m',i}]` and
    :math:`b = \mathbb E[\kappa^\top g_0 + \text{trace}]` (means over the batch)."""
    n = dk.shape[0]
    G = torch.einsum("bmd,bnd->mn", dk, dk) / n
    b = ((dk * g0.unsqueeze(1)).sum(-1) + trace).mean(0)
    return G, b, c


def exact_system(model: DKEF, x: torch.Tensor, *, generator: torch.Generator | None = None,
                 sigma: float | None = None, create_graph: bool = True) -> System:
    """Exact SM's quadratic; the kernel's gradients and Laplacians in closed form
    (:meth:`DKEF.kernel_derivatives`: forward mode through the feature networks, no
    second-order autograd), or, for feature networks of other layers, by :math:`d` backward
    passes, vectorised."""
    if not model.forward_derivatives_supported():
        return exact_system_autograd(model, x, create_graph=create_graph)
    d, var = model.dim, model.base_std**2
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        _, dk, lap = model.kernel_derivatives(x)
        g0 = -x / var
        return _mean_system(dk, g0, lap, (0.5 * (g0 * g0).sum(-1)).mean() - d / var)


def exact_system_autograd(model: DKEF, x: torch.Tensor, *, create_graph: bool = True) -> System:
    """Exact SM's quadratic with the trace by :math:`d` backward passes through the kernel's
    gradient graph, vectorised (any feature network)."""
    n, d, var = x.shape[0], model.dim, model.base_std**2
    xe, _, dk = model.kernel_grads(x)
    g0 = -x / var
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    basis = eye.reshape(d, 1, 1, d).expand(d, n, model.n_inducing, d)
    (h,) = torch.autograd.grad(dk, xe, basis, create_graph=create_graph, retain_graph=True,
                               is_grads_batched=True)
    trace = torch.einsum("inmi->nm", h)
    return _mean_system(dk, g0, trace, (0.5 * (g0 * g0).sum(-1)).mean() - d / var)


def _sliced_system(model: DKEF, x: torch.Tensor, generator: torch.Generator | None, create_graph: bool,
                   variance_reduction: bool) -> System:
    n, var = x.shape[0], model.base_std**2
    xe, _, dk = model.kernel_grads(x)
    g0 = -x / var
    v = sample_projections("rademacher", x.shape, generator=generator, dtype=x.dtype, device=x.device)
    dkv = (dk * v.unsqueeze(1)).sum(-1)  # (n, M)
    (h,) = torch.autograd.grad(dkv.sum(), xe, create_graph=create_graph, retain_graph=True)
    vhv = (h * v.unsqueeze(1)).sum(-1)
    vv = (v * v).sum(-1)
    if variance_reduction:
        return _mean_system(dk, g0, vhv, (0.5 * (g0 * g0).sum(-1) - vv / var).mean())
    g0v = (g0 * v).sum(-1)
    G = dkv.T @ dkv / n
    b = (dkv * g0v.unsqueeze(1) + vhv).mean(0)
    return G, b, (0.5 * g0v**2 - vv / var).mean()


def ssm_system(model: DKEF, x: torch.Tensor, *, generator: torch.Generator | None = None,
               sigma: float | None = None, create_graph: bool = True) -> System:
    """SSM's quadratic (one Rademacher direction per point)."""
    return _sliced_system(model, x, generator, create_graph, variance_reduction=False)


def ssm_vr_system(model: DKEF, x: torch.Tensor, *, generator: torch.Generator | None = None,
                  sigma: float | None = None, create_graph: bool = True) -> System:
    """SSM-VR's quadratic (one Rademacher direction per point)."""
    return _sliced_system(model, x, generator, create_graph, variance_reduction=True)


def dsm_system(model: DKEF, x: torch.Tensor, *, generator: torch.Generator | None = None,
               sigma: float | None = None, create_graph: bool = True) -> System:
    r"""DSM's quadratic, :math:`\tfrac12\|s(\tilde x) + z/\sigma\|^2`."""
    if sigma is None:
        raise ValueError("sigma: objective 'dsm' needs a noise level sigma")
    sigma = check_number(sigma, "sigma", positive=True)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    xx = x + sigma * z
    _, _, dk = model.kernel_grads(xx)
    t = -xx / model.base_std**2 + z / sigma
    G = torch.einsum("bmd,bnd->mn", dk, dk) / x.shape[0]
    b = (dk * t.unsqueeze(1)).sum(-1).mean(0)
    return G, b, (0.5 * (t * t).sum(-1)).mean()


def dsm_sigma4_system(model: DKEF, x: torch.Tensor, *, generator: torch.Generator | None = None,
                      sigma: float | None = None, create_graph: bool = True) -> System:
    r"""The quadratic of :math:`\tfrac12\sigma^4\|s(\tilde x) + z/\sigma\|^2` (DSM with the
    weight :math:`\sigma^4`, ``sigma_weight_power=4``): :func:`dsm_system`'s
    :math:`(G, b, c)` times :math:`\sigma^4` (same draws). The minimiser of the quadratic
    alone is unchanged; with the ridge it is :math:`-(G + \lambda\sigma^{-4}I)^{-1}b`."""
    G, b, c = dsm_system(model, x, generator=generator, sigma=sigma, create_graph=create_graph)
    weight = float(sigma) ** 4
    return weight * G, weight * b, weight * c


def _curvature_system(model: DKEF, x: torch.Tensor, method: str, generator: torch.Generator | None,
                      create_graph: bool) -> System:
    # the sweep needs no autograd of its own: without create_graph no graph is recorded at all
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        return _curvature_system_body(model, x, method, generator)


def _curvature_system_body(model: DKEF, x: torch.Tensor, method: str, generator: torch.Generator | None
                           ) -> System:
    d, var = model.dim, model.base_std**2
    w = model.kernel_weights()
    dk, trace = 0, 0
    for j, (phi, kernel) in enumerate(model.kernel_layers()):
        # the sweep of hessian_diagonal([phi, kernel], x): one output channel per inducing point,
        # the kernel layer's identity seed applied elementwise (no dense (batch, M, M) identity)
        u, tape = record_forward(phi, x.detach())
        k = kernel(u)
        if method == "approx_bp":
            g, h = sweep_approx_bp(tape, *kernel.identity_approx_bp(u, k))
        else:
            g, s_re, s_im = sweep_cp(tape, *kernel.identity_cp(u, k, generator), generator)
            h = s_re * s_re - s_im * s_im
        dk, trace = dk + w[j] * g, trace + w[j] * h.sum(-1)
    g0 = -x / var
    return _mean_system(dk, g0, trace, (0.5 * (g0 * g0).sum(-1)).mean() - d / var)


def cp_system(model: DKEF, x: torch.Tensor, *, generator: torch.Generator | None = None,
              sigma: float | None = None, create_graph: bool = True) -> System:
    """The quadratic with the trace estimated by curvature propagation."""
    return _curvature_system(model, x, "cp", generator, create_graph)


def approx_bp_system(model: DKEF, x: torch.Tensor, *, generator: torch.Generator | None = None,
                     sigma: float | None = None, create_graph: bool = True) -> System:
    """The quadratic with the trace estimated by approximate backpropagation."""
    return _curvature_system(model, x, "approx_bp", generator, create_graph)


def alpha_system(model: DKEF, x: torch.Tensor, objective: str, *, generator: torch.Generator | None = None,
                 sigma: float | None = None, create_graph: bool = True) -> System:
    r"""The quadratic :math:`J(\alpha) = \tfrac12\alpha^\top G\alpha + b^\top\alpha + c` that
    ``objective`` induces on the batch ``x``, by the builder its registry entry names. Returns
    ``(G, b, c)``, detached when ``create_graph=False``."""
    builder = OBJECTIVES[check_objective(objective)].alpha_system
    create_graph = check_flag(create_graph, "create_graph")
    _check_model(model)
    model._check_x(x)
    check_generator(generator, x.device, "x")
    with torch.enable_grad():
        G, b, c = builder(model, x, generator=generator, sigma=sigma, create_graph=create_graph)
    if not create_graph:
        G, b, c = G.detach(), b.detach(), c.detach()
    return G, b, c


def check_system(G: object, b: object) -> None:
    """``G`` must be a square floating tensor ``(M, M)`` and ``b`` a tensor ``(M,)`` of its dtype."""
    if not isinstance(G, torch.Tensor) or G.dim() != 2 or G.shape[0] != G.shape[1] or G.shape[0] < 1:
        raise ValueError("G must be a square tensor of shape (M, M), got "
                         f"{tuple(G.shape) if isinstance(G, torch.Tensor) else type(G).__name__}")
    if not G.is_floating_point():
        raise ValueError(f"G must have a floating dtype, got {G.dtype}")
    m = G.shape[0]
    if not isinstance(b, torch.Tensor) or tuple(b.shape) != (m,):
        raise ValueError(f"b must be a tensor of shape ({m},) to match G {tuple(G.shape)}, got "
                         f"{tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__}")
    if b.dtype != G.dtype:
        raise ValueError(f"b has dtype {b.dtype} but G has {G.dtype}")


def _check_ridge(ridge: object) -> None:
    if isinstance(ridge, torch.Tensor):
        if ridge.numel() != 1 or not ridge.is_floating_point():
            raise ValueError(f"ridge must be a number >= 0 or a one-element floating tensor, got a "
                             f"{ridge.dtype} tensor of shape {tuple(ridge.shape)}")
        if not bool((torch.isfinite(ridge) & (ridge >= 0)).all()):
            raise ValueError(f"ridge must be a finite number >= 0, got {ridge.item()!r}")
        return
    if check_number(ridge, "ridge") < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")


def solve_alpha(G: torch.Tensor, b: torch.Tensor, ridge: torch.Tensor | float) -> torch.Tensor:
    r""":math:`\alpha = -(G + \lambda I)^{-1} b`: ``G`` ``(M, M)``, ``b`` ``(M,)``, ``ridge``
    :math:`\lambda` a finite number >= 0 (or a one-element tensor of one); ``ValueError``
    otherwise."""
    check_system(G, b)
    _check_ridge(ridge)
    return _solve(G, b, ridge)


def _solve(G: torch.Tensor, b: torch.Tensor, ridge: torch.Tensor | float) -> torch.Tensor:
    eye = torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
    return -torch.linalg.solve(G + ridge * eye, b)


def accumulate_system(model: DKEF, x: torch.Tensor, objective: str, *,
                      generator: torch.Generator | None = None, sigma: float | None = None,
                      chunk: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(G, b)`` over all of ``x``, detached, ``chunk`` rows at a time: the chunks' means
    weighted by their sizes, :math:`G = \sum_k n_k G_k / \sum_k n_k` (so that an uneven last
    chunk counts by its rows). ``x``: a finite ``(n, d)`` tensor, ``n >= 1``."""
    chunk = check_count(chunk, "chunk")
    _check_model(model)
    model._check_x(x)
    check_finite(x, "x")
    G = b = 0
    for start in range(0, x.shape[0], chunk):
        xb = x[start:start + chunk]
        g_, b_, _ = alpha_system(model, xb, objective, generator=generator, sigma=sigma, create_graph=False)
        G, b = G + g_ * xb.shape[0], b + b_ * xb.shape[0]
    return G / x.shape[0], b / x.shape[0]
