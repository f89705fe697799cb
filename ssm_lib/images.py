r"""The logit preprocessing of image data for flows (Dinh et al. 2015; the paper's NICE
experiment), with its log-Jacobian: :class:`LogitTransform`. (The repository's image files
and their loaders are on the experiments' side, ``paper_recipes.images``.)

Pixels are integers :math:`k \in \{0, \dots, L-1\}` (:math:`L` = ``levels``: 17 for
scikit-learn's digits, 256 for MNIST). The preprocessing (Song et al. 2019, Sec. 5.2, after
Dinh et al. 2015) is

1. *dequantisation*: :math:`u = k/(L-1) + (\epsilon - \tfrac12)/L`, :math:`\epsilon \sim
   U(0, 1)` (for MNIST: noise in :math:`\pm 1/512`);
2. *squashing* into :math:`[\alpha, 1-\alpha]`, :math:`\alpha = 10^{-3}`: the paper clamps,
   :math:`p = \min(\max(u, \alpha), 1-\alpha)` (``squash="clamp"``); the invertible
   alternative (``squash="affine"``) maps the whole dequantised range
   :math:`[u_0, u_1] = [-\tfrac1{2L}, 1 + \tfrac1{2L}]` onto it,
   :math:`p = \alpha + (1-2\alpha)\,(u - u_0)/(u_1 - u_0)` (the usual
   :math:`\alpha + (1-2\alpha)\,u` would leave :math:`(0, 1)` for the darkest and brightest
   pixels, whose bins reach past 0 and 1);
3. *logit*: :math:`y = \log p - \log(1-p)`.

The flow models :math:`y`. By the change of variables, a density :math:`p_Y` on logit space
gives :math:`\log p_U(u) = \log p_Y(y) + \sum_i \log|dy_i/du_i|` with

.. math::

    \log\Big|\frac{dy_i}{du_i}\Big| = -\log p_i - \log(1-p_i)
        \;\Big(+ \log\frac{1-2\alpha}{u_1 - u_0} \text{ for the affine squash}\Big),

and, as the dequantisation bins (width :math:`1/L`) are disjoint, :math:`-\log_2 p_U(u)/d +
\log_2 L` bits per dimension bounds the discrete model's code length from above (Theis, van
den Oord & Bethge 2016). With the paper's clamp that bound does not hold exactly: the clamp
maps every :math:`u < \alpha` to the same :math:`\alpha` (a point mass, about three quarters
of MNIST's dequantised background pixels), so
:meth:`ssm_lib.images.LogitTransform.bits_per_dim` is then the change-of-variables value at
the clamped point, comparable with the flow literature only approximately.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_choice, check_count, check_generator, check_number

__all__ = ["SQUASHES", "LogitTransform"]

SQUASHES = ("clamp", "affine")


class LogitTransform:
    r"""Dequantise, squash into :math:`[\alpha, 1-\alpha]` and take the logit (see the module
    docstring for the equations), with the log-Jacobian of the pixel-to-logit map.

    Args:
        levels: number of grey levels :math:`L` of the pixels.
        alpha: the margin :math:`\alpha` (paper: :math:`10^{-3}`).
        squash: ``"clamp"`` (the paper's) or ``"affine"`` (invertible on the dequantised
            range :math:`[-\tfrac1{2L}, 1 + \tfrac1{2L}]`).
    """

    def __init__(self, levels: int, alpha: float = 1e-3, squash: str = "clamp"):
        levels = check_count(levels, "levels", 2)
        a = check_number(alpha, "alpha")
        if not 0.0 < a < 0.5:
            raise ValueError(f"alpha must be a number in (0, 0.5), got {alpha!r}")
        self.levels, self.alpha, self.squash = levels, a, check_choice(squash, SQUASHES, "squash")

    def dequantize(self, pixels: torch.Tensor, *, generator: torch.Generator | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
        r""":math:`u = k/(L-1) + (\epsilon - \frac12)/L` with :math:`\epsilon\sim U(0,1)`.

        ``pixels`` are whole numbers in :math:`0, \dots, L-1` (any real dtype), at least one
        dimension (the batch first); ``dtype`` is the floating dtype of the result."""
        if not isinstance(pixels, torch.Tensor):
            raise ValueError(f"pixels must be a torch.Tensor, got {type(pixels).__name__}")
        if pixels.dim() < 1 or pixels.is_complex() or pixels.dtype == torch.bool:
            raise ValueError(f"pixels must be a real tensor of shape (batch, ...), got dtype "
                             f"{pixels.dtype} and shape {tuple(pixels.shape)}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        check_generator(generator, pixels.device)
        k = pixels.to(dtype)
        if k.numel() and not bool(torch.isfinite(k).all()):
            raise ValueError("pixels must be finite whole numbers, got NaN or infinite values")
        if k.numel() and (float(k.min()) < 0 or float(k.max()) > self.levels - 1):
            raise ValueError(f"pixels must lie in 0 .. {self.levels - 1}, got values in "
                             f"[{float(k.min()):g}, {float(k.max()):g}]")
        if pixels.is_floating_point() and not bool((pixels == pixels.round()).all()):
            raise ValueError("pixels must be whole numbers (grey levels), got fractional values")
        eps = torch.rand(k.shape, generator=generator, dtype=dtype, device=k.device)
        return k / (self.levels - 1) + (eps - 0.5) / self.levels

    def _affine_range(self) -> tuple[float, float]:
        """``(u_0, u_1 - u_0)``: the start and width of the dequantised range."""
        return -0.5 / self.levels, 1.0 + 1.0 / self.levels

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        a = self.alpha
        if self.squash == "clamp":
            return u.clamp(a, 1 - a)
        u0, width = self._affine_range()
        return a + (1 - 2 * a) * ((u - u0) / width)

    def to_logit(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(y, log_det)``: the logit :math:`y` of the squashed :math:`u` and
        :math:`\sum_i\log|dy_i/du_i|` of shape ``(batch,)`` (taken at the squashed value)."""
        if not isinstance(u, torch.Tensor) or u.dim() < 1 or not u.is_floating_point():
            raise ValueError("u must be a floating torch.Tensor of shape (batch, ...), got "
                             + (f"dtype {u.dtype} and shape {tuple(u.shape)}" if isinstance(u, torch.Tensor)
                                else type(u).__name__))
        p = self._squash(u)
        y = torch.log(p) - torch.log1p(-p)
        log_jac = -torch.log(p) - torch.log1p(-p)
        if self.squash == "affine":
            log_jac = log_jac + math.log((1 - 2 * self.alpha) / self._affine_range()[1])
        return y, log_jac.reshape(u.shape[0], -1).sum(1)

    def from_logit(self, y: torch.Tensor) -> torch.Tensor:
        r"""The inverse of the logit and the squash, :math:`\sigma(y)` (clamp) or
        :math:`u_0 + (u_1 - u_0)(\sigma(y) - \alpha)/(1-2\alpha)` (affine). Exact on
        :math:`[\alpha, 1-\alpha]` for the clamp, on the dequantised range for the affine
        squash."""
        p = torch.sigmoid(y)
        if self.squash == "clamp":
            return p
        u0, width = self._affine_range()
        return u0 + width * ((p - self.alpha) / (1 - 2 * self.alpha))

    def __call__(self, pixels: torch.Tensor, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Integer pixels to logit-space data (the flow's input)."""
        return self.to_logit(self.dequantize(pixels, generator=generator, dtype=dtype))[0]

    def to_pixels(self, y: torch.Tensor) -> torch.Tensor:
        """Logit-space values back to intensities in [0, 1] (for showing samples)."""
        return self.from_logit(y).clamp(0.0, 1.0)

    def pixel_log_prob(self, log_prob_logit: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p_U(u) = \log p_Y(y) + \sum_i\log|dy_i/du_i|`."""
        return log_prob_logit + log_det

    def bits_per_dim(self, log_prob_logit: torch.Tensor, log_det: torch.Tensor, dim: int) -> torch.Tensor:
        r"""Bits per dimension of pixel space, :math:`-\log_2 p_U(u)/d + \log_2 L`."""
        check_count(dim, "dim")
        return -self.pixel_log_prob(log_prob_logit, log_det) / (dim * math.log(2)) + math.log2(self.levels)
