"""The training helper: it learns, it is reproducible, and divergence names the step."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import Gaussian, ScoreMLP, TrainingDivergedError, fisher_divergence, fit
from ssm_lib.losses import make_objective


@pytest.fixture
def data_density():
    return Gaussian(torch.tensor([1.0, -1.0]), torch.tensor([[0.5, 0.2], [0.2, 0.3]]))


@pytest.mark.parametrize(("objective", "options"), [
    ("ssm", {}), ("ssm_vr", {}), ("exact", {}), ("dsm", {"sigma": 0.1}),
])
def test_fit_reduces_fisher_divergence(data_density, objective, options):
    torch.manual_seed(0)
    model = ScoreMLP(2, hidden=32, depth=2)
    test_x = data_density.sample(2000, generator=torch.Generator().manual_seed(9))
    before = fisher_divergence(model, data_density.score, test_x).item()
    fit(model, data_density.sample, objective, n_steps=200, batch_size=64, lr=5e-3, seed=1,
        progress=False, **options)
    after = fisher_divergence(model, data_density.score, test_x).item()
    assert after < 0.2 * before, (before, after)


def test_fit_is_reproducible(data_density):
    data = data_density.sample(500, generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = ScoreMLP(2, hidden=8, depth=1)
        runs.append(fit(model, data, "ssm", n_steps=20, seed=3, progress=False).losses)
    assert runs[0] == runs[1]


def test_divergence_names_the_step():
    model = ScoreMLP(2, hidden=4, depth=1)
    calls = {"n": 0}

    def objective(score_fn, x, generator=None):
        calls["n"] += 1
        loss = score_fn(x).pow(2).mean()
        return loss * float("nan") if calls["n"] == 3 else loss

    with pytest.raises(TrainingDivergedError, match="step 3"):
        fit(model, torch.randn(50, 2), objective, n_steps=10, progress=False)


def test_bad_arguments():
    model = ScoreMLP(2, hidden=4, depth=1)
    with pytest.raises(ValueError, match="objective"):
        fit(model, torch.randn(10, 2), "no_such_objective", n_steps=1, progress=False)
    with pytest.raises(ValueError, match="log_prob"):  # MLE needs an exact log-density
        fit(model, torch.randn(10, 2), "mle", n_steps=1, progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        fit(model, torch.randn(10, 2), "ssm", n_steps=0, progress=False)
    with pytest.raises(ValueError, match="sigma"):
        make_objective("dsm")
    with pytest.raises(ValueError, match="data"):
        fit(model, "data.csv", "ssm", n_steps=1, progress=False)


def test_minibatches_are_drawn_uniformly_from_all_the_data():
    # data row i holds the value i: the drawn values reveal which rows minibatches come from
    n, batch, steps = 100, 50, 20
    data = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    drawn = []

    def objective(score_fn, x, generator=None):
        drawn.append(x.detach().reshape(-1).clone())
        return score_fn(x).pow(2).mean()

    torch.manual_seed(0)
    fit(ScoreMLP(1, hidden=4, depth=1), data, objective, n_steps=steps, batch_size=batch, progress=False)
    values = torch.cat(drawn)
    assert values.numel() == batch * steps
    # each tenth of the data gets about a tenth of the draws (binomial, 4 standard deviations)
    counts = torch.bincount((values // (n // 10)).long(), minlength=10)
    expected = values.numel() / 10
    assert (counts - expected).abs().max() < 4 * (values.numel() * 0.1 * 0.9) ** 0.5, counts.tolist()
