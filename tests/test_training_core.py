"""The training core (:func:`ssm_lib.training.train_loop`) and the trainers built on it, in the
API-contract style: each divergence cause stops the run naming the step and the cause; a NaN
validation value is never a best; the best state comes back after a worse epoch; unknown
keywords and non-finite data are named before any step; nothing is printed to stdout."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch
from torch import nn

from ssm_lib import NICE, ScoreMLP, fit
from ssm_lib.dkef import DKEF, dkef_loss, train_dkef
from ssm_lib.flow_training import flow_objective, train_with_validation
from ssm_lib.losses import make_objective
from ssm_lib.score_estimators import ConditionalScoreMLP, NetworkScoreEstimator
from ssm_lib.training import DivergenceMonitor, History, LoopRecord, TrainingDivergedError, train_loop


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _Scalar(nn.Module):
    """One parameter ``w``; the loss ``scale(t) * (w - 3)^2`` has value and gradient under control."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.0))


def _loop(loss_of_step, n_steps=10, **kw):
    m = _Scalar()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    record = train_loop(lambda t: loss_of_step(m, t), [m.w], opt, n_steps, progress=False, **kw)
    return m, record


# ============================================================================ divergence

def test_a_non_finite_loss_names_the_step_and_the_cause():
    def loss(m, t):
        return (m.w - 3) ** 2 * (float("nan") if t == 4 else 1.0)

    with pytest.raises(TrainingDivergedError, match=r"step 4: the loss is nan"):
        _loop(loss)


def test_a_finite_loss_blow_up_names_the_step():
    # the loss grows by 10^3 at step 6 with K = 100: above K (a K^2 threshold would miss it);
    # a jump by 50 (below K) is not a divergence
    def loss(factor):
        return lambda m, t: (m.w - 3) ** 2 + 1.0 + (factor if t >= 6 else 0.0)

    with pytest.raises(TrainingDivergedError, match=r"step 6: the loss is 1\.01e\+03"):
        _loop(loss(1e3), divergence_factor=100)
    _, record = _loop(loss(50.0), divergence_factor=100)
    assert len(record.losses) == 10


def test_a_gradient_only_blow_up_names_the_step():
    # from step 5 the gradient is 10^4 times larger while the loss value stays the same
    def loss(m, t):
        base = (m.w - 3) ** 2
        return base + (1e4 - 1) * (base - base.detach()) if t >= 5 else base

    with pytest.raises(TrainingDivergedError, match=r"step 5: the gradient norm"):
        _loop(loss, divergence_factor=1e3)
    _, record = _loop(loss, divergence_factor=None)  # switched off: the run completes
    assert len(record.losses) == 10


def test_a_non_finite_gradient_names_the_step():
    def loss(m, t):
        base = (m.w - 3) ** 2
        return base + (base - base.detach()) * 1e30 * 1e30 if t == 3 else base  # value finite, gradient inf

    with pytest.raises(TrainingDivergedError, match=r"step 3: the gradient norm is (nan|inf)"):
        _loop(loss)


def test_the_monitor_threshold_is_k_times_the_first_step_scale():
    monitor = DivergenceMonitor(10.0)
    assert monitor.check(2.0, 0.5) is None  # scales max(2, 1) = 2 and max(0.5, 1) = 1
    assert monitor.check(19.9, 9.9) is None
    assert "loss" in monitor.check(20.1, 1.0)
    assert "gradient norm" in monitor.check(1.0, 10.1)
    with pytest.raises(ValueError, match="divergence_factor"):
        DivergenceMonitor(1.0)


def test_on_diverge_stop_keeps_the_best_state_and_says_why():
    def loss(m, t):
        return (m.w - 3) ** 2 * (float("nan") if t == 7 else 1.0)

    values = iter([5.0, 4.0, 6.0])
    m, record = _loop(loss, validate=lambda t: next(values), validate_every=2, restore=None,
                      on_diverge="stop")
    assert record.diverged_at == 7 and "step 7" in record.divergence and len(record.losses) == 6
    assert record.best_step == 4


# ============================================================================ validation

