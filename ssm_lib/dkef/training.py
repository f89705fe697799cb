r"""DKEF's loss under any objective with a closed-form alpha, and the paper's two-stage
training (a use of :func:`ssm_lib.training.train_loop`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._checks import check_count, check_finite, check_flag, check_number
from ..devices import resolve_device
from ..losses import OBJECTIVES, make_objective, objective_input
from ..training import (
    DivergenceMonitor,
    _make_scheduler,
    _show_progress,
    check_divergence_factor,
    run_generator,
    train_loop,
)
from .alpha import check_objective
from .model import DKEF

__all__ = ["DKEFHistory", "dkef_loss", "train_dkef", "training_step"]


def _check_sigma(objective: str, sigma: object) -> None:
    """``sigma`` is given exactly when ``objective`` uses a noise level (DSM): required there,
    ``None`` elsewhere (a value would be silently ignored)."""
    if "sigma" in OBJECTIVES[objective].required:
        if sigma is None:
            raise ValueError(f"sigma: objective {objective!r} needs a noise level sigma")
    elif sigma is not None:
        raise ValueError(f"sigma is DSM's noise level, which objective {objective!r} does not use; "
                         f"pass sigma=None (got sigma={sigma!r})")


def dkef_loss(model: DKEF, x: torch.Tensor, objective: str, alpha: torch.Tensor | None = None, *,
              generator: torch.Generator | None = None, sigma: float | None = None,
              reduction: str = "mean", exact_method: str = "vmap") -> torch.Tensor:
    """The objective's loss of the model (coefficients ``alpha``, default the stored ones) on
    ``x``, computed by the library's generic losses of :data:`ssm_lib.losses.OBJECTIVES` (not by
    the quadratic form). ``sigma``: DSM's noise level (``None`` for the other objectives);
    ``exact_method``: the ``method`` of exact SM (left at its default for the others). A value
    the objective would ignore is a ``ValueError``."""
    spec = OBJECTIVES[check_objective(objective)]
    _check_sigma(objective, sigma)
    if objective != "exact" and not (isinstance(exact_method, str) and exact_method == "vmap"):
        raise ValueError(f"exact_method is the method of exact SM, which objective {objective!r} does not "
                         f"use; leave it at its default (got exact_method={exact_method!r})")
    options = {}
    if "sigma" in spec.required:
        options["sigma"] = sigma
    if objective == "exact":
        options["method"] = exact_method
    view = model.with_alpha(model.alpha if alpha is None else alpha)
    loss = make_objective(objective, **options)
    return loss(objective_input(objective, view), x, generator=generator, reduction=reduction)


def _split_loss(model: DKEF, batch: torch.Tensor, objective: str, generator: torch.Generator | None,
                sigma: float | None) -> torch.Tensor:
    """Alpha from the first half's quadratic; the loss on the (disjoint) second half."""
    half = batch.shape[0] // 2
    G, b, _ = model.alpha_system(batch[:half], objective, generator=generator, sigma=sigma)
    alpha = model.solve_alpha(G, b)
    return dkef_loss(model, batch[half:2 * half], objective, alpha, generator=generator, sigma=sigma)


def training_step(model: DKEF, batch: torch.Tensor, objective: str, optimizer: torch.optim.Optimizer, *,
                  clip: float = 100.0, generator: torch.Generator | None = None,
                  sigma: float | None = None) -> float:
    """One step of stage 1 on ``batch``: alpha from the first half's quadratic, the objective's
    loss on the second half, backward through the solve, gradient norm clipped at ``clip``, an
    optimiser step (skipped when the loss is not finite). Returns the loss.

    ``batch``: ``(n, d)`` with ``n >= 2`` (it is split in two halves); ``clip``: a positive
    finite number; ``optimizer``: a ``torch.optim.Optimizer``; ``sigma``: DSM's noise level,
    ``None`` for the other objectives."""
    if not isinstance(model, DKEF):
        raise ValueError(f"model must be a DKEF, got {type(model).__name__}")
    model._check_x(batch, "batch")
    if batch.shape[0] < 2:
        raise ValueError(f"batch must hold at least 2 rows (one half for alpha, one for the loss), "
                         f"got shape {tuple(batch.shape)}")
    check_objective(objective)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    check_number(clip, "clip", positive=True)
    _check_sigma(objective, sigma)
    loss = _split_loss(model, batch, objective, generator, sigma)
    if not torch.isfinite(loss):
        return loss.item()
    optimizer.zero_grad()
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    return loss.item()


