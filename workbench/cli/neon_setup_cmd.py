"""``qwb neon-setup``: build the ARM64 sysroot that lets the neon-emulated backend run here."""

from __future__ import annotations

import argparse

from ..bench import setup_neon
from .common import ConsoleTask


def register(sub) -> None:
    p = sub.add_parser("neon-setup", help="build the ARM64 sysroot for --backend neon-emulated (root, network)",
                       description="Build a Debian arm64 sysroot with onnxruntime's aarch64 wheel (same version as "
                       "here) so ARM64 kernels can run under QEMU user-mode: about a minute and 400 MB. Needs root "
                       "(debootstrap), network, and the qemu-user-static and debootstrap packages.")
    p.add_argument("--sysroot", metavar="DIR", help="where to build it (default: $QWB_ARM_SYSROOT or the cache's "
                   "arm64-sysroot)")
    p.add_argument("--force", action="store_true", help="rebuild even if a complete sysroot is there")
    p.add_argument("--mirror", metavar="URL", help="Debian mirror for debootstrap (default: deb.debian.org)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    task = ConsoleTask()

    def log(msg: str) -> None:
        task.done()
        print(msg, flush=True)

    info = setup_neon(args.sysroot, force=args.force, mirror=args.mirror, task=task, log=log)
    task.done()
    print(f"sysroot  {info.path}: Debian {info.suite}, python {info.python}, "
          + ", ".join(f"{k} {v}" for k, v in sorted(info.packages.items())))
    print("next     qwb bench --demo --backend neon-emulated")
    return 0
