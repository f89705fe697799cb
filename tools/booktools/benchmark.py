r"""The benchmark harness: time, peak memory and FLOP floor of one training step of each
score-matching objective, side by side (``benchmarks/run.py``, ``make bench``; the
``jacobian_cost`` notebook; the performance appendix).

* :data:`VARIANTS` -- the benchmark's rows: name -> :class:`Variant` (an objective of
  :data:`ssm_lib.losses.OBJECTIVES`, the loss's ``method=``, whether the model hides behind a
  plain function): ``"sm_loop"``, ``"sm_vmap"`` (exact SM), ``"ssm_backward"``,
  ``"ssm_forward"``, ``"ssm_fd"``, ``"ssm_fast"`` (the default ``method="auto"``, i.e.
  ``ScoreMLP``'s own fast path), ``"ssm_generic"`` (``method="auto"`` on the same MLP behind a
  plain function, so without the fast path), ``"ssm_vr"``, ``"dsm"`` and ``"sm_auto"`` (exact
  SM with its defaults), all on ``ScoreMLP``; then the same calls as a user makes them on
  generic networks (:func:`make_network`): ``"seq_*"`` on a plain ``nn.Sequential`` score
  network and ``"ebm_*"`` on an energy model through :func:`~ssm_lib.models.score_from_energy`
  (``sm_auto``, ``sm_loop``, ``sm_vmap``, ``ssm``, ``dsm``). Exact SM always runs with its
  default chunk.
* :func:`make_network` -- ``(module, score_fn)`` for a network kind of :data:`NETWORKS`.
* :func:`make_loss` -- ``loss(score_fn, x, generator) -> scalar`` for a variant.
* :func:`flop_count` -- the matrix-product FLOPs of one step (the arithmetic floor), also in
  *forward units* (one forward pass of the MLP on the batch = 1 unit).
* :func:`peak_memory` -- peak bytes allocated while a function runs, above the level at its
  start (CPU: from the allocation events of ``torch.profiler``, whose own messages on stderr
  are silenced; CUDA: the allocator's peak).
* :func:`benchmark_sweep` -- several variants over several ``dim``, interleaved (every round
  runs each variant once, in a rotating order), with ratios to DSM from the same run, slow
  cells skipped by a time budget; returns a list of row dicts.
* :func:`format_table`, :func:`write_results`, :func:`read_results`, :func:`check_targets`,
  :func:`format_targets`, :func:`machine_info`.
* :func:`exact_sm_defaults_sweep`, :func:`format_exact_sm_defaults` -- exact SM's default
  (method and chunk chosen by the library) against the loop and fixed chunks
  (``benchmarks/exact_sm_defaults.py``).

Each row of :func:`benchmark_sweep` is a dict with keys ``variant``, ``label``, ``dim``,
``device``, ``status`` (``"ok"`` or ``"skipped (> budget)"``), ``time_s`` (median seconds
per step), ``time_q1_s``/``time_q3_s`` (quartiles), ``n_repeats``, ``ratio_dsm`` (median
time / the median time of DSM on the same network kind at the same ``dim``), ``peak_bytes``,
``flops``, ``flop_units`` and ``flop_ratio_dsm``; numbers are ``None`` for skipped cells.

FLOP floors (``L = depth + 1`` linear layers :math:`W_l` of sizes
:math:`d\to h\to\dots\to h\to d`; :math:`m_l = 2 B\, n^\mathrm{in}_l n^\mathrm{out}_l` the
FLOPs of layer :math:`l`'s product on a batch of :math:`B`; :math:`F = \sum_l m_l` one forward
unit). Only matrix products are counted (elementwise work is :math:`O(Bh)` per layer).

* DSM: forward :math:`F`, backward :math:`2F - m_1` (no input gradient at layer 1):
  :math:`\approx 3F`.
* SSM by double backprop: forward :math:`F`, the vector-Jacobian product :math:`F`, and the
  backward of both :math:`4F - m_1`: :math:`6F - m_1`.
* SSM by forward mode / finite differences / a stacked primal-tangent pass: :math:`2F`
  forward, :math:`4F - 2m_1` backward: :math:`6F - 2m_1`.
* SSM by :class:`~ssm_lib.models.ScoreMLP`'s projected fast path (plain SSM): the output layer is replaced
  by :math:`u = W_L^\top v`, costing :math:`2m_L` instead of :math:`6m_L`:
  :math:`6F - 2m_1 - 4m_L`. SSM-VR needs :math:`s` and uses the stacked pass.
* Exact SM: :math:`F` forward plus :math:`d` vector-Jacobian products (:math:`dF`) and the
  backward of all of them (:math:`2dF - d\,m_1`), plus :math:`2F`:
  :math:`(3d + 3)F - d\,m_1`.

Energy model (:class:`~ssm_lib.models.EnergyMLP`, layers :math:`d\to h\to\dots\to h\to 1`,
:math:`F` its forward pass, :math:`m_L` its :math:`h\to 1` layer): the score costs :math:`2F`;
DSM :math:`6F - 3m_L`, SSM :math:`12F - m_1 - 9m_L`, exact SM
:math:`(6d + 6)F - d\,m_1 - (6d + 3)\,m_L`. The ``nn.Sequential`` rows count as ScoreMLP
without its fast path.

These are floors, met exactly by ``ssm_lib``'s implementations (checked in
``tests/test_benchmarking.py`` by counting the matrix products torch dispatches) except
forward mode, for which ``torch.func.jvp`` performs about :math:`1.3\times` the floor.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import platform
import statistics
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from booktools.stderr import native_stderr_to
from ssm_lib import exact_chunking
from ssm_lib.devices import resolve_device
from ssm_lib.losses import OBJECTIVES, exact_score_matching, make_objective
from ssm_lib.models import EnergyMLP, ScoreMLP, score_from_energy

REPOSITORY = Path(__file__).resolve().parents[2]  # the repository that holds booktools
Loss = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Variant:
    """One row family of the benchmark: the objective ``objective`` (a key of
    :data:`ssm_lib.losses.OBJECTIVES`) computed with the loss's ``method=`` (``None``: the
    loss has none), on the model itself or, with ``generic``, on the model hidden behind a
    plain function (so that no fast path applies), on the network kind ``network`` (a key of
    :data:`NETWORKS`). ``detail`` completes the registry's label."""

    name: str
    objective: str
    method: str | None
    detail: str
    generic: bool = False
    network: str = "scoremlp"

    @property
    def label(self) -> str:
        base = NETWORK_LABELS[self.network] + OBJECTIVES[self.objective].label
        return f"{base} ({self.detail})" if self.detail else base


