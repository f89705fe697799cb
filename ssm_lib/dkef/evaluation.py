r"""DKEF's normalising constant by importance sampling, with a check that the estimate is one.

With :math:`N` draws :math:`y_j\sim q` from a proposal and weights
:math:`w_j = \tilde p(y_j)/q(y_j)`,

.. math::

    \log\hat Z = \log\frac1N\sum_{j=1}^N w_j, \qquad
    \mathrm{SE} = \frac{\hat\sigma_w}{\sqrt N\,\bar w}, \qquad
    \mathrm{ESS} = \frac{(\sum_j w_j)^2}{\sum_j w_j^2}
    = \frac{N}{1 + (N - 1)\,\mathrm{SE}^2},

(:math:`\hat\sigma_w` the sample standard deviation, :math:`N - 1` in its denominator, which
makes the last identity exact). The estimate can fail silently: when :math:`q` puts little mass
where :math:`\tilde p` has most of it, :math:`\mathbb E_q[w^2]/Z^2` is astronomically large
(for :math:`\tilde p = \mathcal N(0, I_D)` and :math:`q = \mathcal N(0, 4I_D)` it is
:math:`1.51^D`: :math:`3\times10^{11}` at :math:`D = 64`, :math:`10^{46}` at :math:`D = 256`),
the sum is carried by the few largest weights the :math:`N` draws happened to hit, and both
:math:`\log\hat Z` and the SE computed from the same weights are too small, with nothing in the
numbers to show it except the ESS. When one weight carries the whole sum, ESS = 1 and the SE
saturates: with one nonzero weight :math:`W`, :math:`\bar w = W/N` and
:math:`\hat\sigma_w = W/\sqrt N`, so SE = 1 exactly. An SE of "1.00" is that saturation value,
not a statement that :math:`\log Z` is known to :math:`\pm 1` nat.

:func:`estimate_log_normalizer` therefore returns a :class:`LogNormalizerEstimate` that carries
the ESS and says whether the estimate passed a stated threshold (``ok``, ``reliable(min_ess)``,
``describe()``). The default threshold :data:`DEFAULT_MIN_ESS` = 100 effective draws: below it
the sum is held by a handful of weights, and the SE (estimated from those same weights) has a
relative error of the order of :math:`1/\sqrt{\mathrm{ESS}}` or worse, so it cannot vouch for the
number; at ESS = 100 the SE is about 0.1 nats. Passing the threshold is necessary, not
sufficient: a heavy tail that no draw reached is invisible to every statistic of the draws.

Proposals: the default is the base density :math:`q_0` (or :math:`\mathcal N(0,\sigma_q^2 I)`),
which is right only while the model stays close to it. :class:`GaussianProposal.fit` fits a
Gaussian to rows (the training data, or samples of the model) and
:func:`matched_proposal` mixes such a fit with the base density,
:math:`q = (1-\epsilon)\,\mathcal N(\hat\mu, \hat\Sigma) + \epsilon\,q_0`: a *defensive* mixture
(Hesterberg 1995), whose weights are bounded by :math:`\tilde p/(\epsilon q_0)` and by
:math:`\tilde p/((1-\epsilon)\mathcal N(\hat\mu,\hat\Sigma))`, so that
:math:`\mathbb E_q[w^2]` is at most :math:`1/\epsilon` (respectively :math:`1/(1-\epsilon)`)
times that of the better of its two parts; the estimate stays unbiased for :math:`Z` whichever
part fits. :func:`log_normalizer` keeps the original interface and returns
``(log_z, standard_error)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from .._checks import (
    _same_device,
    check_batch,
    check_count,
    check_finite,
    check_fits_in_memory,
    check_flag,
    check_generator,
    check_number,
)
from .model import DKEF

__all__ = ["DEFAULT_MIN_ESS", "GaussianProposal", "LogNormalizerEstimate", "MixtureProposal", "Proposal",
           "estimate_log_normalizer", "log_normalizer", "matched_proposal", "rows_within_budget"]

#: The default working-memory budget of :func:`log_normalizer`, in bytes (256 MiB).
DEFAULT_MEMORY_BUDGET = 2**28

#: The default least effective sample size for an estimate of :math:`\log Z` to count as one
#: (see the module docstring for the reason).
DEFAULT_MIN_ESS = 100.0


class Proposal(Protocol):
    """What :func:`estimate_log_normalizer` needs of a proposal density: ``dim``,
    ``sample(n, generator=..., dtype=..., device=...)`` (``(n, dim)``) and ``log_prob(y)``
    (``(n,)``, normalised)."""

    dim: int

    def sample(self, n: int, *, generator: torch.Generator | None, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor: ...

    def log_prob(self, y: torch.Tensor) -> torch.Tensor: ...


def _check_dtype(dtype: object) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")


class GaussianProposal:
    r""":math:`\mathcal N(\mu, LL^\top)` with mean ``mean`` (``(d,)``) and lower-triangular
    ``scale_tril`` :math:`L` (``(d, d)``, positive diagonal). ``label`` names it in reports."""

    def __init__(self, mean: torch.Tensor, scale_tril: torch.Tensor, *, label: str = "Gaussian"):
        if not isinstance(mean, torch.Tensor) or mean.dim() != 1:
            raise ValueError(f"mean must be a 1-d tensor, got {getattr(mean, 'shape', type(mean).__name__)}")
        d = mean.shape[0]
        if not isinstance(scale_tril, torch.Tensor) or tuple(scale_tril.shape) != (d, d):
            raise ValueError(f"scale_tril must have shape ({d}, {d}), got "
                             f"{getattr(scale_tril, 'shape', type(scale_tril).__name__)}")
        if not mean.is_floating_point():
            raise ValueError(f"mean must have a floating dtype, got {mean.dtype}")
        if not scale_tril.is_floating_point():
            raise ValueError(f"scale_tril must have a floating dtype, got {scale_tril.dtype}")
        if scale_tril.dtype != mean.dtype or not _same_device(scale_tril.device, mean.device):
            raise ValueError(f"scale_tril ({scale_tril.dtype} on {scale_tril.device}) must have the dtype "
                             f"and device of mean ({mean.dtype} on {mean.device})")
        check_finite(mean, "mean")
        check_finite(scale_tril, "scale_tril")
        if not bool((scale_tril.diagonal() > 0).all()) or not torch.equal(scale_tril, scale_tril.tril()):
            raise ValueError("scale_tril must be lower-triangular with a positive diagonal")
        self.mean, self.scale_tril, self.dim, self.label = mean, scale_tril, d, str(label)
        #: the diagonal of L when L is diagonal (draws and densities elementwise), else None
        diagonal = torch.equal(scale_tril, torch.diag(scale_tril.diagonal()))
        self.diag = scale_tril.diagonal() if diagonal else None

    @classmethod
    def isotropic(cls, dim: int, std: float, *, dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> GaussianProposal:
        r""":math:`\mathcal N(0, \mathrm{std}^2 I_{\mathrm{dim}})`."""
        dim = check_count(dim, "dim")
        std = check_number(std, "std", positive=True)
        _check_dtype(dtype)
        return cls(torch.zeros(dim, dtype=dtype, device=device),
                   std * torch.eye(dim, dtype=dtype, device=device), label=f"N(0, {std**2:g} I)")

    @classmethod
    def fit(cls, x: torch.Tensor, *, diagonal: bool = True, scale: float = 1.0) -> GaussianProposal:
        r"""The Gaussian moment-matched to the rows of ``x`` (``(n, d)``, ``n >= 2``; ``n > d``
        for the full covariance): their mean and covariance (``diagonal``: the per-coordinate
        variances only), the covariance multiplied by ``scale**2``. The diagonal fit is the
        default because a full covariance estimated from
        :math:`n` rows has eigenvalues spread by about :math:`\pm\sqrt{d/n}` (±23 % for
        :math:`d = 256`, :math:`n = 4860`), and over :math:`d` directions those errors multiply
        :math:`\mathbb E_q[w^2]` by a factor exponential in :math:`d`; use ``diagonal=False`` when
        :math:`n \gg d` and the coordinates are correlated."""
        check_batch(x, "x")
        if x.dim() != 2 or x.shape[0] < 2:
            raise ValueError(f"x must have shape (n, d) with n >= 2, got {tuple(x.shape)}")
        check_finite(x, "x")
        diagonal = check_flag(diagonal, "diagonal")
        scale = check_number(scale, "scale", positive=True)
        x = x.detach()
        mean = x.mean(0)
        if diagonal:
            var = x.var(0)
            if not bool((var > 0).all()):
                raise ValueError("x has a constant column: its fitted variance is 0")
            tril = torch.diag(scale * var.sqrt())
        else:
            n, d = x.shape
            if n <= d:
                raise ValueError(f"x has {n} rows for {d} columns: a full covariance fitted to "
                                 f"n <= d rows is singular (rank at most n - 1); pass more rows "
                                 f"than columns, or use diagonal=True")
            cov = torch.cov(x.T).reshape(d, d)
            tril, info = torch.linalg.cholesky_ex(cov)
            if int(info) != 0:
                raise ValueError("the covariance of x is singular (collinear columns); use "
                                 "diagonal=True")
            tril = scale * tril
        kind = "diagonal" if diagonal else "full"
        return cls(mean, tril, label=f"Gaussian fit ({kind})")

    def sample(self, n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` draws, ``(n, d)``, in ``dtype`` on ``device`` (default: the proposal's); ``n`` a
        whole number >= 1, ``dtype`` a floating dtype."""
        n = check_count(n, "n")
        if dtype is not None:
            _check_dtype(dtype)
        dtype = dtype or self.mean.dtype
        device = device or self.mean.device
        check_generator(generator, device, "the draws")
        check_fits_in_memory(n * self.dim, dtype, torch.device(device), "n", copies=2)
        z = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        if self.diag is not None:
            return self.mean.to(dtype=dtype, device=device) + z * self.diag.to(dtype=dtype, device=device)
        return self.mean.to(dtype=dtype, device=device) + z @ self.scale_tril.to(dtype=dtype, device=device).T

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        r""":math:`\log\mathcal N(y;\mu, LL^\top)`, ``(n,)``; ``y`` a floating tensor ``(n, d)``."""
        check_batch(y, "y", event_shape=(self.dim,))
        diff = y - self.mean.to(dtype=y.dtype, device=y.device)
        if self.diag is not None:
            s = self.diag.to(dtype=y.dtype, device=y.device)
            if bool((s == s[0]).all()):  # isotropic: the base density's own formula
                var = float(s[0]) ** 2
                return -0.5 * (diff * diff).sum(-1) / var - 0.5 * self.dim * math.log(2 * math.pi * var)
            u = diff / s
            return -0.5 * (u * u).sum(-1) - s.log().sum() - 0.5 * self.dim * math.log(2 * math.pi)
        tril = self.scale_tril.to(dtype=y.dtype, device=y.device)
        u = torch.linalg.solve_triangular(tril, diff.T, upper=False)  # L u = y - mu
        return -0.5 * (u * u).sum(0) - tril.diagonal().log().sum() - 0.5 * self.dim * math.log(2 * math.pi)


