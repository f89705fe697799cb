"""The DKEF rows of the bad-input audit: each bad argument is a ``ValueError`` that names it
(no deep torch error, no silent NaN, no silently ignored argument), and the valid neighbours
of each bad input still work."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssm_lib import dkef as K
from ssm_lib.dkef import DKEF, GaussianProposal, MixtureProposal, dkef_loss, train_dkef, training_step

NAN, INF = float("nan"), float("inf")


def _model(**kw) -> DKEF:
    return DKEF(torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), n_kernels=1, hidden=4,
                generator=torch.Generator().manual_seed(1), **kw)


def _x(n: int = 8, d: int = 2, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _step(clip: float = 100.0, **kw) -> float:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    return training_step(model, kw.pop("batch", _x()), kw.pop("objective", "ssm"), kw.pop("optimizer", opt),
                         clip=clip, generator=torch.Generator().manual_seed(0), **kw)


_TD = dict(steps=1, batch_size=4, n_alpha=4, lambda_steps=0, progress=False)


# ---------------------------------------------------------------------------- 6. training_step's clip
@pytest.mark.parametrize("clip", [-1.0, 0.0, NAN, INF, "1"])
def test_training_step_rejects_a_clip_that_is_not_positive_and_finite(clip):
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="clip"):
        training_step(model, _x(), "ssm", torch.optim.SGD(model.parameters(), lr=1e-2), clip=clip)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_training_step_takes_a_positive_clip():
    assert math.isfinite(_step(clip=0.5))


# ---------------------------------------------------------------------------- 7 and 17. DKEF's constructor
@pytest.mark.parametrize("value", [NAN, INF, -INF, "a", None])
def test_dkef_rejects_a_non_finite_log10_lambda(value):
    with pytest.raises(ValueError, match="log10_lambda"):
        _model(log10_lambda=value)


@pytest.mark.parametrize("value", [(NAN,), (INF,), 0.5, "0.5", (None,)])
def test_dkef_rejects_bad_log10_bandwidths(value):
    with pytest.raises(ValueError, match="log10_bandwidths"):
        _model(log10_bandwidths=value)


@pytest.mark.parametrize("name", ["train_inducing", "skip"])
@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_dkef_rejects_flags_that_are_not_booleans(name, value):
    with pytest.raises(ValueError, match=name):
        _model(**{name: value})


def test_dkef_takes_numpy_flags_lists_and_tensors_of_bandwidths():
    m = _model(train_inducing=np.False_, skip=np.True_, log10_bandwidths=np.array([0.5]),
               log10_lambda=np.float32(-1.0))
    assert not m.inducing.requires_grad and m.config()["skip"] is True
    assert m.config()["log10_bandwidths"] == [0.5]
    assert _model(log10_bandwidths=[0.25, 1.0]).config()["log10_bandwidths"] == [0.25]


# ---------------------------------------------------------------------------- 8, 9. fit_alpha's x
@pytest.mark.parametrize("bad", [NAN, INF])
@pytest.mark.parametrize("objective", ["exact", "ssm"])
def test_fit_alpha_rejects_non_finite_x(bad, objective):
    model = _model()
    x = torch.tensor([[bad, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="x must be finite"):
        model.fit_alpha(x, objective, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.alpha, torch.zeros(5))


@pytest.mark.parametrize("x", [torch.zeros(0, 2), [[0.0, 0.0]], torch.zeros(3, 2, dtype=torch.int64)])
def test_fit_alpha_and_accumulate_system_reject_empty_or_non_tensor_x(x):
    model = _model()
    with pytest.raises(ValueError, match="x"):
        model.fit_alpha(x, "exact")
    with pytest.raises(ValueError, match="x"):
        K.accumulate_system(model, x, "exact")


def test_accumulate_system_and_alpha_system_name_a_model_that_is_not_a_dkef():
    with pytest.raises(ValueError, match="model"):
        K.accumulate_system(3, _x(), "exact")
    with pytest.raises(ValueError, match="model"):
        K.alpha_system(3, _x(), "exact")


# ---------------------------------------------------------------------------- 10b. train_dkef's device
@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_train_dkef_names_device_when_cuda_is_absent():
    with pytest.raises(ValueError, match="device"):
        train_dkef(_model(), _x(), _x(seed=3), "ssm", device="cuda", **_TD)


@pytest.mark.parametrize("device", ["meta", "nonsense", 3.5])
def test_train_dkef_names_a_device_it_cannot_train_on(device):
    with pytest.raises(ValueError, match="device"):
        train_dkef(_model(), _x(), _x(seed=3), "ssm", device=device, **_TD)


def test_train_dkef_still_takes_the_cpu():
    hist = train_dkef(_model(), _x(), _x(seed=3), "ssm", device="cpu", seed=0, **_TD)
    assert len(hist.train) == 1


# ---------------------------------------------------------------------------- 12. generators
@pytest.mark.parametrize("call", [
    lambda g: DKEF(_x(5), generator=g),
    lambda g: _model().alpha_system(_x(), "dsm", sigma=0.1, generator=g),
    lambda g: _model().alpha_system(_x(), "cp", generator=g),
    lambda g: _model().alpha_system(_x(), "approx_bp", generator=g),
    lambda g: _model().fit_alpha(_x(), "dsm_sigma4", sigma=0.1, generator=g),
    lambda g: GaussianProposal.isotropic(2, 1.0).sample(3, generator=g),
    lambda g: MixtureProposal([GaussianProposal.isotropic(2, 1.0)], [1.0]).sample(3, generator=g),
    lambda g: K.sample_langevin(_model(), 3, n_steps=2, generator=g),
], ids=["DKEF", "dsm", "cp", "approx_bp", "fit_alpha", "GaussianProposal", "MixtureProposal", "langevin"])
@pytest.mark.parametrize("generator", [1, "a", np.random.default_rng(0)])
def test_generators_that_are_not_torch_generators_are_named(call, generator):
    with pytest.raises(ValueError, match="generator"):
        call(generator)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_generator_on_another_device_is_named():
    g = torch.Generator(device="cuda")
    with pytest.raises(ValueError, match="generator"):
        _model().alpha_system(_x(), "cp", generator=g)
    with pytest.raises(ValueError, match="generator"):
        GaussianProposal.isotropic(2, 1.0).sample(3, generator=g)


# ---------------------------------------------------------------------------- 14. score's x
@pytest.mark.parametrize("x", [[[0.0, 0.0]], _x().int(), _x().double()])
def test_score_names_x(x):
    with pytest.raises(ValueError, match="x"):
        _model().score(x)


# ---------------------------------------------------------------------------- 15. alpha and x shapes
@pytest.mark.parametrize("alpha", [torch.zeros(3), torch.zeros(5, 1), torch.zeros(5, dtype=torch.float64),
                                   [0.0] * 5])
@pytest.mark.parametrize("call", [
    lambda m, a: m.unnormalized_log_prob(_x(), a),
    lambda m, a: m.score(_x(), a),
    lambda m, a: m.with_alpha(a),
    lambda m, a: m.energy_hessian_terms(_x(), method="cp", alpha=a),
    lambda m, a: dkef_loss(m, _x(), "ssm", a),
], ids=["unnormalized_log_prob", "score", "with_alpha", "energy_hessian_terms", "dkef_loss"])
def test_explicit_alpha_of_the_wrong_shape_or_dtype_is_named(call, alpha):
    with pytest.raises(ValueError, match="alpha"):
        call(_model(), alpha)


@pytest.mark.parametrize("method", ["kernel_matrix", "kernel_grads"])
@pytest.mark.parametrize("x", [torch.randn(4, 3), torch.randn(4), [[0.0, 0.0]]])
def test_kernel_matrix_and_kernel_grads_name_x(method, x):
    with pytest.raises(ValueError, match="x"):
        getattr(_model(), method)(x)


# ---------------------------------------------------------------------------- 16. solve_alpha
@pytest.mark.parametrize("G, b, name", [
    (torch.eye(3), torch.zeros(5), "b"),
    (torch.eye(3), torch.zeros(3, 1), "b"),
    (torch.eye(3), torch.zeros(3, dtype=torch.float64), "b"),
    ([[1.0]], torch.ones(1), "G"),
    (torch.ones(2, 3), torch.ones(2), "G"),
    (torch.eye(2, dtype=torch.int64), torch.ones(2), "G"),
])
def test_solve_alpha_names_a_g_or_b_of_the_wrong_shape(G, b, name):
    with pytest.raises(ValueError, match=name):
        K.solve_alpha(G, b, 0.1)
    with pytest.raises(ValueError, match=name):
        _model().solve_alpha(G, b)


@pytest.mark.parametrize("ridge", [NAN, INF, -1.0, "0.1", torch.tensor(NAN), torch.tensor([0.1, 0.2]),
                                   torch.tensor(-1.0)])
def test_solve_alpha_rejects_a_ridge_that_is_not_a_finite_non_negative_number(ridge):
    with pytest.raises(ValueError, match="ridge"):
        K.solve_alpha(torch.eye(2), torch.ones(2), ridge)
    with pytest.raises(ValueError, match="ridge"):
        _model().solve_alpha(torch.eye(5), torch.ones(5), ridge)


def test_solve_alpha_still_takes_numbers_and_tensors():
    want = -torch.ones(2) / 1.5
    for ridge in (0.5, np.float64(0.5), torch.tensor(0.5), torch.tensor([0.5]), 0):
        got = K.solve_alpha(1.0 * torch.eye(2), torch.ones(2), ridge)
        if ridge == 0:
            torch.testing.assert_close(got, -torch.ones(2))
        else:
            torch.testing.assert_close(got, want)


# ---------------------------------------------------------------------- 18. training_step's batch, optimizer
def test_training_step_needs_two_rows_and_names_batch():
    with pytest.raises(ValueError, match="batch must hold at least 2 rows"):
        _step(batch=_x(1))
    with pytest.raises(ValueError, match="batch"):
        _step(batch=torch.randn(4, 3))
    with pytest.raises(ValueError, match="batch"):
        _step(batch=[[0.0, 0.0], [1.0, 1.0]])


@pytest.mark.parametrize("optimizer", [None, "adam", 3])
def test_training_step_names_an_optimizer_that_is_not_one(optimizer):
    with pytest.raises(ValueError, match="optimizer"):
        _step(optimizer=optimizer)


def test_training_step_names_model_and_objective():
    opt = torch.optim.SGD(_model().parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="model"):
        training_step(torch.nn.Linear(2, 2), _x(), "ssm", opt)
    with pytest.raises(ValueError, match="objective"):
        _step(objective="foo")


# ---------------------------------------------------------------------- 19. arguments an objective ignores
@pytest.mark.parametrize("objective", ["exact", "ssm", "ssm_vr", "cp", "approx_bp"])
def test_sigma_given_to_an_objective_without_noise_is_rejected(objective):
    with pytest.raises(ValueError, match="sigma"):
        dkef_loss(_model(), _x(), objective, sigma=0.1)
    with pytest.raises(ValueError, match="sigma"):
        _step(objective=objective, sigma=0.1)
    with pytest.raises(ValueError, match="sigma"):
        train_dkef(_model(), _x(), _x(seed=3), objective, sigma=0.5, **_TD)


@pytest.mark.parametrize("objective", ["ssm", "dsm", "cp"])
def test_exact_method_given_to_another_objective_is_rejected(objective):
    with pytest.raises(ValueError, match="exact_method"):
        dkef_loss(_model(), _x(), objective, sigma=0.1 if objective == "dsm" else None, exact_method="loop")


def test_sigma_and_exact_method_where_they_are_used_still_work():
    model = _model()
    for objective in ("dsm", "dsm_sigma4"):
        assert torch.isfinite(dkef_loss(model, _x(), objective, sigma=0.3,
                                        generator=torch.Generator().manual_seed(0)))
        assert math.isfinite(_step(objective=objective, sigma=0.3))
    loop = dkef_loss(model, _x(), "exact", exact_method="loop")
    torch.testing.assert_close(loop, dkef_loss(model, _x(), "exact"))
    # the default exact_method and sigma=None are accepted by every objective
    assert torch.isfinite(dkef_loss(model, _x(), "ssm", sigma=None, exact_method="vmap",
                                    generator=torch.Generator().manual_seed(0)))


# ---------------------------------------------------------------------------- 20. proposals
@pytest.mark.parametrize("n", [-1, 0, 2.5, "3"])
def test_proposal_sample_names_n(n):
    with pytest.raises(ValueError, match="n must"):
        GaussianProposal.isotropic(2, 1.0).sample(n)
    with pytest.raises(ValueError, match="n must"):
        MixtureProposal([GaussianProposal.isotropic(2, 1.0)], [1.0]).sample(n)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, "float32"])
def test_proposal_dtype_must_be_floating(dtype):
    with pytest.raises(ValueError, match="dtype"):
        GaussianProposal.isotropic(2, 1.0).sample(3, dtype=dtype)
    with pytest.raises(ValueError, match="dtype"):
        GaussianProposal.isotropic(2, 1.0, dtype=dtype)


def test_gaussian_proposal_needs_floating_mean_and_scale_tril():
    with pytest.raises(ValueError, match="mean"):
        GaussianProposal(torch.zeros(2, dtype=torch.long), torch.eye(2))
    with pytest.raises(ValueError, match="scale_tril"):
        GaussianProposal(torch.zeros(2), torch.eye(2, dtype=torch.long))


@pytest.mark.parametrize("y", [torch.randn(4, 3), torch.randn(4), [[0.0, 0.0]], torch.zeros(3, 2).int()])
def test_gaussian_proposal_log_prob_names_y(y):
    with pytest.raises(ValueError, match="y"):
        GaussianProposal.isotropic(2, 1.0).log_prob(y)


@pytest.mark.parametrize("component", [3, "q", torch.zeros(2)])
def test_mixture_proposal_names_components_that_are_not_proposals(component):
    with pytest.raises(ValueError, match="components"):
        MixtureProposal([component], [1.0])


def test_proposals_still_sample_with_numpy_counts_and_given_dtypes():
    q = GaussianProposal.isotropic(2, 1.0)
    assert q.sample(np.int64(3), dtype=torch.float32).shape == (3, 2)
    mix = MixtureProposal([q, GaussianProposal.isotropic(2, 2.0)], [0.5, 0.5])
    y = mix.sample(5, generator=torch.Generator().manual_seed(0))
    assert y.shape == (5, 2) and mix.log_prob(y).shape == (5,)


# ---------------------------------------------------------------------------- 21b. sizes beyond the memory
def test_proposal_sample_beyond_the_memory_names_n():
    with pytest.raises(ValueError, match="n is too large"):
        GaussianProposal.isotropic(2, 1.0).sample(10**13)


def test_estimate_log_normalizer_beyond_the_memory_names_its_argument():
    with pytest.raises(ValueError, match="n_samples is too large"):
        K.estimate_log_normalizer(_model(), 10**13, chunk=10**13)
    # few log-weights, but one block of draws too large: chunk (the block size) is named
    dim = 10**6

    class Never:  # a proposal of that dimension (never drawn from: the check comes first)
        def __init__(self):
            self.dim = dim

        def sample(self, n, **kw):
            raise AssertionError("drew before checking the size")

        def log_prob(self, y):
            raise AssertionError("evaluated before checking the size")

    wide = DKEF(torch.randn(3, dim), n_kernels=1, hidden=1)
    with pytest.raises(ValueError, match="chunk is too large"):
        K.estimate_log_normalizer(wide, 10**8, chunk=10**8, proposal=Never())


# ---------------------------------------------------------------------------- follow-up: the leftovers
@pytest.mark.parametrize("flag", ["no", None, 1])
def test_alpha_system_checks_create_graph(flag):
    with pytest.raises(ValueError, match="create_graph"):
        K.alpha_system(_model(), _x(), "exact", create_graph=flag)


def test_alpha_system_takes_a_numpy_boolean_create_graph():
    G, b, c = K.alpha_system(_model(), _x(), "exact", create_graph=np.False_)
    assert not G.requires_grad


@pytest.mark.parametrize("alpha", [None, [0.0] * 5, torch.zeros(4), torch.zeros(5, dtype=torch.float64),
                                   torch.zeros(5, dtype=torch.int64)])
def test_dkef_with_alpha_checks_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        K.DKEFWithAlpha(_model(), alpha)


def test_dkef_with_alpha_checks_model():
    with pytest.raises(ValueError, match="model"):
        K.DKEFWithAlpha("model", torch.zeros(5))
    view = K.DKEFWithAlpha(_model(), torch.zeros(5))
    assert view(_x()).shape == (8, 2)


def test_gaussian_proposal_mean_and_scale_tril_share_a_dtype():
    with pytest.raises(ValueError, match="scale_tril"):
        GaussianProposal(torch.zeros(2), torch.eye(2, dtype=torch.float64))


def test_gaussian_proposal_mean_and_scale_tril_share_a_device():
    with pytest.raises(ValueError, match="scale_tril"):
        GaussianProposal(torch.zeros(2), torch.eye(2, device="meta"))


@pytest.mark.parametrize("make", [
    lambda: GaussianProposal.isotropic(2, 2.0, dtype=torch.float32),
    lambda: MixtureProposal([GaussianProposal.isotropic(2, 2.0), GaussianProposal.isotropic(2, 1.0)],
                            [0.5, 0.5]),
])
def test_a_proposal_of_another_dtype_than_the_model_is_named(make):
    model = DKEF(_x(5).double(), n_kernels=1, hidden=4, generator=torch.Generator().manual_seed(1))
    q = make()
    if isinstance(q, MixtureProposal):  # one float64 component, one float32
        q.components[1] = GaussianProposal.isotropic(2, 1.0, dtype=torch.float32)
    with pytest.raises(ValueError, match="proposal"):
        K.estimate_log_normalizer(model, 10, proposal=q)
    with pytest.raises(ValueError, match="proposal"):
        K.heldout_log_likelihood(model, _x().double(), n_samples=10, proposal=q)
    good = GaussianProposal.isotropic(2, 2.0, dtype=torch.float64)
    assert K.estimate_log_normalizer(model, 10, proposal=good).n_samples == 10


def test_a_proposal_whose_draws_are_not_in_the_models_dtype_is_named():
    class Float32:
        dim = 2

        def sample(self, n, **kw):
            return torch.zeros(n, 2, dtype=torch.float32)

        def log_prob(self, y):
            return torch.zeros(y.shape[0], dtype=y.dtype)

    model = DKEF(_x(5).double(), n_kernels=1, hidden=4, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="proposal"):
        K.estimate_log_normalizer(model, 10, proposal=Float32())


@pytest.mark.parametrize(("kw", "name"), [
    (dict(dim=2, hidden=0), "hidden"), (dict(dim=2, hidden=-1), "hidden"), (dict(dim=0, hidden=3), "dim"),
    (dict(dim=2, hidden=2.5), "hidden"), (dict(dim=2, hidden=3, skip="no"), "skip")])
def test_feature_network_checks_its_counts(kw, name):
    with pytest.raises(ValueError, match=name):
        K.feature_network(**kw)


@pytest.mark.parametrize("u", [torch.zeros(3, 2), torch.zeros(4), torch.zeros(2, 3, 4)])
def test_gaussian_kernel_layer_checks_the_shape_of_u(u):
    layer = K.GaussianKernelLayer(torch.randn(5, 4), torch.tensor(1.0))
    with pytest.raises(ValueError, match="u must"):
        layer(u)
    assert layer(torch.zeros(3, 4)).shape == (3, 5)


@pytest.mark.parametrize("h", [torch.zeros(3, 4), torch.zeros(5), torch.zeros(2, 3, 5)])
def test_weighted_sum_checks_the_shape_of_h(h):
    layer = K.WeightedSum(torch.randn(5))
    with pytest.raises(ValueError, match="h must"):
        layer(h)
    assert layer(torch.zeros(3, 5)).shape == (3, 1)


@pytest.mark.parametrize("digits", [-1, 1.5, "2"])
def test_describe_checks_digits(digits):
    est = K.estimate_log_normalizer(_model(), 1000, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="digits"):
        est.describe(digits)
    assert est.describe(0)
