"""Hostile inputs, part A: no code runs without trust, outputs never destroy inputs, processes and servers.

Each case asserts what a user sees (one `error:` line and one `fix:` line, exit code 2, no traceback, no
"internal error") and what must not happen (a marker file the payload would write, a changed input file,
a surviving child process, a leftover temporary folder).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import zipfile
from multiprocessing.connection import Client, Listener

import pytest

import resources
from workbench.app import netron_serve
from workbench.app.remote import EXIT, accept_engine, engine_command

from .cli_util import ROOT, qwb

torch = pytest.importorskip("torch")


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _user_error(r, *words: str) -> None:
    """Exit 2, one `error:` line naming what is wrong and one `fix:` line; no traceback, no internal error."""
    err = r.stderr
    assert r.returncode == 2, (r.returncode, r.stdout, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("note:", "WARNING"))]
    assert [line.split(":")[0].strip() for line in lines] == ["error", "fix"], err
    for w in words:
        assert w in lines[0], err


@pytest.fixture
def work(tmp_path):
    """A folder with copies of the demo model, its calibration data and a report, with their hashes."""
    for src, name in ((resources.DEMO_MODEL, "m.onnx"), (resources.DEMO_CALIB, "c.npz")):
        shutil.copy(src, tmp_path / name)
    (tmp_path / "r.toml").write_text('version = 1\n[layers."stem.Conv"]\nprecision = "fp32"\n')
    return tmp_path


# -- 1. running model code is opt-in -----------------------------------------------------------------------
@pytest.fixture
def payload(tmp_path):
    """A factory module whose import writes a marker file; returns (folder on PYTHONPATH, marker)."""
    marker = tmp_path / "MARKER"
    (tmp_path / "evil_factory.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("ran")
        import torch

        def make():
            return torch.nn.Linear(4, 2), torch.zeros(1, 4)
    """))
    return tmp_path, marker


def _with_path(folder):
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(folder), os.environ.get("PYTHONPATH", "")]))


@pytest.mark.parametrize("cmd", [["quantize", "-o", "out.onnx"], ["calib"], ["analyze"], ["bench", "--backend", "cpu"]])
def test_factory_runs_only_with_trust_model_code(payload, cmd):
    folder, marker = payload
    args = [sys.executable, "-m", "workbench.cli.main", cmd[0], "evil_factory:make", "--calib", "synthetic:4", *cmd[1:]]
    r = subprocess.run(args, cwd=folder, capture_output=True, text=True, env=_with_path(folder), timeout=300)
    _user_error(r, "evil_factory:make runs code", "imports the Python module evil_factory")
    assert "--trust-model-code" in r.stderr
    assert not marker.exists()


def test_factory_runs_with_trust_model_code(payload):
    folder, marker = payload
    r = subprocess.run([sys.executable, "-m", "workbench.cli.main", "quantize", "evil_factory:make", "--calib",
                        "synthetic:4", "-o", "out.onnx", "--no-eval", "--trust-model-code"], cwd=folder,
                       capture_output=True, text=True, env=_with_path(folder), timeout=300)
    assert r.returncode == 0, r.stderr
    assert marker.exists() and (folder / "out.onnx").is_file()


def test_export_exclusions_needs_trust_for_a_factory(payload, work):
    folder, marker = payload
    r = subprocess.run([sys.executable, "-m", "workbench.cli.main", "export-exclusions", "evil_factory:make",
                        "--recipe", str(work / "r.toml")], cwd=folder, capture_output=True, text=True,
                       env=_with_path(folder), timeout=300)
    _user_error(r, "runs code")
    assert not marker.exists()


@pytest.fixture
def pt2_files(tmp_path):
    """A genuine .pt2 and one whose sample inputs are a pickle that would write a marker file."""
    marker = tmp_path / "PT2_MARKER"
    program = torch.export.export(torch.nn.Linear(4, 2), (torch.zeros(1, 4),))
    good = tmp_path / "good.pt2"
    torch.export.save(program, str(good))

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    torch.save(((Evil(),), {}), buf)
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(evil, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, buf.getvalue() if info.filename.endswith("sample_inputs/model.pt")
                          else zin.read(info.filename))
    return good, evil, marker


def test_pt2_needs_trust_and_is_read_tensors_only(pt2_files, tmp_path):
    good, evil, marker = pt2_files
    r = qwb("quantize", evil, "--calib", "synthetic:4", "-o", tmp_path / "o.onnx")
    _user_error(r, "runs code")
    r = qwb("quantize", evil, "--calib", "synthetic:4", "-o", tmp_path / "o.onnx", "--trust-model-code")
    _user_error(r, "pickled Python objects")
    assert not marker.exists() and not (tmp_path / "o.onnx").exists()
    r = qwb("quantize", good, "--calib", "synthetic:4", "-o", tmp_path / "o.onnx", "--trust-model-code", "--no-eval")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.onnx").is_file()


