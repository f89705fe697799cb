r"""Langevin samplers driven by a score function.

Unadjusted Langevin dynamics uses the update (with :math:`z_t \sim \mathcal N(0, I)`)

.. math::

    x_{t+1} = x_t + \varepsilon\, s(x_t) + \sqrt{2\varepsilon}\, z_t,

whose stationary law tends to :math:`p` as :math:`\varepsilon \to 0` when :math:`s = \nabla
\log p`. The annealed version (Song & Ermon 2019, Alg. 1) runs it at decreasing noise levels
:math:`\sigma_1 > \dots > \sigma_L` with step :math:`\alpha_i = \varepsilon\,
\sigma_i^2/\sigma_L^2`, using a noise-conditional score :math:`s(x, \sigma_i)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ._checks import (
    ScoreFn,
    call_score,
    check_batch,
    check_count,
    check_finite,
    check_fits_in_memory,
    check_flag,
    check_generator,
    check_number,
    check_score_signature,
)

__all__ = ["SamplerDivergedError", "annealed_langevin_dynamics", "langevin_dynamics"]


class SamplerDivergedError(RuntimeError):
    """Raised when a sampler's state stops being finite (from finite starting points)."""


def _progress(**kwargs):
    """A tqdm progress bar, imported only when one is made (``import ssm_lib`` stays light)."""
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


def _check_finite(x: torch.Tensor, step: int | str, what: str) -> None:
    if not bool(torch.isfinite(x).all()):
        where = f"at step {step}" if isinstance(step, int) else f"in {step}"
        raise SamplerDivergedError(f"{what} diverged {where}: the samples are no longer "
                                   "finite (the step is too large, or the score returned "
                                   "non-finite values); try a smaller step_size")


def _check_sigmas(sigmas: object) -> torch.Tensor:
    """The annealing schedule as a float64 tensor of positive, finite, decreasing levels."""
    if isinstance(sigmas, torch.Tensor):
        if sigmas.dtype == torch.bool or sigmas.is_complex():
            raise ValueError(f"sigmas must hold real numbers, got dtype {sigmas.dtype}")
        if sigmas.dim() > 1:
            raise ValueError(f"sigmas must be a sequence of numbers (one dimension), got a tensor "
                             f"of shape {tuple(sigmas.shape)}")
        sig = sigmas.detach().to("cpu", torch.float64).flatten()
    else:
        if isinstance(sigmas, (str, bytes)) or not hasattr(sigmas, "__len__"):
            raise ValueError(f"sigmas must be a sequence of numbers, got {sigmas!r}")
        sig = torch.tensor([check_number(v, "sigmas") for v in sigmas], dtype=torch.float64)  # type: ignore[union-attr]
    if sig.numel() < 1:
        raise ValueError("sigmas must hold at least one noise level")
    if not bool(torch.isfinite(sig).all()):
        raise ValueError(f"sigmas must be finite, got {sig.tolist()}")
    if bool(torch.any(sig <= 0)) or bool(torch.any(sig[1:] >= sig[:-1])):
        raise ValueError(f"sigmas must be positive and strictly decreasing, got {sig.tolist()}")
    return sig


