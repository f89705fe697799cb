"""The paper's settings as data: one record per experiment, one entry per setting.

Each experiment notebook ``<name>`` has a record ``tools/paper_recipes/records/<name>.toml``
holding, for every choice that shapes a number, the paper's value with its source and the value
each profile uses, with the reason wherever the two differ::

    [settings.n_inducing]
    label = "inducing points"
    paper = 200
    source = "Sec. 5.1"
    quick = 20
    quick_reason = "the quick profile runs every notebook on two CPU cores in 15 minutes"
    # full omitted: the full profile uses the paper's value

A setting the paper does not fix is marked ``paper_unset = true``; it then has a value for every
profile and a ``reason`` for it. The notebook reads its settings only through
:class:`Settings` (``exp.settings``): a key that is not in the record raises ``KeyError``, and
:meth:`Settings.unread` names the recorded settings the run never read, so a record and the
code that uses it cannot drift apart. :func:`differences_markdown` renders the "Differences from
the paper" table that the chapters show.

The same file holds the experiment's claims (see :mod:`booktools.claims`).
"""

from __future__ import annotations

import html
import math
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from booktools.mathtext import math_text

__all__ = [
    "OPT_IN_PROFILES",
    "PROFILES",
    "RECORDS_DIR",
    "Record",
    "RecordError",
    "Setting",
    "Settings",
    "differences_html",
    "differences_markdown",
    "format_value",
    "load_record",
    "record_names",
    "settings_markdown",
]

#: The profiles every record describes (``quick``: the build's run; ``full``: one GPU).
PROFILES = ("quick", "full")
#: Profiles a record describes only when it lists them in its top-level ``profiles`` (``cpu``:
#: the paper's data and settings, reduced only where a 2-core CPU cannot run them; see
#: ``booktools.profiles`` for why it is opt-in).
OPT_IN_PROFILES = ("cpu",)

#: The folder of the records, ``tools/paper_recipes/records``.
RECORDS_DIR = Path(__file__).resolve().parents[1] / "paper_recipes" / "records"

_SETTING_KEYS = {"label", "paper", "source", "paper_unset", "reason"} | {
    k for p in PROFILES + OPT_IN_PROFILES for k in (p, f"{p}_reason")}


class RecordError(ValueError):
    """A record that breaks the rules: a setting without a source, a difference without a
    reason, an unknown key."""


def _same(a: Any, b: Any) -> bool:
    """Equality of two TOML values, with floats compared to 12 significant digits."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def format_value(value: Any) -> str:
    """A setting's value as table text: ``1e-04``-style floats, lists with commas, tables as
    ``key: value`` pairs."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ") if abs(value) >= 10_000 else str(value)
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True)
class Setting:
    """One recorded choice: the paper's value (``None`` where the paper leaves it open) and the
    value and reason of each profile."""

    key: str
    label: str
    paper: Any
    source: str
    paper_unset: bool
    values: dict[str, Any]
    reasons: dict[str, str]

    def differs(self, profile: str) -> bool:
        """Whether ``profile`` uses another value than the paper (always true when the paper
        leaves the setting open)."""
        return self.paper_unset or not _same(self.values[profile], self.paper)


@dataclass(frozen=True)
class Record:
    """An experiment's record: its settings and its claims (raw tables, see
    :mod:`booktools.claims`)."""

    name: str
    path: Path
    title: str
    paper_section: str
    settings: dict[str, Setting]
    claims: dict[str, dict[str, Any]]
    #: The profiles this record describes (those of ``PROFILES``, then the opt-in ones it lists).
    profiles: tuple[str, ...] = PROFILES

    def settings_for(self, profile: str) -> Settings:
        """The settings of ``profile``, for a notebook to read."""
        self.check_profile(profile)
        return Settings(self, profile)

    def check_profile(self, profile: str) -> None:
        """Raise ``ValueError`` unless this record describes ``profile``."""
        if profile not in self.profiles:
            hint = (f"; the record has not opted in to {profile!r} (profiles = "
                    f"{[*self.profiles, profile]} at its top, and {profile} values per setting)"
                    if profile in OPT_IN_PROFILES else "")
            raise ValueError(f"profile must be one of {self.profiles} for {self.name!r}, "
                             f"got {profile!r}{hint}")


