"""Hostile inputs, part C: the cases an independent catalog of ~170 hostile inputs found broken, and a
representative set of the ones it found handled.

Each CLI case asserts the user's contract (one ``error:`` line and one ``fix:`` line, exit code 2, no traceback,
no "internal error") and what must not happen: a file outside the named output changed, a marker written by a
payload, a hang, a raw terminal escape sequence.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
from multiprocessing.connection import Client, Listener

import numpy as np
import onnx
import pytest

from tests.cli_util import qwb
from tests.models import conv_net, conv_net_data, save, save_npz
from workbench.app import netron_serve
from workbench.app.project import save_project
from workbench.app.remote import accept_engine
from workbench.app.workspace import Workspace
from workbench.errors import RecipeError, WorkbenchError
from workbench.recipe import Recipe
from workbench.safe_paths import check_outputs, external_data_files


def assert_user_error(r, *words: str) -> None:
    """Exit 2; exactly one error: and one fix: line (anything else only note:/warning: lines); no traceback."""
    err = r.stderr
    assert r.returncode == 2, (r.returncode, r.stdout[-1500:], err[-1500:])
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    fixes = [ln for ln in lines if ln.strip().startswith("fix: ")]
    others = [ln for ln in lines if ln not in errors + fixes and not ln.lower().startswith(("note:", "warning:"))]
    assert len(errors) == 1 and len(fixes) == 1 and not others, err
    for w in words:
        assert w in errors[0], (w, errors[0])


def snapshot(folder) -> dict:
    """Every path under ``folder`` with its content hash (files), link target (links) or kind."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                out[p] = ("link", os.readlink(p))
            elif os.path.isfile(p):
                out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
            else:
                out[p] = "other"
    return out


@pytest.fixture
def work(tmp_path):
    save(conv_net(), tmp_path / "m.onnx")
    save_npz(tmp_path / "c.npz", **conv_net_data(8))
    (tmp_path / "r.toml").write_text('version = 1\n[layers.conv2]\nprecision = "fp32"\n')
    return tmp_path


def _project(path) -> None:
    save_project(Workspace(), path)


# -- the command line itself -----------------------------------------------------------------------------------
@pytest.mark.parametrize("args,word", [
    (["quantize", "m.onnx", "-o", "x.onnx", "--calib"], "--calib"),
    (["--nonsense"], "--nonsense"),
    (["quantize"], "-o/--output"),
    (["analyze", "m.onnx", "--calib", "c.npz", "--rank", "bogus"], "bogus"),
])
def test_argument_errors_are_one_error_and_one_fix_line(work, args, word):
    assert_user_error(qwb(*args, cwd=work), word)


@pytest.mark.parametrize("args,word", [
    (["analyze", "m.onnx", "--calib", "c.npz", "--reservoir", "-1"], "--reservoir"),
    (["analyze", "m.onnx", "--calib", "c.npz", "--top", "-5"], "--top"),
    (["analyze", "m.onnx", "--calib", "c.npz", "--flag-floor", "nan"], "--flag-floor"),
    (["bench", "m.onnx", "--backend", "cpu", "--runs", str(10**18)], "--runs"),
    (["bench", "m.onnx", "--backend", "cpu", "--batch", "1000000000"], "batch"),
    (["bench", "m.onnx", "--backend", "cpu", "--timeout", "nan"], "--timeout"),
    (["bench", "m.onnx", "--backend", "cpu", "--warmup", str(10**15)], "--warmup"),
])
def test_numbers_no_run_can_use_are_refused_before_any_work(work, args, word):
    assert_user_error(qwb(*args, cwd=work, timeout=120), word)


def test_a_batch_too_large_for_memory_is_refused(work):
    m = conv_net()
    for i in (2, 3):
        m.graph.input[0].type.tensor_type.shape.dim[i].dim_value = 512
    save(m, work / "big.onnx")
    # 3 x 512 x 512 float32 = 3 MiB a sample (the pool of 64 fits): a batch of 1,000 would be 2.9 GiB
    r = qwb("bench", "big.onnx", "--backend", "cpu", "--batch", "1000", "--runs", "1", cwd=work)
    assert_user_error(r, "a batch of 1,000 samples", "GiB")


def test_a_path_too_long_for_the_system_is_a_user_error(work):
    assert_user_error(qwb("quantize", "m" * 100_000 + ".onnx", "--calib", "c.npz", "-o", "o.onnx", cwd=work))


