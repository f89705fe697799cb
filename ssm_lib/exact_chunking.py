r"""How exact score matching batches its :math:`d` backward passes (``method`` and ``chunk_size``
of :func:`ssm_lib.losses.jacobian_trace` left to the library): :func:`plan` chooses, and
:func:`saved_bytes` and :func:`budget_bytes` give the sizes it chooses from.

Exact score matching needs the :math:`d` diagonal entries of :math:`\nabla_x s(x)`, one backward
pass (a vector-Jacobian product with a basis vector :math:`e_i`) per entry. The ``"vmap"`` path
stacks ``chunk`` of these passes into one batched pass. Every pass costs the same arithmetic
either way; what changes is the size of the tensors each operation touches: a batched pass of
``chunk`` rows works on tensors ``chunk`` times those of one pass.

*The size of one pass.* After the score is evaluated, the tensors its autograd graph saved
for the backward pass are counted (:func:`saved_bytes`), leaving out parameters, which every
pass shares. Adding the input and the score
themselves (a pass reads a basis vector and writes an input gradient, each of the shape of
``x``) gives :math:`R`, the bytes of one backward pass on the batch: about
:math:`B\,(d + d + \sum_l c_l h_l)` values for a batch of :math:`B` and layers of width
:math:`h_l` that save :math:`c_l` tensors each.

*The rule* (:func:`plan`, with :math:`B` the batch size; the ``DEFAULT_*`` constants below were
measured on the project's CPU and each can be overridden per call):

.. math::

    \mathrm{chunk} = \min\Big(d,\ \max\big(1, \lfloor \mathrm{budget}/R \rfloor\big),\
        \lceil 512/B \rceil\ \text{(CPU only)}\Big),

then evened out over the passes (``ceil(d / ceil(d / chunk))``, so that no small remainder
pass is left), where

* CPU: budget = the smaller of :data:`DEFAULT_CPU_CHUNK_BYTES` (32 MiB) and
  :data:`DEFAULT_MEMORY_FRACTION` of the available memory
  (``psutil.virtual_memory().available``), and at most :data:`DEFAULT_CPU_TARGET_ROWS` (512)
  rows of the batched matrix products. Batching pays on a CPU because each operation runs
  once on ``chunk * B`` rows instead of ``chunk`` times on ``B`` rows: the per-operation
  overhead (dispatch, autograd bookkeeping) is paid once, and matrix products on taller
  matrices run more efficiently. Both gains are used up at a few hundred rows; larger chunks
  only add memory traffic (tensors of ``chunk * B * width`` values that no longer stay in
  cache) and make the batched pass *slower* -- several times slower than the loop with all
  :math:`d` rows at once. Measured in ``benchmarks/results/exact_sm_defaults/``.
* CUDA: budget = :data:`DEFAULT_MEMORY_FRACTION` of the free device memory
  (``torch.cuda.mem_get_info``), no row limit: a GPU running a small pass is limited by
  kernel launches, so the largest chunk that fits is the fastest.
* A ``memory_budget`` given by the caller (bytes) caps the budget on every device.

*What the whole trace keeps* (:func:`check_graph_fits`). Every pass is taken with
``create_graph=True`` (the trace is differentiated again, with respect to the parameters), so the
trace keeps the graphs of all :math:`d` passes until it is freed, whatever the chunk: measured
0.54 to 4.0 times :math:`d\,R` for ``ScoreMLP``, energy MLPs (softplus, SiLU), plain
``nn.Sequential`` networks and NICE, by the loop and by ``"vmap"`` at every chunk, for
:math:`d` from 2 to 784 and widths from 8 to 400 (the low end: networks much narrower than
:math:`d`, whose :math:`R` is mostly the input and the score). ``tests/test_exact_chunking.py``
keeps the part of that range that runs in seconds (the library's networks, :math:`d \le 120`,
both float types) above twice the bound.
With a margin of two below the smallest of these, :data:`KEPT_GRAPH_LOWER`
:math:`\cdot\, d\,R` is taken as a lower bound of what one call needs, and a batch for which it
exceeds the available memory is refused with a ``ValueError`` naming ``x`` (never an
allocation failure deep in autograd, or a machine driven into swap). A batch that passes may
still need up to sixteen times that bound: the check stops what cannot fit by far, not
everything that will not.

``method="auto"`` takes that chunk with ``"vmap"``, except where it is a single row (one pass
already fills the budget, a batch of at least 512 on a CPU) or :math:`d \le 2`: there it runs
the plain loop, which does the same passes without building basis vectors and batching. (A
``"vmap"`` chunk of one row was measured slower than the loop. At :math:`d = 2`, batching both
passes took 0.90 to 1.12 times the loop's time on the project's CPU, depending on the network:
faster for ``ScoreMLP`` (SiLU), slower for small softplus networks, so neither choice is within
10% everywhere and the loop, which needs no batching, is kept.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._checks import check_choice, check_count, check_number

__all__ = [
    "CPU_MEMORY_REFRESH_S", "DEFAULT_AUTO_LOOP_MAX_DIM", "DEFAULT_CPU_CHUNK_BYTES",
    "DEFAULT_CPU_TARGET_ROWS", "DEFAULT_MEMORY_FRACTION", "GRAPH_CHECK_FRACTION", "KEPT_GRAPH_LOWER",
    "ExactPlan", "available_memory", "budget_bytes", "check_graph_fits", "plan", "saved_bytes",
]

#: Default CPU byte budget of one batched pass (about the size of a last-level cache), measured
#: on the project's CPU: see the module docstring and ``benchmarks/results/exact_sm_defaults/``.
DEFAULT_CPU_CHUNK_BYTES = 32 * 2**20
#: Default CPU cap on the rows (chunk x batch) of the matrix products of one batched pass
#: (measured on the project's CPU: more rows no longer ran faster)
DEFAULT_CPU_TARGET_ROWS = 512
#: ``method="auto"`` runs the loop up to this many dimensions by default (measured on the
#: project's CPU: batching two rows saves less than building the basis vectors costs)
DEFAULT_AUTO_LOOP_MAX_DIM = 2
#: Default share of the available memory (CPU) or free device memory (CUDA) one batched pass
#: may use
DEFAULT_MEMORY_FRACTION = 0.25


@dataclass(frozen=True)
class ExactPlan:
    r"""What :func:`ssm_lib.losses.jacobian_trace` runs: ``method`` (``"loop"`` or ``"vmap"``),
    ``chunk`` (rows per batched pass; 1 for the loop), ``row_bytes`` (:math:`R`, the estimated
    bytes of one backward pass on the batch) and ``budget_bytes`` (what ``chunk * row_bytes``
    was held under; both 0 where the choice needed no sizes: the loop, an explicit chunk, or
    ``"auto"`` at :math:`d \le 2`)."""

    method: str
    chunk: int
    row_bytes: int
    budget_bytes: int


_SAVED_NAMES: dict[type, tuple[str, ...]] = {}


def _saved_names(node_type: type) -> tuple[str, ...]:
    """The ``_saved_*`` attributes of an autograd node class (``dir`` is slow: once per class)."""
    names = _SAVED_NAMES.get(node_type)
    if names is None:
        names = _SAVED_NAMES[node_type] = tuple(n for n in dir(node_type) if n.startswith("_saved_"))
    return names


def saved_bytes(output: torch.Tensor) -> int:
    """Bytes of the tensors that the autograd graph of ``output`` holds for its backward pass.

    Walks the graph from ``output.grad_fn`` and adds up every tensor a node saved (its
    ``_saved_*`` attributes), each once; leaf tensors that require grad (parameters, the input
    itself) and views of them are left out, as every pass shares them. Reading the graph
    after the fact, rather than hooking into it, keeps no reference that would outlive it."""
    seen_nodes: set[int] = set()
    seen_tensors: set[tuple[int, tuple[int, ...]]] = set()
    total = 0
    stack = [output.grad_fn] if output.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        for name in _saved_names(type(node)):
            try:
                value = getattr(node, name)
            except RuntimeError:  # already freed
                continue
            for t in value if isinstance(value, (tuple, list)) else (value,):
                if not isinstance(t, torch.Tensor):
                    continue
                base = t if t._base is None else t._base
                if base.is_leaf and base.requires_grad:
                    continue
                key = (t.data_ptr(), tuple(t.shape))
                if key not in seen_tensors:
                    seen_tensors.add(key)
                    total += t.numel() * t.element_size()
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return total


def _as_device(device: object) -> torch.device:
    """``device`` (a ``torch.device`` or a name such as ``"cpu"``) as a ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError:
            pass
    raise ValueError(f"device must be a torch.device or a device name such as 'cpu' or 'cuda', "
                     f"got {device!r}")


