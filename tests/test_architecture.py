"""The package's shape: no import cycles between its modules, no module importing another's private
names, the layers as folders, and the README's layout naming every folder of the package."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "alchemist_magics"
LAYERS = {"data", "programs", "synth", "llm", "aggregate", "distill", "images", "scale", "notebook", "examples"}
TOP_FILES = {"__init__.py", "__main__.py", "workbench.py", "evaluate.py", "cli.py", "task.py"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, list[str]]]:
    """Every import in the file (module level or inside functions), as (module, imported names)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "alchemist_magics"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "alchemist_magics":
                continue
            names = [a.name for a in node.names]
            # `from . import sub` imports the submodule sub
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            found += [(s, []) for s in subs] or [(target, names)]
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for target, _ in imports(name, path, set(mods)):
            # importing a.b.c also runs a.b's __init__, unless the importer lives inside a.b
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                dep = ".".join(parts[:i])
                inside = name == dep or name.startswith(dep + ".")
                if dep in mods and dep != name and (i == len(parts) or not inside):
                    edges[name].add(dep)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_read_correctly():
    edges = graph()
    assert "alchemist_magics.programs.apply" in edges["alchemist_magics.programs"]
    assert "alchemist_magics.workbench" in edges["alchemist_magics.notebook.magics"]
    # a planted cycle is found (so the check below can fail)
    planted = {**edges, "alchemist_magics.task": edges["alchemist_magics.task"] | {"alchemist_magics.workbench"}}
    assert any("alchemist_magics.task" in c for c in cycles(planted))


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_module_imports_private_names_of_another():
    mods = modules()
    offenders = []
    for name, path in mods.items():
        for target, names in imports(name, path, set(mods)):
            offenders += [f"{name} imports {target}.{n}" for n in names
                          if n.startswith("_") and not n.startswith("__") and target != name]
    assert offenders == []


def test_the_folders_are_the_layers():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == LAYERS
    loose = {p.name for p in PACKAGE.glob("*.py")}
    assert loose == TOP_FILES


@pytest.mark.parametrize("doc", ["README.md", "docs/architecture.md"])
def test_docs_name_every_layer(doc):
    text = (PACKAGE.parent / doc).read_text()
    missing = [f"{layer}/" for layer in sorted(LAYERS) if f"{layer}/" not in text]
    missing += [f for f in sorted(TOP_FILES - {"__init__.py", "__main__.py"}) if f not in text]
    assert missing == []
