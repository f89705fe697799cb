"""Re-wrap the code cells of MyST notebooks and chapters to fit the book's column, in place.

    python tools/wrap_code_cells.py notebooks/*.md book/*.md     # rewrite the files
    python tools/wrap_code_cells.py --check notebooks/*.md      # list lines still too long

The book's code boxes hold 84 characters (``tests/test_code_cells_fit.py``, which fails on a
longer line). Per cell, this

1. puts the trailing comment of a line that is too long (with the comment lines aligned under
   it that continue it) on its own lines above that line, or at the top of the block that the
   line opens (``else:  # ...``);
2. formats the cell with ``ruff format`` (in notebook mode, so that a last line's ``;`` that
   hides a value stays);
3. re-fills strings that ruff left as one piece per line with fragments among them (``f"no "``
   alone on a line), splits string literals that are still too long into adjacent literals
   (one value to Python), and re-flows comment blocks and docstrings with a line that is too
   long;
4. formats the cell again;

and then checks that each cell still runs the same code (:func:`booktools.runs.code_as_run`:
the syntax tree without comments and docstrings), so that the rewrite cannot change a result or
make a committed one stale. A file with a cell that would change is left as it was. Lines
it cannot shorten (a long word in a string) are listed for a hand edit.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tokenize
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booktools.runs import code_as_run  # noqa: E402

__all__ = ["CODE_WIDTH", "long_lines", "main", "wrap_cells", "wrap_file"]

CODE_WIDTH = 84
_CELL = re.compile(r"(^```\{code-cell\}[^\n]*\n)(.*?)(^```)", re.M | re.S)
_OPTIONS = re.compile(r"\A(?:---\n.*?^---\n|(?::[\w-]+:[^\n]*\n)+)", re.M | re.S)
_COMMENT = re.compile(r"(\s*)# ?(.*)\n?$")
_LIFTED = "\x01"  # marks a comment moved above its line until the comment blocks are re-flowed


def _ruff() -> str:
    here = Path(sys.executable).parent / "ruff"
    found = str(here) if here.exists() else shutil.which("ruff")
    if found is None:
        raise SystemExit("ruff is not installed (make venv installs it)")
    return found


def _format(sources: list[str], width: int) -> list[str]:
    """``ruff format`` of the cells, as one notebook."""
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
              "outputs": [], "source": s} for i, s in enumerate(sources)]
    notebook = {"cells": cells, "metadata": {"language_info": {"name": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.ipynb"
        path.write_text(json.dumps(notebook))
        done = subprocess.run([_ruff(), "format", "--isolated", f"--line-length={width}", str(path)],
                              capture_output=True, text=True)
        if done.returncode:
            raise ValueError(f"ruff format failed: {done.stderr.strip()}")
        out = json.loads(path.read_text())["cells"]
    texts = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in out]
    return [t + "\n" if t and not t.endswith("\n") else t for t in texts]


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return []


def _lift_comments(source: str, width: int) -> str:
    lines = source.splitlines(keepends=True)
    at = {t.start[0]: t.start[1] for t in _tokens(source) if t.type == tokenize.COMMENT
          and len(lines[t.start[0] - 1].rstrip("\n")) > width
          and lines[t.start[0] - 1][:t.start[1]].strip()}

    def continues(line: str, col: int) -> bool:  # a comment line whose text is under the comment's
        m = re.match(r"(\s*)#(\s*)(\S.*)?$", line.rstrip("\n"))
        return bool(m and m.group(3)) and "NBVAL" not in line and \
            len(m.group(1)) + 1 + len(m.group(2)) >= col

    for row in sorted(at, reverse=True):
        line, col = lines[row - 1], at[row]
        texts, end = [line[col:].strip()[1:].strip()], row
        while end < len(lines) and continues(lines[end], col):
            texts.append(lines[end].strip()[1:].strip())
            end += 1
        indent, code = re.match(r"\s*", line).group(0), line[:col].rstrip() + "\n"
        if code.rstrip().endswith(":"):  # a block's header (else:, for ...:): the comment opens the block
            lines[row - 1:end] = [code, f"{indent}    #{_LIFTED} {' '.join(texts)}\n"]
        else:
            lines[row - 1:end] = [f"{indent}#{_LIFTED} {' '.join(texts)}\n", code]
    return "".join(lines)


def _split_at(body: str, formatted: bool, limit: int) -> int | None:
    """Just after the last space of ``body`` before ``limit``, outside an f-string's braces."""
    depth, best, i = 0, None, 0
    while i < min(len(body), limit):
        if formatted and depth == 0 and body[i:i + 2] in ("{{", "}}"):
            i += 2
            continue
        ch = body[i]
        if formatted and ch == "{":
            depth += 1
        elif formatted and ch == "}":
            depth -= 1
        elif ch == " " and depth == 0 and 0 < i < len(body) - 1:
            best = i + 1
        i += 1
    return best