class MixtureProposal:
    r""":math:`q = \sum_k \pi_k q_k`: ``components`` (proposals of one dimension) with
    probabilities ``weights`` (positive, summing to 1). Draws: a multinomial count per component,
    then that many draws of each (the order of the draws does not matter to importance
    sampling)."""

    def __init__(self, components: list[Proposal], weights: list[float], *, label: str = "mixture"):
        if len(components) < 1 or len(components) != len(weights):
            raise ValueError(f"components and weights must be non-empty and of one length, got "
                             f"{len(components)} and {len(weights)}")
        for c in components:
            if not all(hasattr(c, a) for a in ("sample", "log_prob", "dim")):
                raise ValueError("components must be proposals (with dim, sample() and log_prob()), got "
                                 f"{type(c).__name__}")
        dims = {c.dim for c in components}
        if len(dims) != 1:
            raise ValueError(f"components must share one dimension, got {sorted(dims)}")
        w = [check_number(v, "weights", positive=True) for v in weights]
        if abs(sum(w) - 1) > 1e-9:
            raise ValueError(f"weights must sum to 1, got {sum(w)!r}")
        self.components, self.weights, self.dim, self.label = list(components), w, dims.pop(), str(label)

    def sample(self, n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` draws (a whole number >= 1), ``(n, d)``."""
        n = check_count(n, "n")
        check_generator(generator)
        probs = torch.tensor(self.weights, dtype=torch.float64)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        pick = torch.multinomial(probs.to(gen_device), n, replacement=True, generator=generator)
        counts = torch.bincount(pick, minlength=len(self.weights)).tolist()
        parts = [c.sample(k, generator=generator, dtype=dtype, device=device)
                 for c, k in zip(self.components, counts, strict=True) if k > 0]
        return torch.cat(parts)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        terms = torch.stack([c.log_prob(y) + math.log(w) for c, w in zip(self.components, self.weights,
                                                                          strict=True)])
        return torch.logsumexp(terms, 0)


def matched_proposal(model: DKEF, x: torch.Tensor, *, base_weight: float = 0.5,
                     diagonal: bool = True) -> MixtureProposal:
    r"""A proposal matched to ``model``: the defensive mixture
    :math:`(1-\epsilon)\,\mathcal N(\hat\mu, \hat\Sigma) + \epsilon\,q_0` of the Gaussian fitted to
    the rows of ``x`` (:meth:`GaussianProposal.fit`; pass training rows, or samples of the model
    such as :func:`~ssm_lib.dkef.sample_langevin`'s) and the model's base density :math:`q_0`,
    with :math:`\epsilon` = ``base_weight`` in (0, 1). Its :math:`\mathbb E_q[w^2]` is at most
    :math:`1/\epsilon` times that of :math:`q_0` and :math:`1/(1-\epsilon)` times that of the fit
    (module docstring)."""
    if not isinstance(model, DKEF):
        raise ValueError(f"model must be a ssm_lib.dkef.DKEF, got {type(model).__name__}")
    eps = check_number(base_weight, "base_weight", positive=True)
    if eps >= 1:
        raise ValueError(f"base_weight must be in (0, 1), got {base_weight!r}")
    check_batch(x, "x")
    if x.dim() != 2 or x.shape[1] != model.dim:
        raise ValueError(f"x must have shape (n, {model.dim}), got {tuple(x.shape)}")
    fit = GaussianProposal.fit(x.to(model.alpha.dtype), diagonal=diagonal)
    base = GaussianProposal.isotropic(model.dim, model.base_std, dtype=model.alpha.dtype,
                                      device=model.alpha.device)
    return MixtureProposal([fit, base], [1 - eps, eps],
                           label=f"{1 - eps:g} {fit.label} + {eps:g} base")


class _JudgedByESS:
    """What an importance-sampling result shares: judged ``ok`` when its ESS reaches
    ``min_ess``; ``value`` is the point estimate (the field named by ``_point``) or NaN."""

    _point: ClassVar[str]
    ess: float
    min_ess: float
    standard_error: float

    def reliable(self, min_ess: float | None = None) -> bool:
        """Whether the estimate is finite and its ESS reaches ``min_ess`` (default: the result's
        own ``min_ess``)."""
        m = self.min_ess if min_ess is None else check_number(min_ess, "min_ess", positive=True)
        return math.isfinite(getattr(self, self._point)) and self.ess >= m

    @property
    def ok(self) -> bool:
        return self.reliable()

    @property
    def value(self) -> float:
        """The point estimate if the result is ``ok``, else NaN."""
        return getattr(self, self._point) if self.ok else math.nan

    def describe(self, digits: int = 2) -> str:
        """``"-1.23 ± 0.04 (ESS 5678)"``, or ``"failed (ESS 3.2 < 100)"`` when not ``ok``;
        ``digits`` decimals (a whole number >= 0)."""
        digits = check_count(digits, "digits", 0)
        if not self.ok:
            return f"failed (ESS {self.ess:.3g} < {self.min_ess:g})"
        return (f"{getattr(self, self._point):.{digits}f} ± {self.standard_error:.{digits}f} "
                f"(ESS {self.ess:.0f})")


@dataclass(frozen=True)
class LogNormalizerEstimate(_JudgedByESS):
    r"""The result of :func:`estimate_log_normalizer`: ``log_z`` (:math:`\log\hat Z`, nats),
    ``standard_error`` (delta method), ``ess`` (:math:`(\sum w)^2/\sum w^2`), ``n_samples``
    (:math:`N`), ``min_ess`` (the threshold it was judged by) and ``proposal`` (a label).

    ``ok`` is ``ess >= min_ess``; ``reliable(m)`` judges by another threshold. A caller must
    not show ``log_z`` as a number when ``ok`` is false: ``value`` is ``log_z`` when ``ok`` and
    NaN otherwise, and ``describe()`` writes ``"failed (ESS 3.2 < 100)"`` for it."""

    log_z: float
    standard_error: float
    ess: float
    n_samples: int
    min_ess: float = DEFAULT_MIN_ESS
    proposal: str = "base"

    _point: ClassVar[str] = "log_z"


def rows_within_budget(model: DKEF, memory_budget: int) -> int:
    r"""How many rows :meth:`DKEF.unnormalized_log_prob` may evaluate at once (without a graph)
    within ``memory_budget`` bytes: the budget over the bytes a row holds at the peak, taken as
    six ``M``-vectors (distances, kernel values and their weighted sum, with temporaries) plus
    eight feature vectors of width ``F`` and four inputs of dimension ``d``; at least 1.
    ``memory_budget``: a whole number of bytes >= 1 (``ValueError`` otherwise)."""
    memory_budget = check_count(memory_budget, "memory_budget")
    with torch.no_grad():
        width = max(phi(model.inducing[:1]).shape[-1] for phi in model.features)
    per_row = model.alpha.element_size() * (6 * model.n_inducing + 8 * width + 4 * model.dim)
    return max(1, memory_budget // per_row)


def _check_proposal_dtype(proposal: Proposal, p: torch.Tensor) -> None:
    """A :class:`GaussianProposal` (or a :class:`MixtureProposal` of them) must be in the dtype
    and on the device of the model's parameters ``p`` (other proposals: their draws are checked)."""
    if isinstance(proposal, MixtureProposal):
        for c in proposal.components:
            _check_proposal_dtype(c, p)
    elif isinstance(proposal, GaussianProposal):
        m = proposal.mean
        if m.dtype != p.dtype or not _same_device(m.device, p.device):
            raise ValueError(f"proposal is {m.dtype} on {m.device} but the model's parameters are {p.dtype} "
                             f"on {p.device}; build the proposal in the model's dtype and device (e.g. "
                             f"GaussianProposal.fit(x.to({p.dtype})) or matched_proposal(model, x))")


def _resolve_proposal(model: DKEF, proposal: Proposal | None, proposal_std: float | None) -> Proposal:
    if proposal is not None:
        if proposal_std is not None:
            raise ValueError("give proposal or proposal_std, not both")
        if not all(hasattr(proposal, a) for a in ("sample", "log_prob", "dim")):
            raise ValueError("proposal must have dim, sample() and log_prob(), got "
                             f"{type(proposal).__name__}")
        if proposal.dim != model.dim:
            raise ValueError(f"proposal has dimension {proposal.dim}, the model {model.dim}")
        _check_proposal_dtype(proposal, model.alpha)
        return proposal
    std = (model.base_std if proposal_std is None
           else check_number(proposal_std, "proposal_std", positive=True))
    label = "base" if proposal_std is None else f"N(0, {std**2:g} I)"
    q = GaussianProposal.isotropic(model.dim, std, dtype=model.alpha.dtype, device=model.alpha.device)
    q.label = label
    return q


def estimate_log_normalizer(model: DKEF, n_samples: int = 10**6, *, generator: torch.Generator | None = None,
                            chunk: int = 10**5, proposal: Proposal | None = None,
                            proposal_std: float | None = None, min_ess: float = DEFAULT_MIN_ESS,
                            memory_budget: int = DEFAULT_MEMORY_BUDGET) -> LogNormalizerEstimate:
    r"""Importance-sampling estimate of :math:`\log Z` with its standard error and effective
    sample size (module docstring), judged against ``min_ess``.

    ``proposal``: any object with ``dim``, ``sample`` and ``log_prob`` (:class:`GaussianProposal`,
    :class:`MixtureProposal`, :func:`matched_proposal`); default the isotropic
    :math:`\mathcal N(0, \sigma_q^2 I)` with :math:`\sigma_q` = ``proposal_std``, itself by default
    :math:`\sigma_0`, the base density (the weights are then :math:`e^{f(y)}`). The weights'
    variance is infinite when that isotropic :math:`\sigma_q \le \sigma_0/\sqrt 2` (and whenever
    the proposal's tails are lighter than the model's); the ESS then overstates the quality.

    :math:`\hat Z` is unbiased for :math:`Z`, :math:`\log\hat Z` biased low,
    :math:`\mathbb E\log\hat Z\approx\log Z - \mathrm{SE}^2/2`. The draws are made ``chunk`` rows
    at a time (the estimate for a given ``generator`` depends on ``chunk``, not on the budget);
    each block is evaluated in pieces of at most ``rows_within_budget(model, memory_budget)``
    rows."""
    if not isinstance(model, DKEF):
        raise ValueError(f"model must be a ssm_lib.dkef.DKEF, got {type(model).__name__}")
    n_samples = check_count(n_samples, "n_samples", 2)
    chunk = check_count(chunk, "chunk")
    min_ess = check_number(min_ess, "min_ess", positive=True)
    q = _resolve_proposal(model, proposal, proposal_std)
    rows = rows_within_budget(model, memory_budget)
    dtype, device = model.alpha.dtype, model.alpha.device
    # the log-weights of all the draws, together (float64), and one block of draws
    check_fits_in_memory(n_samples, torch.float64, device, "n_samples")
    check_fits_in_memory(min(chunk, n_samples) * model.dim, dtype, device, "chunk")
    logs = []
    with torch.no_grad():
        for start in range(0, n_samples, chunk):
            m = min(chunk, n_samples - start)
            y = q.sample(m, generator=generator, dtype=dtype, device=device)
            if (not isinstance(y, torch.Tensor) or tuple(y.shape) != (m, model.dim) or y.dtype != dtype
                    or not _same_device(y.device, device)):
                raise ValueError(f"proposal.sample({m}, dtype={dtype}, device={device}) must return a tensor "
                                 f"({m}, {model.dim}) of that dtype on that device, got "
                                 + (f"{tuple(y.shape)} {y.dtype} on {y.device}" if isinstance(y, torch.Tensor)
                                    else type(y).__name__))
            for piece in y.split(rows):
                logs.append(model.unnormalized_log_prob(piece) - q.log_prob(piece))
    lw = torch.cat(logs).double()
    if bool(torch.isnan(lw).any()):
        raise ValueError("the importance weights hold NaN (NaN model parameters?)")
    n = lw.numel()
    log_z = (torch.logsumexp(lw, 0) - math.log(n)).item()
    w = torch.exp(lw - lw.max())
    se = (w.std() / (math.sqrt(n) * w.mean())).item()
    ess = (w.sum() ** 2 / (w * w).sum()).item()
    return LogNormalizerEstimate(log_z=log_z, standard_error=se, ess=ess, n_samples=n, min_ess=min_ess,
                                 proposal=getattr(q, "label", type(q).__name__))


def log_normalizer(model: DKEF, n_samples: int = 10**6, *, generator: torch.Generator | None = None,
                   chunk: int = 10**5, proposal_std: float | None = None, proposal: Proposal | None = None,
                   memory_budget: int = DEFAULT_MEMORY_BUDGET) -> tuple[float, float]:
    r"""``(log_z, standard_error)`` of :func:`estimate_log_normalizer` (same arguments, same
    draws): the original interface. It carries no check: an estimate whose effective sample size
    is tiny comes back as an ordinary-looking number (an SE of exactly 1 is the saturation value of
    a single dominant weight, not a :math:`\pm 1` nat error). Prefer
    :func:`estimate_log_normalizer`, whose result says whether the estimate is one (``ok``).

    Returns ``(log_z, standard_error)`` (``n_samples`` at least 2, for the standard error)."""
    est = estimate_log_normalizer(model, n_samples, generator=generator, chunk=chunk, proposal=proposal,
                                  proposal_std=proposal_std, memory_budget=memory_budget)
    return est.log_z, est.standard_error
