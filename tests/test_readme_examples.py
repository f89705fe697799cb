"""The README's library examples run as written (with fewer steps, so that the test is quick):
a renamed argument or function in the library breaks this test, not a reader's first script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _library_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The library"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


EXAMPLES = _library_examples()


def test_the_library_section_has_its_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_a_library_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files (save_model)
    code = re.sub(r"\b(n_steps|steps|lambda_steps)=\d+", r"\1=3", EXAMPLES[index])
    code = re.sub(r"n_samples=[\d_]+", "n_samples=500", code)
    exec(compile(code, f"README.md library example {index + 1}", "exec"), {"__name__": "__readme__"})