@dataclass
class DKEFHistory:
    """Training record of :func:`train_dkef`: training loss per step of this call, validation
    loss per check ``(step, value)``, and the best step, with steps counted from 0 over the
    whole run (indices into ``train``, or into the concatenated ``train`` of a run continued
    with ``resume=``); ``stopped_early``: the patience ran out; ``lambda_divergence``: why the
    :math:`\\lambda` stage stopped before ``lambda_steps`` (``None``: it did not).

    As :class:`ssm_lib.training.History`: ``optimizer``, ``scheduler`` (``None`` without
    ``lr_schedule``) and ``generator`` are the objects of stage 1, in their state after the
    call; ``seed``: the seed of the run's generator (``None`` when a generator was given).
    ``checkpoint``: the state of the run after the last step of stage 1 (the model's last
    parameters, not the restored best ones; the optimiser, scheduler and generator states; the
    step; the best so far), a dict of tensors and numbers that ``torch.save`` writes and that
    ``train_dkef(..., resume=checkpoint)`` continues (``None`` when the patience ran out)."""

    train: list[float] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    best_step: int = 0
    stopped_early: bool = False
    lambda_divergence: str | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: object | None = None
    generator: torch.Generator | None = None
    seed: int | None = None
    checkpoint: dict[str, Any] | None = None


_CHECKPOINT_KEYS = frozenset({"objective", "step", "model", "optimizer", "scheduler", "generator", "seed",
                              "idx_alpha", "best_step", "best_value", "best_state", "monitor"})


