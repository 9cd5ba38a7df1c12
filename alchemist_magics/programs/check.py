"""Static check of a program's source (AST): structure, imports, and names that reach outside.

This is the first line of defence and gives readable reasons; the sandbox (``sandbox.py``) is the
second and does not rely on it.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

DEFAULT_ALLOWED_IMPORTS = frozenset(
    {"re", "math", "string", "collections", "itertools", "functools", "statistics", "unicodedata", "datetime", "numpy"}
)

FORBIDDEN_CALLS = frozenset(
    {"exec", "eval", "compile", "open", "__import__", "globals", "locals", "vars", "getattr", "setattr",
     "delattr", "breakpoint", "input", "exit", "quit", "memoryview"}
)
# Modules that touch the process, files, network or the interpreter; also refused as attribute names
# so that e.g. ``np.os`` or ``some_module.sys`` cannot reach them.
FORBIDDEN_MODULES = frozenset(
    {"os", "sys", "subprocess", "socket", "ctypes", "importlib", "builtins", "pickle", "shutil", "pathlib",
     "marshal", "signal", "resource", "gc", "inspect", "threading", "multiprocessing", "io", "tempfile",
     "posix", "_thread", "code", "codeop", "pty", "mmap", "sqlite3", "urllib", "http", "asyncio"}
)
# numpy file I/O and native-code entry points, plus interpreter-internals attributes.
FORBIDDEN_ATTRIBUTES = frozenset(
    {"save", "savez", "savez_compressed", "savetxt", "load", "loadtxt", "genfromtxt", "fromfile", "tofile",
     "memmap", "open_memmap", "fromregex", "ctypeslib", "f2py", "npyio", "DataSource", "dump", "dumps",
     "Formatter", "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "tb_frame", "gi_frame",
     "cr_frame", "ag_frame", "gi_code", "co_code", "mro"}
) | FORBIDDEN_MODULES

_DUNDER = re.compile(r"__\w+__")
_TOP_LEVEL_OK = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign, ast.AnnAssign)


@dataclass
class CheckResult:
    """Outcome of :func:`check_program`: ``ok``, readable ``reasons`` when not, and the entry function."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    entry: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and len(name) > 4


def _function_refs(functions: dict[str, ast.FunctionDef]) -> dict[str, set[str]]:
    """For each top-level function, the other top-level functions it names (calls or passes)."""
    refs = {}
    for name, node in functions.items():
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        refs[name] = (used & functions.keys()) - {name}
    return refs


def entry_candidates(tree: ast.Module) -> list[str]:
    """Top-level functions that no other top-level function refers to (the rest are helpers)."""
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    refs = _function_refs(functions)
    helpers = set().union(*refs.values()) if refs else set()
    return [name for name in functions if name not in helpers]


MAX_SOURCE_CHARS = 100_000  # a labeling program is a page of code; anything far larger is refused unread


def _never_raises(reject):
    """The check never raises: deep nesting (RecursionError), huge or odd sources become a clear rejection.

    ``reject(reason)`` builds the function's "rejected" return value.
    """
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def guarded(source, *args, **kwargs):
            if not isinstance(source, str):
                return reject(f"a program's source must be a str, not {type(source).__name__}")
            if len(source) > MAX_SOURCE_CHARS:
                return reject(f"the source is {len(source)} characters; a program may have at most {MAX_SOURCE_CHARS}")
            try:
                return fn(source, *args, **kwargs)
            except (RecursionError, MemoryError):
                return reject("the source is nested too deeply to check (or to compile); flatten the expression")
            except Exception as exc:  # a source the check cannot handle is refused, never a crash of the batch
                return reject(f"the source cannot be checked ({type(exc).__name__}: {str(exc)[:200]})")
        return guarded
    return wrap


