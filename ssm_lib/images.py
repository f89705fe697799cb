r"""Image data for the flow experiments: loaders (8 × 8 digits, MNIST) and the logit
preprocessing of the paper's NICE experiment, with its log-Jacobian.

Pixels are integers :math:`k \in \{0, \dots, L-1\}` (:math:`L` = ``levels``: 17 for
scikit-learn's digits, 256 for MNIST). The preprocessing (Song et al. 2019, Sec. 5.2, after
Dinh et al. 2015) is

1. *dequantisation*: :math:`u = k/(L-1) + (\epsilon - \tfrac12)/L`, :math:`\epsilon \sim
   U(0, 1)` (for MNIST: noise in :math:`\pm 1/512`);
2. *squashing* into :math:`[\alpha, 1-\alpha]`, :math:`\alpha = 10^{-3}`: the paper clamps,
   :math:`p = \min(\max(u, \alpha), 1-\alpha)` (``squash="clamp"``); the usual invertible
   alternative is :math:`p = \alpha + (1-2\alpha)\,u` (``squash="affine"``);
3. *logit*: :math:`y = \log p - \log(1-p)`.

The flow models :math:`y`. By the change of variables, a density :math:`p_Y` on logit space
gives :math:`\log p_U(u) = \log p_Y(y) + \sum_i \log|dy_i/du_i|` with

.. math::

    \log\Big|\frac{dy_i}{du_i}\Big| = -\log p_i - \log(1-p_i)
        \;\big(+ \log(1-2\alpha) \text{ for the affine squash}\big),

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._checks import check_choice, check_count
from ._files import verify_md5

#: md5 of the shipped MNIST file (``data/mnist/mnist-10k.npz``, see ``data/README.md``).
MNIST_10K_MD5 = "174303664a26222d7525c27486889303"
#: The default data folder, ``data/`` at the root of the repository.
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
MNIST_SOURCES = ("shipped", "torchvision", "auto")
SQUASHES = ("clamp", "affine")


@dataclass
class ImageData:
    """A set of images as flat integer pixels: ``pixels`` is an ``(N, h*w)`` ``uint8``
    tensor with values in ``0 .. levels-1``, ``labels`` the ``(N,)`` class labels, ``levels``
    the number of grey levels :math:`L`, ``shape`` the ``(h, w)`` of one image, ``source``
    what was loaded, in words (printed and recorded by the experiments), and ``is_test``
    ``(N,)`` bools marking an official test split (``None`` when there is none)."""

    pixels: torch.Tensor
    labels: torch.Tensor
    levels: int
    shape: tuple[int, int]
    source: str
    is_test: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        return self.shape[0] * self.shape[1]

    def split(self, n_test: int, val_fraction: float = 0.1, seed: int = 0) -> dict[str, torch.Tensor]:
        """Train, validation and test pixels.

        The test set is the official one when there is one (``n_test`` is then ignored),
        otherwise ``n_test`` images drawn at random; ``val_fraction`` of the rest is the
        validation set (the paper: 90/10). The shuffle uses a generator seeded with ``seed``.
        """
        check_count(n_test, "n_test")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        gen = torch.Generator().manual_seed(int(seed))
        n = self.pixels.shape[0]
        if self.is_test is not None:
            test_idx = torch.nonzero(self.is_test).squeeze(1)
            rest = torch.nonzero(~self.is_test).squeeze(1)
            rest = rest[torch.randperm(len(rest), generator=gen)]
        else:
            if n_test >= n:
                raise ValueError(f"n_test must be below the number of images {n}, got {n_test}")
            perm = torch.randperm(n, generator=gen)
            test_idx, rest = perm[:n_test], perm[n_test:]
        n_val = max(1, int(round(val_fraction * len(rest))))
        return {"train": self.pixels[rest[n_val:]], "val": self.pixels[rest[:n_val]],
                "test": self.pixels[test_idx]}


def load_digits_8x8() -> ImageData:
    """scikit-learn's 1797 handwritten digits (8 × 8, 17 grey levels), bundled with the
    package (no download)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = torch.from_numpy(np.asarray(bunch.data, dtype=np.uint8))
    return ImageData(pixels=pixels, labels=torch.from_numpy(np.asarray(bunch.target)), levels=17,
                     shape=(8, 8), source="scikit-learn digits, 1797 images of 8x8, 17 grey levels")


def _load_shipped_mnist(data_dir: Path) -> ImageData:
    path = verify_md5(data_dir / "mnist" / "mnist-10k.npz", MNIST_10K_MD5)
    with np.load(path) as npz:
        images, labels = npz["images"], npz["labels"]
    return ImageData(pixels=torch.from_numpy(images.reshape(len(images), -1).astype(np.uint8)),
                     labels=torch.from_numpy(labels.astype(np.int64)), levels=256, shape=(28, 28),
                     source="MNIST, the 10,000 digits shipped in data/mnist (md5 verified)")


