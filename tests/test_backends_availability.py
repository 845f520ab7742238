"""Availability is a value with a reason and a fix: a CPU-only onnxruntime, a missing GPU, an x86 host."""

from __future__ import annotations

import os
import platform

import onnxruntime as ort
import pytest

from backends.arm_sysroot import MANIFEST
from backends.cpu import CpuBackend, int8_hint
from backends.cpuinfo import (
    ARM_FEATURES,
    X86_FEATURES,
    cpuinfo_flags,
    named_features,
    runtime_flags,
    u8s8_saturates,
)
from backends.cuda import CudaBackend, visible_gpus
from backends.neon import NeonBackend
from backends.neon_emulated import NeonEmulatedBackend
from backends.registry import BACKEND_NAMES, all_backends
from tests.cli_util import qwb

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6338
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni
"""
OLD_X86_CPUINFO = "model name\t: Intel(R) Core(TM) i7-3770\nflags\t\t: fpu sse sse2 avx\n"
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp i8mm
CPU implementer\t: 0x41
"""


def test_cpu_reports_x86_simd_features_from_cpuinfo():
    a = CpuBackend(cpuinfo_text=X86_CPUINFO, arch="x86_64").availability()
    assert a.available
    assert a.details["simd"] == ["AVX2", "AVX-512", "AVX-512 VNNI"]
    assert "Xeon(R) Gold 6338" in a.reason and "AVX-512 VNNI" in a.reason
    assert "VNNI" in a.details["int8"]


def test_cpu_without_avx2_says_int8_gains_little():
    a = CpuBackend(cpuinfo_text=OLD_X86_CPUINFO, arch="x86_64").availability()
    assert a.available and a.details["simd"] == []
    assert "none of AVX2" in a.reason
    assert int8_hint("x86_64", []) == a.details["int8"] and "little" in a.details["int8"]


@pytest.mark.kernels
def test_cpu_features_of_this_machine_follow_cpuid():
    a = CpuBackend().availability()
    assert a.available  # onnxruntime always has its CPU provider
    if platform.machine() != "x86_64":
        return
    from numpy._core._multiarray_umath import __cpu_features__ as cpuid
    assert ("AVX2" in a.details["simd"]) == cpuid["AVX2"]
    assert ("AVX-512" in a.details["simd"]) == cpuid["AVX512F"]
    assert ("AVX-512 VNNI" in a.details["simd"]) == cpuid["AVX512VNNI"]
    if not os.environ.get("QWB_EMULATED_X86_CPU"):  # natively, /proc/cpuinfo describes the same CPU
        assert a.details["simd"] == named_features(cpuinfo_flags(), X86_FEATURES)


@pytest.mark.parametrize("flags, saturates", [
    ("fpu sse4_2 avx avx2 fma", True),                          # AVX2 only (e.g. Zen 2/3, Haswell)
    ("avx2 avx512f avx512bw", True),                            # AVX-512 without VNNI (Skylake-SP)
    ("avx2 avx512f avx512bw avx512_vnni", False),               # AVX-512 VNNI (Cascade Lake, Zen 4)
    ("avx2 avx_vnni", False),                                   # AVX-VNNI (Alder Lake)
    ("sse4_2", False),                                          # no AVX2: other kernels, no VPMADDUBSW path
])
def test_u8s8_saturation_follows_the_vnni_flags(flags, saturates):
    text = f"processor : 0\nflags : {flags}\n"
    assert u8s8_saturates(runtime_flags(text), "x86_64") is saturates
    assert u8s8_saturates(runtime_flags(text), "aarch64") is False


def test_cuda_unavailable_with_cpu_only_onnxruntime():
    a = CudaBackend(providers=["CPUExecutionProvider"]).availability()
    assert not a.available
    assert "CPU-only build" in a.reason and "CPUExecutionProvider" in a.reason
    assert "onnxruntime-gpu" in a.fix


def test_cuda_unavailable_with_gpu_build_but_no_visible_gpu(tmp_path):
    gpus = visible_gpus(tmp_path / "no-driver", env={})
    assert gpus == ([], "no NVIDIA driver is loaded (no /proc/driver/nvidia)")
    a = CudaBackend(providers=["CUDAExecutionProvider", "CPUExecutionProvider"], gpus=gpus).availability()
    assert not a.available
    assert "onnxruntime-gpu" in a.reason and "no NVIDIA GPU is visible" in a.reason and "no NVIDIA driver" in a.reason
    assert "nvidia-smi" in a.fix


