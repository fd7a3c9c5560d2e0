"""Fleet polling: the faultloop poller against a 500-device lab, standard collection set.

    python -m bench.fleet [--devices 500] [--interval 5] [--duration 60] [--capacity 20]

In one run on one machine:

1. the lab (``generate_topology(N)``) runs in a child process (``bench.lab_snmp serve``),
   so its CPU is not counted as the poller's;
2. this process imports the same topology into a fresh SQLite inventory and runs the
   real ``PollerService`` (APScheduler jobs with jitter, concurrency bound, batched
   writes to the database, Prometheus collector) with ``--interval`` seconds per device:
   sustained device polls per minute, timeouts %, poller CPU (cores), lab CPU, poller
   RSS; the demand is N * 60 / interval polls per minute;
3. capacity: every device polled back to back through the same service (no scheduler
   pauses) for ``--capacity`` seconds: the most polls per minute this process can do.

The reference figures are the targets (>= 5,000 polls/min with < 0.5 % timeouts, RSS
< 300 MB) and LibreNMS's ~1,000 devices per poller per 5 minutes (200 polls/min).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(args: argparse.Namespace, base: str, lab_pid: int) -> None:
    from cryptography.fernet import Fernet

    from collectors.jobs import PollerService
    from faultloop import migrate
    from faultloop.cmd.app import build_runtime
    from faultloop.db import transaction
    from faultloop.settings import Settings
    from inventory import service as inventory
    from inventory.schemas import InventoryDoc
    from lab.inventory_out import inventory_dict
    from lab.topology import generate_topology

    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    settings = Settings(
        data_dir=tmp,
        secret_key=Fernet.generate_key().decode(),
        poll_interval_s=args.interval,
        poll_timeout_s=2.0,
        poll_retries=1,
        poll_concurrency=args.concurrency,
    )
    rt = build_runtime(settings)
    migrate.upgrade(rt.engine)
    topo = generate_topology(args.devices, base_address=base, snmp_port=args.port)
    doc = inventory_dict(topo, snmp_version=args.snmp)
    with transaction(rt.sessions) as session:
        inventory.import_inventory(
            session, rt.vault, InventoryDoc.model_validate(doc), actor="bench", forget_host_key=lambda _device_id: None
        )
    n_ifs = sum(len(d.interfaces) for d in topo.devices)
    print(f"inventory: {args.devices} devices, {n_ifs} interfaces, SNMP {args.snmp}, SQLite {tmp / 'faultloop.db'}")

    svc = PollerService(rt, sink=None)
    await svc.start()
    try:
        await asyncio.sleep(args.interval)  # warm-up: one full interval so every device has polled once
        s0 = (svc.stats.polls, svc.stats.timeouts, svc.stats.failures, svc.stats.skipped)
        c0, l0, t0 = self_cpu(), proc_cpu_s(lab_pid), time.perf_counter()
        peak = rss_mb()
        end = t0 + args.duration
        while time.perf_counter() < end:
            await asyncio.sleep(1)
            peak = max(peak, rss_mb())
        wall = time.perf_counter() - t0
        polls = svc.stats.polls - s0[0]
        timeouts = svc.stats.timeouts - s0[1]
        failures = svc.stats.failures - s0[2]
        cpu, lab_cpu = self_cpu() - c0, proc_cpu_s(lab_pid) - l0
        demand = args.devices * 60 / args.interval
        print(
            f"sustained ({args.interval:g} s interval, demand {demand:.0f}/min): "
            f"{polls * 60 / wall:.0f} device polls/min, timeouts {100 * timeouts / max(polls, 1):.2f} %, "
            f"failures {100 * failures / max(polls, 1):.2f} %, poller CPU {cpu / wall:.2f} cores "
            f"({1000 * cpu / max(polls, 1):.2f} ms/poll incl. DB writes), lab CPU {lab_cpu / wall:.2f} cores, "
            f"poller RSS peak {peak:.0f} MB, turns coalesced {svc.stats.skipped - s0[3]}"
        )
        print(
            f"ratio sustained/target(5000/min): {polls * 60 / wall / 5000:.2f}x; vs LibreNMS 200/min: "
            f"{polls * 60 / wall / 200:.0f}x"
        )
        if args.capacity:
            assert svc.scheduler is not None
            svc.scheduler.pause()
            await svc.flush()
            ids = list(svc.devices)
            s0 = (svc.stats.polls, svc.stats.timeouts)
            c0, l0, t0 = self_cpu(), proc_cpu_s(lab_pid), time.perf_counter()
            stop_at = t0 + args.capacity

            queue = itertools.cycle(ids)  # round robin: never the same device twice in flight

            async def worker() -> None:
                while time.perf_counter() < stop_at:
                    await svc.poll_job(next(queue))

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            await svc.flush()
            wall = time.perf_counter() - t0
            polls, timeouts = svc.stats.polls - s0[0], svc.stats.timeouts - s0[1]
            print(
                f"capacity ({args.concurrency} in flight): {polls * 60 / wall:.0f} device polls/min, "
                f"timeouts {100 * timeouts / max(polls, 1):.2f} %, poller CPU {(self_cpu() - c0) / wall:.2f} cores, "
                f"lab CPU {(proc_cpu_s(lab_pid) - l0) / wall:.2f} cores, RSS {rss_mb():.0f} MB"
            )
    finally:
        await svc.stop()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fleet")
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--interval", type=float, default=5.0, help="poll interval per device, seconds")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of sustained polling measured")
    ap.add_argument("--capacity", type=float, default=20.0, help="seconds of back-to-back polling (0: skip)")
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--snmp", choices=["v2c", "v3"], default="v2c", help="v3: the lab user, authPriv SHA-256/AES-128")
    ap.add_argument("--port", type=int, default=random.randint(20000, 60000))
    args = ap.parse_args(argv)
    base = f"127.{random.randint(60, 69)}.{random.randint(0, 200)}.1"
    lab = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.lab_snmp",
            "serve",
            "--devices",
            str(args.devices),
            "--base",
            base,
            "--port",
            str(args.port),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert lab.stdout is not None
        line = lab.stdout.readline().split()
        if not line or line[0] != "READY":
            print("fleet: lab failed to start", file=sys.stderr)
            return 1
        print(f"lab: {args.devices} devices on {base}.. port {args.port}, pid {lab.pid}, RSS {rss_mb(lab.pid):.0f} MB")
        asyncio.run(run(args, base, lab.pid))
    finally:
        if lab.stdin:
            lab.stdin.close()
        try:
            lab.wait(20)
        except subprocess.TimeoutExpired:
            lab.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
