r"""A small training loop: fit a model with Adam on an objective of :data:`ssm_lib.losses.OBJECTIVES`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ._checks import ScoreFn, check_positive_float, check_positive_int
from .losses import OBJECTIVES, Objective, make_objective


class TrainingDivergedError(RuntimeError):
    """Raised when the training loss stops being finite; the message names the step."""


@dataclass
class History:
    """Training record: the loss at every step."""

    losses: list[float] = field(default_factory=list)


def _score_of(model: nn.Module) -> ScoreFn:
    return model.score if hasattr(model, "score") else model  # type: ignore[return-value]


def fit(
    model: nn.Module,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    objective: str | Objective,
    *,
    n_steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    score_fn: ScoreFn | None = None,
    progress: bool = True,
    **objective_options,
) -> History:
    """Train ``model`` with Adam on ``objective``.

    Args:
        model: the module whose parameters are trained.
        data: a tensor ``(N, *event_shape)`` to draw minibatches from (with replacement), or a
            sampler ``data(n, generator) -> (n, *event_shape)`` such as ``density.sample``.
        objective: a name from :data:`ssm_lib.losses.OBJECTIVES` (``objective_options`` are
            passed to :func:`ssm_lib.losses.make_objective`) or a callable
            ``f(score_fn, x, generator=...)``.
        n_steps, batch_size, lr: optimisation settings.
        seed: seeds the generator used for minibatches, projections and noise.
        score_fn: the score to train (default: ``model.score`` if it exists, else ``model``).
        progress: show a progress bar with the running loss.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite; the message gives the step.
    """
    check_positive_int(n_steps, "n_steps")
    check_positive_int(batch_size, "batch_size")
    check_positive_float(lr, "lr")
    loss_fn = make_objective(objective, **objective_options) if isinstance(objective, str) else objective
    if not callable(loss_fn):
        raise ValueError(f"objective must be a name in {tuple(OBJECTIVES)} or a callable, got {objective!r}")
    score = score_fn if score_fn is not None else _score_of(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    device = params[0].device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    if isinstance(data, torch.Tensor):
        if data.dim() < 2 or data.shape[0] < 1:
            raise ValueError(f"data must have shape (N, *event_shape), got {tuple(data.shape)}")
        data_on_device = data.to(device)

        def draw(n: int) -> torch.Tensor:
            idx = torch.randint(0, data_on_device.shape[0], (n,), generator=gen, device=device)
            return data_on_device[idx]
    elif callable(data):
        def draw(n: int) -> torch.Tensor:
            return data(n, gen).to(device)
    else:
        raise ValueError(f"data must be a tensor or a sampler callable, got {type(data).__name__}")

    opt = torch.optim.Adam(params, lr=lr)
    history = History()
    model.train()
    from tqdm.auto import tqdm  # imported here: ``import ssm_lib`` stays light

    with tqdm(range(1, n_steps + 1), disable=not progress, desc="training", leave=False) as bar:
        for step in bar:
            x = draw(batch_size)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(score, x, generator=gen)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"training diverged at step {step}: the loss is {value}; lower lr or check "
                    "the objective's settings")
            loss.backward()
            opt.step()
            history.losses.append(value)
            if step % max(1, n_steps // 50) == 0:
                bar.set_postfix(loss=f"{value:.4g}")
    model.eval()
    return history
