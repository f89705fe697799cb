"""DKEF's training step and validation pass, pinned in float64 against the implementation before
they were made faster (issue 25): the loss of a training step (alpha from the first half's
quadratic, the loss on the second half) and its gradient with respect to every parameter, and a
validation pass (alpha accumulated over chunks, then the loss), for exact SM, CP and Approx BP.

The numbers were printed by the code before the change; each gradient is stored as its sum
against fixed weights (``linspace(-1, 1.5)`` over the parameter's entries). Exact SM and
Approx BP are deterministic and must not move beyond float rounding. CP's values depend on its
Rademacher draws: they were printed again when the kernel layer's elementwise seed stopped
drawing a ``(batch, M, M)`` sign matrix of which only the diagonal was used (issue 25; it now
draws the ``(batch, M)`` diagonal alone, an equally distributed estimate, see
``tests/test_dkef_kernel_paths.py`` and the unbiasedness test in ``tests/test_dkef.py``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssm_lib._tensor_ops import rademacher
from ssm_lib.curvature import SumOfBranches, forward_derivatives, split_sqrt
from ssm_lib.dkef import dkef_loss
from ssm_lib.dkef.alpha import exact_system, exact_system_autograd
from ssm_lib.dkef.training import _split_loss
from ssm_lib.projections import sample_projections
from tests.dkef_helpers import varied_dkef

D64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")


_model = varied_dkef  # the shared model the pinned values were computed on


def _batch(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=D64) * 1.3 - 0.2


def _step_values(objective: str) -> dict[str, float]:
    model = _model()
    loss = _split_loss(model, _batch(16, 31), objective, torch.Generator().manual_seed(32), None)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    out = {"loss": loss.item()}
    for (name, p), gr in zip(params.items(), grads, strict=True):
        if gr is not None:
            w = torch.linspace(-1.0, 1.5, p.numel(), dtype=D64).reshape(p.shape)
            out[name] = (gr * w).sum().item()
    return out


def _val_values(objective: str) -> dict[str, float]:
    model = _model()
    gen = torch.Generator().manual_seed(41)
    alpha = model.fit_alpha(_batch(23, 42), objective, generator=gen, chunk=10)
    w = torch.linspace(-1.0, 1.5, alpha.numel(), dtype=D64)
    return {"alpha_w": (alpha * w).sum().item(), "alpha_sq": alpha.square().sum().item(),
            "loss": dkef_loss(model, _batch(9, 43), objective, generator=gen).item()}


STEP_EXACT = {
        'loss': 0.9967383856763208,
        'inducing': -1.3984727534208266,
        'log10_bandwidths': -1.5991337032132054,
        'kernel_logits': -0.909548966485269,
        'log10_lambda': 1.7494748239285758,
        'features.0.branches.0.0.weight': 0.6808653191450796,
        'features.0.branches.0.0.bias': -0.010245500430265647,
        'features.0.branches.0.2.weight': 0.6160204107837195,
        'features.0.branches.0.2.bias': 0.02264933766697161,
        'features.0.branches.0.4.weight': 0.3643666873670343,
        'features.0.branches.0.4.bias': -2.7755575615628914e-17,
        'features.0.branches.1.weight': -0.07795148703080845,
        'features.1.branches.0.0.weight': -0.5566731764876331,
        'features.1.branches.0.0.bias': 0.18905075349782896,
        'features.1.branches.0.2.weight': -0.22367338469281403,
        'features.1.branches.0.2.bias': -0.1664121174302037,
        'features.1.branches.0.4.weight': -1.7813272097769761,
        'features.1.branches.0.4.bias': -9.71445146547012e-17,
        'features.1.branches.1.weight': 3.184220046002004,
        'features.2.branches.0.0.weight': 0.2681256576586283,
        'features.2.branches.0.0.bias': 0.14763882869096878,
        'features.2.branches.0.2.weight': -0.18625065769850355,
        'features.2.branches.0.2.bias': -0.014646557012841916,
        'features.2.branches.0.4.weight': 0.6279408432447422,
        'features.2.branches.0.4.bias': -1.1102230246251565e-16,
        'features.2.branches.1.weight': -1.681534509902728,
    }
VAL_EXACT = {
        'alpha_w': -3.1662901141323885,
        'alpha_sq': 37.82817600025581,
        'loss': -0.5272229181791767,
    }
STEP_CP = {
        'loss': -0.8359135836181676,
        'inducing': -1.4660326476587726,
        'log10_bandwidths': 0.40598210400400037,
        'kernel_logits': -1.7234170777899058,
        'log10_lambda': 1.3619487673894424,
        'features.0.branches.0.0.weight': 2.8915017786084283,
        'features.0.branches.0.0.bias': -0.17309434213442432,
        'features.0.branches.0.2.weight': -3.0000421554456227,
        'features.0.branches.0.2.bias': 0.2470214039981503,
        'features.0.branches.0.4.weight': 1.0134493185689115,
        'features.0.branches.0.4.bias': 4.163336342344337e-16,
        'features.0.branches.1.weight': -3.814343457355373,
        'features.1.branches.0.0.weight': -1.5334710638398361,
        'features.1.branches.0.0.bias': -0.7563164056311601,
        'features.1.branches.0.2.weight': 4.146203313925353,
        'features.1.branches.0.2.bias': 0.2775680357846892,
        'features.1.branches.0.4.weight': 2.9562537601775007,
        'features.1.branches.0.4.bias': -2.8449465006019636e-16,
        'features.1.branches.1.weight': -3.4928044552768456,
        'features.2.branches.0.0.weight': 1.2680790393603942,
        'features.2.branches.0.0.bias': 0.1223518173477455,
        'features.2.branches.0.2.weight': 1.3405976944679128,
        'features.2.branches.0.2.bias': 0.08648394028876955,
        'features.2.branches.0.4.weight': 1.5878305067978715,
        'features.2.branches.0.4.bias': 1.734723475976807e-18,
        'features.2.branches.1.weight': -0.030890926613945435,
    }
VAL_CP = {
        'alpha_w': -5.836493835364571,
        'alpha_sq': 40.27658288757539,
        'loss': -0.4156884321845764,
    }
STEP_APPROX_BP = {
        'loss': 0.6237395347938204,
        'inducing': -0.7129683506054808,
        'log10_bandwidths': -0.6001254448287663,
        'kernel_logits': -1.0152547363636808,
        'log10_lambda': 2.327263851190674,
        'features.0.branches.0.0.weight': 0.4698753048789127,
        'features.0.branches.0.0.bias': -0.02840794603108473,
        'features.0.branches.0.2.weight': -0.010904379586887891,
        'features.0.branches.0.2.bias': 0.03398587303241429,
        'features.0.branches.0.4.weight': -0.09539867469466418,
        'features.0.branches.0.4.bias': -5.551115123125783e-17,
        'features.0.branches.1.weight': -1.1678466512637942,
        'features.1.branches.0.0.weight': -1.068772432755455,
        'features.1.branches.0.0.bias': 0.28669877693076395,
        'features.1.branches.0.2.weight': 0.41995693377786725,
        'features.1.branches.0.2.bias': -0.06854715477167767,
        'features.1.branches.0.4.weight': -2.8853554537940047,
        'features.1.branches.0.4.bias': 1.8041124150158794e-16,
        'features.1.branches.1.weight': 4.507749065002644,
        'features.2.branches.0.0.weight': 0.3572043751808759,
        'features.2.branches.0.0.bias': 0.1509613334252287,
        'features.2.branches.0.2.weight': -0.14433267928186894,
        'features.2.branches.0.2.bias': 0.013087536034661368,
        'features.2.branches.0.4.weight': 0.6741814506307415,
        'features.2.branches.0.4.bias': 1.249000902703301e-16,
        'features.2.branches.1.weight': -0.825183277389504,
    }
VAL_APPROX_BP = {
        'alpha_w': 0.29964391879819363,
        'alpha_sq': 58.92553086480505,
        'loss': -1.0084266692670765,
    }


PINNED = {("exact", "step"): STEP_EXACT, ("exact", "val"): VAL_EXACT, ("cp", "step"): STEP_CP,
          ("cp", "val"): VAL_CP, ("approx_bp", "step"): STEP_APPROX_BP, ("approx_bp", "val"): VAL_APPROX_BP}


@pytest.mark.parametrize("objective", ["exact", "cp", "approx_bp"])
@pytest.mark.parametrize("kind", ["step", "val"])
def test_pinned_values(objective, kind):
    got = (_step_values if kind == "step" else _val_values)(objective)
    want = PINNED[(objective, kind)]
    assert set(got) == set(want)
    for name, value in want.items():
        # the last layer's bias cancels in the feature differences: its gradient is zero up to rounding
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def _split_sqrt_by_masks(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The implementation before the change: four ``where`` calls and two square roots."""
    pos, neg = m > 0, m < 0
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return (torch.where(pos, torch.sqrt(torch.where(pos, m, one)), zero),
            torch.where(neg, torch.sqrt(torch.where(neg, -m, one)), zero))


