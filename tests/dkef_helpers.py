"""Shared test models for the DKEF kernel-path tests (pinned values depend on this exact model)."""

from __future__ import annotations

import torch

from ssm_lib.dkef import DKEF

__all__ = ["varied_dkef"]


def varied_dkef(m: int = 15, dim: int = 4, hidden: int = 6, dtype: torch.dtype = torch.float64) -> DKEF:
    """Unequal kernel weights and bandwidths (not the initial ones) and a non-zero alpha."""
    g = torch.Generator().manual_seed(21)
    model = DKEF(torch.randn(m, dim, generator=g, dtype=dtype) * 1.5 + 0.5, n_kernels=3, hidden=hidden,
                 generator=g)
    with torch.no_grad():
        model.kernel_logits.copy_(torch.tensor([0.3, -0.2, 0.1], dtype=dtype))
        model.log10_bandwidths.copy_(torch.tensor([0.2, 0.6, 1.1], dtype=dtype))
        model.alpha.copy_(torch.randn(m, generator=g, dtype=dtype) * 0.4)
    return model
