"""Resumable results with provenance, for the long runs (the ``cpu`` and ``full`` profiles).

A long experiment is cut into *units* of work, each a small mapping such as
``{"dataset": "redwine", "objective": "ssm_vr", "seed": 3}``. A :class:`RunStore` keeps one JSON
file per finished unit under ``<root>/<profile>/<experiment>/`` (``root`` is the committed folder
``results/`` unless told otherwise)::

    store = RunStore("dkef_uci", "cpu", settings=cfg, device=exp.device)
    results = run_units(units, train_one, store)   # skips the units already done

Each file is written when its unit finishes, atomically (a temporary file in the same folder,
then a rename), so an interrupted run leaves no half-written result, and the next run resumes
with the units still pending. A file that cannot be read back (corrupt, or written by something
else) does not count as done: the unit is run again, with a warning.

Every file carries its provenance: the git commit (and whether the work tree had uncommitted
changes), the profile, the settings used (this profile's values from the record), the seed, the
machine (CPU model, core count, GPU if any), the torch version, the unit's wall time, and the
*inputs fingerprint* (:func:`inputs_fingerprint`): SHA-256 digests of the library sources
(``ssm_lib/**/*.py``), the paper's recipes (``tools/paper_recipes/**/*.py``), the code cells of
the notebook (for a unit: those up to the cell that runs the units, so that redrawing a table
does not make finished units stale) and the settings table of its record. When the current
fingerprint differs from the one a result was made with, the result is *stale* (:meth:`RunStore.stale_units`,
:meth:`RunStore.summary`), and the page says so instead of showing old numbers as current.

One exception, recorded with its evidence: a library change that was *verified* to leave the
results as they were (:data:`LIBRARY_CHANGES`, written by ``tools/verify_library_change.py`` only
when committed units rerun with the changed library came out identical, value for value). A
result made with the library before such a change counts as made with the library after it
(:func:`library_equivalents`); any other change makes it stale as before.

Progress: a tqdm bar on a terminal only (never in a rendered notebook; ``TQDM_DISABLE`` is
respected), and one line per finished unit appended to the file named by the environment
variable ``BOOKTOOLS_PROGRESS_FILE`` when it is set (``tools/reproduce.py --progress-file``
follows that file and prints the lines on the terminal).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import tomllib
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LIBRARY_CHANGES",
    "PROGRESS_ENV",
    "RESULTS_ENV",
    "ROOT",
    "SITTING_ENV",
    "SITTING_START_ENV",
    "CorruptResult",
    "Fingerprint",
    "RunResult",
    "RunStore",
    "StaleSummary",
    "UnitFailed",
    "UnitResults",
    "code_as_run",
    "git_state",
    "inputs_fingerprint",
    "library_changes",
    "library_digest",
    "library_equivalents",
    "narrow_stored_units",
    "machine",
    "results_root",
    "run_units",
    "unit_key",
]

#: The repository (``tools/booktools/runs.py`` is two folders below it).
ROOT = Path(__file__).resolve().parents[2]
#: Environment variable naming another results root (the smoke runs write into a scratch folder).
RESULTS_ENV = "BOOKTOOLS_RESULTS_DIR"
#: Environment variable naming a file that receives one line per finished unit.
PROGRESS_ENV = "BOOKTOOLS_PROGRESS_FILE"
#: Environment variable: the sitting's length in seconds. :func:`run_units` starts no new unit
#: once that much time has passed since the sitting began, so that a long run ends its sitting
#: with its tables drawn from the units finished so far. The sitting begins at
#: ``$BOOKTOOLS_SITTING_START`` (Unix time; ``tools/reproduce.py`` sets it when it launches the
#: notebook, so the notebook's set-up before its first unit counts), else when this module was
#: imported.
SITTING_ENV = "BOOKTOOLS_SITTING_S"
SITTING_START_ENV = "BOOKTOOLS_SITTING_START"
_IMPORTED = time.monotonic()

_SCHEMA = 1
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class UnitFailed(RuntimeError):
    """A unit's function raised; the message names the unit, the finished units are kept."""


class CorruptResult(ValueError):
    """A result file that cannot be read back as a finished unit."""