#: network kinds of the benchmark (see :func:`make_network`) and the prefixes of their rows
NETWORKS: dict[str, str] = {"scoremlp": "", "sequential": "seq_", "energy": "ebm_"}
NETWORK_LABELS: dict[str, str] = {"scoremlp": "", "sequential": "Seq: ", "energy": "EBM: "}


def _generic_variants() -> list[Variant]:
    """Rows for generic networks (``nn.Sequential`` score net, energy model): exact SM with the
    default arguments of each method, the default SSM and DSM, as a user would call them."""
    out = []
    for net in ("sequential", "energy"):
        pre = NETWORKS[net]
        out += [
            Variant(pre + "sm_auto", "exact", "auto", "default", network=net),
            Variant(pre + "sm_loop", "exact", "loop", "loop", network=net),
            Variant(pre + "sm_vmap", "exact", "vmap", "vmap", network=net),  # default chunk
            Variant(pre + "ssm", "ssm", "auto", "default", network=net),
            Variant(pre + "dsm", "dsm", None, "", network=net),
        ]
    return out


#: Every benchmarked variant, by name.
VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("sm_loop", "exact", "loop", "loop"),                 # d double-backward passes
    Variant("sm_vmap", "exact", "vmap", "vmap"),                 # the d passes batched, default chunk
    Variant("ssm_backward", "ssm", "backward", "backward"),      # double backprop
    Variant("ssm_forward", "ssm", "forward", "forward"),         # torch.func.jvp
    Variant("ssm_fd", "ssm", "finite_difference", "finite diff."),   # default step
    Variant("ssm_fast", "ssm", "auto", "default, fast path"),    # ScoreMLP's own exact fast path
    Variant("ssm_generic", "ssm", "auto", "default, generic fn", generic=True),  # no fast path
    Variant("ssm_vr", "ssm_vr", "auto", "default"),
    Variant("dsm", "dsm", None, ""),                             # sigma = 0.1
    Variant("sm_auto", "exact", "auto", "default"),              # method and chunk by the library
    *_generic_variants(),
)}

DEFAULT_VARIANTS: tuple[str, ...] = tuple(VARIANTS)
DEFAULT_DIMS: tuple[int, ...] = (2, 16, 64, 128, 512, 2048)
STATUS_OK = "ok"
STATUS_SKIPPED = "skipped (> budget)"


def _variant(name: object) -> Variant:
    if not isinstance(name, str) or name not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {name!r}")
    return VARIANTS[name]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def make_network(network: str, dim: int, *, hidden: int = 512, depth: int = 3
                 ) -> tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """``(module, score_fn)`` for a network kind of :data:`NETWORKS`: ``"scoremlp"`` (the
    library's :class:`~ssm_lib.models.ScoreMLP`, SiLU, with its fast paths), ``"sequential"``
    (a plain ``nn.Sequential`` of ``Linear`` + ``Softplus`` layers of the same sizes, as a user
    would write it) or ``"energy"`` (an :class:`~ssm_lib.models.EnergyMLP` with softplus, its
    score by :func:`~ssm_lib.models.score_from_energy`). Initialised from torch's global RNG."""
    if not isinstance(network, str) or network not in NETWORKS:
        raise ValueError(f"network must be one of {tuple(NETWORKS)}, got {network!r}")
    if network == "scoremlp":
        model = ScoreMLP(dim, hidden=hidden, depth=depth)
        return model, model
    if network == "energy":
        energy = EnergyMLP(dim, hidden=hidden, depth=depth, activation="softplus")
        return energy, score_from_energy(energy)
    layers: list[torch.nn.Module] = []
    for n_in in [dim] + [hidden] * (depth - 1):
        layers += [torch.nn.Linear(n_in, hidden), torch.nn.Softplus()]
    seq = torch.nn.Sequential(*layers, torch.nn.Linear(hidden, dim))
    return seq, seq


def make_loss(variant: str, *, sigma: float = 0.1, fd_step: float | None = None,
              chunk_size: int | None = None) -> Loss:
    """``loss(score_fn, x, generator) -> scalar`` for the variant called ``variant``, built
    with :func:`ssm_lib.losses.make_objective`.

    Args:
        variant: a key of :data:`VARIANTS`.
        sigma: DSM noise level.
        fd_step: finite-difference step (``None``: the library's default).
        chunk_size: exact SM chunk (``None``: the library's default, chosen from a byte
            budget; see ``ssm_lib.exact_chunking``).
    """
    spec = _variant(variant)
    options: dict[str, Any] = {} if spec.method is None else {"method": spec.method}
    if spec.objective == "dsm":
        options["sigma"] = sigma
    if spec.method == "finite_difference":
        options["fd_step"] = fd_step
    if spec.objective == "exact":
        options["chunk_size"] = chunk_size
    objective = make_objective(spec.objective, **options)

    def loss(score_fn, x, generator):  # type: ignore[no-untyped-def]
        return objective(score_fn, x, generator=generator)

    return loss


