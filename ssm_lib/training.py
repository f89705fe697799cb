r"""A small training loop: fit a model with Adam on an objective of :data:`ssm_lib.losses.OBJECTIVES`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ._checks import (
    ScoreFn,
    check_batch,
    check_count,
    check_finite,
    check_flag,
    check_generator,
    check_number,
)
from .losses import OBJECTIVES, Objective, make_objective, objective_input


class TrainingDivergedError(RuntimeError):
    """Raised when training diverges (a non-finite loss or gradient, or a blow-up); the
    message names the step."""


@dataclass
class History:
    """Training record: the loss at every step."""

    losses: list[float] = field(default_factory=list)


def _score_of(model: nn.Module) -> ScoreFn:
    return model.score if hasattr(model, "score") else model  # type: ignore[return-value]


def _minibatch_sampler(data: object, gen: torch.Generator, device: torch.device
                       ) -> Callable[[int, int], torch.Tensor]:
    """``draw(n, step)``: ``n`` rows drawn uniformly with replacement from a data tensor, or
    ``n`` samples from a sampler ``data(n, generator)``, on ``device``."""
    if isinstance(data, torch.Tensor):
        check_batch(data, "data")
        check_finite(data, "data")
        data_on_device = data.detach().to(device)

        def draw(n: int, step: int) -> torch.Tensor:
            idx = torch.randint(0, data_on_device.shape[0], (n,), generator=gen, device=device)
            return data_on_device[idx]
        return draw
    if callable(data):
        def draw_from_sampler(n: int, step: int) -> torch.Tensor:
            x = data(n, gen)
            if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] != n:
                got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"data(n, generator) must return a tensor of shape (n, *event_shape) "
                                 f"with n = {n}, got {got}")
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"data(n, generator) returned non-finite values at step {step}")
            return x.to(device)
        return draw_from_sampler
    raise ValueError(f"data must be a tensor or a sampler callable, got {type(data).__name__}")


class _DivergenceMonitor:
    """Stops a run whose loss or gradient norm is non-finite or has blown up (see
    :func:`fit`, ``divergence_factor``)."""

    def __init__(self, factor: float | None):
        self.factor = factor
        self.ref_loss = self.ref_grad = math.inf

    def check(self, step: int, loss: float, grad_norm: float) -> None:
        for what, value in (("loss", loss), ("gradient norm", grad_norm)):
            if not math.isfinite(value):
                raise TrainingDivergedError(f"training diverged at step {step}: the {what} is {value}; "
                                            "lower lr or check the objective's settings")
        if step == 1:
            self.ref_loss, self.ref_grad = max(abs(loss), 1.0), max(grad_norm, 1.0)
        elif self.factor is not None and (abs(loss) > self.factor * self.ref_loss
                                          or grad_norm > self.factor * self.ref_grad):
            raise TrainingDivergedError(
                f"training diverged at step {step}: the loss is {loss:.3g} and the gradient norm "
                f"{grad_norm:.3g}, more than divergence_factor = {self.factor:.3g} times their step-1 "
                f"scale ({self.ref_loss:.3g}, {self.ref_grad:.3g}); lower lr")


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
    progress: bool = True,
    divergence_factor: float | None = 1e8,
    **objective_options,
) -> History:
    r"""Train ``model`` with Adam on ``objective``.

    Args:
        model: the module whose parameters are trained.
        data: a finite tensor ``(N, *event_shape)`` to draw minibatches from (uniformly, with
            replacement), or a sampler ``data(n, generator) -> (n, *event_shape)`` such as
            ``density.sample``.
        objective: a name from :data:`ssm_lib.losses.OBJECTIVES` (``objective_options`` are
            passed to :func:`ssm_lib.losses.make_objective`) or a callable
            ``f(score_fn, x, generator=...)``.
        n_steps, batch_size, lr: optimisation settings.
        seed: seeds a new generator (on the model's device) for minibatches, projections and
            noise; default 0. torch's global generator is not used.
        generator: use this ``torch.Generator`` (on the model's device) instead of a seed.
        score_fn: the score to train (default: ``model.score`` if it exists, else ``model``);
            objectives that take the model itself (MLE, CP, Approx BP) get ``model``.
        progress: show a progress bar with the running loss.
        divergence_factor: the blow-up threshold :math:`K` (``None``: no blow-up test). With
            :math:`L_1, G_1` the loss and the gradient norm at step 1, training stops at step
            :math:`t` when :math:`|L_t| > K \max(|L_1|, 1)` or
            :math:`G_t > K \max(G_1, 1)`. The default, :math:`10^8`, flags a run whose loss
            or gradient grew by eight orders of magnitude.

    Raises:
        ValueError: bad arguments, including non-finite values in ``data`` (found before any
            step) or in a batch drawn from a sampler (naming the step).
        TrainingDivergedError: the loss or a gradient became NaN or infinite, or the run blew
            up (see ``divergence_factor``); the message gives the step.
    """
    n_steps = check_count(n_steps, "n_steps")
    batch_size = check_count(batch_size, "batch_size")
    lr = check_number(lr, "lr", positive=True)
    progress = check_flag(progress, "progress")
    if divergence_factor is not None:
        divergence_factor = check_number(divergence_factor, "divergence_factor", positive=True)
        if divergence_factor <= 1:
            raise ValueError(f"divergence_factor must be > 1 (or None), got {divergence_factor!r}")
    if isinstance(objective, str):
        loss_fn = make_objective(objective, **objective_options)
    elif callable(objective):
        if objective_options:
            raise ValueError(f"options {sorted(objective_options)} are only for a named objective; "
                             "bind them in the callable instead")
        loss_fn = objective
    else:
        raise ValueError(f"objective must be a name in {tuple(OBJECTIVES)} or a callable, got {objective!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
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
    if generator is not None and seed is not None:
        raise ValueError("give seed or generator, not both")
    if generator is not None:
        gen = check_generator(generator, device, what="the model")
    else:
        gen = torch.Generator(device=device)
        gen.manual_seed(check_count(0 if seed is None else seed, "seed", 0))
    draw = _minibatch_sampler(data, gen, device)

    opt = torch.optim.Adam(params, lr=lr)
    history = History()
    monitor = _DivergenceMonitor(divergence_factor)
    model.train()
    from tqdm.auto import tqdm  # imported here: ``import ssm_lib`` stays light

    with tqdm(range(1, n_steps + 1), disable=not progress, desc="training", leave=False) as bar:
        for step in bar:
            x = draw(batch_size, step)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(score, x, generator=gen)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(f"objective must return a scalar tensor, got {loss!r}")
            if loss.requires_grad:
                loss.backward()
            grads = [p.grad.detach().reshape(-1) for p in params if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.cat(grads)) if grads else loss.new_zeros(())
            value, gnorm = torch.stack([loss.detach().reshape(()), grad_norm.to(loss.dtype)]).tolist()
            monitor.check(step, value, gnorm)
            opt.step()
            history.losses.append(value)
            if step % max(1, n_steps // 50) == 0:
                bar.set_postfix(loss=f"{value:.4g}")
    model.eval()
    return history
