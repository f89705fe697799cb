r"""Deep kernel exponential families (DKEF; Wenliang, Sutherland, Strathmann & Gretton 2019),
the density model of the paper's UCI and scalability experiments (Song et al. 2019, Sec. 5.1).

* ``ssm_lib.dkef.model``: the density (:class:`DKEF`) and its kernel layers;
* ``ssm_lib.dkef.alpha``: the coefficients :math:`\alpha` in closed form (the quadratic
  each objective induces, its solve, its accumulation over chunks);
* ``ssm_lib.dkef.training``: the loss under an objective and the two-stage training;
* ``ssm_lib.dkef.evaluation``: :math:`\log Z` by importance sampling, with its effective
  sample size and a verdict on it, and proposals matched to the model;
* ``ssm_lib.dkef.likelihood``: the held-out log-likelihood with its standard error and
  ESS in one call, and an approximate sampler (Langevin).

The objectives are those of :data:`ssm_lib.losses.OBJECTIVES` whose entry has an
``alpha_system`` (:func:`closed_form_objectives`).
"""

from .alpha import accumulate_system, alpha_system, closed_form_objectives, solve_alpha
from .evaluation import (
    DEFAULT_MIN_ESS,
    GaussianProposal,
    LogNormalizerEstimate,
    MixtureProposal,
    estimate_log_normalizer,
    log_normalizer,
    matched_proposal,
)
from .likelihood import (
    HeldoutLogLikelihood,
    effective_sample_size_from_se,
    heldout_log_likelihood,
    sample_langevin,
)
from .model import DKEF, DKEFWithAlpha, GaussianKernelLayer, WeightedSum, feature_network
from .training import DKEFHistory, dkef_loss, train_dkef, training_step

__all__ = [
    "DEFAULT_MIN_ESS", "DKEF", "DKEFHistory", "DKEFWithAlpha", "GaussianKernelLayer", "GaussianProposal",
    "HeldoutLogLikelihood", "LogNormalizerEstimate", "MixtureProposal", "WeightedSum",
    "accumulate_system", "alpha_system", "closed_form_objectives", "dkef_loss",
    "effective_sample_size_from_se", "estimate_log_normalizer", "feature_network", "heldout_log_likelihood",
    "log_normalizer", "matched_proposal",
    "sample_langevin", "solve_alpha", "train_dkef", "training_step",
]
