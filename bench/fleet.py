"""Fleet polling: the faultloop poller against a 500-device lab, standard collection set.

    python -m bench.fleet [--devices 500] [--interval 5] [--duration 60] [--capacity 20]
                          [--no-exporter] [--no-collector]

In one run on one machine:

1. the lab (``generate_topology(N)``) runs in a child process (``bench.lab_snmp serve``),
   so its CPU is not counted as the poller's;
2. the reference: Debian's ``prometheus-snmp-exporter`` (0.21) with the if_mib module of
   ``bench/snmp_exporter.yml``, in its own process, every device scraped once per
   ``--interval`` (paced, the same demand as the poller), its process CPU per device scrape;
3. the collector role: ``run_collector`` in a child process (no database: directory and
   credentials from NATS, results published to JetStream through its spool) polls the same
   devices; its process CPU per poll (results counted on NATS);
4. this process imports the same topology into a fresh SQLite inventory and runs the
   real ``PollerService`` (a timer per device with jitter, concurrency bound, batched
   writes to the database, Prometheus collector) with ``--interval`` seconds per device:
   sustained device polls per minute, timeouts %, poller CPU (cores), lab CPU, poller
   RSS; the demand is N * 60 / interval polls per minute;
5. capacity: every device polled back to back through the same service (no scheduler
   pauses) for ``--capacity`` seconds: the most polls per minute this process can do.

The CPU per poll of the single process (4.) and of the collector (3.) is printed against the
exporter's CPU per scrape: the ratio (issue 14 item 9: at most 1x). The other figures are the
targets (>= 5,000 polls/min with < 0.5 % timeouts, RSS
< 300 MB) and LibreNMS's ~1,000 devices per poller per 5 minutes (200 polls/min).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
EXPORTER = "prometheus-snmp-exporter"
EXPORTER_CONFIG = Path(__file__).with_name("snmp_exporter.yml")


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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exporter_binary() -> str | None:
    """Debian's snmp_exporter with bench/snmp_exporter.yml checked, or None with the reason printed."""
    binary = shutil.which(EXPORTER)
    if binary is None:
        print(f"exporter reference skipped: {EXPORTER} is missing (apt-get install prometheus-snmp-exporter)")
        return None
    check = subprocess.run(
        [binary, "--dry-run", f"--config.file={EXPORTER_CONFIG}"], capture_output=True, text=True, timeout=60
    )
    if check.returncode != 0:
        print(f"exporter reference skipped: {EXPORTER} refuses {EXPORTER_CONFIG}: {check.stderr.strip()[-400:]}")
        return None
    return binary


