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
* Bad input is a ``ValueError`` that names the argument. A flag, or an estimator, cost or
  proposal of :mod:`ssm_lib.implicit_vae`, of the wrong type raises an error that is also a
  ``TypeError``; other arguments of the wrong type raise the ``ValueError`` only. Objectives
  are listed by name in
  :data:`ssm_lib.losses.OBJECTIVES`.

The names below are the public surface (``from ssm_lib import ScoreMLP, fit``); every public
submodule (``ssm_lib.losses``, ``ssm_lib.curvature``, ...) lists its own in ``__all__`` and stays
importable as ``ssm_lib.<module>``. The paper's data loaders, architectures and the book's
plotting helpers are not part of the library: they live beside the book (``paper_recipes``,
``booktools``).
"""

from .curvature import approx_backprop_score_matching, curvature_propagation_score_matching
from .densities import Banana, Density, Gaussian, GaussianMixture, Ring
from .devices import make_generator, resolve_device
from .dkef import DKEF
from .flows import NICE
from .images import LogitTransform
from .losses import (
    OBJECTIVES,
    denoising_score_matching,
    exact_score_matching,
    make_objective,
    sliced_score_matching,
)
from .metrics import fisher_divergence
from .models import EnergyMLP, NoiseConditionalScoreMLP, ScoreMLP, mlp, score_from_energy
from .persistence import load_model, register_model, save_model
from .projections import sample_projections
from .sampling import SamplerDivergedError, annealed_langevin_dynamics, langevin_dynamics
from .score_estimators import (
    ConditionalScoreMLP,
    NetworkScoreEstimator,
    ScoreEstimator,
    SpectralScoreEstimator,
    SteinScoreEstimator,
    entropy_surrogate,
)
from .training import DivergenceMonitor, TrainingDivergedError, fit, train_loop

__version__ = "0.1.0"

#: The public submodules: ``import ssm_lib`` makes each reachable as ``ssm_lib.<module>``
#: (the ones the names above do not load are imported on first use).
SUBMODULES = ("curvature", "densities", "devices", "dkef", "exact_chunking", "fast_path",
              "flow_training", "flows", "images", "implicit_vae", "losses", "metrics", "models",
              "persistence", "projections", "sampling", "score_estimators", "training")


def __getattr__(name: str):
    if name in SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ssm_lib' has no attribute {name!r}")

__all__ = [
    # objectives
    "OBJECTIVES", "approx_backprop_score_matching", "curvature_propagation_score_matching",
    "denoising_score_matching", "exact_score_matching", "make_objective", "sliced_score_matching",
    # models
    "DKEF", "EnergyMLP", "NICE", "NoiseConditionalScoreMLP", "ScoreMLP", "mlp", "score_from_energy",
    # densities
    "Banana", "Density", "Gaussian", "GaussianMixture", "Ring",
    # samplers
    "SamplerDivergedError", "annealed_langevin_dynamics", "langevin_dynamics",
    # score estimators for samples
    "ConditionalScoreMLP", "NetworkScoreEstimator", "ScoreEstimator", "SpectralScoreEstimator",
    "SteinScoreEstimator", "entropy_surrogate",
    # training, metrics, data transforms, devices, projections
    "DivergenceMonitor", "LogitTransform", "TrainingDivergedError", "fisher_divergence", "fit",
    "make_generator", "resolve_device", "sample_projections", "train_loop",
    # saving and loading models with their configuration
    "load_model", "register_model", "save_model",
]
