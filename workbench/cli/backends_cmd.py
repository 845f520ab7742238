"""``qwb backends``: every backend, whether it can run here, and why (or how to make it run)."""

from __future__ import annotations

import argparse
import json

from backends.integer_path import EMULATED_ARM_FLAGS, arm_path, integer_path

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
    host = integer_path()
    arm = {cpu: arm_path(flags) for cpu, flags in EMULATED_ARM_FLAGS.items()}
    print()
    if host is not None:
        print(f"integer path of this CPU: {host.label()}\n  {host.note}")
    print("integer paths under neon-emulated: " + "; ".join(f"{cpu} = {p.label()}" for cpu, p in arm.items()))
    if args.json:
        rows_json = [dict(a.to_dict(), integer_path=(host.to_dict() if host and a.backend == "cpu" else None))
                     for a in rows]
        for r in rows_json:
            if r["backend"] == "neon-emulated":
                r["integer_paths"] = {cpu: p.to_dict() for cpu, p in arm.items()}
        write_text(args.json, json.dumps(rows_json, indent=2))
        print(f"wrote {args.json}")
    return 0
