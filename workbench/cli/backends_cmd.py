"""``qwb backends``: every backend, whether it can run here, and why (or how to make it run)."""

from __future__ import annotations

import argparse
import json

from ..bench import backend_availability
from ..safe_paths import write_text
from .common import add_force_arg, check_paths


def register(sub) -> None:
    p = sub.add_parser("backends", help="list the backends and whether each can run here",
                       description="List every benchmark backend (cpu, cuda, neon, neon-emulated) with whether it "
                       "is available on this machine, the reason, and how to enable it.")
    p.add_argument("--sysroot", metavar="DIR", help="ARM64 sysroot for neon-emulated (default: $QWB_ARM_SYSROOT or "
                   "the cache's arm64-sysroot)")
    p.add_argument("--json", metavar="OUT", help="also write the list as JSON")
    add_force_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_paths(args, [args.json])
    rows = backend_availability(args.sysroot)
    width = max(len(a.backend) for a in rows) + 2
    print(f"{'backend':<{width}}available  reason")
    for a in rows:
        print(f"{a.backend:<{width}}{'yes' if a.available else 'no':<11}{a.reason}")
        if a.fix:
            print(f"{'':<{width + 11}}fix: {a.fix}")
    if args.json:
        write_text(args.json, json.dumps([a.to_dict() for a in rows], indent=2))
        print(f"wrote {args.json}")
    return 0
