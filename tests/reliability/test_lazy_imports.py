"""Every ``from fastbert... import name`` in the package resolves, the ones inside functions too.

A function-level import runs only when its path runs: ``model.cuda_graphs()`` imported
``fastbert.models.cuda_graphs`` (the module is ``fastbert.core.cuda_graphs``) and no CPU test went there, so the
first GPU run found it. This test reads every import statement of the package (not only the module-level ones),
resolves the relative ones against their file, and checks that each fastbert module exists and holds the
names imported from it. Modules of other distributions (optional extras: ray, fastapi, ...) are not judged.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fastbert"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, names) of every ``from ... import ...`` of fastbert in the file (``source``: its
    text, read from ``path`` when None)."""
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "fastbert" or module.startswith("fastbert."):
                found.append((node.lineno, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fastbert."):
                    found.append((node.lineno, alias.name, []))
    return found


def _problems() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, module, names in _imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if importlib.util.find_spec(module) is None:
                problems.append(f"{where}: no module {module}")
                continue
            try:
                mod = importlib.import_module(module)
            except ImportError as e:  # an optional extra of another distribution: not this test's business
                if (e.name or "").startswith("fastbert"):
                    problems.append(f"{where}: importing {module} fails: {e}")
                continue
            for name in names:
                if name == "*" or hasattr(mod, name):
                    continue
                if importlib.util.find_spec(f"{module}.{name}") is None:
                    problems.append(f"{where}: {module} has no {name}")
    return problems


def test_every_fastbert_import_resolves():
    assert _problems() == []


def test_the_check_catches_a_wrong_relative_import():
    """The engine's old line, read from the engine's place: fastbert.models has no cuda_graphs module."""
    source = "def cuda_graphs(self):\n    from .cuda_graphs import install\n"
    (line, module, names), *_ = _imports(PACKAGE / "models" / "engine.py", source)
    assert (module, names) == ("fastbert.models.cuda_graphs", ["install"])
    assert importlib.util.find_spec(module) is None


@pytest.mark.parametrize(
    "path", ["fastbert/models/engine.py", "fastbert/check.py", "fastbert/kernels/layernorm.py"]
)
def test_relative_imports_are_resolved_against_their_package(path):
    imports = _imports(PACKAGE.parent / path)
    assert imports and all(m.startswith("fastbert") for _, m, _ in imports)


def test_every_public_name_loads():
    """``fastbert.__all__`` names are loaded lazily (``fastbert.__getattr__`` over a table of modules): each one
    resolves, unless its module needs an optional extra that is not installed."""
    import fastbert

    missing = []
    for name in fastbert.__all__:
        try:
            getattr(fastbert, name)
        except ImportError as e:
            if (e.name or "").startswith("fastbert"):
                missing.append(f"{name}: {e}")
        except AttributeError as e:
            missing.append(f"{name}: {e}")
    assert missing == []
