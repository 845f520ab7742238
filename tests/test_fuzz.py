"""Property-based fuzzing of the readers and renderers (issue 13), bounded to run in well under a minute.

Whatever a recipe, project or .npz file holds, reading it either works or raises a ``WorkbenchError``;
whatever strings a report carries, its HTML parses, holds no script and no raw direction override, and its
Markdown holds no raw direction override either.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.models import conv_net, conv_net_data, save, save_npz
from tests.report_util import Page
from workbench.app.project import load_project
from workbench.data import open_data
from workbench.errors import WorkbenchError
from workbench.graph import TensorInfo
from workbench.recipe import Recipe
from workbench.report import build_report, render_html, render_markdown
from workbench.session import Session

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
HOSTILE = st.lists(st.sampled_from(list("<>&\"'`|*_[]()#!\\/ \n\tascript=:") + list(BIDI)
                                   + ["\x00", "\x07", "\ud800", "名", "🙂", "<script>", "javascript:", "]]>"]),
                   max_size=20).map("".join)
KEYS = st.sampled_from(["version", "global", "preprocess", "layers", "outputs", "exclude", "settings",
                        "activation_type", "weight_type", "per_channel", "percentile", "op_types", "precision",
                        "mean", "std", "resize", "center_crop", "scale", "kind", "blank", "layout", "conv1", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["u8", "s8", "fp32", "int16", "Conv", "NCHW", "RGB"]))
TOMLISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(KEYS, inner, max_size=5)), max_leaves=20)


def _drop_none(x):
    """TOML has no null: what a TOML file can hold is a dict without None values."""
    if isinstance(x, dict):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_drop_none(v) for v in x if v is not None]
    return x


@FUZZ
@given(st.dictionaries(KEYS, TOMLISH, max_size=6))
def test_recipe_reader_gives_a_recipe_or_a_workbench_error(d):
    try:
        r = Recipe.from_dict(_drop_none(d), "fuzz.toml")
    except WorkbenchError:
        return
    assert Recipe.loads(r.dumps()).to_dict() == r.to_dict()  # a recipe it accepts also round-trips


@FUZZ
@given(st.text(max_size=200))
def test_recipe_text_gives_a_recipe_or_a_workbench_error(text):
    try:
        Recipe.loads(text, "fuzz.toml")
    except WorkbenchError:
        pass


PROJECT_KEYS = st.sampled_from(["kind", "version", "model", "calib", "eval", "recipe", "runs", "benchmarks",
                                "current_run", "baseline_run", "selection", "saved", "path", "relative",
                                "label", "result", "backend", "created"])
JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=False),
                                 st.text(max_size=8), st.just("quant-workbench-project")),
                       lambda inner: st.one_of(st.lists(inner, max_size=3),
                                               st.dictionaries(PROJECT_KEYS, inner, max_size=5)), max_leaves=25)


@FUZZ
@given(st.dictionaries(PROJECT_KEYS, JSONISH, max_size=8), st.booleans())
def test_project_reader_gives_a_project_or_a_workbench_error(tmp_path, d, as_project):
    if as_project:
        d = dict(d, kind="quant-workbench-project", version=1)
    p = tmp_path / "fuzz.qwbproj"
    p.write_text(json.dumps(d))
    try:
        load_project(p)
    except WorkbenchError:
        pass


@FUZZ
@given(st.binary(max_size=600))
def test_project_reader_on_random_bytes(tmp_path, raw):
    p = tmp_path / "bytes.qwbproj"
    p.write_bytes(raw)
    try:
        load_project(p)
    except WorkbenchError:
        pass


INPUT = [TensorInfo("x", ("N", 3, 8, 8), "float32")]


def _open(path: Path) -> None:
    try:
        src = open_data(path, INPUT)
    except WorkbenchError:
        return
    for _ in src.batches(batch_size=4):  # every row it claims can be read, or a WorkbenchError says why
        pass


@FUZZ
@given(st.binary(max_size=2000))
def test_npz_reader_on_random_bytes(tmp_path, raw):
    p = tmp_path / "r.npz"
    p.write_bytes(raw)
    _open(p)


@pytest.fixture(scope="module")
def valid_npz_bytes(tmp_path_factory):
    p = save_npz(tmp_path_factory.mktemp("npz") / "v.npz", **conv_net_data(4))
    return p.read_bytes()


@FUZZ
@given(st.data())
def test_npz_reader_on_a_valid_file_with_bytes_changed(tmp_path, valid_npz_bytes, data):
    raw = bytearray(valid_npz_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(raw) // 2, len(raw)))
    p = tmp_path / "m.npz"
    p.write_bytes(bytes(raw[:cut]))
    _open(p)


DESCRS = st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|O", "|b1", "<c8", "V8", "<U4", "xx"])
SHAPES = st.lists(st.one_of(st.integers(-3, 20), st.integers(2**31, 2**62)), max_size=5).map(tuple)


@FUZZ
@given(DESCRS, SHAPES, st.booleans(), st.integers(0, 4000), st.booleans(), st.sampled_from([b"\x01\x00", b"\x02\x00",
                                                                                          b"\x09\x00"]))
def test_npz_reader_on_hostile_headers(tmp_path, descr, shape, fortran, payload, deflate, version):
    hdr = "{'descr': '%s', 'fortran_order': %s, 'shape': %r, }" % (descr, fortran, shape)
    hdr += " " * (63 - (len(hdr) + 10) % 64) + "\n"
    size = struct.pack("<H", len(hdr)) if version != b"\x02\x00" else struct.pack("<I", len(hdr))
    npy = b"\x93NUMPY" + version + size + hdr.encode() + b"\0" * payload
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        z.writestr("x.npy", npy)
    p = tmp_path / "h.npz"
    p.write_bytes(buf.getvalue())
    _open(p)


# -- report renderers -----------------------------------------------------------------------------------------------
TEXT_KEYS = {"title", "node", "name", "source", "command", "label", "recipe_source", "message", "suggestion",
             "op_type", "generator", "output", "int8_tensor", "backend"}


@pytest.fixture(scope="module")
def report_doc():
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        save(conv_net(), d / "m.onnx")
        save_npz(d / "c.npz", **conv_net_data(8))
        recipe = Recipe()
        recipe.set_precision("fc", "fp32")
        s = Session(str(d / "m.onnx"), str(d / "c.npz"), str(d / "c.npz"))
        return build_report(s, compare_recipe=recipe, compare_source="after.toml").to_dict()


def _replace_strings(x, text: str, pick):
    if isinstance(x, dict):
        return {k: (text + str(v) if isinstance(v, str) and k in TEXT_KEYS and pick() else _replace_strings(v, text, pick))
                for k, v in x.items()}
    if isinstance(x, list):
        return [_replace_strings(v, text, pick) for v in x]
    return x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE, st.randoms(use_true_random=False))
def test_report_renderers_on_hostile_strings(report_doc, text, rnd):
    doc = _replace_strings(report_doc, text, lambda: rnd.random() < 0.7)
    page = render_html(doc)
    parsed = Page(page)  # parses as HTML
    assert not any(tag == "script" for tag, _ in parsed.tags)
    assert "<script" not in page.lower()
    md = render_markdown(doc)
    for out in (page, md):
        assert not any(ch in out for ch in BIDI), [hex(ord(c)) for c in BIDI if c in out]
    md.encode("utf-8")  # no lone surrogate
    page.encode("utf-8")