# -- names are data: one line, no terminal control -----------------------------------------------------------
def test_a_newline_in_a_model_input_name_cannot_forge_a_fix_line(work):
    m = conv_net()
    bad = "x\nfix: injected line"
    m.graph.input[0].name = bad
    for n in m.graph.node:
        n.input[:] = [bad if i == "x" else i for i in n.input]
    save(m, work / "nl.onnx")
    r = qwb("quantize", "nl.onnx", "--calib", "c.npz", "-o", "o.onnx", cwd=work)
    assert_user_error(r, "\\n")
    assert not [ln for ln in r.stderr.splitlines() if ln.strip().startswith("fix: injected")]


def test_a_newline_in_a_recipe_key_stays_on_the_error_line(work):
    (work / "h.toml").write_text('version = 1\n[layers."a\\nfix: injected"]\nprecision = "fp32"\n')
    assert_user_error(qwb("quantize", "m.onnx", "--calib", "c.npz", "-o", "o.onnx", "--recipe", "h.toml", cwd=work))


def test_terminal_escapes_in_node_names_are_printed_escaped(work):
    m = conv_net()
    m.graph.node[2].name = "conv\x1b]0;retitled\x07\x1b[2J\u202eevil"
    save(m, work / "esc.onnx")
    r = qwb("analyze", "esc.onnx", "--calib", "c.npz", "--no-isolated", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\u202e" not in r.stdout
    assert "conv\\x1b]0;retitled" in r.stdout  # still recognisable


def test_an_ascii_terminal_gets_unicode_paths_escaped_not_an_internal_error(work):
    (work / "ünïcødé 模型.onnx").write_bytes((work / "m.onnx").read_bytes())
    r = qwb("quantize", "ünïcødé 模型.onnx", "--calib", "c.npz", "-o", "o.onnx", "--no-eval", cwd=work,
            env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0, r.stderr
    assert "\\xfcn\\xefc\\xf8d\\xe9" in r.stdout


def test_a_corrupt_pt2_with_trust_is_one_error_without_torch_tracebacks(work):
    pytest.importorskip("torch")
    (work / "rand.pt2").write_bytes(np.random.default_rng(0).bytes(4096))
    assert_user_error(qwb("quantize", "rand.pt2", "--calib", "synthetic:4", "-o", "o.onnx", "--trust-model-code",
                          cwd=work), "rand.pt2")


@pytest.mark.parametrize("text,key", [
    ("version = 1\n[global]\npercentile = inf\n", "percentile"),
    ('version = 1\n[layers.conv1]\nprecision = "int4"\n', "precision"),
    ('version = 1\n[outputs.y]\nkind = "nope"\n', "kind"),
    ('version = 1\n[global]\ncalibration_method = "Entropy"\n', "calibration_method"),
    ("version = 1\n[layers.conv1]\npercentile = 1e999\n", "percentile"),
    ("version = 1\n[global]\nper_channel = 1\n", "per_channel"),
    ("version = 1\n[preprocess]\nstd = [0.0]\n", "std"),
])
def test_every_recipe_error_has_a_fix(text, key):
    with pytest.raises(RecipeError) as e:
        Recipe.loads(text, "h.toml").validate()
    assert key in e.value.message and e.value.fix, (e.value.message, e.value.fix)


def test_a_recipe_choice_error_suggests_the_close_value():
    with pytest.raises(RecipeError) as e:
        Recipe.loads('version = 1\n[global]\ncalibration_method = "Entropy"\n', "h.toml").validate()
    assert '"entropy"' in e.value.fix


# -- outputs: the null device, project files, read-only files, external weights -----------------------------------
def test_json_to_dev_null_is_allowed(work):
    before = snapshot(work)
    r = qwb("analyze", "m.onnx", "--calib", "c.npz", "--no-isolated", "--json", "/dev/null", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "wrote /dev/null" in r.stdout
    assert snapshot(work) == before


def test_quantize_to_dev_null_says_why_not(work):
    assert_user_error(qwb("quantize", "m.onnx", "--calib", "c.npz", "-o", "/dev/null", cwd=work), "read back")


def test_an_empty_output_name_is_refused(work):
    before = snapshot(work)
    assert_user_error(qwb("quantize", "m.onnx", "--calib", "c.npz", "-o", "", cwd=work), "empty")
    assert snapshot(work) == before


@pytest.mark.parametrize("args", [
    ["analyze", "m.onnx", "--calib", "c.npz", "--no-isolated", "--json", "{p}"],
    ["export-exclusions", "m.onnx", "--recipe", "r.toml", "--format", "ort", "-o", "{p}"],
    ["backends", "--json", "{p}"],
    ["calib", "m.onnx", "--calib", "c.npz", "--json", "{p}"],
])
@pytest.mark.parametrize("name", ["p.qwbproj", "renamed-project.json"])
def test_a_project_file_is_never_replaced_silently(work, args, name):
    _project(work / "p.qwbproj")
    if name != "p.qwbproj":
        os.replace(work / "p.qwbproj", work / name)
    before = snapshot(work)
    r = qwb(*[a.format(p=name) for a in args], cwd=work)
    assert_user_error(r, name, "project")
    assert "--force" in r.stderr
    assert snapshot(work) == before


def test_force_replaces_a_project_file(work):
    _project(work / "p.qwbproj")
    r = qwb("analyze", "m.onnx", "--calib", "c.npz", "--no-isolated", "--json", "p.qwbproj", "--force", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "layers" in json.loads((work / "p.qwbproj").read_text())


def test_saving_a_project_never_touches_a_file_called_like_its_temporary(tmp_path):
    (tmp_path / "p.qwbproj.tmp").write_text("an unrelated file")
    save_project(Workspace(), tmp_path / "p.qwbproj")
    assert (tmp_path / "p.qwbproj.tmp").read_text() == "an unrelated file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.qwbproj", "p.qwbproj.tmp"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file: read-only means nothing to it")
def test_a_read_only_output_is_refused(work):
    (work / "ro.onnx").write_text("keep me")
    os.chmod(work / "ro.onnx", 0o444)
    assert_user_error(qwb("quantize", "m.onnx", "--calib", "c.npz", "-o", "ro.onnx", cwd=work), "read-only")
    assert (work / "ro.onnx").read_text() == "keep me"


def test_read_only_check_in_the_api(work, monkeypatch):
    """Under root (CI) the command cannot show it; the check itself refuses what os.access calls read-only."""
    (work / "ro.onnx").write_text("keep me")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("ro.onnx") else real(p, mode))
    with pytest.raises(WorkbenchError, match="read-only"):
        check_outputs([work / "ro.onnx"], [("model", work / "m.onnx")])


def _external(work, location):
    onnx.save_model(conv_net(), str(work / "e.onnx"), save_as_external_data=True, location=location,
                    size_threshold=0, all_tensors_to_one_file=True)


@pytest.mark.parametrize("args", [
    ["quantize", "e.onnx", "--calib", "c.npz", "-o", "{w}"],
    ["analyze", "e.onnx", "--calib", "c.npz", "--no-isolated", "--json", "{w}"],
    ["export-exclusions", "e.onnx", "--recipe", "r.toml", "--format", "ort", "-o", "{w}"],
])
def test_an_output_that_is_the_models_external_weights_is_refused(work, args):
    _external(work, "weights.bin")
    assert external_data_files(work / "e.onnx") == [work / "weights.bin"]
    before = snapshot(work)
    r = qwb(*[a.format(w="weights.bin") for a in args], cwd=work)
    assert_user_error(r, "weights.bin", "external weights")
    assert snapshot(work) == before


def test_an_output_over_an_image_the_calibration_folder_holds_is_refused(work):
    from PIL import Image

    (work / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(work / "imgs" / f"{i}.png")
    before = snapshot(work)
    assert_user_error(qwb("calib", "m.onnx", "--calib", "imgs", "--json", "imgs/1.png", cwd=work), "imgs")
    assert snapshot(work) == before


def test_backends_json_is_checked_like_every_output(work):
    assert_user_error(qwb("backends", "--json", "/proc/self/comm", cwd=work), "/proc")


# -- export-overlay: its input is checked, never overwritten, and read defensively -----------------------------
@pytest.fixture(scope="module")
def analysis_json(tmp_path_factory):
    d = tmp_path_factory.mktemp("analysis")
    save(conv_net(), d / "m.onnx")
    save_npz(d / "c.npz", **conv_net_data(8))
    r = qwb("report", "m.onnx", "--calib", "c.npz", "-o", d / "rep.json", cwd=d)
    assert r.returncode == 0, r.stderr
    return json.loads((d / "rep.json").read_text())


def test_overlay_never_overwrites_its_source(work, analysis_json):
    (work / "ov").mkdir()
    (work / "ov" / "cumulative_sqnr.json").write_text(json.dumps(analysis_json))
    (work / "ov" / "isolated_sqnr.json.tmp").write_text("an unrelated file")
    before = snapshot(work)
    r = qwb("export-overlay", "m.onnx", "--from", "ov/cumulative_sqnr.json", "-o", "ov", cwd=work)
    assert_user_error(r, "writing it would destroy")
    assert snapshot(work) == before


def test_overlay_writes_without_touching_a_file_called_like_its_temporary(work, analysis_json):
    (work / "a.json").write_text(json.dumps(analysis_json))
    (work / "ov").mkdir()
    (work / "ov" / "cumulative_sqnr.json.tmp").write_text("an unrelated file")
    r = qwb("export-overlay", "m.onnx", "--from", "a.json", "-o", "ov", cwd=work)
    assert r.returncode == 0, r.stderr
    assert (work / "ov" / "cumulative_sqnr.json.tmp").read_text() == "an unrelated file"
    assert (work / "ov" / "cumulative_sqnr.json").is_file()


@pytest.mark.parametrize("damage", ["final_run_string", "run_is_a_list", "deep", "fifo"])
def test_overlay_source_damaged_or_special(work, analysis_json, damage):
    src = work / "f.json"
    if damage == "final_run_string":
        src.write_text(json.dumps(dict(analysis_json, final_run="x")))
    elif damage == "run_is_a_list":
        src.write_text(json.dumps(dict(analysis_json, runs=[[1, 2]], final_run=0)))
    elif damage == "deep":
        src.write_text("[" * 100_000 + "]" * 100_000)
    else:
        os.mkfifo(src)
    assert_user_error(qwb("export-overlay", "m.onnx", "--from", "f.json", "-o", "ov", cwd=work, timeout=60), "f.json")
    assert not (work / "ov").exists()


# -- caches ---------------------------------------------------------------------------------------------------
def test_a_cached_model_replaced_by_a_link_to_dev_zero_is_rebuilt_without_hanging(work, tmp_path):
    cache = tmp_path / "cache"
    env = {"QWB_CACHE_DIR": str(cache)}
    assert qwb("quantize", "m.onnx", "--calib", "c.npz", "-o", "a.onnx", "--no-eval", cwd=work, env=env).returncode == 0
    cached = list((cache / "models").rglob("model.onnx"))
    assert cached
    for p in cached:
        p.unlink()
        p.symlink_to("/dev/zero")
    r = qwb("quantize", "m.onnx", "--calib", "c.npz", "-o", "b.onnx", "--no-eval", cwd=work, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "not a regular file" in r.stdout and "rebuilt" in r.stdout
    assert all(p.is_file() and not p.is_symlink() for p in cached)


# -- the engine listener and the Netron server ------------------------------------------------------------------
def test_silent_local_clients_do_not_hold_up_the_engine():
    """Ten processes connect first and never answer; the engine's own connection is still taken well inside a
    deadline the old one-handshake-at-a-time listener needed ten times HANDSHAKE_S to reach."""
    key = os.urandom(32)
    listener = Listener(family="AF_UNIX")
    result: list = []
    t = threading.Thread(target=lambda: result.append(accept_engine(listener, key, time.monotonic() + 20)))
    t.start()
    silent = []
    try:
        for _ in range(10):
            s = socket.socket(socket.AF_UNIX)
            s.connect(listener.address)
            silent.append(s)
        for _ in range(3):
            with pytest.raises(Exception):  # noqa: B017 - AuthenticationError or a closed connection
                Client(listener.address, family="AF_UNIX", authkey=b"wrong key")
        good = Client(listener.address, family="AF_UNIX", authkey=key)
        t.join(30)
        assert len(result) == 1
        result[0].send("hello")
        assert good.recv() == "hello"
        good.close()
        result[0].close()
    finally:
        for s in silent:
            s.close()
        listener.close()


def test_netron_serves_the_model_and_its_weights_only(work):
    _external(work, "e.onnx.data")
    url, address = netron_serve.serve(work / "e.onnx")
    try:
        port = address[1]
        token = url.split(f":{port}", 1)[1]

        def get(path):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", token + path, headers={"Host": f"127.0.0.1:{port}"})
            r = c.getresponse()
            r.read()
            c.close()
            return r.status

        assert get("data/e.onnx") == 200 and get("data/e.onnx.data") == 200
        assert get("data/c.npz") == 404 and get("data/r.toml") == 404 and get("data/m.onnx") == 404
    finally:
        netron_serve.stop(address)
