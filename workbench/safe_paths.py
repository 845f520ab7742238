"""The files a command reads and writes: inputs must be regular files, an output is never one of the inputs,
and outputs are written atomically.

Why: ``-o`` naming the calibration data or the model silently replaced it with something else, a FIFO given
as the model hung the command, and a write cut short left half a file where a good one was. Every command
checks its paths here before doing any work and writes through ``atomic_output``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import WorkbenchError

#: pseudo-filesystems whose "files" are not data (reading can block, writing changes the kernel or a device)
SPECIAL_ROOTS = ("/proc", "/sys", "/dev")


def _special_root(path: Path) -> str | None:
    real = os.path.realpath(path)
    return next((r for r in SPECIAL_ROOTS if real == r or real.startswith(r + "/")), None)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_input(path: str | Path | None, role: str) -> None:
    """Refuse an input that exists but is neither a regular file nor a folder (FIFO, device, socket, /proc).
    A missing path passes: the loaders report it with their own fix."""
    if not path:
        return
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError:
        return
    root = _special_root(p)
    if root or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        what = f"under {root}" if root else _kind(st.st_mode)
        raise WorkbenchError(f"the {role} {p} is {what}, not a data file", f"pass the {role} as a regular file")


def check_outputs(outputs: Iterable[str | Path | None], inputs: Iterable[tuple[str, str | Path | None]]) -> None:
    """Refuse outputs that are special files or that are the same file as an input (by inode, so through
    symlinks and hard links too). ``inputs``: (role, path) pairs; paths that do not exist are ignored."""
    existing = []
    for role, path in inputs:
        if path and os.path.exists(path) and not os.path.isdir(path):
            existing.append((role, Path(path)))
    for out in outputs:
        if not out:
            continue
        o = Path(out)
        root = _special_root(o)
        if root:
            raise WorkbenchError(f"the output {o} is under {root}, which holds no ordinary files",
                                 "write the output to a regular folder")
        try:
            st = os.stat(o)
        except OSError:
            continue  # a new file: nothing to compare with
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            raise WorkbenchError(f"the output {o} is {_kind(st.st_mode)}", "write the output to a regular file")
        for role, inp in existing:
            if os.path.samefile(o, inp):
                how = "" if os.path.abspath(o) == os.path.abspath(inp) else " (the same file through a link)"
                raise WorkbenchError(f"the output {o} is the {role} {inp}{how}: writing it would destroy the "
                                     f"{role}", "choose another output path")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; renamed over ``path`` only when the block succeeds,
    deleted otherwise, so ``path`` holds either its old content or the whole new one."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise WorkbenchError(f"cannot write {p} ({e.strerror or e})", "choose an output in a writable folder") from e
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give the file the mode a plain open() would
    try:
        yield Path(tmp)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str, errors: str = "strict") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors=errors)
    return Path(path)
