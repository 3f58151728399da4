"""The import graph of reporter/, read from the source with `ast` (every import statement, those
inside functions included): no cycles, the contracts import no stage, and the code that turns a
study into a report never imports training, evaluation, the phantom engine or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reporter"

# What a user runs to get a report (docs/architecture.md): none of it may import what makes
# weights, what measures them, or the command line.
RUNTIME = (
    "reporter.contracts",
    "reporter.ingest",
    "reporter.anatomy",
    "reporter.vlm",
    "reporter.grounding",
    "reporter.render",
    "reporter.pipeline",
    "reporter.worklist",
    "reporter.worklist_ray",
    "reporter.dicomweb",
    "reporter.watch",
)
NOT_FROM_RUNTIME = (
    "reporter.training",
    "reporter.evaluation",
    "reporter.cli",
    "reporter.synth",
    "reporter.datasets",
)
# What the contracts may import besides each other: leaf modules that import nothing of ours.
CONTRACT_DEPENDENCIES = ("reporter.errors", "reporter.version")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import sub` imports the submodule when one exists, else a name of pkg
            # (as import-linter reads it: a parent package's __init__ is not an edge).
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for target in targets:
            if target.startswith("reporter"):
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    found.add(resolved)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_no_import_cycles_between_packages() -> None:
    def package(m: str) -> str:
        return ".".join(m.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for m, targets in _graph().items():
        if m == "reporter":  # the root's lazy re-exports are the public API, above everything
            continue
        packages.setdefault(package(m), set()).update(
            package(t) for t in targets if package(t) != package(m) and t != "reporter"
        )
    assert _cycles(packages) == []


def test_contracts_import_no_stage() -> None:
    for m, targets in _graph().items():
        if _in(m, ("reporter.contracts",)):
            bad = [t for t in targets if not _in(t, ("reporter.contracts", *CONTRACT_DEPENDENCIES))]
            assert bad == [], f"{m} imports {bad}"


def test_runtime_never_imports_training_evaluation_phantoms_or_cli() -> None:
    for m, targets in _graph().items():
        if _in(m, RUNTIME):
            bad = sorted(t for t in targets if _in(t, NOT_FROM_RUNTIME))
            assert bad == [], f"{m} imports {bad}"


def test_report_path_looks_nothing_up_by_name() -> None:
    for m in ("reporter.pipeline", "reporter.worklist"):
        source = _modules()[m].read_text(encoding="utf-8")
        assert "importlib" not in source and "__import__" not in source, m
