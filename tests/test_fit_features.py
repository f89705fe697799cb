"""API contract of ``fit``'s features (issue 21): continuing a run, learning-rate schedules,
validation with early stopping and best-state restoring, ``device=`` and the seed default."""

from __future__ import annotations

import functools

import pytest
import torch

from ssm_lib import ScoreMLP, fit


def _data(n: int = 400, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) * torch.tensor([1.5, 0.5]) + torch.tensor([1.0, -2.0])


def _model(seed: int = 0) -> ScoreMLP:
    torch.manual_seed(seed)
    return ScoreMLP(2, hidden=16, depth=2)


def _state(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _schedule(opt):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)


@pytest.mark.parametrize("schedule", [None, _schedule])
def test_a_resumed_run_equals_one_uninterrupted_run_bit_for_bit(schedule):
    data = _data()
    whole = _model()
    h_whole = fit(whole, data, "ssm_vr", n_steps=30, batch_size=32, lr=1e-2, seed=3, progress=False,
                  lr_schedule=schedule)
    split = _model()
    h1 = fit(split, data, "ssm_vr", n_steps=12, batch_size=32, lr=1e-2, seed=3, progress=False,
             lr_schedule=schedule)
    h2 = fit(split, data, "ssm_vr", n_steps=18, batch_size=32, progress=False, optimizer=h1.optimizer,
             generator=h1.generator, lr_schedule=h1.scheduler)
    assert h1.losses + h2.losses == h_whole.losses
    assert _same(_state(split), _state(whole))
    # starting over (a new optimiser and the same seed) is a different run
    restart = _model()
    fit(restart, data, "ssm_vr", n_steps=12, batch_size=32, lr=1e-2, seed=3, progress=False,
        lr_schedule=schedule)
    fit(restart, data, "ssm_vr", n_steps=18, batch_size=32, lr=1e-2, seed=3, progress=False,
        lr_schedule=schedule)
    assert not _same(_state(restart), _state(whole))


def test_the_learning_rate_schedule_is_followed():
    model = _model()
    h = fit(model, _data(), "dsm", sigma=0.3, n_steps=20, batch_size=16, lr=0.1, seed=0, progress=False,
            lr_schedule=_schedule)
    # StepLR(step_size=7, gamma=0.5) stepped once per step: after 20 steps lr = 0.1 * 0.5**2
    assert h.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)
    assert h.scheduler.last_epoch == 20
    # a factory made with functools.partial, and LambdaLR for a multiplier
    h = fit(_model(), _data(), "dsm", sigma=0.3, n_steps=5, seed=0, progress=False, lr=0.1,
            lr_schedule=functools.partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=lambda t: 0.9**t))
    assert h.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**5)


def test_bad_schedules_and_optimisers_are_named():
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, lr_schedule=lambda t: 0.5)
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, lr_schedule=3)
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False,
            lr_schedule=torch.optim.lr_scheduler.StepLR(other, 3))
    with pytest.raises(ValueError, match="optimizer"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, optimizer=other)
    with pytest.raises(ValueError, match="optimizer"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, optimizer="adam")


def test_validation_restores_the_best_state_and_stops_early():
    data = _data()
    val = _data(200, seed=1)
    model = _model()
    # a learning rate so high that the validation loss gets worse after its best
    h = fit(model, data, "dsm", sigma=0.3, n_steps=60, batch_size=32, lr=0.5, seed=0, progress=False,
            val_data=val, validate_every=1, patience=10, divergence_factor=None)
    best = h.val_steps[h.val_values.index(min(h.val_values))]
    assert h.best_step == best and h.best_value == min(h.val_values)
    assert h.stopped_early and h.val_steps[-1] - best > 10
    assert h.val_values[-1] > h.best_value
    # the model holds the best step's state: rerunning to exactly that step gives the same weights
    again = _model()
    fit(again, data, "dsm", sigma=0.3, n_steps=best, batch_size=32, lr=0.5, seed=0, progress=False,
        divergence_factor=None)
    assert _same(_state(model), _state(again))
    # without restoring, the model is the last step's
    last = _model()
    h_last = fit(last, data, "dsm", sigma=0.3, n_steps=60, batch_size=32, lr=0.5, seed=0, progress=False,
                 val_data=val, validate_every=1, patience=10, divergence_factor=None, restore_best=False)
    assert not _same(_state(last), _state(model)) and h_last.stopped_early


def test_the_validation_value_is_the_objective_on_all_validation_rows():
    model = _model()
    val = _data(50, seed=2)
    h = fit(model, _data(), "dsm", sigma=0.3, n_steps=3, batch_size=16, seed=0, progress=False,
            val_data=val, validate_every=3, restore_best=False)
    from ssm_lib.losses import make_objective

    expected = 0.0
    gen = torch.Generator().manual_seed(h.seed + 1)
    for start in range(0, 50, 16):
        rows = val[start:start + 16]
        loss = make_objective("dsm", sigma=0.3)(model, rows, generator=gen)
        expected += float(loss.detach()) * rows.shape[0]
    assert h.val_values[-1] == pytest.approx(expected / 50, rel=1e-6)


def test_validation_arguments_are_named():
    with pytest.raises(ValueError, match="val_data"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, patience=3)
    bad = _data(20)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="val_data"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, val_data=bad)
    with pytest.raises(ValueError, match="validate_every"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, val_data=_data(),
            validate_every=0)
    with pytest.raises(ValueError, match="patience"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, val_data=_data(), patience=-1)
    with pytest.raises(ValueError, match="restore_best"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, restore_best="yes")


def test_device_moves_the_model_and_is_named_when_bad():
    model = _model().double()
    h = fit(model, _data().double(), "dsm", sigma=0.3, n_steps=2, seed=0, progress=False, device="cpu")
    assert next(model.parameters()).device.type == "cpu" and len(h.losses) == 2
    with pytest.raises(ValueError, match="device"):
        fit(_model(), _data(), "dsm", sigma=0.3, n_steps=2, progress=False, device="not-a-device")


def test_the_default_seed_does_not_replay_minibatches_but_the_global_seed_reproduces():
    data = _data()
    a, b = _model(), _model()
    ha = fit(a, data, "dsm", sigma=0.3, n_steps=5, progress=False)
    hb = fit(b, data, "dsm", sigma=0.3, n_steps=5, progress=False)
    assert ha.seed != hb.seed and ha.losses != hb.losses
    c = _model()
    torch.manual_seed(5)
    hc = fit(c, data, "dsm", sigma=0.3, n_steps=5, progress=False)
    d = _model()
    torch.manual_seed(5)
    hd = fit(d, data, "dsm", sigma=0.3, n_steps=5, progress=False)
    assert hc.seed == hd.seed and hc.losses == hd.losses
    # the recorded seed reruns the same run
    e = _model()
    he = fit(e, data, "dsm", sigma=0.3, n_steps=5, progress=False, seed=hc.seed)
    assert he.losses == hc.losses
