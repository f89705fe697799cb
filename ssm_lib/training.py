r"""The training core, and :func:`fit`, its simplest use.

Every trainer of the library (:func:`fit`, :func:`ssm_lib.flow_training.train_with_validation`,
:func:`ssm_lib.dkef.train_dkef`, the proposal fit of the implicit-VAE experiment and
:meth:`ssm_lib.score_estimators.NetworkScoreEstimator.update`) is a thin use of
:func:`train_loop`: it supplies the loss of a step and, optionally, a validation value; the
loop owns the optimiser step, the divergence policy, validation with early stopping and
best-state restoring, and the progress bar.

**Divergence policy** (:class:`DivergenceMonitor`). With :math:`L_t` the loss and
:math:`G_t` the gradient norm (before clipping) at step :math:`t`, and :math:`t_0` the first
step the monitor sees, a run has diverged at step :math:`t` when :math:`L_t` or :math:`G_t`
is NaN or infinite, or, for a blow-up factor :math:`K`,

.. math::

    |L_t| > K \max(|L_{t_0}|, 1) \quad\text{or}\quad G_t > K \max(G_{t_0}, 1),

or when a validation value is NaN or infinite (validation data are checked to be finite
before training, so such a value means the model itself broke). The run then raises
:class:`TrainingDivergedError`, whose message names the step and the cause, or, with
``on_diverge="stop"``, stops and keeps the best state so far. Non-finite *data* are not
divergence: they are a ``ValueError`` naming the argument, raised before the first step.

**Progress** (one switch, ``progress=`` in every trainer): ``None`` (default) shows a bar only
when standard error is a terminal; ``True`` always (a widget in Jupyter, else text on standard
error, redrawn at most every 30 s when standard error is not a terminal); ``False`` never.
Nothing is printed to standard output.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from ._checks import (
    ScoreFn,
    check_batch,
    check_choice,
    check_count,
    check_finite,
    check_fits_in_memory,
    check_flag,
    check_generator,
    check_number,
    check_score_signature,
)
from .devices import check_seed, resolve_device
from .losses import OBJECTIVES, Objective, check_options, make_objective, objective_input

__all__ = [
    "DivergenceMonitor", "History", "LoopRecord", "TrainingDivergedError", "check_divergence_factor",
    "fit", "minibatch_sampler", "progress_bar", "run_generator", "train_loop",
]


class TrainingDivergedError(RuntimeError):
    """Raised when training diverges (a non-finite loss, gradient norm or validation value, or
    a blow-up of the loss or the gradient norm); the message names the step and the cause."""


# ---------------------------------------------------------------------------- helpers

def check_divergence_factor(factor: object) -> float | None:
    """The blow-up factor :math:`K > 1` of :class:`DivergenceMonitor`, or ``None`` (no blow-up test)."""
    if factor is None:
        return None
    factor = check_number(factor, "divergence_factor", positive=True)
    if factor <= 1:
        raise ValueError(f"divergence_factor must be > 1 (or None), got {factor!r}")
    return factor


class DivergenceMonitor:
    r"""The divergence policy (see the module docstring): ``check(loss, grad_norm)`` returns ``None`` for a
    healthy step, else the cause in words. The reference scale is taken at the first step
    checked: :math:`\max(|L_{t_0}|, 1)` and :math:`\max(G_{t_0}, 1)`; a step is a blow-up when
    its loss or gradient norm exceeds ``factor`` (:math:`K`, not :math:`K^2`) times it."""

    def __init__(self, factor: float | None = 1e8):
        self.factor = check_divergence_factor(factor)
        self.ref_loss: float | None = None
        self.ref_grad: float | None = None

    def check(self, loss: float, grad_norm: float) -> str | None:
        for what, value in (("loss", loss), ("gradient norm", grad_norm)):
            if not math.isfinite(value):
                return f"the {what} is {value}"
        if self.ref_loss is None or self.ref_grad is None:
            self.ref_loss, self.ref_grad = max(abs(loss), 1.0), max(grad_norm, 1.0)
            return None
        if self.factor is None:
            return None
        for what, value, ref in (("loss", abs(loss), self.ref_loss),
                                 ("gradient norm", grad_norm, self.ref_grad)):
            if value > self.factor * ref:
                return (f"the {what} is {value:.3g}, more than divergence_factor = {self.factor:.3g} times "
                        f"its first-step scale {ref:.3g}")
        return None


def minibatch_sampler(data: object, generator: torch.Generator | None, device: torch.device,
                      name: str = "data") -> Callable[[int, int], torch.Tensor]:
    """``draw(n, step)``: ``n`` rows drawn uniformly *with replacement* from a data tensor (every
    row has probability ``1/N`` at each draw, the last one included), or ``n`` samples from a
    sampler ``data(n, generator)``, on ``device``. A data tensor is checked to be finite
    here, before any step; a sampler's batches at each draw (naming the step)."""
    if isinstance(data, torch.Tensor):
        check_batch(data, name)
        check_finite(data, name)
        data_on_device = data.detach().to(device)

        def draw(n: int, step: int) -> torch.Tensor:
            idx = torch.randint(0, data_on_device.shape[0], (n,), generator=generator, device=device)
            return data_on_device[idx]
        return draw
    if callable(data):
        check_score_signature(data, 2, name, expected=f"{name}(n, generator)")

        def draw_from_sampler(n: int, step: int) -> torch.Tensor:
            x = data(n, generator)
            if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] != n:
                got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"{name}(n, generator) must return a tensor of shape (n, *event_shape) "
                                 f"with n = {n}, got {got}")
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name}(n, generator) returned non-finite values at step {step}")
            return x.to(device)
        return draw_from_sampler
    raise ValueError(f"{name} must be a tensor or a sampler callable, got {type(data).__name__}")