def test_torchscript_needs_trust(tmp_path):
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 2)), str(path))
    r = qwb("quantize", path, "--calib", "synthetic:4", "-o", tmp_path / "o.onnx")
    _user_error(r, "runs code", "TorchScript")


def test_engine_child_never_imports_from_the_current_folder(tmp_path):
    """`qwb gui` started in a folder holding hmac.py (imported by multiprocessing's handshake) runs none of it."""
    marker = tmp_path / "HMAC_MARKER"
    (tmp_path / "hmac.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nfrom _hmac_missing import *\n")
    key = os.urandom(32)
    listener = Listener(family="AF_UNIX")
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        argv, env = engine_command(listener.address, "AF_UNIX")
    finally:
        os.chdir(old)
    assert "-P" in argv
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.PIPE)
    try:
        proc.stdin.write(key.hex().encode() + b"\n")
        proc.stdin.close()
        conn = accept_engine(listener, key, time.monotonic() + 60)
        conn.send(EXIT)
        assert proc.wait(30) == 0
        conn.close()
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not marker.exists()


# -- 2. outputs never destroy inputs ------------------------------------------------------------------------
@pytest.mark.parametrize("args,victim", [
    (["quantize", "m.onnx", "--calib", "c.npz", "-o", "c.npz"], "c.npz"),
    (["quantize", "m.onnx", "--calib", "c.npz", "-o", "m.onnx"], "m.onnx"),
    (["quantize", "m.onnx", "--calib", "c.npz", "-o", "link.npz"], "c.npz"),
    (["quantize", "m.onnx", "--calib", "c.npz", "--recipe", "r.toml", "-o", "r.toml"], "r.toml"),
    (["export-exclusions", "m.onnx", "--recipe", "r.toml", "--format", "ort", "-o", "m.onnx"], "m.onnx"),
    (["export-exclusions", "m.onnx", "--recipe", "r.toml", "--format", "ort", "-o", "r.toml"], "r.toml"),
    (["analyze", "m.onnx", "--calib", "c.npz", "--json", "m.onnx"], "m.onnx"),
    (["analyze", "m.onnx", "--calib", "c.npz", "--json", "link.npz"], "c.npz"),
    (["calib", "m.onnx", "--calib", "c.npz", "--json", "c.npz"], "c.npz"),
    (["bench", "m.onnx", "--calib", "c.npz", "--backend", "cpu", "--json", "m.onnx"], "m.onnx"),
    (["report", "m.onnx", "--calib", "c.npz", "-o", "c.md"], None),
])
def test_an_output_that_is_an_input_is_refused(work, args, victim):
    (work / "link.npz").symlink_to(work / "c.npz")
    if victim is None:  # the report's .md is the calibration data, through a hard link
        os.link(work / "c.npz", work / "c.md")
        victim = "c.npz"
    before = {p.name: _sha(p) for p in work.iterdir() if p.is_file()}
    r = qwb(*args, cwd=work)
    _user_error(r, "writing it would destroy")
    assert {p.name: _sha(p) for p in work.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in work.iterdir()) == sorted(before) + (["link.npz"] if "link.npz" not in before
                                                                      else [])


def test_report_from_json_never_rewrites_its_source(work):
    r = qwb("report", "--demo", "-o", work / "a.json", "--samples", "8")
    assert r.returncode == 0, r.stderr
    source = work / "a.json"
    doc = source.read_text().rstrip()[:-1] + ', "extra_key_from_a_newer_version": 1}\n'
    source.write_text(doc)
    r = qwb("report", "--from", source, "-o", work / "a.html")
    _user_error(r, "a.json", "writing it would destroy the report")
    assert source.read_text() == doc
    assert not (work / "a.html").exists() and not (work / "a.md").exists()
    r = qwb("report", "--from", source, "-o", work / "b.html")
    assert r.returncode == 0, r.stderr
    assert source.read_text() == doc and (work / "b.html").is_file()


