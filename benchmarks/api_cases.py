"""Misuse and edge cases against ``ssm_lib``'s public API, tried as a new user would, and a
table of how each one ends (issue 21). A script, not a test: it prints the counts per outcome
and the list of cases that did not end in the expected way.

    python benchmarks/api_cases.py                 # every case
    python benchmarks/api_cases.py --only dkef     # the cases whose name starts with "dkef"
    python benchmarks/api_cases.py --json out.json # also write every case's outcome
    python benchmarks/api_cases.py --strict        # exit status 1 when a case is not ok/clear

Each case is a call and its expected behaviour, either

* an error: a ``ValueError`` or ``TypeError`` (or the types the case names) whose message
  names the argument at fault, or
* a documented result: the call returns and a check of the result holds.

It runs in this process (no subprocess), under a per-case time limit (``SIGALRM``; a single
long torch operation is only interrupted when it returns) and a memory guard (the address
space is capped a few GiB above its size at the start, so a blow-up fails to allocate instead
of swapping the machine). Each outcome is one of

``ok``          the documented result (an edge case handled as documented);
``clear``       the expected error type, naming the argument;
``misleading``  an error raised by the library whose type or message is wrong (it names no or
                another argument, or blames the training instead of the data);
``crash``       a raw crash: the traceback's last frame is inside torch, numpy or the standard
                library, or an internal error type (``ZeroDivisionError``, ``IndexError``, ...);
``silent``      bad input silently accepted, or a wrong result returned;
``missing``     the function does not exist in the ``ssm_lib`` tried (an older one);
``hang``        the time limit or the memory guard stopped it, or the peak resident set rose by
                more than the case allows (1 GiB by default; 512 MiB for the kernel-estimator and
                log Z cases, whose old cost was several GiB).

Cases are grouped by area (``objective/...``, ``fit/...``, ``dkef/...``, ``nice/...``,
``estimator/...``, ``sampler/...``, ``uci/...``, ``persist/...``, ``model/...``,
``density/...``) and tagged ``[item N]`` where they reproduce one of the issue's defect items.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import re
import resource
import signal
import sys
import sysconfig
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# after PYTHONPATH: an older ssm_lib (and tools/paper_recipes) put first there is the one tried
sys.path += [str(ROOT), str(ROOT / "tools")]

import ssm_lib  # noqa: E402
from ssm_lib import (  # noqa: E402
    NICE,
    OBJECTIVES,
    Banana,
    ConditionalScoreMLP,
    EnergyMLP,
    Gaussian,
    GaussianMixture,
    NetworkScoreEstimator,
    NoiseConditionalScoreMLP,
    Ring,
    ScoreMLP,
    SpectralScoreEstimator,
    SteinScoreEstimator,
    annealed_langevin_dynamics,
    entropy_surrogate,
    fisher_divergence,
    fit,
    langevin_dynamics,
    make_objective,
)
from ssm_lib.dkef import DKEF, GaussianProposal, dkef_loss, log_normalizer, train_dkef  # noqa: E402


class MissingFeature(Exception):
    """The ``ssm_lib`` being tried (e.g. an older one on ``PYTHONPATH``) lacks a function."""


def _missing(name: str) -> Callable[..., object]:
    def call(*args, **kwargs):
        raise MissingFeature(f"{name} does not exist in this ssm_lib")

    return call


# newer functions: an older ssm_lib without them still runs the rest of the table
try:
    from ssm_lib import load_model, save_model
except ImportError:
    load_model, save_model = _missing("load_model"), _missing("save_model")
try:
    from ssm_lib.dkef import heldout_log_likelihood, sample_langevin
except ImportError:
    heldout_log_likelihood = _missing("heldout_log_likelihood")
    sample_langevin = _missing("sample_langevin")
from ssm_lib.flow_training import evaluate_flow, flow_objective, train_with_validation  # noqa: E402
from ssm_lib.losses import objective_input  # noqa: E402
from ssm_lib.score_estimators import median_bandwidth  # noqa: E402

OUTCOMES = ("ok", "clear", "misleading", "crash", "silent", "hang", "missing")
PROJECT_DIRS = (
    str(Path(ssm_lib.__file__).parent),
    str(Path(importlib.util.find_spec("paper_recipes").origin).parent),
)
OUTSIDE_DIRS = tuple(
    {sysconfig.get_paths()["stdlib"], str(Path(torch.__file__).parent), str(Path(np.__file__).parent)}
)
INTERNAL_ERRORS = (
    ZeroDivisionError,
    IndexError,
    KeyError,
    AttributeError,
    UnboundLocalError,
    AssertionError,
    NameError,
    StopIteration,
)


class CaseTimeout(Exception):
    """The per-case time limit ran out."""


@dataclass
class Case:
    name: str
    call: Callable[[], object]
    arg: str | tuple[str, ...] | None = None  # expected: an error naming this argument
    check: Callable[[object], bool] | None = None  # expected: a result passing this check
    errors: tuple[type[BaseException], ...] = (ValueError, TypeError)
    limit: float = 30.0
    memory_mib: float = 1024.0  # allowed rise of the peak resident set during the case


CASES: list[Case] = []


def error(
    name: str,
    arg: str | tuple[str, ...],
    errors: tuple[type[BaseException], ...] = (ValueError, TypeError),
    limit: float = 30.0,
    memory_mib: float = 1024.0,
):
    """Register a case expected to raise ``errors`` naming ``arg``."""

    def register(fn: Callable[[], object]) -> Callable[[], object]:
        CASES.append(Case(name, fn, arg=arg, errors=errors, limit=limit, memory_mib=memory_mib))
        return fn

    return register


def works(
    name: str,
    check: Callable[[object], bool] = lambda r: True,
    limit: float = 30.0,
    memory_mib: float = 1024.0,
):
    """Register a case expected to return a result that passes ``check``."""

    def register(fn: Callable[[], object]) -> Callable[[], object]:
        CASES.append(Case(name, fn, check=check, limit=limit, memory_mib=memory_mib))
        return fn

    return register


# ---------------------------------------------------------------------------- inputs


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def data(n: int = 64, d: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=g(seed))


def with_nan(x: torch.Tensor, row: int = 3) -> torch.Tensor:
    x = x.clone()
    x[row, 0] = float("nan")
    return x


def score_mlp(d: int = 2) -> ScoreMLP:
    torch.manual_seed(0)
    return ScoreMLP(d, hidden=16, depth=2)


def small_nice(d: int = 2) -> NICE:
    torch.manual_seed(0)
    return NICE(d, hidden=16, depth=2, n_couplings=2)


def small_dkef(d: int = 2) -> DKEF:
    return DKEF(data(10, d, 1), n_kernels=2, hidden=8, generator=g(2))


def model_for(name: str, d: int = 2) -> nn.Module:
    """A model that the objective ``name`` takes (a flow for MLE, an energy for CP/Approx BP)."""
    takes = OBJECTIVES[name].takes
    if takes == "model":
        return small_nice(d)
    if takes == "energy":
        torch.manual_seed(0)
        return EnergyMLP(d, hidden=16, depth=2)
    return score_mlp(d)


def objective_call(name: str, x: torch.Tensor, **kw) -> torch.Tensor:
    options = {"sigma": 0.3} if "sigma" in OBJECTIVES[name].required else {}
    loss = make_objective(name, **options)
    return loss(objective_input(name, model_for(name, x.shape[-1] if x.dim() else 2)), x, **kw)


def finite_scalar(r: object) -> bool:
    return isinstance(r, torch.Tensor) and r.numel() == 1 and bool(torch.isfinite(r))


# ---------------------------------------------------------------------------- objectives

for _name in OBJECTIVES:
    error(f"objective/{_name}: unknown option to make_objective", "bogus_option")(
        lambda n=_name: make_objective(n, bogus_option=1, **({"sigma": 0.3} if n == "dsm" else {}))
    )
    error(f"objective/{_name}: 1-D x", "x")(lambda n=_name: objective_call(n, torch.randn(5)))
    error(f"objective/{_name}: float64 x for a float32 model [item 4]", ("x", "dtype"))(
        lambda n=_name: objective_call(n, data().double())
    )
    error(f"objective/{_name}: empty batch", "x")(lambda n=_name: objective_call(n, data(0)))
    works(
        f"objective/{_name}: NaN in x propagates (documented)",
        lambda r: isinstance(r, torch.Tensor) and bool(torch.isnan(r)),
    )(lambda n=_name: objective_call(n, with_nan(data())))
    error(f"objective/{_name}: reduction='bogus'", "reduction")(
        lambda n=_name: objective_call(n, data(), reduction="bogus")
    )
    error(f"objective/{_name}: generator=5", "generator")(
        lambda n=_name: objective_call(n, data(), generator=5)
    )
    works(f"objective/{_name}: a finite loss on good data", finite_scalar)(
        lambda n=_name: objective_call(n, data(), generator=g())
    )

error("objective: unknown name", ("name", "objective"))(lambda: make_objective("ssm2"))
error("objective: ssm n_projection typo [item 5]", "n_projection")(
    lambda: make_objective("ssm", n_projection=4)
)
error("objective: ssm n_projections=0", "n_projections")(lambda: make_objective("ssm", n_projections=0))
works("objective: ssm n_projections=np.int64(2) [item 10]", finite_scalar)(
    lambda: make_objective("ssm", n_projections=np.int64(2))(score_mlp(), data(), generator=g())
)
error("objective: ssm projection='bogus'", "projection")(lambda: make_objective("ssm", projection="bogus"))
error("objective: ssm n_projections that cannot fit [item 7]", "n_projections", limit=20)(
    lambda: make_objective("ssm", n_projections=10**9)(score_mlp(), data(), generator=g())
)
error("objective: dsm without sigma", "sigma")(lambda: make_objective("dsm"))
error("objective: dsm sigma=0", "sigma")(lambda: make_objective("dsm", sigma=0.0)(score_mlp(), data()))
error("objective: dsm sigma=-1", "sigma")(lambda: make_objective("dsm", sigma=-1.0)(score_mlp(), data()))
error("objective: dsm sigma=nan", "sigma")(
    lambda: make_objective("dsm", sigma=float("nan"))(score_mlp(), data())
)
error("objective: dsm sigma of the wrong shape", "sigma")(
    lambda: make_objective("dsm", sigma=torch.ones(5))(score_mlp(), data())
)
works("objective: dsm sigma=np.float32(0.5) [item 10]", finite_scalar)(
    lambda: make_objective("dsm", sigma=np.float32(0.5))(score_mlp(), data(), generator=g())
)
error("objective: exact chunk_size=0", "chunk_size")(
    lambda: make_objective("exact", chunk_size=0)(score_mlp(), data())
)
error("objective: exact on a batch whose 8192 backward graphs cannot fit in memory", "x", limit=60)(
    # 8192 passes of over 128 MiB each: about a TiB, refused before the first backward pass
    lambda: make_objective("exact", method="vmap", chunk_size=64)(
        ScoreMLP(8192, hidden=256, depth=2), torch.randn(2048, 8192, generator=g())
    )
)
error("objective: exact memory_budget=-1", "memory_budget")(
    lambda: make_objective("exact", memory_budget=-1)(score_mlp(), data())
)
error("objective: exact method='bogus'", "method")(
    lambda: make_objective("exact", method="bogus")(score_mlp(), data())
)
error("objective: score_fn not callable", "score_fn")(lambda: make_objective("ssm")(3, data()))
error("objective: score_fn of the wrong output shape", "score_fn")(
    lambda: make_objective("ssm")(lambda x: x[:, :1], data())
)
error("objective: cp on a score model (needs an energy)", ("energy", "cp"))(
    lambda: make_objective("cp")(score_mlp(), data())
)
error("objective: mle on a model without log_prob", ("log_prob", "model"))(
    lambda: make_objective("mle")(score_mlp(), data())
)


def _fisher_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return float(fisher_divergence(score_mlp(), lambda x: -x, data()))


works("objective: float(fisher_divergence(...)) without a warning [item 9]", lambda r: math.isfinite(r))(
    _fisher_quiet
)
error("objective: fisher_divergence with a 1-D x", "x")(
    lambda: fisher_divergence(score_mlp(), lambda x: -x, torch.randn(4))
)

# ---------------------------------------------------------------------------- fit

FIT = dict(n_steps=2, batch_size=16, progress=False, seed=0)


def fit_call(**kw):
    args = {**FIT, **kw}
    model = args.pop("model", None) or score_mlp()
    x = args.pop("data", None)
    x = data() if x is None else x
    objective = args.pop("objective", "ssm")
    return fit(model, x, objective, **args)


error("fit: batchsize= typo [item 5]", "batchsize")(lambda: fit_call(batchsize=8))
error("fit: learning_rate= typo [item 5]", "learning_rate")(lambda: fit_call(learning_rate=0.1))
error("fit: n_steps=0", "n_steps")(lambda: fit_call(n_steps=0))
error("fit: n_steps=-1", "n_steps")(lambda: fit_call(n_steps=-1))
works("fit: n_steps=np.int64(2) [item 10]", lambda h: len(h.losses) == 2)(
    lambda: fit_call(n_steps=np.int64(2))
)
error("fit: batch_size=0", "batch_size")(lambda: fit_call(batch_size=0))
error("fit: lr=0", "lr")(lambda: fit_call(lr=0.0))
error("fit: lr=nan", "lr")(lambda: fit_call(lr=float("nan")))
error("fit: NaN in data [item 3]", "data")(lambda: fit_call(data=with_nan(data())))
error("fit: float64 data for a float32 model [item 4]", ("data", "dtype", "x"))(
    lambda: fit_call(data=data().double())
)
error("fit: empty data", "data")(lambda: fit_call(data=data(0)))
error("fit: 1-D data", "data")(lambda: fit_call(data=torch.randn(50)))
error("fit: data of the wrong width for the model", ("data", "x", "dim"))(lambda: fit_call(data=data(d=3)))
error("fit: unknown objective", "objective")(lambda: fit_call(objective="ssm2"))
error("fit: options with a callable objective", "sigma")(
    lambda: fit_call(objective=lambda s, x, generator=None: (s(x) ** 2).sum(), sigma=0.1)
)
error("fit: seed=-1", "seed")(lambda: fit_call(seed=-1))
error("fit: seed=1.5", "seed")(lambda: fit_call(seed=1.5))
works("fit: seed=np.int64(3) recorded [item 10]", lambda h: h.seed == 3)(lambda: fit_call(seed=np.int64(3)))


def _two_default_seeds():
    a, b = score_mlp(), score_mlp()  # (each resets torch's global seed: build both first)
    return fit_call(model=a, seed=None), fit_call(model=b, seed=None)


works(
    "fit: the seed default differs between calls and is recorded",
    lambda hs: hs[0].seed is not None and hs[0].seed != hs[1].seed,
)(_two_default_seeds)
error("fit: generator='x'", "generator")(lambda: fit_call(seed=None, generator="x"))
error("fit: seed and generator both", ("seed", "generator"))(lambda: fit_call(generator=g()))
error("fit: NaN in val_data [item 1]", "val_data")(lambda: fit_call(val_data=with_nan(data(20))))
error("fit: patience without val_data", ("patience", "val_data"))(lambda: fit_call(patience=3))
error("fit: validate_every=0", "validate_every")(lambda: fit_call(val_data=data(20), validate_every=0))
error("fit: patience=-1", "patience")(lambda: fit_call(val_data=data(20), patience=-1))
error("fit: device='nonsense'", "device")(lambda: fit_call(device="nonsense"))
error("fit: optimizer='adam'", "optimizer")(lambda: fit_call(optimizer="adam"))
error("fit: lr_schedule=3", "lr_schedule")(lambda: fit_call(lr_schedule=3))
error("fit: model not a module", "model")(lambda: fit_call(model=lambda x: -x))
error("fit: progress='yes'", "progress")(lambda: fit_call(progress="yes"))
error("fit: divergence_factor=0.5", "divergence_factor")(lambda: fit_call(divergence_factor=0.5))
error("fit: sampler returning the wrong shape", "data")(lambda: fit_call(data=lambda n, gen: torch.randn(n)))


def _fit_stderr_quiet():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        fit(score_mlp(), data(), "ssm", n_steps=20, batch_size=16, seed=0)  # default progress
    return err.getvalue()


works("fit: nothing written when stderr is not a terminal [item 9]", lambda out: out == "")(_fit_stderr_quiet)

error("fit: device that is not on this machine [audit]", "device")(
    lambda: fit_call(device="meta")
)
error("fit: batch_size beyond the machine's memory [audit]", "batch_size")(
    lambda: fit_call(batch_size=10**13)
)
error("fit: seed=2**64 [audit]", "seed")(lambda: fit_call(seed=2**64))

# ---------------------------------------------------------------------------- DKEF

DK = dict(steps=2, batch_size=10, n_alpha=20, lambda_steps=0, progress=False)


def dkef_call(objective: str = "ssm", **kw):
    args = {**DK, **kw}
    if "seed" not in args and "generator" not in args:
        args["generator"] = g()
    model = args.pop("model", None) or small_dkef()
    train = args.pop("train", None)
    val = args.pop("val", None)
    return train_dkef(
        model,
        data(60) if train is None else train,
        data(30, seed=5) if val is None else val,
        objective,
        **args,
    )


error("dkef: 1-D inducing points", "inducing")(lambda: DKEF(torch.randn(5)))
error("dkef: NaN inducing points [item 6]", "inducing")(lambda: DKEF(with_nan(data(10))))
error("dkef: empty inducing points", "inducing")(lambda: DKEF(data(0)))
error("dkef: unknown keyword n_kernel=", "n_kernel")(lambda: DKEF(data(10), n_kernel=2))
error("dkef: log_normalizer unknown keyword n_sample=", "n_sample")(
    lambda: log_normalizer(small_dkef(), n_sample=9)
)
error("dkef: n_kernels=0", "n_kernels")(lambda: DKEF(data(10), n_kernels=0))
error("dkef: hidden=0", "hidden")(lambda: DKEF(data(10), hidden=0))
error("dkef: base_std=0", "base_std")(lambda: DKEF(data(10), base_std=0.0))
error("dkef: base_std=-1", "base_std")(lambda: DKEF(data(10), base_std=-1.0))
error("dkef: log10_bandwidths of the wrong length", "log10_bandwidths")(
    lambda: DKEF(data(10), n_kernels=3, log10_bandwidths=(0.0, 1.0))
)
works("dkef: hidden=np.int64(8) [item 10]", lambda m: isinstance(m, DKEF))(
    lambda: DKEF(data(10), hidden=np.int64(8), n_kernels=1)
)
error("dkef: score of float64 x [item 4]", ("x", "dtype"))(lambda: small_dkef().score(data().double()))
error("dkef: score of x of the wrong width", "x")(lambda: small_dkef().score(data(d=3)))
error("dkef: train_dkef val_every=0 [item 6]", "val_every")(lambda: dkef_call(val_every=0))
error("dkef: train_dkef n_alpha=0 [item 6]", "n_alpha")(lambda: dkef_call(n_alpha=0))
error("dkef: train_dkef lambda_steps=-1 [item 6]", "lambda_steps")(lambda: dkef_call(lambda_steps=-1))
error("dkef: train_dkef patience=-1 [item 6]", "patience")(lambda: dkef_call(patience=-1))
error("dkef: train_dkef steps=0", "steps")(lambda: dkef_call(steps=0))
error("dkef: train_dkef batch_size=1", "batch_size")(lambda: dkef_call(batch_size=1))
error("dkef: train_dkef dsm without sigma", "sigma")(lambda: dkef_call("dsm"))
error("dkef: train_dkef dsm sigma=-1", "sigma")(lambda: dkef_call("dsm", sigma=-1.0))
error("dkef: train_dkef objective without a closed-form alpha", "objective")(lambda: dkef_call("mle"))
error("dkef: train_dkef NaN in train [item 3]", "train")(lambda: dkef_call(train=with_nan(data(60))))
error("dkef: train_dkef NaN in val [item 1]", "val")(lambda: dkef_call(val=with_nan(data(30, seed=5))))
error("dkef: train_dkef float64 train [item 4]", ("train", "dtype"))(
    lambda: dkef_call(train=data(60).double())
)
error("dkef: train_dkef empty val", "val")(lambda: dkef_call(val=data(0)))
error("dkef: train_dkef seed=-1", "seed")(lambda: dkef_call(seed=-1))
error("dkef: train_dkef optimizer='adam'", "optimizer")(lambda: dkef_call(optimizer="adam"))
error("dkef: train_dkef lr_schedule=3", "lr_schedule")(lambda: dkef_call(lr_schedule=3))
error("dkef: train_dkef device='nonsense'", "device")(lambda: dkef_call(device="nonsense"))
error("dkef: train_dkef resume={}", "resume")(lambda: dkef_call(resume={}))
error("dkef: train_dkef unknown keyword", "val_freq")(lambda: dkef_call(val_freq=5))
works("dkef: train_dkef steps=np.int64(2) [item 10]", lambda h: len(h.train) == 2)(
    lambda: dkef_call(steps=np.int64(2))
)
works("dkef: train_dkef records its default seed", lambda h: isinstance(h.seed, int))(
    lambda: dkef_call(seed=None)
)
error("dkef: log_normalizer(model, 1) [item 6]", "n_samples")(lambda: log_normalizer(small_dkef(), 1))
error("dkef: log_normalizer n_samples=0", "n_samples")(lambda: log_normalizer(small_dkef(), 0))
error("dkef: log_normalizer chunk=0 [item 6]", "chunk")(lambda: log_normalizer(small_dkef(), 100, chunk=0))
error("dkef: log_normalizer proposal_std=0", "proposal_std")(
    lambda: log_normalizer(small_dkef(), 100, proposal_std=0.0)
)
error("dkef: GaussianProposal.fit(diagonal=False) with n <= d rows", "x")(
    lambda: GaussianProposal.fit(torch.randn(2, 3, generator=g(), dtype=torch.float64), diagonal=False)
)
error("dkef: log_normalizer memory_budget=0", "memory_budget")(
    lambda: log_normalizer(small_dkef(), 100, memory_budget=0)
)
works("dkef: log_normalizer n_samples=np.int64(1000) [item 10]", lambda r: all(math.isfinite(v) for v in r))(
    lambda: log_normalizer(small_dkef(), np.int64(1000), generator=g())
)
works(
    "dkef: log_normalizer with its default 10^6 samples in time and memory [item 7]",
    lambda r: all(math.isfinite(v) for v in r),
    limit=60,
    memory_mib=512,
)(lambda: log_normalizer(small_dkef(), generator=g()))
error("dkef: heldout_log_likelihood of an empty x", "x")(
    lambda: heldout_log_likelihood(small_dkef(), data(0))
)
error("dkef: heldout_log_likelihood NaN x", "x")(
    lambda: heldout_log_likelihood(small_dkef(), with_nan(data()))
)
error("dkef: heldout_log_likelihood n_samples=1", "n_samples")(
    lambda: heldout_log_likelihood(small_dkef(), data(), n_samples=1)
)
error("dkef: heldout_log_likelihood chunk=0", "chunk")(
    lambda: heldout_log_likelihood(small_dkef(), data(), n_samples=100, chunk=0)
)
works(
    "dkef: heldout_log_likelihood gives a mean, an SE and an ESS",
    lambda r: math.isfinite(r.mean) and r.standard_error > 0 and 0 < r.ess <= r.n_samples,
)(lambda: heldout_log_likelihood(small_dkef(), data(), n_samples=2000, generator=g()))
error("dkef: sample_langevin n=0", "n")(lambda: sample_langevin(small_dkef(), 0))
error("dkef: sample_langevin step_size=0", "step_size")(
    lambda: sample_langevin(small_dkef(), 5, step_size=0.0)
)
error("dkef: sample_langevin n_steps=-1", "n_steps")(lambda: sample_langevin(small_dkef(), 5, n_steps=-1))
error("dkef: sample_langevin init of the wrong shape", "init")(
    lambda: sample_langevin(small_dkef(), 5, n_steps=2, init=data(4, 3))
)
error("dkef: dkef_loss with an unknown objective", "objective")(
    lambda: dkef_loss(small_dkef(), data(), "ssm2")
)


try:  # the audit's cases below (an older ssm_lib without them still runs the rest)
    from ssm_lib.dkef import (
        MixtureProposal,
        alpha_system,
        estimate_log_normalizer,
        solve_alpha,
        training_step,
    )
except ImportError:
    MixtureProposal, alpha_system = _missing("MixtureProposal"), _missing("alpha_system")
    estimate_log_normalizer = _missing("estimate_log_normalizer")
    solve_alpha, training_step = _missing("solve_alpha"), _missing("training_step")


def dkef_step(**kw):
    model = small_dkef()
    args = {"batch": data(10), "objective": "ssm", "optimizer": torch.optim.SGD(model.parameters(), lr=1e-2),
            **kw}
    return training_step(model, args.pop("batch"), args.pop("objective"), args.pop("optimizer"), **args)


error("dkef: training_step clip=-1 [audit]", "clip")(lambda: dkef_step(clip=-1.0))
error("dkef: training_step clip=nan [audit]", "clip")(lambda: dkef_step(clip=float("nan")))
error("dkef: training_step batch of one row [audit]", "batch")(lambda: dkef_step(batch=data(1)))
error("dkef: training_step optimizer=None [audit]", "optimizer")(lambda: dkef_step(optimizer=None))
error("dkef: training_step sigma for ssm [audit]", "sigma")(lambda: dkef_step(sigma=0.5))
error("dkef: log10_lambda=nan [audit]", "log10_lambda")(lambda: DKEF(data(10), log10_lambda=float("nan")))
error("dkef: log10_lambda='a' [audit]", "log10_lambda")(lambda: DKEF(data(10), log10_lambda="a"))
error("dkef: log10_bandwidths=(nan,) [audit]", "log10_bandwidths")(
    lambda: DKEF(data(10), n_kernels=1, log10_bandwidths=(float("nan"),))
)
error("dkef: log10_bandwidths=0.5 [audit]", "log10_bandwidths")(lambda: DKEF(data(10), log10_bandwidths=0.5))
error("dkef: train_inducing='no' [audit]", "train_inducing")(lambda: DKEF(data(10), train_inducing="no"))
error("dkef: skip=0 [audit]", "skip")(lambda: DKEF(data(10), skip=0))
error("dkef: DKEF generator=1 [audit]", "generator")(lambda: DKEF(data(10), generator=1))
error("dkef: fit_alpha NaN x [audit]", "x")(lambda: small_dkef().fit_alpha(with_nan(data()), "exact"))
error("dkef: fit_alpha empty x [audit]", "x")(lambda: small_dkef().fit_alpha(data(0), "exact"))
error("dkef: fit_alpha x a list [audit]", "x")(lambda: small_dkef().fit_alpha([[0.0, 0.0]], "exact"))
error("dkef: train_dkef device='meta' [audit]", "device")(lambda: dkef_call(device="meta"))
if not torch.cuda.is_available():
    error("dkef: train_dkef device='cuda' without CUDA [audit]", "device")(lambda: dkef_call(device="cuda"))
error("dkef: alpha_system dsm generator=3 [audit]", "generator")(
    lambda: small_dkef().alpha_system(data(), "dsm", sigma=0.1, generator=3)
)
error("dkef: alpha_system cp generator=3 [audit]", "generator")(
    lambda: small_dkef().alpha_system(data(), "cp", generator=3)
)
error("dkef: score of a list [audit]", "x")(lambda: small_dkef().score([[0.0, 0.0]]))
error("dkef: score of int x [audit]", "x")(lambda: small_dkef().score(data().int()))
error("dkef: unnormalized_log_prob alpha of the wrong shape [audit]", "alpha")(
    lambda: small_dkef().unnormalized_log_prob(data(), torch.zeros(3))
)
error("dkef: dkef_loss alpha of the wrong shape [audit]", "alpha")(
    lambda: dkef_loss(small_dkef(), data(), "ssm", torch.zeros(3))
)
error("dkef: kernel_matrix x of the wrong width [audit]", "x")(lambda: small_dkef().kernel_matrix(data(4, 3)))
error("dkef: kernel_grads x of the wrong width [audit]", "x")(lambda: small_dkef().kernel_grads(data(4, 3)))
error("dkef: solve_alpha b of the wrong length [audit]", "b")(
    lambda: solve_alpha(torch.eye(3), torch.zeros(5), 0.1)
)
error("dkef: solve_alpha ridge=nan [audit]", "ridge")(
    lambda: solve_alpha(torch.eye(2), torch.ones(2), float("nan"))
)
error("dkef: alpha_system model=3 [audit]", "model")(lambda: alpha_system(3, data(), "exact"))
error("dkef: dkef_loss sigma for ssm [audit]", "sigma")(
    lambda: dkef_loss(small_dkef(), data(), "ssm", sigma=0.1)
)
error("dkef: dkef_loss exact_method for ssm [audit]", "exact_method")(
    lambda: dkef_loss(small_dkef(), data(), "ssm", exact_method="loop")
)
error("dkef: train_dkef sigma for ssm [audit]", "sigma")(lambda: dkef_call(sigma=0.5))
error("dkef: GaussianProposal.sample(-1) [audit]", "n")(
    lambda: GaussianProposal.isotropic(2, 1.0).sample(-1)
)
error("dkef: GaussianProposal.sample(2.5) [audit]", "n")(
    lambda: GaussianProposal.isotropic(2, 1.0).sample(2.5)
)
error("dkef: GaussianProposal.sample int dtype [audit]", "dtype")(
    lambda: GaussianProposal.isotropic(2, 1.0).sample(3, dtype=torch.int64)
)
error("dkef: GaussianProposal.isotropic int dtype [audit]", "dtype")(
    lambda: GaussianProposal.isotropic(2, 1.0, dtype=torch.int32)
)
error("dkef: GaussianProposal int mean [audit]", "mean")(
    lambda: GaussianProposal(torch.zeros(2, dtype=torch.long), torch.eye(2))
)
error("dkef: GaussianProposal.log_prob y of the wrong width [audit]", "y")(
    lambda: GaussianProposal.isotropic(2, 1.0).log_prob(data(4, 3))
)
error("dkef: GaussianProposal.log_prob of a list [audit]", "y")(
    lambda: GaussianProposal.isotropic(2, 1.0).log_prob([[0.0, 0.0]])
)
error("dkef: MixtureProposal of a non-proposal [audit]", "components")(
    lambda: MixtureProposal([3], [1.0])
)
error("dkef: MixtureProposal.sample(-1) [audit]", "n")(
    lambda: MixtureProposal([GaussianProposal.isotropic(2, 1.0)], [1.0]).sample(-1)
)
error("dkef: GaussianProposal.sample(10**13) beyond the memory [audit]", "n", memory_mib=256)(
    lambda: GaussianProposal.isotropic(2, 1.0).sample(10**13)
)
error("dkef: estimate_log_normalizer n_samples=chunk=10**13 [audit]", ("n_samples", "chunk"), memory_mib=256)(
    lambda: estimate_log_normalizer(small_dkef(), 10**13, chunk=10**13)
)
error("dkef: alpha_system(create_graph='no') [audit]", "create_graph")(
    lambda: ssm_lib.dkef.alpha_system(small_dkef(), data(8), "exact", create_graph="no")
)
error("dkef: DKEFWithAlpha(model, None) [audit]", "alpha")(
    lambda: ssm_lib.dkef.DKEFWithAlpha(small_dkef(), None)
)
error("dkef: DKEFWithAlpha of a non-DKEF [audit]", "model")(
    lambda: ssm_lib.dkef.DKEFWithAlpha(object(), torch.zeros(10))
)
error("dkef: GaussianProposal mean float32, scale_tril float64 [audit]", "scale_tril")(
    lambda: GaussianProposal(torch.zeros(2), torch.eye(2, dtype=torch.float64))
)
error("dkef: estimate_log_normalizer float64 proposal, float32 model [audit]", "proposal")(
    lambda: estimate_log_normalizer(small_dkef(), 10, proposal=GaussianProposal.isotropic(2, 2.0))
)
error("dkef: feature_network(hidden=0) [audit]", "hidden")(lambda: ssm_lib.dkef.feature_network(2, 0))
error("dkef: GaussianKernelLayer u of the wrong width [audit]", "u")(
    lambda: ssm_lib.dkef.GaussianKernelLayer(torch.randn(5, 4), torch.tensor(1.0))(torch.zeros(3, 2))
)
error("dkef: WeightedSum h of the wrong width [audit]", "h")(
    lambda: ssm_lib.dkef.WeightedSum(torch.randn(5))(torch.zeros(3, 4))
)
error("dkef: describe(digits=-1) [audit]", "digits")(
    lambda: estimate_log_normalizer(small_dkef(), 100, generator=g()).describe(-1)
)

# ---------------------------------------------------------------------------- NICE and its trainer

TV = dict(epochs=1, batch_size=32, progress=False)


def tv_call(**kw):
    args = {**TV, **kw}
    model = args.pop("model", None) or small_nice()
    train = args.pop("train_x", None)
    val = args.pop("val_x", None)
    gen = args.pop("generator", g())
    return train_with_validation(
        model,
        flow_objective("ssm_vr"),
        data(128) if train is None else train,
        data(32, seed=5) if val is None else val,
        generator=gen,
        **args,
    )


error("nice: unknown keyword hiden=", "hiden")(lambda: NICE(2, hiden=8))
error("nice: dim=0", "dim")(lambda: NICE(0))
error("nice: dim=1", "dim")(lambda: NICE(1))
error("nice: dim=10**7 refused before allocating [item 7]", ("dim", "hidden", "memory"), limit=20)(
    lambda: NICE(10**7)
)
error("nice: depth=0", "depth")(lambda: NICE(2, depth=0))
error("nice: n_couplings=0", "n_couplings")(lambda: NICE(2, n_couplings=0))
error("nice: hidden=0", "hidden")(lambda: NICE(2, hidden=0))
error("nice: activation='bogus'", "activation")(lambda: NICE(2, activation="bogus"))
works("nice: NICE(2) is small by default [item 8]", lambda m: sum(p.numel() for p in m.parameters()) < 10**6)(
    lambda: NICE(2)
)
works("nice: hidden=np.int64(16) [item 10]", lambda m: isinstance(m, NICE))(
    lambda: NICE(2, hidden=np.int64(16))
)
error("nice: log_prob of float64 x [item 4]", ("x", "dtype"))(lambda: small_nice().log_prob(data().double()))
error("nice: log_prob of x of the wrong width", "x")(lambda: small_nice().log_prob(data(d=3)))
error("nice: log_prob of a 1-D x", "x")(lambda: small_nice().log_prob(torch.randn(2)))
works("nice: sample(temperature=np.float32(0.7)) [item 10]", lambda s: s.shape == (5, 2))(
    lambda: small_nice().sample(5, temperature=np.float32(0.7), generator=g())
)
error("nice: sample temperature=0", "temperature")(lambda: small_nice().sample(5, temperature=0.0))
error("nice: sample n=0", "n")(lambda: small_nice().sample(0))


error("nice: one NaN in validation data is named, not a silent restart [item 1]", "val_x")(
    lambda: tv_call(val_x=with_nan(data(32, seed=5)))
)
error("nice: train_with_validation NaN in train_x [item 3]", "train_x")(
    lambda: tv_call(train_x=with_nan(data(128)))
)
error("nice: train_with_validation float64 train_x [item 4]", ("train_x", "dtype"))(
    lambda: tv_call(train_x=data(128).double())
)
error("nice: train_with_validation epochs=0", "epochs")(lambda: tv_call(epochs=0))
error("nice: train_with_validation batch_size=0", "batch_size")(lambda: tv_call(batch_size=0))
error("nice: train_with_validation on_diverge='bogus'", "on_diverge")(lambda: tv_call(on_diverge="bogus"))
error("nice: train_with_validation eval_every=0", "eval_every")(lambda: tv_call(eval_every=0))
error("nice: train_with_validation generator=5", "generator")(lambda: tv_call(generator=5))
error("nice: train_with_validation empty val_x", "val_x")(lambda: tv_call(val_x=data(0)))


def _stop_prints_nothing():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tv_call(on_diverge="stop", lr=1e3, divergence_factor=2.0)
    return out.getvalue()


works("nice: on_diverge='stop' prints nothing on stdout [item 9]", lambda s: s == "")(_stop_prints_nothing)
error("nice: evaluate_flow on an empty batch [item 6]", "x")(lambda: evaluate_flow(small_nice(), data(0)))
error("nice: evaluate_flow batch_size=0", "batch_size")(
    lambda: evaluate_flow(small_nice(), data(), batch_size=0)
)
error("nice: evaluate_flow exact_method='bogus'", "exact_method")(
    lambda: evaluate_flow(small_nice(), data(), exact_method="bogus")
)
error("nice: flow_objective unknown name", ("name", "objective"))(lambda: flow_objective("ssm2"))



def _flows():
    from ssm_lib import flows

    return flows


error("nice: AdditiveCoupling on x of the wrong width [audit]", "x")(
    lambda: _flows().AdditiveCoupling(2, 0, 4, 1)(data(4, d=3))
)
error("nice: DiagonalScaling on y of the wrong width [audit]", "y")(
    lambda: _flows().DiagonalScaling(2)(data(4, d=1))
)
error("nice: nice_parameter_count dim=-3 [audit]", "dim")(lambda: _flows().nice_parameter_count(-3, 8, 1, 2))
error("nice: NICE.sample generator=1 [audit]", "generator")(lambda: small_nice().sample(3, generator=1))
error("nice: train_with_validation model=3 [audit]", "model")(
    lambda: train_with_validation(3, flow_objective("mle"), data(), data(), epochs=1, generator=g())
)
error("nice: train_with_validation track=[fn] [audit]", "track")(
    lambda: train_with_validation(small_nice(), flow_objective("mle"), data(), data(), epochs=1,
                                  generator=g(), track=[len])
)
error("nice: evaluate_flow of a model without log_prob [audit]", "model")(
    lambda: evaluate_flow(score_mlp(), data())
)
error("nice: evaluate_flow sm_loss='no' [audit]", "sm_loss")(
    lambda: evaluate_flow(small_nice(), data(), sm_loss="no")
)

# ---------------------------------------------------------------------------- score estimators

error("estimator: Stein eta=-1", "eta")(lambda: SteinScoreEstimator(eta=-1.0))
error("estimator: Stein bandwidth=0", "bandwidth")(lambda: SteinScoreEstimator(bandwidth=0.0))
error("estimator: Stein 1-D samples", "samples")(lambda: SteinScoreEstimator()(torch.randn(10)))
error("estimator: Stein NaN samples", "samples")(lambda: SteinScoreEstimator()(with_nan(data())))
error("estimator: Stein empty samples", "samples")(lambda: SteinScoreEstimator()(data(0)))
works(
    "estimator: Stein on 2000 x 100 in time and memory [item 7]",
    lambda s: s.shape == (2000, 100),
    limit=30,
    memory_mib=512,
)(lambda: SteinScoreEstimator(eta=0.1)(data(2000, 100)))
error("estimator: Spectral n_eigen=0", "n_eigen")(lambda: SpectralScoreEstimator(n_eigen=0))
error("estimator: Spectral eigen_threshold=1.5", "eigen_threshold")(
    lambda: SpectralScoreEstimator(eigen_threshold=1.5)
)
error("estimator: Spectral eta=-1", "eta")(lambda: SpectralScoreEstimator(eta=-1.0))
works(
    "estimator: Spectral on 2000 x 100 in time and memory [item 7]",
    lambda s: s.shape == (2000, 100),
    limit=60,
    memory_mib=512,
)(lambda: SpectralScoreEstimator(n_eigen=20)(data(2000, 100)))
error("estimator: median_bandwidth of one sample", "samples")(lambda: median_bandwidth(data(1)))
works(
    "estimator: median_bandwidth of 2000 x 100 in time and memory [item 7]",
    lambda b: bool(torch.isfinite(b).all()),
    limit=20,
    memory_mib=512,
)(lambda: median_bandwidth(data(2000, 100)))
works(
    "estimator: ConditionalScoreMLP(context_dim=np.int64(3)) [item 10]",
    lambda m: isinstance(m, ConditionalScoreMLP),
)(lambda: ConditionalScoreMLP(2, context_dim=np.int64(3)))
error("estimator: ConditionalScoreMLP dim=0", "dim")(lambda: ConditionalScoreMLP(0))
error("estimator: NetworkScoreEstimator optimizer='adam'", "optimizer")(
    lambda: NetworkScoreEstimator(ConditionalScoreMLP(2, hidden=8), "adam")
)
error("estimator: NetworkScoreEstimator n_steps=0", "n_steps")(
    lambda: NetworkScoreEstimator(
        ConditionalScoreMLP(2, hidden=8), torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), n_steps=0
    )
)
error("estimator: NetworkScoreEstimator projection='bogus'", "projection")(
    lambda: NetworkScoreEstimator(
        ConditionalScoreMLP(2, hidden=8),
        torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1),
        projection="bogus",
    )
)
error("estimator: entropy_surrogate with a score of another shape", "score")(
    lambda: entropy_surrogate(data(), data(d=3))
)

error("estimator: ConditionalScoreMLP on float64 z [audit]", "z")(
    lambda: ConditionalScoreMLP(2, hidden=8)(data().double())
)
error("estimator: unconditional ConditionalScoreMLP given a context [audit]", "context")(
    lambda: ConditionalScoreMLP(2, hidden=8)(data(), data(d=3))
)
error("estimator: SteinScoreEstimator on half samples [audit]", "samples")(
    lambda: SteinScoreEstimator()(torch.randn(3, 6, 2).half())
)
error("estimator: SpectralScoreEstimator eigen_threshold=True [audit]", "eigen_threshold")(
    lambda: SpectralScoreEstimator(eigen_threshold=True)
)
error("estimator: rbf_gram of a list [audit]", "a")(
    lambda: ssm_lib.score_estimators.rbf_gram([[1.0]], data(), 1.0)
)

# ---------------------------------------------------------------------------- samplers

error("sampler: langevin unknown keyword steps=", "steps")(
    lambda: langevin_dynamics(lambda x: -x, data(), step_size=0.1, steps=2)
)
error("sampler: langevin step_size=0", "step_size")(
    lambda: langevin_dynamics(lambda x: -x, data(), step_size=0.0, n_steps=2)
)
error("sampler: langevin step_size=-1", "step_size")(
    lambda: langevin_dynamics(lambda x: -x, data(), step_size=-1.0, n_steps=2)
)
error("sampler: langevin n_steps=-1", "n_steps")(
    lambda: langevin_dynamics(lambda x: -x, data(), step_size=0.1, n_steps=-1)
)
error("sampler: langevin NaN in x0", "x0")(
    lambda: langevin_dynamics(lambda x: -x, with_nan(data()), step_size=0.1, n_steps=2)
)
error("sampler: langevin score_fn of the wrong shape", "score_fn")(
    lambda: langevin_dynamics(lambda x: x[:, :1], data(), step_size=0.1, n_steps=2)
)
error("sampler: langevin generator=5", "generator")(
    lambda: langevin_dynamics(lambda x: -x, data(), step_size=0.1, n_steps=2, generator=5)
)
error("sampler: langevin float64 x0 for a float32 model [item 4]", ("x0", "dtype", "x"))(
    lambda: langevin_dynamics(score_mlp(), data().double(), step_size=0.1, n_steps=2)
)
works("sampler: langevin step_size=np.float64(0.01) [item 10]", lambda s: s.shape == (64, 2))(
    lambda: langevin_dynamics(lambda x: -x, data(), step_size=np.float64(0.01), n_steps=2, generator=g())
)
works("sampler: langevin does not mutate x0", lambda r: torch.equal(r[0], data()))(
    lambda: (lambda x0: (x0, langevin_dynamics(lambda x: -x, x0, step_size=0.1, n_steps=2)))(data())
)
error("sampler: annealed with a plain ScoreMLP [item 6]", "score_fn")(
    lambda: annealed_langevin_dynamics(score_mlp(), data(), sigmas=[1.0, 0.5], step_size=0.01, n_steps_each=2)
)
error("sampler: annealed sigmas empty", "sigmas")(
    lambda: annealed_langevin_dynamics(
        NoiseConditionalScoreMLP(2, hidden=8), data(), sigmas=[], step_size=0.01, n_steps_each=2
    )
)
error("sampler: annealed negative sigma", "sigmas")(
    lambda: annealed_langevin_dynamics(
        NoiseConditionalScoreMLP(2, hidden=8), data(), sigmas=[1.0, -0.5], step_size=0.01, n_steps_each=2
    )
)
error("sampler: annealed n_steps_each=0", "n_steps_each")(
    lambda: annealed_langevin_dynamics(
        NoiseConditionalScoreMLP(2, hidden=8), data(), sigmas=[1.0, 0.5], step_size=0.01, n_steps_each=0
    )
)

# ---------------------------------------------------------------------------- load_uci


def load_uci(*args, **kw):
    from paper_recipes.uci import load_uci as _load

    return _load(*args, **kw)


error("uci: dtype=torch.int64 [item 2]", "dtype")(lambda: load_uci("redwine", dtype=torch.int64))
error("uci: noise_std=-1 [item 2]", "noise_std")(lambda: load_uci("redwine", noise_std=-1.0))
error("uci: noise_std=nan [item 2]", "noise_std")(lambda: load_uci("redwine", noise_std=float("nan")))
error("uci: unknown name", "name")(lambda: load_uci("bluewine"))
error("uci: split_seed=-1", "split_seed")(lambda: load_uci("redwine", split_seed=-1))
error("uci: root without the tables", "root")(lambda: load_uci("redwine", root=tempfile.gettempdir()))
works("uci: noise_std=np.float32(0.05) [item 10]", lambda s: s.train.dtype == torch.float32)(
    lambda: load_uci("redwine", noise_std=np.float32(0.05))
)
works(
    "uci: dtype=torch.float64",
    lambda s: s.train.dtype == torch.float64 and bool(torch.isfinite(s.train).all()),
)(lambda: load_uci("redwine", dtype=torch.float64))

# ---------------------------------------------------------------------------- persistence


def _round_trip(model: nn.Module, x: torch.Tensor, f: Callable[[nn.Module, torch.Tensor], torch.Tensor]):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.pt"
        save_model(model, path)
        back = load_model(path)
    return torch.equal(f(model, x), f(back, x))


error("persist: save_model of a non-module", "model")(
    lambda: save_model(lambda x: x, Path(tempfile.gettempdir()) / "never.pt")
)
error("persist: save_model of an unregistered module", "model")(
    lambda: save_model(nn.Linear(2, 2), Path(tempfile.gettempdir()) / "never.pt")
)
error("persist: load_model of a missing file", "path", errors=(ValueError, TypeError, FileNotFoundError))(
    lambda: load_model(Path(tempfile.gettempdir()) / "no-such-model.pt")
)


def _load_garbage():
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "garbage.pt"
        path.write_bytes(b"not a model")
        return load_model(path)


error("persist: load_model of a file that is not a model", "path")(_load_garbage)
error("persist: save_model into a missing folder", "path", errors=(ValueError, TypeError, FileNotFoundError))(
    lambda: save_model(score_mlp(), Path(tempfile.gettempdir()) / "no-such-dir-xyz" / "m.pt")
)
works("persist: NICE round trip bit for bit", bool)(
    lambda: _round_trip(small_nice(), data(), lambda m, x: m.log_prob(x))
)
works("persist: DKEF round trip bit for bit", bool)(
    lambda: _round_trip(small_dkef(), data(), lambda m, x: m.unnormalized_log_prob(x).detach())
)
works("persist: ScoreMLP round trip bit for bit", bool)(
    lambda: _round_trip(score_mlp(), data(), lambda m, x: m(x))
)

error("persist: save_model to a folder [audit]", "path")(
    lambda: save_model(score_mlp(), Path(tempfile.gettempdir()))
)
error("persist: load_model map_location='bogus' [audit]", "map_location")(
    lambda: load_model(Path(tempfile.gettempdir()) / "no-such-file-xyz.pt", map_location="bogus")
)

# ---------------------------------------------------------------------------- models and densities

error("model: ScoreMLP dim=0", "dim")(lambda: ScoreMLP(0))
error("model: ScoreMLP depth=0", "depth")(lambda: ScoreMLP(2, depth=0))
error("model: ScoreMLP activation='bogus'", "activation")(lambda: ScoreMLP(2, activation="bogus"))
error("model: ScoreMLP on float64 x [item 4]", ("x", "dtype"))(lambda: score_mlp()(data().double()))
error("model: EnergyMLP confinement=-1", "confinement")(lambda: EnergyMLP(2, confinement=-1.0))
error("density: Gaussian with a non-PD cov", "cov")(lambda: Gaussian(torch.zeros(2), -torch.eye(2)))
error("density: Gaussian mean/cov size mismatch", ("cov", "mean"))(
    lambda: Gaussian(torch.zeros(3), torch.eye(2))
)
error("density: GaussianMixture negative weights", "weights")(
    lambda: GaussianMixture([-0.5, 1.5], torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))
)
error("density: Banana sigma1=0", "sigma1")(lambda: Banana(sigma1=0.0))
error("density: Ring width=-1", "width")(lambda: Ring(width=-1.0))
error("density: sample n=-1", "n")(lambda: Banana().sample(-1))
error("density: log_prob of x of the wrong width", "x")(lambda: Banana().log_prob(data(d=3)))


error("density: Gaussian in float16 [audit]", "mean")(
    lambda: Gaussian(torch.zeros(2, dtype=torch.float16), torch.eye(2))
)
error("density: Gaussian of dimension 0 [audit]", "mean")(lambda: Gaussian(torch.zeros(0), torch.zeros(0, 0)))
error("density: Ring width=1e-200 [audit]", "width")(lambda: Ring(radius=1.0, width=1e-200))
error("model: mean_and_standard_error of NaN values [audit]", "values")(
    lambda: ssm_lib.metrics.mean_and_standard_error(torch.tensor([1.0, float("nan"), 2.0]))
)
error("model: loglog_slope with a NaN [audit]", "x and y")(
    lambda: ssm_lib.metrics.loglog_slope([1, 2, 3], [1, float("nan"), 2])
)

# ---------------------------------------------------------------------------- more edge cases

works("edge: DKEF and train_dkef in float64", lambda h: len(h.train) == 2)(
    lambda: train_dkef(
        DKEF(data(10, seed=1).double(), n_kernels=1, hidden=4, generator=g(2)),
        data(60).double(),
        data(30, seed=5).double(),
        "ssm",
        **DK,
        generator=g(),
    )
)
error("edge: train_dkef batch_size larger than train", "batch_size")(
    lambda: dkef_call(train=data(12), batch_size=40)
)
error("edge: heldout_log_likelihood x of the wrong width", "x")(
    lambda: heldout_log_likelihood(small_dkef(), data(d=3), n_samples=100)
)
works("edge: sample_langevin n=np.int64(3) [item 10]", lambda s: s.shape == (3, 2))(
    lambda: sample_langevin(small_dkef(), np.int64(3), n_steps=2, generator=g())
)
works("edge: NICE in float64 trained by fit", lambda h: len(h.losses) == 2)(
    lambda: fit(small_nice().double(), data().double(), "ssm", **FIT)
)
error("edge: fit val_data of the wrong width", ("val_data", "x"))(lambda: fit_call(val_data=data(20, d=3)))
error("edge: fit mle on a model without log_prob", ("log_prob", "model"))(lambda: fit_call(objective="mle"))
error("edge: fit with n_projections=0", "n_projections")(lambda: fit_call(n_projections=0))
error("edge: fit sampler returning NaN", "data")(
    lambda: fit_call(data=lambda n, gen: torch.full((n, 2), float("nan")))
)
error("edge: langevin 1-D x0", "x0")(
    lambda: langevin_dynamics(lambda x: -x, torch.randn(3), step_size=0.1, n_steps=2)
)
error("edge: Gaussian non-symmetric cov", "cov")(
    lambda: Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
)
error("edge: GaussianMixture weights not summing to 1", "weights")(
    lambda: GaussianMixture([0.2, 0.2], torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))
)
works("edge: Banana().sample(np.int64(5)) [item 10]", lambda s: s.shape == (5, 2))(
    lambda: Banana().sample(np.int64(5), generator=g())
)
error("edge: ScoreMLP on x of the wrong width", "x")(lambda: score_mlp()(data(d=3)))
error("edge: save_model path=3", "path")(lambda: save_model(score_mlp(), 3))
error("edge: Spectral n_eigen larger than the samples", "n_eigen")(
    lambda: SpectralScoreEstimator(n_eigen=50)(data(20))
)
error("edge: Stein on samples whose kernel matrix cannot fit [item 7]", "samples", limit=20)(
    lambda: SteinScoreEstimator()(torch.zeros(400_000, 2))
)
error("edge: median_bandwidth of samples whose distances cannot fit [item 7]", "samples", limit=20)(
    lambda: median_bandwidth(torch.zeros(400_000, 2))
)
error("edge: NICE.sample of a size that cannot fit [item 7]", "n", limit=20)(
    lambda: small_nice().sample(10**11)
)
error("edge: Banana().sample of a size that cannot fit", "n", limit=20)(lambda: Banana().sample(10**11))
error("edge: sample_langevin of a size that cannot fit", "n", limit=20)(
    lambda: sample_langevin(small_dkef(), 10**11, n_steps=1)
)


def _dkef_checkpoint():
    return dkef_call("exact", seed=0).checkpoint


error("edge: train_dkef resume with another objective", "resume")(
    lambda: dkef_call("ssm", resume=_dkef_checkpoint())
)
error("edge: train_dkef resume with a seed", "seed")(
    lambda: dkef_call("exact", seed=1, resume=_dkef_checkpoint())
)
error("edge: fit optimizer of another model", "optimizer")(
    lambda: fit_call(optimizer=torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))
)
error("edge: fit lr_schedule of another optimizer", "lr_schedule")(
    lambda: fit_call(
        lr_schedule=torch.optim.lr_scheduler.StepLR(
            torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), 3
        )
    )
)


error("edge: exact_chunking.plan method='foo' [audit]", "method")(
    lambda: ssm_lib.exact_chunking.plan("foo", 4, 100, torch.device("cpu"))
)
error("edge: exact_chunking.plan chunk_size=0 [audit]", "chunk_size")(
    lambda: ssm_lib.exact_chunking.plan("vmap", 4, 100, "cpu", chunk_size=0)
)
error("edge: fast_path.mlp_score_and_jvp with v of another shape [audit]", "v")(
    lambda: ssm_lib.fast_path.mlp_score_and_jvp(ssm_lib.fast_path.mlp_layers(score_mlp().net), data(4),
                                                torch.randn(3, 2))
)
error("edge: sliced_score_matching of a noise-conditional score [audit]", "score_fn")(
    lambda: ssm_lib.losses.sliced_score_matching(NoiseConditionalScoreMLP(2, hidden=8), data(), generator=g())
)
error("edge: sliced_score_matching complex directions [audit]", "directions")(
    lambda: ssm_lib.losses.sliced_score_matching(score_mlp(), data(4),
                                                 directions=torch.randn(1, 4, 2, dtype=torch.complex64))
)
error("edge: make_generator(2**64) [audit]", "seed")(lambda: ssm_lib.make_generator(2**64))


# ---------------------------------------------------------------------------- the runner


def _last_frame_file(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return frames[-1].filename if frames else ""


def _names(message: str, arg: str | tuple[str, ...] | None) -> bool:
    """Whether ``message`` names ``arg`` (or one of them) as a whole word."""
    if arg is None:
        return False
    names = (arg,) if isinstance(arg, str) else arg
    return any(
        re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message, re.IGNORECASE) for n in names
    )


def classify(case: Case, result: object, exc: BaseException | None) -> tuple[str, str]:
    """The outcome of ``case`` and a line saying what happened."""
    if exc is None:
        if case.check is None:
            return "silent", f"no error (returned {type(result).__name__})"
        try:
            good = bool(case.check(result))
        except Exception as err:  # a result the check cannot even read is a wrong result
            good = False
            result = f"{result!r:.80} ({type(err).__name__} in the check)"
        return ("ok", "as documented") if good else ("silent", f"wrong result: {result!r:.120}")
    message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]
    if isinstance(exc, MissingFeature):
        return "missing", message
    if isinstance(exc, CaseTimeout):
        return "hang", f"over the {case.limit:.0f} s limit"
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc):
        return "hang", f"memory guard: {message}"
    if case.check is None and isinstance(exc, case.errors) and _names(str(exc), case.arg):
        return "clear", message
    where = _last_frame_file(exc)
    inside_project = where.startswith(PROJECT_DIRS)
    if (
        isinstance(exc, INTERNAL_ERRORS)
        or where.startswith(OUTSIDE_DIRS)
        or not (inside_project or where == __file__)
    ):
        return "crash", f"{message} (last frame {Path(where).name})"
    return "misleading", message


def _rss_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def _reset_peak() -> float | None:
    """Reset the peak resident set to the current one (Linux); the current one in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _rss_mib("VmRSS")


