"""NICE: invertibility, exact log-density (grid integral in 2-D, independent log-determinant in
higher dimensions), score = autograd of log_prob, and use by every objective."""

from __future__ import annotations

import math

import pytest
import torch

from ssm_lib.flow_training import evaluate_flow, flow_objective, train_with_validation
from ssm_lib.flows import NICE, AdditiveCoupling
from ssm_lib.losses import exact_score_matching, negative_log_likelihood, sliced_score_matching
from ssm_lib.training import TrainingDivergedError


def random_nice(dim: int, seed: int = 0, hidden: int = 16, depth: int = 2, n_couplings: int = 4,
                perturb: float = 0.5) -> NICE:
    """A float64 NICE whose weights and scales are far from the initial ones (non-trivial map)."""
    torch.manual_seed(seed)
    model = NICE(dim, hidden=hidden, depth=depth, n_couplings=n_couplings).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn_like(p))
    return model


@pytest.mark.parametrize("dim", [2, 5, 8])
def test_inverse_undoes_forward(dim):
    model = random_nice(dim)
    x = torch.randn(50, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z, _ = model(x)
    # rounding: the layers add shifts of the size of the latent values (up to a few hundred)
    scale = float(z.detach().abs().max())
    assert torch.allclose(model.inverse(z), x, atol=1e-14 * scale, rtol=0)
    z2 = torch.randn(50, dim, dtype=torch.float64)
    x2 = model.inverse(z2)
    assert torch.allclose(model(x2)[0], z2, atol=1e-14 * float(x2.detach().abs().max() + 100), rtol=0)


def test_couplings_alternate_and_cover_every_coordinate():
    model = NICE(7, hidden=8, depth=1)
    sets = [(c.fixed.tolist(), c.shifted.tolist()) for c in model.couplings]
    assert sets[0] == ([0, 2, 4, 6], [1, 3, 5]) and sets[1] == ([1, 3, 5], [0, 2, 4, 6])
    assert sets[2] == sets[0] and sets[3] == sets[1]
    # the paper's MLPs: five linear layers of 1000 units (depth = 4 hidden layers)
    big = NICE(784)
    linears = [m for m in big.couplings[0].shift_net if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [1000, 1000, 1000, 1000, 392]


def test_density_integrates_to_one_in_two_dimensions():
    model = random_nice(2, seed=0, perturb=0.3)
    with torch.no_grad():
        model.scaling.log_scale.copy_(torch.tensor([0.4, -0.3], dtype=torch.float64))
        h = 0.04
        t = torch.arange(-16.0, 16.0 + h / 2, h, dtype=torch.float64)
        xx, yy = torch.meshgrid(t, t, indexing="ij")
        pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
        mass = sum(float(model.log_prob(chunk).exp().sum()) for chunk in pts.split(100_000)) * h * h
        # the mass lies well inside the box: the latent of the box's border is far out
        border = pts[(pts.abs().max(1).values > 15.9)]
        assert float(model(border)[0].norm(dim=1).min()) > 7.0
        # not a Gaussian in disguise: the couplings bend the density
        xs = model.sample(1000, generator=torch.Generator().manual_seed(0))
        assert float(model.couplings[0].shift(xs).std()) > 0.1
    assert mass == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("dim", [5, 8])
def test_log_prob_matches_an_independent_log_determinant(dim):
    model = random_nice(dim, seed=dim)
    x = torch.randn(6, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    got = model.log_prob(x)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0))[0].squeeze(0), x[i])
        _, logabsdet = torch.linalg.slogdet(jac)
        z = model(x[i:i + 1])[0][0]
        expected = -0.5 * z @ z - 0.5 * dim * math.log(2 * math.pi) + logabsdet
        assert float(got[i].detach()) == pytest.approx(float(expected.detach()), abs=1e-10)


def test_score_is_autograd_of_log_prob_and_leaves_input_alone():
    model = random_nice(6, seed=4)
    x = torch.randn(9, 6, dtype=torch.float64)
    s = model.score(x)
    assert not x.requires_grad
    x_ = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.log_prob(x_).sum(), x_)
    assert torch.allclose(s, g, atol=1e-12)


