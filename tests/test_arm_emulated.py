"""ARM64 kernels under QEMU: the demo's INT8 outputs match x86 on plain-NEON and dot-product CPUs.

Needs the sysroot ``qwb neon-setup`` builds (CI builds it in ``.ci/run``); skipped with the reason when
it is absent locally.
"""

from __future__ import annotations

import json

import pytest

from backends.arm_sysroot import check_sysroot, find_qemu
from backends.cpuinfo import runtime_flags, u8s8_saturates
from tests.cli_util import qwb
from workbench.bench import BenchRequest, run_bench
from workbench.paths import arm_sysroot_dir

SYSROOT = arm_sysroot_dir()
_info, _why = check_sysroot(SYSROOT)
pytestmark = [
    pytest.mark.arm,
    pytest.mark.kernels,
    pytest.mark.skipif(find_qemu() is None, reason="qemu-aarch64-static is not installed "
                       "(apt-get install qemu-user-static debootstrap, then qwb neon-setup)"),
    pytest.mark.skipif(_info is None, reason=f"{_why}; build it with `qwb neon-setup` (or set QWB_ARM_SYSROOT)"),
]


@pytest.fixture(scope="module")
def report():
    return run_bench(BenchRequest(demo=True, backends=("neon-emulated",), arm_cpus=("neon", "dotprod")))


SATURATES = u8s8_saturates(runtime_flags())  # an x86 CPU without VNNI: the reference avoids its saturating kernels


def test_demo_int8_outputs_match_x86_under_plain_neon_and_dotprod(report):
    r = report.result("neon-emulated")
    assert r.availability.available and r.emulated and not r.failures
    assert [e.qemu_cpu for e in r.emulated_runs] == ["cortex-a57", "neoverse-n1"]
    for e in r.emulated_runs:
        n = e.numerics["int8"]
        assert n["samples"] == 32
        # integer kernels: the same numbers as x86's non-saturating ones, whichever x86 CPU runs the test
        assert n["max_abs_diff"] <= 1e-6, (e.cpu, n)
        assert n["top1_agreement"] == 1.0
        assert e.numerics["fp32"]["max_abs_diff"] < 1e-3  # float: same up to summation order


def test_the_x86_reference_does_not_depend_on_the_x86_cpu(report):
    r = report.result("neon-emulated")
    if SATURATES:  # this CPU's own kernels are reported beside the reference, not used as it
        assert r.host_numerics["max_abs_diff"] > 0.1 and any("no VNNI" in n for n in r.notes)
        assert report.to_dict()["backends"]["neon-emulated"]["host_int8_numerics"] == r.host_numerics
    else:
        assert r.host_numerics is None and not any("no VNNI" in n for n in r.notes)


def test_the_emulated_cpus_really_differ(report):
    features = {e.cpu: e.features for e in report.result("neon-emulated").emulated_runs}
    assert "asimd" in features["neon"] and "asimddp" not in features["neon"]
    assert "asimddp" in features["dotprod"]


def test_coverage_is_reported_and_matches_x86(report):
    r = report.result("neon-emulated")
    for e in r.emulated_runs:
        c = e.coverage
        assert c.by_op_type["QLinearConv"] == {"int8": 6} and c.macs_int8_share == 1.0
        assert [f.op_type for f in c.fallbacks] == ["ReduceMean"]
        assert e.same_coverage_as_host is True
    assert r.host_coverage.macs_total == r.coverage.macs_total > 0


def test_emulated_timings_are_never_reported(report, tmp_path):
    d = report.to_dict()["backends"]["neon-emulated"]
    assert d["emulated"] is True and d["fp32"] is None and d["int8"] is None and d["speedup"] is None
    assert d["int8_coverage"]["nodes_int8"] == 12 and d["int8_coverage"]["macs_int8_share"] == 1.0
    assert "p50_ms" not in json.dumps(d)


def test_qwb_bench_neon_emulated_cli(tmp_path):
    out = tmp_path / "arm.json"
    r = qwb("bench", "--demo", "--backend", "neon-emulated", "--arm-cpu", "dotprod", "--json", out)
    assert r.returncode == 0, r.stderr
    ref = "the x86 reference" if SATURATES else "x86"
    assert f"INT8 outputs identical to {ref}" in r.stdout and " ms" not in r.stdout.split("neon-emulated", 1)[1]
    assert json.loads(out.read_text())["backends"]["neon-emulated"]["emulated_cpus"][0]["qemu_cpu"] == "neoverse-n1"


def test_neon_setup_keeps_a_complete_sysroot():
    r = qwb("neon-setup", "--sysroot", SYSROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"already built: {SYSROOT}") and "onnxruntime" in r.stdout
