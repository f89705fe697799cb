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
}


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
    for _ in range(repeats):
        for p, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[p].append(time.perf_counter() - t0)
    return {p: statistics.median(t) for p, t in times.items()}


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
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--logz-samples", type=int, default=10**5,
                   help="importance samples for log Z (library default 10^6; the time scales linearly)")
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

    head = f"{'path':<52}" + "".join(f"{f'{t} thread(s), s':>17}" for t in a.threads) + f"{'peak MiB':>10}"
    print(f"ssm_lib from {os.path.dirname(ssm_lib.__file__)}; median of {a.repeats} interleaved repeats; "
          f"log Z with {a.logz_samples} samples" + ("; --quick: tiny sizes, not those named" * a.quick))
    print(head)
    print("-" * len(head))
    for path in a.paths:
        mem = f"{memory[path]:>10.0f}" if path in memory else f"{'-':>10}"
        print(f"{PATHS[path]:<52}" + "".join(f"{times[t][path]:>17.3f}" for t in a.threads) + mem)
    print("load average (1, 5, 15 min) at start / after timing / after memory: "
          + " / ".join(", ".join(f"{x:.2f}" for x in la) for la in load))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"times": times, "peak_mib": memory, "load": load, "repeats": a.repeats,
                       "logz_samples": a.logz_samples, "ssm_lib": ssm_lib.__file__}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