def langevin_dynamics(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    *,
    step_size: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    r"""Run :math:`x \leftarrow x + \varepsilon s(x) + \sqrt{2\varepsilon} z` for ``n_steps``.

    Args:
        score_fn: score function (batch-shaped in, batch-shaped out), called as ``score_fn(x)``;
            one whose signature needs more arguments (a noise-conditional score) is a
            ``ValueError`` naming ``score_fn`` before the first step.
        x0: initial particles ``(batch, *event_shape)``; not modified.
        step_size: :math:`\varepsilon > 0`.
        n_steps: number of updates.
        generator: source of the noise :math:`z`, on the device of ``x0`` (``None``: torch's
            global generator).
        return_trajectory: return all states, shape ``(n_steps + 1, batch, *event_shape)``.
        progress: show a progress bar.

    Returns:
        The final particles (or the trajectory), detached.

    Raises:
        ValueError: bad arguments, including non-finite values in ``x0`` (before any step).
        SamplerDivergedError: the particles stopped being finite; the message names the step.
    """
    check_batch(x0, "x0")
    check_score_signature(score_fn, 1, expected="score_fn(x)",
                          hint="a noise-conditional score s(x, sigma) goes to annealed_langevin_dynamics, "
                               "or fix its level: lambda x: score_fn(x, sigma)")
    eps = check_number(step_size, "step_size", positive=True)
    n_steps = check_count(n_steps, "n_steps")
    check_generator(generator, x0.device, what="x0")
    return_trajectory = check_flag(return_trajectory, "return_trajectory")
    progress = check_flag(progress, "progress")
    if return_trajectory:
        check_fits_in_memory((n_steps + 1) * x0.numel(), x0.dtype, x0.device,
                             "the trajectory (n_steps + 1 copies of x0; return_trajectory=True)")
    check_finite(x0, "x0")
    x = x0.detach().clone()
    traj = [x.clone()] if return_trajectory else None
    noise_scale = math.sqrt(2 * eps)
    with torch.no_grad():
        for t in _progress(iterable=range(1, n_steps + 1), disable=not progress, desc="Langevin"):
            s = call_score(score_fn, x)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + eps * s.detach() + noise_scale * z
            _check_finite(x, t, "Langevin dynamics")
            if traj is not None:
                traj.append(x.clone())
    return torch.stack(traj) if traj is not None else x


def annealed_langevin_dynamics(
    score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    sigmas: Sequence[float] | torch.Tensor,
    step_size: float,
    n_steps_each: int,
    generator: torch.Generator | None = None,
    denoise: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    r"""Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1).

    For each noise level :math:`\sigma_i` (decreasing), ``n_steps_each`` updates
    :math:`x \leftarrow x + \alpha_i s(x, \sigma_i) + \sqrt{2\alpha_i} z` with
    :math:`\alpha_i = \varepsilon\,\sigma_i^2/\sigma_L^2`. With ``denoise=True`` a final
    noise-free step :math:`x \leftarrow x + \sigma_L^2 s(x, \sigma_L)` (Tweedie's formula)
    removes the last level's noise.

    Args:
        score_fn: noise-conditional score, called as ``score_fn(x, sigma)`` with ``sigma`` of
            shape ``(batch,)`` (e.g. :class:`~ssm_lib.models.NoiseConditionalScoreMLP`). Its
            signature is checked before the first step: one that cannot take two positional
            arguments (a plain :class:`~ssm_lib.models.ScoreMLP`) is a ``ValueError`` naming
            ``score_fn``.
        x0: initial particles; not modified.
        sigmas: positive, finite, strictly decreasing noise levels.
        step_size: :math:`\varepsilon > 0`, the step at the smallest level.
        n_steps_each: updates per level.
        generator: source of the noise, on the device of ``x0`` (``None``: torch's global
            generator).
        denoise: apply the final denoising step.
        progress: show a progress bar.
    """
    check_batch(x0, "x0")
    check_score_signature(score_fn, 2, expected="score_fn(x, sigma) with sigma of shape (batch,)",
                          hint="a score without a noise-level input (e.g. ScoreMLP) goes to "
                               "langevin_dynamics, or wrap it: lambda x, sigma: score_fn(x)")
    eps = check_number(step_size, "step_size", positive=True)
    n_steps_each = check_count(n_steps_each, "n_steps_each")
    check_generator(generator, x0.device, what="x0")
    denoise = check_flag(denoise, "denoise")
    progress = check_flag(progress, "progress")
    sig = _check_sigmas(sigmas)
    check_finite(x0, "x0")
    x = x0.detach().clone()
    sigma_last = float(sig[-1])
    total = sig.numel() * n_steps_each
    with torch.no_grad(), _progress(total=total, disable=not progress, desc="annealed Langevin") as bar:
        step = 0
        for level in sig.tolist():
            alpha = eps * (level / sigma_last) ** 2
            level_t = torch.full((x.shape[0],), level, dtype=x.dtype, device=x.device)
            for _ in range(n_steps_each):
                step += 1
                s = call_score(score_fn, x, level_t)
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = x + alpha * s.detach() + math.sqrt(2 * alpha) * z
                _check_finite(x, step, "annealed Langevin dynamics")
                bar.update(1)
        if denoise:
            level_t = torch.full((x.shape[0],), sigma_last, dtype=x.dtype, device=x.device)
            x = x + sigma_last**2 * call_score(score_fn, x, level_t).detach()
            _check_finite(x, "the final denoising step", "annealed Langevin dynamics")
    return x
