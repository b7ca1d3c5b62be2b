"""An import inside a function has a reason to be there: a module of the project that imports
this one back (a cycle), an ``AppConfig.ready`` (models load after the app registry), or the
command line before the settings are configured; or a reason said in ``KEPT``. The standard
library is never one."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Code that runs before Django's settings are configured: its Django imports wait.
BEFORE_SETTINGS = {"bokehsite/cli.py"}
# Imports kept in a function for another reason, by importing module and imported module.
KEPT = {
    # bokehsite.errors, which every app imports, imports metrics: it must not load an app's models.
    ("bokehsite/metrics.py", "appserver.models"),
}


def _sources() -> dict[str, Path]:
    """The server's and the client's modules by dotted name."""
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    modules = {}
    for f in files:
        if f.startswith(("tests/", "bench/", "examples/")) or "/migrations/" in f:
            continue
        name = f[:-3].replace("/", ".").removesuffix(".__init__")
        modules[name] = ROOT / f
    return modules


def _targets(node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The project modules an import statement loads."""
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
        [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _graph(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, int, ast.AST, str]]]:
    """Each module's imports at its top level, and every import inside a function (module, line,
    statement, enclosing function's name)."""
    top, inner = {}, []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        top[name] = set()
        for node in tree.body:
            if _is_type_checking(node):
                continue
            for n in ast.walk(node):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    break
                if isinstance(n, (ast.Import, ast.ImportFrom)):
                    top[name] |= _targets(n, modules) - {name}
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for n in ast.walk(function):
                    if isinstance(n, (ast.Import, ast.ImportFrom)):
                        inner.append((name, n.lineno, n, function.name))
    return top, inner


def _reaches(top: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, stack = set(), [start]
    while stack:
        here = stack.pop()
        if here == goal:
            return True
        if here not in seen:
            seen.add(here)
            stack.extend(top.get(here, ()))
    return False


def test_imports_inside_functions_break_a_cycle_or_wait_for_django():
    modules = _sources()
    top, inner = _graph(modules)
    misplaced = []
    for name, line, node, function in inner:
        where = f"{modules[name].relative_to(ROOT)}:{line}: {ast.unparse(node)}"
        first = (node.names[0].name if isinstance(node, ast.Import) else node.module or "").partition(".")[0]
        if first in sys.stdlib_module_names:
            misplaced.append(where)
            continue
        targets = _targets(node, modules) - {name}
        if not targets or function == "ready" or str(modules[name].relative_to(ROOT)) in BEFORE_SETTINGS:
            continue
        if all((str(modules[name].relative_to(ROOT)), target) in KEPT for target in targets):
            continue
        if not any(_reaches(top, target, name) for target in targets):
            misplaced.append(where)
    assert not misplaced, "imports inside functions with no cycle to break; move them to the top:\n" + "\n".join(misplaced)