def _parse_setting(path: Path, key: str, raw: Any, profiles: tuple[str, ...] = PROFILES) -> Setting:
    where = f"{path.name}: setting {key!r}"
    if not isinstance(raw, dict):
        raise RecordError(f"{where} must be a table ([settings.{key}])")
    unknown = set(raw) - _SETTING_KEYS
    if unknown:
        raise RecordError(f"{where} has unknown keys {sorted(unknown)} (allowed: {sorted(_SETTING_KEYS)})")
    if not isinstance(raw.get("label"), str) or not raw["label"]:
        raise RecordError(f"{where} needs a label")
    unset = bool(raw.get("paper_unset", False))
    values: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    if unset:
        if "paper" in raw or "source" in raw:
            raise RecordError(f"{where} is paper_unset but gives a paper value or source")
        if not str(raw.get("reason", "")).strip():
            raise RecordError(f"{where} is paper_unset and needs a reason for our value")
        for p in profiles:
            if p not in raw:
                raise RecordError(f"{where} is paper_unset and needs a value for profile {p!r}")
            values[p] = raw[p]
            reasons[p] = str(raw.get(f"{p}_reason") or raw["reason"])
        return Setting(key, raw["label"], None, "", True, values, reasons)
    if "paper" not in raw:
        raise RecordError(f"{where} needs the paper's value (or paper_unset = true)")
    if not str(raw.get("source", "")).strip():
        raise RecordError(f"{where} needs a source for the paper's value")
    if "reason" in raw:
        raise RecordError(f"{where}: `reason` is for paper_unset settings; use <profile>_reason")
    for p in profiles:
        values[p] = raw.get(p, raw["paper"])
        reason = str(raw.get(f"{p}_reason", "")).strip()
        if not _same(values[p], raw["paper"]) and not reason:
            raise RecordError(f"{where}: profile {p!r} uses {format_value(values[p])} where the paper "
                              f"uses {format_value(raw['paper'])}, and {p}_reason is missing")
        if reason and _same(values[p], raw["paper"]):
            raise RecordError(f"{where}: {p}_reason given but {p} equals the paper's value")
        reasons[p] = reason
    return Setting(key, raw["label"], raw["paper"], raw["source"], False, values, reasons)


