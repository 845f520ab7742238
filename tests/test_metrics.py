"""Each metric against a value computed by hand, and the streaming accumulator against the definitions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analyzers.metrics import (
    ErrorAccumulator,
    Reservoir,
    channel_sqnr,
    cosine,
    max_abs,
    mean_error,
    mse,
    sqnr_db,
)
from workbench.formatting import fmt_bytes

X = np.array([1.0, -2.0, 3.0, 0.0], np.float32)
Y = np.array([1.5, -2.0, 2.0, 0.5], np.float32)
# errors: 0.5, 0, -1, 0.5 -> sum e^2 = 1.5; sum x^2 = 14


def test_sqnr_by_hand():
    assert sqnr_db(X, Y) == pytest.approx(10 * math.log10(14 / 1.5))
    assert sqnr_db(X, X) == math.inf


def test_mse_by_hand():
    assert mse(X, Y) == pytest.approx(1.5 / 4)


def test_cosine_by_hand():
    # x.y = 1.5 + 4 + 6 + 0 = 11.5; |y|^2 = 2.25 + 4 + 4 + 0.25 = 10.5
    assert cosine(X, Y) == pytest.approx(11.5 / math.sqrt(14 * 10.5))


def test_max_abs_and_mean_error_by_hand():
    assert max_abs(X, Y) == pytest.approx(1.0)
    assert mean_error(X, Y) == pytest.approx((0.5 + 0 - 1 + 0.5) / 4)


def test_accumulator_streams_to_the_same_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4, 3, 3)).astype(np.float32)
    y = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    acc = ErrorAccumulator(channel_axis=1)
    for i in range(0, 10, 3):  # uneven batches
        acc.update(x[i:i + 3], y[i:i + 3])
    m = acc.result()
    assert m.sqnr_db == pytest.approx(sqnr_db(x, y), abs=1e-6)
    assert m.mse == pytest.approx(mse(x, y), rel=1e-6)
    assert m.cosine == pytest.approx(cosine(x, y), rel=1e-6)
    assert m.max_abs == pytest.approx(max_abs(x, y), rel=1e-6)
    assert m.mean_error == pytest.approx(mean_error(x, y), rel=1e-5, abs=1e-9)
    per_channel = [sqnr_db(x[:, c], y[:, c]) for c in range(4)]
    assert m.channel_sqnr_mean == pytest.approx(np.mean(per_channel), abs=1e-6)
    assert m.channel_sqnr_min == pytest.approx(min(per_channel), abs=1e-6)
    per_sample = acc.sample_sqnr()
    assert per_sample.shape == (10,)
    assert per_sample[4] == pytest.approx(sqnr_db(x[4], y[4]), abs=1e-4)


def test_sqnr_is_power_weighted_not_a_mean_of_sample_db():
    x = np.array([[10.0, 10.0], [0.1, 0.1]], np.float32)
    y = x + np.float32(0.01)
    acc = ErrorAccumulator(None)
    acc.update(x, y)
    assert acc.result().sqnr_db == pytest.approx(sqnr_db(x, y))
    assert acc.result().sqnr_db != pytest.approx(float(np.mean(acc.sample_sqnr())), abs=1.0)


def test_dominant_channel_hides_damage_that_per_channel_sqnr_shows():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 4, 8)).astype(np.float32)
    x[:, 0] *= 8
    y = x.copy()
    y[:, 1:] += 0.1 * rng.standard_normal((64, 3, 8)).astype(np.float32)  # damage only the small channels
    y[:, 0] += 0.05 * rng.standard_normal((64, 8)).astype(np.float32)
    acc = ErrorAccumulator(channel_axis=1)
    acc.update(x, y)
    m = acc.result()
    assert m.sqnr_db - m.channel_sqnr_mean > 5


def test_reservoir_is_uniform_over_batches():
    r = Reservoir(1000, seed=0)
    for k in range(10):  # batch k holds values equal to k
        v = np.full(5000, k, np.float32)
        r.update(v, v)
    counts = np.bincount(r.x.astype(int), minlength=10)
    assert r.x.size == 1000 and counts.min() > 50 and counts.max() < 150


def test_fmt_bytes_is_one_format_for_console_and_report():
    assert [fmt_bytes(n) for n in (0, 1023, 1536, 3 * 2**20, 5 * 2**30, None)] == \
        ["0 B", "1023 B", "1.5 KB", "3.0 MB", "5.0 GB", "–"]


def test_dead_and_exact_channels_are_counted_not_averaged():
    """The one per-channel rule: a channel without signal (dead) or without error (exact, values on the grid)
    has no finite SQNR; it is left out of the channel mean/min and counted. The tensor SQNR keeps every element."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 10))
    x[:, 0] = 0.0  # dead channel
    y = x + rng.standard_normal(x.shape) * 0.01
    y[:, 0] = 0.0
    y[:, 1] = x[:, 1]  # exact channel
    y[:, 3] = x[:, 3] + rng.standard_normal((6, 10)) * 0.1  # a noisier one
    acc = ErrorAccumulator(channel_axis=1)
    acc.update(x.astype(np.float32), y.astype(np.float32))
    m = acc.result()
    xs, ys = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
    per = [10 * np.log10((xs[:, c] ** 2).sum() / ((ys[:, c] - xs[:, c]) ** 2).sum()) for c in (2, 3)]
    assert (m.channels_dead, m.channels_exact) == (1, 1)
    assert m.channel_sqnr_mean == pytest.approx(np.mean(per), abs=1e-6)
    assert m.channel_sqnr_min == pytest.approx(min(per), abs=1e-6)
    assert m.sqnr_db == pytest.approx(sqnr_db(xs, ys), abs=1e-6)
    d = m.to_dict()
    assert (d["channels_dead"], d["channels_exact"]) == (1, 1) and json.dumps(d, allow_nan=False)
    ch = channel_sqnr(np.array([0.0, 4.0, 4.0]), np.array([0.0, 0.0, 0.04]))
    assert np.isnan(ch.db[:2]).all() and ch.db[2] == pytest.approx(20.0) and (ch.dead, ch.exact) == (1, 1)
