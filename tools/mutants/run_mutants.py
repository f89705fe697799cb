"""Re-run the surviving-mutant check of issue 19: apply each mutant of ``mutants.toml`` (an
exact string replacement in one file) to a temporary copy of the repository, run the tests
that should kill it there, and report killed / survived per mutant.

    .venv/bin/python tools/mutants/run_mutants.py            # all mutants
    .venv/bin/python tools/mutants/run_mutants.py 7 12       # only some ids
    .venv/bin/python tools/mutants/run_mutants.py --list

Exit status 0 only when the unmutated copy passes every listed test and every mutant's
pattern is found exactly once and its tests fail. The working tree is never modified.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
LIST = Path(__file__).with_name("mutants.toml")
COPIED = ("ssm_lib", "tests", "tools", "pyproject.toml")  # copied; everything else is linked
LINKED = ("data",)
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", "browser")


def load(path: Path = LIST) -> list[dict]:
    with path.open("rb") as fh:
        mutants = tomllib.load(fh)["mutant"]
    for m in mutants:
        missing = {"id", "name", "file", "old", "new", "tests"} - set(m)
        if missing:
            raise SystemExit(f"{path}: mutant {m.get('id', '?')} lacks {sorted(missing)}")
    return mutants


def make_copy() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="mutants-"))
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp / name, ignore=IGNORE)
        elif src.exists():
            shutil.copy2(src, tmp / name)
    for name in LINKED:
        if (ROOT / name).exists():
            (tmp / name).symlink_to(ROOT / name)
    return tmp


def module_of(file: str) -> str:
    parts = Path(file).with_suffix("").parts
    if parts[0] == "tools":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def env_for(copy: Path) -> dict:
    env = dict(os.environ)
    paths = [str(copy), str(copy / "tools"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # small tensors: threads only cost time on a busy machine
    return env


def imports_from_copy(copy: Path, module: str) -> bool:
    """The mutated module must be the copy's, not the editable install's."""
    code = f"import importlib; print(importlib.import_module({module!r}).__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env_for(copy), capture_output=True,
                         text=True)
    return out.returncode == 0 and Path(out.stdout.strip()).resolve().is_relative_to(copy.resolve())


def run_tests(copy: Path, tests: list[str]) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", "-rN", *tests]
    out = subprocess.run(cmd, cwd=copy, env=env_for(copy), capture_output=True, text=True)
    text = out.stdout + out.stderr
    lines = [ln for ln in text.splitlines()
             if ln.startswith("E ") or "AssertionError" in ln or "Error:" in ln]
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return out.returncode, (lines[0].strip() if lines else last)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ids", nargs="*", help="mutant ids to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument("--mutants", type=Path, default=LIST, help="the mutant list (default: %(default)s)")
    args = ap.parse_args(argv)
    mutants = load(args.mutants)
    if args.ids:
        mutants = [m for m in mutants if str(m["id"]) in set(args.ids)]
    if args.list:
        for m in mutants:
            print(f"{m['id']:>4}  {m['name']}  [{m['file']}]  -> {' '.join(m['tests'])}")
        return 0
    copy = make_copy()
    results, bad = [], 0
    try:
        all_tests = sorted({t for m in mutants for t in m["tests"]})
        t0 = time.perf_counter()
        rc, msg = run_tests(copy, all_tests)
        print(f"baseline (unmutated copy, {len(all_tests)} tests): "
              f"{'pass' if rc == 0 else 'FAIL: ' + msg} ({time.perf_counter() - t0:.1f} s)", flush=True)
        if rc != 0:
            return 2
        for m in mutants:
            path = copy / m["file"]
            original = path.read_text() if path.exists() else None
            count = original.count(m["old"]) if original is not None else 0
            if count != 1:
                status, msg = "NO-MATCH", (f"pattern found {count} times" if original is not None
                                           else "file missing")
            elif not imports_from_copy(copy, module_of(m["file"])):
                status, msg = "ERROR", f"{module_of(m['file'])} is not imported from the copy"
            else:
                path.write_text(original.replace(m["old"], m["new"]))
                try:
                    t0 = time.perf_counter()
                    rc, msg = run_tests(copy, m["tests"])
                    status = {0: "SURVIVED", 1: "killed"}.get(rc, f"ERROR(rc={rc})")
                    msg = f"{msg} ({time.perf_counter() - t0:.1f} s)"
                finally:
                    path.write_text(original)
            bad += status != "killed"
            results.append((m, status, msg))
            print(f"{m['id']:>4} {status:<9} {m['name']}: {msg}", flush=True)
    finally:
        if args.keep:
            print(f"copy kept at {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)
    killed = sum(s == "killed" for _, s, _ in results)
    print(f"\n{killed}/{len(results)} mutants killed" + ("" if not bad else f"; {bad} not killed"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
