"""API contract of ``train_dkef``'s training-core options (issue 21): the same ``seed`` /
``generator`` / ``optimizer`` / ``lr_schedule`` / ``device`` conventions as ``fit``, and
continuing a run bit for bit from a saved checkpoint. The default results are pinned against
the code before these options existed (``tests/data/train_dkef_pin.json``)."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import pytest
import torch

from booktools.reference import numerics_fingerprint
from ssm_lib.dkef import DKEF, train_dkef

PIN = Path(__file__).parent / "data" / "train_dkef_pin.json"


def _pin(objective: str) -> dict:
    """The pin of ``objective``: this kind of machine's own, ``train_dkef_pin.<numerics
    fingerprint>.json`` (:func:`booktools.reference.numerics_fingerprint`), where it has one, else
    the pin of the machines the project first ran on. CP's later steps follow the CPU's float32
    rounding: on an AVX-512 machine its step-12 loss is -2.41 against the first pin's -2.70, while
    its first four steps agree to 1e-5; that machine's pin was written by this code on 2026-12-07."""
    own = PIN.with_name(f"train_dkef_pin.{numerics_fingerprint()}.json")
    if own.is_file() and objective in (mine := json.loads(own.read_text())):
        return mine[objective]
    return json.loads(PIN.read_text())[objective]


