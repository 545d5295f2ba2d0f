"""The package's import graph keeps the design's rules (the project's ARCHITECTURE.md, in its shared folder
beside this repository): no import circle, and arrows that go one way (apps -> models -> layers -> core ops
-> kernels; models -> loading -> hub).

The graph is ``tools/import_graph.py``'s: every import of the package, the ones inside functions and under
``TYPE_CHECKING`` too, since a circle that only a lazy import hides is still two modules that know each
other (``python3 tools/import_graph.py`` prints it).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)

GRAPH = import_graph.import_graph(ROOT / "fastbert")

#: the applications: nothing below them imports one
APPS = (
    "fastbert.accelerate",
    "fastbert.benchmark",
    "fastbert.check",
    "fastbert.cli",
    "fastbert.embed",
    "fastbert.pipelines",
    "fastbert.serve",
)
MODELS = ("fastbert.models", "fastbert.modeling")
#: the architecture-agnostic core under the models: the op tables, their torch references, padding
CORE = ("fastbert.core",)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _arrows(sources: tuple[str, ...], targets: tuple[str, ...]) -> list[str]:
    """The arrows of the graph from a module under ``sources`` to one under ``targets``."""
    return [
        f"{n} -> {m}"
        for n, deps in sorted(GRAPH.items())
        if _under(n, sources)
        for m in deps
        if _under(m, targets) and not _under(m, sources)
    ]


def test_the_graph_reads_the_whole_package():
    assert len(GRAPH) > 100
    assert "fastbert.core.attention_ref" in GRAPH["fastbert.core.ops"]
    # an import inside a function counts: the config checks hidden_act through the activation table
    assert "fastbert.core.layers_ref" in GRAPH["fastbert.config"]


def test_no_import_circle():
    assert import_graph.circles(GRAPH) == []


def test_the_circle_check_finds_a_circle():
    """A test that cannot fail is a defect: the check sees the circle the ops and attention_ref modules had
    (each imported the other), and not a package importing its own submodule."""
    planted = {k: list(v) for k, v in GRAPH.items()}
    planted["fastbert.core.attention_ref"].append("fastbert.core.ops")
    assert [sorted(set(c)) for c in import_graph.circles(planted)] == [
        ["fastbert.core.attention_ref", "fastbert.core.ops"]
    ]
    assert import_graph.circles({"p": ["p.child"], "p.child": ["p"]}) == []


@pytest.mark.parametrize(
    "sources, targets",
    [
        # kernels know no model and no op table: Triton only
        (("fastbert.kernels",), tuple(m for m in GRAPH if not m.startswith("fastbert.kernels"))),
        # only the op tables call the kernels
        (tuple(m for m in GRAPH if m != "fastbert.core.ops"), ("fastbert.kernels",)),
        # the core imports only itself and the kernels: no config, model, loading, tokenizer or app
        (CORE, tuple(m for m in GRAPH if m != "fastbert" and not _under(m, CORE + ("fastbert.kernels",)))),
        # the models know no pipeline, server or CLI
        (MODELS, APPS),
        # loading receives the class it builds: it imports no model and no app
        (("fastbert.loading", "fastbert.hub"), MODELS + APPS),
        # nor through the transforms it applies (quantization=): quant knows fastbert models by their API
        (("fastbert.quant",), MODELS + APPS + ("fastbert.loading",)),
        # the tokenizers know no model, op or kernel
        (("fastbert.tokenization",), MODELS + CORE + ("fastbert.kernels", "fastbert.loading") + APPS),
        # the registry names the families' classes as strings: it imports no model, op or app
        (("fastbert.registry",), MODELS + CORE + ("fastbert.kernels",) + APPS),
    ],
    ids=["kernels", "kernel-callers", "core", "models", "loading", "quant", "tokenization", "registry"],
)
def test_arrows_go_one_way(sources, targets):
    assert _arrows(sources, targets) == []


def test_no_branch_on_a_backend_name_outside_the_core():
    """The op table owns what differs by backend: a model, layer or app asks the table (``ops.packs``,
    ``ops.rel_bias_dtype`` ...), never its name."""
    pattern = re.compile(r"\bops\.name\b")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "fastbert").rglob("*.py"))
        if "core" not in path.relative_to(ROOT / "fastbert").parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
