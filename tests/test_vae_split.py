"""paper_recipes.vae.vae_split: the paper's MNIST split (official runner) and the split of data
without an official test set, checked against the official code's own lines and the notebook's
earlier split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paper_recipes.images import ImageData
from paper_recipes.vae import vae_split


def _images(n: int, n_official_test: int = 0) -> ImageData:
    pixels = (torch.arange(n * 4) % 256).reshape(n, 4).to(torch.uint8)
    pixels[:, 0] = torch.arange(n) % 256  # rows told apart by their first pixel and a second
    pixels[:, 1] = torch.arange(n) // 256
    is_test = None
    if n_official_test:
        is_test = torch.zeros(n, dtype=torch.bool)
        is_test[-n_official_test:] = True
    return ImageData(pixels=pixels, labels=torch.zeros(n, dtype=torch.int64), levels=256,
                     shape=(2, 2), source="test", is_test=is_test)


def _row_ids(probs: torch.Tensor) -> list[int]:
    px = (probs * 255).round().to(torch.int64)
    return (px[:, 0] + 256 * px[:, 1]).tolist()


def test_with_an_official_test_set_the_split_is_the_official_runners():
    data = _images(600, n_official_test=100)  # 500 training images, then 100 official test images
    train, test, text = vae_split(data, n_test=40, split_seed=2019)
    # the official runners/vae_runner.py: indices shuffled by the global NumPy generator seeded
    # with 2019 (its state restored afterwards), the first 80 % train
    indices = list(range(500))
    state = np.random.get_state()  # noqa: NPY002 - the official lines, as they are
    np.random.seed(2019)  # noqa: NPY002
    np.random.shuffle(indices)  # noqa: NPY002
    np.random.set_state(state)  # noqa: NPY002
    assert _row_ids(train) == indices[:400]
    assert _row_ids(test) == list(range(500, 540))  # the first n_test official test images
    assert train.dtype == torch.float32 and float(train.max()) <= 1.0
    assert "official split: 400 of the 500 training images" in text
    assert _row_ids(vae_split(data, 40, 2018)[0]) != indices[:400]  # the seed is used


def test_without_one_the_split_is_the_notebooks_permutation_unchanged():
    data = _images(300)
    train, test, text = vae_split(data, n_test=30, split_seed=7)
    # what the notebook did before vae_split: numpy float32 grey levels, default_rng permutation
    probs = data.pixels.reshape(300, -1).numpy().astype(np.float32) / 255
    order = np.random.default_rng(7).permutation(300)
    assert torch.equal(test, torch.from_numpy(probs[order][:30]))
    assert torch.equal(train, torch.from_numpy(probs[order][30:]))
    assert text == "270 training and 30 test images drawn at random (seed 7)"


def test_a_test_set_as_large_as_the_data_holds_a_tenth_out_and_says_so():
    train, test, text = vae_split(_images(300), n_test=300, split_seed=0)
    assert (len(train), len(test)) == (270, 30)
    assert "a tenth held out instead of the 300 test images asked for" in text


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_n_test_must_be_a_positive_count(bad):
    with pytest.raises((ValueError, TypeError), match="n_test"):
        vae_split(_images(10), n_test=bad, split_seed=0)
