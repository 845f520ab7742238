"""Entry point of ``qwb``: parse, dispatch to a subcommand, turn user errors into one clear line."""

from __future__ import annotations

import argparse
import errno
import importlib.metadata
import os
import sys
from pathlib import Path

from backends.child import exit_on_termination_signals

from .. import __version__
from ..errors import CancelledError, WorkbenchError
from . import (
    analyze_cmd,
    backends_cmd,
    bench_cmd,
    calib_cmd,
    exclusions_cmd,
    neon_setup_cmd,
    overlay_cmd,
    quantize_cmd,
    report_cmd,
    tune_cmd,
)

# the built-in subcommands, in the order `qwb --help` lists them
COMMANDS = {"calib": calib_cmd, "quantize": quantize_cmd, "analyze": analyze_cmd, "report": report_cmd,
            "export-exclusions": exclusions_cmd, "export-overlay": overlay_cmd, "backends": backends_cmd,
            "bench": bench_cmd, "neon-setup": neon_setup_cmd,
            "tune": tune_cmd}

#: entry-point group through which other packages add commands: ``name = "package.module:register"``, where
#: ``register(subparsers)`` adds the command's parser (importing nothing heavy until the command runs)
PLUGIN_GROUP = "qwb.commands"
#: plugin commands this project ships, with their help line: a clear error when one is not registered
EXPECTED_PLUGINS = {"gui": "open the desktop workbench"}
REINSTALL = "reinstall Quant Workbench so its commands are registered: pip install -e . (from a clone)"


def _add_unavailable(sub, name: str, help: str, message: str) -> None:
    """A stand-in command that explains why ``name`` cannot run, instead of argparse's 'invalid choice'."""
    def run(args: argparse.Namespace) -> int:
        raise WorkbenchError(message, REINSTALL)

    # no option prefix, so any arguments (``--demo``, ``-h``) land in ``rest`` and the error below is shown
    p = sub.add_parser(name, help=f"{help} (unavailable)", add_help=False, prefix_chars="\0")
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def add_plugin_commands(sub) -> None:
    """Every command registered under ``PLUGIN_GROUP``, and a stand-in for each expected one that is not."""

    found: set[str] = set()
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        if ep.name in found or ep.name in COMMANDS:
            continue
        found.add(ep.name)
        try:
            register = ep.load()
        except Exception as e:  # noqa: BLE001 - one broken plugin must not take every other command down
            _add_unavailable(sub, ep.name, EXPECTED_PLUGINS.get(ep.name, ep.name),
                             f"the '{ep.name}' command ({ep.value}) cannot be loaded: {e}")
            continue
        register(sub)
    for name, help in EXPECTED_PLUGINS.items():
        if name not in found:
            _add_unavailable(sub, name, help, f"the '{name}' command is not registered (entry point group "
                             f"'{PLUGIN_GROUP}')")


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors in the form of every other user error: one ``error:`` line, one ``fix:`` line,
    exit code 2 (argparse prints the whole usage block and an ``error:`` line prefixed with the program)."""

    def error(self, message: str):
        print(f"error: {one_line(message)}", file=sys.stderr)
        print(f"  fix: see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qwb", description="Quant Workbench: quantize ONNX models to INT8, find the layers that lose "
        "accuracy, fix them, benchmark, and report.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        module.register(sub)
    add_plugin_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``qwb``; what it prints passes through ``terminal_safe`` (names from models and files are data)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _TerminalSafe(sys.stdout), _TerminalSafe(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = saved


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    exit_on_termination_signals()
    debug = "--debug" in argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:

        print(f"qwb {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CancelledError as e:
        print(f"cancelled: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except WorkbenchError as e:
        if debug:
            raise
        print(f"error: {one_line(e.message)}", file=sys.stderr)
        print(f"  fix: {one_line(e.fix or 'see qwb --help')}", file=sys.stderr)
        return 2
    except OSError as e:
        if debug or not e.filename:  # no file named: not something the user can fix by a path
            raise
        where = str(e.filename2 or e.filename)  # a rename's destination is the path the user gave
        why = "it is a file, not a folder" if e.filename2 is None and _is_file(where) and \
            e.errno in (errno.EEXIST, errno.ENOTDIR) else e.strerror or str(e)
        print(f"error: cannot write or read {one_line(short_path(where))}: {why}", file=sys.stderr)
        print("  fix: check that the path is a regular file in a folder you can write to (not under a file, not in "
              "/proc or /sys)", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - last line of defence: never a raw traceback without --debug
        if debug:
            raise
        print(f"internal error: {type(e).__name__}: {one_line(str(e))}", file=sys.stderr)
        print("  this is a bug in Quant Workbench; re-run with --debug and report the traceback", file=sys.stderr)
        return 1


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def short_path(path: str, keep: int = 200) -> str:
    """A path cut in the middle when it is longer than ``keep`` characters (a 100,000-character argument)."""
    return path if len(path) <= keep else f"{path[:keep // 2]}...{path[-keep // 2:]}"


def one_line(text: str) -> str:
    """``text`` on one line: line breaks in names (a model input, a recipe key, a path) shown as ``\\n``, so an
    error stays one ``error:`` line and a name cannot forge a ``fix:`` line of its own."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


#: terminal control characters (C0 except tab/newline/carriage return, DEL, C1) and Unicode direction controls:
#: a model or file name holding them must not move the cursor, retitle the terminal or reorder the line
_UNSAFE = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0xa0)]}
_UNSAFE.update({c: f"\\u{c:04x}" for c in [*range(0x202a, 0x202f), *range(0x2066, 0x206a), 0x200e, 0x200f, 0x061c]})


def terminal_safe(text: str) -> str:
    """``text`` with terminal control characters and direction overrides written as escapes."""
    return text.translate(_UNSAFE)


class _TerminalSafe:
    """A text stream whose writes go through ``terminal_safe`` and never fail on an unencodable character
    (a file name in another script on an ASCII terminal is printed escaped, not as an internal error)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        text = terminal_safe(text)
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:
            enc = getattr(self._stream, "encoding", None) or "ascii"
            return self._stream.write(text.encode(enc, "backslashreplace").decode(enc, "replace"))

    def __getattr__(self, name):
        return getattr(self._stream, name)


if __name__ == "__main__":
    sys.exit(main())
