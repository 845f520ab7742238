"""Build and check the ARM64 sysroot that runs onnxruntime's aarch64 wheel under QEMU user-mode.

Fast recipe (nothing is emulated while building, about a minute): debootstrap's first stage only,
``dpkg -x`` of the packages it downloaded, the aarch64 wheels of the host's onnxruntime and numpy
versions unzipped into ``opt/site``, and two empty files under ``sys/devices/system/cpu``. Without
those two files onnxruntime's cpuinfo reads the host's x86 ``/proc/cpuinfo`` and segfaults on import;
with them it asks the kernel (i.e. QEMU) for the emulated CPU's real feature bits.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from .child import run_child
from .errors import BackendError
from .tasks import NullTask, Task, scaled

SUITE = "bookworm"  # Debian 12: python3.11, which the cp311 aarch64 wheels need
PYTHON = "usr/bin/python3.11"
SITE = "opt/site"
MANIFEST = "qwb-sysroot.json"
CPU_FILES = ("sys/devices/system/cpu/possible", "sys/devices/system/cpu/present")
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
# what onnxruntime's Python package needs at import; versions pinned to the host's where installed
WHEELS = ("onnxruntime", "numpy", "protobuf", "flatbuffers", "packaging")
SETUP_COMMAND = "qwb neon-setup"


@dataclass(frozen=True)
class SysrootInfo:
    """What a built sysroot holds (written to its manifest)."""

    path: str
    suite: str
    python: str
    packages: dict  # wheel name -> version

    def to_dict(self) -> dict:
        return asdict(self)


def find_qemu() -> str | None:
    """The QEMU user-mode emulator for aarch64 programs, if installed."""
    return shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")


def check_sysroot(root: Path | None) -> tuple[SysrootInfo | None, str]:
    """(info, '') when ``root`` is a complete sysroot; (None, what is missing) otherwise."""
    if root is None:
        return None, "no ARM64 sysroot location given"
    root = Path(root)
    if not root.is_dir():
        return None, f"no ARM64 sysroot at {root}"
    for rel in (PYTHON, f"{SITE}/onnxruntime/__init__.py", f"{SITE}/numpy/__init__.py", *CPU_FILES, MANIFEST):
        if not (root / rel).exists():
            return None, f"the ARM64 sysroot at {root} is incomplete ({rel} is missing)"
    try:
        m = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        return SysrootInfo(str(root), m["suite"], m["python"], dict(m["packages"])), ""
    except (OSError, ValueError, KeyError) as e:
        return None, f"the ARM64 sysroot at {root} has an unreadable manifest ({e})"


def emulated_command(root: Path, qemu: str, script: list[str]) -> list[str]:
    """The command that runs the sysroot's Python on ``script`` under QEMU."""
    return [qemu, "-L", str(root), str(root / PYTHON), "-B", *script]