def results_root() -> Path:
    """Where committed results live: ``$BOOKTOOLS_RESULTS_DIR`` when set, else ``results/``."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env) if env else ROOT / "results"


def unit_key(unit: Mapping[str, Any] | str) -> str:
    """The file name (without ``.json``) of a unit: its items in the given order as
    ``name=value`` joined by ``__``, e.g. ``dataset=redwine__objective=ssm__seed=0``; a string
    unit is its own key. Names and values must be short plain words (letters, digits, ``._+-``);
    a value may be an int or a string."""
    if isinstance(unit, str):
        parts = [unit]
    elif isinstance(unit, Mapping) and unit:
        parts = []
        for name, value in unit.items():
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise TypeError(f"unit {dict(unit)!r}: value of {name!r} must be an int or a string, "
                                f"got {type(value).__name__}")
            parts.append(f"{name}={value}")
            if not (isinstance(name, str) and _SAFE.match(name) and _SAFE.match(str(value))):
                raise ValueError(f"unit {dict(unit)!r}: {name!r}={value!r} is not a plain word "
                                 "(letters, digits, '._+-')")
    else:
        raise TypeError(f"unit must be a non-empty mapping or a string, got {unit!r}")
    if isinstance(unit, str) and not _SAFE.match(unit):
        raise ValueError(f"unit {unit!r} is not a plain word (letters, digits, '._+-')")
    key = "__".join(parts)
    if len(key) > 200:
        raise ValueError(f"unit {unit!r}: key longer than 200 characters")
    return key


# --- provenance --------------------------------------------------------------------------------

def _digest(items: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in items:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def _tree_digest(root: Path, folder: str) -> str:
    files = sorted(p for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return _digest((p.relative_to(root).as_posix(), p.read_bytes()) for p in files)


# import statements only (a docstring that names a module does not make it an input)
_RECIPE_REF = re.compile(r"^\s*(?:from|import) paper_recipes\.(\w+)|^\s*from paper_recipes import "
                         r"(\([\w,\s]+\)|[\w, ]+)", re.M)
_RELATIVE_REF = re.compile(r"^\s*from \.(\w*) import (\([\w,\s]+\)|[\w, ]+)", re.M)


def _recipes_digest(root: Path, notebook: Path) -> str:
    """The digest of the recipe modules the notebook's code uses: those it names
    (``paper_recipes.uci``, ``from paper_recipes import nice``), the package's ``__init__`` and,
    transitively, the modules they import; every module when the notebook cannot be read. So an
    edit to the VAE recipes does not make the DKEF results stale."""
    folder = root / "tools" / "paper_recipes"
    every = sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
    if not notebook.is_file():
        return _digest((p.relative_to(root).as_posix(), p.read_bytes()) for p in every)
    code = "\n".join(_CODE_CELL.findall(notebook.read_text())) if notebook.suffix == ".md" \
        else notebook.read_text()

    def names(text: str, relative: bool) -> set[str]:
        found = set()
        for a, b in (_RELATIVE_REF if relative else _RECIPE_REF).findall(text):
            if a:  # paper_recipes.X / from .X import ...
                found.add(a)
            else:  # from paper_recipes import x, y / from . import x, y
                found.update(n for n in re.split(r"[\s,()]+", b) if n)
        return found

    todo, seen = {"__init__"} | names(code, False), set()
    while todo:
        name = todo.pop()
        path = folder / f"{name}.py"
        if name in seen or not path.is_file():  # a name imported from __init__, not a module
            continue
        seen.add(name)
        text = path.read_text()
        todo |= names(text, True) | names(text, False)
    files = sorted(folder / f"{n}.py" for n in seen)
    return _digest((p.relative_to(root).as_posix(), p.read_bytes()) for p in files)


_CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.M | re.S)


_UNITS_CALL = re.compile(r"\brun_units\(")


# A MyST code cell's options: ``:key: value`` lines, or a YAML block between ``---`` lines, first.
_CELL_OPTIONS = re.compile(r"\A(?:---\n.*?^---\n|(?::[\w-]+:[^\n]*\n)+)", re.M | re.S)


def _is_docstring(node: Any) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _syntax_tree_text(node: Any) -> str:
    """A syntax tree written out without positions, without the docstrings of functions and
    classes, and without the fields that are empty (``None``, ``[]``): the same text for the
    same program on Python 3.11 to 3.13, whose ``ast.dump`` differs in the empty fields it
    shows (``type_params=[]`` from 3.12)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body \
            and _is_docstring(node.body[0]):
        node = type(node)(**{**{f: getattr(node, f, None) for f in node._fields},
                             "body": node.body[1:] or [ast.Pass()]})
    if isinstance(node, ast.AST):
        fields = ((name, getattr(node, name, None)) for name in node._fields)
        return (type(node).__name__ + "("
                + ", ".join(f"{name}={_syntax_tree_text(value)}" for name, value in fields
                            if value is not None and value != []) + ")")
    if isinstance(node, list):
        return "[" + ", ".join(_syntax_tree_text(item) for item in node) + "]"
    return repr(node)