def record_names(directory: Path = RECORDS_DIR) -> list[str]:
    """The experiments that have a record, sorted."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_record(name: str, directory: Path = RECORDS_DIR) -> Record:
    """Read and check ``<directory>/<name>.toml``; raises :class:`RecordError` on a broken rule
    and ``FileNotFoundError`` naming the file when there is none."""
    path = Path(directory) / f"{name}.toml"
    if not path.is_file():
        raise FileNotFoundError(f"no record for experiment {name!r}: {path} does not exist")
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    unknown = set(raw) - {"experiment", "title", "paper_section", "profiles", "settings", "claims"}
    if unknown:
        raise RecordError(f"{path.name}: unknown top-level keys {sorted(unknown)}")
    profiles = _declared_profiles(path, raw)
    if raw.get("experiment") != name:
        raise RecordError(f"{path.name}: experiment = {raw.get('experiment')!r}, expected {name!r}")
    for key in ("title", "paper_section"):
        if not str(raw.get(key, "")).strip():
            raise RecordError(f"{path.name}: needs a {key}")
    settings = {k: _parse_setting(path, k, v, profiles) for k, v in raw.get("settings", {}).items()}
    for k, v in raw.get("settings", {}).items():  # an undeclared opt-in profile's values are a slip
        stray = sorted(x for x in v if x.split("_reason")[0] in OPT_IN_PROFILES and
                       x.split("_reason")[0] not in profiles)
        if stray:
            raise RecordError(f"{path.name}: setting {k!r} gives {stray} but the record does not "
                              f"list that profile in its top-level profiles ({list(profiles)})")
    claims = raw.get("claims", {})
    if not isinstance(claims, dict) or not all(isinstance(c, dict) for c in claims.values()):
        raise RecordError(f"{path.name}: claims must be tables ([claims.<id>])")
    return Record(name, path, raw["title"], raw["paper_section"], settings, claims, profiles)


def _declared_profiles(path: Path, raw: dict[str, Any]) -> tuple[str, ...]:
    """The record's top-level ``profiles`` (default :data:`PROFILES`), checked: it lists every
    profile of :data:`PROFILES` and nothing but known profiles."""
    declared = raw.get("profiles", list(PROFILES))
    if not isinstance(declared, list) or not all(isinstance(p, str) for p in declared):
        raise RecordError(f"{path.name}: profiles must be a list of profile names")
    known = PROFILES + OPT_IN_PROFILES
    unknown = [p for p in declared if p not in known]
    missing = [p for p in PROFILES if p not in declared]
    if unknown or missing or len(set(declared)) != len(declared):
        raise RecordError(f"{path.name}: profiles = {declared}: " + (
            f"unknown {unknown} (known: {list(known)})" if unknown
            else f"every record describes {list(PROFILES)}; missing {missing}" if missing
            else "a profile is listed twice"))
    return PROFILES + tuple(p for p in OPT_IN_PROFILES if p in declared)


@dataclass
class Settings(Mapping[str, Any]):
    """A profile's settings, read by key (``cfg["steps"]``) or attribute (``cfg.steps``).

    Reading a key that is not recorded raises ``KeyError`` naming the record file; every key
    read is remembered, and :meth:`unread` lists those never read."""

    record: Record
    profile: str
    _read: set[str] = field(default_factory=set)
    _trackers: list[set[str]] = field(default_factory=list, repr=False)

    def __getitem__(self, key: str) -> Any:
        if key not in self.record.settings:
            raise KeyError(f"setting {key!r} is not in the record of {self.record.name!r} "
                           f"({self.record.path}); add it there with the paper's value and source")
        self._read.add(key)
        for keys in self._trackers:
            keys.add(key)
        return self.record.settings[key].values[self.profile]

    @contextmanager
    def tracking(self) -> Iterator[set[str]]:
        """``with cfg.tracking() as keys:`` collects in ``keys`` every setting read inside the
        block (also those read before it), e.g. by one unit of a resumable run."""
        keys: set[str] = set()
        self._trackers.append(keys)
        try:
            yield keys
        finally:
            self._trackers.remove(keys)

    def note_read(self, keys: Iterable[str]) -> None:
        """Count ``keys`` as read: what a unit finished in an earlier sitting read, when this
        sitting takes its result from the store instead of running it (unknown keys are
        ignored: the record's fingerprint already says whether the settings changed since)."""
        self._read.update(k for k in keys if k in self.record.settings)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key in ("record", "profile"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError as err:
            raise AttributeError(str(err)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.record.settings)

    def __len__(self) -> int:
        return len(self.record.settings)

    def unread(self) -> list[str]:
        """The recorded settings this run has not read."""
        return [k for k in self.record.settings if k not in self._read]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _difference_rows(record: Record, profile: str) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """The rows (setting, paper with source, this profile's value, why) of the settings that
    differ in ``profile``, and the labels of those equal to the paper's, their ASCII
    mathematics set in symbols for the page (:func:`booktools.mathtext.math_text`)."""
    record.check_profile(profile)
    rows = []
    for s in record.settings.values():
        if s.differs(profile):
            paper = "not set by the paper" if s.paper_unset else f"{format_value(s.paper)} ({s.source})"
            row = (s.label, paper, format_value(s.values[profile]), s.reasons[profile])
            rows.append(tuple(math_text(c) for c in row))
    same = [math_text(s.label) for s in record.settings.values() if not s.differs(profile)]
    return rows, same


def differences_markdown(record: Record, profile: str) -> str:
    """The "Differences from the paper" table of ``profile`` as Markdown: one row per setting
    whose value differs from the paper's (or that the paper leaves open), with the paper's value
    and source, this profile's value, and why; then the settings equal to the paper's, by name."""
    rows, same = _difference_rows(record, profile)
    lines = [f"| setting | paper | {profile} profile | why |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(_cell(c) for c in row)} |" for row in rows]
    if not rows:
        lines.append(f"| (none) | | | the {profile} profile is the paper's setting |")
    text = "\n".join(lines)
    if same:
        text += (f"\n\nAs in the paper ({len(same)} settings): " + "; ".join(same) + ".")
    return text


def differences_html(record: Record, profile: str) -> str:
    """The same table as :func:`differences_markdown`, as an HTML fragment (what the chapters
    glue from the executed notebook: cross-page glue carries HTML, not Markdown)."""
    rows, same = _difference_rows(record, profile)
    head = ["setting", "paper", f"{profile} profile", "why"]
    body = rows or [("(none)", "", "", f"the {profile} profile is the paper's setting")]
    # the theme's scroll container: a table wider than a phone scrolls inside it, not the page
    out = ['<div class="pst-scrollable-table-container">', '<table class="table differences-table">',
           "<thead><tr>"
           + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body]
    out.append("</tbody></table></div>")
    if same:
        out.append(f"<p>As in the paper ({len(same)} settings): {html.escape('; '.join(same))}.</p>")
    return "\n".join(out)


def settings_markdown(record: Record) -> str:
    """Every recorded setting with the paper's value, its source and each profile's value."""
    head = "| setting | paper | source | " + " | ".join(record.profiles) + " |"
    lines = [head, "|" + "---|" * (3 + len(record.profiles))]
    for s in record.settings.values():
        paper = "not set" if s.paper_unset else format_value(s.paper)
        source = s.reasons[PROFILES[0]] if s.paper_unset else s.source
        vals = " | ".join(_cell(format_value(s.values[p])) for p in record.profiles)
        lines.append(f"| {_cell(s.label)} | {_cell(paper)} | {_cell(source)} | {vals} |")
    return "\n".join(lines)
