r"""Deep kernel exponential families (DKEF; Wenliang, Sutherland, Strathmann & Gretton 2019),
the density model of the paper's UCI and scalability experiments (Song et al. 2019, Sec. 5.1).

.. math::

    \begin{aligned}
    \log \tilde p(x) &= f(x) + \log q_0(x), \qquad
    f(x) = \sum_{m=1}^{M} \alpha_m K(x, z_m),\\
    K(x, z) &= \sum_{j=1}^{J} w_j \exp\Big(-\frac{\|\phi_j(x) - \phi_j(z)\|^2}{2 s_j}\Big),
    \end{aligned}

with trainable inducing points :math:`z_m`, one learned feature network :math:`\phi_j` per
kernel (an MLP with a linear skip connection), bandwidths :math:`s_j = 10^{\ell_j}`, mixture
weights :math:`w = \operatorname{softmax}(\eta)`, and the base density
:math:`q_0 = \mathcal N(0, \sigma_0^2 I)` (normalised, so :math:`Z = \mathbb E_{q_0}[e^{f}]`).
(:math:`s_j` plays the role of a squared bandwidth; the paper's code, following the DKEF
paper's, calls it :math:`\sigma`.)

**α in closed form.** The score :math:`s(x) = \sum_m \alpha_m \nabla_x K(x, z_m) + \nabla
\log q_0(x)` is linear in :math:`\alpha`, so every score-matching objective is a quadratic
:math:`J(\alpha) = \tfrac12\alpha^\top G\alpha + b^\top\alpha + c`. With
:math:`\kappa_m = \nabla_x K(x, z_m)` and :math:`g_0 = \nabla\log q_0`, for exact SM

.. math::

    G = \mathbb E\Big[\sum_i \kappa_{m,i}\kappa_{m',i}\Big]_{mm'},\qquad
    b_m = \mathbb E\big[\kappa_m^\top g_0 + \operatorname{tr}\nabla_x^2 K(x, z_m)\big];

SSM replaces :math:`\kappa_m` by :math:`v^\top\kappa_m` in both and the trace by
:math:`v^\top \nabla_x^2 K v`; SSM-VR keeps :math:`G` and uses :math:`v^\top\nabla^2_x K v`;
DSM evaluates at :math:`\tilde x = x + \sigma z` with :math:`g_0 + z/\sigma` for :math:`g_0`
and no trace; CP and Approx BP use their estimates of the trace (:mod:`ssm_lib.curvature`).
The ridge-regularised minimiser is :math:`\alpha = -(G + \lambda I)^{-1} b`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ._checks import check_batch, check_choice, check_count, check_number
from .curvature import SumOfBranches, hessian_diagonal, split_sqrt
from .curvature import approx_backprop_score_matching as _approx_bp_loss
from .curvature import curvature_propagation_score_matching as _cp_loss
from .losses import denoising_score_matching, exact_score_matching, sliced_score_matching
from .projections import sample_projections

#: The objectives under which DKEF's alpha has a closed form.
OBJECTIVES = ("exact", "ssm", "ssm_vr", "dsm", "cp", "approx_bp")


class GaussianKernelLayer(nn.Module):
    r"""Gaussian kernel values :math:`k_m(u) = \exp(-\|u - w_m\|^2 / (2s))` of features
    :math:`u` against fixed centres :math:`w_m` (``(M, F)``), ``(batch, F) -> (batch, M)``.
    Implements the layer protocol of :mod:`ssm_lib.curvature`: with
    :math:`d_m = u - w_m`, :math:`\nabla_u k_m = -k_m d_m/s` and
    :math:`\nabla_u^2 k_m = k_m (d_m d_m^\top/s^2 - I/s)`, whose rank-one and isotropic parts
    CP factorises separately."""

    def __init__(self, centres: torch.Tensor, bandwidth: torch.Tensor):
        super().__init__()
        self.centres, self.bandwidth = centres, bandwidth

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        diff = u.unsqueeze(-2) - self.centres
        return torch.exp(-(diff * diff).sum(-1) / (2 * self.bandwidth))

    def _parts(self, u: torch.Tensor, k: torch.Tensor):
        d = u.unsqueeze(1) - self.centres  # (batch, M, F)
        jac = -k.unsqueeze(-1) * d / self.bandwidth  # d k_m / d u
        return d, jac

    def approx_bp_backward(self, inp, out, g, h):  # noqa: ANN001 - protocol signature
        d, jac = self._parts(inp, out)
        s = self.bandwidth
        local = out.unsqueeze(-1) * (d * d / s**2 - 1 / s)  # diag of each k_m's Hessian
        g_u = torch.einsum("bkm,bmf->bkf", g, jac)
        h_u = torch.einsum("bkm,bmf->bkf", h, jac * jac) + torch.einsum("bkm,bmf->bkf", g, local)
        return g_u, h_u

    def cp_backward(self, inp, out, g, s_re, s_im, generator):  # noqa: ANN001
        d, jac = self._parts(inp, out)
        s = self.bandwidth
        c = g * out.unsqueeze(1)  # (batch, K, M): weight of k_m's Hessian
        v = _rademacher(c.shape, c, generator)
        c_pos, c_neg = split_sqrt(c)
        rank_re = torch.einsum("bkm,bmf->bkf", c_pos * v, d) / s
        rank_im = torch.einsum("bkm,bmf->bkf", c_neg * v, d) / s
        iso = -c.sum(-1, keepdim=True) / s  # (batch, K, 1): weight of the identity
        w = _rademacher(g.shape[:2] + inp.shape[-1:], c, generator)
        g_u = torch.einsum("bkm,bmf->bkf", g, jac)
        iso_pos, iso_neg = split_sqrt(iso)
        s_re = torch.einsum("bkm,bmf->bkf", s_re, jac) + rank_re + iso_pos * w
        s_im = torch.einsum("bkm,bmf->bkf", s_im, jac) + rank_im + iso_neg * w
        return g_u, s_re, s_im


class WeightedSum(nn.Module):
    r"""``(batch, M) -> (batch, 1)``: :math:`y = \sum_m c_m h_m` with a fixed (possibly
    graph-carrying) weight vector ``c``; linear, so no curvature of its own."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.weights = weights

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (h @ self.weights).unsqueeze(-1)

    def approx_bp_backward(self, inp, out, g, h):  # noqa: ANN001
        return g * self.weights, h * self.weights**2

    def cp_backward(self, inp, out, g, s_re, s_im, generator):  # noqa: ANN001
        return g * self.weights, s_re * self.weights, s_im * self.weights


