"""bench.scale at a tiny size: every process starts, every phase ends and prints its figure (the
figures themselves are not checked here: timed assertions do not belong in tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.pgdb import needs_postgresql

pytestmark = [pytest.mark.slow, needs_postgresql]

FIGURES = [
    "inventory: 30 lab devices",
    "polling (30 devices, 4 s interval, demand 450 polls/min): sustained",
    "timeouts ",
    "collector CPU: ",
    "ms per poll",
    "fault -> alarm row",
    "p50 ",
    "p99 ",
    "flood 2 collectors -> JetStream -> central: 300 traps",
    "flood, the collectors' stage: ",
    "flood central alone: JetStream -> central: 300 events",
    "flood, central alone, CPU: ",
    "flood single process (--role all): 300 traps",
    "flood ratio: scale-out path",
    "storm (core router down, 30 devices below it",
    "RSS: central1 ",
    "collector1 ",
    "lab1 ",
    "single ",
    "nats-server ",
]


HAVE_NATS = bool(shutil.which("nats-server") or os.path.exists("/usr/sbin/nats-server"))


@pytest.mark.skipif(not HAVE_NATS, reason="no nats-server")
def test_the_scale_bench_runs_small_and_prints_every_figure():
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--devices", "30", "--interval", "4", "--labs", "2", "--faults", "2",
         "--events", "300", "--rate", "1000", "--settle", "4", "--storm", "30", "--import-workers", "2"],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    missing = [f for f in FIGURES if f not in out.stdout]
    assert not missing, (missing, out.stdout, out.stderr[-3000:])
    assert "Traceback" not in out.stdout, out.stdout
