"""Time and measure the memory of the DKEF and kernel-estimator paths on the paper's settings.

    python benchmarks/dkef_paths.py                       # every path, 1 and 2 threads
    python benchmarks/dkef_paths.py --paths stein logz --threads 1 --repeats 3
    python benchmarks/dkef_paths.py --quick               # tiny sizes, seconds (a smoke run)

Settings (Song et al. 2019, Sec. 5.1 and the scalability runner): RedWine from
``paper_recipes.uci.load_uci``, a DKEF with 200 inducing points (random training rows), 3
kernels, feature networks of width 30, float32; a training step takes a batch of 100 + 100 rows
(alpha from the first half, the loss on the second); a validation pass refits alpha on 1000
training rows and evaluates the loss on the validation split; log Z is the importance-sampling
estimate with the default chunk; the kernel estimators take 2000 samples of dimension 100.

Timing: one process per thread count builds every input once, then runs the paths round-robin
(interleaved repeats, so a burst of load on the shared machine spreads over all of them) and
reports the median. Peak memory: one fresh process per path runs it once (a warm-up), then once
more, and reports the rise of its peak resident set over the resident set just before that call
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``; Linux; glibc told to return
every block over 128 KiB to the system when it is freed). The numbers depend on the machine and its load:
the table prints the load average. This is a measurement, not a test.

Floor: the path's dominant matrix-product FLOPs (counted from the settings by :func:`flops`,
formulas there) divided by the rate of one large float32 matrix product (1024 x 1024 x 1024)
measured in the same process at the same thread count: the time the path would take if all its
products ran at that rate and nothing else cost anything. ``time / floor`` says how far a path
is from it (element-wise passes, small products and Python overhead make up the rest).

Official: the paper's own code (github:ermongroup/sliced_score_matching, GPL; never vendored)
timed by the maintainers beside this script on the same CPU, the same settings and inputs, one
process, interleaved repeats, medians; see :data:`OFFICIAL` for the run and the two patches it
needs on current torch.

To time an older ``ssm_lib`` with the same script, put its folder first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PATHS = {
    "median": "median_bandwidth, 2000 x 100",
    "stein": "Stein estimator, 2000 x 100",
    "spectral": "spectral estimator, 2000 x 100",
    "step_exact": "DKEF training step, exact SM",
    "step_cp": "DKEF training step, CP",
    "step_approx_bp": "DKEF training step, Approx BP",
    "val_cp": "DKEF validation pass (alpha on 1000 + loss), CP",
    "val_approx_bp": "DKEF validation pass, Approx BP",
    "logz": "DKEF log Z, default chunk",
    "nice_mle": "NICE training step, MLE",
    "nice_ssm": "NICE training step, SSM",
    "nice_ssm_vr": "NICE training step, SSM-VR",
    "nice_dsm": "NICE training step, DSM",
    "nice_cp": "NICE training step, CP",
    "nice_approx_bp": "NICE training step, Approx BP",
    "nice_exact_eval": "NICE exact SM evaluation, batch 16",
}
# NICE on MNIST (Sec. 5.2): 784-d, 4 couplings whose MLPs have 5 linear layers (4 hidden softplus
# layers of 1000 units: depth 4, the official code's num_layers=5), batch 128; the exact SM
# evaluation (784 second-derivative passes) on 16 rows of it (its time is linear in the rows)
NICE_SETTINGS = {"dim": 784, "hidden": 1000, "depth": 4, "n_couplings": 4, "batch": 128, "dsm_sigma": 1.74,
                 "exact_eval_batch": 16}
NICE_QUICK = {**NICE_SETTINGS, "dim": 20, "hidden": 32, "batch": 16, "exact_eval_batch": 4}
# a NICE step's floor: one forward and one backward pass through the weights (3 F, F = 2 x parameters
# x batch), which every objective needs at least; the score-matching objectives need more (about
# 2.75 F for DSM to 5.75 F for SSM per evaluation, see the book's performance appendix), so their
# floors are loose
NICE_PASSES = dict.fromkeys(("mle", "ssm", "ssm_vr", "dsm", "cp", "approx_bp"), 3.0)
# the exact SM evaluation: the forward pass, the score's backward and d backward passes of it (each
# at least a forward pass's products); no parameter gradients
NICE_PASSES["exact_eval"] = None     # (2 + d) forward passes, set in flops()


# The official code's times (seconds, medians), measured on this project's 2-core CPU by a scratch
# script (never in this repository) that imports a copy of github:ermongroup/sliced_score_matching
# (HEAD 880c04744e3c) patched in two places to run on torch 2.x: ``torch.gesv(-b[:, None], matrix)``
# -> ``torch.linalg.solve(matrix, -b[:, None])`` in models/dkef.py, and the TF1 eigendecomposition
# (``tf.self_adjoint_eig``, with its ``import tensorflow`` and eager set-up) -> ``torch.linalg.eigh`` in
# models/kernel_score_estimators.py. Each row ran in one process per thread count, ours and the
# official code interleaved (alternating which goes first), after a warm-up, on the same inputs
# with the same parameters (ours copied into the official modules). What the official side runs:
#   DKEF steps: ``approx_bp_forward`` ("CP" / "kingma") or ``exact_score_matching(-dkef(X_t, .),
#     train=True)`` on 100 + 100 RedWine rows, backward, ``clip_grad_norm_(100)``, an SGD step;
#   validation: ``save_alpha_matrices`` on 1000 rows (batches of 100) and the loss on the
#     validation split; log Z: the runner's estimate, 1000 chunks of 1000 samples from
#     N(0, 4 I), ``dkef(None, s, stage="finalize")`` (the plain kernel class of its exact / SSM
#     / DSM models; the CP / Approx BP class also stores derivatives and is slower);
#   median / Stein / spectral: ``heuristic_kernel_width``, ``SteinScoreEstimator()`` and
#     ``SpectralScoreEstimator(n_eigen_threshold=0.99)`` ``.compute_gradients`` on the same 2000 x 100;
#   NICE: its ``NICE(784, 1000, 5)`` with the objective's loss (``single_sliced_score_matching``,
#     ``sliced_VR_score_matching``, ``dsm``, ``approx_backprop_score_matching`` with
#     ``grads_backward_S`` / ``grads_backward``, -log p), backward and an SGD step (its runner also
#     runs one unused forward pass before every non-MLE loss: not timed); exact SM evaluation:
#     ``exact_score_matching(energy, x, train=False)`` (a loop of 784 backward passes).
# Values, same inputs and parameters: OFFICIAL_CHECKS (relative differences unless said otherwise).
# By design the official CP / Approx BP alpha system leaves out the base density's cross term
# b2 = mean_x J_k(x)^T grad log q0(x) (its alpha ignores the base density): the checks add it to
# the official b. CP draws different random signs in the two codes: its values agree in the mean
# over draws, not draw by draw. Our DKEF log density includes the base density's normalising
# constant, the official one does not: log Z differs by that constant, (d/2) log(2 pi sigma0^2).
OFFICIAL_RUN = ('torch 2.13.0+cpu, one process per thread count, ours and official interleaved after a'
                ' warm-up. DKEF, median/Stein/spectral and NICE MLE/SSM/SSM-VR/DSM: 1 thread 2026-12-06 '
                '14:00-14:03 UTC, 2 threads 14:03-14:06, median of 3 repeats, load average (1 min) 0.7-1.4 '
                '(1 thread) and 1.3-3.8 (2 threads; the machine shared with other jobs). NICE exact SM '
                'evaluation and log Z (10^6 samples): 1 thread 15:58-16:03, 2 threads 16:03-16:06, median '
                'of 3, load 1.0-1.1 (1 thread) and 1.9-2.1 (2 threads), nothing else running. NICE CP and '
                'Approx BP, after the coupling sweep stopped re-running its MLP forward (commit 23db4ce): '
                '1 thread 16:06:11-16:06:38, 2 threads 16:06:40-16:06:59, median of 9, load 1.5-1.9, '
                'nothing else running')
OFFICIAL: dict[str, dict[int, float]] = {
    "step_exact": {1: 2.8909, 2: 1.6679},
    "step_cp": {1: 0.5807, 2: 0.3485},
    "step_approx_bp": {1: 0.3182, 2: 0.207},
    "val_cp": {1: 1.5715, 2: 0.9356},
    "val_approx_bp": {1: 0.5544, 2: 0.3385},
    "nice_mle": {1: 0.1764, 2: 0.1154},
    "nice_ssm": {1: 0.6805, 2: 0.4232},
    "nice_ssm_vr": {1: 0.834, 2: 0.4538},
    "nice_dsm": {1: 0.4043, 2: 0.2152},
    "nice_cp": {1: 0.8485, 2: 0.5727},
    "nice_approx_bp": {1: 0.5101, 2: 0.3482},
    "median": {1: 1.8487, 2: 1.4182},
    "stein": {1: 8.6942, 2: 6.1855},
    "spectral": {1: 11.5119, 2: 11.7458},
    "nice_exact_eval": {1: 21.6594, 2: 17.7128},
    "logz": {1: 26.0743, 2: 13.6995},
}
# ours, in the same processes as OFFICIAL (interleaved with it): the fair ratio is this over OFFICIAL
OURS_BESIDE_OFFICIAL: dict[str, dict[int, float]] = {
    "step_exact": {1: 0.0927, 2: 0.0835},
    "step_cp": {1: 0.3187, 2: 0.1891},
    "step_approx_bp": {1: 0.1857, 2: 0.1169},
    "val_cp": {1: 1.0579, 2: 0.7492},
    "val_approx_bp": {1: 0.4445, 2: 0.2686},
    "nice_mle": {1: 0.163, 2: 0.1053},
    "nice_ssm": {1: 0.6684, 2: 0.4232},
    "nice_ssm_vr": {1: 0.7864, 2: 0.4395},
    "nice_dsm": {1: 0.3654, 2: 0.2069},
    "nice_cp": {1: 0.6719, 2: 0.4477},
    "nice_approx_bp": {1: 0.4868, 2: 0.3173},
    "median": {1: 0.1022, 2: 0.0811},
    "stein": {1: 0.2252, 2: 0.322},
    "spectral": {1: 1.0079, 2: 0.6925},
    "nice_exact_eval": {1: 12.0119, 2: 9.2804},
    "logz": {1: 5.2101, 2: 2.6374},
}
OFFICIAL_CHECKS: dict[str, str] = {
    "step_exact": "alpha 6e-6; loss 47.73752 vs 47.73760 (2e-6) on 100 training rows (27.37 before the "
                  "fix of pairwise_sq_dist's clamp, which cut the graph on rows equal to an inducing point)",
    "step_cp": "G 2e-6; with the same alpha, the loss's mean over 100 draws 47.2 (standard error 0.7) vs "
               "48.6 (2.0), the exact SM loss 46.9 (both unbiased for it; the official draws vary 3 x more)",
    "step_approx_bp": "G 4e-7, b (with the base term) 1e-6; loss with the same alpha 22.83823 vs 22.83826 "
                      "(1e-6)",
    "val_cp": "G 5e-7 on 1000 rows; loss with the same alpha, mean of 30 draws, -10.2 (standard error 0.3) "
              "vs -10.8 (official standard error not measured; see step_cp)",
    "val_approx_bp": "G 2e-7, b (with the base term) 2e-7 on 1000 rows; loss -23.854983 vs -23.854984 (8e-8)",
    "logz": "alpha 2e-6; log density: ours - official = -17.733 = -(11/2) log(8 pi), the base density's "
            "normalising constant (by design)",
    "nice_mle": "log p 2e-7 (relative to mean |log p|); loss 1257.9495 both",
    "nice_ssm": "loss with the same Rademacher directions -313.47433 both",
    "nice_ssm_vr": "loss with the same directions -246.43173 vs -246.43172 (6e-8)",
    "nice_dsm": "loss with the same noise, times sigma^4 (the official scaling), 9745.360 vs 9745.359 (5e-8)",
    "nice_cp": "loss, mean of 30 draws each, -246.42 (standard error 0.05) vs -246.46 (0.06)",
    "nice_approx_bp": "loss -246.4360 vs -246.4879 (2e-4)",
    "nice_exact_eval": "loss -242.41608 both (16 rows)",
}
OFFICIAL_LOGZ_SAMPLES = 10**6     # the official log Z row is for this many samples
# Every row is now at or below the official code's time at 1 and 2 threads. The last above 1.0 were
# NICE Approx BP (1.15 / 1.34) and NICE CP at 1 thread (1.02): a profile of our Approx BP step
# (torch.profiler, 1 thread) counted 230 matrix products where the official sweep needs about 180,
# because each coupling's curvature sweep re-ran its MLP's forward pass (record_forward) that the
# energy's forward pass had already computed. The couplings now hand their forward tape to the
# sweep (AdditiveCoupling.forward_with_tape), pinned by tests/test_nice_curvature_pins.py: 0.95 / 0.91
# and 0.79 / 0.78. The official log Z row runs its own chunking (1000 chunks of 1000 samples); ours
# runs log_normalizer's default chunk (chosen by its memory budget).


def flops(path: str, quick: bool, logz_samples: int) -> float:
    r"""Dominant matrix-product FLOPs of one run of ``path`` (a multiply-add counts 2).

    With RedWine's :math:`d = 11`, :math:`M` inducing points, :math:`J` kernels of feature width
    :math:`F = H` (hidden width), :math:`n` rows for alpha and :math:`n` for the loss, and
    :math:`P = 2(dH + H^2 + HF + dF)` the products of one feature-network row:

    * CP / Approx BP quadratic: :math:`T` tensors (CP 3: :math:`g, S_{re}, S_{im}`; Approx BP 2)
      of :math:`nM` rows swept back through each network, :math:`J T n M P`, plus
      :math:`G`: :math:`2 n d M^2`;
    * exact SM quadratic (closed form): per kernel the forward-mode Jacobian and Hessian
      diagonal, :math:`2 \cdot 2 n d (H^2 + HF)`, and :math:`e = J^\top\delta`,
      :math:`2 n d F M`; plus :math:`G`; its loss (the generic exact SM on :math:`n` rows)
      :math:`d` backward passes of the score, about :math:`3 d J n (P + 2MF)`;
    * a training step: the forward products times 3 (the backward pass costs about twice the
      forward); a validation pass: the quadratic on 1000 rows without a backward pass;
    * log Z: :math:`N J (P/2 \cdot 2 + 2MF)` for :math:`N` samples; median bandwidth:
      :math:`2m^2 d`; Stein: that plus the solve, :math:`2m^3/3 + 2m^2 d`; spectral: that plus
      a symmetric eigendecomposition, about :math:`4m^3` (all for :math:`m` samples of
      dimension :math:`d`);
    * a NICE training step: one forward and one backward pass through the weights,
      :math:`3 \cdot 2 P B` for :math:`P` parameters and a batch of :math:`B` (a lower bound for
      every objective; loose for the score-matching ones, see ``NICE_PASSES``).
    """
    if path.startswith("nice_"):
        from ssm_lib.flows import nice_parameter_count

        cfg = NICE_QUICK if quick else NICE_SETTINGS
        n_params = nice_parameter_count(cfg["dim"], cfg["hidden"], cfg["depth"], cfg["n_couplings"])
        if path == "nice_exact_eval":
            return (2.0 + cfg["dim"]) * 2.0 * n_params * cfg["exact_eval_batch"]
        return NICE_PASSES[path[5:]] * 2.0 * n_params * cfg["batch"]
    if path in ("median", "stein", "spectral"):
        m, d = (200, 10) if quick else (2000, 100)
        gram = 2.0 * m * m * d
        extra = {"median": 0.0, "stein": 2 * m**3 / 3 + 2 * m * m * d, "spectral": 4.0 * m**3}
        return gram + extra[path]
    d, h, nk = 11, 30, 3
    m = 20 if quick else 200
    n = 10 if quick else 100
    per_row = 2.0 * (d * h + h * h + h * h + d * h)
    gram = 2.0 * n * d * m * m
    if path == "logz":
        n_samples = 2000 if quick else logz_samples
        return n_samples * nk * (per_row / 2 + 2.0 * m * h)
    objective = path.split("_", 1)[1]
    if objective == "exact":
        system = nk * (4.0 * n * d * (h * h + h * h) + 2.0 * n * d * h * m) + gram
        loss = 3.0 * d * nk * n * (per_row + 2.0 * m * h)
    else:
        t = 3 if objective == "cp" else 2
        system = nk * t * n * m * per_row + gram
        loss = nk * t * n * (per_row + 2.0 * m * h)       # one output channel
    if path.startswith("step_"):
        return 3.0 * (system + loss)
    n_alpha = 100 if quick else 1000
    return system * n_alpha / n + loss


def _peak_gflops(repeats: int = 5) -> float:
    """GFLOP/s of a 1024 x 1024 x 1024 float32 matrix product (median), at the current threads."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2.0 * 1024**3 / statistics.median(times) / 1e9