def _split_strings(source: str, width: int) -> str:
    for _ in range(500):
        lines, depth = source.splitlines(keepends=True), 0
        for t in _tokens(source):
            if t.type == tokenize.OP and t.string in "([{":
                depth += 1
            elif t.type == tokenize.OP and t.string in ")]}":
                depth -= 1
            row, col = t.start
            if t.type != tokenize.STRING or row != t.end[0] or len(lines[row - 1].rstrip("\n")) <= width:
                continue
            prefix, quote = re.match(r"([a-zA-Z]*)('|\")", t.string).groups()
            if t.string.startswith(prefix + quote * 3) or "b" in prefix.lower():
                continue
            body = t.string[len(prefix) + 1:-1]
            cut = _split_at(body, "f" in prefix.lower(), max(width - col - len(prefix) - 3, 20))
            if cut is None:
                continue
            a, b = f"{prefix}{quote}{body[:cut]}{quote}", f"{prefix}{quote}{body[cut:]}{quote}"
            # inside brackets a line break is free; outside, the pieces go in parentheses
            new = f"{a}\n{' ' * col}{b}" if depth > 0 else f"({a}\n{' ' * (col + 1)}{b})"
            line = lines[row - 1]
            lines[row - 1] = line[:col] + new + line[t.end[1]:]
            source = "".join(lines)
            break
        else:
            return source
    return source


_PIECE = re.compile(r"([fF]?)('|\")(.*)\2", re.S)


def _string_runs(source: str) -> list[list[tokenize.TokenInfo]]:
    """Runs of two or more string literals that are one implicit concatenation laid out one
    piece per line: one-line literals on consecutive lines with nothing but line breaks between
    them, each but the first starting its line, all of those at one column (the first may follow
    code on its line, as in ``status=f"..."``)."""
    lines = source.splitlines(keepends=True)
    runs: list[list[tokenize.TokenInfo]] = []
    run: list[tokenize.TokenInfo] = []
    for t in _tokens(source):
        if t.type == tokenize.NL:
            continue
        one_line = t.type == tokenize.STRING and t.start[0] == t.end[0]
        alone = one_line and not lines[t.start[0] - 1][:t.start[1]].strip()
        if alone and run and t.start[0] == run[-1].start[0] + 1 \
                and (len(run) == 1 or t.start[1] == run[1].start[1]):
            run.append(t)
            continue
        if len(run) > 1:
            runs.append(run)
        run = [t] if one_line else []
    return runs


def _fill(body: str, formatted: bool, first: int, rest: int, tail: int = 0) -> list[str] | None:
    """``body`` cut at spaces (outside f-string braces) into lines of at most ``first`` and
    then ``rest`` characters, each as full as it can be, the last leaving room for ``tail``
    characters after it (``",``" or ``)``); None where a word does not fit."""
    out: list[str] = []
    while len(body) + tail > (first if not out else rest):
        cut = _split_at(body, formatted, first if not out else rest)
        if cut is None:
            return None
        out.append(body[:cut])
        body = body[cut:]
    return out + [body]


