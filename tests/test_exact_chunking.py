"""How exact score matching picks its method and chunk (ssm_lib.exact_chunking): the chunk
respects the byte budget on CPU and (mocked) CUDA, ``method="auto"`` picks as documented, and
every choice gives the loop's result to rounding in float64. No timings here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssm_lib import exact_chunking as ec
from ssm_lib import losses
from ssm_lib.losses import exact_score_matching, jacobian_trace
from ssm_lib.models import EnergyMLP, ScoreMLP, score_from_energy

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
MiB = 2**20


def _sequential(d: int, h: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, h), nn.Softplus(), nn.Linear(h, h), nn.Softplus(),
                         nn.Linear(h, d)).double()


def _networks(d: int, h: int = 12):
    torch.manual_seed(0)
    energy = EnergyMLP(d, hidden=h, depth=2, activation="softplus").double()
    return {"scoremlp": ScoreMLP(d, hidden=h, depth=2).double(), "sequential": _sequential(d, h),
            "energy": score_from_energy(energy)}


@pytest.fixture
def plans(monkeypatch):
    """Record every plan jacobian_trace makes."""
    seen: list[ec.ExactPlan] = []
    real = ec.plan

    def spy(*args, **kwargs):
        p = real(*args, **kwargs)
        seen.append(p)
        return p

    monkeypatch.setattr(losses._exact_chunking, "plan", spy)
    return seen


@pytest.mark.parametrize("budget", [1, 100, 5000, 12345, 10**6])
@pytest.mark.parametrize("dim", [1, 2, 7, 64, 300])
def test_chunk_is_the_largest_equal_split_within_the_budget(budget, dim):
    row = 97
    p = ec.plan("vmap", dim, row, CPU, memory_budget=budget)
    assert p.method == "vmap" and 1 <= p.chunk <= dim
    assert p.chunk == 1 or p.chunk * row <= budget
    # the fewest passes the budget allows, split evenly: one more pass would not be needed
    n_passes = -(-dim // p.chunk)
    fits = max(1, min(dim, budget // row))
    assert n_passes == -(-dim // fits)


def test_cpu_budget_is_the_cache_size_or_a_quarter_of_available_memory(monkeypatch):
    monkeypatch.setattr(ec, "available_memory", lambda device: 2**40)
    assert ec.budget_bytes(CPU) == ec.DEFAULT_CPU_CHUNK_BYTES
    assert ec.budget_bytes(CPU, memory_budget=3 * MiB) == 3 * MiB
    monkeypatch.setattr(ec, "available_memory", lambda device: 8 * MiB)
    assert ec.budget_bytes(CPU) == 2 * MiB  # a quarter of what is available
    p = ec.plan("auto", 1000, MiB, CPU)
    assert (p.method, p.chunk) == ("vmap", 2)


def test_the_measured_defaults_can_be_overridden_per_call(monkeypatch):
    monkeypatch.setattr(ec, "available_memory", lambda device: 2**40)
    # rows cap: ceil(512 / 16) = 32 by default, ceil(1024 / 16) = 64 when asked
    assert ec.plan("auto", 4096, 10, CPU, batch=16).chunk == 32
    assert ec.plan("auto", 4096, 10, CPU, batch=16, cpu_target_rows=1024).chunk == 64
    # byte budget: 32 MiB / 1 MiB rows by default, 4 MiB / 1 MiB when asked
    assert ec.plan("auto", 4096, MiB, CPU).chunk == 32
    assert ec.plan("auto", 4096, MiB, CPU, cpu_chunk_bytes=4 * MiB).chunk == 4
    monkeypatch.setattr(ec, "available_memory", lambda device: 8 * MiB)
    assert ec.budget_bytes(CPU, memory_fraction=0.5) == 4 * MiB
    assert ec.plan("auto", 4096, MiB, CPU, memory_fraction=0.5).chunk == 4
    # the dimension up to which "auto" keeps the loop
    assert ec.plan("auto", 8, 10, CPU).method == "vmap"
    assert ec.plan("auto", 8, 10, CPU, auto_loop_max_dim=8).method == "loop"


def test_cpu_available_memory_comes_from_psutil(monkeypatch):
    psutil = pytest.importorskip("psutil")

    class Mem:
        available = 40 * MiB

    reads = []
    monkeypatch.setattr(psutil, "virtual_memory", lambda: reads.append(1) or Mem())
    monkeypatch.setattr(ec, "_cpu_reading", None)
    clock = [100.0]
    monkeypatch.setattr(ec.time, "monotonic", lambda: clock[0])
    assert ec.available_memory(CPU) == 40 * MiB
    assert ec.budget_bytes(CPU) == 10 * MiB
    assert len(reads) == 1  # reused within CPU_MEMORY_REFRESH_S
    Mem.available = 80 * MiB
    clock[0] += ec.CPU_MEMORY_REFRESH_S
    assert ec.available_memory(CPU) == 80 * MiB and len(reads) == 2  # read again after it


def test_cuda_budget_from_mem_get_info(monkeypatch):
    calls = []

    def mem_get_info(device=None):
        calls.append(device)
        return 8 * 2**30, 80 * 2**30  # free, total

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert ec.budget_bytes(CUDA) == 2 * 2**30  # no cache cap on a GPU: a quarter of free memory
    p = ec.plan("auto", 4096, 64 * MiB, CUDA)
    assert (p.method, p.chunk) == ("vmap", 32) and p.chunk * p.row_bytes <= p.budget_bytes
    p = ec.plan("auto", 4096, 64 * MiB, CUDA, memory_budget=200 * MiB)
    assert (p.method, p.chunk) == ("vmap", 3)
    p = ec.plan("auto", 4096, 4 * 2**30, CUDA)  # one pass is bigger than the budget
    assert (p.method, p.chunk) == ("loop", 1)
    assert calls and all(d == CUDA for d in calls)


def test_cpu_chunk_stops_at_the_target_rows_but_cuda_does_not(monkeypatch):
    monkeypatch.setattr(ec, "available_memory", lambda device: 2**40)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**40, 2**41))
    rows = ec.DEFAULT_CPU_TARGET_ROWS
    for batch in (16, 32, 100, 256):
        p = ec.plan("auto", 4096, 1, CPU, batch=batch)
        assert p.method == "vmap" and p.chunk * batch <= rows + batch and p.chunk >= rows // batch
    assert ec.plan("auto", 4096, 1, CPU, batch=rows).method == "loop"  # a batch this large: loop
    assert ec.plan("auto", 4096, 1, CUDA, batch=rows) == ec.ExactPlan("vmap", 4096, 1, 2**38)
    # the byte budget still applies below the row limit
    assert ec.plan("auto", 4096, ec.DEFAULT_CPU_CHUNK_BYTES // 3, CPU, batch=16).chunk == 3


def test_auto_method_rule(monkeypatch):
    # the loop exactly where a batched pass would hold one row
    assert ec.plan("auto", 1, 10, CPU, memory_budget=10**9).method == "loop"
    monkeypatch.setattr(ec, "available_memory", lambda device: 2**30)  # no real CUDA needed
    for dev in (CPU, CUDA):  # up to two rows: the loop, on every device
        assert ec.plan("auto", ec.DEFAULT_AUTO_LOOP_MAX_DIM, 10, dev).method == "loop"
        assert ec.plan("vmap", ec.DEFAULT_AUTO_LOOP_MAX_DIM, 10, dev).method == "vmap"
        assert ec.plan("auto", ec.DEFAULT_AUTO_LOOP_MAX_DIM + 1, 10, dev, batch=8) == ec.ExactPlan(
            "vmap", ec.DEFAULT_AUTO_LOOP_MAX_DIM + 1, 10,
            2**28 if dev == CUDA else ec.DEFAULT_CPU_CHUNK_BYTES)
    assert ec.plan("auto", 50, 1000, CPU, memory_budget=1999).method == "loop"
    p = ec.plan("auto", 50, 1000, CPU, memory_budget=2000)
    assert (p.method, p.chunk) == ("vmap", 2)
    # an explicit chunk is used as given, the explicit methods are never overridden
    assert ec.plan("auto", 50, 1000, CPU, chunk_size=1, memory_budget=1).method == "vmap"
    assert ec.plan("vmap", 50, 1000, CPU, memory_budget=1) == ec.ExactPlan("vmap", 1, 1000, 1)
    assert ec.plan("loop", 50, 1, CPU, memory_budget=10**9).method == "loop"
    assert ec.plan("vmap", 50, 1, CPU, chunk_size=80, memory_budget=1).chunk == 50


def test_row_bytes_count_the_saved_activations_not_the_parameters():
    b, d, h = 4, 3, 5
    net = nn.Sequential(nn.Linear(d, h), nn.SiLU(), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, d)).double()
    x = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    # SiLU input, second Linear's input, tanh's output (= third Linear's input): 3 (b, h) tensors
    assert ec.saved_bytes(net(x)) == 3 * b * h * 8
    assert ec.saved_bytes(x + 1.0) == 0 and ec.saved_bytes(x) == 0  # nothing saved


def test_counting_keeps_no_reference_to_the_graph():
    import gc
    import weakref

    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh())  # tanh saves its own output
    x = torch.randn(4, 3, requires_grad=True)
    gc.disable()
    try:
        y = net(x)
        assert ec.saved_bytes(y) > 0
        ref = weakref.ref(y)
        del y
        assert ref() is None  # freed at once, no reference cycle left for the garbage collector
    finally:
        gc.enable()


@pytest.mark.parametrize("kind", ["scoremlp", "sequential", "energy"])
def test_trace_under_a_budget_respects_it(kind, plans):
    d, b = 9, 5
    f = _networks(d)[kind]
    x = torch.randn(b, d, dtype=torch.float64)
    jacobian_trace(f, x, method="vmap")
    row = plans[-1].row_bytes
    assert row >= 2 * b * d * 8  # at least the basis vector and the input gradient
    for rows_allowed in (1, 2, 4, d):
        jacobian_trace(f, x, memory_budget=rows_allowed * row + 1)
        p = plans[-1]
        assert p.row_bytes == row and p.budget_bytes == rows_allowed * row + 1
        if rows_allowed == 1:
            assert p.method == "loop"
        else:
            assert p.method == "vmap" and 2 <= p.chunk <= rows_allowed
            assert p.chunk * p.row_bytes <= rows_allowed * row + 1


@pytest.mark.parametrize("kind", ["scoremlp", "sequential", "energy"])
def test_every_choice_equals_the_loop_in_float64(kind, plans):
    d, b = 7, 4
    torch.manual_seed(1)
    x = torch.randn(b, d, dtype=torch.float64)
    f = _networks(d)[kind]
    params = [p for p in (f.energy_fn if kind == "energy" else f).parameters()]
    ref = exact_score_matching(f, x, method="loop", reduction="none")
    def grads_of(v):  # the energy's output bias does not enter the score: zero gradient
        gs = torch.autograd.grad(v.sum(), params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params, strict=True)]

    ref_grads = grads_of(ref)
    settings = [dict(), dict(method="vmap"), dict(method="auto", memory_budget=1)]
    jacobian_trace(f, x, method="vmap")
    row = plans[-1].row_bytes
    settings += [dict(method="vmap", memory_budget=row * k) for k in (1, 2, 3, 6)]
    settings += [dict(method=m, chunk_size=c) for m in ("auto", "vmap") for c in (1, 3, 7, 50)]
    chosen = set()
    for kw in settings:
        val = exact_score_matching(f, x, reduction="none", **kw)
        chosen.add((plans[-1].method, plans[-1].chunk))
        torch.testing.assert_close(val, ref, rtol=1e-12, atol=1e-12)
        for g, r in zip(grads_of(val), ref_grads, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    assert {("loop", 1), ("vmap", 1), ("vmap", 2), ("vmap", 3), ("vmap", 4), ("vmap", 7)} <= chosen


def test_default_method_is_auto_and_the_budget_is_checked():
    x = torch.randn(3, 4)
    f = _sequential(4, 8).float()
    with pytest.raises(ValueError, match="memory_budget"):
        exact_score_matching(f, x, memory_budget=0)
    with pytest.raises(ValueError, match="method"):
        exact_score_matching(f, x, method="fastest")
    torch.testing.assert_close(exact_score_matching(f, x), exact_score_matching(f, x, method="loop"))


def test_defaults_sweep_rows(tmp_path):
    from booktools import benchmark as bm

    cfgs = [dict(network=n, dim=5, hidden=6, depth=2, batch=3) for n in bm.NETWORKS]
    rows = bm.exact_sm_defaults_sweep(cfgs, repeats=2, min_round_s=0.0, min_sample_s=0.0, budget_s=60.0)
    assert [r["network"] for r in rows] == list(bm.NETWORKS)
    for r in rows:
        assert set(r["times"]) == {"default", "vmap", "loop", "chunk 4", "chunk 5"}
        best = min(r["loop_s"], r["best_chunk_s"])
        assert r["best_chunk_s"] == min(r["times"]["chunk 4"], r["times"]["chunk 5"])
        assert r["default_vs_best"] == pytest.approx(r["default_s"] / best)
        assert r["n_repeats"] == 2 and r["plan"]["method"] in ("loop", "vmap")
    table = bm.format_exact_sm_defaults(rows)
    assert len(table.splitlines()) == 2 + len(rows)


def test_defaults_sweep_keeps_a_row_when_no_variant_is_within_budget():
    """A large d on a slow or busy machine: every variant's first step over budget_s. The
    sweep returns the row untimed (the tables print '-') instead of dividing by zero
    (jacobian_cost's full profile stopped so on 2026-12-07)."""
    from booktools import benchmark as bm

    cfg = dict(network="scoremlp", dim=5, hidden=6, depth=2, batch=3)
    (row,) = bm.exact_sm_defaults_sweep([cfg], repeats=2, min_round_s=0.0, min_sample_s=0.0, budget_s=1e-12)
    assert row["times"] == {} and row["n_repeats"] == 0
    assert row["loop_s"] is row["default_s"] is row["best_chunk_s"] is row["default_vs_best"] is None
    assert "-" in bm.format_exact_sm_defaults([row]).splitlines()[-1]


def _defaults_row(network, dim, times, method="vmap", chunk=16, threads=1):
    fixed = {int(k.split()[1]): v for k, v in times.items() if k.startswith("chunk ")}
    best_c = min(fixed, key=fixed.get)
    best = min(times["loop"], fixed[best_c])
    return {"network": network, "dim": dim, "hidden": 8, "batch": 4, "threads": threads,
            "plan": {"method": method, "chunk": chunk}, "times": times, "loop_s": times["loop"],
            "default_s": times["default"], "vmap_s": times["vmap"], "best_chunk": best_c,
            "best_chunk_s": fixed[best_c], "default_vs_best": times["default"] / best}


def test_defaults_summary_and_frame_read_the_rows(tmp_path):
    from booktools import benchmark as bm

    rows = [
        # d = 2, loop chosen: batched 0.9 and 1.2 of the loop
        _defaults_row("a", 2, {"default": 1.0, "vmap": 1.0, "loop": 1.0, "chunk 2": 0.9}, "loop", 1),
        _defaults_row("b", 2, {"default": 1.0, "vmap": 1.0, "loop": 1.0, "chunk 2": 1.2}, "loop", 1),
        # d = 16: default 0.5 of the loop, identical computations 1.3 apart (noisy)
        _defaults_row("a", 16, {"default": 0.65, "vmap": 0.5, "loop": 1.0, "chunk 16": 0.5}, chunk=16),
        # d = 16: default 0.8 of the loop, quiet; the worst quiet ratio 0.8 / 0.7
        _defaults_row("b", 16, {"default": 0.8, "vmap": 0.8, "loop": 1.0, "chunk 16": 0.8,
                                "chunk 4": 0.7}, chunk=16),
        _defaults_row("b", 16, {"default": 9.0, "vmap": 1.0, "loop": 1.0, "chunk 16": 1.0}, threads=2),
    ]
    s = bm.exact_sm_defaults_summary(rows)
    assert s["n_rows"] == 4  # the two-thread row is left out
    assert s["worst"] == pytest.approx(1.3) and s["worst_row"]["network"] == "a"
    assert s["worst_row"]["dim"] == 16 and s["worst_noise"] == pytest.approx(1.3)
    assert s["worst_quiet"] == pytest.approx(0.8 / 0.7)
    assert s["d2_batched_vs_loop"] == pytest.approx((0.9, 1.2))
    assert s["d16_default_vs_loop"] == pytest.approx((0.65, 0.8))
    assert s["full_vs_loop"] == {"a": None, "b": None}  # no row with d >= 64
    big = [_defaults_row("a", d, {"default": 1.0, "vmap": 1.0, "loop": 2.0, f"chunk {d}": f})
           for d, f in ((64, 3.0), (256, 5.0), (32, 0.1))]
    assert bm.exact_sm_defaults_summary(big)["full_vs_loop"] == {"a": pytest.approx((1.5, 2.5))}
    frame = bm.exact_sm_defaults_frame(rows)
    assert list(frame["chose"][:3]) == ["loop", "loop", "k=16"]
    assert frame["default"].iloc[2] == pytest.approx(650) and frame["best fixed"].iloc[3] == "700 (4)"
    one = bm.exact_sm_defaults_frame(rows, threads=1)
    assert len(one) == 4 and "threads" not in one.columns
    assert list(bm.exact_sm_defaults_table(rows, threads=2).data["default"]) == [9000.0]

    folder = tmp_path / "benchmarks" / "results" / "exact_sm_defaults"
    folder.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="exact_sm_defaults"):
        bm.committed_exact_sm_defaults(tmp_path / "book", fallback=None)
    # with the default fallback, a start outside any repository (tools/reproduce.py
    # --output-dir /tmp/...) finds the repository's own committed table
    path, _, rows_here = bm.committed_exact_sm_defaults(tmp_path / "book")
    assert path.parent == bm.REPOSITORY / "benchmarks" / "results" / "exact_sm_defaults" and rows_here
    (folder / "exact_sm_defaults-host-closer.json").write_text('{"rows": []}')
    (folder / "exact_sm_defaults-host.json").write_text('{"meta": {"m": 1}, "rows": [{"x": 2}]}')
    (tmp_path / "book").mkdir()
    path, meta, got = bm.committed_exact_sm_defaults(tmp_path / "book")  # the nearer wins
    assert path.name == "exact_sm_defaults-host.json" and meta == {"m": 1} and got == [{"x": 2}]


