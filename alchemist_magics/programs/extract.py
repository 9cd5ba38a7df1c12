"""Pull programs out of a free-form LLM reply.

Code is taken from fenced blocks (```` ```python ````, bare ```` ``` ````, ``~~~``), or, when the reply
has no fences, from the runs of lines that look like code. Each top-level function that no other
function refers to becomes its own program, together with the helpers it calls and the imports and
constants it uses; example usage (prints, ``if __name__ == ...`` blocks) is dropped. Fragments that
do not parse are skipped and reported in ``Extraction.skipped``.
"""
from __future__ import annotations

import ast
import re
import textwrap

from .check import entry_candidates
from .program import Program

_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "ipython", "pycon"}
_CODE_START = re.compile(r"^(def |async def |import |from \S+ import |@|[A-Za-z_][\w, ]*\s*=[^=])")
_SHARED = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.ClassDef)


class Extraction(list):
    """A ``list[Program]`` that also carries ``skipped``: ``(fragment, reason)`` pairs."""

    def __init__(self, programs=(), skipped=()):
        super().__init__(programs)
        self.skipped: list[tuple[str, str]] = list(skipped)


def extract_programs(reply: str, provenance: dict | None = None) -> Extraction:
    """The programs in ``reply``, in order of appearance, duplicates removed.

    ``provenance`` is copied into every program (with ``"block"``: the index of the code fragment it
    came from). Returns an :class:`Extraction` (a list of :class:`Program`) whose ``skipped`` says
    which fragments were left out and why.
    """
    result = Extraction()
    seen = set()
    for index, chunk in enumerate(_code_chunks(reply, result.skipped)):
        for source in _split_chunk(chunk, result.skipped):
            if source not in seen:
                seen.add(source)
                result.append(Program(source, provenance={**(provenance or {}), "block": index}))
    return result


def _code_chunks(reply: str, skipped: list) -> list[str]:
    fenced = list(_FENCE.finditer(reply))
    if not fenced:
        return _unfenced_chunks(reply)
    chunks = []
    for match in fenced:
        tag, body = match.group(2).lower(), textwrap.dedent(match.group(3))
        if tag in _PYTHON_TAGS:
            chunks.append(body)
        else:
            skipped.append((body, f"code block tagged {tag!r}, not Python"))
    return chunks


def _unfenced_chunks(reply: str) -> list[str]:
    """Runs of lines that start like code, plus their indented/blank continuation lines."""
    chunks, current = [], []
    for line in reply.splitlines():
        if _CODE_START.match(line) or (current and (not line.strip() or line[:1] in " \t" or line.startswith(("#", ")", "]", "}")))):
            current.append(line)
        elif current:
            chunks.append("\n".join(current))
            current = []
    if current:
        chunks.append("\n".join(current))
    return chunks


def _parse(chunk: str, skipped: list) -> ast.Module | None:
    """Parse a chunk; a tail of prose after the code is cut off line by line before giving up."""
    lines = chunk.rstrip().splitlines()
    error = None
    for end in range(len(lines), 0, -1):
        try:
            return ast.parse("\n".join(lines[:end]))
        except SyntaxError as exc:
            error = error or exc
            if len(lines) - end >= 20:
                break
    skipped.append((chunk, f"does not parse: line {error.lineno}: {error.msg}" if error else "empty"))
    return None


def _split_chunk(chunk: str, skipped: list) -> list[str]:
    tree = _parse(chunk, skipped)
    if tree is None:
        return []
    lines = chunk.splitlines()
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if not functions:
        skipped.append((chunk, "no function definition in this fragment"))
        return []
    for node in tree.body:
        if not isinstance(node, _SHARED + (ast.FunctionDef,)) and not _is_docstring(node):
            skipped.append((_segment(lines, node), "top-level statement dropped (example usage, not part of a program)"))
    sources = []
    for entry in entry_candidates(tree):
        keep = _closure(entry, functions)
        used = set().union(*(_names(functions[f]) for f in keep))
        shared = _needed_shared(tree, used)
        body = [node for node in tree.body if node in shared or (isinstance(node, ast.FunctionDef) and node.name in keep)]
        sources.append("\n\n".join(_segment(lines, node) for node in body) + "\n")
    return sources


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _segment(lines: list[str], node: ast.stmt) -> str:
    """Original text of a statement, decorators and inner comments included."""
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[start - 1:node.end_lineno])


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _closure(entry: str, functions: dict[str, ast.FunctionDef]) -> set[str]:
    keep, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(_names(functions[name]) & functions.keys())
    return keep


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.ClassDef):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return set().union(*(_names(t) for t in targets))


def _needed_shared(tree: ast.Module, used: set[str]) -> set[ast.stmt]:
    """Imports/constants/classes whose names the functions use, following constants that use others."""
    shared = [n for n in tree.body if isinstance(n, _SHARED)]
    needed, used = set(), set(used)
    changed = True
    while changed:
        changed = False
        for node in shared:
            if node not in needed and _bound(node) & used:
                needed.add(node)
                used |= _names(node)
                changed = True
    return needed
