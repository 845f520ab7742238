"""The package boundaries are a checked contract: only ui/ imports Qt; ui -> workbench -> analyzers/backends."""

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
    assert "Contracts: 2 kept, 0 broken" in r.stdout


def test_core_imports_without_qt_loaded():
    code = ("import sys, workbench.session, workbench.cli.main, analyzers.calibration.collect; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph')]; print(bad); "
            "sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