def test_choices_that_need_no_sizes_do_not_measure_the_graph():
    """The loop, an explicit chunk and ``"auto"`` at d <= 2 never call ``row_bytes`` (the graph
    walk and the memory query cost about 0.1 ms: several percent of a small step)."""
    def never() -> int:
        raise AssertionError("row_bytes was measured")

    for dev in (CPU, CUDA):
        assert ec.plan("loop", 500, never, dev) == ec.ExactPlan("loop", 1, 0, 0)
        assert ec.plan("auto", ec.DEFAULT_AUTO_LOOP_MAX_DIM, never, dev) == ec.ExactPlan("loop", 1, 0, 0)
        assert ec.plan("auto", 500, never, dev, chunk_size=7) == ec.ExactPlan("vmap", 7, 0, 0)
        assert ec.plan("vmap", 5, never, dev, chunk_size=7) == ec.ExactPlan("vmap", 5, 0, 0)
    calls = []
    p = ec.plan("auto", 64, lambda: calls.append(1) or 1000, CPU, memory_budget=8000)
    assert calls == [1] and (p.method, p.chunk, p.row_bytes, p.budget_bytes) == ("vmap", 8, 1000, 8000)


def _row_bytes(f, x: torch.Tensor) -> int:
    """R as jacobian_trace measures it, from a forward pass of its own."""
    x_ = x.detach().clone().requires_grad_(True)
    s = f(x_)
    return ec.saved_bytes(s) + x.numel() * x.element_size() + s.numel() * s.element_size()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("d", "h", "b"), [(2, 64, 50), (3, 8, 1), (10, 24, 7), (40, 64, 16), (120, 8, 4)])