def _load_torchvision_mnist(root: Path) -> ImageData:
    from torchvision.datasets import MNIST  # optional: only when asked for

    train = MNIST(str(root), train=True, download=True)
    test = MNIST(str(root), train=False, download=True)
    pixels = torch.cat([train.data.reshape(len(train.data), -1), test.data.reshape(len(test.data), -1)])
    labels = torch.cat([train.targets, test.targets])
    is_test = torch.cat([torch.zeros(len(train.data), dtype=torch.bool),
                         torch.ones(len(test.data), dtype=torch.bool)])
    return ImageData(pixels=pixels.to(torch.uint8), labels=labels, levels=256, shape=(28, 28),
                     source="MNIST via torchvision, 60,000 training and 10,000 test digits",
                     is_test=is_test)


def load_mnist(source: str = "shipped", *, data_dir: str | Path | None = None,
               download_root: str | Path | None = None) -> ImageData:
    """MNIST as 28 × 28 images with 256 grey levels.

    Args:
        source: ``"shipped"`` (default): the 10,000 digits in ``data/mnist/mnist-10k.npz``,
            md5-checked; ``"torchvision"``: the full data set through torchvision (needs the
            package and, the first time, a network); ``"auto"``: torchvision when it is
            installed and the data can be had, otherwise the shipped digits.
        data_dir: folder holding ``mnist/mnist-10k.npz`` (default: the repository's ``data/``).
        download_root: where torchvision keeps its copy (default ``data_dir/torchvision``).
    """
    check_choice(source, MNIST_SOURCES, "source")
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    root = Path(download_root) if download_root is not None else data_dir / "torchvision"
    if source == "shipped":
        return _load_shipped_mnist(data_dir)
    if source == "torchvision":
        try:
            return _load_torchvision_mnist(root)
        except ImportError as err:
            raise ValueError("source='torchvision' needs the torchvision package, which is not "
                             "installed; use source='shipped'") from err
    try:
        return _load_torchvision_mnist(root)
    except Exception as err:  # no package, no network, a broken download: fall back
        data = _load_shipped_mnist(data_dir)
        data.source += f" (torchvision unavailable: {type(err).__name__})"
        return data


class LogitTransform:
    r"""Dequantise, squash into :math:`[\alpha, 1-\alpha]` and take the logit (see the module
    docstring for the equations), with the log-Jacobian of the pixel-to-logit map.

    Args:
        levels: number of grey levels :math:`L` of the pixels.
        alpha: the margin :math:`\alpha` (paper: :math:`10^{-3}`).
        squash: ``"clamp"`` (the paper's) or ``"affine"`` (invertible on :math:`[0, 1]`).
    """

    def __init__(self, levels: int, alpha: float = 1e-3, squash: str = "clamp"):
        check_count(levels, "levels")
        if levels < 2:
            raise ValueError(f"levels must be at least 2, got {levels}")
        if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 0.5):
            raise ValueError(f"alpha must be a number in (0, 0.5), got {alpha!r}")
        self.levels, self.alpha, self.squash = levels, float(alpha), check_choice(squash, SQUASHES, "squash")

    def dequantize(self, pixels: torch.Tensor, *, generator: torch.Generator | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
        r""":math:`u = k/(L-1) + (\epsilon - \frac12)/L` with :math:`\epsilon\sim U(0,1)`."""
        if not isinstance(pixels, torch.Tensor):
            raise ValueError(f"pixels must be a torch.Tensor, got {type(pixels).__name__}")
        k = pixels.to(dtype)
        if k.numel() and (float(k.min()) < 0 or float(k.max()) > self.levels - 1):
            raise ValueError(f"pixels must lie in 0 .. {self.levels - 1}, got values in "
                             f"[{float(k.min()):g}, {float(k.max()):g}]")
        eps = torch.rand(k.shape, generator=generator, dtype=dtype, device=k.device)
        return k / (self.levels - 1) + (eps - 0.5) / self.levels

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        a = self.alpha
        return u.clamp(a, 1 - a) if self.squash == "clamp" else a + (1 - 2 * a) * u

    def to_logit(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(y, log_det)``: the logit :math:`y` of the squashed :math:`u` and
        :math:`\sum_i\log|dy_i/du_i|` of shape ``(batch,)`` (taken at the squashed value)."""
        p = self._squash(u)
        y = torch.log(p) - torch.log1p(-p)
        log_jac = -torch.log(p) - torch.log1p(-p)
        if self.squash == "affine":
            log_jac = log_jac + math.log(1 - 2 * self.alpha)
        return y, log_jac.reshape(u.shape[0], -1).sum(1)

    def from_logit(self, y: torch.Tensor) -> torch.Tensor:
        r"""The inverse of the logit and the squash, :math:`\sigma(y)` (clamp) or
        :math:`(\sigma(y) - \alpha)/(1-2\alpha)` (affine). Exact on :math:`[\alpha, 1-\alpha]`
        for the clamp, on :math:`[0, 1]` for the affine squash."""
        p = torch.sigmoid(y)
        return p if self.squash == "clamp" else (p - self.alpha) / (1 - 2 * self.alpha)

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