def run_case(case: Case) -> tuple[str, str, float, float | None]:
    """Run ``case``: its outcome, what happened, its seconds and the rise of the peak resident
    set in MiB (``None`` where it cannot be measured)."""

    def on_alarm(signum, frame):
        raise CaseTimeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    before = _reset_peak()
    signal.setitimer(signal.ITIMER_REAL, case.limit)
    start = time.perf_counter()
    result, exc = None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = case.call()
    except BaseException as err:  # noqa: BLE001 - every outcome is recorded
        if isinstance(err, KeyboardInterrupt):
            raise
        exc = err
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - start
    peak = _rss_mib("VmHWM")
    rise = None if before is None or peak is None else max(0.0, peak - before)
    outcome, what = classify(case, result, exc)
    del result
    if rise is not None and rise > case.memory_mib and outcome != "hang":
        outcome, what = "hang", f"peak memory rose by {rise:.0f} MiB (limit {case.memory_mib:.0f}); {what}"
    return outcome, what, seconds, rise


def return_freed_memory() -> None:
    """Tell glibc to map every block over 128 KiB on its own and unmap it when freed, so that
    the resident set follows the live tensors and a case's peak is not hidden by memory that
    an earlier case freed (Linux with glibc; elsewhere nothing happens)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 131072)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 131072)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def cap_memory(extra_gib: float) -> None:
    """Cap the address space ``extra_gib`` GiB above its current size (Linux)."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = vm + int(extra_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run only the cases whose name starts with this")
    parser.add_argument("--json", type=Path, help="write every case's outcome here")
    parser.add_argument("--memory-gib", type=float, default=4.0, help="address space allowed above the start")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a case is not 'ok' or 'clear'")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    return_freed_memory()
    cap_memory(args.memory_gib)
    cases = [c for c in CASES if c.name.startswith(args.only)]
    counts: Counter[str] = Counter()
    rows = []
    for case in cases:
        outcome, what, seconds, rise = run_case(case)
        counts[outcome] += 1
        rows.append(
            dict(
                name=case.name,
                outcome=outcome,
                what=what,
                seconds=round(seconds, 3),
                peak_rise_mib=None if rise is None else round(rise, 1),
            )
        )
    print(f"ssm_lib {ssm_lib.__version__}: {len(cases)} cases, torch {torch.__version__}\n")
    print(f"{'outcome':<12}{'cases':>6}")
    for outcome in OUTCOMES:
        if outcome != "missing" or counts[outcome]:
            print(f"{outcome:<12}{counts[outcome]:>6}")
    bad = [r for r in rows if r["outcome"] not in ("ok", "clear", "missing")]
    print(f"\n{len(bad)} cases not 'ok' or 'clear':")
    for r in bad:
        print(f"  [{r['outcome']}] {r['name']}: {r['what']}")
    if args.json:
        args.json.write_text(json.dumps(dict(counts=dict(counts), cases=rows), indent=1))
    return 1 if args.strict and bad else 0


if __name__ == "__main__":
    sys.exit(main())
