"""Exact score matching with the library's defaults against the loop and fixed chunks.

    python benchmarks/exact_sm_defaults.py --threads 1      # the committed table (minutes)
    python benchmarks/exact_sm_defaults.py --quick           # tiny sizes, seconds

For each network kind (ScoreMLP, a plain nn.Sequential score net, an energy model through
score_from_energy) and each d, times one step (zero_grad, loss, backward) of
``exact_score_matching(score_fn, x)`` as a user calls it, of ``method="vmap"`` with its default
chunk, of the loop and of fixed chunks, interleaved round by round, and prints the medians with
the default's ratio to the best of the loop and the fixed chunks. Writes
``benchmarks/results/exact_sm_defaults/exact_sm_defaults-<host>.txt`` (the printed table) and
``.json`` (in a folder of their own: the book reads every ``benchmarks/results/*.json`` as a
``make bench`` table). The
measuring code is :func:`booktools.benchmark.exact_sm_defaults_sweep`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import torch

from booktools import benchmark as bm
from ssm_lib import exact_chunking

RESULTS = Path(__file__).resolve().parent / "results" / "exact_sm_defaults"

#: (network, d, hidden, batch): every network kind over d at width 256, batch 32, then the
#: corners of widths 64-1024 and batches 16-256, and the case of the issue (width 256, batch 64)
GRID = ([(net, d, 256, 32) for net in ("scoremlp", "sequential", "energy") for d in (2, 16, 64, 256)]
        + [("sequential", 2048, 64, 16), ("sequential", 64, 64, 16), ("scoremlp", 64, 512, 128),
           ("sequential", 16, 1024, 256), ("energy", 16, 512, 128), ("sequential", 256, 256, 64),
           ("sequential", 64, 512, 128), ("energy", 64, 512, 128)])
QUICK_GRID = [(net, d, 16, 8) for net in ("scoremlp", "sequential", "energy") for d in (2, 8)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=7, help="timed steps per variant (median)")
    p.add_argument("--budget", type=float, default=8.0,
                   help="seconds per step above which a variant is dropped (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--default-threads-at", type=int, nargs="*", default=[6, 13],
                   help="indices of GRID rows to repeat with torch's default thread count")
    p.add_argument("--rows", type=int, nargs="+", default=None,
                   help="indices of GRID rows to measure (default: all); e.g. a closer look, more repeats")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats (a smoke test)")
    p.add_argument("--render", type=Path, default=None,
                   help="print the tables of a results .json written earlier, and exit")
    p.add_argument("--name", default=None, help="results file stem (default: exact_sm_defaults-<host>)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: %(default)s)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        rows = json.loads(args.render.read_text())["rows"]
        for threads in dict.fromkeys(r["threads"] for r in rows):
            print(f"\n## {threads} torch thread(s)")
            print(bm.format_exact_sm_defaults([r for r in rows if r["threads"] == threads]))
        return 0
    default_threads = torch.get_num_threads()
    grid = QUICK_GRID if args.quick else GRID
    if args.rows is not None:
        grid = [grid[i] for i in args.rows]
    repeats = 2 if args.quick else args.repeats
    lines: list[str] = []

    def out(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    def progress(msg: str) -> None:
        print("  " + msg, file=sys.stderr, flush=True)

    info = bm.machine_info(args.device)
    out(f"# {info.get('gpu', info['cpu'])}, {info['cpu_count']} cores, torch {info['torch']}, "
        f"{info['time_utc']}, load average at start {[round(v, 2) for v in info['load_average']]}")
    cpu_mib, frac = exact_chunking.DEFAULT_CPU_CHUNK_BYTES // 2**20, exact_chunking.DEFAULT_MEMORY_FRACTION
    rows_cap = exact_chunking.DEFAULT_CPU_TARGET_ROWS
    out(f"# rule: chunk = min(d, budget // R, CPU: ceil({rows_cap} / B)); R = bytes of one backward")
    out(f"# pass; budget: CPU min({cpu_mib} MiB, {frac:g} x available), CUDA {frac:g} x free;")
    out("# auto: the loop where chunk = 1 or d <= 2.")
    out("# one step = zero_grad + loss + backward; medians over rounds that interleave all variants;")
    out("# best chunk = fastest fixed chunk (4, 16, 64, 256 below d, and d); dflt/best = default /")
    out("# min(loop, best chunk); vmap = method='vmap' with its default chunk; noise = max/min of")
    out("# the medians of the variants that run the default's own computation (the loop it chose,")
    out("# or vmap and the fixed chunk it chose). Times in ms.")
    start = time.perf_counter()
    configs = [dict(network=n, dim=d, hidden=h, batch=b, depth=3) for n, d, h, b in grid]
    all_rows = []
    runs = [(args.threads, configs)]
    if args.threads is not None and not args.quick:
        extra = [configs[i] for i in args.default_threads_at if 0 <= i < len(configs)]
        if extra:
            runs.append((default_threads, extra))
    for threads, cfgs in runs:
        if threads is not None:
            torch.set_num_threads(threads)
        out()
        out(f"## {torch.get_num_threads()} torch thread(s)")
        rows = []
        for cfg in cfgs:  # one config at a time, saved as it comes (a long run can be stopped)
            rows += bm.exact_sm_defaults_sweep([cfg], device=args.device, repeats=repeats,
                                               budget_s=args.budget, progress=progress)
            partial = args.out / "partial.json"
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({"rows": all_rows + rows}, indent=1) + "\n")
        out(bm.format_exact_sm_defaults(rows))
        all_rows += rows
    worst = max(r["default_vs_best"] for r in all_rows)
    load_end = [round(v, 2) for v in os.getloadavg()]
    out()
    out(f"worst default / best: {worst:.2f} (target <= 1.10); load average at end {load_end}; "
        f"{time.perf_counter() - start:.0f} s")
    name = args.name or "exact_sm_defaults-" + re.sub(r"[^A-Za-z0-9_.]+", "_", info["hostname"] or "host")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.txt").write_text("\n".join(lines) + "\n")
    meta = {"machine": info, "load_average_end": load_end, "repeats": repeats,
            "cpu_chunk_bytes": exact_chunking.DEFAULT_CPU_CHUNK_BYTES,
            "memory_fraction": exact_chunking.DEFAULT_MEMORY_FRACTION}
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": all_rows}, indent=1) + "\n")
    (args.out / "partial.json").unlink(missing_ok=True)
    print(f"wrote {args.out / name}.txt and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