def test_split_sqrt_matches_the_masked_version_with_derivatives():
    g = torch.Generator().manual_seed(51)
    m = torch.randn(60, generator=g, dtype=D64) * 2.0
    m[::7] = 0.0                                   # vanishing parts: zero, finite derivatives
    m.requires_grad_(True)
    w_pos, w_neg = torch.randn(2, 60, generator=g, dtype=D64)
    ours, ref = split_sqrt(m), _split_sqrt_by_masks(m)
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a, b)
    (d1,) = torch.autograd.grad((ours[0] * w_pos + ours[1] * w_neg).sum(), m, create_graph=True)
    (r1,) = torch.autograd.grad((ref[0] * w_pos + ref[1] * w_neg).sum(), m, create_graph=True)
    torch.testing.assert_close(d1, r1, rtol=1e-14, atol=0)
    assert torch.all(d1[::7] == 0)
    (d2,) = torch.autograd.grad((d1 * w_pos).sum(), m)
    (r2,) = torch.autograd.grad((r1 * w_pos).sum(), m)
    assert torch.isfinite(d2).all()
    torch.testing.assert_close(d2, r2, rtol=1e-12, atol=0)
    away = (torch.rand(20, generator=g, dtype=D64) + 0.2) * torch.tensor([1.0, -1.0], dtype=D64).repeat(10)
    away.requires_grad_(True)
    assert torch.autograd.gradgradcheck(split_sqrt, (away,))


