r"""DKEF's loss under any objective with a closed-form alpha, and the paper's two-stage
training (a use of :func:`ssm_lib.training.train_loop`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .._checks import check_count, check_finite, check_number
from ..losses import OBJECTIVES, make_objective, objective_input
from ..training import train_loop
from .alpha import check_objective
from .model import DKEF

__all__ = ["DKEFHistory", "dkef_loss", "train_dkef", "training_step"]


def dkef_loss(model: DKEF, x: torch.Tensor, objective: str, alpha: torch.Tensor | None = None, *,
              generator: torch.Generator | None = None, sigma: float | None = None,
              reduction: str = "mean", exact_method: str = "vmap") -> torch.Tensor:
    """The objective's loss of the model (coefficients ``alpha``, default the stored ones) on
    ``x``, computed by the library's generic losses of :data:`ssm_lib.losses.OBJECTIVES` (not by
    the quadratic form). ``sigma``: DSM's noise level; ``exact_method``: the ``method`` of
    exact SM."""
    spec = OBJECTIVES[check_objective(objective)]
    options = {}
    if "sigma" in spec.required:
        if sigma is None:
            raise ValueError(f"sigma: objective {objective!r} needs a noise level sigma")
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
    optimiser step (skipped when the loss is not finite). Returns the loss."""
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
    """Training record: training loss per step, validation loss per check ``(step, value)``,
    and the best step, with steps counted from 0 (indices into ``train``);
    ``stopped_early``: the patience ran out; ``lambda_divergence``: why the
    :math:`\\lambda` stage stopped before ``lambda_steps`` (``None``: it did not)."""

    train: list[float] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    best_step: int = 0
    stopped_early: bool = False
    lambda_divergence: str | None = None


def train_dkef(model: DKEF, train: torch.Tensor, val: torch.Tensor, objective: str, *, steps: int,
               batch_size: int = 200, lr: float = 1e-2, clip: float = 100.0, sigma: float | None = None,
               val_every: int = 10, patience: int = 200, n_alpha: int = 1000, lambda_steps: int = 1000,
               lambda_lr: float = 1e-3, generator: torch.Generator | None = None,
               progress: bool | None = None, divergence_factor: float | None = 1e8,
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

    Raises:
        ValueError: bad arguments, including non-finite values in ``train`` or ``val``
            (found before any step).
        TrainingDivergedError: stage 1 diverged (the message names the step, counted from 1,
            and the cause).
    """
    check_objective(objective)
    model._check_x(train, "train")
    model._check_x(val, "val")
    check_finite(train, "train")
    check_finite(val, "val")
    check_count(steps, "steps")
    check_count(batch_size, "batch_size")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (one half for alpha, one for the loss)")
    check_number(lr, "lr", positive=True)
    check_count(val_every, "val_every")
    check_count(patience, "patience", 0)
    check_count(n_alpha, "n_alpha")
    if final_n_alpha is not None:
        check_count(final_n_alpha, "final_n_alpha")
    if not isinstance(resample_alpha_rows, bool):
        raise TypeError(f"resample_alpha_rows must be True or False, got {resample_alpha_rows!r}")
    check_count(lambda_steps, "lambda_steps", 0)
    check_number(lambda_lr, "lambda_lr", positive=True)
    if "sigma" in OBJECTIVES[objective].required and sigma is None:
        raise ValueError(f"sigma: objective {objective!r} needs a noise level sigma")
    half = batch_size // 2
    params = [p for name, p in model.named_parameters() if name != "log10_lambda" and p.requires_grad]
    params.append(model.log10_lambda)
    hist = DKEFHistory()
    n_train = train.shape[0]

    def perm(n: int) -> torch.Tensor:
        dev = generator.device if generator is not None else torch.device("cpu")
        return torch.randperm(n, generator=generator, device=dev).to(train.device)

    idx_alpha = perm(n_train)[:n_alpha]

    def loss_at(step: int) -> torch.Tensor:
        idx = perm(n_train)[: 2 * half]
        return _split_loss(model, train[idx], objective, generator, sigma)

    def validate(step: int) -> float:
        rows = perm(n_train)[:n_alpha] if resample_alpha_rows else idx_alpha
        model.fit_alpha(train[rows], objective, generator=generator, sigma=sigma)
        value = dkef_loss(model, val, objective, generator=generator, sigma=sigma).item()
        hist.val.append((step - 1, value))
        return value

    record = train_loop(loss_at, params, torch.optim.Adam(params, lr=lr), steps, clip=clip,
                        divergence_factor=divergence_factor, validate=validate, validate_every=val_every,
                        patience=patience, restore=model, progress=progress, desc=objective,
                        what=f"DKEF training with {objective!r}")
    hist.train = record.losses
    hist.best_step = (record.best_step or 1) - 1
    hist.stopped_early = record.stopped_early

    # stage 2: lambda alone
    final_rows = idx_alpha if final_n_alpha is None else perm(n_train)[:final_n_alpha]
    G, b = model.accumulate_system(train[final_rows], objective, generator=generator, sigma=sigma)
    if lambda_steps > 0:
        frozen = [p for p in model.parameters() if p is not model.log10_lambda]
        flags = [p.requires_grad for p in frozen]
        for p in frozen:
            p.requires_grad_(False)

        def lambda_loss(step: int) -> torch.Tensor:
            rows = perm(val.shape[0])[:100]
            return dkef_loss(model, val[rows], objective, model.solve_alpha(G, b), generator=generator,
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
