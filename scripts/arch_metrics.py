"""The house's shape, counted (issue 16's before/after): lines per app, imports that run back up
the layers, function-local imports of project modules (and how many of them sit in an import
cycle), the cycles themselves and the biggest files.

    .venv/bin/python scripts/arch_metrics.py [--json] [ROOT]

Layers, bottom to top: croplayer_site < mapping < annotation < learning < product, where
"product" is whichever package holds the final-product app (``learning.product`` once it
exists). An import from a lower layer of a higher one "runs back up". Cycles are strongly
connected components of the module graph with every import counted, function-local ones
included (those are what hide a cycle from the interpreter). Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

APPS = ("croplayer_site", "mapping", "annotation", "learning")
PRODUCT = "learning.product"
LAYER_OF = {"croplayer_site": 0, "mapping": 1, "annotation": 2, "learning": 3, PRODUCT: 4}
SKIP_PARTS = {"migrations", "__pycache__"}


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")):
            rel = path.relative_to(root)
            if SKIP_PARTS & set(rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _layer(module: str) -> int | None:
    prefixes = [p for p in LAYER_OF if module == p or module.startswith(p + ".")]
    return LAYER_OF[max(prefixes, key=len)] if prefixes else None


def _app(module: str) -> str:
    in_product = module == PRODUCT or module.startswith(PRODUCT + ".")
    return PRODUCT if in_product else module.split(".")[0]


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (``a.b.c`` may be a module or a name in ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0
        self.found: list[tuple[str, bool, int]] = []  # (target, local, line)
        self.type_checking = 0

    def _visit_function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            return  # annotations only: no import at run time
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, self.depth > 0, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            pkg = self.package.split(".")
            pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
            base = ".".join(pkg + ([base] if base else []))
        for alias in node.names:
            name = f"{base}.{alias.name}" if base else alias.name
            self.found.append((name, self.depth > 0, node.lineno))


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out, key=len, reverse=True)


def measure(root: Path) -> dict:
    modules = _modules(root)
    graph: dict[str, set[str]] = defaultdict(set)
    local: list[tuple[str, str, int]] = []
    upward: list[tuple[str, str, int]] = []
    lines_per_app: dict[str, int] = defaultdict(int)
    for module, path in modules.items():
        text = path.read_text(encoding="utf-8")
        lines_per_app[_app(module)] += text.count("\n")
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(text))
        for name, is_local, line in visitor.found:
            target = _resolve(name, modules)
            if target is None or target == module:
                continue
            graph[module].add(target)
            if is_local:
                local.append((module, target, line))
            here, there = _layer(module), _layer(target)
            if here is not None and there is not None and there > here:
                upward.append((module, target, line))
    cycles = _sccs(graph)
    in_cycle = {m: i for i, comp in enumerate(cycles) for m in comp}
    local_in_cycle = [x for x in local if x[0] in in_cycle and in_cycle.get(x[1]) == in_cycle[x[0]]]
    per_file: dict[str, int] = defaultdict(int)
    for module, _, _ in local:
        per_file[module] += 1
    sizes = []
    for pattern in ("*.py", "*.js"):
        for path in root.rglob(pattern):
            rel = path.relative_to(root)
            if rel.parts[0] in (".venv", "var", "node_modules") or SKIP_PARTS & set(rel.parts):
                continue
            if "vendor" in rel.parts:
                continue
            sizes.append((path.read_text(encoding="utf-8", errors="replace").count("\n"), str(rel)))
    sizes.sort(reverse=True)
    return {
        "lines_per_app": dict(sorted(lines_per_app.items())),
        "imports_up": len(upward),
        "imports_up_by_pair": _pairs(upward),
        "function_local_imports": len(local),
        "function_local_in_a_cycle": len(local_in_cycle),
        "function_local_top": sorted(per_file.items(), key=lambda kv: -kv[1])[:8],
        "cycles": [len(c) for c in cycles],
        "cycle_members": cycles,
        "biggest_files": sizes[:10],
    }


def _pairs(edges: list[tuple[str, str, int]]) -> dict[str, int]:
    pairs: dict[str, int] = defaultdict(int)
    for src, dst, _ in edges:
        pairs[f"{_app(src)} -> {_app(dst)}"] += 1
    return dict(sorted(pairs.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = measure(Path(args.root))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print("lines per app:", ", ".join(f"{k} {v:,}" for k, v in result["lines_per_app"].items()))
    print("imports that run back up:", result["imports_up"], result["imports_up_by_pair"])
    print(
        "function-local imports of project modules:", result["function_local_imports"],
        f"({result['function_local_in_a_cycle']} inside a cycle)",
    )  # fmt: skip
    print("  most:", ", ".join(f"{m} {n}" for m, n in result["function_local_top"]))
    print("cycles (modules in each):", result["cycles"])
    for comp in result["cycle_members"]:
        print("  ", " ".join(comp[:12]) + (" …" if len(comp) > 12 else ""))
    print("biggest files:")
    for n, path in result["biggest_files"]:
        print(f"  {n:6,} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
