"""Hostile and broken inputs (issue 13): models, data, recipes, caches and reports a user can get wrong.

Each case runs ``qwb`` as a user would (or the API where no process is needed) and asserts the contract of
``workbench.errors``: no traceback, no "internal error", exit code 2 with one ``error:`` line and one ``fix:``
line, and a message that names the file or the key at fault.
"""

from __future__ import annotations

import json
import struct
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.cli_util import qwb
from tests.models import conv_net, conv_net_data, save, save_npz
from workbench.data import open_data
from workbench.errors import WorkbenchError
from workbench.graph import TensorInfo
from workbench.model_prep import prepare_model
from workbench.recipe import Recipe
from workbench.report.render_md import render_markdown


def assert_user_error(r, *names: str) -> None:
    """Exit 2, exactly one error: and one fix: line, no traceback, and every one of ``names`` in the message."""
    err = r.stderr
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], err[-2000:])
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    fixes = [ln for ln in lines if ln.strip().startswith("fix: ")]
    assert len(errors) == 1 and len(fixes) == 1, err
    for n in names:
        assert n in errors[0], (n, errors[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    save(conv_net(), d / "m.onnx")
    save_npz(d / "c.npz", **conv_net_data(8))
    (d / "plain_file").write_text("not a folder")
    return d


def quantize(files, *args, model="m.onnx", calib="c.npz", out="out/q.onnx"):
    return qwb("quantize", str(files / model) if "/" not in model and ":" not in model else model,
               "--calib", calib if calib.startswith("synthetic") or "/" in calib else str(files / calib),
               "-o", out if out.startswith("/") else str(files / out), *args, cwd=files)


# -- models ---------------------------------------------------------------------------------------------------------
def test_opset_newer_than_onnxruntime(files):
    m = conv_net()
    m.opset_import[0].version = 99
    save(m, files / "opset99.onnx")
    assert_user_error(quantize(files, model="opset99.onnx"), "opset99.onnx", "opset 99")


def _custom_op_model(domain: str, op: str) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    g = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain, name="n")], "g", [x], [y])
    imports = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=imports)


@pytest.mark.parametrize("domain,op", [("com.evil", "Frobnicate"), ("com.microsoft", "NoSuchContribOp")])
def test_operator_onnxruntime_cannot_run(files, domain, op):
    save(_custom_op_model(domain, op), files / f"{op}.onnx")
    assert_user_error(quantize(files, model=f"{op}.onnx"), f"{op}.onnx", op)


def test_factory_that_raises(files):
    (files / "badfactory.py").write_text("def make():\n    raise RuntimeError('boom from the factory')\n")
    r = qwb("quantize", "badfactory:make", "--calib", str(files / "c.npz"), "-o", str(files / "o.onnx"),
            "--trust-model-code", cwd=files)
    if "PyTorch is not installed" in r.stderr:
        pytest.skip("the factory route needs torch")
    assert_user_error(r, "badfactory:make", "boom from the factory")


def test_model_that_is_a_data_file(files):
    assert_user_error(quantize(files, model="c.npz"), "c.npz")


def test_model_that_is_empty(files):
    (files / "empty.onnx").write_bytes(b"")
    assert_user_error(quantize(files, model="empty.onnx"), "empty.onnx")


# -- data -----------------------------------------------------------------------------------------------------------
def test_synthetic_count_too_large_for_memory(files):
    r = quantize(files, calib="synthetic:2000000000")
    assert_user_error(r, "synthetic:2000000000", "GiB")


