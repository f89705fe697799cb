"""Time one training step of every score-matching objective side by side; print the table.

    python benchmarks/run.py                 # CPU (and CUDA too when present), default sizes
    python benchmarks/run.py --quick         # tiny sizes, seconds (used by the tests)
    python benchmarks/run.py --dims 2 64 512 --repeats 21 --device cpu

Writes ``benchmarks/results/<name>.json`` and ``.csv`` (``<name>``: ``--name``, default the
host name plus the device kinds measured, e.g. ``myhost-cpu``). The measuring code is in
``tools/booktools/benchmark.py``. ``--quick`` changes the defaults only: options given
explicitly (``--dims``, ``--hidden``, ...) win. A mistake on the command line ends in one
line and exit status 2 before anything is measured; Ctrl-C in one line and status 130.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from booktools.cli import Parser, UsageError, run_command, writable_folder

RESULTS = Path(__file__).resolve().parent / "results"
PROG = "run.py"
SIZES = {  # (default, --quick default)
    "dims": (None, [2, 8]), "hidden": (512, 16), "depth": (3, 2), "batch": (128, 8),
    "repeats": (21, 2), "warmup": (3, 1),
}


def _number(kind, minimum, what):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return convert


POSITIVE = _number(int, 1, "a positive integer")
COUNT = _number(int, 0, "an integer >= 0")
SECONDS = _number(float, 1e-300, "a positive number")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from booktools import benchmark as bm

    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", type=POSITIVE, nargs="+",
                   help=f"event dimensions d (default: {' '.join(map(str, bm.DEFAULT_DIMS))})")
    p.add_argument("--variants", nargs="+", default=list(bm.VARIANTS), choices=list(bm.VARIANTS),
                   metavar="VARIANT", help=f"rows to time (default: all of {', '.join(bm.VARIANTS)})")
    p.add_argument("--device", nargs="+", default=None,
                   help="devices (default: cpu, plus cuda when it is present)")
    p.add_argument("--hidden", type=POSITIVE)
    p.add_argument("--depth", type=POSITIVE)
    p.add_argument("--batch", type=POSITIVE)
    p.add_argument("--repeats", type=POSITIVE, help="timed steps per cell (median; default 21)")
    p.add_argument("--warmup", type=COUNT, help="untimed steps per cell first (default 3)")
    p.add_argument("--budget", type=SECONDS, default=12.0,
                   help="seconds per step above which a cell is skipped (default: %(default)s)")
    p.add_argument("--memory-budget", type=SECONDS, default=4.0,
                   help="GiB of predicted peak memory above which a cell is skipped (default: %(default)s)")
    p.add_argument("--threads", type=POSITIVE, default=None,
                   help="torch CPU threads (default: torch's own choice, one per core)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--quick", action="store_true",
                   help="smaller defaults for a smoke test: dims 2 8, hidden 16, depth 2, batch 8, "
                        "2 repeats, 1 warm-up step (explicit options win)")
    p.add_argument("--name", default=None, help="results file stem (default: host-devices)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: %(default)s)")
    args = p.parse_args(argv)
    for key, (full, quick) in SIZES.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.dims is None:
        args.dims = list(bm.DEFAULT_DIMS)
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", args.name):
        raise UsageError(f"--name must be a plain file stem (letters, digits, _ . -), got {args.name!r}")
    return args


def check(args: argparse.Namespace) -> list[str]:
    """What can go wrong before anything is measured; returns the devices."""
    import torch

    from ssm_lib.devices import resolve_device

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for device in devices:
        try:
            resolve_device(device)
        except ValueError as err:
            raise UsageError(str(err)) from None
    writable_folder(args.out, "--out")
    return devices


def run(args: argparse.Namespace, devices: list[str]) -> int:
    import torch

    from booktools import benchmark as bm

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    all_rows, meta = [], {"machines": {}, "settings": {
        "dims": args.dims, "variants": args.variants, "hidden": args.hidden, "depth": args.depth,
        "batch": args.batch, "repeats": args.repeats, "warmup": args.warmup,
        "budget_s": args.budget, "memory_budget_gib": args.memory_budget, "quick": args.quick}}
    start = time.perf_counter()
    for device in devices:
        info = bm.machine_info(device)
        meta["machines"][str(info["device"])] = info
        print(f"# {info['device']}: {info.get('gpu', info['cpu'])}, torch {info['torch']}, "
              f"{info['torch_threads']} threads, load average {info['load_average']}", flush=True)
        rows = bm.benchmark_sweep(
            args.dims, args.variants, hidden=args.hidden, depth=args.depth, batch=args.batch,
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


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = parse_args(argv)
        return run(args, check(args))

    return run_command(PROG, body, "interrupted; nothing was written")


if __name__ == "__main__":
    sys.exit(main())
