"""Pull programs out of a free-form LLM reply.

Code is taken from fenced blocks (```` ```python ````, bare ```` ``` ````, ``~~~``), or, when the reply
has no fences, from the runs of lines that look like code. Each top-level function that no other
function refers to becomes its own program, together with the helpers it calls and the imports and
constants it uses; example usage (prints, ``if __name__ == ...`` blocks) is dropped.

A fragment is read statement by statement (a top-level statement ends where the next line at
column 0 starts), so one broken statement costs only itself: every complete function around it is
kept. A reply cut at ``max_tokens`` (``truncated=True``) loses the statement it ended inside,
never more and never less: a function cut mid-body is not passed off as a shorter valid one.
A function that never returns a value is dropped (it would abstain on every row). Everything
left out is reported in ``Extraction.skipped`` with its reason (the SyntaxError, the cut...).
"""
from __future__ import annotations

import ast
import re
import textwrap

from .check import entry_candidates
from .program import Program

_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:(^[ \t]*\1[ \t]*$)|\Z)", re.M | re.S)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "ipython", "pycon"}
_CODE_START = re.compile(r"^(def |async def |import |from \S+ import |@|[A-Za-z_][\w, ]*\s*=[^=])")
_SHARED = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.ClassDef)
_PARSE_FAILURES = (SyntaxError, ValueError, RecursionError, MemoryError, SystemError, OverflowError)
MAX_CHUNK_CHARS = 100_000  # a code fragment longer than this is not a labeling program
MAX_LOOKAHEAD = 40  # how many following top-level lines one statement may span when repairing a parse
CUT_REASON = "cut off: the reply ended inside it (finish_reason=length), so it may be incomplete"


class Extraction(list):
    """A ``list[Program]`` that also carries ``skipped``: ``(fragment, reason)`` pairs."""

    def __init__(self, programs=(), skipped=()):
        super().__init__(programs)
        self.skipped: list[tuple[str, str]] = list(skipped)

    @property
    def reasons(self) -> list[str]:
        """Why each left-out fragment was left out (in order, duplicates removed)."""
        return list(dict.fromkeys(reason for _, reason in self.skipped))


def extract_programs(reply: str, provenance: dict | None = None, *, truncated: bool = False) -> Extraction:
    """The programs in ``reply``, in order of appearance, duplicates removed.

    ``provenance`` is copied into every program (with ``"block"``: the index of the code fragment it
    came from). ``truncated``: the reply was cut at ``max_tokens``; the statement it ended inside is
    dropped. Returns an :class:`Extraction` (a list of :class:`Program`) whose ``skipped`` says
    which fragments were left out and why. Never raises on any string.
    """
    result = Extraction()
    seen = set()
    if not isinstance(reply, str):
        return result
    for index, (chunk, open_end) in enumerate(_code_chunks(reply, result.skipped)):
        try:
            sources = _split_chunk(chunk, result.skipped, cut_at_end=truncated and open_end)
        except _PARSE_FAILURES + (IndexError, AttributeError) as error:  # pathological input
            result.skipped.append((chunk[:2000], f"could not be read ({type(error).__name__})"))
            continue
        for source in sources:
            if source not in seen:
                seen.add(source)
                result.append(Program(source, provenance={**(provenance or {}), "block": index}))
    return result


def _code_chunks(reply: str, skipped: list) -> list[tuple[str, bool]]:
    """``(code, runs_to_the_end_of_the_reply)`` for each code fragment."""
    fenced = list(_FENCE.finditer(reply))
    if not fenced:
        return _unfenced_chunks(reply)
    chunks = []
    for match in fenced:
        tag, body = match.group(2).lower(), textwrap.dedent(match.group(3))
        open_end = match.group(4) is None  # no closing fence: the reply ended inside the block
        if tag in _PYTHON_TAGS:
            chunks.append((body, open_end))
        else:
            skipped.append((body, f"code block tagged {tag!r}, not Python"))
    return chunks


