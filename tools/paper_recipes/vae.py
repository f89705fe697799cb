r"""The encoder and decoder networks of the paper's implicit-encoder auto-encoder experiment
(Song et al. 2019, Section 5.2, MNIST): MLPs with ``tanh`` units, built on
:func:`ssm_lib.models.mlp`.

* :class:`ImplicitEncoder`: :math:`z = g_\phi(x, \epsilon)`, :math:`\epsilon\sim\mathcal N(0, I)`
  fed in next to :math:`x`, so :math:`q_\phi(z|x)` can be sampled but has no density;
* :class:`GaussianEncoder`: the explicit :math:`q_\phi(z|x) = \mathcal N(\mu_\phi(x),
  \operatorname{diag}\sigma_\phi^2(x))` (the reference, and the proposal of the evaluation);
* :class:`DeterministicEncoder` (WAE) and :class:`BernoulliDecoder` :math:`p_\theta(x|z)`.

They have the interfaces that the library's objectives in :mod:`ssm_lib.implicit_vae` use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssm_lib.implicit_vae import LOG_2PI
from ssm_lib.models import mlp

from ._checks import check_count

__all__ = ["BernoulliDecoder", "DeterministicEncoder", "GaussianEncoder", "ImplicitEncoder"]


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
