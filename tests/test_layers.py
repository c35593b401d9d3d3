"""The shape of the package (../DESIGN.md, "Package layout"): imports point down only, with no
circle anywhere, counting imports inside functions and under `TYPE_CHECKING`; no module over the
house limit. Read from the source with `ast`, so a lazy import cannot hide an up-arrow.

Run this file as a script (`python tests/test_layers.py`) to print the import graph's circles and
up-arrows in full."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fleet"
#: The house limit on a module's length.
MAX_LINES = 500
#: Top-level parts of `fleet`, highest layer first. A part may import only parts of lower layers
#: (and itself); parts of one layer never import each other. The last layer is the shared leaves.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli", "mcp", "dash"),
    ("ops",),
    ("service",),
    ("hooks", "install"),
    ("watchdog",),
    ("agents", "work", "leases", "hosts"),
    ("store",),
    ("config",),
    ("audit", "logs"),
    ("fsutil", "durations", "tokens", "untrusted", "schemacheck", "shellwords", "prompttext"),
    ("errors",),
    ("vocab", "__init__"),
)


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The fleet modules `name` imports anywhere in its source (functions and TYPE_CHECKING too)."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    wanted: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import module` imports the module, `from m import x` m
                wanted.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    out: set[str] = set()
    for target in wanted:
        parts = target.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        if parts and (hit := ".".join(parts)) not in (name, "fleet"):
            out.add(hit)
    return out


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = module_names(root)
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def circles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected parts of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                part = []
                while True:
                    top = stack.pop()
                    on.discard(top)
                    part.append(top)
                    if top == node:
                        break
                if len(part) > 1:
                    found.append(sorted(part))
    return found


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def part_edges(edges: Mapping[str, Iterable[str]]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, targets in edges.items():
        for target in targets:
            if part_of(source) != part_of(target):
                out[part_of(source), part_of(target)].append(f"{source} -> {target}")
    return out


def layer_of(part: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if part in layer), None)


def up_arrows(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Imports between parts that do not point to a lower layer."""
    bad = []
    for (source, target), why in sorted(part_edges(edges).items()):
        a, b = layer_of(source), layer_of(target)
        if a is None or b is None or b <= a:
            bad.extend(why)
    return bad


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {part_of(name) for name in module_names()}
    assert sorted(p for p in parts if layer_of(p) is None) == []


def test_no_import_circle_between_modules() -> None:
    assert circles(graph()) == []


def test_no_import_circle_between_parts() -> None:
    parts: dict[str, set[str]] = defaultdict(set)
    for source, target in part_edges(graph()):
        parts[source].add(target)
    assert circles(parts) == []


def test_imports_point_down_the_layers() -> None:
    assert up_arrows(graph()) == []


def test_no_module_over_the_house_limit() -> None:
    long = {name: n for name, path in module_names().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_checker_sees_a_lazy_circle(tmp_path: Path) -> None:
    """The reading itself can fail: a circle hidden in a function and one under TYPE_CHECKING."""
    pkg = tmp_path / "fleet"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from fleet.ops import x\n")
    (pkg / "ops.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .low import a\n")
    edges = graph(pkg)
    assert circles(edges) == [["fleet.low.a", "fleet.ops"]]
    assert up_arrows(edges) == ["fleet.low.a -> fleet.ops", "fleet.ops -> fleet.low.a"]


if __name__ == "__main__":
    g = graph()
    for c in circles(g):
        print("module circle:", " ".join(c))
    for line in up_arrows(g):
        print("up-arrow:", line)
    for name, path in module_names().items():
        if (n := len(path.read_text().splitlines())) > MAX_LINES:
            print(f"too long: {name} ({n} lines)")
    sys.exit(0)