def code_as_run(cell: str) -> str:
    """What a code cell runs, independent of how it is written: its options (tags) as written,
    then its syntax tree, which leaves out comments, the docstrings of functions and classes,
    line breaks, indentation inside brackets, quote style and the splitting of a string into
    adjacent literals. Re-wrapping a cell to fit the page therefore does not make its results
    stale; a change to what it computes does. A cell Python cannot parse (an IPython magic) is
    taken as written."""
    options = _CELL_OPTIONS.match(cell)
    head = options.group(0) if options else ""
    body = cell[len(head):]
    try:
        tree = ast.parse(body)
    except SyntaxError:
        return cell
    return head + _syntax_tree_text(tree)


def _notebook_digest(path: Path, *, through_units: bool = False, as_written: bool = False) -> str:
    """The digest of what the notebook's code cells run (:func:`code_as_run`): neither prose
    nor the layout of code, comments included, makes results stale.

    ``through_units``: only the code cells up to the last one that calls ``run_units(`` (all of
    them when none does). A unit is computed in that cell, from what the cells before it
    defined; the notebook runs top to bottom, so the cells after it (tables, figures, claims)
    cannot change a unit, and editing them must not make the stored units stale.

    ``as_written``: the digest of the cells' text as written, the notebook part of the
    fingerprints made before 2026-12-07 (read only to move such results onto this digest,
    :func:`narrow_stored_units`)."""
    if not path.is_file():
        return "absent"
    text = path.read_text()
    cells = _CODE_CELL.findall(text) if path.suffix == ".md" else [text]
    if through_units:
        last = max((i for i, c in enumerate(cells) if _UNITS_CALL.search(c)), default=len(cells) - 1)
        cells = cells[:last + 1]
    if not as_written:
        cells = [code_as_run(c) for c in cells]
    return _digest((str(i), c.encode()) for i, c in enumerate(cells))


def _record_digest(path: Path, profile: str | None = None) -> str:
    """The digest of the record's ``settings`` table (its claims' wording does not shape a
    result). ``profile``: only the values that profile runs with (its own, else the paper's),
    so that an edit to another profile's values, a label, a source or a reason does not make
    this profile's results stale."""
    if not path.is_file():
        return "absent"
    with path.open("rb") as fh:
        settings = tomllib.load(fh).get("settings", {})
    if profile is not None:
        settings = {k: v.get(profile, v.get("paper")) if isinstance(v, dict) else v
                    for k, v in settings.items()}
        return _digest([(f"settings/{profile}", json.dumps(settings, sort_keys=True, default=str).encode())])
    return _digest([("settings", json.dumps(settings, sort_keys=True, default=str).encode())])


#: Where the verified library changes are recorded, relative to the repository.
LIBRARY_CHANGES = Path("results") / "library_changes.json"


def library_digest(root: Path = ROOT) -> str:
    """The digest of the library sources ``ssm_lib/**/*.py`` in the tree at ``root`` (the
    ``library`` part of :class:`Fingerprint`)."""
    return _tree_digest(Path(root), "ssm_lib")


def library_changes(root: Path = ROOT) -> list[dict[str, Any]]:
    """The verified library changes recorded in ``<root>/results/library_changes.json``
    (``[]`` when there is none): each ``{"from": digest, "to": digest, "summary": ...,
    "verified": {..., "units": [{"experiment", "key", "identical", ...}, ...]}}``. A file that
    is not such a list raises ``ValueError`` naming it."""
    path = Path(root) / LIBRARY_CHANGES
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        changes = data["changes"]
        if not isinstance(changes, list) or not all(
                isinstance(c, dict) and isinstance(c.get("from"), str) and isinstance(c.get("to"), str)
                for c in changes):
            raise TypeError("every change needs string 'from' and 'to' digests")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a record of library changes ({err})") from None
    return changes


