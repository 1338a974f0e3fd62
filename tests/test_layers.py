"""The package's layers only point down: no import circles in sew/, the library never imports the
command line, the models import no file format, and no source file grows past 400 lines.

Checked on the source with ``ast``: every import of a ``sew`` module, at the top of a file or inside
a function, is an edge; a cycle among them fails the test and names the modules on it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SEW = Path(__file__).resolve().parents[1] / "sew"


def module_name(path: Path) -> str:
    parts = path.relative_to(SEW.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SEW.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The sew modules that module ``name`` imports (a package import counts as its ``__init__``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imports(name) for name in MODULES}


def test_no_import_circles():
    # Edges into a package's __init__ from its own submodules are how Python loads packages, not a circle.
    graph = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in GRAPH.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("layer, forbidden", [
    ("sew.models", ("sew.checkpoint", "sew.interop", "sew.hub", "sew.data", "sew.train", "sew.asr", "sew.pretrain",
                    "sew.bench", "sew.cli", "sew.inference", "sew.export")),
    ("sew.inference", ("sew.checkpoint", "sew.data", "sew.train", "sew.asr", "sew.bench", "sew.cli")),
    ("sew.data", ("sew.models", "sew.train", "sew.asr", "sew.pretrain", "sew.bench", "sew.cli")),
    ("sew.train", ("sew.asr", "sew.pretrain", "sew.bench", "sew.cli")),
    ("sew.asr", ("sew.pretrain", "sew.classify", "sew.bench", "sew.cli")),
    ("sew.classify", ("sew.asr", "sew.pretrain", "sew.bench", "sew.cli")),  # the three task rooms stand side by
    ("sew.pretrain", ("sew.asr", "sew.classify", "sew.bench", "sew.cli")),  # side: what they share lives below
    ("sew.bench", ("sew.cli",)),
])
def test_layers_only_point_down(layer, forbidden):
    wrong = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if m == layer or m.startswith(layer + ".")
                   for t in targets if any(t == f or t.startswith(f + ".") for f in forbidden))
    assert not wrong, wrong


def test_no_source_file_over_400_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, long


def test_one_module_reads_the_tracers_state():
    # The kernel seam (sew.models.kernels) decides per call which implementation runs; nothing else asks
    # whether torch.compile, the ONNX exporter or torch.jit is recording.
    readers = sorted(name for name, path in MODULES.items() if name != "sew.models.kernels"
                     and any(probe in path.read_text() for probe in ("is_compiling", "is_in_onnx_export", "is_tracing")))
    assert not readers, readers
