"""Time one training step of every score-matching objective side by side; print the table.

    python benchmarks/run.py                 # CPU (and CUDA too when present), default dims
    python benchmarks/run.py --quick         # tiny sizes, seconds (used by the tests)
    python benchmarks/run.py --dims 2 64 512 --repeats 21 --device cpu

Writes ``benchmarks/results/<name>.json`` and ``.csv`` (``<name>``: ``--name``, default the
host name plus the device kinds measured, e.g. ``myhost-cpu`` or ``myhost-cpu-cuda``). All
the measuring code is in :mod:`ssm_lib.benchmarking`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import torch

from ssm_lib import benchmarking as bm

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, nargs="+", default=list(bm.DEFAULT_DIMS),
                   help="event dimensions d (default: %(default)s)")
    p.add_argument("--methods", nargs="+", default=list(bm.DEFAULT_METHODS),
                   choices=list(bm.METHODS), metavar="METHOD",
                   help=f"methods to time (default: all of {', '.join(bm.METHODS)})")
    p.add_argument("--device", nargs="+", default=None,
                   help="devices (default: cpu, plus cuda when it is present)")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=21, help="timed steps per cell (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per cell first")
    p.add_argument("--budget", type=float, default=12.0,
                   help="seconds per step above which a cell is skipped (default: %(default)s)")
    p.add_argument("--memory-budget", type=float, default=4.0,
                   help="GiB of predicted peak memory above which a cell is skipped (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's own choice, one per core)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes for a smoke test: dims 2 8, hidden 16, batch 8, 2 repeats")
    p.add_argument("--name", default=None, help="results file stem (default: host-devices)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: %(default)s)")
    args = p.parse_args(argv)
    if args.quick:
        args.dims, args.hidden, args.depth, args.batch = [2, 8], 16, 2, 8
        args.repeats, args.warmup = 2, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    all_rows, meta = [], {"machines": {}, "settings": {
        "dims": args.dims, "methods": args.methods, "hidden": args.hidden, "depth": args.depth,
        "batch": args.batch, "repeats": args.repeats, "warmup": args.warmup,
        "budget_s": args.budget, "memory_budget_gib": args.memory_budget, "quick": args.quick}}
    start = time.perf_counter()
    for device in devices:
        info = bm.machine_info(device)
        meta["machines"][str(info["device"])] = info
        print(f"# {info['device']}: {info.get('gpu', info['cpu'])}, torch {info['torch']}, "
              f"{info['torch_threads']} threads, load average {info['load_average']}", flush=True)
        rows = bm.benchmark_sweep(
            args.dims, args.methods, hidden=args.hidden, depth=args.depth, batch=args.batch,
            device=device, repeats=args.repeats, warmup=args.warmup, budget_s=args.budget,
            memory_budget_bytes=args.memory_budget * 2**30,
            memory=not args.no_memory, progress=lambda msg: print("  " + msg, file=sys.stderr, flush=True))
        all_rows += rows
        meta["machines"][str(info["device"])]["load_average_after"] = bm.machine_info(device)["load_average"]
    meta["wall_s"] = time.perf_counter() - start
    print()
    print(f"ScoreMLP(d, hidden={args.hidden}, depth={args.depth}), batch {args.batch}: median time per "
          "training step (zero_grad, loss, backward, Adam step), ratio to DSM from the same run,")
    print("FLOP floor in forward-pass units F (matrix products only) and its ratio to DSM, peak "
          "working memory of loss + backward above the resident state (params, grads, Adam, data).")
    print("Seq: rows use a plain nn.Sequential (Linear + Softplus, same sizes), EBM: rows an EnergyMLP "
          "through score_from_energy; their ratios are to DSM on the same network. Exact SM runs with "
          "its default chunk.")
    print(bm.format_table(all_rows))
    for device in dict.fromkeys(r["device"] for r in all_rows):
        print(f"\nTargets ({device}):")
        print(bm.format_targets(bm.check_targets(all_rows, device=device)))
    name = args.name or "-".join([re.sub(r"[^A-Za-z0-9_.]+", "_", bm.machine_info()["hostname"] or "host")]
                                 + sorted({torch.device(d).type for d in devices}))
    json_path, csv_path = bm.write_results(all_rows, args.out, name, meta=meta)
    print(f"\nwrote {json_path} and {csv_path} ({meta['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
