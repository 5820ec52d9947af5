"""The package is one layered house: no import cycle anywhere (function-local imports included), the
import-linter contracts of pyproject.toml hold, and no import hides from them behind ``importlib``.

Both checks are first shown to catch what they are meant to catch, on a scratch copy of the package with
one function-local import planted in it: a checker that cannot see such imports would pass the real
package for the wrong reason.
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("grimp", reason="grimp comes with import-linter: pip install -e '.[dev]'")
pytest.importorskip("importlinter", reason="import-linter is a [dev] dependency: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fsgen_hub"

# Strongly connected components of grimp's import graph (Tarjan, iterative): every component of more
# than one module is an import cycle. grimp records imports wherever they sit, inside functions included.
FIND_CYCLES = textwrap.dedent("""
    import json, grimp
    graph = grimp.build_graph("fsgen_hub", cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter; counter += 1; stack.append(root); on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter; counter += 1; stack.append(child); on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop(); on_stack.discard(member); component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    print(json.dumps(sorted(cycles)))
""")


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONPATH": str(root),
                               "HOME": str(root)})


def import_cycles(root: Path) -> list[list[str]]:
    result = _run([sys.executable, "-c", FIND_CYCLES], root)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                 "sys.argv = ['lint-imports', '--no-cache']; lint_imports_command()"], root)


def scratch_copy(tmp_path: Path, module: str, planted: str) -> Path:
    """A copy of the package and its pyproject.toml with ``planted`` (a function) appended to ``module``."""
    shutil.copytree(PACKAGE, tmp_path / "fsgen_hub", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "fsgen_hub" / module
    path.write_text(path.read_text() + "\n\n" + textwrap.dedent(planted))
    return tmp_path


def test_no_import_cycle_in_the_package_function_local_imports_included(tmp_path):
    # the checker sees a cycle made by one function-local import (utils.errors -> cli -> utils.errors) ...
    mutated = scratch_copy(tmp_path, "utils/errors.py", """
        def _planted():
            from fsgen_hub.cli import main
            return main
    """)
    assert any({"fsgen_hub.utils.errors", "fsgen_hub.cli"} <= set(cycle) for cycle in import_cycles(mutated))
    # ... and finds none in the real package
    assert import_cycles(ROOT) == []


def test_import_contracts_hold_and_catch_an_upward_function_local_import(tmp_path):
    result = lint_imports(ROOT)
    assert result.returncode == 0 and "0 broken" in result.stdout, result.stdout[-3000:]
    mutated = scratch_copy(tmp_path, "models/base.py", """
        def _planted():
            from fsgen_hub.training.trainer import AdaptationTrainer
            return AdaptationTrainer
    """)
    result = lint_imports(mutated)
    assert result.returncode != 0
    assert "fsgen_hub.models.base -> fsgen_hub.training.trainer" in result.stdout


def _import_module_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
        ):
            yield node


def test_no_package_import_hides_behind_importlib():
    """``importlib.import_module("fsgen_hub...")`` is invisible to the checks above; only external packages
    (utils.extras.require, publish's transport errors) and the package root's lazy names use importlib."""
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in _import_module_calls(ast.parse(path.read_text(), str(path))):
            argument = ast.unparse(call.args[0]) if call.args else ""
            if "fsgen_hub" in argument:
                hidden.append(f"{path.relative_to(ROOT)}:{call.lineno} {argument}")
    assert hidden == []


def test_lazy_public_names_are_mirrored_by_static_imports():
    """The root's lazy ``_LAZY`` table is importlib-driven: its TYPE_CHECKING block must name the same
    imports, so that the contracts see them (and a typo in the table fails here, not at a user's import)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    lazy = next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_LAZY")
    checked = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    static = {alias.name: node.module for node in checked.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert static == lazy
    import fsgen_hub

    assert all(getattr(fsgen_hub, name) is not None for name in lazy)