async def paced(targets: list[str], interval_s: float, seconds: float, call: Any) -> None:
    """``call(target)`` for every target once per ``interval_s``, spread evenly, for ``seconds``."""
    step = interval_s / len(targets)
    start = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    for k in itertools.count():
        at = start + k * step
        if at - start >= seconds:
            break
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(call(targets[k % len(targets)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def exporter_reference(args: argparse.Namespace, targets: list[str]) -> float | None:
    """The exporter's process CPU per device scrape at the poller's demand (ms), or None."""
    binary = exporter_binary()
    if binary is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={EXPORTER_CONFIG}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    counts = {"ok": 0, "failed": 0}
    limit = asyncio.Semaphore(args.concurrency)

    async def get(path: str) -> bytes:
        # plain HTTP/1.0 over asyncio streams: the client's own CPU stays small (it shares the machine)
        async with limit:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
                return await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()

    async def scrape(target: str) -> None:
        try:
            body = await get(f"/snmp?module=if_mib&target={target}")
            good = body.startswith(b"HTTP/1.0 200") and b"ifHCInOctets{" in body
        except (OSError, TimeoutError):
            good = False
        counts["ok" if good else "failed"] += 1

    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                await get("/")
                break
            await asyncio.sleep(0.1)
        await paced(targets, args.interval, args.interval, scrape)  # warm-up: one interval
        n0, f0 = counts["ok"], counts["failed"]
        c0, t0 = proc_cpu_s(proc.pid), time.perf_counter()
        await paced(targets, args.interval, args.duration, scrape)
        wall, cpu = time.perf_counter() - t0, proc_cpu_s(proc.pid) - c0
        rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    scrapes, failed = counts["ok"] - n0, counts["failed"] - f0
    per = 1000 * cpu / max(scrapes + failed, 1)
    print(
        f"reference {EXPORTER} (module if_mib, {EXPORTER_CONFIG.name}), paced: {scrapes * 60 / wall:.0f} device "
        f"scrapes/min, failed {100 * failed / max(scrapes + failed, 1):.2f} %, exporter CPU {cpu / wall:.2f} cores "
        f"({per:.2f} ms/scrape), RSS {rss:.0f} MB",
        flush=True,
    )
    return per


async def collector_role(args: argparse.Namespace, settings: Any, rt: Any) -> float | None:
    """The collector role in a child process polling every device; its CPU per poll (ms), or None."""
    import uuid

    import nats
    from cryptography.fernet import Fernet
    from pydantic import SecretStr

    from faultloop.broker import BrokerLink
    from faultloop.cmd.collector import DirectoryPublisher

    url = args.nats_url
    try:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:
        print(f"collector role skipped: no NATS at {url} ({type(exc).__name__}); --nats-url, or --no-collector")
        return None
    prefix = f"benchfleet{uuid.uuid4().hex[:6]}"
    key = Fernet.generate_key().decode()
    s = settings.model_copy(update={"nats_url": url, "nats_stream_prefix": prefix, "collector_key": SecretStr(key)})
    link = BrokerLink(s, client_name="bench-central")
    await link.start()
    await DirectoryPublisher(link, rt.sessions, s, vault=rt.vault).publish_once()
    counts = {"ok": 0, "failed": 0}

    async def on_result(msg: Any) -> None:
        counts["ok" if b'"ok":true' in msg.data else "failed"] += 1

    await nc.subscribe(f"{prefix}.results.>", cb=on_result)
    tmp = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    env = {
        **os.environ,
        "FAULTLOOP_NATS_URL": url, "FAULTLOOP_NATS_STREAM_PREFIX": prefix, "FAULTLOOP_COLLECTOR_KEY": key,
        "FAULTLOOP_COLLECTOR_NAME": "bench1", "FAULTLOOP_DATA_DIR": str(tmp), "FAULTLOOP_PORT": str(free_port()),
        "FAULTLOOP_TRAP_ENABLED": "false", "FAULTLOOP_SYSLOG_ENABLED": "false", "FAULTLOOP_LOG_LEVEL": "WARNING",
        "FAULTLOOP_POLL_INTERVAL_S": str(args.interval), "FAULTLOOP_POLL_TIMEOUT_S": "2.0",
        "FAULTLOOP_POLL_RETRIES": "1", "FAULTLOOP_POLL_CONCURRENCY": str(args.concurrency),
        "FAULTLOOP_CONFIG": str(tmp / "none.toml"),
    }  # fmt: skip
    main = "import asyncio\nfrom faultloop.cmd.app import run_collector\nfrom faultloop.settings import Settings\n"
    main += "asyncio.run(run_collector(Settings()))\n"
    proc = subprocess.Popen([sys.executable, "-c", main], env=env, cwd=tmp)
    try:
        deadline = time.perf_counter() + 60
        while counts["ok"] < args.devices and time.perf_counter() < deadline:  # every device polled once
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.interval * (args.warmup - 1))
        n0, f0 = counts["ok"], counts["failed"]
        c0, t0 = proc_cpu_s(proc.pid), time.perf_counter()
        peak = rss_mb(proc.pid)
        while time.perf_counter() < t0 + args.duration:
            await asyncio.sleep(1)
            peak = max(peak, rss_mb(proc.pid))
        wall, cpu = time.perf_counter() - t0, proc_cpu_s(proc.pid) - c0
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await nc.close()
        await link.stop()
        await delete_streams(url, prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    polls, failed = counts["ok"] - n0, counts["failed"] - f0
    per = 1000 * cpu / max(polls + failed, 1)
    print(
        f"collector role (child process, results published to JetStream): {(polls + failed) * 60 / wall:.0f} "
        f"device polls/min, failed {100 * failed / max(polls + failed, 1):.2f} %, collector CPU "
        f"{cpu / wall:.2f} cores ({per:.2f} ms/poll), RSS peak {peak:.0f} MB",
        flush=True,
    )
    return per


async def delete_streams(url: str, prefix: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for kind in ("events", "samples", "results"):
            with contextlib.suppress(Exception):
                await js.delete_stream(f"{prefix}_{kind}".upper())
        for bucket in ("directory", "members"):
            with contextlib.suppress(Exception):
                await js.delete_key_value(f"{prefix}_{bucket}".upper())
    finally:
        await nc.close()


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
    exporter = None
    if args.exporter and args.snmp == "v2c":
        exporter = await exporter_reference(args, [f"{d.address}:{args.port}" for d in topo.devices])
    collector = await collector_role(args, settings, rt) if args.collector else None

    svc = PollerService(rt, sink=None)
    await svc.start()
    try:
        # warm-up: every device polled --warmup times, so the measure is the steady state (a device's
        # first stored poll is a full write, later ones take the short way while nothing changes)
        await asyncio.sleep(args.interval * args.warmup)
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
        if exporter is not None:
            print(
                f"CPU per poll vs {EXPORTER}'s per scrape (same run; target <= 1x): single process "
                f"{1000 * cpu / max(polls, 1) / exporter:.2f}x"
                + (f", collector role {collector / exporter:.2f}x" if collector is not None else ""),
                flush=True,
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
    ap.add_argument("--warmup", type=int, default=3, help="poll intervals before the faultloop figures are measured")
    ap.add_argument("--snmp", choices=["v2c", "v3"], default="v2c", help="v3: the lab user, authPriv SHA-256/AES-128")
    ap.add_argument("--port", type=int, default=random.randint(20000, 60000))
    ap.add_argument("--no-exporter", dest="exporter", action="store_false", help=f"skip the {EXPORTER} reference")
    ap.add_argument("--no-collector", dest="collector", action="store_false", help="skip the collector role")
    ap.add_argument("--nats-url", default="nats://127.0.0.1:4222", help="JetStream for the collector role")
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