def _build(path: str, quick: bool, logz_samples: int):
    """Inputs for ``path``; returns a zero-argument callable that runs it once."""
    import torch

    if path in ("median", "stein", "spectral"):
        from ssm_lib.score_estimators import SpectralScoreEstimator, SteinScoreEstimator, median_bandwidth

        m, d = (200, 10) if quick else (2000, 100)
        z = torch.randn(m, d, generator=torch.Generator().manual_seed(0))
        fn = {"median": median_bandwidth, "stein": SteinScoreEstimator(),
              "spectral": SpectralScoreEstimator()}[path]
        return lambda: fn(z)

    if path.startswith("nice_"):
        from ssm_lib.flow_training import flow_objective
        from ssm_lib.flows import NICE
        from ssm_lib.losses import exact_score_matching

        cfg = NICE_QUICK if quick else NICE_SETTINGS
        torch.manual_seed(0)
        model = NICE(cfg["dim"], hidden=cfg["hidden"], depth=cfg["depth"], n_couplings=cfg["n_couplings"])
        x = torch.randn(cfg["batch"], cfg["dim"], generator=torch.Generator().manual_seed(0))
        name = path[5:]
        if name == "exact_eval":     # as evaluate_flow: per-row exact SM, method "vmap"
            xe = x[:cfg["exact_eval_batch"]]
            return lambda: exact_score_matching(model.score, xe, method="vmap", reduction="none").detach()
        objective = flow_objective(name, **({"sigma": cfg["dsm_sigma"]} if name == "dsm" else {}))
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        gen = torch.Generator().manual_seed(1)

        def nice_step():
            loss = objective(model, x, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
        return nice_step

    from paper_recipes.uci import load_uci
    from ssm_lib.dkef import DKEF, dkef_loss, log_normalizer, training_step

    data = load_uci("redwine")
    g = torch.Generator().manual_seed(0)
    n_inducing = 20 if quick else 200
    rows = torch.randperm(data.train.shape[0], generator=g)
    model = DKEF(data.train[rows[:n_inducing]], n_kernels=3, hidden=30, generator=g)
    batch = data.train[rows[:20 if quick else 200]]
    objective = path.split("_", 1)[1] if "_" in path else None
    if path.startswith("step_"):
        opt = torch.optim.SGD(model.parameters(), lr=0.0)   # the same model every repeat
        gen = torch.Generator().manual_seed(1)
        return lambda: training_step(model, batch, objective, opt, generator=gen)
    if path.startswith("val_"):
        alpha_rows = data.train[rows[:100 if quick else 1000]]
        gen = torch.Generator().manual_seed(1)

        def validation():
            model.fit_alpha(alpha_rows, objective, generator=gen)
            return dkef_loss(model, data.val, objective, generator=gen).item()
        return validation
    if path == "logz":
        model.fit_alpha(data.train[rows[:1000]], "ssm", generator=torch.Generator().manual_seed(1))
        n = 2000 if quick else logz_samples
        return lambda: log_normalizer(model, n, generator=torch.Generator().manual_seed(2))
    raise ValueError(f"unknown path {path!r}")


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _worker_time(paths: list[str], threads: int, repeats: int, quick: bool, logz_samples: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    runs = {p: _build(p, quick, logz_samples) for p in paths}
    for fn in runs.values():     # warm-up
        fn()
    times: dict[str, list[float]] = {p: [] for p in paths}
    peaks = []
    for _ in range(repeats):
        peaks.append(_peak_gflops(3))     # the matrix-product rate, measured between the paths
        for p, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[p].append(time.perf_counter() - t0)
    return {**{p: statistics.median(t) for p, t in times.items()}, "_peak_gflops": statistics.median(peaks)}


def _worker_memory(path: str, quick: bool, logz_samples: int) -> float:
    import torch

    torch.set_num_threads(1)
    fn = _build(path, quick, logz_samples)
    fn()                                             # warm-up: lazy initialisations
    with open("/proc/self/clear_refs", "w") as f:    # reset VmHWM to the current RSS
        f.write("5")
    before = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - before) / 1024.0


def _spawn(args: list[str]) -> dict:
    # large blocks always mmapped and unmapped when freed, so the resident set follows the live tensors
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS), help="default: every path")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--logz-samples", type=int, default=OFFICIAL_LOGZ_SAMPLES,
                   help="importance samples for log Z (default 10^6, the library's and the paper's; the "
                        "time scales linearly; the official time is shown only for 10^6)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--worker", choices=["time", "memory"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker == "time":
        print(json.dumps(_worker_time(a.paths, a.threads[0], a.repeats, a.quick, a.logz_samples)))
        return 0
    if a.worker == "memory":
        print(json.dumps(_worker_memory(a.paths[0], a.quick, a.logz_samples)))
        return 0

    common = ["--repeats", str(a.repeats), "--logz-samples", str(a.logz_samples)]
    common += ["--quick"] if a.quick else []
    load = [os.getloadavg()]
    times = {t: _spawn(["--worker", "time", "--threads", str(t), "--paths", *a.paths, *common])
             for t in a.threads}
    load.append(os.getloadavg())
    memory = {} if a.no_memory else {
        path: _spawn(["--worker", "memory", "--paths", path, *common]) for path in a.paths}
    load.append(os.getloadavg())
    import ssm_lib

    peak = {t: times[t].pop("_peak_gflops") for t in a.threads}
    floors = {t: {p: flops(p, a.quick, a.logz_samples) / (peak[t] * 1e9) for p in a.paths} for t in a.threads}
    def official(path: str, t: int) -> float | None:
        if a.quick or (path == "logz" and a.logz_samples != OFFICIAL_LOGZ_SAMPLES):
            return None
        return OFFICIAL.get(path, {}).get(t)

    cols = []
    for t in a.threads:
        cols += [f"{t}T s", f"{t}T floor", f"{t}T off.", f"{t}T ratio", f"{t}T r.same"]
    head = f"{'path':<42}" + "".join(f"{c:>10}" for c in cols) + f"{'peak MiB':>10}"
    print(f"ssm_lib from {os.path.dirname(ssm_lib.__file__)}; median of {a.repeats} interleaved repeats; "
          f"log Z with {2000 if a.quick else a.logz_samples} samples"
          + ("; --quick: tiny sizes, not those named" * a.quick))
    print("columns per thread count T: our time in this run (s), the matrix-product floor (s), the official "
          "code's time (s, quoted, see OFFICIAL),\n  ours in this run / official (moments apart), and ours / "
          "official timed in one process, interleaved (OURS_BESIDE_OFFICIAL / OFFICIAL: the fair ratio)")
    print(head)
    print("-" * len(head))
    for path in a.paths:
        row = f"{PATHS[path]:<42}"
        for t in a.threads:
            off = official(path, t)
            beside = OURS_BESIDE_OFFICIAL.get(path, {}).get(t) if off else None
            row += f"{times[t][path]:>10.3f}{floors[t][path]:>10.3g}"
            row += f"{off:>10.3f}{times[t][path] / off:>10.2f}" if off else f"{'-':>10}{'-':>10}"
            row += f"{beside / off:>10.2f}" if beside else f"{'-':>10}"
        row += f"{memory[path]:>10.0f}" if path in memory else f"{'-':>10}"
        print(row)
    print("matrix-product rate (1024^3 float32, GFLOP/s): "
          + ", ".join(f"{t} thread(s) {peak[t]:.1f}" for t in a.threads))
    print(f"official code's times: {OFFICIAL_RUN}")
    checks = [f"  {p}: {OFFICIAL_CHECKS[p]}" for p in a.paths if p in OFFICIAL_CHECKS and not a.quick]
    if checks:
        print("values beside the official code (same inputs and parameters):", *checks, sep="\n")
    print("load average (1, 5, 15 min) at start / after timing / after memory: "
          + " / ".join(", ".join(f"{x:.2f}" for x in la) for la in load))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"times": times, "floor_s": floors, "peak_gflops": peak, "peak_mib": memory,
                       "official": {p: {t: official(p, t) for t in a.threads} for p in a.paths},
                       "ours_beside_official": {p: OURS_BESIDE_OFFICIAL.get(p, {}) for p in a.paths},
                       "official_checks": {p: OFFICIAL_CHECKS[p] for p in a.paths if p in OFFICIAL_CHECKS},
                       "official_run": OFFICIAL_RUN, "paths": {p: PATHS[p] for p in a.paths}, "load": load,
                       "repeats": a.repeats, "logz_samples": a.logz_samples, "ssm_lib": ssm_lib.__file__},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