def _layer_flops(dim: int, hidden: int, depth: int, batch: int) -> list[float]:
    sizes = [dim] + [hidden] * depth + [dim]
    return [2.0 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def flop_count(variant: str, dim: int, *, hidden: int = 512, depth: int = 3, batch: int = 128
               ) -> dict[str, float]:
    """Matrix-product FLOPs of one training step of ``variant`` on ``ScoreMLP(dim, hidden,
    depth)`` with a batch of ``batch`` (formulas in the module docstring).

    Returns ``{"flops": ..., "units": flops / F, "forward_flops": F}`` with ``F`` one forward
    pass of the MLP on the batch. Only matrix-matrix products count (FLOPs = 2 x
    multiply-adds)."""
    spec = _variant(variant)
    for value, name in ((dim, "dim"), (hidden, "hidden"), (depth, "depth"), (batch, "batch")):
        _positive_int(value, name)
    m = _layer_flops(dim, hidden, depth, batch)
    f = sum(m)
    if spec.network == "energy":
        # EnergyMLP d -> h ... -> 1 (F counts its products, m[-1] the h -> 1 layer); its score
        # -grad E costs F forward + F input-gradient, and each derivative level doubles again
        m = m[:-1] + [2.0 * batch * hidden]
        f = sum(m)
        flops = {"dsm": 6 * f - 3 * m[-1],
                 "exact": (6 * dim + 6) * f - dim * m[0] - (6 * dim + 3) * m[-1]
                 }.get(spec.objective, 12 * f - m[0] - 9 * m[-1])
        return {"flops": float(flops), "units": flops / f, "forward_flops": float(f)}
    if spec.objective == "dsm":
        flops = 3 * f - m[0]
    elif spec.objective == "exact":
        flops = (3 * dim + 3) * f - dim * m[0]
    elif spec.method == "backward" or spec.generic or spec.network == "sequential":
        flops = 6 * f - m[0]
    elif spec.method == "auto" and spec.objective == "ssm":
        flops = 6 * f - 2 * m[0] - 4 * m[-1]
    else:  # forward mode, finite differences, the stacked pair (SSM-VR fast path)
        flops = 6 * f - 2 * m[0]
    return {"flops": float(flops), "units": flops / f, "forward_flops": float(f)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn: Callable[[], Any], device: str | torch.device = "cpu") -> int:
    """Peak bytes allocated on ``device`` while ``fn()`` runs, above the amount allocated when
    it starts (so the model, its optimiser state and the data, allocated before, do not count).

    CUDA: ``torch.cuda.reset_peak_memory_stats`` and ``max_memory_allocated``. CPU: tracemalloc
    does not see torch's allocator, so ``fn`` runs under ``torch.profiler.profile(
    profile_memory=True)`` and the peak is the maximum running sum of the ``[memory]``
    allocation (+) and free (-) events of the CPU, in time order; the profiler's own messages
    on the process's stderr (``USDT ... profiler_start`` lines on some builds) are silenced.
    ``fn`` runs once; its result is discarded."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        _sync(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        fn()
        _sync(dev)
        return int(torch.cuda.max_memory_allocated(dev) - base)
    from torch.profiler import ProfilerActivity, profile

    with native_stderr_to(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return int(peak)


class _Plain:
    """A plain callable around a module: the same score without the module's fast path."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


@dataclass
class _Cell:
    variant: str
    step: Callable[[], None]  # zero_grad, loss, backward, optimiser step
    work: Callable[[], None]  # zero_grad, loss, backward: what peak memory is measured on
    times: list[float]
    repeats: int = 0


def _make_cell(variant: str, dim: int, *, hidden: int, depth: int, batch: int, device: torch.device,
               seed: int, lr: float, model: ScoreMLP | None = None) -> _Cell:
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(batch, dim, generator=gen, device=device)
    spec = _variant(variant)
    if spec.network != "scoremlp":
        torch.manual_seed(seed)
        model_, score_fn = make_network(spec.network, dim, hidden=hidden, depth=depth)
        model_ = model_.to(device)  # in place: score_fn computes with the moved module
    else:
        if model is None:
            torch.manual_seed(seed)
            model = ScoreMLP(dim, hidden=hidden, depth=depth)
        model_ = copy.deepcopy(model).to(device)
        score_fn = _Plain(model_) if spec.generic else model_
    loss_fn = make_loss(variant)  # exact SM with its default chunk, as a user calls it
    opt = torch.optim.Adam(model_.parameters(), lr=lr)

    def work() -> None:
        opt.zero_grad(set_to_none=False)  # gradient buffers stay allocated between steps
        loss = loss_fn(score_fn, x, gen)
        loss.backward()

    def step() -> None:
        work()
        opt.step()

    return _Cell(variant, step, work, [])


def _timed(step: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def _timed_group(step: Callable[[], None], device: torch.device, n: int) -> float:
    """Mean time of ``n`` consecutive calls of ``step``."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return (time.perf_counter() - start) / n


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def _row(variant: str, dim: int, device: torch.device, *, hidden: int, depth: int, batch: int,
         times: list[float] | None, peak: int | None) -> dict[str, Any]:
    fl = flop_count(variant, dim, hidden=hidden, depth=depth, batch=batch)
    row: dict[str, Any] = {
        "variant": variant, "label": VARIANTS[variant].label, "dim": dim, "device": str(device),
        "hidden": hidden, "depth": depth, "batch": batch,
        "status": STATUS_OK if times else STATUS_SKIPPED,
        "time_s": None, "time_q1_s": None, "time_q3_s": None, "n_repeats": 0,
        "ratio_dsm": None, "peak_bytes": peak, "flops": fl["flops"], "flop_units": fl["units"],
        "flop_ratio_dsm": None,
    }
    if times:
        q1, med, q3 = _quartiles(times)
        row.update(time_s=med, time_q1_s=q1, time_q3_s=q3, n_repeats=len(times))
    return row


def benchmark_sweep(
    dims: Iterable[int] = DEFAULT_DIMS,
    variants: Iterable[str] = DEFAULT_VARIANTS,
    *,
    hidden: int = 512,
    depth: int = 3,
    batch: int = 128,
    device: str | torch.device = "cpu",
    repeats: int = 15,
    warmup: int = 3,
    budget_s: float = 30.0,
    memory_budget_bytes: float = 4 * 2**30,
    memory: bool = True,
    seed: int = 0,
    lr: float = 1e-4,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Time one training step of each variant at each ``dim``, side by side.

    For each ``dim``: every variant gets a copy of the same freshly initialised
    ``ScoreMLP(dim, hidden, depth)`` (SiLU; the ``seq_*`` and ``ebm_*`` rows their own network
    of :func:`make_network`, from the same seed), its own Adam optimiser and the same data batch;
    each runs ``warmup`` untimed steps, then ``repeats`` rounds in which every variant takes one
    timed step, in an order rotated each round (interleaving, so that drifts in machine load
    hit all variants alike); the row reports the median. On CUDA each step ends with
    ``torch.cuda.synchronize``.

    Time budget: a variant whose step is predicted (from its time at the previous ``dim``,
    scaled by the FLOP count) or measured (first warm-up step) to exceed ``budget_s`` is
    marked ``"skipped (> budget)"`` at this and every larger ``dim``; a slow variant takes one
    warm-up step only when a step exceeds ``budget_s / 2``, and as many repeats as fit in
    ``budget_s`` (by the time of its last warm-up step; at least one). Likewise a variant whose
    peak memory, predicted from the previous ``dim`` by the FLOP ratio (exact SM keeps all
    its :math:`d` products alive, so both grow alike), would exceed ``memory_budget_bytes``
    (default 4 GiB) is skipped, so that exact SM cannot exhaust the machine's memory.

    Peak memory (``memory=True``): one more ``zero_grad`` + loss + ``backward`` per cell under
    :func:`peak_memory`: the working memory of the objective, above the resident state
    (parameters, their gradient buffers, which ``zero_grad(set_to_none=False)`` keeps between
    steps, the optimiser state and the data). The optimiser step, the same for every variant,
    is timed but not part of the peak.

    Returns:
        One row per (dim, variant), in the order of ``dims`` then ``variants`` (keys in the
        module docstring); ``ratio_dsm`` and ``flop_ratio_dsm`` need ``"dsm"`` in
        ``variants``.
    """
    dims = [_positive_int(d, "dims") for d in dims]
    variants = list(variants)
    if not dims:
        raise ValueError("dims must hold at least one dimension")
    if not variants:
        raise ValueError("variants must hold at least one variant name")
    for name in variants:
        _variant(name)
    for value, name in ((hidden, "hidden"), (depth, "depth"), (batch, "batch"),
                        (repeats, "repeats")):
        _positive_int(value, name)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    if not (isinstance(budget_s, (int, float)) and budget_s > 0):
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    dev = resolve_device(device)
    say = progress or (lambda _msg: None)
    rows: list[dict[str, Any]] = []
    last: dict[str, tuple[int, float, int | None]] = {}  # variant -> (dim, median time, peak)
    dropped: set[str] = set()
    for dim in dims:
        torch.manual_seed(seed)
        base_model = ScoreMLP(dim, hidden=hidden, depth=depth)
        cells: dict[str, _Cell] = {}
        for name in variants:
            if name in dropped:
                continue
            if name in last:
                prev_dim, prev_t, prev_peak = last[name]
                scale = (flop_count(name, dim, hidden=hidden, depth=depth, batch=batch)["flops"]
                         / flop_count(name, prev_dim, hidden=hidden, depth=depth, batch=batch)["flops"])
                if prev_t * scale > budget_s:
                    dropped.add(name)
                    say(f"d={dim} {name}: skipped (predicted {prev_t * scale:.0f} s > {budget_s} s)")
                    continue
                if prev_peak is not None and prev_peak * scale > memory_budget_bytes:
                    dropped.add(name)
                    say(f"d={dim} {name}: skipped (predicted {_fmt_bytes(int(prev_peak * scale))} "
                        f"> {_fmt_bytes(int(memory_budget_bytes))})")
                    continue
            cell = _make_cell(name, dim, hidden=hidden, depth=depth, batch=batch, device=dev,
                              seed=seed, lr=lr, model=base_model)
            first = _timed(cell.step, dev) if warmup > 0 else None
            if first is not None and first > budget_s:
                dropped.add(name)
                say(f"d={dim} {name}: skipped (first step {first:.0f} s > {budget_s} s)")
                continue
            # the first step may hold one-time costs: the last warm-up step sets the repeats
            last_warm = first
            for _ in range(warmup - 1):
                if last_warm is not None and last_warm * 2 > budget_s:
                    break  # a slow variant: one warm-up step is enough
                last_warm = _timed(cell.step, dev)
            cell.repeats = (repeats if last_warm is None
                            else max(1, int(min(float(repeats), budget_s / last_warm))))
            cells[name] = cell
        order = list(cells)
        for r in range(repeats):
            k = r % len(order) if order else 0
            for name in order[k:] + order[:k]:
                cell = cells[name]
                if len(cell.times) < cell.repeats:
                    cell.times.append(_timed(cell.step, dev))
        for name in variants:
            cell = cells.get(name)
            peak = None
            if cell is not None and memory:
                peak = peak_memory(cell.work, dev)
            row = _row(name, dim, dev, hidden=hidden, depth=depth, batch=batch,
                       times=cell.times if cell else None, peak=peak)
            if cell is not None:
                last[name] = (dim, row["time_s"], peak)
            rows.append(row)
            if cell is not None:
                say(f"d={dim} {name}: {row['time_s'] * 1e3:.1f} ms ({row['n_repeats']} repeats)")
        for r in rows:
            dsm_name = NETWORKS[VARIANTS[r["variant"]].network] + "dsm"
            dsm = next((q for q in rows if q["dim"] == dim and q["variant"] == dsm_name
                        and q["status"] == STATUS_OK), None)
            if r["dim"] == dim and dsm is not None:
                r["flop_ratio_dsm"] = r["flops"] / dsm["flops"]
                if r["time_s"] is not None:
                    r["ratio_dsm"] = r["time_s"] / dsm["time_s"]
    return rows


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of :func:`benchmark_sweep` rows: one line per (dim, variant) with
    the median step time, its ratio to DSM, the FLOP floor (forward units and ratio to DSM),
    the peak memory and the number of repeats."""
    header = (f"{'device':<6} {'d':>5} {'variant':<24} {'ms/step':>8} {'x DSM':>6} "
              f"{'floor':>7} {'x DSM':>6} {'peak mem':>9} {'reps':>4}")
    lines = [header, "-" * len(header)]
    prev = None
    for r in rows:
        key = (r["device"], r["dim"])
        if prev is not None and key != prev:
            lines.append("")
        prev = key
        units = f"{r['flop_units']:.1f}F"
        fr = "-" if r["flop_ratio_dsm"] is None else f"{r['flop_ratio_dsm']:.2f}"
        if r["status"] != STATUS_OK:
            lines.append(f"{r['device']:<6} {r['dim']:>5} {r['label']:<24} {r['status']:>15} "
                         f"{units:>7} {fr:>6}")
            continue
        ratio = "-" if r["ratio_dsm"] is None else f"{r['ratio_dsm']:.2f}"
        lines.append(f"{r['device']:<6} {r['dim']:>5} {r['label']:<24} {r['time_s'] * 1e3:>8.1f} "
                     f"{ratio:>6} {units:>7} {fr:>6} {_fmt_bytes(r['peak_bytes']):>9} "
                     f"{r['n_repeats']:>4}")
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else what platform reports)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What the numbers were measured on: CPU, thread count, load average, torch version,
    and the GPU's name when ``device`` is CUDA."""
    dev = resolve_device(device)
    info: dict[str, Any] = {
        "hostname": platform.node(), "platform": platform.platform(), "cpu": cpu_name(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "device": str(dev),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    return info


#: the targets of the benchmark, checked by :func:`check_targets` at ``TARGET_DIM``
TARGET_DIM = 512


def check_targets(rows: Sequence[dict[str, Any]], *, dim: int = TARGET_DIM,
                  device: str | None = None) -> list[dict[str, Any]]:
    """Evaluate the benchmark's targets on ``rows`` (of one device: ``device`` or the first
    row's). Each result is ``{"target", "value", "limit", "holds"}``; ``holds`` is ``None``
    when the rows lack what the target needs.

    * default SSM on ``ScoreMLP`` at most 1.8 x DSM at ``dim``;
    * default SSM on a generic score function within 5 % of double-backprop SSM at ``dim``;
    * finite-difference SSM at most 1.7 x DSM at ``dim``;
    * exact SM by vmap faster than the loop at every ``d >= 64`` where both ran;
    * peak memory of the default SSM step flat in ``d`` within a factor 2 (largest / smallest
      over all ``d``), while exact SM's (vmap) grows (more than 2x from its smallest to its
      largest ``d``).
    """
    if not rows:
        raise ValueError("rows must hold at least one benchmark row")
    device = device or rows[0]["device"]
    rs = [r for r in rows if r["device"] == device and r["status"] == STATUS_OK]

    def at(variant: str, d: int = dim) -> dict[str, Any] | None:
        return next((r for r in rs if r["variant"] == variant and r["dim"] == d), None)

    out: list[dict[str, Any]] = []

    def ratio_target(text: str, variant: str, limit: float) -> None:
        r = at(variant)
        value = None if r is None or r["ratio_dsm"] is None else r["ratio_dsm"]
        out.append({"target": text, "value": value, "limit": limit,
                    "holds": None if value is None else value <= limit})

    ratio_target(f"default SSM on ScoreMLP <= 1.8 x DSM (d={dim})", "ssm_fast", 1.8)
    gen, bwd = at("ssm_generic"), at("ssm_backward")
    value = None if gen is None or bwd is None else gen["time_s"] / bwd["time_s"]
    out.append({"target": f"default SSM on a generic score fn within 5% of double backprop (d={dim})",
                "value": value, "limit": 1.05, "holds": None if value is None else value <= 1.05})
    ratio_target(f"finite-difference SSM <= 1.7 x DSM (d={dim})", "ssm_fd", 1.7)
    pairs = [(r["dim"], at("sm_loop", r["dim"]), r) for r in rs
             if r["variant"] == "sm_vmap" and r["dim"] >= 64]
    pairs = [(d, lp, vm) for d, lp, vm in pairs if lp is not None]
    worst = max((vm["time_s"] / lp["time_s"] for _, lp, vm in pairs), default=None)
    out.append({"target": "exact SM: vmap faster than loop at every d >= 64 (worst vmap/loop)",
                "value": worst, "limit": 1.0, "holds": None if worst is None else worst < 1.0})
    peaks = [r["peak_bytes"] for r in rs if r["variant"] == "ssm_fast" and r["peak_bytes"]]
    value = max(peaks) / min(peaks) if len(peaks) >= 2 else None
    out.append({"target": "peak memory of the default SSM step flat in d (max/min over d <= 2)",
                "value": value, "limit": 2.0, "holds": None if value is None else value <= 2.0})
    sm = sorted((r for r in rs if r["variant"] == "sm_vmap" and r["peak_bytes"]),
                key=lambda r: r["dim"])
    value = sm[-1]["peak_bytes"] / sm[0]["peak_bytes"] if len(sm) >= 2 else None
    out.append({"target": "peak memory of exact SM (vmap) grows with d (max-d / min-d > 2)",
                "value": value, "limit": 2.0, "holds": None if value is None else value > 2.0})
    return out


def format_targets(results: Sequence[dict[str, Any]]) -> str:
    """One entry per target: holds / fails / n.a., the measured value and the limit, wrapped to
    85 characters (the width of the book's output boxes)."""
    lines = []
    for t in results:
        mark = {True: "HOLDS", False: "FAILS", None: "n/a"}[t["holds"]]
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(textwrap.fill(f"[{mark:>5}] {t['target']}: {value} (limit {t['limit']})", width=85,
                                   subsequent_indent=" " * 8, break_long_words=False,
                                   break_on_hyphens=False))
    return "\n".join(lines)


CSV_FIELDS = ("device", "dim", "variant", "label", "status", "time_s", "time_q1_s", "time_q3_s",
              "n_repeats", "ratio_dsm", "peak_bytes", "flops", "flop_units", "flop_ratio_dsm",
              "hidden", "depth", "batch")


def write_results(rows: Sequence[dict[str, Any]], directory: str | Path, name: str, *,
                  meta: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``rows`` to ``directory/name.json`` (``{"meta": ..., "rows": ...}``, with the
    targets from :func:`check_targets` in ``meta["targets"]``) and ``directory/name.csv``.
    Returns the two paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    meta.setdefault("targets", {dev: check_targets(rows, device=dev)
                                for dev in dict.fromkeys(r["device"] for r in rows)})
    json_path, csv_path = directory / f"{name}.json", directory / f"{name}.csv"
    # each file is written beside its place and then renamed, so an earlier result is never
    # left half-overwritten
    tmp_json, tmp_csv = json_path.with_suffix(".json.tmp"), csv_path.with_suffix(".csv.tmp")
    tmp_json.write_text(json.dumps({"meta": meta, "rows": list(rows)}, indent=1) + "\n")
    with open(tmp_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp_json, json_path)
    os.replace(tmp_csv, csv_path)
    return json_path, csv_path


def read_results(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(meta, rows)`` from a JSON file written by :func:`write_results`."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "rows" not in data:
        raise ValueError(f"path must be a benchmark JSON written by write_results, got {path}")
    return data.get("meta", {}), data["rows"]


# --- exact SM: the library's default chunk against the loop and fixed chunks -----------------

def exact_sm_variants(dim: int, chunks: Sequence[int] | None = None) -> dict[str, dict[str, Any]]:
    """The exact-SM calls compared by :func:`exact_sm_defaults_sweep`, name -> keyword
    arguments of :func:`~ssm_lib.losses.exact_score_matching`: ``"default"`` (no arguments),
    ``"vmap"`` (``method="vmap"``, default chunk), ``"loop"``, and ``"chunk <c>"`` for each
    fixed chunk ``c`` (default: 4, 16, 64 and 256 where below ``dim``, and ``dim`` itself)."""
    if chunks is None:
        chunks = [4**k for k in range(1, 5) if 4**k < dim] + [dim]
    out: dict[str, dict[str, Any]] = {"default": {}, "vmap": {"method": "vmap"},
                                      "loop": {"method": "loop"}}
    for c in sorted({min(int(c), dim) for c in chunks}):
        out[f"chunk {c}"] = {"method": "vmap", "chunk_size": c}
    return out


def exact_sm_defaults_sweep(
    configs: Iterable[dict[str, Any]],
    *,
    chunks: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    repeats: int = 5,
    budget_s: float = 10.0,
    min_round_s: float = 20.0,
    max_repeats: int = 31,
    min_sample_s: float = 0.2,
    drop_above: float = 1.3,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Time exact SM's default (``exact_score_matching(score_fn, x)``) against the loop, the
    ``"vmap"`` method with its default chunk, and fixed chunks, side by side.

    Each config is a dict with ``network`` (a key of :data:`NETWORKS`), ``dim``, ``hidden``,
    ``depth`` and ``batch``. Every variant (:func:`exact_sm_variants`) runs ``zero_grad``, the
    loss and ``backward`` on the same network and batch: one untimed step (a variant whose
    step exceeds ``budget_s`` is dropped), then ``repeats`` rounds in which every variant takes
    one timed sample, in an order rotated each round (at least ``repeats`` rounds, more for fast
    configs: as many as take about ``min_round_s`` seconds in all, up to ``max_repeats``). A
    sample is the mean of as many consecutive steps as take about ``min_sample_s``. After three
    rounds, fixed chunks slower than ``drop_above`` times the fastest variant so far stop
    (their median is then over three samples); the default, ``"vmap"`` and the loop run all
    rounds.
    Returns one row per config: ``times``
    (variant -> median seconds), ``plan`` (the method and chunk the default chose),
    ``best_chunk``/``best_chunk_s`` (the fastest fixed chunk), ``loop_s``, ``default_s``,
    ``vmap_s`` and ``default_vs_best`` = default / min(loop, best fixed chunk) (likewise
    ``vmap_vs_best``)."""
    _positive_int(repeats, "repeats")
    dev = resolve_device(device)
    say = progress or (lambda _msg: None)
    rows = []
    # the first vmap call of a process builds its batching rules (seconds): not in any cell
    warm = torch.nn.Linear(2, 2).to(dev)
    exact_score_matching(warm, torch.zeros(1, 2, device=dev), method="vmap").backward()
    for cfg in configs:
        net_kind, dim = cfg["network"], int(cfg["dim"])
        hidden, depth, batch = int(cfg["hidden"]), int(cfg.get("depth", 3)), int(cfg["batch"])
        torch.manual_seed(seed)
        model, score_fn = make_network(net_kind, dim, hidden=hidden, depth=depth)
        model = model.to(dev)
        score_fn = score_from_energy(model) if net_kind == "energy" else model
        x = torch.randn(batch, dim, generator=torch.Generator(device=dev).manual_seed(seed), device=dev)
        with torch.enable_grad():
            s = score_fn(x.detach().requires_grad_(True))
        row_bytes = exact_chunking.saved_bytes(s) + 2 * x.numel() * x.element_size()
        del s
        plan = exact_chunking.plan("auto", dim, row_bytes, dev, batch=batch)

        def make_step(kwargs: dict[str, Any], model: torch.nn.Module = model,
                      score_fn: Callable[[torch.Tensor], torch.Tensor] = score_fn,
                      x: torch.Tensor = x) -> Callable[[], None]:
            def step() -> None:
                model.zero_grad(set_to_none=False)
                exact_score_matching(score_fn, x, **kwargs).backward()
            return step

        steps, times, inner, round_s = {}, {}, {}, 0.0
        for name, kwargs in exact_sm_variants(dim, chunks).items():
            steps[name] = make_step(kwargs)
            first = _timed(steps[name], dev)
            if first > budget_s:
                del steps[name]
                say(f"{net_kind} d={dim}: {name} skipped (> {budget_s} s)")
                continue
            times[name] = []
            # fast steps are timed in groups of about min_sample_s, so that a scheduler
            # time slice on a busy machine is not a large part of one sample
            inner[name] = max(1, math.ceil(min_sample_s / max(first, 1e-9)))
            round_s += first * inner[name]
        order = list(steps)
        # no variant within budget_s (a large d on a slow or busy machine): a row of untimed
        # variants, which the tables show as '-' instead of stopping the sweep
        n_rounds = (max(repeats, min(max_repeats, math.ceil(min_round_s / max(round_s, 1e-9))))
                    if order else 0)
        for r in range(n_rounds):
            if r == 3:  # fixed chunks far behind the best leave the race: more rounds for the rest
                lead = min(statistics.median(ts) for ts in times.values())
                order = [n for n in order if not n.startswith("chunk ")
                         or statistics.median(times[n]) <= drop_above * lead]
            for name in order[r % len(order):] + order[:r % len(order)]:
                times[name].append(_timed_group(steps[name], dev, inner[name]))
        med = {name: statistics.median(ts) for name, ts in times.items()}
        fixed = {int(n.split()[1]): t for n, t in med.items() if n.startswith("chunk ")}
        best_c = min(fixed, key=fixed.get) if fixed else None
        timed_best = [t for t in (med.get("loop"), fixed.get(best_c) if best_c else None) if t]
        best = min(timed_best) if timed_best else None  # neither the loop nor a chunk in budget
        row = {"network": net_kind, "dim": dim, "hidden": hidden, "depth": depth, "batch": batch,
               "device": str(dev), "threads": torch.get_num_threads(), "row_bytes": row_bytes,
               "plan": {"method": plan.method, "chunk": plan.chunk, "budget_bytes": plan.budget_bytes},
               "times": med, "n_repeats": n_rounds, "loop_s": med.get("loop"),
               "default_s": med.get("default"), "vmap_s": med.get("vmap"), "best_chunk": best_c,
               "best_chunk_s": fixed.get(best_c) if best_c else None,
               "default_vs_best": med["default"] / best if "default" in med and best else None,
               "vmap_vs_best": med["vmap"] / best if "vmap" in med and best else None,
               "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
        row["noise"] = _noise(row)
        rows.append(row)
        say(format_exact_sm_defaults([row], header=False))
    return rows


def _noise(row: dict[str, Any]) -> float | None:
    """max / min of the medians of the variants that run the default's own computation: the
    loop when the default chose it, else ``"vmap"`` and the fixed chunk it chose."""
    plan, t = row["plan"], row["times"]
    same = ["loop"] if plan["method"] == "loop" else ["vmap", f"chunk {plan['chunk']}"]
    vals = [t[n] for n in ["default", *same] if t.get(n)]
    return max(vals) / min(vals) if len(vals) >= 2 else None


def format_exact_sm_defaults(rows: Sequence[dict[str, Any]], header: bool = True) -> str:
    """One line per :func:`exact_sm_defaults_sweep` row: the default's choice and time, the
    ``"vmap"`` method's default, the loop, the best and the full (``chunk = d``) fixed chunk,
    in ms, with ``R`` (the estimated MiB of one backward pass), the default's ratio to the
    best of the loop and the fixed chunks, and ``noise``: max / min of the medians of the
    variants that run the same computation as the default (``"vmap"``, and the fixed chunk or
    loop it chose)."""
    def ms(t: float | None) -> str:
        return "-" if t is None else f"{t * 1e3:.0f}"

    head = (f"{'network':<10} {'d':>5} {'h':>5} {'B':>4} {'thr':>3} {'reps':>4} {'R MiB':>6} "
            f"{'default':>10} {'ms':>7} {'vmap':>7} {'loop':>7} {'best chunk':>13} {'chunk=d':>7} "
            f"{'dflt/best':>9} {'vmap/best':>9} {'noise':>5}")
    lines = [head, "-" * len(head)] if header else []
    for r in rows:
        p = r["plan"]
        choice = "loop" if p["method"] == "loop" else f"vmap {p['chunk']}"
        best = "-" if r["best_chunk"] is None else f"{ms(r['best_chunk_s'])} ({r['best_chunk']})"
        full = r["times"].get(f"chunk {r['dim']}")
        lines.append(f"{r['network']:<10} {r['dim']:>5} {r['hidden']:>5} {r['batch']:>4} {r['threads']:>3} "
                     f"{r['n_repeats']:>4} {r['row_bytes'] / 2**20:>6.2f} "
                     f"{choice:>10} {ms(r['default_s']):>7} {ms(r['vmap_s']):>7} {ms(r['loop_s']):>7} "
                     f"{best:>13} {ms(full):>7} {r['default_vs_best'] or math.nan:>9.2f} "
                     f"{r['vmap_vs_best'] or math.nan:>9.2f} {_noise(r) or math.nan:>5.2f}")
    return "\n".join(lines)


def exact_sm_defaults_frame(rows: Sequence[dict[str, Any]], threads: int | None = None):
    """The rows of :func:`exact_sm_defaults_sweep` as a compact ``pandas.DataFrame`` for a page
    (short column names, so that it fits a book column): ``network``, ``d``, ``width``,
    ``batch``, ``threads``; ``chose`` (what the default ran: ``loop``, or ``k=<chunk>`` for the
    batched passes); the medians in ms of the ``default``, the ``loop`` and the ``best fixed``
    chunk (text: ms and the chunk in parentheses); ``dflt/best`` (default over the best of the
    loop and the fixed chunks) and ``noise`` (see :func:`format_exact_sm_defaults`). With
    ``threads``, only the rows measured with that many torch threads, without that column."""
    import pandas as pd

    out = []
    for r in rows:
        p = r["plan"]
        best = "-" if r["best_chunk_s"] is None else f"{r['best_chunk_s'] * 1e3:.0f} ({r['best_chunk']})"
        out.append({
            "network": r["network"], "d": r["dim"], "width": r["hidden"], "batch": r["batch"],
            "threads": r["threads"],
            "chose": "loop" if p["method"] == "loop" else f"k={p['chunk']}",
            "default": r["default_s"] * 1e3, "loop": r["loop_s"] * 1e3, "best fixed": best,
            "dflt/best": r["default_vs_best"], "noise": _noise(r),
        })
    frame = pd.DataFrame(out)
    if threads is not None:
        frame = frame[frame["threads"] == threads].drop(columns="threads")
    return frame


def exact_sm_defaults_table(rows: Sequence[dict[str, Any]], threads: int | None = None):
    """:func:`exact_sm_defaults_frame` as a page shows it: a pandas ``Styler``, times in whole
    ms, ratios to two decimals, no index."""
    return (exact_sm_defaults_frame(rows, threads).style.format(precision=2, na_rep="-")
            .format(precision=0, subset=["default", "loop"]).hide())


def exact_sm_defaults_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    r"""The numbers the chapters quote from an exact-SM defaults table (one-thread rows only):

    * ``worst``: the largest ``default / best`` and the row it occurs in (``worst_row``);
    * ``worst_quiet``: the largest over the rows whose ``noise`` is at most 1.1;
    * ``d2_batched_vs_loop``: (min, max) over the :math:`d = 2` rows of the time of both
      passes batched (``chunk 2``) over the loop's -- where ``method="auto"`` keeps the loop;
    * ``d16_default_vs_loop``: (min, max) over the :math:`d = 16` rows of default over loop;
    * ``full_vs_loop``: network -> (min, max) over its rows with :math:`d \ge 64` of the time of
      all :math:`d` passes stacked (``chunk d``) over the loop's.
    """
    one = [r for r in rows if r["threads"] == 1] or list(rows)
    worst = max(one, key=lambda r: r["default_vs_best"])
    quiet = [r["default_vs_best"] for r in one if (_noise(r) or 1.0) <= 1.1]

    def spread(vals: list[float]) -> tuple[float, float] | None:
        return (min(vals), max(vals)) if vals else None

    return {
        "worst": worst["default_vs_best"],
        "worst_row": {k: worst[k] for k in ("network", "dim", "hidden", "batch")},
        "worst_noise": _noise(worst),
        "worst_quiet": max(quiet) if quiet else None,
        "d2_batched_vs_loop": spread([r["times"]["chunk 2"] / r["loop_s"] for r in one
                                      if r["dim"] == 2 and "chunk 2" in r["times"]]),
        "d16_default_vs_loop": spread([r["default_s"] / r["loop_s"] for r in one if r["dim"] == 16]),
        "full_vs_loop": {net: spread([r["times"][f"chunk {r['dim']}"] / r["loop_s"] for r in one
                                      if r["network"] == net and r["dim"] >= 64
                                      and f"chunk {r['dim']}" in r["times"]])
                         for net in dict.fromkeys(r["network"] for r in one)},
        "n_rows": len(one),
    }


def committed_exact_sm_defaults(
    start: str | Path = ".", fallback: str | Path | None = REPOSITORY,
) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """``(path, meta, rows)`` of the committed exact-SM defaults table
    (``benchmarks/results/exact_sm_defaults/exact_sm_defaults-*.json``, the first in name order
    without ``-closer``), found from ``start`` or a folder above it, else in ``fallback`` (by
    default the repository that holds ``booktools``, so a notebook run in an output folder
    outside the repository, ``tools/reproduce.py --output-dir /tmp/...``, still finds it;
    ``None``: no fallback)."""
    here = Path(start).resolve()
    folders = [here, *here.parents]
    if fallback is not None:
        folders.append(Path(fallback).resolve())
    for folder in folders:
        found = sorted(p for p in (folder / "benchmarks" / "results" / "exact_sm_defaults")
                       .glob("exact_sm_defaults-*.json") if "-closer" not in p.stem) \
            if (folder / "benchmarks").is_dir() else []
        if found:
            data = json.loads(found[0].read_text())
            return found[0], data.get("meta", {}), data["rows"]
    also = "" if fallback is None else f" or in {Path(fallback).resolve()}"
    raise FileNotFoundError(f"no benchmarks/results/exact_sm_defaults/exact_sm_defaults-*.json "
                            f"in {here} or above{also}: run benchmarks/exact_sm_defaults.py")
