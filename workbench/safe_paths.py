"""The files a command reads and writes: inputs must be regular files, an output is never one of the inputs,
and outputs are written atomically.

Why: ``-o`` naming the calibration data or the model silently replaced it with something else, a FIFO given
as the model hung the command, and a write cut short left half a file where a good one was. Every command
checks its paths here before doing any work and writes through ``atomic_output``.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import onnx

from .errors import WorkbenchError

#: pseudo-filesystems whose "files" are not data (reading can block, writing changes the kernel or a device)
SPECIAL_ROOTS = ("/proc", "/sys", "/dev")
#: the files an image-folder input (calibration or evaluation data) is read from
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


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


#: the one special file an output may be: a demanding user writes ``--json /dev/null`` to discard a form
NULL_DEVICE = os.devnull
#: how a project file starts (``workbench.app.project`` writes "kind" first); the engine may not import app/
PROJECT_SUFFIX = ".qwbproj"
PROJECT_KIND = b'"quant-workbench-project"'


def is_null_device(path: str | Path) -> bool:
    """Whether ``path`` is (a link to) the null device."""
    try:
        return os.path.realpath(path) == NULL_DEVICE
    except (OSError, ValueError):
        return False


def is_project_file(path: str | Path) -> bool:
    """A Quant Workbench project (``.qwbproj``, or any file whose start names the project kind)."""
    p = Path(path)
    if p.suffix.lower() == PROJECT_SUFFIX:
        return True
    try:
        with open(p, "rb") as f:
            return PROJECT_KIND in f.read(4096)
    except OSError:
        return False


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def external_data_files(model: str | Path) -> list[Path]:
    """The files an ONNX model keeps its weights in (``external_data`` locations, relative to its folder), so
    ``-o weights.bin`` cannot overwrite them. Empty for anything that does not parse as ONNX."""
    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # noqa: BLE001 - not ONNX (a .pt, a broken file): the loaders report it
        return []
    found: set[Path] = set()

    def tensors(graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    yield from tensors(g)

    for t in tensors(proto.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((kv.value for kv in t.external_data if kv.key == "location"), None)
            if loc:
                found.add(Path(model).parent / loc)
    return sorted(found)


def _expand_inputs(inputs, outputs) -> list[tuple[str, Path]]:
    """(role, file) for every input file; ONNX models bring their external weights when an existing output
    lies in the model's folder (only then can it be one of them: the loader refuses locations outside)."""
    existing_out = [os.path.realpath(o) for o in outputs if o and os.path.isfile(o)]
    files = []
    for role, path in inputs:
        if not path or not os.path.isfile(path):
            continue
        files.append((role, Path(path)))
        if role == "model" and existing_out and str(path).lower().endswith(".onnx"):
            folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
            if any(_under(o, folder) for o in existing_out):
                files += [(f"external weights of the {role}", p) for p in external_data_files(path) if p.is_file()]
    return files


def check_outputs(outputs: Iterable[str | Path | None], inputs: Iterable[tuple[str, str | Path | None]],
                  replace_projects: bool = False) -> None:
    """Refuse outputs that are special files (the null device excepted), read-only, a project file (unless
    ``replace_projects``), or the same file as an input (by inode, so through symlinks and hard links too;
    an ONNX model's external weights and the files of an input folder count as inputs). ``inputs``: (role,
    path) pairs; paths that do not exist are ignored. ``None`` means "no such output"; an empty name is refused."""
    outputs, inputs = list(outputs), list(inputs)
    if any(o is not None and str(o).strip() == "" for o in outputs):
        raise WorkbenchError("an output path is empty", "name the file to write, e.g. -o out.onnx")
    outputs = [o for o in outputs if o]
    files = _expand_inputs(inputs, outputs)
    folders = [(role, Path(p)) for role, p in inputs if p and os.path.isdir(p)]
    for out in outputs:
        o = Path(out)
        if is_null_device(o):
            continue
        root = _special_root(o)
        if root:
            raise WorkbenchError(f"the output {o} is under {root}, which holds no ordinary files",
                                 "write the output to a regular folder (or to /dev/null to discard it)")
        try:
            st = os.stat(o)
        except OSError:
            continue  # a new file: nothing to compare with
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            raise WorkbenchError(f"the output {o} is {_kind(st.st_mode)}", "write the output to a regular file")
        for role, inp in files:
            if os.path.samefile(o, inp):
                how = "" if os.path.abspath(o) == os.path.abspath(inp) else " (the same file through a link)"
                raise WorkbenchError(f"the output {o} is the {role} {inp}{how}: writing it would destroy the "
                                     f"{role}", "choose another output path")
        real = os.path.realpath(o)
        for role, folder in folders:
            if o.suffix.lower() in IMAGE_SUFFIXES and _under(real, os.path.realpath(folder)):
                raise WorkbenchError(f"the output {o} is inside the {role} folder {folder}, whose files are read as "
                                     f"input: writing it would replace one of them", "choose an output outside that folder")
        if not os.access(o, os.W_OK):
            raise WorkbenchError(f"the output {o} exists and is read-only", "choose another output path, or make "
                                 f"it writable first (chmod u+w {o})")
        if is_project_file(o) and not replace_projects:
            raise WorkbenchError(f"the output {o} is a Quant Workbench project: writing it would replace the project",
                                 "choose another output path, or pass --force to replace the project file")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; renamed over ``path`` only when the block succeeds,
    deleted otherwise, so ``path`` holds either its old content or the whole new one."""
    p = Path(path)
    if is_null_device(p):  # nothing to keep: write to a scratch file and drop it
        fd, tmp = tempfile.mkstemp(prefix="qwb-discard-", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return
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


def write_json(path: str | Path, data, **dump_args) -> Path:
    """Write ``data`` as JSON to ``path`` atomically, fsynced (a project or an overlay: never half a file)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, **dump_args)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)
