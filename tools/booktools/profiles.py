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

:func:`booktools.records.load_record` parses the declared profiles with these rules
(``Record.profiles``); :func:`opt_in_values` gives one opt-in profile's values with their
reasons, and ``tools/reproduce.py --profile cpu`` uses :func:`describes` to refuse, before a
kernel starts, a notebook whose record has not opted in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from booktools.records import OPT_IN_PROFILES, PROFILES, RECORDS_DIR, load_record

__all__ = [
    "OPT_IN_PROFILES",
    "RUN_PROFILES",
    "NotDescribed",
    "OptInValue",
    "declared_profiles",
    "describes",
    "opt_in_values",
]

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


def _record(name: str, directory: Path):
    try:
        return load_record(name, directory)
    except FileNotFoundError:
        path = Path(directory) / f"{name}.toml"
        raise NotDescribed(f"experiment {name!r} has no record ({path}), so it has only the quick and "
                           "full profiles") from None


def declared_profiles(name: str, directory: Path = RECORDS_DIR) -> tuple[str, ...]:
    """The profiles the record of ``name`` describes: :data:`~booktools.records.PROFILES` and
    the opt-in profiles its top-level ``profiles`` lists (checked by
    :func:`~booktools.records.load_record`)."""
    return _record(name, directory).profiles


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
    record = _record(name, directory)
    if profile not in record.profiles:
        raise NotDescribed(
            f"the record of {name!r} ({record.path}) does not describe the {profile!r} profile yet: add "
            f"profiles = {[*PROFILES, profile]} at its top and, per setting, {profile} = <value> "
            f"(omitted: the paper's value) with {profile}_reason where it differs")
    return {key: OptInValue(s.values[profile], s.reasons[profile], s.differs(profile))
            for key, s in record.settings.items()}
