"""The ways of computing v^T J v in sliced score matching: double backprop, forward mode, finite
differences, and the model's own fast path. Oracles in float64: explicit Jacobians, and
directional derivatives of order 2 and 3 by nested forward-mode JVPs for the finite-difference
bias."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssm_lib import EnergyMLP, ScoreMLP, sample_projections, score_from_energy, sliced_score_matching
from ssm_lib.losses import SSM_METHODS
from ssm_lib.models import ACTIVATIONS

F64 = torch.float64


def _mlp(activation: str = "silu", dim: int = 4, seed: int = 0) -> ScoreMLP:
    torch.manual_seed(seed)
    return ScoreMLP(dim, hidden=16, depth=2, activation=activation).double()


def _energy(dim: int = 4, seed: int = 1):
    torch.manual_seed(seed)
    model = EnergyMLP(dim, hidden=16, depth=2).double()
    return model, score_from_energy(model)


class Plain:
    """A plain callable around a module: no fast path."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        return self.module(x)


def _loss_and_grads(score_fn, params, x, v, **kw):
    loss = sliced_score_matching(score_fn, x, n_projections=v.shape[0], directions=v,
                                 reduction="none", **kw)
    grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)  # an energy's last bias
    return loss.detach(), [torch.zeros_like(p) if g is None else g
                           for g, p in zip(grads, params, strict=True)]


def _assert_matches_double_backprop(score_fn, params, x, v, method: str, vr: bool) -> None:
    """Loss and parameter gradients of ``method`` equal those of double backprop (float64)."""
    ref, ref_g = _loss_and_grads(score_fn, params, x, v, method="backward", variance_reduction=vr)
    got, got_g = _loss_and_grads(score_fn, params, x, v, method=method, variance_reduction=vr)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-13)
    for a, b in zip(got_g, ref_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)



def _data(gen, batch=5, dim=4, m=2, kind="rademacher"):
    x = torch.randn(batch, dim, generator=gen, dtype=F64)
    v = sample_projections(kind, (m, batch, dim), generator=gen, dtype=F64)
    return x, v


# --------------------------------------------------------------------------- exact methods
@pytest.mark.parametrize("vr", [False, True])
@pytest.mark.parametrize("which", ["mlp", "plain", "energy"])
def test_forward_mode_equals_double_backprop(which, vr, gen):
    x, v = _data(gen)
    if which == "energy":
        module, score_fn = _energy()
    else:
        module = _mlp()
        score_fn = module if which == "mlp" else Plain(module)
    _assert_matches_double_backprop(score_fn, list(module.parameters()), x, v, "forward", vr)


ALL_ACTIVATIONS = [*ACTIVATIONS, "gelu_tanh"]


def _mlp_with(activation: str) -> ScoreMLP:
    if activation != "gelu_tanh":
        return _mlp(activation)
    model = _mlp("gelu")
    for i, mod in enumerate(model.net):
        if isinstance(mod, nn.GELU):
            model.net[i] = nn.GELU(approximate="tanh")
    return model