def _balanced(body: str, formatted: bool, first: int, rest: int, tail: int = 0) -> list[str] | None:
    """:func:`_fill` with the fewest lines, made as even as that number allows (the lines are
    narrowed together until one more would be needed), so that no fragment is left alone."""
    best = _fill(body, formatted, first, rest, tail)
    if best is None or len(best) == 1:
        return best
    for shrink in range(1, rest):
        trial = _fill(body, formatted, first - shrink, rest - shrink, tail)
        if trial is None or len(trial) > len(best):
            break
        best = trial
    return best


_FRAGMENT = 12  # a string piece shorter than this (a word or two) on a line of its own is a fragment


def _fill_strings(source: str, width: int) -> str:
    """Re-fill the pieces of each string run (:func:`_string_runs`): ruff keeps the pieces an
    earlier split or a hand edit made, and leaves fragments such as ``f"no "`` or ``"only."``
    on lines of their own. A group of pieces is rewritten with each line as full as ``width``
    allows where that saves a line; where it does not and a piece is a fragment, the same
    number of lines is filled evenly instead. A piece that ends in ``\\n`` ends a group (a
    line of the text stays a line of the code). The pieces stay one value to Python."""
    lines = source.splitlines(keepends=True)
    for run in reversed(_string_runs(source)):
        pieces = [_PIECE.fullmatch(t.string) for t in run]
        if not all(pieces) or len({m.group(2) for m in pieces}) > 1:
            continue
        quote = pieces[0].group(2)
        col_first, col = run[0].start[1], run[1].start[1]
        groups: list[list[re.Match[str]]] = [[]]
        for m in pieces:
            groups[-1].append(m)
            if m.group(3).endswith("\\n"):
                groups.append([])
        first_row, last_row = run[0].start[0], run[-1].start[0]
        head = lines[first_row - 1][:col_first]
        tail = lines[last_row - 1][run[-1].end[1]:]
        groups = [g for g in groups if g]
        out: list[str] = []
        for number, group in enumerate(groups):
            after = len(tail.rstrip("\n")) if number == len(groups) - 1 else 0
            formatted = any(m.group(1) for m in group)
            body = "".join(m.group(3) if m.group(1) or not formatted
                           else m.group(3).replace("{", "{{").replace("}", "}}") for m in group)
            room = width - col - 2 - int(formatted)
            first = width - (col_first if not out else col) - 2 - int(formatted)
            filled = _fill(body, formatted, first, room, after)
            if filled is not None and len(filled) == len(group):
                had_fragment = min(len(m.group(3)) for m in group) < _FRAGMENT
                filled = _balanced(body, formatted, first, room, after) if had_fragment else None
                if filled is not None and min(map(len, filled)) < _FRAGMENT:
                    filled = None
            if filled is None or len(filled) > len(group):
                out += [m.group(0) for m in group]
                continue
            marks = ["f" if formatted and ("{" in f or "}" in f) else "" for f in filled]
            if formatted and "f" not in marks:
                marks[0] = "f"
            out += [f"{mark}{quote}{f}{quote}" for mark, f in zip(marks, filled, strict=True)]
        new = [head + out[0]] + [" " * col + piece for piece in out[1:]]
        lines[first_row - 1:last_row] = [n + "\n" for n in new[:-1]] + [new[-1] + tail]
    return "".join(lines)


def _reflow_comments(source: str, width: int) -> str:
    lines, out, i = source.splitlines(keepends=True), [], 0
    while i < len(lines):
        m = _COMMENT.match(lines[i])
        if not m or m.group(2).startswith(("NBVAL", "!")):
            out.append(lines[i])
            i += 1
            continue
        j = i + 1  # a block: comment lines of one indentation, up to a lifted comment
        while j < len(lines) and _LIFTED not in lines[j]:
            mj = _COMMENT.match(lines[j])
            if not mj or mj.group(1) != m.group(1) or not mj.group(2).strip() \
                    or mj.group(2).startswith(("NBVAL", "!")):
                break
            j += 1
        block = lines[i:j]
        if any(len(b.rstrip("\n")) > width for b in block):
            text = " ".join(_COMMENT.match(b).group(2).replace(_LIFTED, "").strip() for b in block)
            out += [f"{m.group(1)}# {w}\n" for w in textwrap.wrap(
                text, width - len(m.group(1)) - 2, break_long_words=False, break_on_hyphens=False)]
        else:
            out += block
        i = j
    return re.sub(rf"#\s*{_LIFTED}\s*", "# ", "".join(out))