def test_what_the_trace_keeps_is_within_the_measured_range(dtype, d, h, b):
    """The memory check's premise: what the trace keeps (its graph's saved tensors, counted by
    the same walk) is 0.54 to 4.0 times d * R on the library's networks, for every method and
    chunk (the low end at d = 120, width 8; every choice of chunk at d <= 10, the
    loop and one batched pass above); so KEPT_GRAPH_LOWER * d * R (a quarter) refuses no
    batch that would fit, with a margin of two."""
    from ssm_lib import NICE

    torch.manual_seed(0)
    nets = {"scoremlp": ScoreMLP(d, hidden=h, depth=2), "sequential": _sequential(d, h),
            "energy": score_from_energy(EnergyMLP(d, hidden=h, depth=2, activation="softplus").to(dtype)),
            "energy_silu": score_from_energy(EnergyMLP(d, hidden=h, depth=3).to(dtype)),
            "nice": NICE(d, hidden=h, depth=2, n_couplings=4).to(dtype).score}
    for name, f in nets.items():
        if isinstance(f, nn.Module):
            f = f.to(dtype)
        x = torch.randn(b, d, dtype=dtype)
        d_r = d * _row_bytes(f, x)
        choices = [("loop", None), ("vmap", d)]
        if d <= 10:
            choices += [("vmap", 1), ("vmap", 2), ("auto", None)]
        for method, chunk in choices:
            _, trace = jacobian_trace(f, x, method=method, chunk_size=chunk)
            ratio = ec.saved_bytes(trace) / d_r
            assert 0.5 <= ratio <= 4.05, (name, method, chunk, ratio)
            assert ratio >= 2 * ec.KEPT_GRAPH_LOWER