# ---------------------------------------------------------------- exact SM in closed form
def test_forward_derivatives_match_autograd():
    """Jacobians and Hessian diagonals by forward mode against torch.func on a network with every
    supported activation, a skip branch and an activation after the branches."""
    torch.manual_seed(0)
    net = nn.Sequential(
        SumOfBranches(nn.Sequential(nn.Linear(4, 7), nn.Softplus(beta=1.5), nn.Linear(7, 7), nn.Tanh(),
                                    nn.Linear(7, 6), nn.Sigmoid(), nn.Linear(6, 5), nn.GELU()),
                      nn.Linear(4, 5, bias=False)),
        nn.SiLU(), nn.Linear(5, 3)).double()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=D64) * 1.7
    y, jac, diag = forward_derivatives(net, x)
    torch.testing.assert_close(y, net(x), rtol=1e-13, atol=0)
    torch.testing.assert_close(jac, torch.func.vmap(torch.func.jacrev(net))(x).transpose(1, 2),
                               rtol=1e-11, atol=1e-13)
    hess = torch.func.vmap(torch.func.hessian(net))(x)          # (batch, K, d, d)
    torch.testing.assert_close(diag, hess.diagonal(dim1=-2, dim2=-1).transpose(1, 2), rtol=1e-10, atol=1e-13)


def test_forward_derivatives_names_an_unknown_layer():
    with pytest.raises(ValueError, match="ReLU"):
        forward_derivatives(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), torch.zeros(1, 2))


def test_exact_quadratic_matches_the_autograd_one_with_gradients():
    """The closed-form exact quadratic against d backward passes (float64): G, b, c and the
    gradients of a function of them with respect to every parameter."""
    model, x = _model(), _batch(9, 61)
    params = [p for p in model.parameters() if p.requires_grad]
    G, b, c = exact_system(model, x)
    G0, b0, c0 = exact_system_autograd(model, x)
    torch.testing.assert_close(G, G0, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(b, b0, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(c, c0, rtol=1e-13, atol=0)
    weights = torch.linspace(-1, 2, b.numel(), dtype=D64)
    grads = torch.autograd.grad((G * G).sum() + (b * weights).sum(), params, allow_unused=True)
    grads0 = torch.autograd.grad((G0 * G0).sum() + (b0 * weights).sum(), params, allow_unused=True)
    for a, a0 in zip(grads, grads0, strict=True):
        assert (a is None) == (a0 is None)
        if a is not None:
            torch.testing.assert_close(a, a0, rtol=1e-9, atol=1e-12)


def test_exact_quadratic_in_float32_far_from_the_origin():
    """Inducing points and data at 50 from the origin (the features follow): the closed form's
    centred inner products keep float32 close to the float64 values."""
    model64 = _model()
    with torch.no_grad():
        model64.inducing.add_(50.0)
    x = _batch(8, 62) + 50.0
    G64, b64, _ = exact_system(model64, x, create_graph=False)
    model32 = _model(dtype=torch.float32)
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    G32, b32, _ = exact_system(model32, x.float(), create_graph=False)
    assert ((G32.double() - G64).abs().max() / G64.abs().max()).item() < 1e-4
    assert ((b32.double() - b64).abs().max() / b64.abs().max()).item() < 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rademacher_draws_equal_the_integer_draws(dtype):
    """The signs are drawn straight into the float dtype: the same as 2 randint - 1 in int64."""
    shape = (7, 13, 5)
    ints = torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(71))
    ours = rademacher(shape, torch.zeros((), dtype=dtype), torch.Generator().manual_seed(71))
    assert ours.dtype == dtype
    assert torch.equal(ours, (2 * ints - 1).to(dtype))
    proj = sample_projections("rademacher", shape, generator=torch.Generator().manual_seed(71), dtype=dtype)
    assert torch.equal(proj, ours)
