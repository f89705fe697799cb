r"""Score-matching objectives.

Conventions (used across ``ssm_lib``):

* A *score function* maps a batch ``x`` of shape ``(batch, *event_shape)`` to a tensor of the
  same shape; for an energy :math:`E` with :math:`\log p = -E - \log Z` the score is
  :math:`s = -\nabla_x E` (see :func:`ssm_lib.models.score_from_energy`).
* :math:`J(x) = \nabla_x s(x)` is the Jacobian with rows :math:`\nabla_x s^1, \dots,
  \nabla_x s^d`, i.e. :math:`J_{ij} = \partial s^i / \partial x_j`; :math:`d` is the product
  of the event dimensions.
* Each loss sums over the event dimensions and then reduces over the batch:
  ``reduction="mean"`` (default), ``"sum"``, or ``"none"`` (one value per sample).
* Losses are differentiable with respect to the parameters of ``score_fn`` and never modify
  ``x`` (values or ``requires_grad``).
* No gradient flows into ``x`` (nor into ``directions``, ``noise`` or ``sigma``): the losses
  are differentiable with respect to the parameters of ``score_fn`` only.
* ``score_fn`` never receives the caller's tensor: a score function that modifies its input
  in place cannot change ``x``.
* Non-finite values in ``x`` are not looked for (that would cost a device synchronisation per
  call): they propagate into the loss. :func:`~ssm_lib.training.fit` checks its data and its
  loss at every step.
* Randomness comes from an explicit ``torch.Generator`` on the device of ``x``; with
  ``generator=None`` torch's global generator (``torch.manual_seed``) is used.

A model may offer its own fast exact path for :func:`sliced_score_matching`; see
:mod:`ssm_lib.fast_path`. :data:`OBJECTIVES` lists every objective by name, with its label.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.autograd.forward_ad as fwad

from . import exact_chunking as _exact_chunking
from ._checks import (
    ScoreFn,
    call_score,
    check_batch,
    check_choice,
    check_count,
    check_fits_in_memory,
    check_flag,
    check_generator,
    check_noise_levels,
    check_number,
    check_reduction,
    check_score_signature,
)
from ._tensor_ops import as_grad_input, event_sum, per_sample, private_copy, reduce, repeat_batch
from .curvature import approx_backprop_score_matching, curvature_propagation_score_matching
from .fast_path import model_fast_path
from .projections import PROJECTIONS, sample_projections

__all__ = [
    "EXACT_METHODS", "OBJECTIVES", "Objective", "ObjectiveSpec", "SSM_METHODS",
    "approx_backprop_score_matching", "check_options", "curvature_propagation_score_matching",
    "denoising_score_matching", "exact_score_matching", "jacobian_trace", "make_objective",
    "negative_log_likelihood", "objective_input", "objective_options", "perturb", "sliced_score_matching",
]

EXACT_METHODS = ("auto", "loop", "vmap")
SSM_METHODS = ("auto", "backward", "forward", "finite_difference")


_ONE_ARG = "score_fn(x)"
_ONE_ARG_HINT = ("a noise-conditional score s(x, sigma) is trained by denoising_score_matching(..., "
                 "noise_conditional=True), or fix its level: lambda x: score_fn(x, sigma)")


@contextlib.contextmanager
def _explained_call(score_fn: object, n_args: int, expected: str, hint: str) -> Iterator[None]:
    """Calls of ``score_fn`` inside the block: a ``TypeError`` that comes from calling it with
    the wrong number of arguments (e.g. a noise-conditional score given only ``x``) becomes a
    ``ValueError`` naming ``score_fn`` (its signature is inspected only then: nothing is added
    to a successful call); any other ``TypeError`` is raised as it is."""
    try:
        yield
    except TypeError:
        check_score_signature(score_fn, n_args, expected=expected, hint=hint)
        raise


def _grad(output: torch.Tensor, inputs: torch.Tensor, grad_outputs: torch.Tensor | None = None,
          *, is_grads_batched: bool = False) -> torch.Tensor:
    """``d(output . grad_outputs)/d inputs`` with ``create_graph=True``; zeros when ``output``
    does not depend on ``inputs`` (e.g. a constant score)."""
    if not output.requires_grad:
        shape = (grad_outputs.shape[0], *inputs.shape) if is_grads_batched else inputs.shape
        return inputs.new_zeros(shape)
    if grad_outputs is None:
        output = output.sum()
    (g,) = torch.autograd.grad(output, inputs, grad_outputs=grad_outputs, create_graph=True,
                               allow_unused=True, is_grads_batched=is_grads_batched)
    if g is None:
        shape = (grad_outputs.shape[0], *inputs.shape) if is_grads_batched else inputs.shape
        return inputs.new_zeros(shape)
    return g


def jacobian_trace(score_fn: ScoreFn, x: torch.Tensor, *, method: str = "auto",
                   chunk_size: int | None = None, memory_budget: float | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The score and the exact trace of its Jacobian, :math:`\operatorname{tr}\nabla_x s(x)`.

    ``method="loop"`` takes one backward pass per event dimension (:math:`d` passes, the
    textbook cost); ``method="vmap"`` computes the same diagonal with the passes vectorised
    into batched ones (``torch.autograd.grad(..., is_grads_batched=True)``, which runs on
    ``torch.func.vmap``), ``chunk_size`` basis vectors at a time. Both do the same arithmetic.
    ``"vmap"`` saves per-operation overhead and runs taller matrix products, but works on
    tensors ``chunk_size`` times larger: it is faster than the loop only with a chunk that
    suits the machine. With too large a chunk it can be several times *slower* than the loop
    (on a CPU, e.g. all :math:`d` rows at once for a few hundred dimensions), and with
    ``chunk_size=1`` it is a slower loop.

    ``chunk_size=None`` lets the library choose (rule and measurements in
    :mod:`ssm_lib.exact_chunking`): with :math:`R` the bytes of one backward pass on the batch
    (estimated from the tensors the forward pass saves) and :math:`B` the batch size,
    ``chunk = min(d, budget // R)``, on a CPU also at most ``ceil(512 / B)`` (matrix products
    of about 512 rows already run efficiently; larger ones only add memory traffic); the
    budget is 32 MiB on a CPU, a quarter of the free device memory on CUDA, and at most
    ``memory_budget`` bytes when given. ``method="auto"`` (default) runs ``"vmap"`` with that
    chunk, and the loop where the chunk would be a single row or :math:`d \le 2`.

    Memory: every pass keeps its graph (``create_graph=True``) until the trace is freed, about
    :math:`d\,R` bytes in all (measured 0.54 to 4.0 times) whatever the method; a batch for
    which a quarter of that exceeds the available memory is refused with a ``ValueError``
    naming ``x`` (:func:`ssm_lib.exact_chunking.check_graph_fits`).

    Returns:
        ``(s, trace)`` with ``s`` of the shape of ``x`` and ``trace`` of shape ``(batch,)``.
        Both carry the graph needed to differentiate them with respect to parameters.
    """
    check_choice(method, EXACT_METHODS, "method")
    if chunk_size is not None:
        chunk_size = check_count(chunk_size, "chunk_size")
    if memory_budget is not None:
        memory_budget = check_number(memory_budget, "memory_budget", positive=True)
    check_batch(x)
    x_ = as_grad_input(x)
    batch, dim = x.shape[0], x[0].numel()
    with torch.enable_grad():
        with _explained_call(score_fn, 1, _ONE_ARG, _ONE_ARG_HINT):
            s = call_score(score_fn, x_)
        s_flat = s.reshape(batch, dim)

        io_bytes = x.numel() * x.element_size() + s.numel() * s.element_size()
        measured: list[int] = []

        def row_bytes() -> int:  # R: what the graph saved, plus a basis vector and a gradient
            if not measured:  # (walked once, for the memory check and the plan)
                measured.append(_exact_chunking.saved_bytes(s) + io_bytes)
            return measured[0]

        _exact_chunking.check_graph_fits(dim, row_bytes, io_bytes, x.device)
        plan = _exact_chunking.plan(method, dim, row_bytes, x.device, batch=batch,
                                    chunk_size=chunk_size, memory_budget=memory_budget)
        if plan.method == "loop":
            trace = x.new_zeros(batch)
            for i in range(dim):
                g = _grad(s_flat[:, i], x_)
                trace = trace + g.reshape(batch, dim)[:, i]
            return s, trace
        step = plan.chunk
        trace = x.new_zeros(batch)
        for start in range(0, dim, step):
            idx = torch.arange(start, min(start + step, dim), device=x.device)
            basis = torch.zeros(len(idx), batch, dim, dtype=s.dtype, device=x.device)
            basis[torch.arange(len(idx), device=x.device), :, idx] = 1.0
            g = _grad(s, x_, basis.reshape(len(idx), *x.shape), is_grads_batched=True)
            g = g.reshape(len(idx), batch, dim)
            # diagonal entries g[k, b, idx[k]] summed over the chunk
            trace = trace + g.gather(2, idx.view(-1, 1, 1).expand(-1, batch, 1)).squeeze(2).sum(0)
        return s, trace


