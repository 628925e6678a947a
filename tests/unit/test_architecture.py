"""The import graph, read from the source with ast: no cycles, and every package imports only what its layer may.

Layers, inside out (docs/architecture.md): ``provider`` and ``sandbox`` import nothing of otpflow; ``lifecycle``
(the domain) imports only ``provider``; ``config`` builds the domain's small configs; ``telemetry`` and ``flows``
sit on the domain; ``tasks``, ``worker``, ``webhook`` and ``otpflow`` are the outer shell. Imports inside
functions count too: a lazy import still ties two modules together.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("provider", "sandbox", "lifecycle", "config", "telemetry", "flows", "tasks", "worker", "webhook",
            "otpflow")

#: what each package may import of ours (itself always)
ALLOWED: dict[str, set[str]] = {
    "provider": set(),
    "sandbox": set(),
    "lifecycle": {"provider"},
    "config": {"lifecycle", "provider"},
    "telemetry": {"lifecycle"},
    "flows": {"lifecycle", "provider", "config", "telemetry"},
    "tasks": {"flows", "lifecycle", "provider", "config", "telemetry"},
    "worker": {"tasks", "flows", "lifecycle", "provider", "config", "telemetry"},
    "webhook": {"lifecycle", "provider", "config", "flows", "telemetry", "worker"},
    "otpflow": {p for p in PACKAGES if p != "otpflow"},
}
#: third-party frameworks a package must not import (sandbox is itself a small Flask app, by design)
FORBIDDEN: dict[str, set[str]] = {
    "provider": {"flask", "celery", "kombu", "gunicorn", "werkzeug", "redis"},
    "sandbox": {"celery", "kombu"},
    "lifecycle": {"flask", "celery", "kombu", "gunicorn", "werkzeug"},
    "telemetry": {"flask", "celery", "kombu"},
    "flows": {"flask", "celery", "kombu", "gunicorn", "werkzeug"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            out[module_name(path)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours (and the top-level name of every other) that ``name`` imports anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(submodules)  # "from pkg import module" names the module
            # the package itself, unless only its submodules were named or it is one of ours that encloses us
            # (Python imports every enclosing package first anyway: that is no edge of its own)
            encloses = name == target or name.startswith(target + ".")
            if not encloses and len(submodules) < len(node.names):
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = sources()
    known = set(mods)
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for target in imports_of(name, path, known):
            # resolve to the longest known module prefix ("lifecycle.activation.Order" -> the module)
            parts = target.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts:
                deps.add(".".join(parts))
            else:
                deps.add(target.split(".")[0])  # third party
        deps.discard(name)
        out[name] = deps
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_sources_are_found() -> None:
    g = graph()
    assert {"lifecycle.cas", "flows.activation", "tasks.base", "provider.errors"} <= set(g)


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_inward(package: str) -> None:
    g = graph()
    ours = set(PACKAGES)
    wrong = []
    for module, deps in sorted(g.items()):
        if module.split(".")[0] != package:
            continue
        for dep in sorted(deps):
            top = dep.split(".")[0]
            if top in ours and top != package and top not in ALLOWED[package]:
                wrong.append(f"{module} imports {dep}")
            if top in FORBIDDEN.get(package, set()):
                wrong.append(f"{module} imports {top}")
    assert wrong == []
