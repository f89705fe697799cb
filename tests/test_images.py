"""Image loaders (md5-checked) and the logit preprocessing with its log-Jacobian."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from paper_recipes.files import file_md5, verify_md5
from paper_recipes.images import MNIST_10K_MD5, load_digits_8x8, load_mnist
from ssm_lib.images import LogitTransform

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


@pytest.mark.parametrize("squash", ["clamp", "affine"])
def test_logit_transform_inverts(squash):
    t = LogitTransform(256, squash=squash)
    lo, hi = (1e-3, 1 - 1e-3) if squash == "clamp" else (-0.5 / 256, 1 + 0.5 / 256)
    u = lo + (hi - lo) * torch.rand(20, 7, dtype=torch.float64)
    y, _ = t.to_logit(u)
    assert torch.allclose(t.from_logit(y), u, atol=1e-12)


def test_clamp_maps_the_margin_to_its_edge():
    t = LogitTransform(256, alpha=1e-3)
    y, _ = t.to_logit(torch.tensor([[-0.001, 0.0005, 0.9999]], dtype=torch.float64))
    edge = math.log(1e-3 / (1 - 1e-3))
    assert torch.allclose(y, torch.tensor([[edge, edge, -edge]], dtype=torch.float64))


@pytest.mark.parametrize("squash", ["clamp", "affine"])
def test_log_det_is_the_log_jacobian(squash):
    t = LogitTransform(17, alpha=0.01, squash=squash)
    u = 0.02 + 0.96 * torch.rand(5, 6, dtype=torch.float64)
    u_ = u.clone().requires_grad_(True)
    y, log_det = t.to_logit(u_)
    (dy,) = torch.autograd.grad(y.sum(), u_)  # elementwise map: the Jacobian is diagonal
    assert torch.allclose(log_det, dy.abs().log().sum(1), atol=1e-12)


def test_change_of_variables_integrates_in_pixel_space():
    """A standard normal on logit space, pulled back through the affine squash, has mass
    Phi(logit(1 - a)) - Phi(logit(a)) on the dequantised range u in [-1/(2L), 1 + 1/(2L)]."""
    a = 0.05
    t = LogitTransform(256, alpha=a, squash="affine")
    n = 200_001
    u = torch.linspace(-0.5 / 256, 1 + 0.5 / 256, n, dtype=torch.float64).unsqueeze(1)
    y, log_det = t.to_logit(u)
    log_py = -0.5 * y[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
    dens = t.pixel_log_prob(log_py, log_det).exp()
    mass = float(torch.trapezoid(dens, u[:, 0]))
    edge = math.log((1 - a) / a)
    expected = math.erf(edge / math.sqrt(2))  # Phi(edge) - Phi(-edge)
    assert mass == pytest.approx(expected, abs=1e-7)


def test_bits_per_dim():
    t = LogitTransform(256)
    d = 10
    log_det = torch.tensor([3.0, -1.0], dtype=torch.float64)
    # log p_U = 0 (uniform on the unit cube): 8 bits per dimension for 256 levels
    assert torch.allclose(t.bits_per_dim(-log_det, log_det, d), torch.full((2,), 8.0, dtype=torch.float64))
    # log p_U = -d log 2: one more bit per dimension
    bpd = t.bits_per_dim(-log_det - d * math.log(2), log_det, d)
    assert torch.allclose(bpd, torch.full((2,), 9.0, dtype=torch.float64))


def test_dequantize_stays_in_its_bin():
    t = LogitTransform(17)
    k = torch.arange(17).repeat(200).reshape(-1, 17).to(torch.uint8)
    u = t.dequantize(k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    centre = k.double() / 16
    assert float((u - centre).abs().max()) <= 0.5 / 17
    assert float((u - centre).abs().max()) > 0.45 / 17  # noise spans the bin
    assert abs(float((u - centre).mean())) < 0.002
    with pytest.raises(ValueError, match="pixels must lie in 0 .. 16"):
        t.dequantize(torch.tensor([[17]]))


def test_paper_mnist_noise_is_plus_minus_1_over_512():
    t = LogitTransform(256)
    k = torch.zeros(1000, 4, dtype=torch.uint8)
    u = t.dequantize(k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert float(u.abs().max()) <= 1 / 512 and float(u.abs().max()) > 0.9 / 512


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(256, alpha=0.7)
    with pytest.raises(ValueError, match="squash"):
        LogitTransform(256, squash="tanh")
    with pytest.raises(ValueError, match="levels"):
        LogitTransform(1)


def test_digits_loader():
    data = load_digits_8x8()
    assert data.pixels.shape == (1797, 64) and data.pixels.dtype == torch.uint8
    assert int(data.pixels.max()) == 16 and data.levels == 17 and data.shape == (8, 8)
    parts = data.split(n_test=300, val_fraction=0.1, seed=0)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [1347, 150, 300]
    again = data.split(n_test=300, val_fraction=0.1, seed=0)
    assert all(torch.equal(parts[k], again[k]) for k in parts)


def test_shipped_mnist_is_verified():
    data = load_mnist("shipped")
    assert data.pixels.shape == (10000, 784) and data.levels == 256 and data.is_test is None
    assert "md5 verified" in data.source
    assert torch.bincount(data.labels).tolist()[:3] == [1001, 1127, 991]  # data/README.md


def test_md5_mismatch_is_a_value_error(tmp_path):
    (tmp_path / "mnist").mkdir()
    bad = tmp_path / "mnist" / "mnist-10k.npz"
    bad.write_bytes(b"not the digits")
    assert file_md5(bad) != MNIST_10K_MD5
    with pytest.raises(ValueError, match="md5"):
        verify_md5(bad, MNIST_10K_MD5)
    with pytest.raises(ValueError, match="md5"):
        load_mnist("shipped", data_dir=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_mnist("shipped", data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="source"):
        load_mnist("kaggle")


@pytest.mark.skipif(HAS_TORCHVISION, reason="checks the behaviour without torchvision (no network use)")
def test_without_torchvision():
    with pytest.raises(ValueError, match="torchvision"):
        load_mnist("torchvision")
    data = load_mnist("auto")
    assert data.pixels.shape == (10000, 784) and "torchvision unavailable" in data.source
