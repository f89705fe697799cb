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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssm_lib.implicit_vae import LOG_2PI
from ssm_lib.models import mlp
from ssm_lib.score_estimators import SpectralScoreEstimator, median_bandwidth, rbf_gram

from ._checks import check_count

__all__ = [
    "BernoulliDecoder", "DeterministicEncoder", "GaussianEncoder", "ImplicitEncoder",
    "PaperSpectralScoreEstimator", "paper_bandwidth", "paper_eigen_count",
]


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
