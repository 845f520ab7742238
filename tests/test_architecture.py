"""The package boundaries are a checked contract: only ui/ imports Qt; ui -> workbench -> analyzers/backends;
the engine never imports workbench.app (the GUI's Qt-free side)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QT_MODULES = ("PySide6", "pyqtgraph", "PyQt5", "PyQt6", "shiboken6")
CORE = ("workbench", "analyzers", "backends")


def qt_imports(source: str) -> list[str]:
    """Every Qt module a Python source imports, at any depth (lazy imports inside functions count)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [n for n in names if n.split(".")[0] in QT_MODULES]
    return found


def test_scanner_catches_lazy_qt_imports():
    assert qt_imports("def f():\n    from PySide6.QtCore import QObject\n") == ["PySide6.QtCore"]
    assert qt_imports("import pyqtgraph as pg") == ["pyqtgraph"]
    assert qt_imports("import numpy\nfrom .x import y\n") == []


def test_core_packages_never_import_qt():
    offenders = {}
    for pkg in CORE:
        for path in (ROOT / pkg).rglob("*.py"):
            hits = qt_imports(path.read_text(encoding="utf-8"))
            if hits:
                offenders[str(path.relative_to(ROOT))] = hits
    assert offenders == {}


def test_import_linter_contracts_hold():
    r = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                        "sys.exit(lint_imports_command())"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 3 kept, 0 broken" in r.stdout


def string_imports(source: str) -> list[str]:
    """Modules a source imports by name at run time (``importlib.import_module("x")``, ``__import__("x")``),
    which import-linter cannot see."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(node.args[0].value)
    return found


def test_scanner_catches_string_imports():
    assert string_imports("import importlib\nm = importlib.import_module('ui.app')\n") == ["ui.app"]
    assert string_imports("def f():\n    return __import__('ui')\n") == ["ui"]
    assert string_imports("importlib.import_module(f'workbench.cli.{m}')") == []


def test_core_packages_never_reach_ui_or_app_by_name():
    """The core reaches ui/ only through the declared ``qwb.commands`` entry points, never by a string."""
    offenders = {}
    for pkg in CORE:
        for path in (ROOT / pkg).rglob("*.py"):
            hits = [m for m in string_imports(path.read_text(encoding="utf-8"))
                    if m.split(".")[0] == "ui" or m.startswith("workbench.app")]
            if hits:
                offenders[str(path.relative_to(ROOT))] = hits
    assert offenders == {}


def test_core_imports_without_qt_loaded():
    code = ("import sys, workbench.session, workbench.cli.main, analyzers.calibration.collect; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph')]; print(bad); "
            "sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
