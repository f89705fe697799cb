r"""The encoder and decoder networks of the paper's implicit-encoder auto-encoder experiment
(Song et al. 2019, Section 5.2, MNIST): MLPs with ``tanh`` units, built on
:func:`ssm_lib.models.mlp`.

* :class:`ImplicitEncoder`: :math:`z = g_\phi(x, \epsilon)`, :math:`\epsilon\sim\mathcal N(0, I)`
  fed in next to :math:`x`, so :math:`q_\phi(z|x)` can be sampled but has no density;
* :class:`GaussianEncoder`: the explicit :math:`q_\phi(z|x) = \mathcal N(\mu_\phi(x),
  \operatorname{diag}\sigma_\phi^2(x))` (the reference, and the proposal of the evaluation);
* :class:`DeterministicEncoder` (WAE) and :class:`BernoulliDecoder` :math:`p_\theta(x|z)`
  (with the WAE's squared-error cost, :meth:`BernoulliDecoder.squared_error`).

They have the interfaces that the library's objectives in :mod:`ssm_lib.implicit_vae` use.

The kernel estimators as the paper's code runs them (``models/kernel_score_estimators.py`` of
the official repository): :func:`paper_bandwidth`, the median rule with the zero diagonal of
the distance matrix, and :class:`PaperSpectralScoreEstimator`, whose number of
eigenfunctions is fixed at its first call.

The paper's data split: :func:`vae_split` (the official runner's 80 % of MNIST's training set,
and the official test set; or a held-out part of data without one).

The paper's evaluation: :func:`ais_log_likelihood`, annealed importance sampling with
Hamiltonian Monte Carlo moves from the prior to the posterior (official
``evaluations/ais.py`` and ``evaluations/hmc.py``), and its schedule :func:`sigmoid_schedule`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssm_lib.implicit_vae import LOG_2PI
from ssm_lib.models import mlp
from ssm_lib.score_estimators import SpectralScoreEstimator, median_bandwidth, rbf_gram

from ._checks import check_count, check_nonnegative

__all__ = [
    "BernoulliDecoder", "DeterministicEncoder", "GaussianEncoder", "ImplicitEncoder",
    "PaperSpectralScoreEstimator", "ais_log_likelihood", "paper_bandwidth", "paper_eigen_count",
    "sigmoid_schedule", "vae_split",
]

#: Share of MNIST's training set the official runner trains on (``runners/vae_runner.py`` line 58).
PAPER_TRAIN_SHARE = 0.8


def vae_split(data, n_test: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The training and test images as grey levels in ``[0, 1]`` (``float32``, shape
    ``(n, h*w)``), and a sentence saying how they were split.

    * With an official test set (``data.is_test``, MNIST through torchvision), as the paper's
      runner does (official ``runners/vae_runner.py`` lines 52-58): the official training
      images shuffled by NumPy's generator seeded with ``split_seed`` (``np.random.seed(2019);
      np.random.shuffle``), the first 80 % train (the rest, its validation part, is unused);
      the first ``n_test`` official test images test.
    * Without one (the shipped 10,000 digits, scikit-learn's digits): one permutation from
      ``np.random.default_rng(split_seed)``, its first ``n_test`` images test and the rest
      train. When ``n_test`` would leave nothing to train on (the full profile's 10,000 test
      images, offline), a tenth of the images is held out instead, and the sentence says so.
    """
    check_count(n_test, "n_test")
    probs = data.pixels.reshape(len(data.pixels), -1).float() / (data.levels - 1)
    if data.is_test is not None:
        pool = torch.nonzero(~data.is_test).squeeze(1).numpy()
        order = list(range(len(pool)))
        np.random.RandomState(split_seed).shuffle(order)  # = np.random.seed(s); np.random.shuffle
        train = probs[torch.from_numpy(pool[order[: int(len(pool) * PAPER_TRAIN_SHARE)]])]
        test = probs[torch.nonzero(data.is_test).squeeze(1)][:n_test]
        return train, test, (f"the official split: {len(train):,} of the {len(pool):,} training images "
                             f"(80 %, shuffled with seed {split_seed}) train, {len(test):,} official "
                             "test images test")
    order = torch.from_numpy(np.random.default_rng(split_seed).permutation(len(probs)))
    probs = probs[order]
    note = ""
    if n_test >= len(probs):
        n_test, note = len(probs) // 10, (f" (no official test set: a tenth held out instead of "
                                          f"the {n_test:,} test images asked for)")
    return probs[n_test:], probs[:n_test], (f"{len(probs) - n_test:,} training and {n_test:,} test "
                                            f"images drawn at random (seed {split_seed}){note}")