def test_cuda_visible_devices_can_hide_every_gpu(tmp_path):
    (tmp_path / "0000:01:00.0").mkdir()
    (tmp_path / "0000:01:00.0" / "information").write_text("Model: \t NVIDIA H100 80GB HBM3\nIRQ: 42\n")
    assert visible_gpus(tmp_path, env={}) == (["NVIDIA H100 80GB HBM3"], "")
    names, why = visible_gpus(tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert names == [] and "CUDA_VISIBLE_DEVICES" in why


def test_cuda_available_with_gpu_build_and_gpu_uses_tensorrt_when_present():
    b = CudaBackend(providers=["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                    gpus=(["NVIDIA H100"], ""))
    a = b.availability()
    assert a.available and "NVIDIA H100" in a.reason and "TensorRT" in a.reason
    assert b.providers(4)[:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert b.coverage_providers(4)[0] == "CUDAExecutionProvider"  # TensorRT hides its kernels
    assert b.required_providers() == ["CUDAExecutionProvider"]


def test_cuda_on_this_machine_follows_the_installed_build():
    a = CudaBackend().availability()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert not a.available and "CPU-only build" in a.reason


@pytest.mark.parametrize("arch", ["x86_64", "AMD64"])
def test_neon_unavailable_on_a_non_arm_host(monkeypatch, arch):
    monkeypatch.setattr(platform, "machine", lambda: arch)
    a = NeonBackend().availability()
    assert not a.available
    assert f"this host is {arch.lower()}" in a.reason and "ARM64" in a.reason
    assert "neon-emulated" in a.fix


def test_neon_on_arm_reports_dotprod_and_i8mm(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    a = NeonBackend(cpuinfo_text=ARM_CPUINFO, providers=["CPUExecutionProvider"]).availability()
    assert a.available
    assert a.details["features"] == named_features(cpuinfo_flags(ARM_CPUINFO), ARM_FEATURES)
    assert a.details["features"] == ["NEON (asimd)", "dot-product (dotprod)", "i8mm"]
    assert "i8mm" in a.details["int8"] and a.details["xnnpack"] is False


def test_neon_uses_xnnpack_when_present():
    b = NeonBackend(arch="aarch64", cpuinfo_text=ARM_CPUINFO,
                    providers=["XnnpackExecutionProvider", "CPUExecutionProvider"])
    assert b.availability().details["xnnpack"] is True
    assert b.providers(4)[0][0] == "XnnpackExecutionProvider"


def test_neon_emulated_unavailable_until_the_sysroot_exists(tmp_path):
    a = NeonEmulatedBackend(tmp_path / "arm64-sysroot", arch="x86_64", qemu="/usr/bin/qemu-aarch64-static").availability()
    assert not a.available
    assert f"no ARM64 sysroot at {tmp_path / 'arm64-sysroot'}" == a.reason
    assert a.fix.startswith("qwb neon-setup")


def test_neon_emulated_names_what_an_incomplete_sysroot_lacks(tmp_path):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").write_text("")
    a = NeonEmulatedBackend(tmp_path, arch="x86_64", qemu="/usr/bin/qemu-aarch64-static").availability()
    assert not a.available and "incomplete" in a.reason and "onnxruntime/__init__.py" in a.reason
    assert MANIFEST not in a.reason  # the first missing piece is named, not a list


def test_neon_emulated_needs_qemu(tmp_path, monkeypatch):
    monkeypatch.setattr("backends.neon_emulated.find_qemu", lambda: None)
    a = NeonEmulatedBackend(tmp_path, arch="x86_64").availability()
    assert not a.available and "qemu-aarch64-static" in a.reason and "qemu-user-static" in a.fix


def test_neon_emulated_is_pointless_on_an_arm_host(tmp_path):
    a = NeonEmulatedBackend(tmp_path, arch="aarch64").availability()
    assert not a.available and "--backend neon" in a.fix


def test_every_backend_answers_without_raising(tmp_path):
    rows = [b.availability() for b in all_backends(tmp_path)]
    assert [a.backend for a in rows] == list(BACKEND_NAMES)
    assert all(a.reason for a in rows)
    assert all(a.fix for a in rows if not a.available)


def test_qwb_backends_lists_every_backend(tmp_path):
    out = tmp_path / "backends.json"
    r = qwb("backends", "--sysroot", tmp_path / "none", "--json", out)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name in BACKEND_NAMES:
        assert any(ln.split()[:2] in ([name, "yes"], [name, "no"]) for ln in lines), (name, r.stdout)
    assert "qwb neon-setup" in r.stdout  # the fix for the missing sysroot
    import json

    rows = json.loads(out.read_text())
    assert {row["backend"]: row["available"] for row in rows}["cpu"] is True
    # the integer path of this CPU, and of each emulated ARM CPU
    from backends.integer_path import integer_path  # noqa: PLC0415 - beside the test's other local imports

    host = integer_path()
    cpu_row = next(row for row in rows if row["backend"] == "cpu")
    assert cpu_row["integer_path"]["isa"] == host.isa and f"integer path of this CPU: {host.label()}" in r.stdout
    emu = next(row for row in rows if row["backend"] == "neon-emulated")["integer_paths"]
    assert {k: v["isa"] for k, v in emu.items()} == {"neon": "NEON", "dotprod": "dotprod", "i8mm": "i8mm"}


def test_neon_setup_names_missing_tools(tmp_path, monkeypatch):
    from backends.arm_sysroot import build_sysroot
    from backends.errors import BackendError

    monkeypatch.setattr("backends.arm_sysroot.shutil.which", lambda name: None)
    monkeypatch.setattr("backends.arm_sysroot.find_qemu", lambda: None)
    with pytest.raises(BackendError) as e:
        build_sysroot(tmp_path / "arm64-sysroot")
    assert "needs debootstrap, qemu-user-static, dpkg" in e.value.message
    assert "apt-get install -y qemu-user-static debootstrap" in e.value.fix
    assert not (tmp_path / "arm64-sysroot").exists()


def test_qwb_neon_setup_error_is_one_line(tmp_path):
    env_path = tmp_path / "bin"
    env_path.mkdir()
    import os
    import subprocess
    import sys

    from tests.cli_util import ROOT

    env = dict(os.environ, PATH=str(env_path), PYTHONPATH=str(ROOT))  # no debootstrap, no qemu on PATH
    r = subprocess.run([sys.executable, "-m", "workbench.cli.main", "neon-setup", "--sysroot", str(tmp_path / "s")],
                       cwd=ROOT, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: building the ARM64 sysroot needs debootstrap")
    assert "Traceback" not in r.stderr
