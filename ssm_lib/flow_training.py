r"""Training and evaluating a flow (e.g. :class:`~ssm_lib.flows.NICE`) on a fixed data set with
any objective, selecting the checkpoint on validation data (as in Song et al. 2019, Sec. 5.2).

An *objective* here is ``f(model, x, generator) -> scalar`` and takes the model (maximum
likelihood needs ``model.log_prob``; the score-matching losses use ``model.score``).
:func:`flow_objective` builds one by name.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ._checks import (
    check_choice,
    check_count,
    check_finite,
    check_flag,
    check_generator,
    check_number,
    check_score_signature,
)
from .losses import EXACT_METHODS, exact_score_matching, make_objective, objective_input
from .training import train_loop

__all__ = ["FlowObjective", "FlowRun", "evaluate_flow", "flow_objective", "train_with_validation"]

FlowObjective = Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]


def flow_objective(name: str, **options) -> FlowObjective:
    r"""The objective ``name`` of :data:`ssm_lib.losses.OBJECTIVES` as ``f(model, x, generator)``
    for a flow: MLE (``"mle"``) takes the model, the score-matching objectives its
    ``model.score`` (see :func:`~ssm_lib.losses.objective_input`). ``options`` go to
    :func:`~ssm_lib.losses.make_objective` (e.g. ``sigma`` for ``"dsm"``)."""
    loss = make_objective(name, **options)
    return lambda model, x, generator: loss(objective_input(name, model), x, generator=generator)


@dataclass
class FlowRun:
    """What :func:`train_with_validation` did.

    ``train_losses`` has one value per step; ``eval_steps`` the steps at which the validation
    metrics were taken (``selection`` is the one that picks the checkpoint, ``tracked`` any
    others); ``best_step`` the step of the kept checkpoint (0: the initial model);
    ``diverged_at`` and ``divergence`` the step and the cause of a divergence that stopped
    training with ``on_diverge="stop"`` (``None``: it did not diverge)."""

    train_losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    selection: list[float] = field(default_factory=list)
    tracked: dict[str, list[float]] = field(default_factory=dict)
    best_step: int = 0
    best_value: float = math.inf
    diverged_at: int | None = None
    divergence: str | None = None
    seconds: float = 0.0


def train_with_validation(
    model: nn.Module,
    objective: FlowObjective,
    train_x: torch.Tensor,
    val_x: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    generator: torch.Generator,
    eval_every: int | None = None,
    select: Callable[[nn.Module], float] | None = None,
    track: dict[str, Callable[[nn.Module], float]] | None = None,
    track_every: int | dict[str, int] = 1,
    on_diverge: str = "raise",
    progress: bool | None = None,
    divergence_factor: float | None = 1e8,
) -> FlowRun:
    r"""Adam on ``objective`` over shuffled epochs of ``train_x``; every ``eval_every`` steps
    (default: once per epoch) the model is scored on validation data and the best state so far
    is kept; at the end the model holds the best state. A use of
    :func:`ssm_lib.training.train_loop` (its divergence policy and progress switch).

    Args:
        model: the flow; its parameters are trained.
        objective: ``f(model, x, generator) -> scalar``, e.g. from :func:`flow_objective`.
        train_x: the finite ``(N, d)`` training points, shuffled into minibatches each epoch
            (already on the model's device, or moved there).
        val_x: the finite ``(M, d)`` validation points that ``select`` scores by default
            (moved to the model's device like ``train_x``).
        epochs: the number of passes over ``train_x``.
        batch_size: the number of points in each minibatch (the last one of an epoch may be
            smaller).
        lr: Adam's learning rate.
        generator: drives the shuffles and the objective's randomness (on the model's device).
        select: ``select(model) -> float``, lower is better (default: ``objective`` on
            ``val_x`` with a generator re-seeded identically at every evaluation, so that
            stochastic objectives are compared on the same projections or noise). A NaN or
            infinite value is a divergence, never a best.
        track: further validation metrics ``name -> f(model) -> float`` for training curves,
            taken at every ``track_every``-th evaluation (and the last one), ``nan`` elsewhere;
            ``track_every`` may be a dict giving the period of each metric (default 1).
        on_diverge: ``"raise"`` (:class:`~ssm_lib.training.TrainingDivergedError` naming the
            step and the cause) or ``"stop"`` (end training, keep the best state, set
            ``diverged_at`` and ``divergence``).
        progress: the progress switch of :mod:`ssm_lib.training`.
        divergence_factor: the blow-up factor of :class:`~ssm_lib.training.DivergenceMonitor`.

    Raises:
        ValueError: bad arguments, including non-finite values in ``train_x`` or ``val_x``.
    """
    check_count(epochs, "epochs")
    check_count(batch_size, "batch_size")
    check_number(lr, "lr", positive=True)
    check_choice(on_diverge, ("raise", "stop"), "on_diverge")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(objective):
        raise ValueError(f"objective must be a callable f(model, x, generator) -> scalar (e.g. from "
                         f"flow_objective), got {type(objective).__name__}")
    check_score_signature(objective, 3, "objective", expected="objective(model, x, generator) -> scalar",
                          hint="e.g. from flow_objective")
    if select is not None and not callable(select):
        raise ValueError(f"select must be a callable select(model) -> float or None, "
                         f"got {type(select).__name__}")
    if track is not None:
        if not isinstance(track, Mapping):
            raise ValueError(f"track must be a dict name -> f(model) -> float or None, "
                             f"got {type(track).__name__}")
        for key, fn in track.items():
            if not callable(fn):
                raise ValueError(f"track[{key!r}] must be a callable f(model) -> float, "
                                 f"got {type(fn).__name__}")
    for name, t in (("train_x", train_x), ("val_x", val_x)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] < 1:
            raise ValueError(f"{name} must be a tensor of shape (N, d), got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype, got {t.dtype}")
        check_finite(t, name)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    device = params[0].device
    check_generator(generator, device, what="the model")
    for name, t in (("train_x", train_x), ("val_x", val_x)):
        if t.is_floating_point() and t.dtype != params[0].dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but the model's parameters are {params[0].dtype}; "
                             f"convert one of them (e.g. {name}.to({params[0].dtype}))")
    train_x, val_x = train_x.to(device), val_x.to(device)
    n = train_x.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    if eval_every is None:
        eval_every = steps_per_epoch
    check_count(eval_every, "eval_every")
    every = dict(track_every) if isinstance(track_every, dict) else {k: track_every for k in (track or {})}
    for key in track or {}:
        check_count(every.setdefault(key, 1), "track_every")
    if select is None:
        val_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device))

        def select(m: nn.Module) -> float:
            g = torch.Generator(device=device).manual_seed(val_seed)
            return float(objective(m, val_x, g).detach())

    run = FlowRun(tracked={k: [] for k in (track or {})})

    def validate(step: int) -> float:
        model.eval()
        value = select(model)
        index = len(run.eval_steps)
        run.eval_steps.append(step)
        for key, fn in (track or {}).items():
            now = step == total or index % every[key] == 0
            run.tracked[key].append(float(fn(model)) if now else math.nan)
        model.train()
        return value

    order = torch.empty(0)

    def loss_at(step: int) -> torch.Tensor:
        nonlocal order
        i = (step - 1) % steps_per_epoch
        if i == 0:
            order = torch.randperm(n, generator=generator, device=device)
        return objective(model, train_x[order[i * batch_size:(i + 1) * batch_size]], generator)

    start = time.perf_counter()
    model.train()
    try:
        record = train_loop(loss_at, params, torch.optim.Adam(params, lr=lr), total,
                            divergence_factor=divergence_factor, on_diverge=on_diverge,
                            validate=validate, validate_every=eval_every, validate_at_start=True,
                            restore=model, progress=progress)
    finally:
        model.eval()
        run.seconds = time.perf_counter() - start
    run.train_losses, run.selection = record.losses, record.val_values
    run.best_step, run.best_value = record.best_step or 0, record.best_value
    run.diverged_at, run.divergence = record.diverged_at, record.divergence
    return run


def evaluate_flow(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256, exact_method: str = "vmap",
                  chunk_size: int | None = None, sm_loss: bool = True) -> dict[str, torch.Tensor]:
    r"""Per-sample test metrics of a flow: ``log_prob`` (exact) and, when ``sm_loss``, the exact
    score-matching loss :math:`\tfrac12\|s_\theta(x)\|^2 + \operatorname{tr}\nabla_x s_\theta(x)`
    (Song et al. 2019, Eq. 2; :math:`d` backward passes per point), in batches. Both are
    ``(N,)`` tensors on the CPU."""
    check_count(batch_size, "batch_size")
    check_choice(exact_method, EXACT_METHODS, "exact_method")
    sm_loss = check_flag(sm_loss, "sm_loss")
    for method in ("log_prob",) + (("score",) if sm_loss else ()):
        if not callable(getattr(model, method, None)):
            raise ValueError(f"model must be a flow with a {method}() method (e.g. ssm_lib.flows.NICE), "
                             f"got {type(model).__name__}")
    if chunk_size is not None:
        check_count(chunk_size, "chunk_size")
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"x must be a tensor of shape (N, d) with N >= 1, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    logs, sms = [], []
    model.eval()
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        with torch.no_grad():
            logs.append(model.log_prob(xb).cpu())
        if sm_loss:
            value = exact_score_matching(model.score, xb, method=exact_method, chunk_size=chunk_size,
                                         reduction="none")
            sms.append(value.detach().cpu())
    out = {"log_prob": torch.cat(logs)}
    if sm_loss:
        out["sm_loss"] = torch.cat(sms)
    return out
