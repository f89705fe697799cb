"""The book's running example densities (not part of ``ssm_lib``; built from its classes)."""

from __future__ import annotations

import torch

from ssm_lib.densities import GaussianMixture

__all__ = ["two_gaussian_mixture"]


def two_gaussian_mixture(dtype: torch.dtype | None = None) -> GaussianMixture:
    """A two-component 2-D Gaussian mixture with correlated, unequal components."""
    if dtype is None:
        dtype = torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    means = torch.tensor([[-1.5, -0.5], [1.5, 1.0]], dtype=dtype)
    covs = torch.stack([torch.tensor([[0.6, 0.2], [0.2, 0.4]], dtype=dtype),
                        torch.tensor([[0.5, -0.15], [-0.15, 0.7]], dtype=dtype)])
    return GaussianMixture(torch.tensor([0.45, 0.55], dtype=dtype), means, covs)