def _check_resume(resume: object, objective: str, n_train: int) -> dict[str, Any] | None:
    if resume is None:
        return None
    if not isinstance(resume, dict) or not _CHECKPOINT_KEYS <= set(resume):
        raise ValueError("resume must be the checkpoint of an earlier call (DKEFHistory.checkpoint), got "
                         f"{type(resume).__name__}" + (f" without {sorted(_CHECKPOINT_KEYS - set(resume))}"
                                                       if isinstance(resume, dict) else ""))
    if resume["objective"] != objective:
        raise ValueError(f"resume is a checkpoint of a run with objective {resume['objective']!r}, "
                         f"not {objective!r}")
    idx = resume["idx_alpha"]
    if not isinstance(idx, torch.Tensor) or (idx.numel() and int(idx.max()) >= n_train):
        raise ValueError("resume: the checkpoint's alpha rows do not index train (continue a run on the "
                         "same training data)")
    return resume


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_dkef(model: DKEF, train: torch.Tensor, val: torch.Tensor, objective: str, *, steps: int,
               batch_size: int = 200, lr: float = 1e-2, clip: float = 100.0, sigma: float | None = None,
               val_every: int = 10, patience: int = 200, n_alpha: int = 1000, lambda_steps: int = 1000,
               lambda_lr: float = 1e-3, seed: int | None = None, generator: torch.Generator | None = None,
               progress: bool | None = None, divergence_factor: float | None = 1e8,
               optimizer: torch.optim.Optimizer | None = None, lr_schedule: object | None = None,
               device: str | torch.device | None = None,
               resume: dict[str, Any] | None = None,
               resample_alpha_rows: bool = False, final_n_alpha: int | None = None) -> DKEFHistory:
    r"""The paper's two-stage training, in place.

    Stage 1 (``steps`` Adam steps, learning rate ``lr``, gradient norm clipped at ``clip``):
    each step draws ``batch_size`` training points, solves alpha from the first half's
    quadratic and takes the objective's loss (:func:`dkef_loss`) on the second half; the
    gradient flows through the solve. Every ``val_every`` steps (and after the last) alpha is
    refit on ``n_alpha`` training points (the same random rows throughout, or fresh random
    rows at every validation with ``resample_alpha_rows=True``, as the paper's code does) and
    the objective is evaluated on ``val``; the best state is kept and training stops after
    ``patience`` steps without improvement. Stage 2: alpha's quadratic from ``final_n_alpha``
    random training rows (``None``: the ``n_alpha`` rows of validation; a number at least the
    number of training rows: all of them, as the paper's code), then
    :math:`\log_{10}\lambda` alone tuned by Adam (``lambda_lr``, ``lambda_steps``) on the
    validation objective (100 random validation rows a step), alpha refit.

    Stage 1 follows the divergence policy of :mod:`ssm_lib.training` (``divergence_factor``;
    the gradient norm is the one before clipping); stage 2 stops early, keeping the
    :math:`\lambda` it reached, on a divergence (recorded in ``lambda_divergence``).

    The options shared with :func:`ssm_lib.training.fit` follow its conventions:

    Args:
        seed: seeds a new generator (on the model's device) for the random stream of
            minibatches, alpha rows, projections and noise; default: a fresh seed drawn from
            torch's global generator (recorded in ``DKEFHistory.seed``).
        generator: use this ``torch.Generator`` (on the model's device) for that stream
            instead of a seed; its state advances.
        optimizer: a ``torch.optim.Optimizer`` over the model's parameters for stage 1
            instead of a new ``Adam(lr=lr)`` (``lr`` is then ignored).
        lr_schedule: ``None`` (constant), a factory ``lr_schedule(optimizer)`` returning a
            ``torch.optim.lr_scheduler.LRScheduler``, or a scheduler of ``optimizer``; it
            steps after every stage-1 step (stage 2 keeps ``lambda_lr``).
        device: move ``model`` (in place) to this device and train there; ``train`` and
            ``val`` are moved to it. Default: the model's device. A device this machine
            lacks is a ``ValueError`` (:func:`ssm_lib.devices.resolve_device`).
        resume: ``DKEFHistory.checkpoint`` of an earlier call: continue that run (its
            parameters, optimiser and scheduler states, random stream, step count and best
            validation state) for ``steps`` more stage-1 steps, then stage 2. Pass the same
            data, objective and settings (and the same ``lr_schedule`` factory; ``seed`` must
            be ``None``; a given ``generator`` receives the run's state). When every call
            but the last ends on a multiple of ``val_every`` (the last step of a call is
            always validated, which draws from the random stream), the result equals one
            uninterrupted call bit for bit.

    Raises:
        ValueError: bad arguments, including non-finite values in ``train`` or ``val``
            (found before any step).
        TrainingDivergedError: stage 1 diverged (the message names the step, counted from 1,
            and the cause).
    """
    check_objective(objective)
    if not isinstance(model, DKEF):
        raise ValueError(f"model must be a DKEF, got {type(model).__name__}")
    model._check_x(train, "train")
    model._check_x(val, "val")
    check_finite(train, "train")
    check_finite(val, "val")
    check_count(steps, "steps")
    check_count(batch_size, "batch_size")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (one half for alpha, one for the loss)")
    check_number(lr, "lr", positive=True)
    check_number(clip, "clip", positive=True)
    check_count(val_every, "val_every")
    check_count(patience, "patience", 0)
    check_count(n_alpha, "n_alpha")
    if final_n_alpha is not None:
        check_count(final_n_alpha, "final_n_alpha")
    resample_alpha_rows = check_flag(resample_alpha_rows, "resample_alpha_rows")
    check_count(lambda_steps, "lambda_steps", 0)
    check_number(lambda_lr, "lambda_lr", positive=True)
    _show_progress(progress)
    divergence_factor = check_divergence_factor(divergence_factor)
    _check_sigma(objective, sigma)
    if sigma is not None:
        check_number(sigma, "sigma", positive=True)
    if batch_size > train.shape[0]:
        raise ValueError(f"batch_size = {batch_size} is more than the {train.shape[0]} rows of train "
                         "(each step draws batch_size distinct rows)")
    resume = _check_resume(resume, objective, train.shape[0])
    if generator is not None and seed is not None:
        raise ValueError("give seed or generator, not both")
    if resume is not None and seed is not None:
        raise ValueError("resume continues the checkpoint's random stream: give seed=None")
    if device is not None:
        model.to(resolve_device(device))
    device = model.alpha.device
    train, val = train.to(device), val.to(device)
    if resume is not None:
        model.load_state_dict(resume["model"])
    gen, run_seed = run_generator(seed, generator, device)
    if resume is not None:
        gen.set_state(resume["generator"].clone())
        run_seed = resume["seed"]
    half = batch_size // 2
    params = [p for name, p in model.named_parameters() if name != "log10_lambda" and p.requires_grad]
    params.append(model.log10_lambda)
    if optimizer is None:
        optimizer = torch.optim.Adam(params, lr=lr)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    elif not {id(p) for p in params} & {id(p) for g in optimizer.param_groups for p in g["params"]}:
        raise ValueError("optimizer does not optimise any parameter of model (build it on "
                         "model.parameters(), or pass history.optimizer of the same model)")
    scheduler = _make_scheduler(lr_schedule, optimizer)
    monitor = DivergenceMonitor(divergence_factor)
    first_step, best_so_far = 1, None
    if resume is not None:
        if (resume["scheduler"] is None) != (scheduler is None):
            had = "had no" if scheduler is not None else "had an"
            raise ValueError(f"resume: the checkpoint's run {had} lr_schedule; pass the lr_schedule of the "
                             "run being continued")
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        monitor.ref_loss, monitor.ref_grad = resume["monitor"]
        first_step = int(resume["step"]) + 1
        best_so_far = (resume["best_step"], float(resume["best_value"]), resume["best_state"])
    hist = DKEFHistory(optimizer=optimizer, scheduler=scheduler, generator=gen, seed=run_seed)
    n_train = train.shape[0]

    def perm(n: int) -> torch.Tensor:
        return torch.randperm(n, generator=gen, device=gen.device).to(device)

    idx_alpha = perm(n_train)[:n_alpha] if resume is None else resume["idx_alpha"].to(device)
    last_state: dict[str, torch.Tensor] = {}

    def loss_at(step: int) -> torch.Tensor:
        idx = perm(n_train)[: 2 * half]
        return _split_loss(model, train[idx], objective, gen, sigma)

    def validate(step: int) -> float:
        rows = perm(n_train)[:n_alpha] if resample_alpha_rows else idx_alpha
        model.fit_alpha(train[rows], objective, generator=gen, sigma=sigma)
        value = dkef_loss(model, val, objective, generator=gen, sigma=sigma).item()
        hist.val.append((step - 1, value))
        last_state.update(_state_copy(model))
        return value

    record = train_loop(loss_at, params, optimizer, steps, clip=clip, monitor=monitor, validate=validate,
                        validate_every=val_every, patience=patience, restore=model, progress=progress,
                        desc=objective, what=f"DKEF training with {objective!r}", first_step=first_step,
                        after_step=(lambda step: scheduler.step()) if scheduler is not None else None,
                        best_so_far=best_so_far)
    hist.train = record.losses
    hist.best_step = (record.best_step or 1) - 1
    hist.stopped_early = record.stopped_early
    if not record.stopped_early:
        hist.checkpoint = {
            "objective": objective, "step": first_step + steps - 1, "model": last_state,
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "scheduler": copy.deepcopy(scheduler.state_dict()) if scheduler is not None else None,
            "generator": gen.get_state(), "seed": run_seed, "idx_alpha": idx_alpha.detach().clone(),
            "best_step": record.best_step, "best_value": record.best_value, "best_state": _state_copy(model),
            "monitor": (monitor.ref_loss, monitor.ref_grad)}

    # stage 2: lambda alone
    final_rows = idx_alpha if final_n_alpha is None else perm(n_train)[:final_n_alpha]
    G, b = model.accumulate_system(train[final_rows], objective, generator=gen, sigma=sigma)
    if lambda_steps > 0:
        frozen = [p for p in model.parameters() if p is not model.log10_lambda]
        flags = [p.requires_grad for p in frozen]
        for p in frozen:
            p.requires_grad_(False)

        def lambda_loss(step: int) -> torch.Tensor:
            rows = perm(val.shape[0])[:100]
            return dkef_loss(model, val[rows], objective, model.solve_alpha(G, b), generator=gen,
                             sigma=sigma)

        try:
            lam = [model.log10_lambda]
            stage2 = train_loop(lambda_loss, lam, torch.optim.Adam(lam, lr=lambda_lr), lambda_steps,
                                divergence_factor=divergence_factor, on_diverge="stop", progress=progress,
                                desc=f"{objective}: lambda", what=f"the lambda stage with {objective!r}")
            hist.lambda_divergence = stage2.divergence
        finally:
            for p, flag in zip(frozen, flags, strict=True):
                p.requires_grad_(flag)
    with torch.no_grad():
        model.alpha.copy_(model.solve_alpha(G, b))
    return hist