def emulated_env(root: Path, qemu_cpu: str) -> dict:
    """A clean environment for the emulated Python: no host venv, only the sysroot's packages."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG")}
    env.update(QEMU_CPU=qemu_cpu, PYTHONPATH=str(root / SITE), PYTHONNOUSERSITE="1", LC_ALL="C.UTF-8")
    return env


def _host_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def build_sysroot(root: Path, *, force: bool = False, mirror: str | None = None, task: Task | None = None,
                  log=None) -> SysrootInfo:
    """Create the sysroot at ``root`` (root privileges needed for debootstrap); returns its manifest.

    Built in ``ROOT.partial`` and renamed at the end, so an interrupted build never looks complete.
    """
    task = task or NullTask()
    log = log or (lambda msg: None)
    root = Path(root)
    info, _ = check_sysroot(root)
    if info and not force:
        log(f"already built: {root} (onnxruntime {info.packages.get('onnxruntime')}); --force rebuilds it")
        return info
    debootstrap, qemu = shutil.which("debootstrap"), find_qemu()
    missing = [n for n, p in (("debootstrap", debootstrap), ("qemu-user-static", qemu),
                              ("dpkg", shutil.which("dpkg"))) if not p]
    if missing:
        raise BackendError(f"building the ARM64 sysroot needs {', '.join(missing)}, which is not installed",
                           "apt-get install -y qemu-user-static debootstrap (Debian/Ubuntu), then run "
                           f"{SETUP_COMMAND} again")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise BackendError("debootstrap needs root privileges to unpack the ARM64 system packages",
                           f"run it as root: sudo {SETUP_COMMAND} (the sysroot is only read afterwards, no "
                           "root needed to run the emulated backend)")
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)

    log(f"debootstrap (first stage, arm64, {SUITE}) into {partial}")
    cmd = [debootstrap, "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3", SUITE, str(partial)]
    if mirror:
        cmd.append(mirror)
    _run(cmd, "debootstrap", scaled(task, 0.0, 0.45), timeout_s=1800)

    debs = sorted((partial / "var/cache/apt/archives").glob("*.deb"))
    if not debs:
        raise BackendError(f"debootstrap downloaded no packages into {partial}", "check the network and the "
                           "Debian mirror (--mirror), then run again")
    log(f"unpacking {len(debs)} packages")
    for k, deb in enumerate(debs):
        task.check()
        task.report(0.45 + 0.25 * k / len(debs), f"unpacking {deb.name}")
        _run(["dpkg", "-x", str(deb), str(partial)], f"dpkg -x {deb.name}", NullTask(), timeout_s=300)
    if not (partial / PYTHON).exists():
        raise BackendError(f"{PYTHON} is missing after unpacking; debootstrap's package set changed",
                           f"report this; the sysroot must be Debian {SUITE} with python3.11")

    wanted = {w: _host_version(w) for w in WHEELS}
    specs = [f"{w}=={v}" if v else w for w, v in wanted.items()]
    log(f"downloading aarch64 wheels: {' '.join(specs)}")
    with tempfile.TemporaryDirectory(prefix="qwb-wheels-") as wheel_dir:
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--only-binary=:all:",
               "--no-deps", "--python-version", "3.11", "--implementation", "cp", "-d", wheel_dir]
        for plat in WHEEL_PLATFORMS:
            cmd += ["--platform", plat]
        _run(cmd + specs, "pip download", scaled(task, 0.7, 0.9), timeout_s=900)
        site = partial / SITE
        site.mkdir(parents=True, exist_ok=True)
        versions = {}
        for whl in sorted(Path(wheel_dir).glob("*.whl")):
            with zipfile.ZipFile(whl) as z:
                z.extractall(site)
            name, version = whl.name.split("-")[:2]
            versions[name.lower().replace("_", "-")] = version
    for rel in CPU_FILES:
        (partial / rel).parent.mkdir(parents=True, exist_ok=True)
        (partial / rel).write_text("")

    log("checking that onnxruntime imports under emulation")
    probe = emulated_command(partial, qemu, ["-c", "import onnxruntime, numpy; print(onnxruntime.__version__)"])
    out = run_child(probe, timeout_s=300, task=scaled(task, 0.9, 1.0), env=emulated_env(partial, "cortex-a57"))
    if not out.ok:
        raise BackendError("onnxruntime does not import in the new ARM64 sysroot: " +
                           out.describe("the emulated Python", 300), "run again with --force; if it persists, "
                           "report the message above")
    info = SysrootInfo(str(root), SUITE, "3.11", versions)
    (partial / MANIFEST).write_text(json.dumps(info.to_dict(), indent=2), encoding="utf-8")
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)
    task.report(1.0, "sysroot ready")
    log(f"ready: {root} (onnxruntime {versions.get('onnxruntime')} for aarch64)")
    return info


def _run(cmd: list[str], what: str, task: Task, timeout_s: float) -> None:
    out = run_child(cmd, timeout_s=timeout_s, task=task)
    if not out.ok:
        tail = "\n".join(out.stderr_tail.strip().splitlines()[-5:])
        raise BackendError(f"{out.describe(what, timeout_s)}\n{tail}".rstrip(),
                           "check the network and free disk space, then run again")