def _show_progress(progress: object) -> bool:
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    return check_flag(progress, "progress")


def progress_bar(total: int, progress: bool | None, desc: str = "training"):
    """A tqdm bar on standard error following the ``progress`` switch (see the module
    docstring); a disabled bar when off."""
    from tqdm.auto import tqdm  # imported here: ``import ssm_lib`` stays light

    show = _show_progress(progress)
    isatty = getattr(sys.stderr, "isatty", None)
    widget = any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)
    quiet = show and not widget and not (isatty and isatty())  # e.g. a log file: no frequent redraws
    return tqdm(total=total, disable=not show, desc=desc, leave=False, file=sys.stderr,
                mininterval=30.0 if quiet else 0.1)


@dataclass
class _ValidationRecord:
    """The fields that :class:`LoopRecord` and :class:`History` share (one definition): the
    loss of every step, the validation steps and values, the best step and value, and whether
    ``patience`` ran out."""

    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_values: list[float] = field(default_factory=list)
    best_step: int | None = None
    best_value: float = math.inf
    stopped_early: bool = False


@dataclass
class LoopRecord(_ValidationRecord):
    """What :func:`train_loop` did. Steps are numbered from ``first_step`` (default 1).

    ``losses``: the loss of every completed step; ``val_steps`` / ``val_values``: the steps
    at which validation ran and its values; ``best_step`` / ``best_value``: the kept state
    (``best_step`` ``None``: no validation value yet, the state is the initial one, or step
    ``first_step - 1`` for a validation at the start); ``stopped_early``: ``patience`` ran out;
    ``diverged_at`` / ``divergence``: the step and cause of a divergence that stopped the run
    (``on_diverge="stop"``)."""

    diverged_at: int | None = None
    divergence: str | None = None


