r"""Analytic test densities with closed-form log-densities, scores and exact samplers.

Each density offers ``log_prob(x)`` (shape ``(batch,)``), ``score(x)`` =
:math:`\nabla_x \log p(x)` (shape of ``x``) and ``sample(n, generator=None)`` (shape
``(n, dim)``). ``log_prob`` and ``score`` compute in the dtype and on the device of their
input ``x``; ``sample`` returns the density's own dtype (that of its parameters, or the
``dtype`` given) on the generator's device (the CPU when ``generator=None``, which uses
torch's global generator). All of them are normalised; ``log_normalizer`` is :math:`\log Z` of the
unnormalised density ``unnormalized_log_prob`` = ``log_prob + log_normalizer``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._checks import check_batch, check_count, check_fits_in_memory, check_generator, check_number

__all__ = ["Banana", "Density", "Gaussian", "GaussianMixture", "Ring"]

Arraylike = torch.Tensor | Sequence | float


def _as_float_tensor(value: Arraylike, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        t = torch.as_tensor(value)
        if t.dtype == torch.bool:
            raise TypeError
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be convertible to a tensor, got {value!r}") from err
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point() and not t.is_complex():
        t = t.to(torch.get_default_dtype())
    if t.dtype == torch.bool or not t.is_floating_point():
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if not bool(torch.all(torch.isfinite(t))):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return t


def _check_dtype(dtype: object) -> torch.dtype:
    if dtype is None:
        return torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return dtype


class Density:
    """Interface shared by the analytic densities."""

    dim: int
    dtype: torch.dtype

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x) + self.log_normalizer

    @property
    def log_normalizer(self) -> float:
        return 0.0

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def score(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - interface

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        return check_batch(x, event_shape=(self.dim,))

    def _check_n(self, n: object, generator: torch.Generator | None) -> int:
        """``n`` a count whose ``(n, dim)`` samples (and the few temporaries of drawing them)
        fit in the device's memory: refused at once, naming ``n``, otherwise."""
        n = check_count(n, "n")
        check_fits_in_memory(n * self.dim, torch.float64, self._device(generator), "n", copies=4)
        return n

    def _device(self, generator: torch.Generator | None) -> torch.device:
        check_generator(generator)
        return generator.device if generator is not None else torch.device("cpu")


