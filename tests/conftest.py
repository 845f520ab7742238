"""Test setup: Qt runs offscreen, and every derived file goes to a per-session temporary cache."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "QWB_ARM_SYSROOT" not in os.environ:  # the sysroot `qwb neon-setup` built in the user's own cache (400 MB)
    from workbench.paths import arm_sysroot_dir  # noqa: E402

    os.environ["QWB_ARM_SYSROOT"] = str(arm_sysroot_dir())
os.environ.setdefault("QWB_CACHE_DIR", tempfile.mkdtemp(prefix="qwb-test-cache-"))

import pytest  # noqa: E402

import resources  # noqa: E402


@pytest.fixture(scope="session")
def demo_paths():
    return resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty cache for tests that check caching behaviour."""
    d = tmp_path / "cache"
    monkeypatch.setenv("QWB_CACHE_DIR", str(d))
    return d
