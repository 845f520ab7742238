"""Read rows of the arrays in an .npz file without loading whole arrays.

``numpy.load`` on an .npz reads a member completely; an evaluation set of thousands of images would then
sit in memory for the whole analysis. Here each member's .npy header is parsed once and rows are read
on demand: by seeking when the member is stored uncompressed (``np.savez``), by streaming forward when
it is deflated (``np.savez_compressed``), which costs nothing when batches are read in order, as every
pass over the data does. Hand-written because numpy offers no partial read of an .npz member.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Member:
    """One array in the archive: its shape and dtype, and where its data starts."""

    name: str
    shape: tuple
    dtype: np.dtype
    info: zipfile.ZipInfo
    header_len: int  # bytes of the .npy magic + header inside the member

    @property
    def row_bytes(self) -> int:
        return int(self.dtype.itemsize * math.prod(self.shape[1:]))

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0


class NpzRows:
    """Row access to the arrays of one .npz file; thread-unsafe, one reader per data source."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.zf = zipfile.ZipFile(self.path)
        self.members: dict[str, Member] = {}
        for info in self.zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with self.zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"{info.filename}: .npy format version {version} is not supported")
                header_len = f.tell()
            if fortran and len(shape) > 1:
                raise ValueError(f"{info.filename} is stored in Fortran order")
            if dtype.hasobject:
                raise ValueError(f"{info.filename} holds Python objects")
            _check_size(info, tuple(shape), dtype, header_len)
            self.members[info.filename[:-4]] = Member(info.filename[:-4], tuple(shape), dtype, info, header_len)
        size = self.path.stat().st_size
        for m in self.members.values():  # a stored member is read by seeking: its bytes must be in the file
            if m.info.compress_type == zipfile.ZIP_STORED and self._data_offset(m) + m.info.compress_size > size:
                raise ValueError(f"{m.info.filename} claims {m.info.compress_size} bytes beyond the end of the file "
                                 "(truncated?)")
        self._streams: dict[str, tuple[object, int]] = {}  # member -> (open stream, next row)

    def keys(self) -> list[str]:
        return list(self.members)

    def read(self, name: str) -> np.ndarray:
        """A whole (small) member, e.g. the labels."""
        return self.rows(name, 0, len(self.members[name]))

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        m = self.members[name]
        start, stop = max(0, start), min(stop, len(m))
        count = max(stop - start, 0)
        if m.info.compress_type == zipfile.ZIP_STORED:
            with open(self.path, "rb") as f:
                f.seek(self._data_offset(m) + m.header_len + start * m.row_bytes)
                buf = f.read(count * m.row_bytes)
        else:
            stream, at = self._streams.get(name, (None, -1))
            if stream is None or at > start:
                if stream is not None:
                    stream.close()
                stream = self.zf.open(m.info)
                stream.read(m.header_len)
                at = 0
            if start > at:
                _skip(stream, (start - at) * m.row_bytes)
            buf = stream.read(count * m.row_bytes)
            self._streams[name] = (stream, stop)
        if len(buf) != count * m.row_bytes:
            raise ValueError(f"{m.info.filename} is truncated: rows {start}..{stop} need {count * m.row_bytes} bytes, "
                             f"{len(buf)} are there")
        return np.frombuffer(buf, dtype=m.dtype).reshape((count,) + m.shape[1:])

    def _data_offset(self, m: Member) -> int:
        """Where the member's bytes start in the file (after its local zip header)."""
        with open(self.path, "rb") as f:
            f.seek(m.info.header_offset)
            local = f.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        return m.info.header_offset + 30 + name_len + extra_len

    def close(self) -> None:
        for stream, _ in self._streams.values():
            stream.close()
        self._streams.clear()
        self.zf.close()


def _check_size(info: zipfile.ZipInfo, shape: tuple, dtype: np.dtype, header_len: int) -> None:
    """Refuse a header whose shape needs more bytes than the member holds, before anything is allocated
    (a header claiming 2**40 rows would otherwise reach numpy as a huge read)."""
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"{info.filename}: its header gives an impossible shape {shape}")
    need = dtype.itemsize * math.prod(shape)
    have = info.file_size - header_len
    if need > have:
        raise ValueError(f"{info.filename}: its header claims shape {shape} of {dtype} ({need:,} bytes) but the member "
                         f"holds {max(have, 0):,} bytes")


def _skip(stream, n: int, chunk: int = 1 << 22) -> None:
    while n > 0:
        got = len(stream.read(min(n, chunk)))
        if got == 0:
            break
        n -= got