@_never_raises(lambda reason: (None, reason))
def find_entry(source: str) -> tuple[str | None, str]:
    """The entry function's name, or ``(None, reason)``; parses only, no security check."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return None, f"syntax error on line {exc.lineno}: {exc.msg}"
    entries = entry_candidates(tree)
    if len(entries) == 1:
        return entries[0], ""
    if not entries:
        return None, "no entry function: define one function that takes the row's input"
    return None, f"several entry functions ({', '.join(entries)}): a program defines exactly one; split them"


def _check_signature(node: ast.FunctionDef) -> str | None:
    args = node.args
    positional = args.posonlyargs + args.args
    required = len(positional) - len(args.defaults)
    required_kw = sum(d is None for d in args.kw_defaults)
    if required == 1 and not required_kw or (required == 0 and args.vararg):
        return None
    return f"entry function {node.name}() must take exactly one argument (the row's input)"


@_never_raises(lambda reason: CheckResult(False, [reason]))
def check_program(source: str, allowed_imports: frozenset[str] | set[str] | None = None) -> CheckResult:
    """Check that ``source`` is a program we are willing to run.

    Rules: it parses; top level holds only imports, constants and function definitions; exactly one
    entry function (taking one argument), other functions being helpers it calls; imports only from
    ``allowed_imports`` (default :data:`DEFAULT_ALLOWED_IMPORTS`); no dunder names or attributes, no
    ``exec``/``eval``/``open``/``getattr``-like builtins, no process/file/network modules, no numpy
    file I/O. Every violation is listed with its line.
    """
    allowed = DEFAULT_ALLOWED_IMPORTS if allowed_imports is None else frozenset(allowed_imports)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return CheckResult(False, [f"syntax error on line {exc.lineno}: {exc.msg}"])
    reasons = []
    for node in tree.body:
        if not isinstance(node, _TOP_LEVEL_OK) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        ):
            reasons.append(
                f"line {node.lineno}: top-level {type(node).__name__} not allowed; only imports, constants and functions"
            )
    modules = {
        (a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names
    }
    for node in ast.walk(tree):
        reason = _node_reason(node, allowed)
        if (isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load)
                and isinstance(node.value, ast.Name) and node.value.id in modules):
            reason = f"changing {node.value.id}.{node.attr} (monkeypatching an imported name) is not allowed"
        if reason:
            reasons.append(f"line {getattr(node, 'lineno', '?')}: {reason}")
    # Faults that would hit every row, found before any sandbox time (helpers at the end of this file).
    reasons += undefined_name_reasons(tree) + literal_regex_reasons(tree)
    entry, why = find_entry(source)
    if entry is None:
        reasons.append(why)
    else:
        bad_signature = _check_signature(next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry))
        if bad_signature:
            reasons.append(bad_signature)
    return CheckResult(not reasons, list(dict.fromkeys(reasons)), entry)


def _node_reason(node: ast.AST, allowed: frozenset[str]) -> str | None:
    """Why one AST node is refused, or None."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        if isinstance(node, ast.ImportFrom) and (node.level or not node.module):
            return "relative imports are not allowed"
        modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        for module in modules:
            if module.split(".")[0] not in allowed:
                return f"import of {module!r} is not allowed (allowed: {', '.join(sorted(allowed))})"
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return f"'from {node.module} import *' is not allowed; import the names you use"
                if alias.name in FORBIDDEN_ATTRIBUTES or _is_dunder(alias.name):
                    return f"importing {alias.name!r} from {node.module} is not allowed"
    elif isinstance(node, ast.Name):
        if _is_dunder(node.id):
            return f"dunder name {node.id!r} is not allowed"
        if node.id in FORBIDDEN_CALLS:
            return f"{node.id}() is not allowed in a program"
        if node.id in FORBIDDEN_MODULES:
            return f"name {node.id!r} refers to a forbidden module"
    elif isinstance(node, ast.Attribute):
        if _is_dunder(node.attr):
            return f"dunder attribute '.{node.attr}' is not allowed"
        if node.attr in FORBIDDEN_ATTRIBUTES:
            return f"attribute '.{node.attr}' is not allowed (file I/O, native code or interpreter internals)"
    elif isinstance(node, (ast.AsyncFunctionDef, ast.ClassDef)):
        return f"{type(node).__name__} is not allowed in a program"
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DUNDER.search(node.value):
        return "string constants may not mention dunder names (format strings can reach internals through them)"
    else:
        name = getattr(node, "arg", None) or getattr(node, "name", None)  # ast.arg, keyword, FunctionDef, alias
        if isinstance(name, str) and _is_dunder(name):
            return f"dunder name {name!r} is not allowed"
    return None


# -- names used but never defined; regular expressions that cannot compile ----------------------------
_BUILTIN_NAMES = frozenset(dir(__import__("builtins")))


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the program binds anywhere (assignments, parameters, imports, defs, except/with
    targets, comprehension and match captures). Scope-insensitive on purpose: it never flags a
    name that is defined somewhere, so it cannot refuse a working program."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return bound