def test_score_matching_losses_on_nice_match_a_hessian_oracle():
    """Exact SM and SSM (explicit directions) against the explicit Hessian of log p."""
    dim = 5
    model = random_nice(dim, seed=5)
    x = torch.randn(4, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    v = torch.randn(1, 4, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    exact_oracle, ssm_oracle = [], []
    for i in range(4):
        def logp(u):
            return model.log_prob(u.unsqueeze(0))[0]
        hess = torch.autograd.functional.hessian(logp, x[i])
        s = torch.autograd.functional.jacobian(logp, x[i])
        exact_oracle.append(0.5 * s @ s + torch.trace(hess))
        ssm_oracle.append(v[0, i] @ hess @ v[0, i] + 0.5 * (v[0, i] @ s) ** 2)
    exact = exact_score_matching(model.score, x, reduction="none")
    exact_vmap = exact_score_matching(model.score, x, method="vmap", reduction="none")
    ssm = sliced_score_matching(model.score, x, directions=v, reduction="none")
    assert torch.allclose(exact, torch.stack(exact_oracle), atol=1e-9)
    assert torch.allclose(exact_vmap, torch.stack(exact_oracle), atol=1e-9)
    assert torch.allclose(ssm, torch.stack(ssm_oracle), atol=1e-9)


def test_every_objective_gives_finite_gradients():
    model = random_nice(6, seed=6)
    x = torch.randn(16, 6, dtype=torch.float64)
    for name, opts in [("mle", {}), ("exact", {"method": "vmap"}), ("ssm", {}), ("ssm_vr", {}),
                       ("dsm", {"sigma": 0.1})]:
        model.zero_grad()
        loss = flow_objective(name, **opts)(model, x, torch.Generator().manual_seed(0))
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(float(g.abs().sum()) > 0 for g in grads), name
    nll = negative_log_likelihood(model, x).detach()
    assert float(nll) == pytest.approx(float(-model.log_prob(x).mean().detach()))


def test_sample_inverts_standard_normal_draws():
    model = random_nice(4, seed=7)
    xs = model.sample(20, generator=torch.Generator().manual_seed(9))
    z = torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(model(xs)[0], z, atol=1e-12)
    assert not xs.requires_grad


def test_training_keeps_the_validation_best_checkpoint():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0.0], [0.8, 0.5]])
    data = torch.randn(600, 2, generator=gen) @ a.T + torch.tensor([1.0, -2.0])
    model = NICE(2, hidden=16, depth=2)
    val = data[500:]

    def val_nll(m):
        with torch.no_grad():
            return float(-m.log_prob(val).mean())

    before = val_nll(model)
    run = train_with_validation(model, flow_objective("mle"), data[:500], val, epochs=15, batch_size=50,
                                lr=1e-2, generator=gen, select=val_nll,
                                track={"nll": val_nll, "nll4": val_nll}, track_every={"nll4": 4},
                                progress=False)
    assert run.best_value == min(run.selection)
    assert val_nll(model) == pytest.approx(run.best_value, abs=1e-6)
    assert run.best_value < before - 0.5
    assert len(run.train_losses) == 15 * 10 and run.eval_steps == list(range(0, 151, 10))
    assert run.tracked["nll"] == pytest.approx(run.selection)
    four = [v for i, v in enumerate(run.tracked["nll4"]) if i % 4 == 0 or i == 15]
    assert four == pytest.approx([v for i, v in enumerate(run.selection) if i % 4 == 0 or i == 15])
    assert all(math.isnan(v) for i, v in enumerate(run.tracked["nll4"]) if i % 4 and i != 15)
    metrics = evaluate_flow(model, val, batch_size=40)
    assert metrics["log_prob"].shape == (100,) and metrics["sm_loss"].shape == (100,)
    assert float(-metrics["log_prob"].mean()) == pytest.approx(run.best_value, abs=1e-5)


def test_divergence_names_the_step():
    model = NICE(2, hidden=8, depth=1)
    calls = {"n": 0}

    def objective(m, x, g):
        calls["n"] += 1
        loss = -m.log_prob(x).mean()
        return loss * float("nan") if calls["n"] == 3 else loss

    x = torch.randn(40, 2)
    with pytest.raises(TrainingDivergedError, match="step 3"):
        train_with_validation(model, objective, x, x, epochs=2, batch_size=10,
                              generator=torch.Generator().manual_seed(0), progress=False,
                              select=lambda m: 0.0)
    calls["n"] = 0
    run = train_with_validation(model, objective, x, x, epochs=2, batch_size=10, on_diverge="stop",
                                generator=torch.Generator().manual_seed(0), progress=False,
                                select=lambda m: 0.0)
    assert run.diverged_at == 3 and len(run.train_losses) == 2


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="dim"):
        AdditiveCoupling(1, 0, 8, 1)
    with pytest.raises(ValueError, match="parity"):
        AdditiveCoupling(4, 2, 8, 1)
    model = NICE(4, hidden=8, depth=1)
    with pytest.raises(ValueError, match="x must have shape"):
        model.log_prob(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="z must have shape"):
        model.inverse(torch.zeros(3))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(3, temperature=0.0)
    with pytest.raises(ValueError, match="objective"):
        flow_objective("no_such_objective")
    with pytest.raises(ValueError, match="sigma"):
        flow_objective("dsm")
    with pytest.raises(ValueError, match="log_prob"):
        negative_log_likelihood(torch.nn.Linear(2, 2), torch.zeros(1, 2))
