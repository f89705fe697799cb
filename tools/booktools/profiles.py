"""The run profiles, and the ``cpu`` profile's values as a record will carry them (issue 24).

Every record describes the profiles of :data:`booktools.records.PROFILES` (``quick`` and
``full``); a setting that omits a profile's value uses the paper's. The ``cpu`` profile (the
paper's data and settings, reduced only where a 2-core CPU cannot run them) is *opt-in*: a record
describes it only once its author has gone through every setting for it, and says so at the top::

    profiles = ["quick", "full", "cpu"]

    [settings.epochs]
    label = "training epochs"
    paper = 500
    source = "Sec. 5.1"
    cpu = 60
    cpu_reason = "2-core CPU: exact SM at 500 epochs takes 7.8 h on Parkinsons; 60 fit in 2 h"

Why opt-in rather than a third entry of ``PROFILES``: with "omitted means the paper's value",
adding ``cpu`` to every record at once would make each existing record claim that its ``cpu``
profile *is* the paper's setting (an empty differences table) although nobody chose a single
``cpu`` value; a notebook would then try a 28-hour run, or quietly run something else. Opting in
makes that claim only where someone made it. Within a record that opts in, the rules are those
of the other profiles: an omitted ``cpu`` is the paper's value, a differing one needs
``cpu_reason``, a ``paper_unset`` setting needs a ``cpu`` value.

Until :func:`booktools.records.load_record` takes these keys in (the next step: widen its
allowed keys by ``OPT_IN_PROFILES`` and parse each declared profile as it parses ``quick``),
:func:`opt_in_values` reads them from the TOML directly; ``tools/reproduce.py --profile cpu``
uses :func:`describes` to refuse, before a kernel starts, a notebook whose record has not opted
in.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from booktools.records import PROFILES, RECORDS_DIR, RecordError, format_value

__all__ = [
    "OPT_IN_PROFILES",
    "RUN_PROFILES",
    "NotDescribed",
    "OptInValue",
    "declared_profiles",
    "describes",
    "opt_in_values",
]

#: Profiles a record describes only when it lists them in its top-level ``profiles``.
OPT_IN_PROFILES = ("cpu",)
#: Every profile a run may ask for (``tools/reproduce.py --profile``, ``make reproduce PROFILE=``).
RUN_PROFILES = PROFILES + OPT_IN_PROFILES


class NotDescribed(ValueError):
    """A run asked for an opt-in profile that the experiment's record does not describe."""


@dataclass(frozen=True)
class OptInValue:
    """One setting's value in an opt-in profile, and why it differs from the paper's (``""``
    when it does not)."""

    value: Any
    reason: str
    differs: bool


def _raw(name: str, directory: Path) -> tuple[Path, dict[str, Any]]:
    path = Path(directory) / f"{name}.toml"
    if not path.is_file():
        raise NotDescribed(f"experiment {name!r} has no record ({path}), so it has only the quick and "
                           "full profiles")
    with path.open("rb") as fh:
        return path, tomllib.load(fh)


def declared_profiles(name: str, directory: Path = RECORDS_DIR) -> tuple[str, ...]:
    """The profiles the record of ``name`` describes: its top-level ``profiles`` list, or
    :data:`~booktools.records.PROFILES` when it has none."""
    path, raw = _raw(name, directory)
    declared = raw.get("profiles", list(PROFILES))
    if not isinstance(declared, list) or not all(isinstance(p, str) for p in declared):
        raise RecordError(f"{path.name}: profiles must be a list of profile names")
    unknown = [p for p in declared if p not in RUN_PROFILES]
    missing = [p for p in PROFILES if p not in declared]
    if unknown or missing:
        raise RecordError(f"{path.name}: profiles = {declared}: " + (
            f"unknown {unknown} (known: {list(RUN_PROFILES)})" if unknown
            else f"every record describes {list(PROFILES)}; missing {missing}"))
    return tuple(declared)


def describes(name: str, profile: str, directory: Path = RECORDS_DIR) -> bool:
    """Whether a run of ``name`` may use ``profile``: ``quick`` and ``full`` always, an opt-in
    profile only when the record lists it."""
    if profile not in RUN_PROFILES:
        raise ValueError(f"profile must be one of {RUN_PROFILES}, got {profile!r}")
    if profile in PROFILES:
        return True
    try:
        return profile in declared_profiles(name, directory)
    except NotDescribed:
        return False


def opt_in_values(name: str, profile: str = "cpu", directory: Path = RECORDS_DIR) -> dict[str, OptInValue]:
    """Every setting's value in the opt-in ``profile`` of ``name``'s record, checked by the rules
    of the other profiles. Raises :class:`NotDescribed` when the record has not opted in and
    :class:`~booktools.records.RecordError` when a rule is broken."""
    if profile not in OPT_IN_PROFILES:
        raise ValueError(f"profile must be one of the opt-in profiles {OPT_IN_PROFILES}, got {profile!r}")
    path, raw = _raw(name, directory)
    if profile not in declared_profiles(name, directory):
        raise NotDescribed(
            f"the record of {name!r} ({path}) does not describe the {profile!r} profile yet: add "
            f"profiles = {[*PROFILES, profile]} at its top and, per setting, {profile} = <value> "
            f"(omitted: the paper's value) with {profile}_reason where it differs")
    out: dict[str, OptInValue] = {}
    for key, s in raw.get("settings", {}).items():
        where = f"{path.name}: setting {key!r}"
        reason = str(s.get(f"{profile}_reason", "")).strip()
        if s.get("paper_unset", False):
            if profile not in s:
                raise RecordError(f"{where} is paper_unset and needs a value for profile {profile!r}")
            out[key] = OptInValue(s[profile], reason or str(s.get("reason", "")), True)
            continue
        if "paper" not in s:
            raise RecordError(f"{where} needs the paper's value (or paper_unset = true)")
        value = s.get(profile, s["paper"])
        same = _same(value, s["paper"])
        if not same and not reason:
            raise RecordError(f"{where}: profile {profile!r} uses {format_value(value)} where the paper "
                              f"uses {format_value(s['paper'])}, and {profile}_reason is missing")
        if same and reason:
            raise RecordError(f"{where}: {profile}_reason given but {profile} equals the paper's value")
        out[key] = OptInValue(value, reason, not same)
    return out


def _same(a: Any, b: Any) -> bool:
    from booktools.records import _same as same  # the records' own equality (floats to 12 digits)

    return same(a, b)
