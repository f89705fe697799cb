"""Author–year labels in the bibliography, matching the author–year citations in the text.

The chapters cite with ``bibtex_reference_style: author_year`` ("Song *et al.*, 2019"), but
pybtex's ``plain`` style labels the list of references [1], [2], ... This extension registers
the pybtex formatting style ``plain_author_year``: ``plain`` (entries sorted by author, year,
title) with labels written like the citations:

* one author: ``Hyvärinen, 2005``; two: ``Song and Ermon, 2019``; more: ``Song et al., 2019``;
* two entries that would get the same label are told apart by a letter after the year
  (``2020a``, ``2020b``), in the order of the sorted list.

Select it with ``bibtex_default_style: plain_author_year`` in ``_config.yml``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx


def _last_names(person: Any) -> str:
    text = " ".join(str(Text.from_latex(part)) for part in person.prelast_names + person.last_names)
    return text.replace("{", "").replace("}", "")


def author_year_label(entry: Any) -> str:
    """``Last, Year``, ``Last1 and Last2, Year`` or ``Last1 et al., Year``."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    year = entry.fields.get("year", "n.d.")
    if not persons:
        return f"{entry.key}, {year}"
    if len(persons) == 1:
        names = _last_names(persons[0])
    elif len(persons) == 2:
        names = f"{_last_names(persons[0])} and {_last_names(persons[1])}"
    else:
        names = f"{_last_names(persons[0])} et al."
    return f"{names}, {year}"


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [author_year_label(entry) for entry in entries]
        repeated = {label for label, count in Counter(labels).items() if count > 1}
        seen: Counter[str] = Counter()
        for label in labels:
            if label in repeated:
                suffix = "abcdefghijklmnopqrstuvwxyz"[seen[label]]
                seen[label] += 1
                yield label + suffix
            else:
                yield label


class PlainAuthorYearStyle(PlainStyle):
    default_label_style = "author_year_label"


def setup(app: Sphinx) -> dict[str, Any]:
    register_plugin("pybtex.style.labels", "author_year_label", AuthorYearLabelStyle, force=True)
    register_plugin("pybtex.style.formatting", "plain_author_year", PlainAuthorYearStyle, force=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
