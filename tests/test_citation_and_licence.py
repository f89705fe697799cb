"""LICENSE, CITATION.cff and the packages' metadata: a licence that says what it covers, a
citation file with the fields CFF 1.2.0 requires (and the paper among its references), the
SPDX licence string setuptools wants, the Python versions the lock can honour."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_licence_is_mit_and_says_the_data_differ():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    for data in ("data/uci/winequality-red.csv", "parkinsons_updrs.data", "mnist-10k.npz", "CC BY 4.0",
                 "CC BY-SA 3.0"):
        assert data in text, data


def _person_or_entity(author: dict) -> bool:
    return bool(author.get("family-names") or author.get("name"))


def test_citation_file_has_the_required_cff_fields():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):  # required by the CFF 1.2.0 schema
        assert cff.get(key), key
    assert all(_person_or_entity(a) for a in cff["authors"])
    assert cff["type"] in ("software", "dataset")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(cff["date-released"]))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cff["version"] == project["version"] and cff["license"] == project["license"] == "MIT"
    paper = next(r for r in cff["references"] if "Sliced Score Matching" in r["title"])
    assert paper["type"] and paper["year"] == 2019
    assert [a["family-names"] for a in paper["authors"]] == ["Song", "Garg", "Shi", "Ermon"]


def test_both_how_to_cite_sections_name_the_book_and_the_paper():
    for page in ("README.md", "book/index.md"):
        text = (ROOT / page).read_text()
        section = text[text.index("## How to cite"):]
        assert "Sliced Score Matching, Step by Step" in section and "song2019sliced" in section, page


def test_licence_is_an_spdx_string_and_python_floor_is_the_locks():
    for path in ("pyproject.toml", "tools/pyproject.toml"):
        project = tomllib.loads((ROOT / path).read_text())["project"]
        assert project["license"] == "MIT", path  # not the deprecated {text = "MIT"} table
        assert project["requires-python"] == ">=3.11", path  # numpy 2.4 and contourpy 1.3.3 need 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["license-files"] == ["LICENSE"]
    assert config["tool"]["ruff"]["target-version"] == "py311"
    assert "3.10" not in (ROOT / "README.md").read_text().split("## What lives where")[0]
