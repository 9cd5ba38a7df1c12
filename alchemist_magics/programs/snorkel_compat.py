"""Programs as snorkel ``LabelingFunction``s, normalised exactly like the sandbox normalises them.

These run *in-process, without the sandbox*: only for programs that passed :func:`check_program`
(which this enforces) and whose authors you trust, e.g. to compare against snorkel's appliers.
"""
from __future__ import annotations

from typing import Sequence

from .check import check_program
from .labels import ABSTAIN, LabelSpace
from .program import Program


def to_snorkel_lfs(programs: Sequence[Program | str], label_space: LabelSpace, field: str | None = "text") -> list:
    """One snorkel ``LabelingFunction`` per program.

    ``field``: the column passed to the program (a single-input dataset); ``None`` passes the whole
    snorkel row (a pandas Series, which also allows ``x.col`` and ``x["col"]``). A raising row or an
    invalid output abstains, as in the sandbox's label matrix. Raises ``ValueError`` for a program
    that fails the static check.
    """
    from snorkel.labeling import LabelingFunction

    lfs = []
    for program in programs:
        program = program if isinstance(program, Program) else Program(program)
        result = check_program(program.source)
        if not result.ok:
            raise ValueError(f"program {program.name} fails the check: {'; '.join(result.reasons)}")
        namespace = {"__name__": f"program_{program.id}"}
        exec(compile(program.source, f"<program {program.name}>", "exec"), namespace)
        lfs.append(LabelingFunction(program.name, _wrap(namespace[result.entry], label_space, field)))
    return lfs


def _wrap(fn, label_space: LabelSpace, field: str | None):
    k, normalize = label_space.k, label_space.normalize

    def lf(x):
        try:
            v = fn(x if field is None else x[field])
        except Exception:
            return ABSTAIN
        if type(v) is int and -1 <= v < k:
            return v
        code = normalize(v)
        return code if code >= 0 else ABSTAIN

    return lf


# -- snorkel LabelingFunctions in ----------------------------------------------------------------

def is_labeling_function(obj) -> bool:
    """True for a snorkel ``LabelingFunction`` (checked by class, without importing snorkel)."""
    return any(c.__name__ == "LabelingFunction" and c.__module__.startswith("snorkel")
               for c in type(obj).__mro__)


def _literal(value) -> str | None:
    """``repr(value)`` when it reads back as the same plain literal, else None."""
    import ast

    if isinstance(value, (bool, int, float, str, bytes, type(None), tuple, list, dict, set, frozenset)):
        text = repr(value)
        try:
            if ast.literal_eval(text) == value:
                return text
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return None


def _function_source(fn, new_name: str) -> str:
    """The source of ``fn`` without decorators, dedented, its def renamed to ``new_name``."""
    import ast
    import inspect
    import textwrap

    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as e:
        raise ValueError(f"the source of {getattr(fn, '__name__', fn)!r} is not available ({e}); "
                         "define the function in a file or a notebook cell") from None
    tree = ast.parse(text)
    node = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if node is None or isinstance(node, ast.AsyncFunctionDef):
        raise ValueError(f"{fn.__name__!r} is not a plain function defined with def (a lambda cannot be carried)")
    lines = text.splitlines()[node.lineno - 1: node.end_lineno]
    lines[0] = lines[0].replace(f"def {node.name}", f"def {new_name}", 1)
    return "\n".join(lines) + "\n"


def _global_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _global_names(const)
    return names


def from_snorkel(lfs, field: str = "text") -> list[Program]:
    """Programs from snorkel ``LabelingFunction``s (``@labeling_function()`` or ``LabelingFunction(name, f)``).

    Each program carries the function's source (decorators dropped), the plain constants and the
    modules it uses from its globals, and its ``resources`` as keyword arguments, so it runs in the
    sandbox like any program. For a dataset with one input column, the row arrives as its text and
    is wrapped so that ``x.<field>`` works as in snorkel. Raises ``ValueError`` for what cannot be
    carried into a program: preprocessors, lambdas, functions without source, other global objects.
    """
    import types

    programs = []
    for lf in lfs:
        if not is_labeling_function(lf):
            raise TypeError(f"not a snorkel LabelingFunction: {type(lf).__name__}")
        name, fn = lf.name, lf._f
        if getattr(lf, "_pre", None):
            raise ValueError(f"{name}: snorkel preprocessors cannot be carried into a program; "
                             "compute their result in the function, or add a column to the data")
        if not name.isidentifier():
            raise ValueError(f"{name!r}: a program name must be a Python identifier")
        inner = f"_{name}_snorkel"
        header, constants = [f"# Imported from the snorkel LabelingFunction {name!r}.", "import collections"], []
        scope = dict(fn.__globals__)
        scope.update({var: cell.cell_contents for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ())})
        for ref in sorted(_global_names(fn.__code__) | set(fn.__code__.co_freevars)):
            if ref not in scope:
                continue  # a builtin, or an attribute name
            value = scope[ref]
            if isinstance(value, types.ModuleType):
                module = value.__name__
                header.append(f"import {module}" if module == ref else f"import {module} as {ref}")
            elif (text := _literal(value)) is not None:
                constants.append(f"{ref} = {text}")
            else:
                raise ValueError(f"{name}: uses {ref!r} ({type(value).__name__}) from outside the function, which cannot be "
                                 "carried into a program; make it a constant or pass it as resources=")
        kwargs = []
        for key, value in (getattr(lf, "_resources", None) or {}).items():
            if (text := _literal(value)) is None:
                raise ValueError(f"{name}: resource {key!r} ({type(value).__name__}) is not a plain constant")
            constants.append(f"_RESOURCE_{key} = {text}")
            kwargs.append(f", {key}=_RESOURCE_{key}")
        source = "\n".join([
            *header, "", *constants,
            f"_Row = collections.namedtuple('_Row', [{field!r}])", "", "",
            _function_source(fn, inner), "",
            f"def {name}(x):",
            "    if isinstance(x, str):",
            "        x = _Row(x)",
            f"    return {inner}(x{''.join(kwargs)})", ""])
        programs.append(Program(source, name=name, provenance={"source": "snorkel", "function": fn.__qualname__}))
    return programs
