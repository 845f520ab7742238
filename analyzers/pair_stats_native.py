"""Per-layer error statistics in one compiled pass (``_pairstats``), where the extension is built.

The statistics graphs (``diff_graph.pair_stats`` in onnxruntime) stream every intermediate through memory, about
ten passes per value; the compiled kernel reads the FP32 tensor and the compared one (a layer's deployed integers,
or the exact simulation's float32 tensor) once, each in its own layout (the strides of numpy views, worked out once
per batch shape: nothing is copied), and releases the GIL. The figures are the graph's (the same float32
dequantization and error) with float32 sums over at most 1024 values added in float64. Without a C compiler at
install time the extension is missing and ``available()`` says so; ``DeployedEngine`` and ``DiffEngine`` then
reduce in their onnxruntime graphs as before.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

try:  # built by ``pip install`` (pyproject.toml, optional: a missing compiler leaves it out)
    from . import _pairstats
except ImportError:  # pragma: no cover - depends on the install
    _pairstats = None

#: set to any non-empty value to use the onnxruntime statistics graph even where the extension is built
FORCE_GRAPH_ENV = "QWB_GRAPH_STATS"


def available() -> bool:
    """Whether the layer statistics can run compiled here (built, and not turned off by ``QWB_GRAPH_STATS``)."""
    return _pairstats is not None and not os.environ.get(FORCE_GRAPH_ENV)


@dataclass(frozen=True)
class PairPlan:
    """How one layer's FP32 tensor and deployed integers line up, decided once on the first batch.

    ``to_source``: the axes to transpose the integers by into the FP32 tensor's source layout (NCHW; None: as
    held). Blocked (``block`` set): the FP32 tensor is NCHWc ``[N, C'/B, H, W, B]`` and ``to_source`` takes the
    integers to NHWC instead. ``keep``: the axes x.x and e.e stay split along (sample, channel), as the graph's."""

    scale: float
    zero_point: int
    to_source: tuple[int, ...] | None
    keep: tuple[int, ...] = ()
    block: int | None = None
    channels: int = 0
    sample_major: bool = False
    bounds: tuple[float, float] = (-math.inf, math.inf)  # the quantization range: values outside are counted


def plain_plan(scale: float, zero_point: int, perm, rank: int, channel_axis: int | None,
               sample_major: bool, bounds: tuple[float, float] = (-math.inf, math.inf)) -> PairPlan:
    """A layer whose FP32 tensor is in its source layout; ``perm``: the layout the integers are held in (None:
    the source's), as ``DeployedLayerTaps.layout_for`` picked it."""
    keep = set()
    if sample_major and rank > 0:
        keep.add(0)
    if channel_axis is not None and channel_axis < rank:
        keep.add(channel_axis)
    to_src = None if perm is None else tuple(int(i) for i in np.argsort(perm))
    return PairPlan(float(scale), int(zero_point), to_src, tuple(sorted(keep)), None, 0, sample_major,
                    (float(bounds[0]), float(bounds[1])))


def blocked_plan(scale: float, zero_point: int, perm, channels: int, block: int, sample_major: bool,
                 bounds: tuple[float, float] = (-math.inf, math.inf)) -> PairPlan:
    """A layer whose FP32 tensor is NCHWc-blocked with ``channels`` real channels; ``perm`` as in ``plain_plan``."""
    nhwc = (0, 2, 3, 1)
    r = nhwc if perm is None else tuple(int(np.argsort(perm)[k]) for k in nhwc)
    return PairPlan(float(scale), int(zero_point), r, (), int(block), int(channels), sample_major,
                    (float(bounds[0]), float(bounds[1])))


def _split_last(a: np.ndarray, parts: int, size: int) -> np.ndarray:
    """``a``'s last axis split into ``[parts, size]`` as a view (any strides)."""
    s = a.strides
    return as_strided(a, a.shape[:-1] + (parts, size), s[:-1] + (s[-1] * size, s[-1]), writeable=False)


def _group(shape: tuple, keep: tuple) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the sums' shape, each axis's step in their flat index): row-major over the kept axes, 0 elsewhere."""
    out = tuple(shape[a] for a in keep)
    steps = [0] * len(shape)
    step = 1
    for a in reversed(keep):
        steps[a] = step
        step *= shape[a]
    return out, tuple(steps)


#: pixels from which a blocked tensor is walked block by block (below: pixel by pixel, all channels at once) where
#: the AVX2 block kernel does not take its blocks (``_block_kernel``)
BLOCK_WALK_PIXELS = 128


def _block_kernel(block: int) -> bool:
    """Whether blocks of ``block`` channels run the AVX2 block kernel here: then they are walked block by block at
    any size (on a 224-px MobileNetV2's 7 x 7 maps 1.6 against 3.7 ns per value pixel by pixel)."""
    return block in (8, 16) and _pairstats is not None and _pairstats.block8()


def _views(plan: PairPlan, x: np.ndarray, minus: np.ndarray | None, q: np.ndarray) -> tuple[list, tuple]:
    """([(x view, minus view or None, integers view, group steps, group offset)], the sums' shape of one batch)."""
    if plan.block is None:
        qs = q if plan.to_source is None else q.transpose(plan.to_source)
        if x.ndim == 0:
            x, qs = x.reshape(1), qs.reshape(1)
            minus = None if minus is None else minus.reshape(1)
        if qs.shape != x.shape or (minus is not None and minus.shape != x.shape):
            raise ValueError(f"deployed integers {q.shape} do not fit the FP32 tensor {x.shape}")
        shape, steps = _group(x.shape, plan.keep)
        return [(x, minus, qs, steps, 0)], shape
    n, cb, h, w, b = x.shape
    qn = q.transpose(plan.to_source)  # NHWC
    if b != plan.block or qn.shape != (n, h, w, plan.channels):
        raise ValueError(f"deployed integers {q.shape} do not fit the blocked FP32 tensor {x.shape}")
    shape = (n, cb, b) if plan.sample_major else (cb, b)
    if h * w >= BLOCK_WALK_PIXELS or _block_kernel(b):
        # walked [N, blocks, H, W, B]: the FP32 tensor in its own order, the integers read a pixel's B channels at
        # a time; without the block kernel, on a 224-px MobileNetV2 1.45 against 2.0 ns per value at 56 x 56 x 144,
        # 3.9 against 3.5 at 7 x 7 x 960 (where a block is too few rows for the packed rows' overhead)
        steps = (cb * b if plan.sample_major else 0, b, 0, 0, 1)
        full, rest = divmod(plan.channels, b)

        def blocks(a, lo, hi):  # [N, blocks, H, W, B] as held
            return None if a is None else a[:, lo:hi]

        def qblocks(lo, hi, width):  # the integers walked in the same order: [N, blocks, H, W, B]
            return _split_last(qn[..., lo * b:lo * b + (hi - lo) * width], hi - lo, width).transpose(0, 3, 1, 2, 4)

        parts = []
        if full:
            parts.append((blocks(x, 0, full), blocks(minus, 0, full), qblocks(0, full, b), steps, 0))
        if rest:
            mt = None if minus is None else blocks(minus, full, full + 1)[..., :rest]
            parts.append((blocks(x, full, full + 1)[..., :rest], mt, qblocks(full, full + 1, rest), steps, full * b))
        return parts, shape
    # walked [N, H, W, blocks, B]: one pixel's channels at a time, so the channels-last integers are read in order
    steps = (cb * b if plan.sample_major else 0, 0, 0, b, 1)
    full, rest = divmod(plan.channels, b)

    def pixels(a, lo, hi):
        return None if a is None else a[:, lo:hi].transpose(0, 2, 3, 1, 4)

    parts = []
    if full:
        parts.append((pixels(x, 0, full), pixels(minus, 0, full), _split_last(qn[..., :full * b], full, b), steps, 0))
    if rest:  # the last block's real channels (its padding is left out)
        mt = None if minus is None else pixels(minus, full, full + 1)[..., :rest]
        parts.append((pixels(x, full, full + 1)[..., :rest], mt, _split_last(qn[..., full * b:], 1, rest), steps,
                      full * b))
    return parts, shape


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _merged(shape: tuple, strides: list, steps: tuple) -> tuple[tuple, list, tuple]:
    """The same walk over fewer dimensions: dimensions of size 1 dropped, and a dimension merged into the one before
    it where every operand and the group step continue evenly (longer rows for the kernel's loops)."""
    dims = [(n, [s[d] for s in strides], steps[d]) for d, n in enumerate(shape) if n != 1] or [(1, [0] * len(strides), 0)]
    out = [dims[0]]
    for n, st, g in dims[1:]:
        pn, pst, pg = out[-1]
        if pg == g * n and all(a == b * n for a, b in zip(pst, st)):
            out[-1] = (pn * n, st, g)
        else:
            out.append((n, st, g))
    return (tuple(n for n, _, _ in out), [tuple(st[k] for _, st, _ in out) for k in range(len(strides))],
            tuple(g for _, _, g in out))


def _geometry(plan: PairPlan, x: np.ndarray, minus: np.ndarray | None, q: np.ndarray) -> tuple[list, tuple]:
    """The parts' geometry (shape, byte strides and offsets into the C-contiguous ``x``, ``minus`` and ``q``, group
    steps and offset) and the sums' shape of one batch: what ``pair_stats`` walks."""
    parts, shape = _views(plan, x, minus, q)
    geo = []
    for xv, mv, qv, steps, goff in parts:
        views = [xv, qv] + ([] if mv is None else [mv])
        dims, strides, steps = _merged(xv.shape, [v.strides for v in views], steps)
        geo.append((dims, strides[0], _address(xv) - _address(x),
                    None if mv is None else strides[2], 0 if mv is None else _address(mv) - _address(minus),
                    strides[1], _address(qv) - _address(q), steps, goff))
    return geo, shape


class _Sums:
    """The float64 sums of up to ``slots`` batches of one layer, and their totals."""

    def __init__(self, shape: tuple, slots: int, per_slot: int):
        self.xx, self.ee = np.zeros(shape), np.zeros(shape)
        self.slots, self.per_slot, self.rows = slots, per_slot, []  # (first row, rows) each batch wrote
        self.yy = self.esum = 0.0
        self.emax, self.emin, self.nan, self.outside, self.values, self.done = -math.inf, math.inf, False, 0, 0, 0


class LayerStats:
    """One layer's compiled statistics over a run: each batch's call (``job``, on the caller's thread) writes its
    x.x and e.e rows into a buffer shared by ``slots`` batches, so the caller folds them into its accumulators once
    per ``slots`` batches instead of once per batch (layers without per-sample rows: every batch)."""

    def __init__(self, plan: PairPlan, slots: int = 16):
        self.plan = plan
        self.slots = slots if plan.sample_major else 1
        self._geo: dict = {}
        self._sums: _Sums | None = None
        self._next = 0  # the slot of the next batch in the current buffer
        self._ready: list[tuple] = []  # buffers closed early (a larger batch came), folded, not yet handed over

    def job(self, x: np.ndarray, minus: np.ndarray | None, q: np.ndarray) -> tuple:
        """This batch's call of ``run``: ``x`` (and ``minus``) as fetched (blocked plans: viewed ``[N, C'/B, H, W,
        B]``), ``q`` the deployed integers as fetched."""
        x, q = np.ascontiguousarray(x), np.ascontiguousarray(q)
        minus = None if minus is None else np.ascontiguousarray(minus)
        key = (x.shape, None if minus is None else minus.shape, q.shape, q.dtype.str)
        if key not in self._geo:
            self._geo[key] = _geometry(self.plan, x, minus, q)
        geo, shape = self._geo[key]
        rows = shape[0] if self.plan.sample_major else 0
        s = self._sums
        if s is not None and (self._next == s.slots or rows > s.per_slot):
            if self._next < s.slots:  # a larger batch: this buffer ends with the batches already in it
                s.slots = self._next
                if s.done == s.slots:
                    self._ready.append(self._fold(s))
            s = None
        if s is None:
            s = self._sums = _Sums(((rows * self.slots,) + shape[1:]) if rows else shape, self.slots, rows)
            self._next = 0
        first = s.per_slot * self._next
        step = math.prod(shape[1:]) if rows else 0
        calls = [g[:8] + (g[8] + first * step,) for g in geo]
        s.rows.append((first, rows))
        self._next += 1
        p = self.plan
        return (x, minus, q, calls, p.scale, p.zero_point, p.bounds[0], p.bounds[1], s)

    @staticmethod
    def run(job: tuple) -> tuple:
        """The compiled passes of one ``job``: (y.y, max e, min e, sum e, values outside the bounds). No numpy, so
        it may run in a worker thread."""
        x, minus, q, calls, scale, zp, lo, hi, s = job
        yy = es = 0.0
        emax, emin, nan, outside = -math.inf, math.inf, False, 0
        for geo in calls:
            a, top, bottom, e, n = _pairstats.pair_stats(x, minus, q, geo, scale, zp, lo, hi, s.xx, s.ee)
            yy += a
            es += e
            outside += n
            nan = nan or top != top
            emax, emin = max(emax, top), min(emin, bottom)
        return yy, (math.nan if nan else emax), (math.nan if nan else emin), es, outside

    def add(self, job: tuple, totals: tuple, values: int) -> list[tuple]:
        """``run``'s totals of ``job`` (whose ``values`` were compared); the folded sums of its buffer once every
        batch writing into it is added: [(x.x, e.e, y.y, max e, min e, sum e, values outside, values)]."""
        s = job[-1]
        yy, emax, emin, es, outside = totals
        s.yy += yy
        s.esum += es
        s.nan = s.nan or emax != emax
        s.emax, s.emin = max(s.emax, emax), min(s.emin, emin)
        s.outside += outside
        s.values += values
        s.done += 1
        out, self._ready = self._ready, []
        return out + ([self._fold(s)] if s.done == s.slots else [])

    def finish(self) -> list[tuple]:
        """The sums of the last, partly filled buffer (as ``add`` returns them)."""
        s, self._sums = self._sums, None
        out, self._ready = self._ready, []
        return out + ([self._fold(s)] if s is not None and s.done and s.done < s.slots else [])

    def _fold(self, s: _Sums) -> tuple:
        xx, ee = s.xx, s.ee
        if s.rows and s.rows[0][1]:  # per-sample rows: only those written, in order
            end = s.rows[-1][0] + s.rows[-1][1]
            if all(a + n == b for (a, n), (b, _) in zip(s.rows, s.rows[1:])):
                xx, ee = xx[:end], ee[:end]
            else:
                xx = np.concatenate([xx[a:a + n] for a, n in s.rows])
                ee = np.concatenate([ee[a:a + n] for a, n in s.rows])
        nan = s.nan
        return (xx, ee, s.yy, math.nan if nan else s.emax, math.nan if nan else s.emin, s.esum, s.outside, s.values)


def run_once(plan: PairPlan, x: np.ndarray, minus: np.ndarray | None, q: np.ndarray) -> tuple:
    """One batch's statistics on their own: (x.x, e.e, y.y, max e, min e, sum e, values outside the bounds)."""
    ls = LayerStats(plan, slots=1)
    job = ls.job(x, minus, q)
    out = ls.add(job, LayerStats.run(job), 0)[0]
    return out[:7]


def numpy_pair(plan: PairPlan, x: np.ndarray, y: np.ndarray) -> tuple:
    """``run_once`` for a plain plan in numpy (float64): tensors the kernel does not take (float16/64 models)."""
    if y.dtype.kind in "iu":  # integers fetched in place of their DequantizeLinear (``diff_graph.integer_fetch``)
        y = (y.astype(np.int32) - np.int32(plan.zero_point)).astype(np.float32) * np.float32(plan.scale)
    xv, yv = np.asarray(x, np.float64), np.asarray(y, np.float64)
    e = yv - xv
    axes = tuple(a for a in range(xv.ndim) if a not in plan.keep)
    lo, hi = plan.bounds
    with np.errstate(invalid="ignore"):
        outside = int(np.count_nonzero(xv > hi) + np.count_nonzero(xv < lo))
    return ((xv * xv).sum(axes), (e * e).sum(axes), float((yv * yv).sum()), float(e.max()) if e.size else -math.inf,
            float(e.min()) if e.size else math.inf, float(e.sum()), outside)