def _unfenced_chunks(reply: str) -> list[tuple[str, bool]]:
    """Runs of lines that start like code, plus their indented/blank continuation lines."""
    chunks, current = [], []
    for line in reply.splitlines():
        if _CODE_START.match(line) or (current and (not line.strip() or line[:1] in " \t" or line.startswith(("#", ")", "]", "}")))):
            current.append(line)
        elif current:
            chunks.append(("\n".join(current), False))
            current = []
    if current:
        chunks.append(("\n".join(current), True))
    return chunks


def _starts_statement(line: str) -> bool:
    return bool(line.strip()) and not line[0].isspace() and not line.startswith(("#", ")", "]", "}"))


def _parse_at(lines: list[str], start: int, end: int) -> ast.Module:
    """Parse ``lines[start:end]`` keeping the line numbers of the whole fragment."""
    return ast.parse("\n" * start + "\n".join(lines[start:end]))


def _statements(chunk: str, skipped: list) -> tuple[list[ast.stmt], bool]:
    """The top-level statements of ``chunk`` that parse, and whether the last one reaches the end
    of the fragment (nothing at column 0 follows it). Statements that do not parse are reported."""
    lines = chunk.rstrip().splitlines()
    try:
        return _parse_at(lines, 0, len(lines)).body, True
    except SyntaxError:
        pass
    except _PARSE_FAILURES as exc:  # nesting too deep for the parser: no program in there
        skipped.append((chunk[:2000], f"could not be read ({type(exc).__name__}: nested too deeply)"))
        return [], False
    starts = [i for i, line in enumerate(lines) if _starts_statement(line)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    nodes, reaches_end, i = [], False, 0
    while i < len(starts):
        begin, error = starts[i], None
        for j in range(i + 1, min(len(starts), i + MAX_LOOKAHEAD) + 1):
            end = starts[j] if j < len(starts) else len(lines)
            try:
                body = _parse_at(lines, begin, end).body
            except SyntaxError as exc:
                error = error or exc
                continue
            except _PARSE_FAILURES as exc:
                error = error or exc
                break
            nodes += body
            reaches_end = j == len(starts)
            i = j
            break
        else:
            end = starts[i + 1] if i + 1 < len(starts) else len(lines)
            text = "\n".join(lines[begin:end])
            if isinstance(error, SyntaxError):
                line = (error.lineno or begin + 1)
                skipped.append((text, f"does not parse: line {line}: {error.msg}"))
            elif error is not None:
                skipped.append((text, f"could not be read ({type(error).__name__})"))
            reaches_end = False
            i += 1
    return nodes, reaches_end and bool(nodes)


def _returns_value(functions: list[ast.FunctionDef]) -> bool:
    return any(isinstance(n, (ast.Return, ast.Yield)) and n.value is not None
               for f in functions for n in ast.walk(f))


def _split_chunk(chunk: str, skipped: list, cut_at_end: bool = False) -> list[str]:
    if len(chunk) > MAX_CHUNK_CHARS:
        skipped.append((chunk[:2000], f"fragment of {len(chunk)} characters is too long for a program"))
        return []
    nodes, last_reaches_end = _statements(chunk, skipped)
    lines = chunk.splitlines()
    if cut_at_end and last_reaches_end:
        skipped.append((_segment(lines, nodes[-1]), CUT_REASON))
        nodes = nodes[:-1]
    if not nodes:
        if not any(text == chunk or reason.startswith(("does not parse", "could not")) for text, reason in skipped[-3:]):
            skipped.append((chunk, "empty"))
        return []
    tree = ast.Module(body=nodes, type_ignores=[])
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
        if not _returns_value([functions[f] for f in keep]):
            skipped.append((_segment(lines, functions[entry]),
                            f"{entry}() never returns a value (it would abstain on every row; cut off?)"))
            continue
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
