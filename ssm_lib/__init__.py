"""ssm_lib: sliced score matching and its relatives, with analytic oracles.

Conventions, used by every module:

* An energy :math:`E` defines :math:`\\log p = -E - \\log Z`; its score is :math:`-\\nabla_x E`.
* A score function maps ``(batch, *event_shape)`` to the same shape.
* Projection vectors have :math:`\\mathbb E[vv^\\top] = I`.
* Langevin steps are :math:`x \\leftarrow x + \\varepsilon s(x) + \\sqrt{2\\varepsilon} z`.
* Losses sum over event dimensions and average over the batch unless told otherwise.
* Randomness comes from an explicit ``torch.Generator`` or seed; inputs are never mutated.
"""

from . import densities, devices, losses, metrics, models, plotting, projections, sampling, training
from .densities import Banana, Gaussian, GaussianMixture, Ring
from .devices import make_generator, resolve_device
from .flows import NICE
from .losses import denoising_score_matching, exact_score_matching, sliced_score_matching
from .metrics import fisher_divergence
from .models import EnergyMLP, NoiseConditionalScoreMLP, ScoreMLP, score_from_energy
from .projections import sample_projections
from .sampling import annealed_langevin_dynamics, langevin_dynamics
from .training import TrainingDivergedError, fit

__version__ = "0.1.0"

__all__ = [
    "Banana", "EnergyMLP", "Gaussian", "GaussianMixture", "NoiseConditionalScoreMLP", "Ring",
    "ScoreMLP", "TrainingDivergedError", "annealed_langevin_dynamics", "denoising_score_matching",
    "densities", "devices", "exact_score_matching", "fisher_divergence", "fit",
    "langevin_dynamics", "losses", "make_generator", "metrics", "models", "plotting",
    "projections", "resolve_device", "sample_projections", "sampling", "score_from_energy",
    "sliced_score_matching", "training",
    "NICE",
]