def _check_memory_budget(memory_budget: object) -> float | None:
    return None if memory_budget is None else check_number(memory_budget, "memory_budget", positive=True)


#: seconds for which a CPU reading of the available memory is reused (reading it costs about
#: 40 microseconds, several percent of a small exact-SM step, and it changes slowly)
CPU_MEMORY_REFRESH_S = 1.0
_cpu_reading: tuple[float, int] | None = None  # (time.monotonic() of the reading, bytes)


def available_memory(device: torch.device) -> int:
    """Bytes of memory available for new tensors on ``device``: ``torch.cuda.mem_get_info``'s
    free memory on CUDA; elsewhere ``psutil.virtual_memory().available`` (falling back to
    ``/proc/meminfo``'s ``MemAvailable``, then to 4 GiB when neither can be read), read at
    most once every :data:`CPU_MEMORY_REFRESH_S` seconds. ``device`` may be a name (``"cpu"``)."""
    global _cpu_reading
    device = _as_device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    now = time.monotonic()
    if _cpu_reading is not None and now - _cpu_reading[0] < CPU_MEMORY_REFRESH_S:
        return _cpu_reading[1]
    _cpu_reading = (now, _read_cpu_available())
    return _cpu_reading[1]


def _read_cpu_available() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


def budget_bytes(device: torch.device, memory_budget: float | None = None, *,
                 cpu_chunk_bytes: int = DEFAULT_CPU_CHUNK_BYTES,
                 memory_fraction: float = DEFAULT_MEMORY_FRACTION) -> int:
    """The byte budget of one batched pass on ``device`` (the rule in the module docstring):
    ``memory_fraction`` of :func:`available_memory`, at most ``cpu_chunk_bytes`` on a CPU and
    at most ``memory_budget`` (bytes, ``> 0``) when given."""
    device = _as_device(device)
    _check_memory_budget(memory_budget)
    budget = int(memory_fraction * available_memory(device))
    if device.type == "cpu":
        budget = min(budget, int(cpu_chunk_bytes))
    if memory_budget is not None:
        budget = min(budget, int(memory_budget))
    return max(budget, 0)


