"""``qwb gui`` is a plugin: ui/ registers it under the ``qwb.commands`` entry-point group, which qwb reads."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points

import pytest

from workbench.cli import main as cli_main
from workbench.errors import WorkbenchError

from .cli_util import ROOT, qwb


def test_the_gui_command_is_a_registered_entry_point():
    eps = {ep.name: ep.value for ep in entry_points(group=cli_main.PLUGIN_GROUP)}
    assert eps.get("gui") == "ui.cli_command:register", "reinstall: pip install -e ."


def test_help_lists_gui_without_loading_qt():
    code = ("import sys; from workbench.cli.main import build_parser; "
            "help = build_parser().format_help(); assert 'gui' in help, help; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph') or m == 'ui.app']; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gui_help_runs_without_qt():
    r = qwb("gui", "--help")
    assert r.returncode == 0 and "--demo" in r.stdout and ".qwbproj" in r.stdout, r.stderr


def test_an_unregistered_gui_command_says_how_to_fix_it(monkeypatch, capsys):
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: [])
    assert cli_main.main(["gui", "--demo"]) == 2
    err = capsys.readouterr().err
    assert "'gui' command is not registered" in err and "pip install -e ." in err


def test_a_plugin_that_cannot_load_is_reported_and_the_rest_still_work(monkeypatch, capsys):
    broken = EntryPoint("gui", "ui.no_such_module:register", cli_main.PLUGIN_GROUP)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: [broken])
    assert cli_main.main(["gui"]) == 2
    err = capsys.readouterr().err
    assert "cannot be loaded" in err and "ui.no_such_module" in err and "pip install -e ." in err
    assert "quantize" in cli_main.build_parser().format_help()  # the other commands are still there


def test_missing_gui_dependencies_give_the_install_command(monkeypatch):
    from ui import cli_command

    monkeypatch.setitem(sys.modules, "ui.app", None)  # as if PySide6 were not installed
    args = cli_main.build_parser().parse_args(["gui", "--demo"])
    with pytest.raises(WorkbenchError) as e:
        cli_command.run(args)
    assert "cannot start" in e.value.message and "pip install" in e.value.fix


def test_gui_without_a_display_is_one_line_with_the_fix():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "workbench.cli.main", "gui", "--demo"], cwd=ROOT, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert r.stderr.startswith("error: qwb gui needs a display") and "xvfb-run" in r.stderr
    assert "Traceback" not in r.stderr and "xcb" not in r.stderr
