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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        print(f"error: {e.message}", file=sys.stderr)
        if e.fix:
            print(f"  fix: {e.fix}", file=sys.stderr)
        return 2
    except OSError as e:
        if debug or not e.filename:  # no file named: not something the user can fix by a path
            raise
        where = e.filename2 or e.filename  # a rename's destination is the path the user gave
        why = "it is a file, not a folder" if e.filename2 is None and Path(where).is_file() and \
            e.errno in (errno.EEXIST, errno.ENOTDIR) else e.strerror or str(e)
        print(f"error: cannot write or read {where}: {why}", file=sys.stderr)
        print("  fix: check that the path is a regular file in a folder you can write to (not under a file, not in "
              "/proc or /sys)", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - last line of defence: never a raw traceback without --debug
        if debug:
            raise
        print(f"internal error: {type(e).__name__}: {e}", file=sys.stderr)
        print("  this is a bug in Quant Workbench; re-run with --debug and report the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
