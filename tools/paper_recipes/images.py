r"""The image data of the flow and auto-encoder experiments: scikit-learn's 8 × 8 digits and
MNIST (the 10,000 digits shipped in the repository's ``data/mnist``, md5-checked, or the full set
through torchvision), as integer pixels with their number of grey levels :math:`L`.

The preprocessing into logit space (dequantisation, squash, logit, and the log-Jacobian) is the
library's :class:`ssm_lib.images.LogitTransform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import DATA_DIR
from ._checks import check_choice, check_count
from .files import verify_md5

__all__ = ["MNIST_10K_MD5", "MNIST_SOURCES", "ImageData", "load_digits_8x8", "load_mnist"]

#: md5 of the shipped MNIST file (``data/mnist/mnist-10k.npz``, see ``data/README.md``).
MNIST_10K_MD5 = "174303664a26222d7525c27486889303"
MNIST_SOURCES = ("shipped", "torchvision", "auto")


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