class ImplicitEncoder(nn.Module):
    """:math:`z = g_\\phi([x, \\epsilon])` with :math:`\\epsilon\\sim\\mathcal N(0, I_e)`."""

    def __init__(self, x_dim: int, z_dim: int, eps_dim: int | None = None, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.x_dim, self.z_dim = check_count(x_dim, "x_dim"), check_count(z_dim, "z_dim")
        self.eps_dim = z_dim if eps_dim is None else check_count(eps_dim, "eps_dim")
        self.net = mlp(self.x_dim + self.eps_dim, z_dim, hidden, depth, "tanh")

    def forward(self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        """``n_samples`` draws of :math:`z|x` for each row of ``x (B, x_dim)``: ``(B, n, z_dim)``."""
        b = x.shape[0]
        eps = torch.randn(b, n_samples, self.eps_dim, generator=generator, dtype=x.dtype, device=x.device)
        xe = torch.cat([x.unsqueeze(1).expand(b, n_samples, x.shape[-1]), eps], dim=-1)
        return self.net(xe)


class GaussianEncoder(nn.Module):
    r""":math:`q_\phi(z|x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\,e^{2\ell_\phi(x)})`."""

    def __init__(self, x_dim: int, z_dim: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.x_dim, self.z_dim = check_count(x_dim, "x_dim"), check_count(z_dim, "z_dim")
        self.net = mlp(x_dim, 2 * z_dim, hidden, depth, "tanh")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)``, each ``(B, z_dim)``."""
        mean, log_std = self.net(x).chunk(2, dim=-1)
        return mean, log_std

    def sample_and_log_prob(self, x: torch.Tensor, n_samples: int = 1,
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draws ``z (B, n, z_dim)`` and :math:`\\log q_\\phi(z|x)` ``(B, n)``."""
        mean, log_std = self(x)
        eps = torch.randn(x.shape[0], n_samples, self.z_dim, generator=generator, dtype=x.dtype,
                          device=x.device)
        z = mean.unsqueeze(1) + eps * log_std.exp().unsqueeze(1)
        log_q = -0.5 * (eps**2).sum(-1) - log_std.sum(-1, keepdim=True) - 0.5 * self.z_dim * LOG_2PI
        return z, log_q


class DeterministicEncoder(nn.Module):
    """:math:`z = f_\\phi(x)` (the WAE encoder)."""

    def __init__(self, x_dim: int, z_dim: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.x_dim, self.z_dim = check_count(x_dim, "x_dim"), check_count(z_dim, "z_dim")
        self.net = mlp(x_dim, z_dim, hidden, depth, "tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BernoulliDecoder(nn.Module):
    r""":math:`p_\theta(x|z) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(f_\theta(z)_i))`."""

    def __init__(self, z_dim: int, x_dim: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.x_dim, self.z_dim = check_count(x_dim, "x_dim"), check_count(z_dim, "z_dim")
        self.net = mlp(z_dim, x_dim, hidden, depth, "tanh")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits, ``(*, x_dim)``."""
        return self.net(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p_\\theta(x|z)` for ``x (B, x_dim)`` and ``z (B, *, z_dim)``: shape ``(B, *)``."""
        logits = self(z)
        target = x.reshape(x.shape[0], *([1] * (z.dim() - 2)), x.shape[-1]).expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)

    def squared_error(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r"""The WAE's reconstruction cost in the paper's code,
        :math:`\sum_i (x_i - \sigma(f_\theta(z)_i))^2`, the squared error of the decoder's
        pixel probabilities (official ``losses/wae.py``, lines 22-23 and 41-42, on a decoder
        ending in a sigmoid, ``models/wae.py`` line 39). Shapes as :meth:`log_likelihood`."""
        probs = torch.sigmoid(self(z))
        target = x.reshape(x.shape[0], *([1] * (z.dim() - 2)), x.shape[-1]).expand_as(probs)
        return ((target - probs) ** 2).sum(-1)


def paper_bandwidth(samples: torch.Tensor) -> torch.Tensor:
    """The paper's code's median rule (``heuristic_kernel_width``, official
    ``models/kernel_score_estimators.py`` lines 31-44): the ``M*M // 2``-th largest of all
    ``M*M`` distances of a group, zeros included; :func:`ssm_lib.score_estimators.median_bandwidth`
    with ``with_diagonal=True``. For ``bandwidth=`` of the kernel estimators."""
    return median_bandwidth(samples, with_diagonal=True)


def paper_eigen_count(samples: torch.Tensor, threshold: float = 0.99, bandwidth=paper_bandwidth) -> int:
    r"""The number :math:`J` of eigenfunctions that the paper's code's spectral estimator keeps
    (official ``models/kernel_score_estimators.py`` lines 112-125): the eigenvalues of the Gram
    matrices of all groups of ``samples (*batch, M, d)`` are averaged over the groups, sorted
    largest first and normalised to shares; :math:`J` counts those whose cumulative share is
    *below* ``threshold``, so the eigenvalue that crosses it is left out (the library's
    per-group rule keeps it). :math:`J = 0` means all :math:`M` in that code (a slice
    ``[-0:]``), and so here."""
    h = bandwidth(samples)                 # checks samples (a clear ValueError)
    z = samples.detach()
    m = z.shape[-2]
    k = rbf_gram(z, z, h)
    lam = torch.linalg.eigvalsh(k).reshape(-1, m).mean(0).flip(-1)
    count = int(((lam / lam.sum()).cumsum(-1) < threshold).sum())
    return count if count > 0 else m


class PaperSpectralScoreEstimator(SpectralScoreEstimator):
    """The spectral estimator as the paper's code runs it: the bandwidth by
    :func:`paper_bandwidth`, no ridge, and the number of eigenfunctions chosen by
    :func:`paper_eigen_count` at the *first* call and then kept for every later call (the
    official estimator stores it on itself, ``self._n_eigen``, and never recomputes it: in
    training it is fixed by the untrained encoder's first batch)."""

    def __init__(self, eigen_threshold: float = 0.99):
        super().__init__(n_eigen=None, eigen_threshold=eigen_threshold, bandwidth=paper_bandwidth)

    def __call__(self, samples: torch.Tensor, context: torch.Tensor | None = None, *,
                 queries: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_eigen is None:
            self.n_eigen = paper_eigen_count(samples, self.eigen_threshold, self.bandwidth)
        return super().__call__(samples, context, queries=queries)


def sigmoid_schedule(n: int, radius: float = 4.0) -> np.ndarray:
    r"""``n`` inverse temperatures from 0 to 1 (official ``evaluations/ais.py``, ``get_schedule``):
    :math:`s_i = \sigma(t_i)` at ``n`` equally spaced :math:`t_i \in [-r, r]`, rescaled so that
    the first is 0 and the last 1; ``n = 1`` gives ``[0, 1]``."""
    n = check_count(n, "n")
    if n == 1:
        return np.array([0.0, 1.0])
    s = 1.0 / (1.0 + np.exp(-np.linspace(-radius, radius, n)))
    return (s - s.min()) / (s.max() - s.min())


def ais_log_likelihood(x: torch.Tensor, log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                       z_dim: int, *, n_temperatures: int, n_chains: int, n_leapfrog: int,
                       step_size: float = 0.01, target_acceptance: float = 0.65,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    r"""Annealed importance sampling estimate of :math:`\log p(x) = \log\int p(x|z)\,p(z)\,dz`
    for each row of ``x (B, x_dim)``, with the prior :math:`p(z) = \mathcal N(0, I_{z\_dim})`.

    ``log_likelihood(x, z)`` gives :math:`\log p(x|z)` of shape ``(B, C)`` for ``z (B, C, z_dim)``
    (e.g. :meth:`BernoulliDecoder.log_likelihood`). The chains start at prior draws and move
    through the targets :math:`f_\beta(z) = p(z)\,p(x|z)^\beta` at the inverse temperatures
    :math:`0 = \beta_0 < \dots < \beta_{T-1} = 1` of :func:`sigmoid_schedule` (``T =
    n_temperatures``); each chain's log weight gathers
    :math:`\sum_t (\beta_{t+1} - \beta_t) \log p(x|z_t)` and, after each increment, ``z`` takes
    one HMC step (``n_leapfrog`` leapfrog steps, unit mass, Metropolis correction) that leaves
    :math:`f_{\beta_{t+1}}` invariant. The estimate is
    :math:`\log \frac1C \sum_c e^{w_c}` over the ``n_chains`` chains of each image; it is
    unbiased for :math:`p(x)`, so in expectation a lower bound on :math:`\log p(x)`.

    The step size starts at ``step_size`` and adapts as in the paper's code: one step size for
    the whole batch, times 1.02 when the running acceptance rate (weight 0.9 on the past)
    exceeds ``target_acceptance``, else times 0.98, kept within [1e-4, 0.5]. (The official
    leapfrog makes ``n_leapfrog`` gradient evaluations and ``n_leapfrog - 1`` position
    updates; this one makes ``n_leapfrog`` position updates.)

    Returns ``(log_p (B,), info)`` with ``info = {"acceptance": mean acceptance rate,
    "step_size": final step size}``. Gradients are not kept (an evaluation)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-d tensor (B, x_dim), got {getattr(x, 'shape', type(x))}")
    if not callable(log_likelihood):
        raise TypeError(f"log_likelihood must be callable, got {type(log_likelihood).__name__}")
    z_dim = check_count(z_dim, "z_dim")
    n_temperatures = check_count(n_temperatures, "n_temperatures")
    n_chains = check_count(n_chains, "n_chains")
    n_leapfrog = check_count(n_leapfrog, "n_leapfrog")
    eps = check_nonnegative(step_size, "step_size")
    if eps == 0:
        raise ValueError("step_size must be > 0")
    target = check_nonnegative(target_acceptance, "target_acceptance")
    betas = sigmoid_schedule(n_temperatures)
    b = x.shape[0]
    x = x.detach()

    def loglik(z: torch.Tensor) -> torch.Tensor:
        out = log_likelihood(x, z)
        if out.shape != z.shape[:-1]:
            raise ValueError(f"log_likelihood(x, z) must have shape {tuple(z.shape[:-1])}, got "
                             f"{tuple(out.shape)}")
        return out

    def energy_and_grad(z: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            u = 0.5 * (z**2).sum(-1) - beta * loglik(z)
            (g,) = torch.autograd.grad(u.sum(), z)
        return u.detach(), g

    z = torch.randn(b, n_chains, z_dim, generator=generator, dtype=x.dtype, device=x.device)
    w = torch.zeros(b, n_chains, dtype=x.dtype, device=x.device)
    avg_accept, accepted = target, []
    with torch.no_grad():
        ll = loglik(z)
    for t in range(len(betas) - 1):
        beta = float(betas[t + 1])
        w += (beta - float(betas[t])) * ll
        # one HMC step leaving p(z) p(x|z)^beta invariant
        u0, g = energy_and_grad(z, beta)
        v0 = torch.randn(z.shape, generator=generator, dtype=x.dtype, device=x.device)
        zn, v = z, v0 - 0.5 * eps * g
        for step in range(n_leapfrog):
            zn = zn + eps * v
            u1, g = energy_and_grad(zn, beta)
            v = v - (eps if step < n_leapfrog - 1 else 0.5 * eps) * g
        log_ratio = (u0 + 0.5 * (v0**2).sum(-1)) - (u1 + 0.5 * (v**2).sum(-1))
        uniform = torch.rand(log_ratio.shape, generator=generator, dtype=x.dtype, device=x.device)
        accept = torch.isfinite(log_ratio) & (uniform.log() < log_ratio)
        z = torch.where(accept.unsqueeze(-1), zn, z)
        rate = accept.to(x.dtype).mean().item()
        accepted.append(rate)
        eps = min(max(eps * (1.02 if avg_accept > target else 0.98), 1e-4), 0.5)
        avg_accept = 0.9 * avg_accept + 0.1 * rate
        with torch.no_grad():
            ll = loglik(z)
    if not torch.isfinite(w).all():
        raise FloatingPointError("AIS log weights are not finite")
    log_p = torch.logsumexp(w, dim=1) - math.log(n_chains)
    return log_p, {"acceptance": float(np.mean(accepted)) if accepted else float("nan"), "step_size": eps}
