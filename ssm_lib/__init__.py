"""ssm_lib: sliced score matching and its relatives, with analytic oracles.

Conventions, used by every module:

* An energy :math:`E` defines :math:`\\log p = -E - \\log Z`; its score is :math:`-\\nabla_x E`.
* A score function maps ``(batch, *event_shape)`` to the same shape.
* Projection vectors have :math:`\\mathbb E[vv^\\top] = I`.
* Langevin steps are :math:`x \\leftarrow x + \\varepsilon s(x) + \\sqrt{2\\varepsilon} z`.
* Losses sum over event dimensions and average over the batch unless told otherwise; any
  event shape works. They are differentiable in the score's parameters only (no gradient
  flows into ``x``), and non-finite values in ``x`` propagate into the loss.
* Randomness comes from an explicit ``torch.Generator`` (on the data's device) or seed;
  ``generator=None`` means torch's global generator. Inputs are never mutated.
* Bad input is a ``ValueError`` that names the argument. Objectives are listed by name in
  :data:`ssm_lib.losses.OBJECTIVES`.
"""

# ``plotting`` (matplotlib) is not imported here: ``from ssm_lib import plotting`` when needed.
from . import densities, devices, grids, losses, metrics, models, projections, sampling, training
from .densities import Banana, Gaussian, GaussianMixture, Ring
from .devices import make_generator, resolve_device
from .flows import NICE
from .losses import (
    OBJECTIVES,
    denoising_score_matching,
    exact_score_matching,
    make_objective,
    sliced_score_matching,
)
from .metrics import fisher_divergence
from .models import EnergyMLP, NoiseConditionalScoreMLP, ScoreMLP, score_from_energy
from .projections import sample_projections
from .sampling import annealed_langevin_dynamics, langevin_dynamics
from .training import TrainingDivergedError, fit

__version__ = "0.1.0"

__all__ = [
    "annealed_langevin_dynamics", "Banana", "denoising_score_matching", "densities", "devices",
    "EnergyMLP", "exact_score_matching", "fisher_divergence", "fit", "Gaussian", "GaussianMixture",
    "grids", "langevin_dynamics", "losses", "make_generator", "make_objective", "metrics", "models", "NICE",
    "NoiseConditionalScoreMLP", "OBJECTIVES", "projections", "resolve_device", "Ring",
    "sample_projections", "sampling", "score_from_energy", "ScoreMLP", "sliced_score_matching",
    "training", "TrainingDivergedError",
]
