r"""DKEF's test log-likelihood in one call, and an approximate sampler.

:func:`heldout_log_likelihood` estimates the mean log-likelihood of test rows,

.. math::

    \bar\ell = \frac1n\sum_{i=1}^n \log p(x_i), \qquad
    \log p(x) = -E(x) - \log\hat Z,

with :math:`\log\hat Z` from :func:`ssm_lib.dkef.log_normalizer` (importance sampling), and
reports its standard error, combining the spread of the test rows and the error of
:math:`\log\hat Z` (independent: the proposal draws do not depend on the test rows),

.. math::

    \mathrm{se}(\bar\ell) = \sqrt{\frac{s_\ell^2}{n} + \mathrm{se}(\log\hat Z)^2},

with :math:`s_\ell` the sample standard deviation of :math:`-E(x_i)`, and the effective sample
size of the importance weights :math:`w_j = \tilde p(y_j)/q(y_j)`,
:math:`\mathrm{ESS} = (\sum_j w_j)^2/\sum_j w_j^2`. The ESS is computed from
:func:`~ssm_lib.dkef.log_normalizer`'s own draws through its standard error: with
:math:`\mathrm{se}(\log\hat Z) = \hat{\mathrm{sd}}(w)/(\sqrt N\,\bar w)` (sample standard
deviation, :math:`N - 1` in the denominator), the identity

.. math::

    \mathrm{ESS} = \frac{N}{1 + (N - 1)\,\mathrm{se}(\log\hat Z)^2}

holds exactly, so no second pass over the :math:`N` proposal draws is needed.

An estimate whose ESS is below a threshold is not an estimate (see
:mod:`ssm_lib.dkef.evaluation`): the result's ``ok`` (ESS at least ``min_ess``, default
``DEFAULT_MIN_ESS``) and ``reliable(min_ess)`` say so, ``value``
is NaN for a failed one and ``describe()`` writes ``"failed (ESS ...)"`` instead of a number.

:func:`sample_langevin` draws *approximate* samples by unadjusted Langevin dynamics on the
score :math:`-\nabla_x E`: :math:`x \leftarrow x - \varepsilon\nabla E(x) + \sqrt{2\varepsilon}z`,
started from the base density :math:`q_0`. Its samples are biased, by the step size (no
Metropolis correction; for a Gaussian of variance :math:`\sigma^2` the chain's stationary
variance is :math:`\sigma^2 / (1 - \varepsilon / (2\sigma^2))`) and by the finite number of
steps (modes the chain has not reached are missed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._checks import check_count, check_fits_in_memory, check_generator, check_number
from ..sampling import langevin_dynamics
from .evaluation import DEFAULT_MIN_ESS, Proposal, _JudgedByESS, estimate_log_normalizer
from .model import DKEF

__all__ = ["HeldoutLogLikelihood", "effective_sample_size_from_se", "heldout_log_likelihood",
           "sample_langevin"]


@dataclass(frozen=True)
class HeldoutLogLikelihood(_JudgedByESS):
    """The result of :func:`heldout_log_likelihood`: ``mean`` (the mean log-likelihood per test
    row, nats), ``standard_error`` (of ``mean``, rows and :math:`\\log\\hat Z` combined),
    ``rows_standard_error`` (the rows' part alone), ``log_z`` and ``log_z_standard_error``,
    ``ess`` (the importance weights' effective sample size), ``n_samples`` (:math:`N`),
    ``min_ess`` (the threshold) and ``proposal`` (a label). ``ok`` is ``ess >= min_ess``; when it is
    false, ``mean`` is not a log-likelihood and must not be shown as one (``value`` is then NaN,
    ``describe()`` says "failed")."""

    mean: float
    standard_error: float
    rows_standard_error: float
    log_z: float
    log_z_standard_error: float
    ess: float
    n_samples: int
    min_ess: float = DEFAULT_MIN_ESS
    proposal: str = "base"

    _point: ClassVar[str] = "mean"


def effective_sample_size_from_se(log_z_se: float, n_samples: int) -> float:
    r""":math:`(\sum w)^2/\sum w^2 = N / (1 + (N - 1)\,\mathrm{se}^2)` for the delta-method
    standard error :math:`\mathrm{se} = \hat{\mathrm{sd}}(w)/(\sqrt N\,\bar w)` of
    :math:`\log\hat Z` over :math:`N` weights (see the module docstring)."""
    n = check_count(n_samples, "n_samples", 2)
    se = check_number(log_z_se, "log_z_se")
    if se < 0:
        raise ValueError(f"log_z_se must be >= 0, got {se!r}")
    return n / (1.0 + (n - 1) * se * se)


def heldout_log_likelihood(model: DKEF, x: torch.Tensor, *, n_samples: int = 10**5,
                        generator: torch.Generator | None = None, chunk: int = 10**4,
                        proposal_std: float | None = None, proposal: Proposal | None = None,
                        min_ess: float = DEFAULT_MIN_ESS) -> HeldoutLogLikelihood:
    r"""The mean test log-likelihood of ``model`` on the rows of ``x`` (``(n, d)``, at least 2
    rows), with its standard error and the importance-sampling ESS (see the module docstring),
    judged against ``min_ess``. ``n_samples``, ``generator``, ``chunk``, ``proposal_std`` and
    ``proposal`` go to :func:`~ssm_lib.dkef.estimate_log_normalizer` (:math:`N` proposal
    draws). ``x`` is evaluated in chunks of ``chunk`` rows without gradients; it must be
    finite."""
    if not isinstance(model, DKEF):
        raise ValueError(f"model must be a ssm_lib.dkef.DKEF, got {type(model).__name__}")
    model._check_x(x)
    if x.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 rows (for the standard error), got {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite: it holds NaN or infinite values")
    n_samples = check_count(n_samples, "n_samples", 2)
    chunk = check_count(chunk, "chunk")
    est = estimate_log_normalizer(model, n_samples, generator=generator, chunk=chunk, proposal=proposal,
                                  proposal_std=proposal_std, min_ess=min_ess)
    log_z, log_z_se = est.log_z, est.standard_error
    with torch.no_grad():
        rows = torch.cat([-model(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)]).double()
    if not bool(torch.isfinite(rows).all()):
        raise ValueError("the model's log-density is not finite at some rows of x (NaN parameters?)")
    rows_se = (rows.std() / math.sqrt(rows.numel())).item()
    mean = rows.mean().item() - log_z
    return HeldoutLogLikelihood(mean=mean, standard_error=math.hypot(rows_se, log_z_se),
                                rows_standard_error=rows_se, log_z=log_z, log_z_standard_error=log_z_se,
                                ess=est.ess, n_samples=n_samples, min_ess=est.min_ess, proposal=est.proposal)


def sample_langevin(model: DKEF, n: int, *, n_steps: int = 1000, step_size: float = 1e-2,
                    generator: torch.Generator | None = None,
                    init: torch.Tensor | None = None) -> torch.Tensor:
    r"""``n`` **approximate** samples of ``model`` by unadjusted Langevin dynamics
    (:func:`ssm_lib.sampling.langevin_dynamics` with the score :math:`-\nabla_x E`):
    ``n_steps`` steps of size ``step_size`` :math:`\varepsilon` from ``init`` (``(n, d)``;
    default: draws from the base density :math:`\mathcal N(0, \sigma_0^2 I)`), noise and start
    from ``generator``. Biased by :math:`\varepsilon` and by the finite chain (see the module
    docstring); smaller steps and longer chains reduce the bias. Returns ``(n, d)``, detached."""
    if not isinstance(model, DKEF):
        raise ValueError(f"model must be a ssm_lib.dkef.DKEF, got {type(model).__name__}")
    n = check_count(n, "n")
    p = model.alpha
    check_generator(generator, p.device, "the model")
    check_fits_in_memory(n * model.dim, p.dtype, p.device, "n", copies=4)
    if init is None:
        init = model.base_std * torch.randn(n, model.dim, generator=generator, dtype=p.dtype, device=p.device)
    else:
        model._check_x(init, "init")
        if init.shape[0] != n:
            raise ValueError(f"init must have {n} rows (n), got {init.shape[0]}")
    return langevin_dynamics(lambda x: model.score(x), init, step_size=step_size, n_steps=n_steps,
                             generator=generator)
