"""Oracle test for the final denoising step of annealed Langevin dynamics (issue 19)."""

from __future__ import annotations

import torch

from ssm_lib import annealed_langevin_dynamics

F64 = torch.float64


def test_final_tweedie_step_uses_sigma_squared():
    """Mutant: the final denoising step of ``annealed_langevin_dynamics`` using sigma_L
    instead of sigma_L^2 (``x + sigma_last * s`` for ``x + sigma_last**2 * s``). Oracle:
    data N(0, I) perturbed by N(0, sigma^2 I) has the score s(x, sigma) = -x / (1 + sigma^2),
    and Tweedie's formula E[x0 | x] = x + sigma^2 s(x, sigma) = x / (1 + sigma^2). With the
    same generator, the run with ``denoise=True`` must equal the run without, divided by
    1 + sigma_L^2, at sigma_L = 0.5 (where sigma and sigma^2 differ)."""

    def score(x, sigma):
        return -x / (1 + sigma[:, None] ** 2)

    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    kwargs = dict(sigmas=[2.0, 1.0, 0.5], step_size=0.01, n_steps_each=5)
    raw = annealed_langevin_dynamics(score, x0, generator=torch.Generator().manual_seed(1), denoise=False,
                                     **kwargs)
    den = annealed_langevin_dynamics(score, x0, generator=torch.Generator().manual_seed(1), denoise=True,
                                     **kwargs)
    torch.testing.assert_close(den, raw / (1 + 0.5**2), rtol=1e-12, atol=1e-12)