def exact_score_matching(
    score_fn: ScoreFn,
    x: torch.Tensor,
    *,
    method: str = "auto",
    reduction: str = "mean",
    chunk_size: int | None = None,
    memory_budget: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Hyvärinen's score-matching objective (Hyvärinen 2005; Song et al. 2019, Eq. 2).

    .. math::

        J(\theta) = \mathbb{E}_{p_\mathrm{data}(x)}\Big[\tfrac12 \|s_\theta(x)\|_2^2
            + \operatorname{tr}\big(\nabla_x s_\theta(x)\big)\Big],

    which equals the Fisher divergence
    :math:`\tfrac12\mathbb{E}\|s_\theta(x) - \nabla_x\log p_\mathrm{data}(x)\|^2` minus a
    constant that does not depend on :math:`\theta`.

    Args:
        score_fn: maps ``(batch, *event_shape)`` to a tensor of the same shape.
        x: data batch ``(batch, *event_shape)``.
        method: ``"auto"`` (default: ``"vmap"`` with the chunk chosen from the byte budget,
            the loop where that chunk is one row or :math:`d \le 2`), ``"loop"`` (one backward pass per
            dimension) or ``"vmap"`` (the passes batched, ``chunk_size`` at a time; faster than
            the loop only with a chunk that suits the machine, see :func:`jacobian_trace`).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        chunk_size: for ``"vmap"`` (and ``"auto"``), how many Jacobian rows to vectorise at
            once (``None``: chosen from the byte budget, see :func:`jacobian_trace`).
        memory_budget: optional cap in bytes on the estimated size of one batched pass.
        generator: not used (the objective is deterministic); accepted so that every loss
            can be called as ``f(score_fn, x, generator=...)``.
    """
    check_reduction(reduction)
    check_generator(generator)
    s, trace = jacobian_trace(score_fn, x, method=method, chunk_size=chunk_size,
                              memory_budget=memory_budget)
    per_sample = 0.5 * event_sum(s**2) + trace
    return reduce(per_sample, reduction)


def _projected_jacobian_backward(score_fn: ScoreFn, x: torch.Tensor, v: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Score and :math:`v^\top \nabla_x s(x) v` by double backpropagation (Song et al. 2019,
    Eq. 9): :math:`v^\top J v = v^\top \nabla_x (v^\top s(x))`, one extra backward pass."""
    x_ = as_grad_input(x)
    with torch.enable_grad():
        s = call_score(score_fn, x_)
        grad_vs = _grad(s, x_, v)  # = J^T v
    return s, event_sum(v * grad_vs)


def _projected_jacobian_forward(score_fn: ScoreFn, x: torch.Tensor, v: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Score and :math:`v^\top \nabla_x s(x) v` from one forward-mode pass: the JVP
    :math:`J v` comes with :math:`s(x)` from ``torch.func.jvp`` (no backward pass through
    the network until the loss itself is differentiated).

    Score functions that call ``torch.autograd.grad`` inside (e.g.
    :func:`~ssm_lib.models.score_from_energy`) cannot run under ``torch.func``; for them the
    JVP is taken with ``torch.autograd.forward_ad`` on an input that requires grad
    (forward-over-reverse). If that fails too, a ``ValueError`` says to use ``"backward"``.
    """
    def f(t: torch.Tensor) -> torch.Tensor:
        return call_score(score_fn, t)

    try:
        s, jv = torch.func.jvp(f, (x.detach(),), (v,))
    except (RuntimeError, NotImplementedError) as func_err:
        try:
            with torch.enable_grad(), fwad.dual_level():
                dual = fwad.make_dual(as_grad_input(x), v)
                s, jv = fwad.unpack_dual(f(dual))
        except (RuntimeError, NotImplementedError) as err:
            raise ValueError(f"method='forward' is not supported for this score_fn "
                             f"({type(err).__name__}: {err}); use method='backward'") from func_err
        if jv is None:
            raise ValueError("method='forward' is not supported for this score_fn (its output "
                             "does not carry a forward-mode tangent); use method='backward'"
                             ) from func_err
    return s, event_sum(v * jv)


def _projected_jacobian_fd(score_fn: ScoreFn, x: torch.Tensor, v: torch.Tensor, eps: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Central differences of the score along :math:`v` (Pang et al. 2020), one call of
    ``score_fn`` on the stacked batch :math:`[x + \varepsilon v;\ x - \varepsilon v]`:

    .. math::

        v^\top J v \approx \frac{v^\top\big(s(x + \varepsilon v) - s(x - \varepsilon v)\big)}
            {2\varepsilon}, \qquad
        s(x) \approx \bar s = \tfrac12\big(s(x + \varepsilon v) + s(x - \varepsilon v)\big).

    Returns ``(s_bar, vJv_fd)``; both are :math:`O(\varepsilon^2)` approximations (see
    :func:`sliced_score_matching` for the leading terms)."""
    n = x.shape[0]
    step = eps * v
    s2 = call_score(score_fn, torch.cat([x + step, x - step]))
    s_plus, s_minus = s2[:n], s2[n:]
    vjv = event_sum(v * (s_plus - s_minus)) / (2.0 * eps)
    return 0.5 * (s_plus + s_minus), vjv


def sliced_score_matching(
    score_fn: ScoreFn,
    x: torch.Tensor,
    *,
    n_projections: int = 1,
    projection: str = "rademacher",
    variance_reduction: bool = False,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    method: str = "auto",
    directions: torch.Tensor | None = None,
    fd_step: float | None = None,
) -> torch.Tensor:
    r"""Sliced score matching (Song et al. 2019, Eq. 8 and its estimator Eq. 10).

    .. math::

        \begin{aligned}
        L_\mathrm{SSM}(\theta) = \mathbb{E}_{p_v}\mathbb{E}_{p_\mathrm{data}(x)}\Big[
            &v^\top \nabla_x s_\theta(x)\, v\\
            &+ \tfrac12 \big(v^\top s_\theta(x)\big)^2\Big],
        \end{aligned}

    estimated with ``n_projections`` = :math:`M` independent directions per sample,

    .. math::

        \begin{aligned}
        \hat L = \frac1n\sum_i \frac1M\sum_m \Big[&v_{im}^\top \nabla_x s_\theta(x_i)\, v_{im}\\
            &+ \tfrac12 \big(v_{im}^\top s_\theta(x_i)\big)^2\Big].
        \end{aligned}

    With ``variance_reduction=True`` (SSM-VR) the
    second term is replaced by its exact expectation :math:`\tfrac12\|s_\theta(x)\|^2`, valid
    because :math:`\mathbb{E}[vv^\top] = I`. For every projection kind the objective equals
    :func:`exact_score_matching` in expectation over :math:`v`.

    How :math:`v^\top J v` is computed (``method``):

    * ``"backward"``: double backpropagation, :math:`v^\top\nabla_x(v^\top s(x))` (Eq. 9).
    * ``"forward"``: forward mode, :math:`J v` from one JVP pass (``torch.func.jvp``; for
      score functions that differentiate inside, ``torch.autograd.forward_ad``). Equal to
      ``"backward"`` to rounding.
    * ``"finite_difference"`` (Pang et al. 2020): with :math:`s_\pm = s(x \pm \varepsilon v)`,
      :math:`v^\top J v \approx v^\top(s_+ - s_-)/(2\varepsilon)` and, in the second term,
      :math:`s(x) \approx \bar s = \tfrac12(s_+ + s_-)`: two score evaluations, no second
      derivative. Taylor expansion along :math:`v` (with :math:`D^k s[v^k]` the
      :math:`k`-th directional derivative) gives the per-sample bias

      .. math::

          \varepsilon^2\Big[\tfrac16\, v^\top D^3 s(x)[v,v,v]
              + \tfrac12\,(v^\top s(x))\; v^\top D^2 s(x)[v,v]\Big] + O(\varepsilon^4)

      (with SSM-VR the second part is :math:`\tfrac12\, s(x)^\top D^2 s(x)[v,v]`), so the
      error shrinks fourfold when :math:`\varepsilon` halves, until rounding error
      :math:`\sim u\,|v^\top s|/\varepsilon` takes over (:math:`u` the unit roundoff). Note
      :math:`\|\varepsilon v\| = \varepsilon\sqrt d` for Rademacher :math:`v`.
    * ``"auto"`` (default, always exact): the model's own fast path when it offers one (see
      :mod:`ssm_lib.fast_path`; :class:`~ssm_lib.models.ScoreMLP` does), else ``"backward"``.
      Never finite differences.

    Any event shape works: ``x`` of shape ``(batch, *event_shape)`` is projected onto
    vectors :math:`v` of the same event shape (:math:`d` = the product of its sizes).

    Args:
        score_fn: maps ``(batch, *event_shape)`` to a tensor of the same shape.
        x: data batch ``(batch, *event_shape)``.
        n_projections: :math:`M \ge 1` directions per data point.
        projection: ``"rademacher"``, ``"gaussian"`` or ``"sphere"``.
        variance_reduction: use SSM-VR.
        generator: source of the projections, on the device of ``x`` (``None``: torch's
            global generator).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        method: ``"auto"``, ``"backward"``, ``"forward"`` or ``"finite_difference"``.
        directions: optional explicit projection vectors :math:`v` of shape
            ``(n_projections, *x.shape)``; when given, ``projection`` and ``generator`` are
            not used.
        fd_step: the step :math:`\varepsilon > 0` of ``"finite_difference"`` (``None``:
            :math:`\epsilon_{\mathrm{mach}}^{1/3}` with the machine epsilon of the dtype of ``x``
            (``torch.finfo(dtype).eps``), about ``4.9e-3`` in float32 and ``6.1e-6``
            in float64, which balances the :math:`\varepsilon^2` bias against rounding).
            Only used by ``"finite_difference"``.
    """
    check_batch(x)
    check_reduction(reduction)
    m = check_count(n_projections, "n_projections")
    check_choice(projection, PROJECTIONS, "projection")
    check_choice(method, SSM_METHODS, "method")
    variance_reduction = check_flag(variance_reduction, "variance_reduction")
    check_generator(generator, x.device)
    if fd_step is None:
        eps = torch.finfo(x.dtype).eps ** (1.0 / 3.0)
    else:
        eps = check_number(fd_step, "fd_step", positive=True)
    # the repeated batch, its directions, the score and its Jacobian-vector product
    check_fits_in_memory(m * x.numel(), x.dtype, x.device, "n_projections", copies=4)
    if directions is None:
        v = sample_projections(projection, (m, *x.shape), generator=generator, dtype=x.dtype,
                               device=x.device, event_dims=x.dim() - 1)
    else:
        if not isinstance(directions, torch.Tensor) or directions.shape != (m, *x.shape):
            got = tuple(directions.shape) if isinstance(directions, torch.Tensor) else directions
            raise ValueError(f"directions must have shape (n_projections, *x.shape) = "
                             f"{(m, *x.shape)}, got {got}")
        if directions.is_complex():
            raise ValueError(f"directions must hold real numbers, got a {directions.dtype} tensor")
        v = directions.detach().to(dtype=x.dtype, device=x.device)  # no gradient into them
    # a private, detached copy for every method: no gradient flows back into x, and a score
    # function that modifies its input cannot reach the caller's tensor
    xr = repeat_batch(x.detach(), m) if m > 1 else private_copy(x)
    vr = v.reshape(m * x.shape[0], *x.shape[1:])
    with _explained_call(score_fn, 1, _ONE_ARG, _ONE_ARG_HINT):
        fast = (model_fast_path(score_fn, xr, vr, projected=not variance_reduction)
                if method == "auto" else None)
        if fast is not None and fast[0] == "projected":
            _, vs, vjv = fast
        elif fast is not None:
            _, s, vjv = fast
        elif method == "forward":
            s, vjv = _projected_jacobian_forward(score_fn, xr, vr)
        elif method == "finite_difference":
            s, vjv = _projected_jacobian_fd(score_fn, xr, vr, eps)
        else:
            s, vjv = _projected_jacobian_backward(score_fn, xr, vr)
    if fast is not None and fast[0] == "projected":
        per_sample = vjv + 0.5 * vs**2
    else:
        if variance_reduction:
            second = 0.5 * event_sum(s**2)
        else:
            second = 0.5 * event_sum(vr * s) ** 2
        per_sample = vjv + second
    per_sample = per_sample.reshape(m, x.shape[0]).mean(0)
    return reduce(per_sample, reduction)


def perturb(x: torch.Tensor, sigma: float | torch.Tensor, *,
            generator: torch.Generator | None = None,
            noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Draw :math:`\tilde x = x + \sigma z` with :math:`z \sim \mathcal N(0, I)`.

    Returns ``(x_tilde, z, sigma)`` with ``sigma`` as a ``(batch,)`` tensor; ``x_tilde`` does
    not carry gradients back to ``x``. ``generator``: on the device of ``x`` (``None``:
    torch's global generator)."""
    check_batch(x)
    check_generator(generator, x.device)
    sig = check_noise_levels(sigma, x)
    x = x.detach()
    if noise is None:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    else:
        if not isinstance(noise, torch.Tensor) or noise.shape != x.shape:
            got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else noise
            raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {got}")
        z = noise.detach().to(dtype=x.dtype, device=x.device)
    return x + per_sample(sig, x) * z, z, sig


def denoising_score_matching(
    score_fn: ScoreFn,
    x: torch.Tensor,
    sigma: float | torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    sigma_weight_power: float = 0.0,
    noise: torch.Tensor | None = None,
    noise_conditional: bool = False,
) -> torch.Tensor:
    r"""Denoising score matching with a Gaussian kernel (Vincent 2011; Song et al. 2019, Eq. 4).

    With :math:`q_\sigma(\tilde x \mid x) = \mathcal N(\tilde x; x, \sigma^2 I)`,
    :math:`\nabla_{\tilde x}\log q_\sigma(\tilde x\mid x) = -(\tilde x - x)/\sigma^2`, so

    .. math::

        \ell(\theta) = \tfrac12\,\mathbb{E}_{x, z}\,\lambda(\sigma)\,\Big\|s_\theta(\tilde x)
            + \frac{\tilde x - x}{\sigma^2}\Big\|_2^2
            = \tfrac12\,\mathbb{E}_{x, z}\,\lambda(\sigma)\,\Big\|s_\theta(\tilde x)
            + \frac{z}{\sigma}\Big\|_2^2, \qquad \tilde x = x + \sigma z,

    whose minimiser is the score of the noisy marginal :math:`q_\sigma(\tilde x)`, not of
    :math:`p_\mathrm{data}`. The weight is :math:`\lambda(\sigma) = \sigma^{p}` with
    ``p = sigma_weight_power`` (default 0: no weighting; 2 gives the weighting of Song &
    Ermon 2019).

    Args:
        score_fn: maps ``(batch, *event_shape)`` to the same shape; with
            ``noise_conditional=True`` it is called as ``score_fn(x_tilde, sigma)`` with
            ``sigma`` of shape ``(batch,)``.
        x: clean data ``(batch, *event_shape)``.
        sigma: noise level, a positive number or a ``(batch,)`` tensor of them.
        generator: source of the noise :math:`z`, on the device of ``x`` (``None``: torch's
            global generator).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        sigma_weight_power: exponent :math:`p` of the weight :math:`\sigma^p`.
        noise: optional explicit :math:`z` (shape of ``x``).
        noise_conditional: pass ``sigma`` to ``score_fn``.
    """
    check_reduction(reduction)
    power = check_number(sigma_weight_power, "sigma_weight_power")
    noise_conditional = check_flag(noise_conditional, "noise_conditional")
    x_tilde, z, sig = perturb(x, sigma, generator=generator, noise=noise)
    if noise_conditional:
        with _explained_call(score_fn, 2, "score_fn(x_tilde, sigma) with sigma of shape (batch,)",
                             "noise_conditional=True passes sigma; a score without a noise-level "
                             "input (e.g. ScoreMLP) needs noise_conditional=False"):
            s = call_score(score_fn, x_tilde, sig)
    else:
        with _explained_call(score_fn, 1, _ONE_ARG, "a noise-conditional score s(x, sigma) needs "
                             "noise_conditional=True"):
            s = call_score(score_fn, x_tilde)
    values = 0.5 * event_sum((s + z / per_sample(sig, x)) ** 2)
    if power != 0.0:
        values = values * sig**power
    return reduce(values, reduction)


def negative_log_likelihood(model: Any, x: torch.Tensor, *, generator: torch.Generator | None = None,
                            reduction: str = "mean") -> torch.Tensor:
    r"""Maximum-likelihood objective :math:`-\log p_\theta(x)` for a model with an exact
    ``log_prob`` (e.g. :class:`~ssm_lib.flows.NICE`); ``generator`` is accepted for the common
    signature of the objectives and not used. Unlike the score-matching losses it takes the *model*, not a
    score function."""
    check_reduction(reduction)
    check_generator(generator)
    log_prob = getattr(model, "log_prob", None)
    if not callable(log_prob):
        raise ValueError(f"model must have a log_prob method, got {type(model).__name__}")
    # the model's parameters only: no gradient into x, as for every loss
    return reduce(-log_prob(x.detach()), reduction)


# --- the registry of objectives -----------------------------------------------------------

Objective = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class ObjectiveSpec:
    """One entry of :data:`OBJECTIVES`.

    Attributes:
        loss: the loss function, called as ``loss(score_fn, x, *, generator=..., **options)``.
        label: the name to print in tables and legends.
        options: keyword arguments fixed by this entry (e.g. ``variance_reduction=True``).
        required: keyword arguments the caller must give (e.g. ``sigma`` for DSM).
        takes: what the loss is called with: ``"score"``, a score function (``model.score``
            or the score network itself), or ``"model"``, the model itself, for objectives
            that need more than its score: the exact log-density for MLE, the layers of an
            energy network for CP and Approx BP. :func:`objective_input` picks it.
        alpha_system: the builder of the quadratic :math:`(G, b, c)` that the objective
            induces on DKEF's linear coefficients (see ``ssm_lib.dkef.alpha``), called as
            ``alpha_system(model, x, *, generator, sigma, create_graph)``; ``None``: no closed
            form (e.g. MLE).
    """

    loss: Objective
    label: str
    options: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    takes: str = "score"
    alpha_system: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    def __post_init__(self) -> None:
        if self.takes not in ("score", "model"):
            raise ValueError(f"takes must be 'score' or 'model', got {self.takes!r}")


def _dkef_system(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A reference to the builder ``name`` of ``ssm_lib.dkef.alpha``, imported at its first
    call (that module imports this one)."""
    def builder(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from .dkef import alpha

        return getattr(alpha, name)(*args, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    return builder


#: Every objective by name. The names, with the labels they print, are ``"exact"`` (Exact SM),
#: ``"ssm"`` (SSM), ``"ssm_vr"`` (SSM-VR), ``"dsm"`` (DSM; needs ``sigma``),
#: ``"dsm_sigma4"`` (DSM (σ⁴); needs ``sigma``), ``"cp"`` (CP), ``"approx_bp"`` (Approx BP)
#: and ``"mle"`` (MLE; needs a model with an exact ``log_prob``). Adding an objective is one
#: loss function with the signature ``f(score_fn, x, *, generator=None, reduction="mean",
#: ...)`` and one entry here (with, for DKEF's closed-form alpha, a builder of its quadratic
#: in ``ssm_lib.dkef.alpha``).
#:
#: :meta hide-value:
OBJECTIVES: dict[str, ObjectiveSpec] = {
    "exact": ObjectiveSpec(exact_score_matching, "Exact SM", alpha_system=_dkef_system("exact_system")),
    "ssm": ObjectiveSpec(sliced_score_matching, "SSM", {"variance_reduction": False},
                         alpha_system=_dkef_system("ssm_system")),
    "ssm_vr": ObjectiveSpec(sliced_score_matching, "SSM-VR", {"variance_reduction": True},
                            alpha_system=_dkef_system("ssm_vr_system")),
    "dsm": ObjectiveSpec(denoising_score_matching, "DSM", required=("sigma",),
                         alpha_system=_dkef_system("dsm_system")),
    # DSM weighted by sigma^4 (the scaling of Song et al.'s DKEF code): for DKEF's alpha the
    # ridge then acts as lambda / sigma^4 (see ssm_lib.dkef.alpha.dsm_sigma4_system)
    "dsm_sigma4": ObjectiveSpec(denoising_score_matching, "DSM (σ⁴)", {"sigma_weight_power": 4.0},
                                required=("sigma",), alpha_system=_dkef_system("dsm_sigma4_system")),
    "cp": ObjectiveSpec(curvature_propagation_score_matching, "CP", takes="model",
                        alpha_system=_dkef_system("cp_system")),
    "approx_bp": ObjectiveSpec(approx_backprop_score_matching, "Approx BP", takes="model",
                               alpha_system=_dkef_system("approx_bp_system")),
    "mle": ObjectiveSpec(negative_log_likelihood, "MLE", takes="model"),
}


def make_objective(name: str, **options: Any) -> Objective:
    """The objective ``name`` of :data:`OBJECTIVES` with ``options`` bound: a callable
    ``f(score_fn, x, *, generator=None) -> loss``.

    ``options`` are keyword arguments of the entry's loss function (for example
    ``make_objective("ssm", n_projections=4)`` or ``make_objective("dsm", sigma=0.1)``); they
    may not override the options the entry fixes, and the entry's required ones must be given.
    """
    if not isinstance(name, str) or name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {name!r}")
    spec = OBJECTIVES[name]
    check_options(name, options, f"make_objective({name!r})")
    missing = [key for key in spec.required if key not in options]
    if missing:
        raise ValueError(f"objective {name!r} needs {', '.join(missing)}: "
                         f"make_objective({name!r}, {missing[0]}=...)")
    fixed = sorted(set(options) & set(spec.options))
    if fixed:
        raise ValueError(f"objective {name!r} fixes {', '.join(fixed)}; choose another objective "
                         f"(e.g. 'ssm' or 'ssm_vr') instead of passing it")
    for key, value in options.items():
        check = _OPTION_CHECKS.get(key)
        if check is not None:
            check(value)
    return partial(spec.loss, **spec.options, **options)


def _check_scalar_sigma(sigma: object) -> None:
    # a tensor or a sequence of noise levels is checked against x when the loss is called
    if not isinstance(sigma, (torch.Tensor, list, tuple)):
        check_number(sigma, "sigma", positive=True)


# the option values that make_objective checks before any call (the others are checked by the
# loss when it is called, e.g. "method", whose choices differ between objectives)
_OPTION_CHECKS: dict[str, Callable[[Any], object]] = {
    "n_projections": lambda v: check_count(v, "n_projections"),
    "projection": lambda v: check_choice(v, PROJECTIONS, "projection"),
    "variance_reduction": lambda v: check_flag(v, "variance_reduction"),
    "chunk_size": lambda v: v is None or check_count(v, "chunk_size"),
    "memory_budget": lambda v: v is None or check_number(v, "memory_budget", positive=True),
    "reduction": check_reduction,
    "sigma": _check_scalar_sigma,
    "sigma_weight_power": lambda v: check_number(v, "sigma_weight_power"),
}


def objective_options(name: str) -> tuple[str, ...]:
    """The keyword options the objective ``name`` accepts: the keyword parameters of its loss
    function other than ``score_fn``/``model``, ``x`` and ``generator``."""
    if not isinstance(name, str) or name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {name!r}")
    params = list(inspect.signature(OBJECTIVES[name].loss).parameters.values())[2:]
    return tuple(p.name for p in params if p.name != "generator"
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def check_options(name: str, options: Mapping[str, Any], where: str, others: Sequence[str] = ()) -> None:
    """Reject, naming it, a keyword in ``options`` that the objective ``name`` does not accept
    (``others``: further names valid at ``where``, offered as corrections)."""
    known = objective_options(name)
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, [*known, *others], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; its options are {', '.join(known)}"
            raise ValueError(f"{where} got an unknown keyword argument {key!r} (not an option of "
                             f"objective {name!r}){hint}")


def objective_input(name: str, model: Any, score_fn: ScoreFn | None = None) -> Any:
    """What the objective ``name`` is called with for ``model``: the model itself when its
    entry takes a model (MLE, CP, Approx BP), else ``score_fn`` if given, else ``model.score``
    when the model has one (energy networks, flows), else the model (a score network)."""
    if not isinstance(name, str) or name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {name!r}")
    if OBJECTIVES[name].takes == "model":
        return model
    if score_fn is not None:
        return score_fn
    score = getattr(model, "score", None)
    return score if callable(score) else model