def _verified(change: Mapping[str, Any]) -> bool:
    """A change counts only with evidence: at least one unit rerun, every one identical."""
    units = (change.get("verified") or {}).get("units") or []
    return bool(units) and all(isinstance(u, dict) and u.get("identical") is True for u in units)


def library_equivalents(root: Path = ROOT, current: str | None = None) -> frozenset[str]:
    """The digests of earlier libraries that a verified change (or a chain of them) leads from
    to the library at ``root`` (``current``: its digest, when already computed): results made
    with one of them count as made with this library. Changes without complete evidence
    (:func:`library_changes`) do not count."""
    current = library_digest(root) if current is None else current
    changes = [c for c in library_changes(root) if _verified(c)]
    same, grew = {current}, True
    while grew:
        grew = False
        for c in changes:
            if c["to"] in same and c["from"] not in same:
                same.add(c["from"])
                grew = True
    return frozenset(same - {current})


@dataclass(frozen=True)
class Fingerprint:
    """Digests of what a result depends on, part by part (so a page can say what changed).

    ``library_same_as``: digests of earlier libraries verified to compute what this one does
    (:func:`library_equivalents`); a stored fingerprint with one of them has an unchanged
    library part."""

    library: str
    recipes: str
    notebook: str
    record: str
    library_same_as: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def parts(self) -> dict[str, str]:
        return {"library": self.library, "recipes": self.recipes, "notebook": self.notebook,
                "record": self.record}

    def changed(self, other: Mapping[str, str]) -> list[str]:
        """The parts whose digest differs from ``other`` (a stored fingerprint); the library
        part does not count as changed where ``other``'s is in ``library_same_as``."""
        return [k for k, v in self.parts.items()
                if other.get(k) != v and not (k == "library" and other.get(k) in self.library_same_as)]

    def library_verified_since(self, other: Mapping[str, str]) -> bool:
        """Whether ``other``'s library differs from this one by verified changes only."""
        return other.get("library") != self.library and other.get("library") in self.library_same_as


def inputs_fingerprint(experiment: str, root: Path = ROOT, *, units: bool = False,
                       profile: str | None = None, code_as_written: bool = False) -> Fingerprint:
    """The fingerprint of ``experiment``'s inputs in the tree at ``root``: ``ssm_lib/**/*.py``,
    the recipe modules the notebook uses (``tools/paper_recipes``, see :func:`_recipes_digest`),
    the code cells of ``notebooks/<experiment>.md`` and the ``settings`` table of
    ``tools/paper_recipes/records/<experiment>.toml``; with the earlier libraries verified to
    compute what this one does (:func:`library_equivalents`).

    ``units=True``: the fingerprint of the stored units (:class:`RunStore`), whose notebook part
    covers the code cells only up to the cell that runs the units (see :func:`_notebook_digest`):
    a change to the tables or figures drawn after it redraws the results but does not make a
    finished unit stale. A results JSON (drawn by every cell) keeps the whole notebook's.

    ``profile``: the record part covers only the values that profile runs with (see
    :func:`_record_digest`); without it, the whole settings table.

    ``code_as_written``: the notebook part digests the cells' text rather than what they run
    (:func:`code_as_run`), as fingerprints did before 2026-12-07; only for moving results made
    then onto the current digest (:func:`narrow_stored_units`)."""
    root = Path(root)
    notebook = root / "notebooks" / f"{experiment}.md"
    library = library_digest(root)
    return Fingerprint(
        library=library,
        recipes=_recipes_digest(root, notebook),
        notebook=_notebook_digest(notebook, through_units=units, as_written=code_as_written),
        record=_record_digest(root / "tools" / "paper_recipes" / "records" / f"{experiment}.toml",
                              profile),
        library_same_as=library_equivalents(root, library))


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """``{"commit": <hash or None>, "dirty": <tracked files changed since the commit>}``; the
    committed results under ``results/`` do not count (a sitting in progress rewrites them, and
    they are what a run writes, not what it runs)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results") \
        if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def machine(device: Any = "cpu") -> dict[str, Any]:
    """What a unit ran on: CPU model, core count, torch threads and version, Python, the device
    and the GPU's name when it is CUDA (no host name: the files are committed)."""
    import torch

    from booktools.benchmark import cpu_name  # (heavy module: imported when needed)

    dev = torch.device(device)
    info: dict[str, Any] = {"cpu": cpu_name(), "cores": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                            "python": platform.python_version(), "device": str(dev), "gpu": None}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def _settings_values(settings: Any) -> dict[str, Any]:
    """Plain values of a settings mapping; a :class:`booktools.records.Settings` is read through
    its record, so that storing it does not count as the run reading every setting."""
    if settings is None:
        return {}
    record, profile = getattr(settings, "record", None), getattr(settings, "profile", None)
    if record is not None and profile is not None and hasattr(record, "settings"):
        return {k: s.values[profile] for k, s in record.settings.items()}
    return dict(settings)