def undefined_name_reasons(tree: ast.AST) -> list[str]:
    """``line N: name 'string' is not defined`` for each name read but bound nowhere and not a
    builtin (typically a module used without its import: it would fault on every row)."""
    bound = _bound_names(tree) | _BUILTIN_NAMES
    first: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            first[node.id] = min(first.get(node.id, node.lineno), node.lineno)
    return [f"line {line}: name {name!r} is not defined" + (f" (missing 'import {name}'?)" if name in DEFAULT_ALLOWED_IMPORTS else "")
            for name, line in sorted(first.items(), key=lambda item: item[1])]


_RE_FUNCTIONS = {"compile": 1, "search": 2, "match": 2, "fullmatch": 2, "findall": 2, "finditer": 2,
                 "split": 3, "sub": 4, "subn": 4}  # name -> position of ``flags``
_UNKNOWN = object()


def _module_constants(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level names assigned exactly once (``NAME = <expr>``), for following literal patterns."""
    counts: dict[str, int] = {}
    values: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            counts[node.id] = counts.get(node.id, 0) + 1
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = node.value
    return {k: v for k, v in values.items() if counts.get(k) == 1}


def _static_value(node: ast.AST, constants: dict[str, ast.AST], re_names: set[str], depth: int = 0):
    """The value of a pattern expression when it is built from literals only, else ``_UNKNOWN``."""
    if depth > 20:
        return _UNKNOWN
    again = lambda n: _static_value(n, constants, re_names, depth + 1)  # noqa: E731
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes, int)):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return again(constants[node.id])
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [again(e) for e in node.elts]
        return _UNKNOWN if any(i is _UNKNOWN for i in items) else items
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.BitOr)):
        left, right = again(node.left), again(node.right)
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN
        try:
            return left + right if isinstance(node.op, ast.Add) else left | right
        except TypeError:
            return _UNKNOWN
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in re_names:
        flag = getattr(re, node.attr, None)
        return int(flag) if isinstance(flag, re.RegexFlag) else _UNKNOWN
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and len(node.args) == 1 and not node.keywords:
        target = node.func.value
        if node.func.attr == "join":
            sep, items = again(target), again(node.args[0])
            if isinstance(sep, str) and isinstance(items, list) and all(isinstance(i, str) for i in items):
                return sep.join(items)
        if node.func.attr == "escape" and isinstance(target, ast.Name) and target.id in re_names:
            value = again(node.args[0])
            return re.escape(value) if isinstance(value, (str, bytes)) else _UNKNOWN
    return _UNKNOWN


def literal_regex_reasons(tree: ast.AST) -> list[str]:
    """``line N: regular expression ... does not compile: ...`` for each ``re`` call whose pattern
    is built from literals only (strings, constants, ``'|'.join([...])``, ``re.escape``) and
    cannot compile: it would fault on every row."""
    re_names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names if a.name == "re"}
    direct = {a.asname or a.name: a.name for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module == "re" for a in n.names if a.name in _RE_FUNCTIONS}
    if not re_names and not direct:
        return []
    constants = _module_constants(tree)
    reasons = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in re_names \
                and func.attr in _RE_FUNCTIONS:
            name = func.attr
        elif isinstance(func, ast.Name) and func.id in direct:
            name = direct[func.id]
        else:
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        pattern_node = node.args[0] if node.args else keywords.get("pattern")
        if pattern_node is None:
            continue
        pattern = _static_value(pattern_node, constants, re_names)
        if not isinstance(pattern, (str, bytes)):
            continue
        flags_pos = _RE_FUNCTIONS[name]
        flags_node = node.args[flags_pos] if len(node.args) > flags_pos else keywords.get("flags")
        flags = 0 if flags_node is None else _static_value(flags_node, constants, re_names)
        tries = [flags] if isinstance(flags, int) else [0, re.VERBOSE]
        errors = []
        for f in tries:
            try:
                re.compile(pattern, f)
                break
            except (re.error, ValueError, TypeError, OverflowError, RecursionError) as exc:
                errors.append(exc)
        else:
            shown = pattern if len(pattern) <= 60 else pattern[:57] + "..."
            reasons.append(f"line {node.lineno}: regular expression {shown!r} does not compile: {errors[0]}")
    return reasons