def test_fifo_model_and_data_are_refused_without_hanging(work):
    os.mkfifo(work / "f.onnx")
    os.mkfifo(work / "f.npz")
    r = qwb("quantize", "f.onnx", "--calib", "c.npz", "-o", "o.onnx", cwd=work, timeout=60)
    _user_error(r, "f.onnx is a FIFO")
    r = qwb("quantize", "m.onnx", "--calib", "f.npz", "-o", "o.onnx", cwd=work, timeout=60)
    _user_error(r, "f.npz is a FIFO")
    r = qwb("export-exclusions", "f.onnx", "--recipe", "r.toml", cwd=work, timeout=60)
    _user_error(r, "FIFO")
    assert not (work / "o.onnx").exists()


@pytest.mark.parametrize("out", ["/dev/full", "/dev/zero", "/proc/self/comm", "fifo.json"])
def test_special_files_are_refused_as_outputs(work, out):
    os.mkfifo(work / "fifo.json")
    r = qwb("analyze", "m.onnx", "--calib", "c.npz", "--json", out, cwd=work, timeout=120)
    _user_error(r, "the output")


def test_outputs_are_written_atomically_and_overwrite_unrelated_files(work):
    (work / "old.onnx").write_text("an unrelated file: -o replaces it")
    r = qwb("quantize", "m.onnx", "--calib", "c.npz", "-o", "old.onnx", "--no-eval", cwd=work)
    assert r.returncode == 0, r.stderr
    assert (work / "old.onnx").read_bytes()[:2] != b"an"
    assert not [p.name for p in work.iterdir() if p.name.endswith(".tmp")]
    assert (work / "old.onnx").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# -- 3. processes and servers -----------------------------------------------------------------------------
def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_bench_ends_its_worker_and_removes_its_folder_on_sigterm(tmp_path, sig):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "workbench.cli.main", "bench", "--demo", "--backend", "cpu",
                          "--runs", "100000", "--no-variants"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not [q for q in _processes_mentioning(str(tmp)) if q != p.pid] and time.monotonic() < deadline:
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.2)
        workers = [q for q in _processes_mentioning(str(tmp)) if q != p.pid]
        assert workers, "the benchmark worker never started"
        p.send_signal(sig)
        assert p.wait(30) == 128 + sig
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    time.sleep(0.5)
    assert not _processes_mentioning(str(tmp))
    assert not [d.name for d in tmp.iterdir() if d.is_dir()]  # (a library leaves a small .ses file on any run)
    assert "Traceback" not in p.stderr.read()


def test_engine_listener_outlasts_wrong_keys_and_silence():
    key = os.urandom(32)
    listener = Listener(family="AF_UNIX")
    result: list = []
    t = threading.Thread(target=lambda: result.append(accept_engine(listener, key, time.monotonic() + 30)))
    t.start()
    try:
        silent = socket.socket(socket.AF_UNIX)  # connects first and never answers the challenge
        silent.connect(listener.address)
        with pytest.raises(Exception):  # noqa: B017 - AuthenticationError or a closed connection
            Client(listener.address, family="AF_UNIX", authkey=b"wrong key")
        good = Client(listener.address, family="AF_UNIX", authkey=key)
        t.join(30)
        assert len(result) == 1
        result[0].send("hello")
        assert good.recv() == "hello"
        good.close()
        result[0].close()
        silent.close()
    finally:
        listener.close()


def test_engine_listener_gives_up_at_its_deadline():
    listener = Listener(family="AF_UNIX")
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            accept_engine(listener, b"k", time.monotonic() + 0.5)
        assert time.monotonic() - t0 < 5
    finally:
        listener.close()


def test_netron_server_checks_host_and_path():
    url, address = netron_serve.serve(resources.DEMO_MODEL)
    try:
        port = address[1]
        token_path = url.split(f":{port}", 1)[1]
        assert len(token_path) > 20

        def get(path, host):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path, headers={"Host": host})
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, body

        assert get(token_path, "evil.example:%d" % port)[0] in range(400, 500)
        assert get(token_path, f"127.0.0.1.evil.example:{port}")[0] in range(400, 500)
        assert get("/", f"127.0.0.1:{port}")[0] == 404
        assert get("/data/digits_cnn.onnx", f"127.0.0.1:{port}")[0] == 404
        assert get(token_path + "data/../../../etc/passwd", f"127.0.0.1:{port}")[0] == 404
        status, body = get(token_path, f"localhost:{port}")
        assert status == 200 and b"netron" in body.lower() and token_path.encode() in body
        status, body = get(token_path + "data/digits_cnn.onnx", f"127.0.0.1:{port}")
        assert status == 200 and body == resources.DEMO_MODEL.read_bytes()
        with urllib.request.urlopen(url + "index.js", timeout=10) as r:
            assert r.status == 200
    finally:
        netron_serve.stop(address)
