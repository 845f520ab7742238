"""Run one benchmark measurement in a child process, watching its memory.

Shared by the benchmarks that compare peak memory: the child's own peak is clean, and a child that passes
a memory limit (a peer that holds every tensor, say) is killed and reported as out of memory.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path


def run_watched(cmd: list[str], cwd: Path, limit_gb: float | None, label: dict) -> dict:
    """Run ``cmd``; return its last stdout line parsed as JSON, or ``label`` plus the failure."""
    import psutil

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    proc = psutil.Process(p.pid)
    peak = 0
    while p.poll() is None:
        try:
            rss = proc.memory_info().rss
            peak = max(peak, rss)
            if limit_gb and rss > limit_gb * 2**30:
                p.kill()
                p.wait()
                return dict(label, out_of_memory=True, peak_rss_mb=peak / 2**20)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    stdout, stderr = p.communicate()
    if p.returncode != 0:
        return dict(label, error=stderr[-800:])
    return json.loads(stdout.strip().splitlines()[-1])