def _grad_norm(params: Sequence[torch.Tensor], clip: float | None, like: torch.Tensor) -> torch.Tensor:
    if clip is not None:
        return nn.utils.clip_grad_norm_(params, clip)
    # the norm of the per-tensor norms: no copy of all gradients into one vector (which cost
    # ~35x more on a 12M-parameter NICE on a CPU) and a more accurate float32 sum
    norms = [torch.linalg.vector_norm(p.grad.detach()) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else like.new_zeros(())


def train_loop(
    loss_at: Callable[[int], torch.Tensor],
    params: Sequence[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    n_steps: int,
    *,
    clip: float | None = None,
    divergence_factor: float | None = 1e8,
    monitor: DivergenceMonitor | None = None,
    on_diverge: str = "raise",
    validate: Callable[[int], float] | None = None,
    validate_every: int | None = None,
    validate_at_start: bool = False,
    patience: int | None = None,
    restore: nn.Module | None = None,
    progress: bool | None = None,
    desc: str = "training",
    first_step: int = 1,
    what: str = "training",
    after_step: Callable[[int], None] | None = None,
    best_so_far: tuple[int | None, float, dict[str, torch.Tensor] | None] | None = None,
) -> LoopRecord:
    r"""The one training loop.

    At each step :math:`t` = ``first_step``, ..., ``first_step + n_steps - 1``:
    ``loss = loss_at(t)`` (a scalar with its graph), gradients zeroed, ``loss.backward()``,
    gradient norm clipped at ``clip`` (``None``: not clipped), the divergence check (see the
    module docstring; ``monitor`` carries the reference scale across calls, else a new
    :class:`DivergenceMonitor` with ``divergence_factor``), then ``optimizer.step()``, then
    ``after_step(t)`` when given (e.g. a learning-rate scheduler's ``step``). At the first
    step, a loss from which no parameter in ``params`` received a gradient is a ``ValueError``
    raised before the optimiser steps.

    Validation (optional): ``validate(t) -> float`` (lower is better) runs at the start when
    ``validate_at_start`` (as step ``first_step - 1``), after every ``validate_every``-th step
    and after the last step. A value strictly below the best so far becomes the best; with
    ``restore`` given, that module's state is saved then and loaded back when the loop ends
    (also when it raises). ``patience``: stop when more than ``patience`` steps have passed
    since the best validation step. A NaN or infinite validation value is a divergence,
    never a best.

    ``best_so_far``: ``(best_step, best_value, best_state)`` of an earlier part of the same
    run, for a loop that continues it (``first_step`` after that part's last step): the best
    starts there instead of at ``(None, inf)`` and the initial state, so that validation,
    ``patience`` and ``restore`` behave as in one uninterrupted loop (a ``best_state`` of ``None``:
    the module's state now).

    Raises:
        TrainingDivergedError: (``on_diverge="raise"``) naming the step and the cause.
        ValueError: ``loss_at`` returned something other than a scalar tensor.
    """
    if not callable(loss_at):
        raise ValueError(f"loss_at must be a function of the step, loss_at(t) -> scalar tensor, got "
                         f"{type(loss_at).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    for name, fn in (("validate", validate), ("after_step", after_step)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be a function of the step or None, got {type(fn).__name__}")
    first_step = check_count(first_step, "first_step", 0)
    n_steps = check_count(n_steps, "n_steps")
    check_choice(on_diverge, ("raise", "stop"), "on_diverge")
    if clip is not None:
        clip = check_number(clip, "clip", positive=True)
    if validate_every is not None:
        validate_every = check_count(validate_every, "validate_every")
    if patience is not None:
        patience = check_count(patience, "patience", 0)
    if (restore is not None or patience is not None or validate_at_start) and validate is None:
        raise ValueError("restore, patience and validate_at_start need validate (a validation function)")
    if monitor is None:
        monitor = DivergenceMonitor(divergence_factor)
    record = LoopRecord()
    best_state = copy.deepcopy(restore.state_dict()) if restore is not None else None
    if best_so_far is not None:
        record.best_step, record.best_value, state = best_so_far
        if restore is not None and state is not None:
            best_state = copy.deepcopy(state)
    last = first_step + n_steps - 1

    class _Stop(Exception):
        pass

    def diverged(step: int, cause: str) -> None:
        message = f"{what} diverged at step {step}: {cause}; lower lr or check the objective's settings"
        if on_diverge == "raise":
            raise TrainingDivergedError(message)
        record.diverged_at, record.divergence = step, message
        raise _Stop

    def run_validation(step: int) -> None:
        value = float(validate(step))
        record.val_steps.append(step)
        record.val_values.append(value)
        if not math.isfinite(value):
            diverged(step, f"the validation value is {value}")
        if value < record.best_value:
            record.best_value, record.best_step = value, step
            if restore is not None:
                best_state.update(copy.deepcopy(restore.state_dict()))
        elif patience is not None and step - (record.best_step or 0) > patience:
            record.stopped_early = True
            raise _Stop

    bar = progress_bar(n_steps, progress, desc)
    try:
        if validate is not None and validate_at_start:
            run_validation(first_step - 1)
        for step in range(first_step, last + 1):
            loss = loss_at(step)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(f"the objective must return a scalar tensor, got {loss!r}")
            optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:
                loss.backward()
            if step == first_step and all(p.grad is None for p in params):
                # checked once: a loss that cannot reach the parameters trains nothing
                raise ValueError(
                    f"no parameter being trained received a gradient at step {step}: the loss does "
                    "not depend on them (a score_fn that does not use the model, or an output "
                    "detached from it?); nothing was changed")
            grad_norm = _grad_norm(params, clip, loss)
            value, gnorm = torch.stack([loss.detach().reshape(()), grad_norm.to(loss.dtype)]).tolist()
            cause = monitor.check(value, gnorm)
            if cause is not None:
                diverged(step, cause)
            optimizer.step()
            if after_step is not None:
                after_step(step)
            record.losses.append(value)
            bar.update(1)
            if bar.n % max(1, n_steps // 50) == 0:
                bar.set_postfix(loss=f"{value:.4g}", refresh=False)
            if validate is not None and ((validate_every is not None and step % validate_every == 0)
                                         or step == last):
                run_validation(step)
    except _Stop:
        pass
    finally:
        bar.close()
        if restore is not None:
            restore.load_state_dict(best_state)
    return record


# ---------------------------------------------------------------------------- fit

@dataclass
class History(_ValidationRecord):
    """Training record of :func:`fit`.

    ``losses``: the loss of every step of this call; ``val_steps`` / ``val_values``: the steps
    at which the validation loss was computed and its values; ``best_step`` / ``best_value``:
    the best validation step (the state kept when ``restore_best``) and its value;
    ``stopped_early``: ``patience`` ran out. ``optimizer``, ``scheduler`` (``None`` without
    ``lr_schedule``) and ``generator`` are the objects the run used, in their state after the
    last step: pass them to the next call (``optimizer=``, ``lr_schedule=``, ``generator=``) to
    continue the run instead of starting over. ``seed``: the seed of the run's generator
    (``None`` when a generator was given)."""

    optimizer: torch.optim.Optimizer | None = None
    scheduler: object | None = None
    generator: torch.Generator | None = None
    seed: int | None = None


def _score_of(model: nn.Module) -> ScoreFn:
    return model.score if hasattr(model, "score") else model  # type: ignore[return-value]


def _check_device(device: object) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine (see
    :func:`ssm_lib.devices.resolve_device`), checked before anything is moved to it."""
    return resolve_device(device)  # type: ignore[arg-type]


def _scheduler_class() -> type:
    lr = torch.optim.lr_scheduler
    return getattr(lr, "LRScheduler", None) or lr._LRScheduler  # type: ignore[attr-defined]


def _make_scheduler(lr_schedule: object, optimizer: torch.optim.Optimizer) -> object | None:
    """The scheduler of ``fit``: ``None``; an ``LRScheduler`` of ``optimizer`` (a run being
    continued); or the result of the factory ``lr_schedule(optimizer)``."""
    base = _scheduler_class()
    if lr_schedule is None:
        return None
    if isinstance(lr_schedule, base):
        if lr_schedule.optimizer is not optimizer:
            raise ValueError("lr_schedule is a scheduler of another optimizer: pass the optimizer it "
                             "schedules as optimizer= (e.g. history.optimizer with history.scheduler)")
        return lr_schedule
    if not callable(lr_schedule):
        raise ValueError(f"lr_schedule must be a factory optimizer -> torch.optim.lr_scheduler.LRScheduler "
                         f"or such a scheduler, got {type(lr_schedule).__name__}")
    scheduler = lr_schedule(optimizer)
    if not isinstance(scheduler, base):
        raise ValueError(f"lr_schedule(optimizer) must return a torch.optim.lr_scheduler.LRScheduler, got "
                         f"{type(scheduler).__name__}; for a multiplier f(step) of lr pass "
                         "lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, f)")
    return scheduler


def run_generator(seed: int | None, generator: torch.Generator | None,
                  device: torch.device) -> tuple[torch.Generator, int | None]:
    """The random stream of a training run and the seed to record: ``generator`` itself (seed
    ``None``), or a fresh generator on ``device`` seeded with ``seed``, or, when both are
    ``None``, with a seed drawn from torch's global generator (so that repeated calls do not
    replay the same minibatches). Giving both is an error."""
    if generator is not None and seed is not None:
        raise ValueError("give seed or generator, not both")
    if generator is not None:
        return check_generator(generator, device, what="the model"), None
    run_seed = (int(torch.randint(0, 2**62, (), generator=None)) if seed is None
                else check_seed(seed))
    gen = torch.Generator(device=device)
    gen.manual_seed(run_seed)
    return gen, run_seed


def fit(
    model: nn.Module,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    objective: str | Objective,
    *,
    n_steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    score_fn: ScoreFn | None = None,
    progress: bool | None = None,
    divergence_factor: float | None = 1e8,
    optimizer: torch.optim.Optimizer | None = None,
    lr_schedule: object | None = None,
    val_data: torch.Tensor | None = None,
    validate_every: int | None = None,
    patience: int | None = None,
    restore_best: bool = True,
    device: str | torch.device | None = None,
    **objective_options,
) -> History:
    r"""Train ``model`` with Adam on ``objective`` (a use of :func:`train_loop`).

    Args:
        model: the module whose parameters are trained.
        data: a finite tensor ``(N, *event_shape)`` to draw minibatches from (uniformly, with
            replacement), or a sampler ``data(n, generator) -> (n, *event_shape)`` such as
            ``density.sample``.
        objective: a name from :data:`ssm_lib.losses.OBJECTIVES` (``objective_options`` are
            passed to :func:`ssm_lib.losses.make_objective`, which rejects unknown ones) or a
            callable ``f(score_fn, x, generator=...)`` (its signature is checked before the
            first step).
        n_steps: the number of optimisation steps.
        batch_size: the number of points in each minibatch.
        lr: Adam's learning rate (ignored when ``optimizer`` is given: the optimiser keeps
            its own).
        seed: seeds a new generator (on the model's device) for minibatches, projections and
            noise. Default ``None``: a fresh seed drawn from torch's global generator, so that
            two calls do not replay the same minibatches and ``torch.manual_seed(s)`` before
            the call still reproduces it (the seed used is ``History.seed``). Pass a seed for a
            run that does not depend on the global generator.
        generator: use this ``torch.Generator`` (on the model's device) instead of a seed; its
            state advances, so passing ``history.generator`` continues a run's random stream.
        score_fn: the score to train (default: ``model.score`` if it exists, else ``model``);
            objectives that take the model itself (MLE, CP, Approx BP) get ``model``.
        progress: the progress switch (see :mod:`ssm_lib.training`; default: a bar only on a
            terminal).
        divergence_factor: the blow-up factor :math:`K` of :class:`DivergenceMonitor`
            (``None``: no blow-up test): training stops at step :math:`t` when
            :math:`|L_t| > K \max(|L_1|, 1)` or :math:`G_t > K \max(G_1, 1)`, with
            :math:`L, G` the loss and the gradient norm. The default, :math:`10^8`, flags a
            run whose loss or gradient grew by eight orders of magnitude.
        optimizer: a ``torch.optim.Optimizer`` over the model's parameters to use (and
            continue) instead of a new ``Adam(lr=lr)``; ``history.optimizer`` of an earlier
            call continues that run with its moment estimates.
        lr_schedule: ``None`` (constant ``lr``); a factory ``lr_schedule(optimizer)``
            returning a ``torch.optim.lr_scheduler.LRScheduler`` (e.g.
            ``functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=n_steps)``, or
            ``lambda opt: LambdaLR(opt, f)`` for :math:`\mathrm{lr}_t = \mathrm{lr}\,f(t)`); or
            a scheduler of ``optimizer`` (``history.scheduler``, to continue). The scheduler
            steps after every optimiser step.
        val_data: a finite validation tensor. The validation value is the objective on all
            of it (in chunks of ``batch_size`` rows, weighted by their sizes), with the same
            random projections or noise at every evaluation (a generator reseeded from the
            run's seed), computed every ``validate_every`` steps (default
            ``max(1, n_steps // 20)``) and after the last step.
        patience: stop when more than ``patience`` steps have passed since the best
            validation value (early stopping; needs ``val_data``).
        restore_best: with ``val_data``, load the state of the best validation step back
            into ``model`` at the end (default ``True``).
        device: move ``model`` (in place) to this device and train there; batches from
            ``data`` and ``val_data`` are moved to it. Default: the model's device. Resolved by
            :func:`ssm_lib.devices.resolve_device` (``"auto"`` accepted) before anything moves;
            a device this machine lacks is a ``ValueError``.

    Returns:
        :class:`History`. A run split into calls that pass on ``optimizer=history.optimizer``,
        ``generator=history.generator`` and ``lr_schedule=history.scheduler`` equals, bit for
        bit, one run with the total number of steps, when the calls have no ``val_data`` or
        ``restore_best=False``. With validation each call is a run of its own: it restores
        the best state of its own steps, numbers them from 1, and, given a generator but no
        ``seed``, draws its validation noise from seed 0 rather than the run's.

    Raises:
        ValueError: bad arguments, including an unknown keyword (naming it) and non-finite
            values in ``data`` or ``val_data`` (found before any step) or in a batch drawn
            from a sampler (naming the step).
        TrainingDivergedError: the loss or the gradient norm became NaN or infinite, or blew
            up (see ``divergence_factor``), or the validation value became non-finite; the
            message gives the step.
    """
    n_steps = check_count(n_steps, "n_steps")
    batch_size = check_count(batch_size, "batch_size")
    lr = check_number(lr, "lr", positive=True)
    _show_progress(progress)
    divergence_factor = check_divergence_factor(divergence_factor)
    restore_best = check_flag(restore_best, "restore_best")
    if val_data is None and (validate_every is not None or patience is not None):
        raise ValueError("validate_every and patience need val_data (a validation tensor)")
    if validate_every is not None:
        validate_every = check_count(validate_every, "validate_every")
    if patience is not None:
        patience = check_count(patience, "patience", 0)
    if isinstance(objective, str):
        if objective in OBJECTIVES:
            check_options(objective, objective_options, "fit", others=_FIT_KEYWORDS)
        loss_fn = make_objective(objective, **objective_options)
    elif callable(objective):
        if objective_options:
            key = next(iter(objective_options))
            close = difflib.get_close_matches(key, _FIT_KEYWORDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"fit got an unknown keyword argument {key!r}: {hint}objective options are "
                             "only for a named objective (bind them in the callable instead)")
        check_score_signature(objective, 2, "objective", expected="objective(score_fn, x, generator=...)",
                              keywords=("generator",))
        loss_fn = objective
    else:
        raise ValueError(f"objective must be a name in {tuple(OBJECTIVES)} or a callable, got {objective!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if device is not None:
        model.to(_check_device(device))
    if isinstance(objective, str):
        score = objective_input(objective, model, score_fn)
    else:
        score = score_fn if score_fn is not None else _score_of(model)
    if not callable(score):
        raise ValueError(f"score_fn must be callable, got {type(score).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    device = params[0].device
    gen, run_seed = run_generator(seed, generator, device)
    draw = minibatch_sampler(data, gen, device)
    if isinstance(data, torch.Tensor):  # a minibatch is batch_size rows of data
        check_fits_in_memory(batch_size * data[0].numel(), data.dtype, device, "batch_size")
    if optimizer is None:
        optimizer = torch.optim.Adam(params, lr=lr)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    else:
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not any(id(p) in owned for p in params):
            raise ValueError("optimizer does not optimise any parameter of model (build it on "
                             "model.parameters(), or pass history.optimizer of the same model)")
    scheduler = _make_scheduler(lr_schedule, optimizer)

    validate = None
    if val_data is not None:
        val = check_finite(check_batch(val_data, "val_data"), "val_data").detach().to(device)
        val_gen = torch.Generator(device=device)
        val_seed = 0 if run_seed is None else run_seed + 1

        def validate(step: int) -> float:
            val_gen.manual_seed(val_seed)
            total = 0.0
            with torch.enable_grad():
                for start in range(0, val.shape[0], batch_size):
                    rows = val[start:start + batch_size]
                    total += float(loss_fn(score, rows, generator=val_gen).detach()) * rows.shape[0]
            return total / val.shape[0]

    def loss_at(step: int) -> torch.Tensor:
        return loss_fn(score, draw(batch_size, step), generator=gen)

    model.train()
    try:
        record = train_loop(
            loss_at, params, optimizer, n_steps, divergence_factor=divergence_factor, progress=progress,
            validate=validate,
            validate_every=(max(1, n_steps // 20) if validate_every is None else validate_every)
            if validate is not None else None,
            patience=patience, restore=model if (validate is not None and restore_best) else None,
            after_step=(lambda step: scheduler.step()) if scheduler is not None else None)
    finally:
        model.eval()
    shared = {f.name: getattr(record, f.name) for f in fields(_ValidationRecord)}
    return History(**shared, optimizer=optimizer, scheduler=scheduler, generator=gen, seed=run_seed)


_FIT_KEYWORDS = tuple(inspect.signature(fit).parameters)[3:-1]
