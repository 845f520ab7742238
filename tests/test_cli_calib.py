"""``qwb calib`` as a user runs it: the table, the JSON, the cache, and one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.cli_util import qwb
from tests.models import conv_net, conv_net_data, save, save_npz


@pytest.fixture
def good(tmp_path):
    return save(conv_net(outlier_channel=8.0), tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **conv_net_data(16))


def _table(stdout):
    lines = stdout.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("tensor"))
    rows = []
    for l in lines[head + 1:]:
        if not l.strip() or l.lstrip().startswith("*"):
            break
        rows.append(l)
    return lines[head], rows


def test_table_and_json(good, tmp_path, cache_dir):
    out = tmp_path / "lab" / "calib.json"
    r = qwb("calib", good[0], "--calib", good[1], "--json", out)
    assert r.returncode == 0, r.stderr
    head, rows = _table(r.stdout)
    for col in ("minmax", "p99.999", "entropy", "mse", "clip%", "best"):
        assert col in head
    names = [row.split()[0] for row in rows]
    assert names == ["x", "c1", "r1", "c2", "r2", "c3", "r3", "gap", "flat", "y"]
    assert "fused" in rows[1] and "r1" in rows[1]  # c1 is quantized with relu1's range
    r2 = rows[names.index("r2")]
    assert r2.split()[-2] in ("minmax", "percentile", "entropy", "mse") and "*0 .. " in r2
    assert "collected" in r.stdout
    d = json.loads(out.read_text())
    assert d["format"] == 1 and [t["name"] for t in d["tensors"]] == names
    t = d["tensors"][names.index("r2")]
    assert set(t["methods"]) == {"minmax", "percentile", "entropy", "mse"}
    assert len(t["histogram"]["edges"]) == len(t["histogram"]["counts"]) + 1
    assert t["methods"]["minmax"]["hi"] == t["max"]
    # reopening: histograms come from the cache and the numbers are identical
    r2nd = qwb("calib", good[0], "--calib", good[1], "--json", tmp_path / "again.json")
    assert r2nd.returncode == 0 and "loaded from cache" in r2nd.stdout
    assert json.loads((tmp_path / "again.json").read_text())["tensors"] == d["tensors"]


def test_recipe_percentile_override_shows_in_the_table(good, tmp_path, cache_dir):
    rec = tmp_path / "r.toml"
    rec.write_text('version = 1\n[global]\ncalibration_method = "mse"\n[layers.conv2]\npercentile = 99.0\n')
    r = qwb("calib", good[0], "--calib", good[1], "--recipe", rec)
    assert r.returncode == 0, r.stderr
    head, rows = _table(r.stdout)
    r2 = next(row for row in rows if row.startswith("r2 "))
    r1 = next(row for row in rows if row.startswith("r1 "))
    assert "method mse" in r.stdout
    # the recipe's method is starred: conv2's override makes r2 a percentile tensor (at its own 99.0) ...
    assert r2.count("*") == 1 and r2[head.index("p99.999") - 1] == "*" and "p99 " in r2 + " "
    # ... while r1 follows the global mse
    assert r1.count("*") == 1 and r1[head.index("mse") - 1] == "*"


def test_demo(tmp_path):
    r = qwb("calib", "--demo")
    assert r.returncode == 0, r.stderr
    assert "best " in r.stdout and "relu" in r.stdout


def _assert_clean_error(r, *fragments):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ")
    assert len(r.stderr.strip().splitlines()) <= 2  # the message and its fix
    for f in fragments:
        assert f in r.stderr, r.stderr


def test_missing_calibration_data(good):
    _assert_clean_error(qwb("calib", good[0]), "--calib")


def test_unwritable_json_path(good, tmp_path, cache_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_clean_error(qwb("calib", good[0], "--calib", good[1], "--json", blocker / "out.json"), "cannot write")


def test_bad_model_and_bad_recipe(good, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    _assert_clean_error(qwb("calib", bad, "--calib", good[1]), str(bad))
    rec = tmp_path / "r.toml"
    rec.write_text('version = 1\n[global]\ncalibration_method = "kl"\n')
    _assert_clean_error(qwb("calib", good[0], "--calib", good[1], "--recipe", rec), "calibration_method")