#: What the trace keeps is taken to be at least this times :math:`d\,R` (measured: 0.54 to 4.0
#: times; see the module docstring)
KEPT_GRAPH_LOWER = 0.25
#: The kept graphs are measured (:func:`check_graph_fits`) only when their cheap lower bound
#: :math:`d\,(|x| + |s|)` exceeds this share of the available memory: below it no batch comes
#: near the limit unless its network saves over a thousand times the input's size per pass.
GRAPH_CHECK_FRACTION = 1 / 1024


def check_graph_fits(dim: int, row_bytes: Callable[[], int], io_bytes: int, device: torch.device) -> None:
    r"""Refuse a batch whose exact score matching cannot fit in memory (module docstring).

    The :math:`d` backward passes' graphs, kept by the trace, take at least
    :data:`KEPT_GRAPH_LOWER` :math:`\cdot\, d\,R` bytes (``row_bytes()``, :math:`R`); a
    ``ValueError`` naming ``x`` is raised when that exceeds :func:`available_memory`.
    ``io_bytes`` (the bytes of ``x`` and of the score) is a lower bound of :math:`R`: while
    :math:`d` times it stays under :data:`GRAPH_CHECK_FRACTION` of the available memory, the
    graph is not walked (that costs about 0.1 ms, several percent of a small step)."""
    available = available_memory(device)
    if dim * io_bytes <= GRAPH_CHECK_FRACTION * available:
        return
    row = int(row_bytes())
    needed = KEPT_GRAPH_LOWER * dim * row
    if needed > available:
        raise ValueError(
            f"x: exact score matching of this batch keeps the graphs of its {dim} backward passes "
            f"(one per dimension, kept to differentiate the trace), at least {needed / 2**30:.2f} GiB, "
            f"more than the {available / 2**30:.2f} GiB available on {device}; use a smaller batch "
            f"(the size grows with it)")