def test_a_nan_validation_value_is_a_divergence_never_a_best():
    values = iter([5.0, float("nan"), 1.0])
    with pytest.raises(TrainingDivergedError, match=r"step 4: the validation value is nan"):
        _loop(lambda m, t: (m.w - 3) ** 2, validate=lambda t: next(values), validate_every=2)
    values = iter([5.0, float("nan"), 1.0])
    m, record = _loop(lambda m, t: (m.w - 3) ** 2, validate=lambda t: next(values), validate_every=2,
                      on_diverge="stop")
    assert record.best_step == 2 and record.best_value == 5.0 and record.diverged_at == 4


def test_the_best_state_is_restored_after_a_worse_epoch():
    # the loss pulls w from 0 towards 3 at every step; validation prefers step 4's state
    states = {}

    def validate(t):
        states[t] = float(m.w.detach())
        return {2: 3.0, 4: 1.0, 6: 2.0, 8: 2.5, 10: 4.0}[t]

    m = _Scalar()
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    record = train_loop(lambda t: (m.w - 3) ** 2, [m.w], opt, 10, validate=validate, validate_every=2,
                        restore=m, progress=False)
    assert record.best_step == 4 and record.val_steps == [2, 4, 6, 8, 10]
    assert float(m.w.detach()) == states[4] != states[10]