@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_fast_path_pair_matches_explicit_jacobian(activation, gen):
    model = _mlp_with(activation)
    x = 2.0 * torch.randn(6, 4, generator=gen, dtype=F64)  # reach the non-linear parts
    v = torch.randn(6, 4, generator=gen, dtype=F64)
    s, jv = model.score_and_jvp(x, v)
    vs, vjv = model.projected_score_and_jvp(x, v)
    torch.testing.assert_close(s, model(x), rtol=1e-13, atol=1e-14)
    for b in range(6):
        jac = torch.autograd.functional.jacobian(lambda y: model(y.unsqueeze(0)).squeeze(0), x[b])
        torch.testing.assert_close(jv[b], jac @ v[b], rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(vjv[b], v[b] @ jac @ v[b], rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(vs[b], v[b] @ model(x[b:b + 1])[0], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("vr", [False, True])
@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_fast_path_equals_double_backprop_values_and_gradients(activation, vr, gen):
    model = _mlp_with(activation)
    x, v = _data(gen, m=3, kind="gaussian")
    _assert_matches_double_backprop(model, list(model.parameters()), x, v, "auto", vr)


class CountingScoreMLP(ScoreMLP):
    """ScoreMLP that records which of its paths the loss used."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used: list[str] = []

    def score_and_jvp(self, x, v):
        self.used.append("pair")
        return super().score_and_jvp(x, v)

    def projected_score_and_jvp(self, x, v):
        self.used.append("projected")
        return super().projected_score_and_jvp(x, v)


def test_auto_uses_the_fast_path_and_other_methods_do_not(gen):
    torch.manual_seed(0)
    model = CountingScoreMLP(4, hidden=16, depth=2).double()
    x, _ = _data(gen)
    sliced_score_matching(model, x, generator=gen)
    assert model.used == ["projected"]
    sliced_score_matching(model, x, generator=gen, variance_reduction=True)
    assert model.used == ["projected", "pair"]
    for method in ("backward", "forward", "finite_difference"):
        sliced_score_matching(model, x, generator=gen, method=method)
    assert model.used == ["projected", "pair"]


class PairOnly:
    """A score function that offers only score_and_jvp (the generic protocol)."""

    def __init__(self, model: ScoreMLP):
        self.model, self.calls = model, 0

    def __call__(self, x):
        return self.model(x)

    def score_and_jvp(self, x, v):
        self.calls += 1
        return self.model.score_and_jvp(x, v)


def test_generic_pair_protocol_is_used_for_plain_ssm_too(gen):
    model = _mlp()
    wrapped = PairOnly(model)
    x, v = _data(gen)
    ref = sliced_score_matching(model, x, n_projections=2, directions=v, method="backward")
    got = sliced_score_matching(wrapped, x, n_projections=2, directions=v)
    assert wrapped.calls == 1
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-13)


def test_auto_never_uses_finite_differences(gen):
    # A score with a large third derivative: finite differences with a big step are far off,
    # "auto" must equal double backprop, and evaluate the score on the batch itself only.
    class Wavy:
        def __init__(self):
            self.calls: list[tuple[int, ...]] = []

        def __call__(self, x):
            self.calls.append(tuple(x.shape))
            return torch.sin(3.0 * x) + 0.1 * x.flip(-1) ** 3

    x, v = _data(gen)
    fn = Wavy()
    exact = sliced_score_matching(fn, x, n_projections=2, directions=v, method="backward")
    fd = sliced_score_matching(fn, x, n_projections=2, directions=v, method="finite_difference",
                               fd_step=0.3)
    assert (fd - exact).abs() > 1e-2  # the check below can tell the two apart
    fn.calls.clear()
    auto = sliced_score_matching(fn, x, n_projections=2, directions=v, fd_step=0.3)
    torch.testing.assert_close(auto, exact, rtol=1e-13, atol=1e-14)
    assert fn.calls == [(10, 4)]  # one call on the (M * batch) repeated batch, not 2x that


class Doubled(ScoreMLP):
    def forward(self, x):
        return 2.0 * super().forward(x)


@pytest.mark.parametrize("change", ["relu", "subclass", "hook_switched_off", "softplus_beta"])
def test_fast_path_declines_when_it_would_not_match_forward(change, gen):
    if change == "subclass":
        torch.manual_seed(0)
        model = Doubled(4, hidden=16, depth=2).double()
    else:
        model = _mlp("softplus" if change == "softplus_beta" else "silu")
    if change == "relu":  # unsupported activation (a smooth stand-in: ELU)
        model.net[1] = nn.ELU()
    elif change == "hook_switched_off":  # hooks are not detected: the documented switch
        model.net[0].register_forward_hook(lambda mod, inp, out: out + 0.5)
        model.fast_path = False
    elif change == "softplus_beta":  # supported, with a non-default beta: must still match
        model.net[1] = nn.Softplus(beta=2.0)
    x, v = _data(gen)
    if change == "softplus_beta":
        assert model.score_and_jvp(x[:2], v[0, :2]) is not None
    else:
        assert model.score_and_jvp(x[:2], v[0, :2]) is None
        assert model.projected_score_and_jvp(x[:2], v[0, :2]) is None
    for vr in (False, True):
        ref = sliced_score_matching(model, x, n_projections=2, directions=v, method="backward",
                                    variance_reduction=vr)
        got = sliced_score_matching(model, x, n_projections=2, directions=v, variance_reduction=vr)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("vr", [False, True])
def test_energy_model_auto_falls_back_to_double_backprop(vr, gen):
    module, score_fn = _energy()
    x, v = _data(gen)
    params = list(module.parameters())
    ref, ref_g = _loss_and_grads(score_fn, params, x, v, method="backward", variance_reduction=vr)
    got, got_g = _loss_and_grads(score_fn, params, x, v, method="auto", variance_reduction=vr)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    for a, b in zip(got_g, ref_g, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# --------------------------------------------------------------------------- finite differences
def _directional(fn, x, v, order):
    """D^order s(x)[v, ..., v] by nested forward-mode JVPs."""
    def d(k):
        if k == 0:
            return fn
        inner = d(k - 1)
        return lambda y: torch.func.jvp(inner, (y,), (v,))[1]
    return d(order)(x)


@pytest.mark.parametrize("vr", [False, True])
@pytest.mark.parametrize("which", ["tanh_mlp", "energy"])
def test_finite_difference_bias_is_second_order_with_the_stated_leading_term(which, vr, gen):
    if which == "energy":
        module = _energy()[0]
        score_fn = score_from_energy(module)

        def plain(y):  # the same score without autograd.grad inside, for torch.func
            return -torch.func.vmap(torch.func.grad(lambda t: module(t.unsqueeze(0)).squeeze(0)))(y)
    else:
        score_fn = plain = _mlp("tanh")
    x = torch.randn(6, 4, generator=gen, dtype=F64)
    v = sample_projections("rademacher", (1, 6, 4), generator=gen, dtype=F64)
    exact = sliced_score_matching(score_fn, x, directions=v, method="backward",
                                  variance_reduction=vr, reduction="none").detach()
    errors = {}
    for eps in (0.02, 0.01, 0.005):
        fd = sliced_score_matching(score_fn, x, directions=v, method="finite_difference",
                                   fd_step=eps, variance_reduction=vr, reduction="none").detach()
        errors[eps] = fd - exact
    # halving the step divides the error by about 4 (O(eps^2))
    for big, small in ((0.02, 0.01), (0.01, 0.005)):
        ratio = errors[big].abs().sum() / errors[small].abs().sum()
        assert 3.7 < ratio < 4.3, ratio
    # leading term: eps^2 [1/6 v.D3s[v,v,v] + 1/2 (v.s) v.D2s[v,v]]  (VR: 1/2 s.D2s[v,v])
    vv = v[0]
    s = plain(x).detach()
    d2 = _directional(plain, x, vv, 2).detach()
    d3 = _directional(plain, x, vv, 3).detach()
    second = (s * d2).sum(1) if vr else (vv * s).sum(1) * (vv * d2).sum(1)
    lead = (vv * d3).sum(1) / 6 + 0.5 * second
    eps = 0.005
    torch.testing.assert_close(errors[eps] / eps**2, lead, rtol=2e-3, atol=1e-6)


def test_finite_difference_default_step_is_close_in_float32_and_float64(gen):
    model = _mlp("silu")
    x, v = _data(gen)
    exact = sliced_score_matching(model, x, n_projections=2, directions=v, method="backward")
    fd64 = sliced_score_matching(model, x, n_projections=2, directions=v, method="finite_difference")
    torch.testing.assert_close(fd64, exact, rtol=1e-8, atol=1e-9)
    m32 = _mlp("silu").float()
    exact32 = sliced_score_matching(m32, x.float(), n_projections=2, directions=v.float(),
                                    method="backward")
    fd32 = sliced_score_matching(m32, x.float(), n_projections=2, directions=v.float(),
                                 method="finite_difference")
    torch.testing.assert_close(fd32.double(), exact, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(exact32.double(), exact, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("method", SSM_METHODS)
@pytest.mark.parametrize("which", ["mlp", "energy"])
def test_x_is_not_modified_and_gets_no_gradient(method, which, gen):
    module, score_fn = _energy() if which == "energy" else (_mlp(),) * 2
    x = torch.randn(5, 4, generator=gen, dtype=F64)
    for requires_grad in (False, True):
        x_in = x.clone().requires_grad_(requires_grad)
        loss = sliced_score_matching(score_fn, x_in, generator=gen, method=method)
        loss.backward()
        assert x_in.requires_grad is requires_grad and x_in.grad is None
        torch.testing.assert_close(x_in.detach(), x, rtol=0, atol=0)
        assert next(module.parameters()).grad is not None  # the loss did reach the model


@pytest.mark.parametrize("bad", ["bogus", "fast", "", None])
def test_unknown_method_is_a_value_error(bad, score_mlp, gen):
    x = torch.randn(3, 4, generator=gen, dtype=F64)
    with pytest.raises(ValueError, match="method"):
        sliced_score_matching(score_mlp, x, method=bad)


@pytest.mark.parametrize("bad", [0, -1e-3, float("nan"), float("inf"), "small", [1]])
def test_bad_fd_step_is_a_value_error(bad, score_mlp, gen):
    x = torch.randn(3, 4, generator=gen, dtype=F64)
    with pytest.raises(ValueError, match="fd_step"):
        sliced_score_matching(score_mlp, x, method="finite_difference", fd_step=bad)


def test_forward_mode_unsupported_score_is_a_clear_value_error(gen):
    class NoJvp(torch.autograd.Function):  # backward only: no forward-mode formula
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.tanh(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (1 - torch.tanh(x) ** 2)

    x = torch.randn(3, 4, generator=gen, dtype=F64)
    fn = NoJvp.apply
    assert torch.isfinite(sliced_score_matching(fn, x, method="backward", generator=gen))
    with pytest.raises(ValueError, match="method='backward'"):
        sliced_score_matching(fn, x, method="forward", generator=gen)


def test_bad_fast_path_outputs_are_value_errors(gen):
    class Broken:
        def __call__(self, x):
            return x

        def score_and_jvp(self, x, v):
            return x[:, :1], v

    x = torch.randn(3, 4, generator=gen, dtype=F64)
    with pytest.raises(ValueError, match="score_and_jvp"):
        sliced_score_matching(Broken(), x, generator=gen, variance_reduction=True)


def test_score_mlp_fast_path_checks_its_inputs(score_mlp, gen):
    x = torch.randn(3, 4, generator=gen, dtype=F64)
    with pytest.raises(ValueError, match="v must"):
        score_mlp.score_and_jvp(x, x[:, :2])
    with pytest.raises(ValueError, match="v must"):
        score_mlp.projected_score_and_jvp(x, x[:2])
    with pytest.raises(ValueError, match="x must"):
        score_mlp.score_and_jvp(x[:, :3], x[:, :3])