def _npz_with_header(path, shape, payload: bytes = b"\0" * 1024, descr="<f4"):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    hdr += " " * (63 - (len(hdr) + 10) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + payload
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", npy)
    return path


def test_npz_header_claiming_2_to_the_40_rows(files):
    _npz_with_header(files / "huge.npz", (2**40, 3, 8, 8))
    assert_user_error(quantize(files, calib="huge.npz"), "huge.npz", "x.npy")


def test_npz_that_is_random_bytes(files):
    (files / "noise.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    assert_user_error(quantize(files, calib="noise.npz"), "noise.npz")


def test_npz_truncated(files):
    raw = (files / "c.npz").read_bytes()
    (files / "cut.npz").write_bytes(raw[: len(raw) // 2])
    assert_user_error(quantize(files, calib="cut.npz"), "cut.npz")


def test_npz_holding_pickled_objects(files):
    np.savez(files / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    assert_user_error(quantize(files, calib="objects.npz"), "objects.npz")


def test_npz_with_wrong_input_name(files):
    save_npz(files / "wrongname.npz", image=conv_net_data(4)["x"])
    assert_user_error(quantize(files, calib="wrongname.npz"), "wrongname.npz", "x")


def test_npz_with_wrong_dtype(files):
    save_npz(files / "f64.npz", x=conv_net_data(4)["x"].astype(np.float64))
    assert_user_error(quantize(files, calib="f64.npz"), "f64.npz", "float64")


def test_npz_with_no_samples(files):
    save_npz(files / "zero.npz", x=np.zeros((0, 3, 8, 8), np.float32))
    assert_user_error(quantize(files, calib="zero.npz"), "zero.npz")


def test_nan_and_inf_in_calibration_data_are_counted_and_warned_about(files):
    d = conv_net_data(8)
    d["x"][0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    save_npz(files / "nan.npz", **d)
    r = quantize(files, calib="nan.npz", out="out/nan.onnx")
    assert r.returncode == 0, r.stderr
    warn = [ln for ln in r.stderr.splitlines() if "NaN or infinite" in ln]
    assert len(warn) == 1 and "nan.npz" in warn[0] and "'x': 3" in warn[0], r.stderr


def test_npz_rows_checked_against_file_size_through_the_api(tmp_path):
    _npz_with_header(tmp_path / "h.npz", (1000, 3, 8, 8), payload=b"\0" * 100)
    with pytest.raises(WorkbenchError, match="h.npz"):
        open_data(tmp_path / "h.npz", [TensorInfo("x", (None, 3, 8, 8), "float32")])


# -- recipes --------------------------------------------------------------------------------------------------------
RECIPES = {
    "version_negative": ("version = -1\n", "version"),
    "version_bool": ("version = true\n", "version"),
    "version_string": ('version = "1"\n', "version"),
    "version_future": ("version = 7\n", "version 7"),
    "layers_int": ("version = 1\nlayers = 5\n", "layers"),
    "outputs_list": ("version = 1\noutputs = [1]\n", "outputs"),
    "global_string": ('version = 1\nglobal = "fast"\n', "global"),
    "exclude_int": ("exclude = 5\n", "exclude"),
    "mean_empty": ("version = 1\n[preprocess]\nmean = []\n", "preprocess.mean"),
    "resize_string": ('version = 1\n[preprocess]\nresize = "big"\n', "resize"),
    "resize_negative": ("version = 1\n[preprocess]\nresize = -3\n", "preprocess.resize"),
    "std_strings": ('version = 1\n[preprocess]\nstd = ["a"]\n', "std"),
    "per_channel_string": ('version = 1\n[global]\nper_channel = "yes"\n', "per_channel"),
    "percentile_string": ('version = 1\n[global]\npercentile = "99"\n', "percentile"),
    "percentile_nan": ("version = 1\n[global]\npercentile = nan\n", "percentile"),
    "op_types_unknown": ('version = 1\n[global]\nop_types = ["NoSuchOp"]\n', "NoSuchOp"),
    "op_types_string": ('version = 1\n[global]\nop_types = "Conv"\n', "op_types"),
    "precision_int": ('version = 1\n[layers.conv1]\nprecision = 8\n', "precision"),
    "unknown_key": ("version = 1\n[global]\nactivation = \"u8\"\n", "activation"),
    "not_toml": ("version = = 1\n", "not valid TOML"),
    "blank_negative": ('version = 1\n[outputs.y]\nblank = -1\n', "blank"),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_refused_naming_file_and_key(tmp_path, name):
    text, key = RECIPES[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    with pytest.raises(WorkbenchError) as e:
        Recipe.load(path)
    assert key in e.value.message and name in e.value.message, e.value.message


def test_op_types_typo_gets_did_you_mean():
    with pytest.raises(WorkbenchError, match="did you mean 'Conv'"):
        Recipe.loads('version = 1\n[global]\nop_types = ["conv"]\n')


@pytest.mark.parametrize("name", ["version_negative", "layers_int", "mean_empty", "resize_string"])
def test_recipe_refused_on_the_command_line(files, name):
    text, key = RECIPES[name]
    (files / f"{name}.toml").write_text(text)
    assert_user_error(quantize(files, "--recipe", str(files / f"{name}.toml")), f"{name}.toml", key)


# -- caches and paths -----------------------------------------------------------------------------------------------
def test_cache_dir_that_is_a_file(files):
    r = qwb("quantize", str(files / "m.onnx"), "--calib", str(files / "c.npz"), "-o", str(files / "o.onnx"),
            cwd=files, env={"QWB_CACHE_DIR": str(files / "plain_file")})
    assert_user_error(r, "plain_file", "not a folder")


def test_output_under_a_file(files):
    assert_user_error(quantize(files, out=str(files / "plain_file" / "q.onnx")), "plain_file")


def test_output_in_proc(files):
    assert_user_error(quantize(files, out="/proc/qwb-test.onnx"), "/proc/qwb-test.onnx")


def test_truncated_prepared_model_in_the_cache_is_rebuilt(tmp_path, cache_dir):
    save(conv_net(), tmp_path / "m.onnx")
    first = prepare_model(tmp_path / "m.onnx")
    first.path.write_bytes(first.path.read_bytes()[:300])
    again = prepare_model(tmp_path / "m.onnx")
    assert any("damaged" in n and "rebuilt" in n for n in again.notes), again.notes
    assert onnx.load(str(again.path)).graph.node  # readable again
    assert not any("damaged" in n for n in prepare_model(tmp_path / "m.onnx").notes)


def test_histogram_cache_with_nan_statistics_is_rebuilt(files, tmp_path):
    env_cache = tmp_path / "cache"
    r = _with_cache(files, env_cache)
    assert r.returncode == 0, r.stderr
    (cached,) = (env_cache / "calib").glob("*.npz")
    arrays = dict(np.load(cached))
    arrays["stats"][:] = np.nan
    np.savez_compressed(cached.with_suffix(""), **arrays)
    r = _with_cache(files, env_cache)
    assert r.returncode == 0, r.stderr
    assert sum("calibration cache" in ln and "damaged" in ln for ln in r.stderr.splitlines()) == 1, r.stderr
    assert "loaded from cache" in _with_cache(files, env_cache).stdout  # the rebuilt file is trusted again


def _with_cache(files, cache):
    return qwb("calib", str(files / "m.onnx"), "--calib", str(files / "c.npz"), cwd=files,
               env={"QWB_CACHE_DIR": str(cache)})


# -- reports --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report_json(files):
    r = qwb("report", str(files / "m.onnx"), "--calib", str(files / "c.npz"), "--eval", str(files / "c.npz"),
            "-o", str(files / "good.json"), cwd=files)
    assert r.returncode == 0, r.stderr
    return json.loads((files / "good.json").read_text())


def _report_from(files, name, doc_or_text):
    p = files / f"{name}.json"
    p.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return qwb("report", "--from", str(p), "-o", str(files / "out" / f"{name}.html"), cwd=files)


def test_report_with_no_runs(files, report_json):
    assert_user_error(_report_from(files, "noruns", dict(report_json, runs=[])), "noruns.json", "runs")


def test_report_nested_100000_deep(files):
    text = '{"kind": "qwb-report", "format": 1, "runs": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert_user_error(_report_from(files, "deep", text), "deep.json", "nested")


def test_report_with_comparison_out_of_range(files, report_json):
    doc = dict(report_json, comparison={"before": 0, "after": 9})
    assert_user_error(_report_from(files, "badcmp", doc), "badcmp.json", "comparison")


def test_report_with_runs_of_the_wrong_type(files, report_json):
    assert_user_error(_report_from(files, "strruns", dict(report_json, runs="abc")), "strruns.json")


def test_report_that_is_a_list(files):
    assert_user_error(_report_from(files, "alist", "[1, 2]"), "alist.json")


def test_report_that_is_not_json(files):
    assert_user_error(_report_from(files, "garbage", "{not json"), "garbage.json")


def test_markdown_code_fence_escapes_direction_overrides(report_json):
    doc = json.loads(json.dumps(report_json))
    for k in ("command", "rerun_command"):  # the Markdown prints the rerun command when the report has one
        doc["reproduce"][k] = "qwb quantize gnp.\u202eexe.onnx\u2066x\u2069"
    md = render_markdown(doc)
    assert not any(ch in md for ch in "\u202e\u2066\u2069"), md
    assert "\\u202e" in md