def test_patience_stops_early():
    values = iter([3.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    _, record = _loop(lambda m, t: (m.w - 3) ** 2, n_steps=20, validate=lambda t: next(values),
                      validate_every=2, patience=3)
    # best at step 4; step 8 is more than 3 steps later
    assert record.stopped_early and record.val_steps == [2, 4, 6, 8] and len(record.losses) == 8


def _two_gaussians(n, seed):
    return torch.randn(n, 2, generator=_g(seed)) * torch.tensor([1.0, 0.5]) + torch.tensor([1.0, -1.0])


def test_flow_trainer_names_one_nan_in_the_validation_rows_before_training():
    torch.manual_seed(0)
    model = NICE(2, hidden=32, depth=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    val = _two_gaussians(200, 1)
    val[17, 1] = float("nan")
    with pytest.raises(ValueError, match="val_x must be finite"):
        train_with_validation(model, flow_objective("mle"), _two_gaussians(2000, 0), val, epochs=1,
                              generator=_g(2), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    bad_train = _two_gaussians(2000, 0)
    bad_train[5, 0] = float("inf")
    with pytest.raises(ValueError, match="train_x must be finite"):
        train_with_validation(model, flow_objective("mle"), bad_train, val.nan_to_num(), epochs=1,
                              generator=_g(2), progress=False)


def test_flow_trainer_treats_a_nan_validation_value_as_divergence():
    torch.manual_seed(0)
    model = NICE(2, hidden=8, depth=1)
    values = iter([2.0, 1.0, float("nan"), 0.5])
    x = _two_gaussians(40, 0)
    with pytest.raises(TrainingDivergedError, match="step 8: the validation value is nan"):
        train_with_validation(model, flow_objective("mle"), x, x, epochs=4, batch_size=10,
                              generator=_g(0), select=lambda m: next(values), progress=False)


def test_flow_trainer_restores_the_best_state_after_a_worse_epoch():
    torch.manual_seed(0)
    model = NICE(2, hidden=8, depth=1)
    saved = {}
    scripted = {0: 5.0, 4: 3.0, 8: 1.0, 12: 2.0, 16: 4.0}

    def select(m):
        step = len(saved) * 4
        saved[step] = {k: v.clone() for k, v in m.state_dict().items()}
        return scripted[step]

    x = _two_gaussians(40, 0)
    run = train_with_validation(model, flow_objective("mle"), x, x, epochs=4, batch_size=10, lr=1e-2,
                                generator=_g(0), select=select, progress=False)
    assert run.best_step == 8 and run.eval_steps == [0, 4, 8, 12, 16]
    assert all(torch.equal(saved[8][k], v) for k, v in model.state_dict().items())
    assert not all(torch.equal(saved[16][k], v) for k, v in model.state_dict().items())


def test_dkef_names_non_finite_data_and_bad_counts_before_training():
    x = _two_gaussians(60, 0)
    model = DKEF(x[:5], n_kernels=1, hidden=4, generator=_g(1))
    bad = x.clone()
    bad[3, 0] = float("nan")
    for args, name in (((bad, x), "train"), ((x, bad), "val")):
        with pytest.raises(ValueError, match=f"{name} must be finite"):
            train_dkef(model, *args, "ssm", steps=2, batch_size=10, progress=False)
    for key in ("val_every", "n_alpha"):
        with pytest.raises(ValueError, match=key):
            train_dkef(model, x, x, "ssm", steps=2, batch_size=10, progress=False, **{key: 0})
    for key in ("patience", "lambda_steps"):
        with pytest.raises(ValueError, match=key):
            train_dkef(model, x, x, "ssm", steps=2, batch_size=10, progress=False, **{key: -1})


def test_dkef_restores_its_best_state_after_a_worse_validation():
    # exact SM is deterministic: the restored model, with alpha refit on the same rows (which
    # train_dkef does at the end when lambda_steps=0), gives back the best validation value
    # (30 training rows, 20 inducing points, a large lr: the validation value rises after step 15)
    x = _two_gaussians(300, 0)
    model = DKEF(x[:20], n_kernels=1, hidden=8, generator=_g(1))
    hist = train_dkef(model, x[:30], x[200:], "exact", steps=40, batch_size=30, lr=0.1, val_every=4,
                      n_alpha=30, lambda_steps=0, generator=_g(2), progress=False)
    values = [v for _, v in hist.val]
    best = min(range(len(values)), key=values.__getitem__)
    assert hist.best_step == hist.val[best][0]
    assert best < len(values) - 1 and values[-1] > values[best] + 1e-3, "the test needs a worse last check"
    after = dkef_loss(model, x[200:], "exact").item()
    assert after == pytest.approx(values[best], rel=1e-5, abs=1e-6)


# ============================================================================ keywords and data

def test_unknown_keywords_are_named_up_front():
    model = ScoreMLP(2, hidden=4, depth=1)
    x = torch.randn(20, 2, generator=_g())
    with pytest.raises(ValueError, match=r"'batchsize'.*did you mean 'batch_size'"):
        fit(model, x, "ssm", n_steps=1, batchsize=8, progress=False)
    with pytest.raises(ValueError, match=r"'learning_rate'"):
        fit(model, x, "ssm", n_steps=1, learning_rate=1e-3, progress=False)
    with pytest.raises(ValueError, match=r"'batchsize'"):
        fit(model, x, lambda s, y, generator=None: s(y).pow(2).mean(), n_steps=1, batchsize=8, progress=False)
    with pytest.raises(ValueError, match=r"'n_projection'.*did you mean 'n_projections'"):
        make_objective("ssm", n_projection=4)
    make_objective("ssm", n_projections=4)  # the right name still works


def test_every_data_row_is_eventually_drawn():
    # 5 rows, 400 draws with replacement: a row missed has probability 5 (4/5)^400 ~ 1e-38
    data = torch.arange(5, dtype=torch.float32).reshape(5, 1)
    drawn = []

    def objective(score_fn, x, generator=None):
        drawn.append(x.detach().reshape(-1))
        return score_fn(x).pow(2).mean()

    fit(ScoreMLP(1, hidden=4, depth=1), data, objective, n_steps=100, batch_size=4, progress=False)
    assert set(torch.cat(drawn).tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}


# ============================================================================ other trainers

def test_the_score_network_update_names_the_step_of_a_divergence():
    net = ConditionalScoreMLP(2, 0, hidden=8)
    est = NetworkScoreEstimator(net, torch.optim.SGD(net.parameters(), lr=1e-3), n_steps=2, generator=_g())
    z = torch.randn(4, 10, 2, generator=_g(1))
    est.update(z)
    with torch.no_grad():
        next(net.parameters()).view(-1)[0] = float("nan")  # the network breaks after 2 steps
    with pytest.raises(TrainingDivergedError, match="score network diverged at step 3: the loss is nan"):
        est.update(z)


# ============================================================================ output

def test_trainers_print_nothing_and_draw_no_bar_off_a_terminal(capsys):
    x = _two_gaussians(40, 0)
    fit(ScoreMLP(2, hidden=4, depth=1), x, "ssm", n_steps=5)  # progress=None: off a terminal, no bar
    torch.manual_seed(0)
    calls = {"n": 0}

    def objective(m, y, g):
        calls["n"] += 1
        return -m.log_prob(y).mean() * (float("nan") if calls["n"] == 3 else 1.0)

    run = train_with_validation(NICE(2, hidden=8, depth=1), objective, x, x, epochs=2, batch_size=10,
                                generator=_g(), on_diverge="stop", select=lambda m: 0.0)
    assert run.diverged_at == 3 and "step 3" in run.divergence
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    fit(ScoreMLP(2, hidden=4, depth=1), x, "ssm", n_steps=5, progress=True)  # asked for: on stderr
    out = capsys.readouterr()
    assert out.out == "" and "training" in out.err
    assert math.isfinite(run.best_value)


# ============================================================================ one registry

def test_dkef_reads_its_objectives_and_builders_from_the_one_registry(monkeypatch):
    import dataclasses

    import ssm_lib.dkef
    from ssm_lib.dkef import closed_form_objectives
    from ssm_lib.losses import OBJECTIVES

    assert not hasattr(ssm_lib.dkef, "OBJECTIVES")
    assert "mle" not in closed_form_objectives() and "ssm_vr" in closed_form_objectives()
    # a new registry entry (here a copy of SSM-VR's) is at once an objective DKEF can train with
    monkeypatch.setitem(OBJECTIVES, "ssm_vr_copy", dataclasses.replace(OBJECTIVES["ssm_vr"], label="copy"))
    assert "ssm_vr_copy" in closed_form_objectives()
    x = _two_gaussians(40, 0)
    model = DKEF(x[:5], n_kernels=1, hidden=4, generator=_g(1))
    systems = [model.alpha_system(x, name, generator=_g(3)) for name in ("ssm_vr", "ssm_vr_copy")]
    assert all(torch.equal(a, b) for a, b in zip(*systems, strict=True))
    assert torch.equal(dkef_loss(model, x, "ssm_vr", generator=_g(3)),
                       dkef_loss(model, x, "ssm_vr_copy", generator=_g(3)))
    with pytest.raises(ValueError, match="objective must be one of"):
        train_dkef(model, x, x, "mle", steps=1, progress=False)


def test_evaluate_flow_names_an_empty_batch():
    from ssm_lib.flow_training import evaluate_flow

    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(N, d\) with N >= 1"):
        evaluate_flow(NICE(2, hidden=4, depth=1), torch.zeros(0, 2))


# ============================================================================ dtypes and numbers

def test_a_wrong_dtype_is_named_by_the_flow_dkef_and_their_trainers():
    x64 = _two_gaussians(40, 0).double()
    nice = NICE(2, hidden=4, depth=1)
    with pytest.raises(ValueError, match=r"x has dtype torch.float64 but the model's parameters are"):
        nice.log_prob(x64)
    with pytest.raises(ValueError, match=r"train_x has dtype torch.float64"):
        train_with_validation(nice, flow_objective("mle"), x64, x64.float(), epochs=1, generator=_g(),
                              progress=False)
    model = DKEF(x64[:5].float(), n_kernels=1, hidden=4, generator=_g(1))
    with pytest.raises(ValueError, match=r"x has dtype torch.float64"):
        model.unnormalized_log_prob(x64)
    with pytest.raises(ValueError, match=r"val has dtype torch.float64"):
        train_dkef(model, x64.float(), x64, "ssm", steps=1, batch_size=10, progress=False)


def test_numpy_scalars_are_numbers():
    np = pytest.importorskip("numpy")
    nice = NICE(2, hidden=4, depth=1)
    cold = nice.sample(2000, generator=_g(), temperature=np.float32(0.5))
    hot = nice.sample(2000, generator=_g(), temperature=1.0)
    # the same z scaled by 0.5 through a fixed flow: the samples are not those at temperature 1
    assert not torch.allclose(cold, hot)
    assert ConditionalScoreMLP(2, np.int64(3), hidden=4).context_dim == 3


def test_history_and_loop_record_keep_their_fields_defined_once():
    # issue 21: the six shared fields have one definition; the public field lists and their
    # positional order are those of before
    shared = ["losses", "val_steps", "val_values", "best_step", "best_value", "stopped_early"]
    assert [f.name for f in dataclasses.fields(History)] == shared + ["optimizer", "scheduler", "generator",
                                                                      "seed"]
    assert [f.name for f in dataclasses.fields(LoopRecord)] == shared + ["diverged_at", "divergence"]
    h = History([1.0], [1], [2.0], 1, 2.0, False, None, None, None, 7)
    assert h.seed == 7 and h.best_value == 2.0 and not hasattr(h, "diverged_at")
    defined_here = {cls: set(inspect.get_annotations(cls)) for cls in (History, LoopRecord)}
    assert not defined_here[History] & set(shared) and not defined_here[LoopRecord] & set(shared)
