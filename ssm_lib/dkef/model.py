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

The coefficients :math:`\alpha` have a closed form under every score-matching objective
(``ssm_lib.dkef.alpha``); the model's methods :meth:`DKEF.alpha_system`,
:meth:`DKEF.solve_alpha` and :meth:`DKEF.fit_alpha` use it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._checks import check_batch, check_count, check_finite, check_flag, check_generator, check_number
from .._tensor_ops import pairwise_sq_dist, rademacher
from ..curvature import SumOfBranches, forward_derivatives, forward_supported, hessian_diagonal, split_sqrt
from ..persistence import register_model
from . import alpha as _alpha

__all__ = ["DKEF", "DKEFWithAlpha", "GaussianKernelLayer", "WeightedSum", "feature_network"]


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
        f = self.centres.shape[-1]
        if not isinstance(u, torch.Tensor) or u.dim() != 2 or u.shape[1] != f:
            raise ValueError(f"u must be a tensor of features (batch, {f}) (the centres' width), got "
                             f"{tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__}")
        # squared feature distances from inner products (centred, clamped at 0): (batch, M)
        # memory, not the (batch, M, F) differences
        return torch.exp(pairwise_sq_dist(u, self.centres).div_(-2 * self.bandwidth))

    def _parts(self, u: torch.Tensor, k: torch.Tensor):
        d = u.unsqueeze(1) - self.centres  # (batch, M, F)
        jac = d * (k / -self.bandwidth).unsqueeze(-1)  # d k_m / d u = -k_m d_m / s
        return d, jac

    def _hessian_diagonals(self, d: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Diagonal of each :math:`k_m`'s Hessian, :math:`k_m (d_m^2/s^2 - 1/s)`, ``(batch, M, F)``."""
        s = self.bandwidth
        return torch.addcmul((k / -s).unsqueeze(-1), d * d, (k / s**2).unsqueeze(-1))

    def approx_bp_backward(self, inp, out, g, h):  # noqa: ANN001 - protocol signature
        d, jac = self._parts(inp, out)
        local = self._hessian_diagonals(d, out)
        g_u = torch.einsum("bkm,bmf->bkf", g, jac)
        h_u = torch.einsum("bkm,bmf->bkf", h, jac * jac) + torch.einsum("bkm,bmf->bkf", g, local)
        return g_u, h_u

    def identity_approx_bp(self, inp: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``approx_bp_backward`` seeded with ``g = I`` (one channel per centre) and ``h = 0``,
        computed elementwise: ``(jac, diag of each k_m's Hessian)``, both ``(batch, M, F)``,
        without the dense ``(batch, M, M)`` identity."""
        d, jac = self._parts(inp, out)
        return jac, self._hessian_diagonals(d, out)

    def identity_cp(self, inp: torch.Tensor, out: torch.Tensor, generator: torch.Generator | None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""``cp_backward`` seeded with ``g = I`` and ``S = 0``, computed elementwise.

        With ``g = I`` the Hessian weight ``c = g k`` is ``diag(k)``: row ``m`` carries only
        :math:`k_m \ge 0`, so the rank-one part :math:`k_m d_m d_m^\top/s^2` is real,
        :math:`\sqrt{k_m}\, v_m d_m/s`, and the isotropic part :math:`-k_m I/s` imaginary,
        :math:`\sqrt{k_m/s}\, w`. Rademacher draws: ``v`` of shape ``(batch, M)`` (the only
        entries of the dense sweep's ``(batch, M, M)`` signs that meet a non-zero weight), then
        ``w`` of shape ``(batch, M, F)``; with those on the dense draw's diagonal, the dense
        sweep gives the same result."""
        d, jac = self._parts(inp, out)
        s = self.bandwidth
        v = rademacher(out.shape, out, generator)
        c_pos, _ = split_sqrt(out)          # out >= 0: no negative part
        _, iso_neg = split_sqrt(out / -s)   # the identity's weight -k/s <= 0: no positive part
        w = rademacher(out.shape + inp.shape[-1:], out, generator)
        return jac, d * (c_pos * v / s).unsqueeze(-1), iso_neg.unsqueeze(-1) * w

    def cp_backward(self, inp, out, g, s_re, s_im, generator):  # noqa: ANN001
        d, jac = self._parts(inp, out)
        s = self.bandwidth
        c = g * out.unsqueeze(1)  # (batch, K, M): weight of k_m's Hessian
        v = rademacher(c.shape, c, generator)
        c_pos, c_neg = split_sqrt(c)
        rank_re = torch.einsum("bkm,bmf->bkf", c_pos * v, d) / s
        rank_im = torch.einsum("bkm,bmf->bkf", c_neg * v, d) / s
        iso = -c.sum(-1, keepdim=True) / s  # (batch, K, 1): weight of the identity
        w = rademacher(g.shape[:2] + inp.shape[-1:], c, generator)
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
        m = self.weights.shape[-1]
        if not isinstance(h, torch.Tensor) or h.dim() != 2 or h.shape[1] != m:
            raise ValueError(f"h must be a tensor of shape (batch, {m}) (one column per weight), got "
                             f"{tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__}")
        return (h @ self.weights).unsqueeze(-1)

    def approx_bp_backward(self, inp, out, g, h):  # noqa: ANN001
        return g * self.weights, h * self.weights**2

    def cp_backward(self, inp, out, g, s_re, s_im, generator):  # noqa: ANN001
        return g * self.weights, s_re * self.weights, s_im * self.weights


def feature_network(dim: int, hidden: int = 30, *, skip: bool = True) -> nn.Module:
    """The feature map of one kernel: Linear-softplus-Linear-softplus-Linear (width
    ``hidden``), plus a bias-free linear skip connection from the input. ``dim`` and ``hidden``:
    whole numbers >= 1; ``skip``: ``True``/``False`` (``ValueError`` otherwise)."""
    dim, hidden = check_count(dim, "dim"), check_count(hidden, "hidden")
    skip = check_flag(skip, "skip")
    mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Softplus(), nn.Linear(hidden, hidden), nn.Softplus(),
                        nn.Linear(hidden, hidden))
    return SumOfBranches(mlp, nn.Linear(dim, hidden, bias=False)) if skip else mlp


@register_model
class DKEF(nn.Module):
    r"""A deep kernel exponential family (see the module docstring).

    Args:
        inducing: initial inducing points ``(M, d)`` (the paper: random training points).
        n_kernels: number :math:`J` of kernels, each with its own feature network.
        hidden: width of the feature networks.
        log10_bandwidths: initial :math:`\ell_j` (the paper: 0, 0.5185, 1): a sequence of at
            least ``n_kernels`` finite numbers.
        base_std: :math:`\sigma_0` of the base density (the paper: 2).
        log10_lambda: initial :math:`\log_{10}\lambda` of the ridge (the paper: -2), finite.
        train_inducing: whether the inducing points are trained (``True``/``False``).
        skip: whether the feature networks have a linear skip connection (``True``/``False``).
        generator: initialises the feature networks (weights
            :math:`\mathcal N(0, 1/\text{fan-in})`, biases :math:`\mathcal N(0, 1/\text{their
            size})`, the layer's fan-out), leaving torch's global generator as it
            was; ``None``: the global generator.

    ``alpha`` (a buffer) holds the current coefficients, set by :meth:`fit_alpha`. All the
    model's state is in its parameters and buffers, so :meth:`config` (the constructor's
    arguments, with the inducing points replaced by their shape) and :meth:`from_config`
    rebuild it for :func:`ssm_lib.persistence.load_model` (see :mod:`ssm_lib.persistence`).
    """

    def __init__(self, inducing: torch.Tensor, *, n_kernels: int = 3, hidden: int = 30,
                 log10_bandwidths: tuple[float, ...] = (0.0, 0.5185, 1.0), base_std: float = 2.0,
                 log10_lambda: float = -2.0, train_inducing: bool = True, skip: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        check_batch(inducing, "inducing")
        if inducing.dim() != 2:
            raise ValueError(f"inducing must have shape (M, d), got {tuple(inducing.shape)}")
        check_finite(inducing, "inducing")
        check_count(n_kernels, "n_kernels")
        check_count(hidden, "hidden")
        if isinstance(log10_bandwidths, (str, bytes)) or not hasattr(log10_bandwidths, "__len__"):
            raise ValueError(f"log10_bandwidths must be a sequence of {n_kernels} finite numbers, "
                             f"got {log10_bandwidths!r}")
        if len(log10_bandwidths) < n_kernels:
            raise ValueError(f"log10_bandwidths needs {n_kernels} values, got {log10_bandwidths!r}")
        for value in log10_bandwidths[:n_kernels]:
            check_number(value, "log10_bandwidths")
        self.base_std = check_number(base_std, "base_std", positive=True)
        check_number(log10_lambda, "log10_lambda")
        train_inducing = check_flag(train_inducing, "train_inducing")
        skip = check_flag(skip, "skip")
        check_generator(generator)
        self._config = {"n_kernels": int(n_kernels), "hidden": int(hidden),
                        "log10_bandwidths": [float(v) for v in log10_bandwidths[:n_kernels]],
                        "base_std": self.base_std, "log10_lambda": float(log10_lambda),
                        "train_inducing": bool(train_inducing), "skip": bool(skip)}
        self.dim = inducing.shape[1]
        self.n_inducing = inducing.shape[0]
        dtype = inducing.dtype
        self.inducing = nn.Parameter(inducing.detach().clone(), requires_grad=train_inducing)
        # the layers' default initialisation draws from torch's global generator; their weights
        # are drawn again below, so with an explicit generator the global one is left as it was
        with torch.random.fork_rng(devices=[], enabled=generator is not None):
            self.features = nn.ModuleList(feature_network(self.dim, hidden, skip=skip)
                                          for _ in range(n_kernels))
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

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments and ``inducing_shape`` ``[M, d]`` (the inducing
        points themselves are a parameter, saved with the state dict)."""
        return {"inducing_shape": [self.n_inducing, self.dim], **self._config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DKEF:
        """A DKEF of the architecture ``config`` describes, with zero inducing points of the
        saved shape (the state dict then fills every parameter and buffer)."""
        if not isinstance(config, dict) or "inducing_shape" not in config:
            raise ValueError(f"config must be a dict with the key 'inducing_shape', got {config!r}")
        options = dict(config)
        shape = options.pop("inducing_shape")
        if (not isinstance(shape, (list, tuple)) or len(shape) != 2
                or not all(isinstance(v, int) and v >= 1 for v in shape)):
            raise ValueError(f"config['inducing_shape'] must be [M, d] with positive integers, got {shape!r}")
        return cls(torch.zeros(tuple(shape)), **options)

    # ------------------------------------------------------------------ the density
    def _check_x(self, x: torch.Tensor, name: str = "x") -> None:
        check_batch(x, name)
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (batch, {self.dim}), got {tuple(x.shape)}")
        if x.dtype != self.alpha.dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but the model's parameters are {self.alpha.dtype}; "
                             f"convert one of them (e.g. {name}.to({self.alpha.dtype}))")

    def _check_alpha(self, alpha: object) -> None:
        """``alpha`` (explicit coefficients) must be a tensor ``(M,)`` of the model's dtype."""
        m = self.n_inducing
        if not isinstance(alpha, torch.Tensor):
            raise ValueError(f"alpha must be a torch.Tensor of shape ({m},) (one coefficient per inducing "
                             f"point), got {type(alpha).__name__}")
        if tuple(alpha.shape) != (m,):
            raise ValueError(f"alpha must have shape ({m},) (one coefficient per inducing point), got "
                             f"{tuple(alpha.shape)}")
        if alpha.dtype != self.alpha.dtype:
            raise ValueError(f"alpha has dtype {alpha.dtype} but the model's parameters are "
                             f"{self.alpha.dtype}")

    def kernel_weights(self) -> torch.Tensor:
        return torch.softmax(self.kernel_logits, 0)

    def bandwidths(self) -> torch.Tensor:
        return 10.0 ** self.log10_bandwidths

    def ridge(self) -> torch.Tensor:
        return 10.0 ** self.log10_lambda

    def kernel_matrix(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`K(x_b, z_m)`, shape ``(batch, M)``."""
        self._check_x(x)
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
        if alpha is not None:
            self._check_alpha(alpha)
        a = self.alpha if alpha is None else alpha
        return self.kernel_matrix(x) @ a + self.base_log_prob(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The energy :math:`E = -\\log\\tilde p` ``(batch,)``."""
        return -self.unnormalized_log_prob(x)

    def score(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\nabla_x \log\tilde p(x)`; second derivatives flow (for the losses)."""
        self._check_x(x)
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            xs = x if x.requires_grad else x.detach().requires_grad_(True)
            lp = self.unnormalized_log_prob(xs, alpha)
            (g,) = torch.autograd.grad(lp.sum(), xs, create_graph=create)
        return g

    def with_alpha(self, alpha: torch.Tensor) -> DKEFWithAlpha:
        """A view of the model with coefficients ``alpha`` (graph-carrying, shape ``(M,)``), for the
        losses."""
        return DKEFWithAlpha(self, alpha)

    # ------------------------------------------------------------------ curvature protocol
    def energy_hessian_terms(self, x: torch.Tensor, *, method: str, generator: torch.Generator | None = None,
                             alpha: torch.Tensor | None = None):
        r"""``(E, grad E, estimated diag Hess E)`` by CP or Approx BP (the protocol of
        :func:`ssm_lib.curvature.energy_hessian_terms`); the base density's part is exact."""
        self._check_x(x)
        if alpha is not None:
            self._check_alpha(alpha)
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
    def kernel_layers(self) -> list[list[nn.Module]]:
        """Per kernel :math:`j`, the layers ``[phi_j, GaussianKernelLayer]`` mapping ``x`` to
        :math:`k_j(x, z_m)` ``(batch, M)`` (the curvature protocol's layer sequence)."""
        s = self.bandwidths()
        return [[phi, GaussianKernelLayer(phi(self.inducing), s[j])] for j, phi in enumerate(self.features)]

    def kernel_grads(self, x: torch.Tensor):
        r"""``(xe, K, dK)``: ``x`` repeated per inducing point ``(n, M, d)`` (requiring grad), the
        kernel values ``(n, M)`` and their gradients :math:`\nabla_x K(x_b, z_m)` ``(n, M, d)``,
        with the graph for second derivatives."""
        self._check_x(x)
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

    def forward_derivatives_supported(self) -> bool:
        """Whether every feature network is made of layers :func:`ssm_lib.curvature.forward_derivatives`
        knows (true for those :func:`feature_network` builds)."""
        return all(forward_supported(phi) for phi in self.features)

    def kernel_derivatives(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""``(K, dK, lapK)``: the kernel values :math:`K(x_b, z_m)` ``(n, M)``, their gradients
        :math:`\nabla_x K(x_b, z_m)` ``(n, M, d)`` and Laplacians
        :math:`\operatorname{tr}\nabla_x^2 K(x_b, z_m)` ``(n, M)``, in closed form.

        Per kernel, with features :math:`u = \phi(x)`, their Jacobian :math:`J` (``F x d``) and
        Laplacians :math:`L_f = \operatorname{tr}\nabla_x^2 u_f` from one forward-mode pass
        (:func:`ssm_lib.curvature.forward_derivatives`, per point, not per inducing point),
        :math:`\delta_m = u - \phi(z_m)` and :math:`e_m = J^\top\delta_m`:

        .. math::

            \nabla_x k_m = -\frac{k_m}{s} e_m, \qquad
            \operatorname{tr}\nabla_x^2 k_m = k_m\Big(\frac{\|e_m\|^2}{s^2}
                - \frac{\|J\|_F^2 + \delta_m^\top L}{s}\Big).

        The differences :math:`\delta_m` are never formed: :math:`e_m` and
        :math:`\delta_m^\top L` are inner products of the features and the centres, both
        shifted by the centres' mean. Differentiable in the parameters."""
        self._check_x(x)
        w, s = self.kernel_weights(), self.bandwidths()
        k_all = dk = lap = 0
        for j, phi in enumerate(self.features):
            u, jac, diag = forward_derivatives(phi, x)          # (n, F), (n, d, F), (n, d, F)
            c = phi(self.inducing)                               # (M, F)
            k = GaussianKernelLayer(c, s[j])(u)                  # (n, M)
            centre = c.mean(0)
            uc, cc = u - centre, c - centre
            e = (jac @ uc.unsqueeze(-1)) - jac @ cc.T            # (n, d, M)
            lap_u = diag.sum(1)                                  # (n, F)
            delta_l = (uc * lap_u).sum(-1, keepdim=True) - lap_u @ cc.T           # (n, M)
            jj = jac.square().sum((1, 2)).unsqueeze(-1)          # (n, 1)
            lap = lap + w[j] * k * (e.square().sum(1) / s[j] ** 2 - (jj + delta_l) / s[j])
            dk = dk + e * (w[j] * k / -s[j]).unsqueeze(1)
            k_all = k_all + w[j] * k
        return k_all, dk.transpose(1, 2), lap

    def alpha_system(self, x: torch.Tensor, objective: str, *, generator: torch.Generator | None = None,
                     sigma: float | None = None, create_graph: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""``(G, b, c)`` of the quadratic ``objective`` induces on ``x`` (see
        :func:`ssm_lib.dkef.alpha_system`); ``sigma`` is DSM's noise level."""
        return _alpha.alpha_system(self, x, objective, generator=generator, sigma=sigma,
                                   create_graph=create_graph)

    def solve_alpha(self, G: torch.Tensor, b: torch.Tensor,
                    ridge: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\alpha = -(G + \lambda I)^{-1} b` (``ridge``: default :math:`10^{\log_{10}\lambda}`;
        see :func:`ssm_lib.dkef.solve_alpha`)."""
        if ridge is None:  # the model's own ridge: its value is the training's to judge
            _alpha.check_system(G, b)
            return _alpha._solve(G, b, self.ridge())
        return _alpha.solve_alpha(G, b, ridge)

    def accumulate_system(self, x: torch.Tensor, objective: str, *, generator: torch.Generator | None = None,
                          sigma: float | None = None, chunk: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G, b)`` over all of ``x``, detached, ``chunk`` rows at a time (see
        :func:`ssm_lib.dkef.accumulate_system`)."""
        return _alpha.accumulate_system(self, x, objective, generator=generator, sigma=sigma, chunk=chunk)

    def fit_alpha(self, x: torch.Tensor, objective: str, *, generator: torch.Generator | None = None,
                  sigma: float | None = None, chunk: int = 100) -> torch.Tensor:
        """Set (and return) ``alpha`` from the quadratic accumulated over ``x`` in chunks."""
        G, b = self.accumulate_system(x, objective, generator=generator, sigma=sigma, chunk=chunk)
        with torch.no_grad():
            self.alpha.copy_(self.solve_alpha(G, b))
        return self.alpha


class DKEFWithAlpha:
    """A DKEF with explicit coefficients: a score function (``__call__``) for the losses of
    :mod:`ssm_lib.losses`, and the curvature protocol for CP / Approx BP."""

    def __init__(self, model: DKEF, alpha: torch.Tensor):
        if not isinstance(model, DKEF):
            raise ValueError(f"model must be a ssm_lib.dkef.DKEF, got {type(model).__name__}")
        model._check_alpha(alpha)  # a tensor (M,) of the model's (floating) dtype
        self.model, self.alpha = model, alpha

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.score(x, self.alpha)

    def energy_hessian_terms(self, x, *, method, generator=None):  # noqa: ANN001
        return self.model.energy_hessian_terms(x, method=method, generator=generator, alpha=self.alpha)