def test_a_batch_whose_graphs_cannot_fit_is_refused_naming_x(monkeypatch):
    f = _sequential(6, 8)
    x = torch.randn(16, 6, dtype=torch.float64)
    d_r = int(ec.KEPT_GRAPH_LOWER * 6 * _row_bytes(f, x))
    monkeypatch.setattr(ec, "available_memory", lambda device: d_r - 1)
    for method, chunk in (("loop", None), ("vmap", 1), ("vmap", 6), ("auto", None), ("auto", 2)):
        with pytest.raises(ValueError, match=r"^x: exact score matching of this batch keeps the graphs "
                                             r"of its 6 backward passes.*use a smaller batch"):
            exact_score_matching(f, x, method=method, chunk_size=chunk)
    monkeypatch.setattr(ec, "available_memory", lambda device: d_r)  # exactly the bound: it runs
    torch.testing.assert_close(exact_score_matching(f, x, method="vmap", chunk_size=6),
                               exact_score_matching(f, x, method="loop"), rtol=1e-12, atol=1e-12)


def test_small_batches_are_not_walked_for_the_check(monkeypatch):
    """While d * (|x| + |s|) stays under GRAPH_CHECK_FRACTION of the memory, the loop and an
    explicit chunk never walk the graph (as before the check); above it they walk it once."""
    walks = []
    real = ec.saved_bytes
    monkeypatch.setattr(ec, "saved_bytes", lambda out: walks.append(1) or real(out))
    f = _sequential(6, 8)
    x = torch.randn(16, 6, dtype=torch.float64)
    io = 2 * x.numel() * 8
    monkeypatch.setattr(ec, "available_memory", lambda device: int(6 * io / ec.GRAPH_CHECK_FRACTION))
    exact_score_matching(f, x, method="loop")
    exact_score_matching(f, x, method="vmap", chunk_size=3)
    assert walks == []
    monkeypatch.setattr(ec, "available_memory", lambda device: int(6 * io / ec.GRAPH_CHECK_FRACTION) - 1)
    exact_score_matching(f, x, method="loop")
    assert walks == [1]
    exact_score_matching(f, x, method="auto")  # the check and the plan share one walk
    assert walks == [1, 1]