def _rademacher(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    bits = torch.randint(0, 2, tuple(shape), generator=generator, device=like.device)
    return (2 * bits - 1).to(like.dtype)


def feature_network(dim: int, hidden: int = 30, *, skip: bool = True) -> nn.Module:
    """The feature map of one kernel: Linear-softplus-Linear-softplus-Linear (width
    ``hidden``), plus a bias-free linear skip connection from the input."""
    mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Softplus(), nn.Linear(hidden, hidden), nn.Softplus(),
                        nn.Linear(hidden, hidden))
    return SumOfBranches(mlp, nn.Linear(dim, hidden, bias=False)) if skip else mlp


class DKEF(nn.Module):
    r"""A deep kernel exponential family (see the module docstring).

    Args:
        inducing: initial inducing points ``(M, d)`` (the paper: random training points).
        n_kernels: number :math:`J` of kernels, each with its own feature network.
        hidden: width of the feature networks.
        log10_bandwidths: initial :math:`\ell_j` (the paper: 0, 0.5185, 1).
        base_std: :math:`\sigma_0` of the base density (the paper: 2).
        log10_lambda: initial :math:`\log_{10}\lambda` of the ridge (the paper: -2).
        train_inducing: whether the inducing points are trained.
        generator: initialises the feature networks (weights and biases
            :math:`\mathcal N(0, 1/\text{fan-in})`).

    ``alpha`` (a buffer) holds the current coefficients, set by :meth:`fit_alpha`.
    """

    def __init__(self, inducing: torch.Tensor, *, n_kernels: int = 3, hidden: int = 30,
                 log10_bandwidths: tuple[float, ...] = (0.0, 0.5185, 1.0), base_std: float = 2.0,
                 log10_lambda: float = -2.0, train_inducing: bool = True, skip: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        check_batch(inducing, "inducing")
        if inducing.dim() != 2:
            raise ValueError(f"inducing must have shape (M, d), got {tuple(inducing.shape)}")
        check_count(n_kernels, "n_kernels")
        check_count(hidden, "hidden")
        if len(log10_bandwidths) < n_kernels:
            raise ValueError(f"log10_bandwidths needs {n_kernels} values, got {log10_bandwidths!r}")
        self.base_std = check_number(base_std, "base_std", positive=True)
        self.dim = inducing.shape[1]
        self.n_inducing = inducing.shape[0]
        dtype = inducing.dtype
        self.inducing = nn.Parameter(inducing.detach().clone(), requires_grad=train_inducing)
        self.features = nn.ModuleList(feature_network(self.dim, hidden, skip=skip) for _ in range(n_kernels))
        for p in self.features.parameters():
            fan_in = p.shape[-1] if p.dim() == 2 else p.shape[0]
            with torch.no_grad():
                gen_device = generator.device if generator is not None else torch.device("cpu")
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype, device=gen_device)
                        / math.sqrt(fan_in))
        self.features.to(dtype)
        self.log10_bandwidths = nn.Parameter(torch.tensor(log10_bandwidths[:n_kernels], dtype=dtype))
        self.kernel_logits = nn.Parameter(torch.zeros(n_kernels, dtype=dtype))
        self.log10_lambda = nn.Parameter(torch.tensor(float(log10_lambda), dtype=dtype))
        self.register_buffer("alpha", torch.zeros(self.n_inducing, dtype=dtype))

    # ------------------------------------------------------------------ the density
    def _check_x(self, x: torch.Tensor) -> None:
        check_batch(x)
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}), got {tuple(x.shape)}")

    def kernel_weights(self) -> torch.Tensor:
        return torch.softmax(self.kernel_logits, 0)

    def bandwidths(self) -> torch.Tensor:
        return 10.0 ** self.log10_bandwidths

    def ridge(self) -> torch.Tensor:
        return 10.0 ** self.log10_lambda

    def kernel_matrix(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`K(x_b, z_m)`, shape ``(batch, M)``."""
        w, s = self.kernel_weights(), self.bandwidths()
        out = 0
        for j, phi in enumerate(self.features):
            u, c = phi(x), phi(self.inducing)
            out = out + w[j] * GaussianKernelLayer(c, s[j])(u)
        return out

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        var = self.base_std**2
        return -0.5 * (x * x).sum(-1) / var - 0.5 * self.dim * math.log(2 * math.pi * var)

    def unnormalized_log_prob(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\log\tilde p(x) = f(x) + \log q_0(x)` (``alpha``: default the stored one)."""
        self._check_x(x)
        a = self.alpha if alpha is None else alpha
        return self.kernel_matrix(x) @ a + self.base_log_prob(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The energy :math:`E = -\\log\\tilde p` ``(batch,)``."""
        return -self.unnormalized_log_prob(x)

    def score(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\nabla_x \log\tilde p(x)`; second derivatives flow (for the losses)."""
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            xs = x if x.requires_grad else x.detach().requires_grad_(True)
            lp = self.unnormalized_log_prob(xs, alpha)
            (g,) = torch.autograd.grad(lp.sum(), xs, create_graph=create)
        return g

    def with_alpha(self, alpha: torch.Tensor) -> DKEFWithAlpha:
        """A view of the model with coefficients ``alpha`` (graph-carrying), for the losses."""
        return DKEFWithAlpha(self, alpha)

    # ------------------------------------------------------------------ curvature protocol
    def energy_hessian_terms(self, x: torch.Tensor, *, method: str, generator: torch.Generator | None = None,
                             alpha: torch.Tensor | None = None):
        r"""``(E, grad E, estimated diag Hess E)`` by CP or Approx BP (the protocol of
        :func:`ssm_lib.curvature.energy_hessian_terms`); the base density's part is exact."""
        self._check_x(x)
        a = self.alpha if alpha is None else alpha
        w, s = self.kernel_weights(), self.bandwidths()
        f = grad = hdiag = 0
        for j, phi in enumerate(self.features):
            layers = [phi, GaussianKernelLayer(phi(self.inducing), s[j]), WeightedSum(w[j] * a)]
            y, g, h = hessian_diagonal(layers, x, method=method, generator=generator)
            f, grad, hdiag = f + y[:, 0], grad + g[:, 0], hdiag + h[:, 0]
        var = self.base_std**2
        energy = -(f + self.base_log_prob(x))
        return energy, -grad + x / var, -hdiag + 1.0 / var

    # ------------------------------------------------------------------ alpha in closed form
    def _kernel_grads_autograd(self, x: torch.Tensor, create_graph: bool):
        """``(xe, K, dK)``: ``x`` repeated per inducing point ``(n, M, d)``, the kernel values
        ``(n, M)`` and their gradients :math:`\\nabla_x K(x_b, z_m)` ``(n, M, d)``."""
        n, m = x.shape[0], self.n_inducing
        xe = x.detach().unsqueeze(1).expand(n, m, self.dim).clone().requires_grad_(True)
        w, s = self.kernel_weights(), self.bandwidths()
        k = 0
        for j, phi in enumerate(self.features):
            u = phi(xe.reshape(n * m, self.dim)).reshape(n, m, -1)
            c = phi(self.inducing)
            k = k + w[j] * torch.exp(-((u - c) ** 2).sum(-1) / (2 * s[j]))
        (dk,) = torch.autograd.grad(k.sum(), xe, create_graph=True)
        return xe, k, dk

    def alpha_system(self, x: torch.Tensor, objective: str, *, generator: torch.Generator | None = None,
                     sigma: float | None = None, create_graph: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The quadratic :math:`J(\alpha) = \tfrac12\alpha^\top G\alpha + b^\top\alpha + c`
        that ``objective`` induces on the batch ``x`` (mean over the batch; the random
        directions, noise or CP vectors drawn from ``generator``). Returns ``(G, b, c)``.
        ``sigma`` is DSM's noise level (required for ``"dsm"``). With
        ``create_graph=False`` the results are detached (for the final fit of alpha)."""
        check_choice(objective, OBJECTIVES, "objective")
        self._check_x(x)
        if objective == "dsm":
            if sigma is None:
                raise ValueError("sigma: objective 'dsm' needs a noise level sigma")
            sigma = check_number(sigma, "sigma", positive=True)
        n, d, var = x.shape[0], self.dim, self.base_std**2
        with torch.enable_grad():
            if objective in ("cp", "approx_bp"):
                w, s = self.kernel_weights(), self.bandwidths()
                dk, trace = 0, 0
                for j, phi in enumerate(self.features):
                    layers = [phi, GaussianKernelLayer(phi(self.inducing), s[j])]
                    _, g, h = hessian_diagonal(layers, x, method=objective, generator=generator)
                    dk, trace = dk + w[j] * g, trace + w[j] * h.sum(-1)
                g0 = -x / var
                G = torch.einsum("bmd,bnd->mn", dk, dk) / n
                b = ((dk * g0.unsqueeze(1)).sum(-1) + trace).mean(0)
                c = (0.5 * (g0 * g0).sum(-1)).mean() - d / var
            else:
                xx, z = x, None
                if objective == "dsm":
                    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                    xx = x + sigma * z
                xe, _, dk = self._kernel_grads_autograd(xx, create_graph)
                g0 = -xx / var
                if objective == "exact":  # d backward passes, vectorised (torch.func.vmap)
                    eye = torch.eye(d, dtype=x.dtype, device=x.device)
                    basis = eye.reshape(d, 1, 1, d).expand(d, n, self.n_inducing, d)
                    (h,) = torch.autograd.grad(dk, xe, basis, create_graph=create_graph, retain_graph=True,
                                               is_grads_batched=True)
                    trace = torch.einsum("inmi->nm", h)
                    G = torch.einsum("bmd,bnd->mn", dk, dk) / n
                    b = ((dk * g0.unsqueeze(1)).sum(-1) + trace).mean(0)
                    c = (0.5 * (g0 * g0).sum(-1)).mean() - d / var
                elif objective in ("ssm", "ssm_vr"):
                    v = sample_projections("rademacher", x.shape, generator=generator, dtype=x.dtype,
                                           device=x.device)
                    dkv = (dk * v.unsqueeze(1)).sum(-1)  # (n, M)
                    (h,) = torch.autograd.grad(dkv.sum(), xe, create_graph=create_graph, retain_graph=True)
                    vhv = (h * v.unsqueeze(1)).sum(-1)
                    vv = (v * v).sum(-1)
                    if objective == "ssm":
                        g0v = (g0 * v).sum(-1)
                        G = dkv.T @ dkv / n
                        b = (dkv * g0v.unsqueeze(1) + vhv).mean(0)
                        c = (0.5 * g0v**2 - vv / var).mean()
                    else:
                        G = torch.einsum("bmd,bnd->mn", dk, dk) / n
                        b = ((dk * g0.unsqueeze(1)).sum(-1) + vhv).mean(0)
                        c = (0.5 * (g0 * g0).sum(-1) - vv / var).mean()
                else:  # dsm: 1/2 |s(x~) + z / sigma|^2
                    t = g0 + z / sigma
                    G = torch.einsum("bmd,bnd->mn", dk, dk) / n
                    b = (dk * t.unsqueeze(1)).sum(-1).mean(0)
                    c = (0.5 * (t * t).sum(-1)).mean()
        if not create_graph:
            G, b, c = G.detach(), b.detach(), c.detach()
        return G, b, c

    def solve_alpha(self, G: torch.Tensor, b: torch.Tensor,
                    ridge: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\alpha = -(G + \lambda I)^{-1} b` (``ridge``: default :math:`10^{\log_{10}\lambda}`)."""
        lam = self.ridge() if ridge is None else ridge
        eye = torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
        return -torch.linalg.solve(G + lam * eye, b)

    def fit_alpha(self, x: torch.Tensor, objective: str, *, generator: torch.Generator | None = None,
                  sigma: float | None = None, chunk: int = 100) -> torch.Tensor:
        """Set (and return) ``alpha`` from the quadratic accumulated over ``x`` in chunks."""
        G, b = self.accumulate_system(x, objective, generator=generator, sigma=sigma, chunk=chunk)
        with torch.no_grad():
            self.alpha.copy_(self.solve_alpha(G, b))
        return self.alpha

    def accumulate_system(self, x: torch.Tensor, objective: str, *, generator=None, sigma=None,
                          chunk: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G, b)`` averaged over all of ``x``, detached, computed ``chunk`` rows at a time."""
        G = b = 0
        for start in range(0, x.shape[0], chunk):
            xb = x[start:start + chunk]
            g_, b_, _ = self.alpha_system(xb, objective, generator=generator, sigma=sigma, create_graph=False)
            G, b = G + g_ * xb.shape[0], b + b_ * xb.shape[0]
        return G / x.shape[0], b / x.shape[0]


class DKEFWithAlpha:
    """A DKEF with explicit coefficients: a score function (``__call__``) for the losses of
    :mod:`ssm_lib.losses`, and the curvature protocol for CP / Approx BP."""

    def __init__(self, model: DKEF, alpha: torch.Tensor):
        self.model, self.alpha = model, alpha

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.score(x, self.alpha)

    def energy_hessian_terms(self, x, *, method, generator=None):  # noqa: ANN001
        return self.model.energy_hessian_terms(x, method=method, generator=generator, alpha=self.alpha)


def dkef_loss(model: DKEF, x: torch.Tensor, objective: str, alpha: torch.Tensor | None = None, *,
              generator: torch.Generator | None = None, sigma: float | None = None,
              reduction: str = "mean", exact_method: str = "vmap") -> torch.Tensor:
    """The objective's loss of the model (coefficients ``alpha``, default the stored ones) on
    ``x``, computed by the library's generic losses (not by the quadratic form)."""
    check_choice(objective, OBJECTIVES, "objective")
    view = model.with_alpha(model.alpha if alpha is None else alpha)
    if objective == "exact":
        return exact_score_matching(view, x, reduction=reduction, method=exact_method)
    if objective in ("ssm", "ssm_vr"):
        return sliced_score_matching(view, x, variance_reduction=objective == "ssm_vr", generator=generator,
                                     reduction=reduction, method="backward")
    if objective == "dsm":
        if sigma is None:
            raise ValueError("sigma: objective 'dsm' needs a noise level sigma")
        return denoising_score_matching(view, x, sigma, generator=generator, reduction=reduction)
    if objective == "cp":
        return _cp_loss(view, x, generator=generator, reduction=reduction)
    return _approx_bp_loss(view, x, generator=generator, reduction=reduction)


# ---------------------------------------------------------------------- training and evaluation


def training_step(model: DKEF, batch: torch.Tensor, objective: str, optimizer: torch.optim.Optimizer, *,
                  clip: float = 100.0, generator: torch.Generator | None = None,
                  sigma: float | None = None) -> float:
    """One step of stage 1 on ``batch``: alpha from the first half's quadratic, the objective's
    loss on the second half, backward through the solve, gradient norm clipped at ``clip``, an
    optimiser step (skipped when the loss is not finite). Returns the loss."""
    half = batch.shape[0] // 2
    G, b, _ = model.alpha_system(batch[:half], objective, generator=generator, sigma=sigma)
    alpha = model.solve_alpha(G, b)
    loss = dkef_loss(model, batch[half:2 * half], objective, alpha, generator=generator, sigma=sigma)
    if not torch.isfinite(loss):
        return loss.item()
    optimizer.zero_grad()
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    return loss.item()


@dataclass
class DKEFHistory:
    """Training record: training loss per step, validation loss per check, and the best step."""

    train: list[float] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    best_step: int = 0
    stopped_early: bool = False


def train_dkef(model: DKEF, train: torch.Tensor, val: torch.Tensor, objective: str, *, steps: int,
               batch_size: int = 200, lr: float = 1e-2, clip: float = 100.0, sigma: float | None = None,
               val_every: int = 10, patience: int = 200, n_alpha: int = 1000, lambda_steps: int = 1000,
               lambda_lr: float = 1e-3, generator: torch.Generator | None = None,
               progress: bool = False) -> DKEFHistory:
    r"""The paper's two-stage training, in place.

    Stage 1 (``steps`` Adam steps, learning rate ``lr``, gradient norm clipped at ``clip``):
    each step draws ``batch_size`` training points, solves alpha from the first half's
    quadratic and takes the objective's loss (:func:`dkef_loss`) on the second half; the
    gradient flows through the solve. Every ``val_every`` steps alpha is refit on ``n_alpha``
    training points and the objective is evaluated on ``val``; the best state is kept and
    training stops after ``patience`` steps without improvement. Stage 2: alpha from
    ``n_alpha`` training points, then :math:`\log_{10}\lambda` alone tuned by Adam
    (``lambda_lr``, ``lambda_steps``) on the validation objective, alpha refit.

    Raises :class:`~ssm_lib.training.TrainingDivergedError` naming the step when the loss
    stops being finite.
    """
    from .training import TrainingDivergedError

    check_choice(objective, OBJECTIVES, "objective")
    check_count(steps, "steps")
    check_count(batch_size, "batch_size")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (one half for alpha, one for the loss)")
    half = batch_size // 2
    params = [p for name, p in model.named_parameters() if name != "log10_lambda" and p.requires_grad]
    params.append(model.log10_lambda)
    opt = torch.optim.Adam(params, lr=lr)
    hist = DKEFHistory()
    best, best_state = math.inf, copy.deepcopy(model.state_dict())
    n_train = train.shape[0]

    def perm(n: int) -> torch.Tensor:
        dev = generator.device if generator is not None else torch.device("cpu")
        return torch.randperm(n, generator=generator, device=dev).to(train.device)

    idx_alpha = perm(n_train)[:n_alpha]
    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=objective, leave=False)
    for step in iterator:
        idx = perm(n_train)[: 2 * half]
        loss = training_step(model, train[idx], objective, opt, clip=clip, generator=generator, sigma=sigma)
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"DKEF training with {objective!r} diverged at step {step} "
                                        f"(loss {loss})")
        hist.train.append(loss)
        if (step + 1) % val_every == 0 or step == steps - 1:
            model.fit_alpha(train[idx_alpha], objective, generator=generator, sigma=sigma)
            v = dkef_loss(model, val, objective, generator=generator, sigma=sigma).item()
            hist.val.append((step, v))
            if v < best:
                best, hist.best_step = v, step
                best_state = copy.deepcopy(model.state_dict())
            elif step - hist.best_step > patience:
                hist.stopped_early = True
                break
    model.load_state_dict(best_state)
    # stage 2: lambda alone
    G, b = model.accumulate_system(train[idx_alpha], objective, generator=generator, sigma=sigma)
    if lambda_steps > 0:
        lam_opt = torch.optim.Adam([model.log10_lambda], lr=lambda_lr)
        frozen = [p for p in model.parameters() if p is not model.log10_lambda]
        flags = [p.requires_grad for p in frozen]
        for p in frozen:
            p.requires_grad_(False)
        try:
            for _ in range(lambda_steps):
                rows = perm(val.shape[0])[:100]
                alpha = model.solve_alpha(G, b)
                loss = dkef_loss(model, val[rows], objective, alpha, generator=generator, sigma=sigma)
                if not torch.isfinite(loss):
                    break
                lam_opt.zero_grad()
                loss.backward()
                lam_opt.step()
        finally:
            for p, flag in zip(frozen, flags, strict=True):
                p.requires_grad_(flag)
    with torch.no_grad():
        model.alpha.copy_(model.solve_alpha(G, b))
    return hist


def log_normalizer(model: DKEF, n_samples: int = 10**6, *, generator: torch.Generator | None = None,
                   chunk: int = 10**5, proposal_std: float | None = None) -> tuple[float, float]:
    r"""Importance-sampling estimate of :math:`\log Z` with proposal
    :math:`q = \mathcal N(0, \sigma_q^2 I)` (default :math:`\sigma_q = \sigma_0`, then the
    weights are :math:`e^{f(x)}`): :math:`\log\hat Z = \log\frac1n\sum_i \tilde p(x_i)/q(x_i)`,
    and its standard error by the delta method, :math:`\hat{\mathrm{sd}}(w)/(\sqrt n\,\bar w)`.
    Returns ``(log_z, standard_error)``."""
    check_count(n_samples, "n_samples")
    std = (model.base_std if proposal_std is None
           else check_number(proposal_std, "proposal_std", positive=True))
    dtype, device = model.alpha.dtype, model.alpha.device
    logs = []
    with torch.no_grad():
        for start in range(0, n_samples, chunk):
            m = min(chunk, n_samples - start)
            xq = std * torch.randn(m, model.dim, generator=generator, dtype=dtype, device=device)
            log_q = -0.5 * (xq * xq).sum(-1) / std**2 - 0.5 * model.dim * math.log(2 * math.pi * std**2)
            logs.append(model.unnormalized_log_prob(xq) - log_q)
    lw = torch.cat(logs).double()
    log_z = torch.logsumexp(lw, 0) - math.log(lw.numel())
    w = torch.exp(lw - lw.max())
    se = (w.std() / (math.sqrt(lw.numel()) * w.mean())).item()
    return log_z.item(), se
