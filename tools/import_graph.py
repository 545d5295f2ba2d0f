"""Print the import graph of the ``fastbert`` package (every import, top-level or inside a function) and
fail when it has a circle.

    python tools/import_graph.py [package_dir]
"""

from __future__ import annotations

import ast
import pathlib
import sys


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: pathlib.Path, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (relative imports resolved)."""
    out: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:  # the nearest enclosing module we know
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph(root: pathlib.Path) -> dict[str, list[str]]:
    """module -> the package's modules it imports (a package's import of its own parent left out)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    return {
        n: sorted(imports_of(p, n, p.name == "__init__.py", known) - {n.rpartition(".")[0]})
        for n, p in files.items()
    }


def circles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every back edge of a depth-first search, as the circle it closes (a package importing its own
    submodule, a re-export, is not one)."""
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in graph.get(n, []):
            if m.startswith(n + "."):
                continue  # a package importing its own submodule
            if state.get(m) == 1:
                found.append(stack[stack.index(m) :] + [m])
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    return found


def main(argv: list[str]) -> int:
    root = pathlib.Path(argv[1] if len(argv) > 1 else "fastbert").resolve()
    graph = import_graph(root)
    for n in sorted(graph):
        print(f"{n} -> {', '.join(graph[n]) or '(nothing)'}")
    found = circles(graph)
    if found:
        for c in found:
            print("CIRCLE: " + " -> ".join(c))
        return 1
    print("no import circle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