class Gaussian(Density):
    r"""Multivariate normal :math:`\mathcal N(\mu, \Sigma)` in :math:`d` dimensions.

    .. math::

        \begin{aligned}
        \log p(x) &= -\tfrac12 (x-\mu)^\top\Sigma^{-1}(x-\mu) - \log Z,\quad
        Z = (2\pi)^{d/2}\,|\Sigma|^{1/2},\\
        \nabla_x \log p(x) &= -\Sigma^{-1}(x - \mu).
        \end{aligned}
    """

    def __init__(self, mean: Arraylike, cov: Arraylike):
        mean = _as_float_tensor(mean, "mean")
        if mean.dim() != 1 or mean.shape[0] < 1:
            raise ValueError(f"mean must have shape (d,) with d >= 1, got {tuple(mean.shape)}")
        if mean.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"mean must be float32 or float64 (cov is factorised by a Cholesky "
                             f"decomposition, which torch does not do in {mean.dtype}), got {mean.dtype}")
        d = mean.shape[0]
        cov = _as_float_tensor(cov, "cov", mean.dtype)
        if cov.shape != (d, d):
            raise ValueError(f"cov must have shape (d, d) = ({d}, {d}), got {tuple(cov.shape)}")
        if not torch.allclose(cov, cov.T, atol=1e-6 * float(cov.abs().max())):
            raise ValueError("cov must be symmetric")
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:
            raise ValueError("cov must be positive definite")
        self.dim, self.dtype = d, mean.dtype
        self.mean, self.cov, self.scale_tril = mean, cov, chol
        self.precision = torch.cholesky_inverse(chol)

    @property
    def log_normalizer(self) -> float:
        """:math:`\\log Z = \\tfrac d2\\log 2\\pi + \\tfrac12\\log|\\Sigma|`."""
        log_det_half = float(torch.log(torch.diagonal(self.scale_tril)).sum())
        return 0.5 * self.dim * math.log(2 * math.pi) + log_det_half

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        diff = self._check_x(x) - self.mean.to(x)
        return -0.5 * ((diff @ self.precision.to(x)) * diff).sum(-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.unnormalized_log_prob(x) - self.log_normalizer

    def score(self, x: torch.Tensor) -> torch.Tensor:
        diff = self._check_x(x) - self.mean.to(x)
        return -diff @ self.precision.to(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = self._check_n(n, generator)
        dev = self._device(generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.dtype, device=dev)
        return self.mean.to(dev) + z @ self.scale_tril.to(dev).T


class GaussianMixture(Density):
    r"""Mixture :math:`p(x) = \sum_k w_k\,\mathcal N(x; \mu_k, \Sigma_k)`.

    Its score is the responsibility-weighted average of the component scores,
    :math:`\nabla_x\log p(x) = \sum_k \gamma_k(x)\,\big(-\Sigma_k^{-1}(x-\mu_k)\big)` with
    :math:`\gamma_k(x) = w_k\mathcal N(x;\mu_k,\Sigma_k)/p(x)`.
    """

    def __init__(self, weights: Arraylike, means: Arraylike, covs: Arraylike):
        means = _as_float_tensor(means, "means")
        if means.dim() != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        k, d = means.shape
        weights = _as_float_tensor(weights, "weights", means.dtype)
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape (K,) = ({k},), got {tuple(weights.shape)}")
        if bool(torch.any(weights <= 0)) or abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights must be positive and sum to 1, got {weights.tolist()}")
        covs = _as_float_tensor(covs, "covs", means.dtype)
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape (K, d, d) = ({k}, {d}, {d}), got {tuple(covs.shape)}")
        self.components = [Gaussian(means[i], covs[i]) for i in range(k)]
        self.dim, self.dtype = d, means.dtype
        self.weights, self.means, self.covs = weights, means, covs

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_x(x)
        logw = torch.log(self.weights.to(x))
        return torch.stack([c.log_prob(x) for c in self.components], dim=-1) + logw

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._component_log_probs(x), dim=-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        resp = torch.softmax(self._component_log_probs(x), dim=-1)  # (batch, K)
        scores = torch.stack([c.score(x) for c in self.components], dim=1)  # (batch, K, d)
        return (resp.unsqueeze(-1) * scores).sum(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = self._check_n(n, generator)
        dev = self._device(generator)
        idx = torch.multinomial(self.weights.to(dev), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.dtype, device=dev)
        tril = torch.stack([c.scale_tril for c in self.components]).to(dev)
        return self.means.to(dev)[idx] + torch.einsum("nij,nj->ni", tril[idx], z)


class Banana(Density):
    r"""A banana-shaped 2-D density: the image of
    :math:`z \sim \mathcal N(0, \operatorname{diag}(\sigma_1^2, \sigma_2^2))` under
    :math:`x = (z_1,\; z_2 + b\,(z_1^2 - \sigma_1^2))`, a map with unit Jacobian.

    With :math:`u = x_2 - b(x_1^2 - \sigma_1^2)`:

    .. math::

        \begin{aligned}
        \log p(x) &= \log\mathcal N(x_1; 0, \sigma_1^2) + \log\mathcal N(u; 0, \sigma_2^2),\\
        \nabla_x\log p(x) &= \Big(-\frac{x_1}{\sigma_1^2} + \frac{2 b x_1 u}{\sigma_2^2},\;
            -\frac{u}{\sigma_2^2}\Big).
        \end{aligned}
    """

    def __init__(self, sigma1: float = 1.25, sigma2: float = 0.5, curvature: float = 0.6,
                 dtype: torch.dtype | None = None):
        self.sigma1 = check_number(sigma1, "sigma1", positive=True)
        self.sigma2 = check_number(sigma2, "sigma2", positive=True)
        self.curvature = check_number(curvature, "curvature")
        self.dim, self.dtype = 2, _check_dtype(dtype)

    def _u(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1] - self.curvature * (x[:, 0] ** 2 - self.sigma1**2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_x(x)
        s1, s2 = self.sigma1, self.sigma2
        u = self._u(x)
        return (-0.5 * (x[:, 0] / s1) ** 2 - 0.5 * (u / s2) ** 2
                - math.log(2 * math.pi * s1 * s2))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_x(x)
        s1sq, s2sq = self.sigma1**2, self.sigma2**2
        u = self._u(x)
        g0 = -x[:, 0] / s1sq + 2 * self.curvature * x[:, 0] * u / s2sq
        return torch.stack([g0, -u / s2sq], dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = self._check_n(n, generator)
        z = torch.randn(n, 2, generator=generator, dtype=self.dtype, device=self._device(generator))
        x1 = self.sigma1 * z[:, 0]
        x2 = self.sigma2 * z[:, 1] + self.curvature * (x1**2 - self.sigma1**2)
        return torch.stack([x1, x2], dim=-1)


class Ring(Density):
    r"""A ring in 2-D: :math:`p(x) \propto \exp\!\big(-(\|x\| - R)^2 / (2w^2)\big)`.

    Its normalising constant is, in polar coordinates with :math:`r = \|x\|`,

    .. math::

        Z = 2\pi\int_0^\infty r\,e^{-(r-R)^2/(2w^2)}\,dr
          = 2\pi\Big(w^2 e^{-R^2/(2w^2)} + R\,w\sqrt{2\pi}\;\Phi(R/w)\Big),

    and its score is :math:`\nabla_x\log p(x) = -\frac{\|x\| - R}{w^2}\,\frac{x}{\|x\|}`
    (set to 0 at the origin, where it is undefined). Sampling is exact: the angle is uniform
    and the radius is drawn by inverting its closed-form CDF by bisection.
    """

    def __init__(self, radius: float = 2.0, width: float = 0.25, dtype: torch.dtype | None = None):
        self.radius = check_number(radius, "radius", positive=True)
        self.width = check_number(width, "width", positive=True)
        self.dim, self.dtype = 2, _check_dtype(dtype)
        if self.width**2 == 0 or not math.isfinite(1 / self.width**2):
            raise ValueError(f"width must be a positive number whose square is a normal float "
                             f"(1 / width**2 is the score's scale), got {width!r}")
        try:
            self.log_normalizer  # noqa: B018 - computed once here to refuse an overflow up front
        except (OverflowError, ZeroDivisionError, ValueError):
            raise ValueError(f"radius = {radius!r} and width = {width!r} overflow the normalising constant; "
                             "rescale them") from None

    @property
    def log_normalizer(self) -> float:
        r, w = self.radius, self.width
        phi = 0.5 * (1 + math.erf(r / (w * math.sqrt(2))))
        return math.log(2 * math.pi * (w**2 * math.exp(-(r**2) / (2 * w**2))
                                       + r * w * math.sqrt(2 * math.pi) * phi))

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_x(x)
        return -0.5 * ((x.norm(dim=-1) - self.radius) / self.width) ** 2

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.unnormalized_log_prob(x) - self.log_normalizer

    def score(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_x(x)
        r = x.norm(dim=-1, keepdim=True)
        unit = torch.where(r > 0, x / r.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(x))
        return -(r - self.radius) / self.width**2 * unit

    def _radial_cdf(self, r: torch.Tensor) -> torch.Tensor:
        """Unnormalised CDF of the radius, :math:`\\int_0^r t e^{-(t-R)^2/2w^2} dt`."""
        big_r, w = self.radius, self.width
        gauss = torch.special.ndtr
        lo = torch.tensor(-big_r / w, dtype=r.dtype, device=r.device)
        return (w**2 * (math.exp(-(big_r**2) / (2 * w**2)) - torch.exp(-0.5 * ((r - big_r) / w) ** 2))
                + big_r * w * math.sqrt(2 * math.pi) * (gauss((r - big_r) / w) - gauss(lo)))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = self._check_n(n, generator)
        dev = self._device(generator)
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=dev)
        theta = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64, device=dev)
        hi_r = self.radius + 40 * self.width
        target = u * self._radial_cdf(torch.tensor(hi_r, dtype=torch.float64, device=dev))
        lo = torch.zeros(n, dtype=torch.float64, device=dev)
        hi = torch.full((n,), hi_r, dtype=torch.float64, device=dev)
        for _ in range(64):  # bisection: the CDF is increasing in r
            mid = 0.5 * (lo + hi)
            below = self._radial_cdf(mid) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        r = 0.5 * (lo + hi)
        return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1).to(self.dtype)