# --- the store ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunResult:
    """One finished unit read back: its key, the unit, the payload, the provenance, and which
    fingerprint parts changed since (empty: current)."""

    key: str
    unit: dict[str, Any] | str
    payload: Any
    provenance: dict[str, Any]
    changed: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        return bool(self.changed)


@dataclass(frozen=True)
class StaleSummary:
    """Which stored results are current and which were produced by inputs that have changed."""

    current: tuple[str, ...]
    stale: dict[str, tuple[str, ...]]  # key -> changed parts
    corrupt: tuple[str, ...] = ()

    @property
    def any_stale(self) -> bool:
        return bool(self.stale)

    def line(self) -> str:
        """One sentence for a page: how many results are current, which are stale and why."""
        n = len(self.current) + len(self.stale)
        if not n:
            return "No stored results."
        if not self.stale:
            return f"All {n} stored results are current."
        parts = sorted({p for ch in self.stale.values() for p in ch})
        return (f"STALE: {len(self.stale)} of {n} stored results were produced before a change to "
                f"{', '.join(parts)}; rerun them before quoting their numbers.")


@dataclass
class RunStore:
    """The finished units of ``experiment`` under ``profile``: one JSON file per unit in
    ``<root>/<profile>/<experiment>/``.

    ``fingerprint``: the inputs fingerprint results are compared with (default: computed from
    the repository, :func:`inputs_fingerprint` with ``units=True`` and this ``profile``: the
    notebook's code cells through the one that runs the units, this profile's settings);
    ``settings``: this profile's settings (stored in each file); ``device``: where the units
    run (stored with the machine); ``warm_up``: :func:`run_units` runs each unit once untimed
    before the run it keeps (a smoke run on a GPU, :meth:`booktools.experiment.Experiment.run_store`)."""

    experiment: str
    profile: str
    root: Path | None = None
    fingerprint: Fingerprint | None = None
    settings: Any = None
    device: Any = "cpu"
    warm_up: bool = False
    _machine: dict[str, Any] | None = field(default=None, repr=False)
    _git: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("experiment", "profile"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _SAFE.match(value):
                raise ValueError(f"{name} must be a plain word (letters, digits, '._+-'), got {value!r}")
        self.root = Path(self.root) if self.root is not None else results_root()
        if self.fingerprint is None:
            self.fingerprint = inputs_fingerprint(self.experiment, units=True, profile=self.profile)
        elif not isinstance(self.fingerprint, Fingerprint):
            raise TypeError(f"fingerprint must be a Fingerprint, got {type(self.fingerprint).__name__}")
        # the commit is taken when the store is made, like the fingerprint: a sitting's units
        # name the commit they started from even if the tree is committed to while they run
        self._git = git_state()

    @property
    def folder(self) -> Path:
        return self.root / self.profile / self.experiment

    def path(self, unit: Mapping[str, Any] | str) -> Path:
        return self.folder / f"{unit_key(unit)}.json"

    def read(self, unit: Mapping[str, Any] | str) -> RunResult:
        """The stored result of ``unit``; ``FileNotFoundError`` when there is none,
        :class:`CorruptResult` when its file cannot be read back."""
        return self._read_file(self.path(unit))

    def _read_file(self, path: Path) -> RunResult:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CorruptResult(f"{path}: not readable JSON ({err})") from None
        if (not isinstance(data, dict) or data.get("schema") != _SCHEMA
                or not {"unit", "payload", "provenance"} <= set(data)
                or not isinstance(data["provenance"], dict)):
            raise CorruptResult(f"{path}: not a result file of schema {_SCHEMA}")
        try:
            key = unit_key(data["unit"])
        except (TypeError, ValueError) as err:
            raise CorruptResult(f"{path}: {err}") from None
        # the file is written with sorted keys, so a unit's items come back in another order
        # than its key's: compare the items, not their order
        if sorted(key.split("__")) != sorted(path.stem.split("__")):
            raise CorruptResult(f"{path}: holds unit {data['unit']!r}, not {path.stem!r}")
        if isinstance(data["unit"], dict):  # the items in the key's order again
            order = [part.split("=", 1)[0] for part in path.stem.split("__")]
            data["unit"] = {k: data["unit"][k] for k in order}
        stored = data["provenance"].get("fingerprint", {})
        changed = tuple(self.fingerprint.changed(stored if isinstance(stored, dict) else {}))
        return RunResult(path.stem, data["unit"], data["payload"], data["provenance"], changed)

    def done(self, unit: Mapping[str, Any] | str) -> bool:
        """Whether ``unit`` has a finished, readable and current result (a stale one, made
        before its inputs changed, is run again by :func:`run_units`)."""
        try:
            return not self.read(unit).stale
        except (FileNotFoundError, CorruptResult):
            return False

    def pending(self, units: Iterable[Mapping[str, Any] | str]) -> list[Mapping[str, Any] | str]:
        """The units of ``units`` without a finished, readable result, in order."""
        return [u for u in units if not self.done(u)]

    def save(self, unit: Mapping[str, Any] | str, payload: Any, *, wall_time: float | None = None,
             seed: int | None = None, settings_read: Iterable[str] | None = None) -> Path:
        """Write ``unit``'s result with its provenance, atomically (temporary file + rename).
        ``payload`` must be JSON data (non-finite floats are refused: store them as strings).
        ``settings_read``: the settings the unit read (kept, so that a later sitting that takes
        the result from the store can count them as read)."""
        key = unit_key(unit)
        if seed is None and isinstance(unit, Mapping) and isinstance(unit.get("seed"), int):
            seed = unit["seed"]
        if self._machine is None:
            self._machine = machine(self.device)
        provenance = {
            **self._git, "profile": self.profile, "experiment": self.experiment, "seed": seed,
            "settings": _settings_values(self.settings), "machine": self._machine,
            "torch": self._machine["torch"], "wall_time_s": wall_time,
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fingerprint": self.fingerprint.parts,
        }
        if settings_read is not None:
            provenance["settings_read"] = sorted(settings_read)
        body = {"schema": _SCHEMA, "unit": dict(unit) if isinstance(unit, Mapping) else unit,
                "payload": payload, "provenance": provenance}
        try:
            text = json.dumps(body, indent=1, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"payload of unit {key} is not JSON data: {err}") from None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.json"
        tmp = self.folder / f".{key}.json.tmp-{os.getpid()}"
        try:
            with tmp.open("w") as fh:
                fh.write(text + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def load_all(self) -> dict[str, RunResult]:
        """Every readable result in the folder, by key (corrupt files are skipped with a
        warning; temporary files of unfinished writes are ignored)."""
        out: dict[str, RunResult] = {}
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                out[path.stem] = self._read_file(path)
            except CorruptResult as err:
                warnings.warn(f"skipping a corrupt result: {err}", stacklevel=2)
        return out

    def summary(self) -> StaleSummary:
        """Current, stale and corrupt results of this store."""
        current, stale, corrupt = [], {}, []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                r = self._read_file(path)
            except CorruptResult:
                corrupt.append(path.stem)
                continue
            if r.stale:
                stale[r.key] = r.changed
            else:
                current.append(r.key)
        return StaleSummary(tuple(current), stale, tuple(corrupt))

    def stale_units(self) -> list[str]:
        """The keys of the stored results whose inputs changed since they were produced."""
        return list(self.summary().stale)


# --- the loop ----------------------------------------------------------------------------------

def _bar_wanted(progress: bool | None) -> bool:
    if os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {progress!r}")
    return progress


def _log_line(text: str) -> None:
    target = os.environ.get(PROGRESS_ENV)
    if target:
        with open(target, "a") as fh:
            fh.write(text + "\n")


class UnitResults(dict):
    """The payloads of the finished units, by key, in the order given; ``pending`` lists the
    keys of the units left for a later sitting (empty when the run is complete)."""

    pending: list[str]

    def __init__(self, items: Iterable[tuple[str, Any]], pending: list[str]):
        super().__init__(items)
        self.pending = list(pending)

    @property
    def complete(self) -> bool:
        return not self.pending


def _sitting_left() -> float:
    """Seconds left in this sitting (``inf`` when ``$BOOKTOOLS_SITTING_S`` is not set)."""
    raw = os.environ.get(SITTING_ENV, "").strip()
    if not raw:
        return math.inf
    try:
        length = float(raw)
    except ValueError:
        raise ValueError(f"{SITTING_ENV} must be a number of seconds, got {raw!r}") from None
    if not length > 0:
        raise ValueError(f"{SITTING_ENV} must be positive, got {raw!r}")
    start = os.environ.get(SITTING_START_ENV, "").strip()
    if start:
        try:
            return length - (time.time() - float(start))
        except ValueError:
            raise ValueError(f"{SITTING_START_ENV} must be a Unix time, got {start!r}") from None
    return length - (time.monotonic() - _IMPORTED)


def run_units(units: Iterable[Mapping[str, Any] | str], fn: Callable[[Any], Any], store: RunStore,
              *, progress: bool | None = None) -> UnitResults:
    """Run ``fn(unit)`` for every unit without a finished result in ``store`` and save what it
    returns; return the payloads of all finished units (stored and new), by key, in the order
    given (a :class:`UnitResults`).

    When ``$BOOKTOOLS_SITTING_S`` is set, no unit starts after the sitting's end: the units
    left are listed in ``.pending`` (and are missing from the mapping), and the next sitting
    resumes with them.

    A unit whose file is corrupt is run again (with a warning), and so is a stale one (made
    before a change to its inputs; a line says so): the results returned are all current. When
    ``fn`` raises, the loop stops with :class:`UnitFailed` naming the unit; the units finished
    before it stay saved, so the next call resumes there. ``progress``: a tqdm bar on standard
    error (``None``: only on a terminal; never when ``TQDM_DISABLE`` is set)."""
    if not isinstance(store, RunStore):
        raise TypeError(f"store must be a RunStore, got {type(store).__name__}")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    units = list(units)
    keys = [unit_key(u) for u in units]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"units must be distinct; repeated: {dup}")
    results: dict[str, Any] = {}
    todo = []
    stale: dict[str, tuple[str, ...]] = {}
    for unit, key in zip(units, keys, strict=True):
        try:
            stored = store.read(unit)
        except FileNotFoundError:
            todo.append((unit, key))
            continue
        except CorruptResult as err:
            warnings.warn(f"re-running unit {key}: {err}", stacklevel=2)
            todo.append((unit, key))
            continue
        if stored.stale:  # made before its inputs changed: run again, never mixed in as current
            stale[key] = stored.changed
            todo.append((unit, key))
            continue
        results[key] = stored.payload
        _note_settings_read(store, stored)
    name = f"{store.experiment}/{store.profile}"
    _log_line(f"{name}: {len(units) - len(todo)} of {len(units)} units already done")
    if stale:
        parts = ", ".join(sorted({p for changed in stale.values() for p in changed}))
        _log_line(f"{name}: {len(stale)} stored units are stale (made before a change to {parts}) "
                  "and are run again")
    from tqdm.auto import tqdm

    show = _bar_wanted(progress)
    pending: list[str] = []
    if store.warm_up and todo:
        _log_line(f"{name}: each unit runs once untimed before the run that is kept (warm-up: the "
                  "first calls of a GPU's kernels would otherwise be timed as a step)")
    with tqdm(total=len(todo), desc=name, disable=not show, leave=False, file=sys.stderr) as bar:
        for i, (unit, key) in enumerate(todo, 1):
            if _sitting_left() <= 0:
                pending = [k for _, k in todo[i - 1:]]
                _log_line(f"{name}: the sitting is over; {len(pending)} units left for the next one "
                          "(rerun to resume)")
                break
            bar.set_postfix_str(key, refresh=False)
            if store.warm_up:  # the same unit, same seeds: its result is thrown away
                try:
                    fn(unit)
                except KeyboardInterrupt:
                    raise
                except Exception as err:
                    raise UnitFailed(f"{name}: unit {key} failed in its warm-up with {type(err).__name__}: "
                                     f"{err}") from err
            start = time.perf_counter()
            try:
                with _tracking(store.settings) as read:
                    payload = fn(unit)
            except KeyboardInterrupt:
                raise
            except Exception as err:
                raise UnitFailed(f"{name}: unit {key} failed with {type(err).__name__}: {err}; the "
                                 f"{len(units) - len(todo) + i - 1} finished units are kept in "
                                 f"{store.folder}, rerun to resume") from err
            wall = time.perf_counter() - start
            store.save(unit, payload, wall_time=wall, settings_read=read)
            results[key] = payload
            bar.update(1)
            _log_line(f"{name}: [{i}/{len(todo)}] {key} done in {_fmt_time(wall)}")
    return UnitResults(((k, results[k]) for k in keys if k in results), pending)


def _tracking(settings: Any) -> Any:
    """``settings.tracking()`` for a :class:`booktools.records.Settings`; for plain settings (or
    none) a block that collects nothing, so the unit's reads are not stored."""
    track = getattr(settings, "tracking", None)
    return track() if callable(track) else contextlib.nullcontext(None)


def _note_settings_read(store: RunStore, stored: RunResult) -> None:
    """A unit taken from the store read its settings in the sitting that ran it: count them as
    read in this one (``Settings.unread`` would otherwise name the settings only units read). A
    unit stored before its reads were kept counts every setting it was run with."""
    note = getattr(store.settings, "note_read", None)
    if not callable(note) or not isinstance(stored.provenance, Mapping):
        return
    keys = stored.provenance.get("settings_read")
    if keys is None:
        keys = list(stored.provenance.get("settings") or {})
    note(keys)


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def narrow_stored_units(experiment: str, profile: str, root: Path | None = None,
                        repo: Path = ROOT, made_in: Path | None = None) -> list[str]:
    """Move the stored units of ``experiment`` made with an older style of fingerprint onto the
    current one, where that is provably the same code and settings: units fingerprinted before
    their notebook digest stopped at their units cell and their record digest at their
    profile's settings, and units whose notebook digest is of the cells' text as written rather
    than of what they run (before 2026-12-07, :func:`code_as_run`).

    ``made_in``: the tree the units were made from (default ``repo``; e.g. a worktree of the
    commit a sitting started from, when cells after the units cell have been edited since). A
    unit is rewritten only when its whole stored fingerprint equals an older style of
    fingerprint of ``made_in`` (the library part up to verified changes), and the narrower
    fingerprint of ``made_in`` equals that of ``repo`` (nothing a unit depends on changed between
    the two). It gets ``repo``'s narrower digests (its library digest stays as made: it may be
    an earlier library verified to compute what this one does), and the date in its provenance
    as ``fingerprint_narrowed_utc``; any other unit is left as it is, and stays stale. Returns
    the keys rewritten."""
    made_in = repo if made_in is None else Path(made_in)
    narrow = inputs_fingerprint(experiment, repo, units=True, profile=profile)
    if inputs_fingerprint(experiment, made_in, units=True, profile=profile) != narrow:
        return []  # the inputs of a unit differ between the two trees: nothing can move
    older = [inputs_fingerprint(experiment, made_in, units=units, profile=prof, code_as_written=written)
             for units, prof, written in [(False, None, False), (True, None, False),
                                          (False, None, True), (True, None, True),
                                          (True, profile, True)]]
    store = RunStore(experiment, profile, root=root, fingerprint=narrow)
    moved = []
    for key, result in store.load_all().items():
        stored = result.provenance.get("fingerprint")
        if not isinstance(stored, dict) or narrow.changed(stored) == [] or not any(
                fp.changed(stored) == [] for fp in older):
            continue  # current already, or stale
        path = store.folder / f"{key}.json"
        data = json.loads(path.read_text())
        # the library part stays as made (an earlier library verified to compute the same)
        data["provenance"]["fingerprint"] = {**narrow.parts, "library": stored["library"]}
        data["provenance"]["fingerprint_narrowed_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        tmp = path.with_name(f".{key}.json.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n")
        os.replace(tmp, path)
        moved.append(key)
    return moved
