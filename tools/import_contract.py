"""The import contract of workflow/sftpipe: layers in one direction, no cycles, plan.py only for the Snakefile.

Every import counts, function-local ones too (they hide a cycle, they do not remove it). A module may import
from its own layer or a layer to its left:

    util → paths → config → lf → data → slurm → runs → training → report → dashboard → cli

Usage: python tools/import_contract.py [PACKAGE_DIR]   (exit 1 and one line per violation when broken)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LAYERS = ("util", "paths", "config", "lf", "data", "slurm", "runs", "training", "report", "dashboard", "cli")
ONLY_FOR_SNAKEFILE = "plan"  # may import any layer below cli; no module may import it


def modules(pkg_dir: Path) -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    out = {}
    for f in sorted(pkg_dir.rglob("*.py")):
        parts = list(f.relative_to(pkg_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Package modules `name` imports anywhere in its file (resolved to the longest existing module)."""
    found = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name and not (is_pkg and target.startswith(name + ".")):
                found.add(target)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def violations(pkg_dir: Path) -> list[str]:
    """Every broken rule, one line each (empty: the contract holds)."""
    mods = modules(pkg_dir)
    graph = {m: imports_of(m, f, mods) for m, f in mods.items()}
    problems = []
    for mod, targets in sorted(graph.items()):
        here = layer_of(mod)
        for target in sorted(targets):
            there = layer_of(target)
            if there == ONLY_FOR_SNAKEFILE:
                problems.append(f"{mod} imports {target}: plan is used only by the Snakefile")
            elif here == ONLY_FOR_SNAKEFILE:
                if there == "cli":
                    problems.append(f"{mod} imports {target}: plan may not depend on the CLI")
            elif here == "__init__" or there == "__init__":
                continue
            elif here not in LAYERS:
                problems.append(f"{mod}: top-level module {here!r} is in no layer ({', '.join(LAYERS)})")
                break
            elif there not in LAYERS or LAYERS.index(there) > LAYERS.index(here):
                problems.append(f"{mod} imports {target}: layer {here!r} may not import layer {there!r}")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main(argv: list[str]) -> int:
    pkg = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "workflow" / "sftpipe"
    problems = violations(pkg)
    for line in problems:
        print(line)
    print(f"import contract: {'broken, ' + str(len(problems)) + ' violation(s)' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