def _setup(seed: int = 7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(300, 3, generator=g) * torch.tensor([1.0, 0.5, 2.0])
    train, val = x[:240], x[240:]
    init = torch.Generator().manual_seed(11)
    rows = torch.randperm(240, generator=init)[:20]
    return DKEF(train[rows], n_kernels=2, hidden=8, generator=init), train, val


def _state(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("objective, sigma", [("ssm_vr", None), ("dsm", 0.3), ("exact", None), ("cp", None)])
def test_default_results_are_those_of_the_code_before_the_new_options(objective, sigma, one_thread):
    # the call of the dkef_uci / dkef_scalability notebooks, shrunk; values written by the code
    # before seed/optimizer/lr_schedule/device/resume existed (pinned to float32 rounding).
    # ssm_vr, exact and cp re-pinned after the fix of pairwise_sq_dist's clamp (issue 25): the old
    # pins came from code whose clamp cut the graph on rows meeting an inducing point (this setup's
    # inducing points are training rows); ssm_vr and exact now agree with the difference-based code
    # from before the distance rewrite (93fc098^) to 1e-5 / 2.5e-5 over all 13 steps; cp's random
    # stream differs from that code by design, and moved from the old pin by 3e-6 at step 3
    # (first derivatives near coinciding rows), then more through Adam's steps
    pin = _pin(objective)
    # exact SM's quadratic is now built in closed form (forward-mode derivatives of the features,
    # pinned in float64 in test_dkef_kernel_paths.py): its float32 rounding moved by ~3e-5
    rel = 1e-4 if objective == "exact" else 1e-5
    model, train, val = _setup()
    gen = torch.Generator().manual_seed(5)
    hist = train_dkef(model, train, val, objective, steps=13, batch_size=40, sigma=sigma, val_every=4,
                      patience=6, n_alpha=100, lambda_steps=5, generator=gen, progress=False)
    assert hist.best_step == pin["best_step"] and hist.stopped_early == pin["stopped_early"]
    assert hist.train == pytest.approx(pin["train"], rel=rel, abs=1e-6)
    assert [s for s, _ in hist.val] == [s for s, _ in pin["val"]]
    assert [v for _, v in hist.val] == pytest.approx([v for _, v in pin["val"]], rel=rel, abs=1e-6)
    # the feature networks' output biases cancel in k(x, z) (a function of phi(x) - phi(z)): their
    # gradient is zero up to rounding, which Adam's normalisation turns into arbitrary steps, so
    # those two entries follow the rounding, not the code, and are not pinned (exact SM's
    # closed-form quadratic rounds differently; SSM-VR's and DSM's moved by up to 0.1 on an AVX-512
    # CPU while every other entry agreed to 1e-4)
    sums = {k: float(v.double().sum()) for k, v in model.state_dict().items() if not k.endswith(".4.bias")}
    pin = {**pin, "state": {k: v for k, v in pin["state"].items() if k in sums}}
    assert sums == pytest.approx(pin["state"], rel=1e-4, abs=1e-5)
    # the generator was used exactly as before (same number of draws)
    assert int(torch.randint(0, 2**30, (), generator=gen)) == pin["gen_after"]


def _schedule(opt):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)


@pytest.mark.parametrize("objective, schedule", [("ssm_vr", None), ("dsm", _schedule), ("exact", _schedule)])
def test_a_resumed_run_equals_one_uninterrupted_run_bit_for_bit(objective, schedule, one_thread):
    sigma = 0.3 if objective == "dsm" else None
    kw = dict(batch_size=40, sigma=sigma, val_every=4, patience=50, n_alpha=100, lambda_steps=5,
              progress=False, lr=0.05, lr_schedule=schedule)
    whole, train, val = _setup()
    h_whole = train_dkef(whole, train, val, objective, steps=16, seed=3, **kw)
    split, _, _ = _setup()
    h1 = train_dkef(split, train, val, objective, steps=8, seed=3, **kw)
    buffer = io.BytesIO()
    torch.save(h1.checkpoint, buffer)  # the checkpoint is saved and loaded as plain tensors and numbers
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    fresh, _, _ = _setup(seed=99)  # a new model object: everything comes from the checkpoint
    h2 = train_dkef(fresh, train, val, objective, steps=8, resume=checkpoint, **kw)
    assert h1.train + h2.train == h_whole.train
    assert h2.val == [v for v in h_whole.val if v[0] >= 8]
    assert h2.best_step == h_whole.best_step and h2.seed == h_whole.seed == 3
    assert _same(_state(fresh), _state(whole))
    # starting over from the first call's final model (a new optimiser, the same seed) differs
    restart, _, _ = _setup()
    train_dkef(restart, train, val, objective, steps=8, seed=3, **kw)
    train_dkef(restart, train, val, objective, steps=8, seed=3, **kw)
    assert not _same(_state(restart), _state(whole))


class _RecordingAdam(torch.optim.Adam):
    """Adam that writes down the learning rate of each step it takes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[float] = []

    def step(self, closure=None):
        self.seen.append(self.param_groups[0]["lr"])
        return super().step(closure)


def test_the_schedule_sets_the_learning_rate_of_each_step_and_the_optimizer_is_used(one_thread):
    model, train, val = _setup()
    params = [p for n, p in model.named_parameters() if n != "log10_lambda"] + [model.log10_lambda]
    opt = _RecordingAdam(params, lr=0.02)
    hist = train_dkef(model, train, val, "exact", steps=7, batch_size=40, n_alpha=100, lambda_steps=0, seed=0,
                      progress=False, optimizer=opt, lr=123.0,  # lr is ignored with optimizer=
                      lr_schedule=functools.partial(torch.optim.lr_scheduler.LambdaLR,
                                                    lr_lambda=lambda t: 0.8**t))
    # the optimiser's step t (t = 1, ..., 7) runs at lr * 0.8^(t-1)
    assert opt.seen == pytest.approx([0.02 * 0.8**t for t in range(7)])
    assert hist.optimizer is opt and hist.scheduler.last_epoch == 7
    # without a schedule the rate stays constant
    model, train, val = _setup()
    hist = train_dkef(model, train, val, "exact", steps=3, batch_size=40, n_alpha=100, lambda_steps=0, seed=0,
                      progress=False, lr=0.03)
    assert hist.scheduler is None and hist.optimizer.param_groups[0]["lr"] == 0.03


def test_the_seed_default_is_drawn_recorded_and_reproduces(one_thread):
    kw = dict(steps=3, batch_size=40, n_alpha=50, lambda_steps=0, progress=False)
    model, train, val = _setup()
    torch.manual_seed(1)
    h = train_dkef(model, train, val, "ssm", **kw)
    assert isinstance(h.seed, int) and h.seed >= 0
    again, _, _ = _setup()
    h_again = train_dkef(again, train, val, "ssm", seed=h.seed, **kw)
    assert h_again.train == h.train and _same(_state(model), _state(again))
    other, _, _ = _setup()
    h_other = train_dkef(other, train, val, "ssm", **kw)  # the global generator moved on
    assert h_other.seed != h.seed and h_other.train != h.train
    given = torch.Generator().manual_seed(4)
    assert train_dkef(_setup()[0], train, val, "ssm", generator=given, **kw).seed is None


def test_device_moves_the_model_and_the_data(one_thread):
    model, train, val = _setup()
    hist = train_dkef(model, train, val, "exact", steps=2, batch_size=40, n_alpha=50, lambda_steps=0, seed=0,
                      progress=False, device="cpu")
    assert model.alpha.device.type == "cpu" and len(hist.train) == 2


@pytest.mark.parametrize("key, value", [
    ("seed", -1), ("seed", 1.5), ("optimizer", "adam"), ("lr_schedule", 3), ("lr_schedule", lambda opt: 0.5),
    ("device", "no-such-device"), ("generator", 5), ("resume", {"step": 3}), ("resume", 7), ("clip", 0.0),
    ("sigma", -0.1), ("progress", "yes"), ("divergence_factor", 0.5),
])
def test_each_new_argument_is_checked_and_named(key, value):
    model, train, val = _setup()
    with pytest.raises(ValueError, match=key):
        train_dkef(model, train, val, "ssm", steps=2, batch_size=10, **{"progress": False, key: value})


def test_inconsistent_combinations_are_named(one_thread):
    model, train, val = _setup()
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        train_dkef(model, train, val, "ssm", steps=2, batch_size=10, progress=False, optimizer=other)
    with pytest.raises(ValueError, match="lr_schedule"):
        train_dkef(model, train, val, "ssm", steps=2, batch_size=10, progress=False,
                   lr_schedule=torch.optim.lr_scheduler.StepLR(other, 3))
    with pytest.raises(ValueError, match="seed or generator"):
        train_dkef(model, train, val, "ssm", steps=2, batch_size=10, progress=False, seed=1,
                   generator=torch.Generator())
    h = train_dkef(model, train, val, "exact", steps=2, batch_size=10, n_alpha=20, lambda_steps=0, seed=0,
                   progress=False)
    with pytest.raises(ValueError, match="resume.*objective"):
        train_dkef(model, train, val, "ssm", steps=2, batch_size=10, progress=False, resume=h.checkpoint)
    with pytest.raises(ValueError, match="resume.*seed"):
        train_dkef(model, train, val, "exact", steps=2, batch_size=10, progress=False, resume=h.checkpoint,
                   seed=1)
    with pytest.raises(ValueError, match="resume.*lr_schedule"):
        train_dkef(model, train, val, "exact", steps=2, batch_size=10, progress=False, resume=h.checkpoint,
                   lr_schedule=_schedule)
    with pytest.raises(ValueError, match="resume.*train"):
        train_dkef(model, train[:5], val, "exact", steps=2, batch_size=4, progress=False, resume=h.checkpoint)
    with pytest.raises(ValueError, match="model"):
        train_dkef(torch.nn.Linear(3, 1), train, val, "exact", steps=2, progress=False)