def _reflow_docstrings(source: str, width: int) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.splitlines(keepends=True)
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body:
            doc = node.body[0]
            rows = range(doc.lineno - 1, doc.end_lineno)
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) \
                    and isinstance(doc.value.value, str) \
                    and any(len(lines[k].rstrip("\n")) > width for k in rows):
                spans.append((doc.lineno, doc.end_lineno, doc.col_offset))
    for first, last, col in sorted(spans, reverse=True):
        m = re.match(r'\s*("""|\'\'\')(.*)\1\s*$', "".join(lines[first - 1:last]), re.S)
        if not m:
            continue
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", m.group(2).strip())]
        wrapped: list[str] = []
        for p in paragraphs:
            wrapped += ([""] if wrapped else []) + textwrap.wrap(
                p, width - col - 6, break_long_words=False, break_on_hyphens=False)
        indent = " " * col
        new = [indent + m.group(1) + wrapped[0]] + [indent + w if w else "" for w in wrapped[1:]]
        new[-1] += m.group(1)
        lines[first - 1:last] = [n + "\n" for n in new]
    return "".join(lines)


def wrap_cells(cells: list[str], width: int = CODE_WIDTH) -> list[str]:
    """The cells (their code, options first) re-wrapped to ``width``; each runs the same code."""
    parts = []
    for cell in cells:
        options = _OPTIONS.match(cell)
        head = options.group(0) if options else ""
        rest = cell[len(head):]
        blank = re.match(r"\n*", rest).group(0)
        parts.append((head + blank, rest[len(blank):]))
    sources = _format([_lift_comments(s, width) for _, s in parts], width)
    sources = [_reflow_docstrings(_reflow_comments(_split_strings(_fill_strings(s, width), width),
                                                   width), width)
               for s in sources]
    new = [head + s for (head, _), s in zip(parts, _format(sources, width), strict=True)]
    for old, cell in zip(cells, new, strict=True):
        if code_as_run(old) != code_as_run(cell):
            raise ValueError(f"re-wrapping would change what this cell runs:\n{old}")
    return new


def long_lines(text: str, width: int = CODE_WIDTH) -> list[tuple[int, str]]:
    """(line number, line) of each code-cell line of a MyST file longer than ``width``."""
    found = []
    for m in _CELL.finditer(text):
        first = text.count("\n", 0, m.start(2)) + 1
        found += [(first + i, line) for i, line in enumerate(m.group(2).splitlines()) if len(line) > width]
    return found


def wrap_file(path: Path, width: int = CODE_WIDTH) -> bool:
    """Re-wrap the code cells of ``path`` in place; whether the file changed."""
    text = path.read_text()
    cells = [m.group(2) for m in _CELL.finditer(text)]
    if not cells:
        return False
    new = iter(wrap_cells(cells, width))
    wrapped = _CELL.sub(lambda m: m.group(1) + next(new) + m.group(3), text)
    if wrapped != text:
        path.write_text(wrapped)
    return wrapped != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="MyST Markdown files (.md)")
    parser.add_argument("--check", action="store_true", help="only list the lines that are too long")
    parser.add_argument("--width", type=int, default=CODE_WIDTH, help=f"default {CODE_WIDTH}")
    args = parser.parse_args(argv)
    too_long = 0
    for path in args.files:
        if not args.check:
            try:
                print(f"{path}: {'re-wrapped' if wrap_file(path, args.width) else 'unchanged'}")
            except ValueError as err:
                print(f"{path}: left as it was: {err}", file=sys.stderr)
                too_long += 1
        for number, line in long_lines(path.read_text(), args.width):
            print(f"  {path}:{number}: {len(line)} characters: {line.strip()[:60]}")
            too_long += 1
    return 1 if too_long else 0


if __name__ == "__main__":
    raise SystemExit(main())