def plan(method: str, dim: int, row_bytes: int | Callable[[], int], device: torch.device, *,
         batch: int = 1, chunk_size: int | None = None, memory_budget: float | None = None,
         cpu_chunk_bytes: int = DEFAULT_CPU_CHUNK_BYTES, cpu_target_rows: int = DEFAULT_CPU_TARGET_ROWS,
         memory_fraction: float = DEFAULT_MEMORY_FRACTION, auto_loop_max_dim: int = DEFAULT_AUTO_LOOP_MAX_DIM
         ) -> ExactPlan:
    r"""Choose the method and chunk of exact score matching (the rule in the module docstring).

    Args:
        method: ``"auto"``, ``"loop"`` or ``"vmap"``.
        dim: :math:`d`, the number of Jacobian rows.
        row_bytes: :math:`R`, the estimated bytes of one backward pass on the batch, or a
            function returning it, called only when the choice needs it (not for the loop, an
            explicit ``chunk_size`` or ``"auto"`` at :math:`d \le` ``auto_loop_max_dim``: the
            walk over the graph and the memory query cost about 0.1 ms, a few percent of a
            small step).
        device: where the passes run.
        batch: the batch size :math:`B` (on a CPU the chunk is at most
            ``ceil(cpu_target_rows / batch)``).
        chunk_size: an explicit chunk, used as given by ``"vmap"`` and ``"auto"``.
        memory_budget: optional cap in bytes on ``chunk * row_bytes``.
        cpu_chunk_bytes: the CPU byte budget of one batched pass (default
            :data:`DEFAULT_CPU_CHUNK_BYTES`).
        cpu_target_rows: the CPU cap on ``chunk * batch`` rows (default
            :data:`DEFAULT_CPU_TARGET_ROWS`).
        memory_fraction: the share of the available (CPU) or free (CUDA) memory one pass may
            use (default :data:`DEFAULT_MEMORY_FRACTION`).
        auto_loop_max_dim: ``"auto"`` runs the loop up to this :math:`d` (default
            :data:`DEFAULT_AUTO_LOOP_MAX_DIM`). The defaults were measured on the project's
            CPU.

    Returns:
        The :class:`ExactPlan`; its ``row_bytes`` and ``budget_bytes`` are 0 where the choice
        did not need them.

    Example: ``plan("auto", 256, 4 * 2**20, torch.device("cpu"), batch=64)`` gives, with at least
    128 MiB of memory available,
    ``ExactPlan("vmap", 8, ...)``: 512 rows of matrix products at most, so 8 passes stacked.

    Raises ``ValueError`` naming the argument for an unknown ``method``, a ``dim``, ``batch``
    or ``chunk_size`` that is not a whole number ``>= 1``, a ``memory_budget`` that is not
    positive, or a ``device`` that is neither a ``torch.device`` nor a device name.
    """
    check_choice(method, ("auto", "loop", "vmap"), "method")
    dim = check_count(dim, "dim")
    batch = check_count(batch, "batch")
    if chunk_size is not None:
        chunk_size = check_count(chunk_size, "chunk_size")
    _check_memory_budget(memory_budget)
    device = _as_device(device)
    if method == "loop" or (method == "auto" and chunk_size is None and dim <= auto_loop_max_dim):
        return ExactPlan("loop", 1, 0, 0)
    if chunk_size is not None:
        return ExactPlan("vmap", min(chunk_size, dim), 0, 0)
    row_bytes = max(int(row_bytes() if callable(row_bytes) else row_bytes), 1)
    budget = budget_bytes(device, memory_budget, cpu_chunk_bytes=cpu_chunk_bytes,
                          memory_fraction=memory_fraction)
    chunk = min(dim, max(1, budget // row_bytes))
    if device.type == "cpu":
        chunk = min(chunk, -(-int(cpu_target_rows) // max(int(batch), 1)))
    chunk = -(-dim // -(-dim // chunk))  # equal chunks: no small remainder pass
    if method == "auto" and chunk <= 1:
        return ExactPlan("loop", 1, row_bytes, budget)
    return ExactPlan("vmap", chunk, row_bytes, budget)
