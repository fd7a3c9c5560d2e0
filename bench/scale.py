"""Scale-out benchmark (issue 14): lab slices, two collectors, two centrals on PostgreSQL, in one run.

    python -m bench.scale [--devices 10000] [--interval 300] [--labs 4] [--events 100000] [--storm 2000]
    python -m bench.scale --quick          (200 devices, 20 s interval, small flood and storm: 3-7 min)
    python -m bench.scale --quick --skip polling,faults,flood     (the storm alone)

Every part is a real process on this machine, talking over loopback:

- the lab: ``generate_topology(N)`` on 127.1.0.0/16, cut in ``--labs`` contiguous slices, each
  served by a child process (``python -m bench.scale lab``; links across slices become loose ports);
  each slice sends its traps to one of the collectors;
- a NATS server with JetStream of the benchmark's own (Debian ``nats-server -js`` on a free
  loopback port, ``max_payload`` 32 MB: one group's directory for 10,000 devices is ~10 MB, over
  the 1 MB default; see "what it found" in the README row);
- one scratch PostgreSQL database for the cluster, migrated, with the lab inventory in collector
  group ``scale`` and a storm tree (``storm-gw`` -> ``storm-core`` -> 20 aggregation routers ->
  the rest of ``--storm`` access devices, never polled) in group ``storm``;
- two ``faultloop serve --role central`` on that database, two ``faultloop serve --role collector``
  in group ``scale`` (they share its devices by rendezvous hashing);
- a second scratch database served by one ``faultloop serve --role all`` process (no broker): the
  single-process reference for the event flood.

Phases, each printed as it ends:

1. polling: every poll result on ``<prefix>.results.>`` is counted by a NATS tap in this process.
   The group's first turns fall at each device's slot, spread over one interval
   (``collectors.jobs.slot_delay``); the sustained rate is measured over one full interval starting
   half an interval after the first result (each device once inside it: its first or its second
   turn): polls/min vs demand (N x 60 / interval), timeouts %, collector CPU per poll (from /proc
   over the same window), lab CPU; and the first half interval on its own (the first-turn burst
   there was, 10x the demand when first turns were spread over a tenth of the interval);
2. fault latency: ``--faults`` links cut one after the other in the lab slices; from the cut to
   the linkDown alarm row visible in central's database (trap -> collector -> JetStream -> central);
3. event flood: ``--events`` v2c linkDown traps from 500 lab device addresses at ``--rate`` per
   second, half to each collector; stored and processed events per second in central's database
   over the whole flood (first trap -> last row) and sustained (from the first look at 20 % of the
   flood processed to the first at 80 %: the pipeline's latency at both ends left out), the box's
   busy cores and PostgreSQL's and NATS's CPU per event meanwhile; its stages: the rate the
   collectors put the events on JetStream (a tap), and central alone taking the same number of
   events, published straight to JetStream, into alarms; then the same flood at the ``--role all``
   process's trap port: its events per second; the ratio;
4. storm: the storm tree's symptoms (``device_unreachable`` from every device below the core, the
   core's own, a linkDown on the gateway) published on JetStream as a collector publishes them,
   over about two seconds; from the last symptom to 1 active root cause, every other storm alarm
   correlated under it, and 1 open ticket. The ticket policy's ``open.min_active_s`` is
   ``--min-active`` (3 s) here: with the shipped 60 s the ticket waits a minute by design, and with
   0 every symptom that arrives before the core's own alarm gets a ticket of its own (seen: 25);
5. RSS of every process.

Printed, never asserted. Figures on a shared 2-core box are pessimistic: every process here
(labs, collectors, centrals, PostgreSQL, NATS, this tap) competes for the same two cores.
``BENCH_PROFILE=DIR`` runs the faultloop servers under py-spy (collapsed stacks in DIR, 100 Hz;
``BENCH_PROFILE_ONLY=central`` for the centrals only); their CPU figures then are py-spy's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
LAB_BASE = "127.1.0.1"
GROUP = "scale"
STORM_GROUP = "storm"
STORM_AGGS = 20
FLOOD_SOURCES = 500


# ---------------------------------------------------------------- /proc helpers


def proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def box_cpu() -> dict[str, float]:
    """CPU seconds so far of the whole box (busy) and of every PostgreSQL and NATS server process."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    out = {"box": (sum(fields) - fields[3] - fields[4]) / CLK_TCK, "postgres": 0.0, "nats-server": 0.0}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in ("postgres", "nats-server"):
                out[comm] += proc_cpu_s(int(entry.name))
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---------------------------------------------------------------- lab slice (child process)


def lab_slice(n: int, index: int, slices: int, port: int, trap_to: str) -> None:
    """Serve devices [index*n/slices, (index+1)*n/slices) of ``generate_topology(n)``; stdin lines
    ``cut <device>`` cut one of its links and answer ``CUT <epoch> <interface>``; EOF stops."""
    from lab.network import LabNetwork
    from lab.topology import generate_topology

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    topo = generate_topology(n, base_address=LAB_BASE, snmp_port=port)
    lo, hi = index * n // slices, (index + 1) * n // slices
    mine = topo.devices[lo:hi]
    names = {d.name for d in mine}
    links = [link for link in topo.links if link[0] in names and link[2] in names]
    part = replace(topo, devices=mine, links=links)
    host, trap_port = trap_to.rsplit(":", 1)

    async def run() -> None:
        net = LabNetwork(part, ssh=False, trap_receivers=[(host, int(trap_port))])
        await net.start()
        print(f"READY {len(mine)}", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            words = line.split()
            if len(words) == 2 and words[0] == "cut":
                device = net.devices[words[1]]
                itf = next(i for i in device.interfaces if i.oper_up)
                at = time.time()
                net.cut_link(device, itf, True)
                print(f"CUT {at:.6f} {itf.name}", flush=True)
        await net.stop()

    asyncio.run(run())


# ---------------------------------------------------------------- trap sender (child process)


def send_flood(targets: list[tuple[str, int]], sources: list[tuple[str, int]], count: int, rate: float) -> None:
    """``count`` v2c linkDown traps round-robin over ``sources`` (address, ifIndex), each source to
    one target, paced at ``rate``/s; prints ``SENT <count> <seconds>``."""
    from bench.traps import encode_trap

    socks, packets, dests = [], [], []
    for i, (address, if_index) in enumerate(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.bind((address, 0))
        socks.append(sock)
        packets.append(encode_trap(address, if_index, i + 1))
        dests.append(targets[i % len(targets)])
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    sent, n = 0, len(socks)
    while sent < count:
        due = count if rate <= 0 else min(count, int((time.perf_counter() - t0) * rate) + 1)
        if due <= sent:
            time.sleep(0.0005)
            continue
        while sent < due:
            k = sent % n
            with contextlib.suppress(BlockingIOError, OSError):
                socks[k].sendto(packets[k], dests[k])
            sent += 1
    print(f"SENT {sent} {time.perf_counter() - t0:.3f}", flush=True)


# ---------------------------------------------------------------- processes of the cluster


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[Any]
    log: Path | None = None
    http: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            if self.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    self.popen.stdin.close()
            else:
                self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log and self.log.exists() else ""


def serve(name: str, role: str, env: dict[str, str], tmp: Path) -> Proc:
    port = free_port()
    log = tmp / f"{name}.log"
    with log.open("w") as out:
        command = [sys.executable, "-m", "faultloop.cmd", "serve", "--role", role, "--port", str(port)]
        profile = os.environ.get("BENCH_PROFILE")  # a folder: each server runs under py-spy (collapsed stacks)
        if profile and name.startswith(os.environ.get("BENCH_PROFILE_ONLY", "")):
            spy = str(Path(sys.executable).parent / "py-spy")
            command = [spy, "record", "--format", "raw", "--rate", "100", "--subprocesses",
                       "-o", str(Path(profile) / f"{name}.txt"), "--", *command]  # fmt: skip
        popen = subprocess.Popen(
            command,
            env={**env, "FAULTLOOP_DATA_DIR": str(tmp / f"var-{name}")},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Proc(name, popen, log, port)


def healthz(proc: Proc, timeout_s: float = 120) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        with contextlib.suppress(httpx.TransportError):
            r = httpx.get(f"http://127.0.0.1:{proc.http}/healthz", timeout=2)
            if r.status_code in (200, 503):
                return dict(r.json())
        time.sleep(0.3)
    raise RuntimeError(f"{proc.name}: no /healthz within {timeout_s:.0f} s:\n{proc.tail()}")


def start_nats(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    conf = tmp / "nats.conf"
    conf.write_text(
        f'listen: "127.0.0.1:{port}"\nmax_payload: 33554432\nmax_pending: 67108864\n'
        f'jetstream {{ store_dir: "{tmp / "nats-store"}" }}\n'
    )
    popen = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            break
        if popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("nats-server did not start")
        time.sleep(0.05)
    return popen, f"nats://127.0.0.1:{port}"


# ---------------------------------------------------------------- inventory


def storm_doc(n_downstream: int) -> dict[str, Any]:
    """gw -> core -> STORM_AGGS aggregation routers -> the rest as access devices (n_downstream
    devices below the core in all), on 127.3.x.y (never polled: no collector serves the group)."""
    devices: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []

    def add(host: str, role: str, parents: list[str], ifs: list[str]) -> None:
        i = len(devices) + 1
        devices.append({
            "hostname": host, "address": f"127.3.{i // 250}.{i % 250 + 1}", "site": "storm", "role": role,
            "vendor": "cisco", "platform": "ios", "device_type": "cisco_ios", "parents": parents,
            "collector_group": STORM_GROUP, "snmp": {"version": "v2c", "port": 16100, "community": "public"},
            "interfaces": [{"name": name, "if_index": k + 1} for k, name in enumerate(ifs)],
        })  # fmt: skip

    aggs = min(STORM_AGGS, max(1, n_downstream // 10))
    access = n_downstream - aggs
    add("storm-gw", "core", [], ["Gi0/1"])
    add("storm-core", "core", ["storm-gw"], ["Gi0/0", *(f"Gi1/{a + 1}" for a in range(aggs))])
    links.append({"a_device": "storm-gw", "a_interface": "Gi0/1", "b_device": "storm-core", "b_interface": "Gi0/0"})
    per_agg = [access // aggs + (1 if a < access % aggs else 0) for a in range(aggs)]
    for a in range(aggs):
        agg = f"storm-agg{a + 1}"
        add(agg, "distribution", ["storm-core"], [f"Gi0/{k}" for k in range(per_agg[a] + 1)])
        links.append({"a_device": "storm-core", "a_interface": f"Gi1/{a + 1}", "b_device": agg, "b_interface": "Gi0/0"})
    head = len(devices)
    for a in range(aggs):
        for i in range(per_agg[a]):
            add(f"storm-acc{a + 1}-{i + 1}", "access", [f"storm-agg{a + 1}"], ["Gi0/0"])
    # the access devices hang on their aggregation router by ``parents`` only (no link rows: the
    # import is the slow part of the setup); the engine's topology follows either
    return {"sites": [{"name": "storm"}], "devices": devices[:head], "links": links, "rest": devices[head:]}


def _import(url: str, secret: str, doc: dict[str, Any]) -> None:
    """One ``import_inventory`` transaction (in a worker process of ``prepare_database``)."""
    from faultloop.cmd.app import build_runtime
    from faultloop.db import transaction
    from faultloop.settings import Settings
    from inventory import service as inventory
    from inventory.schemas import InventoryDoc

    rt = build_runtime(Settings(database_url=url, secret_key=secret, data_dir=Path(tempfile.gettempdir())))
    with transaction(rt.sessions) as session:
        inventory.import_inventory(
            session, rt.vault, InventoryDoc.model_validate(doc), actor="bench", forget_host_key=lambda _d: None
        )
    rt.engine.dispose()


def prepare_database(url: str, secret: str, head: dict[str, Any], rest: list[dict[str, Any]], workers: int) -> float:
    """Migrate, import ``head`` (sites and whatever the rest refers to), then ``rest`` in chunks of
    500 devices by ``workers`` processes at once: one import of 12,000 devices in one transaction
    takes a quarter of an hour on the loaded shared box (about 90 ms a device, mostly round trips)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from faultloop import migrate
    from faultloop.db import make_engine

    t0 = time.perf_counter()
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    _import(url, secret, head)
    chunks = [{"sites": [], "devices": rest[i : i + 500], "links": []} for i in range(0, len(rest), 500)]
    if chunks:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for future in [pool.submit(_import, url, secret, chunk) for chunk in chunks]:
                future.result()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- the run


class Tap:
    """Every poll result on the benchmark's subjects: (arrival, device id, ok, timeout)."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, int, bool, bool]] = []
        self.nc: Any = None

    async def start(self, url: str, prefix: str) -> None:
        import nats

        from collectors.remote import decode_record

        self.nc = await nats.connect(url)

        async def on(msg: Any) -> None:
            record = decode_record(msg.data)
            self.rows.append((time.time(), record.device_id, record.ok, record.timeout))

        await self.nc.subscribe(f"{prefix}.results.>", cb=on)

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()


class EventTap:
    """Counts the events the collectors put on JetStream (core subscription on the events subjects)."""

    def __init__(self) -> None:
        self.nc: Any = None
        self.events = self.messages = 0
        self.first = self.last = 0.0

    async def start(self, url: str, prefix: str) -> None:
        import nats

        self.nc = await nats.connect(url)

        async def on(msg: Any) -> None:
            # counted, not parsed: this process shares the box's two cores with the pipeline measured
            # (a packed message is a JSON array of event objects, each opening with its "source")
            now = time.time()
            self.first = self.first or now
            self.last = now
            self.messages += 1
            self.events += max(msg.data.count(b'{"source":'), 1)

        await self.nc.subscribe(f"{prefix}.events.>", cb=on)
        await self.nc.flush()

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()


async def measure_polling(args: argparse.Namespace, tap: Tap, procs: list[Proc], collectors: list[Proc],
                          centrals: list[Proc], labs: list[Proc], rss: dict[str, float]) -> None:  # fmt: skip
    demand = args.devices * 60 / args.interval
    while not tap.rows:
        await asyncio.sleep(0.2)
    first = tap.rows[0][0]
    start = first + args.interval / 2
    end = start + args.interval * args.window
    print(f"polling: first result; measuring from +{args.interval / 2:.0f} s for {end - start:.0f} s "
          f"({args.window:g} interval{'s' if args.window != 1 else ''})", flush=True)  # fmt: skip
    await asyncio.sleep(max(0.0, start - time.time()))
    cpu0 = {p.name: proc_cpu_s(p.pid) for p in procs}
    t0 = time.time()
    await asyncio.sleep(max(0.0, end - time.time()))
    wall = time.time() - t0
    cpu = {p.name: (proc_cpu_s(p.pid) - cpu0[p.name]) / wall for p in procs}
    window = [r for r in tap.rows if start <= r[0] < end]
    burst = [r for r in tap.rows if r[0] < first + args.interval / 2]
    burst_minutes = Counter(int((r[0] - first) // 60) for r in burst)
    polls = len(window)
    timeouts = sum(1 for r in window if r[3])
    failed = sum(1 for r in window if not r[2])
    devices_seen = len({r[1] for r in window})
    coll_cpu = sum(cpu[c.name] for c in collectors) * wall
    by_minute: dict[int, int] = {}
    for r in window:
        by_minute[int((r[0] - start) // 60)] = by_minute.get(int((r[0] - start) // 60), 0) + 1
    print(
        f"polling ({args.devices} devices, {args.interval:g} s interval, demand {demand:.0f} polls/min): "
        f"sustained {polls * 60 / wall:.0f} device polls/min ({polls * 60 / wall / demand:.2f}x demand; "
        f"{devices_seen} distinct devices in the window), timeouts {100 * timeouts / max(polls, 1):.2f} %, "
        f"failed {100 * failed / max(polls, 1):.2f} %; busiest minute {max(by_minute.values(), default=0)} polls; "
        f"first-turn burst {len(burst)} polls in {args.interval / 2:.0f} s "
        f"({len(burst) * 120 / args.interval / demand:.2f}x demand; busiest minute "
        f"{max(burst_minutes.values(), default=0)} polls) with "
        f"{100 * sum(1 for r in burst if r[3]) / max(len(burst), 1):.2f} % timeouts",
        flush=True,
    )
    print(
        f"collector CPU: {1000 * coll_cpu / max(polls, 1):.2f} ms per poll (both collectors, "
        f"{', '.join(f'{c.name} {cpu[c.name]:.3f} cores' for c in collectors)}); centrals "
        f"{', '.join(f'{c.name} {cpu[c.name]:.3f}' for c in centrals)} cores; lab slices "
        f"{sum(cpu[lab.name] for lab in labs):.3f} cores",
        flush=True,
    )
    rss.update({p.name: rss_mb(p.pid) for p in procs})


async def measure_faults(args: argparse.Namespace, topo: Any, labs: list[Proc], db: Any, flood_names: set[str]) -> None:
    from sqlalchemy import func, select

    from alarms.models import Alarm

    lab_of = {}
    for i, lab in enumerate(labs):
        lo, hi = i * args.devices // args.labs, (i + 1) * args.devices // args.labs
        for d in topo.devices[lo:hi]:
            lab_of[d.name] = lab
    candidates = [d for d in topo.devices if d.name not in flood_names and any(x.oper_up for x in d.interfaces)]
    random.shuffle(candidates)
    latencies: list[float] = []
    missed = 0
    for d in candidates[: args.faults]:
        lab = lab_of[d.name]
        assert lab.popen.stdin is not None and lab.popen.stdout is not None
        lab.popen.stdin.write(f"cut {d.name}\n")
        lab.popen.stdin.flush()
        cut_at = float(lab.popen.stdout.readline().split()[1])
        query = select(func.count()).where(Alarm.device == d.name, Alarm.state == "active")
        seen = None
        while time.time() < cut_at + 30:
            with db.connect() as conn:
                if conn.scalar(query):
                    seen = time.time()
                    break
            await asyncio.sleep(0.02)
        if seen is None:
            missed += 1
        else:
            latencies.append(seen - cut_at)
        await asyncio.sleep(0.2)
    print(
        f"fault -> alarm row (lab link cut -> linkDown trap -> collector -> JetStream -> central -> alarms, "
        f"{len(latencies)} faults, {missed} not seen in 30 s): p50 {1000 * pct(latencies, 0.5):.0f} ms, "
        f"p99 {1000 * pct(latencies, 0.99):.0f} ms, max {1000 * max(latencies, default=float('nan')):.0f} ms "
        f"(database polled every 20 ms)",
        flush=True,
    )


async def measure_floods(args: argparse.Namespace, tmp: Path, flood: list[Any], common: dict[str, str],
                         cluster: dict[str, str], central_url: str,
                         single_url: str, trap_ports: list[int], collectors: list[Proc], centrals: list[Proc],
                         procs: list[Proc], rss: dict[str, float]) -> None:  # fmt: skip
    from sqlalchemy import func, select

    from alarms.models import EventRecord
    from faultloop.db import make_engine
    from faultloop.events import Event

    sources = [(d.address, d.interfaces[0].if_index) for d in flood]
    (tmp / "sources.json").write_text(json.dumps(sources))

    class TrapSender:
        """The flood as traps from the lab's addresses, paced at --rate (a child process)."""

        what = "traps"

        def __init__(self, targets: list[int]) -> None:
            self.p = subprocess.Popen(
                [sys.executable, "-m", "bench.scale", "send", "--sources", str(tmp / "sources.json"),
                 "--targets", ",".join(f"127.0.0.1:{p}" for p in targets), "--count", str(args.events),
                 "--rate", str(args.rate)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert self.p.stdin is not None and self.p.stdout is not None
            self.p.stdout.readline()

        def go(self) -> None:
            assert self.p.stdin is not None
            self.p.stdin.write("go\n")
            self.p.stdin.flush()

        async def finish(self) -> str:
            assert self.p.stdout is not None
            line = self.p.stdout.readline().split()
            self.p.wait(10)
            return f"offered at {args.rate:g}/s (sent in {float(line[2]) if len(line) == 3 else float('nan'):.1f} s)"

    class JetStreamInjector:
        """The flood's events put on JetStream directly, packed as a collector packs them, as fast as
        it goes: what central alone takes from JetStream into alarms (the collectors' stage left out)."""

        what = "events"

        def __init__(self, templates: list[Any]) -> None:
            from faultloop.broker import BrokerLink, Publisher, Spool
            from faultloop.settings import Settings
            from faultloop.transport import ObservationPublisher

            s = Settings(
                nats_url=cluster["FAULTLOOP_NATS_URL"], nats_stream_prefix=cluster["FAULTLOOP_NATS_STREAM_PREFIX"],
                data_dir=tmp, secret_key=cluster["FAULTLOOP_SECRET_KEY"], collector_group=GROUP,
            )  # fmt: skip
            self.link = BrokerLink(s, client_name="bench-inject")
            self.publisher = Publisher(self.link, Spool(tmp / "inject-spool.sqlite", max_messages=100_000))
            self.sink = ObservationPublisher(self.publisher, s, group=GROUP, collector="bench-inject")
            self.templates = templates
            self.task: asyncio.Task[float] | None = None

        async def start(self) -> None:
            await self.link.start()
            await self.publisher.start()

        def go(self) -> None:
            self.task = asyncio.create_task(self._publish())

        async def _publish(self) -> float:
            t0 = time.perf_counter()
            n = len(self.templates)
            for i in range(0, args.events, 256):  # the receiver's batch
                now = datetime.now(UTC)
                self.sink.submit_events([replace(self.templates[k % n], time=now)
                                         for k in range(i, min(i + 256, args.events))])  # fmt: skip
                await asyncio.sleep(0)
            await self.publisher.caught_up(60)
            return time.perf_counter() - t0

        async def finish(self) -> str:
            assert self.task is not None
            took = await self.task
            await self.publisher.stop()
            await self.link.stop()
            return f"published to JetStream in {took:.1f} s"

    async def flood_into(url: str, source: Any, label: str) -> tuple[float, float, int]:
        eng = make_engine(url)
        with eng.connect() as conn:
            base_id = conn.scalar(select(func.coalesce(func.max(EventRecord.id), 0))) or 0
        box0 = box_done = box_cpu()
        source.go()
        t_start = time.time()
        stored = done = 0
        last_change = t_start
        t_stored = t_done = t_start
        count = select(func.count(), func.count().filter(EventRecord.processed.is_(True))).where(
            EventRecord.id > base_id, EventRecord.source == "trap"
        )
        trace: list[tuple[float, int]] = []  # (when, processed so far): the sustained rate mid-flood
        while time.time() - last_change < args.settle and time.time() - t_start < args.flood_max_s:
            await asyncio.sleep(0.25)
            with eng.connect() as conn:
                row = conn.execute(count).one()
            now = time.time()
            trace.append((now, row[1]))
            if row[0] != stored:
                stored, t_stored, last_change = row[0], now, now
            if row[1] != done:
                done, t_done, last_change = row[1], now, now
                box_done = box_cpu()  # the box's CPU up to the last processed row
            if done >= args.events:
                break
        box = {k: v - box0[k] for k, v in box_done.items()}
        span = max(t_done - t_start, 1e-9)
        sent = await source.finish()
        eng.dispose()
        stored_rate = stored / max(t_stored - t_start, 1e-9)
        done_rate = done / max(t_done - t_start, 1e-9)
        # sustained: from the first look at 20 % of the flood processed to the first at 80 % (the
        # pipeline's latency and the 0.25 s looks at the start and the end left out)
        low = next(((t, n) for t, n in trace if n >= 0.2 * args.events), None)
        high = next(((t, n) for t, n in trace if n >= 0.8 * args.events), None)
        sustained = (high[1] - low[1]) / (high[0] - low[0]) if low and high and high[0] > low[0] else float("nan")
        print(
            f"flood {label}: {args.events} {source.what} {sent}, "
            f"{stored} events stored ({100 * stored / args.events:.1f} %) at {stored_rate:.0f}/s, "
            f"{done} processed into alarms at {done_rate:.0f} events/s "
            f"(first {source.what[:-1]} -> last row {t_done - t_start:.1f} s; sustained {sustained:.0f} events/s "
            f"from 20 to 80 % of the flood); the box busy {box['box'] / span:.2f} "
            f"cores meanwhile, PostgreSQL {1e6 * box['postgres'] / max(done, 1):.0f} us and NATS "
            f"{1e6 * box['nats-server'] / max(done, 1):.0f} us CPU per event",
            flush=True,
        )
        return stored_rate, done_rate, done

    f_cpu0 = {p.name: proc_cpu_s(p.pid) for p in collectors + centrals}
    tap = EventTap()
    await tap.start(cluster["FAULTLOOP_NATS_URL"], cluster["FAULTLOOP_NATS_STREAM_PREFIX"])
    path = "2 collectors -> JetStream -> central"
    c_stored, c_done, c_n = await flood_into(central_url, TrapSender(trap_ports), path)
    await tap.stop()
    f_cpu = {n: proc_cpu_s(p.pid) - f_cpu0[n] for n, p in ((p.name, p) for p in collectors + centrals)}
    print(
        "flood CPU: " + ", ".join(f"{n} {v:.1f} s" for n, v in f_cpu.items())
        + f" ({1e6 * sum(f_cpu.values()) / max(c_n, 1):.0f} us per event, all four)",
        flush=True,
    )  # fmt: skip
    if tap.events:
        print(f"flood, the collectors' stage: {tap.events} events on JetStream in {tap.last - tap.first:.1f} s after "
              f"the first ({tap.events / max(tap.last - tap.first, 1e-9):.0f} events/s, {tap.messages} messages)",
              flush=True)  # fmt: skip
    with make_engine(central_url).connect() as conn:  # one stored flood event of each source, as a template
        rows = conn.execute(
            select(EventRecord).where(EventRecord.source == "trap", EventRecord.event_type == "linkDown")
            .order_by(EventRecord.id.desc()).limit(20 * len(flood))
        ).all()  # fmt: skip
    templates = list({r.device: Event(r.source, r.device, r.event_type, r.severity, r.time, r.managed_object,
                                      r.probable_cause, r.specific_problem, r.description, dict(r.raw))
                      for r in rows}.values())  # fmt: skip
    if templates:
        injector = JetStreamInjector(templates)
        await injector.start()
        i_cpu0 = {p.name: proc_cpu_s(p.pid) for p in centrals}
        await flood_into(central_url, injector, "central alone: JetStream -> central")
        i_cpu = {n: proc_cpu_s(p.pid) - i_cpu0[n] for n, p in ((p.name, p) for p in centrals)}
        print("flood, central alone, CPU: " + ", ".join(f"{n} {v:.1f} s" for n, v in i_cpu.items())
              + f" ({1e6 * sum(i_cpu.values()) / args.events:.0f} us per event, both)", flush=True)  # fmt: skip
    single_trap = free_port(socket.SOCK_DGRAM)
    single = serve(
        "single", "all", {**common, "FAULTLOOP_DATABASE_URL": single_url, "FAULTLOOP_TRAP_PORT": str(single_trap),
                          "FAULTLOOP_SYSLOG_ENABLED": "false"}, tmp
    )  # fmt: skip
    procs.append(single)
    healthz(single)
    await asyncio.sleep(2)  # its receivers load the device directory right after start
    s0 = proc_cpu_s(single.pid)
    s_stored, s_done, s_n = await flood_into(single_url, TrapSender([single_trap]), "single process (--role all)")
    print(
        f"flood ratio: scale-out path {c_done / max(s_done, 1e-9):.2f}x the single process's processed events/s "
        f"(single process CPU {1e6 * (proc_cpu_s(single.pid) - s0) / max(s_n, 1):.0f} us per event)",
        flush=True,
    )
    rss["single"] = rss_mb(single.pid)
    single.stop()


async def measure_storm(args: argparse.Namespace, tmp: Path, storm: dict[str, Any], nats_url: str, prefix: str,
                        secret: str, db: Any) -> None:  # fmt: skip
    from sqlalchemy import func, select

    from alarms.models import Alarm, EventRecord
    from faultloop.broker import BrokerLink, Publisher, Spool
    from faultloop.events import Event
    from faultloop.settings import Settings
    from faultloop.transport import ObservationPublisher
    from ticketing.models import Ticket
    from ticketing.policy import OPEN_STATES

    s = Settings(
        nats_url=nats_url, nats_stream_prefix=prefix, data_dir=tmp, secret_key=secret,
        collector_group=STORM_GROUP,
    )  # fmt: skip
    link = BrokerLink(s, client_name="bench-storm")
    await link.start()
    publisher = Publisher(link, Spool(tmp / "storm-spool.sqlite", max_messages=100_000), batch_size=500)
    await publisher.start()
    sink = ObservationPublisher(publisher, s, group=STORM_GROUP, collector="storm-sim")
    below = [d["hostname"] for d in storm["devices"][2:] + storm["rest"]]
    half = len(below) // 2

    def down(host: str) -> Event:
        return Event("poll", host, "device_unreachable", "critical", datetime.now(UTC), "")

    def storm_state() -> tuple[int, int, int, int]:
        with db.connect() as conn:
            like = Alarm.device.like("storm-%")
            roots = conn.scalar(select(func.count()).where(like, Alarm.state == "active", Alarm.root_cause))
            children = conn.scalar(select(func.count()).where(like, Alarm.state == "active",
                                                              Alarm.parent_id.is_not(None)))  # fmt: skip
            active = conn.scalar(select(func.count()).where(like, Alarm.state == "active"))
            tickets = conn.scalar(select(func.count()).where(Ticket.device.like("storm-%"),
                                                             Ticket.state.in_(OPEN_STATES)))  # fmt: skip
        return int(roots or 0), int(children or 0), int(active or 0), int(tickets or 0)

    chunks = [[down(h) for h in below[i : i + 100]] for i in range(0, half, 100)]
    chunks.append([Event("trap", "storm-gw", "linkDown", "major", datetime.now(UTC), "interface:Gi0/1")])
    chunks.append([down("storm-core")])
    chunks += [[down(h) for h in below[i : i + 100]] for i in range(half, len(below), 100)]
    total = sum(len(c) for c in chunks)
    pause = 2.0 / max(len(chunks), 1)
    for chunk in chunks:
        sink.submit_events([replace(e, time=datetime.now(UTC)) for e in chunk])
        await asyncio.sleep(pause)
    last_symptom = time.time()
    await publisher.caught_up(30)  # every packed message acknowledged by JetStream
    published_at = time.time()
    expected_alarms = total  # one alarm per device below the core, the core's, the gateway's link
    done_at = None
    state = storm_state()
    first: dict[str, float] = {}  # when each part of the outcome was first seen (where the time goes)
    while time.time() < last_symptom + 60:
        state = storm_state()
        seen_at = time.time() - last_symptom
        for part, reached in (("all alarms", state[2] >= expected_alarms), ("root", state[0] >= 1),
                              ("ticket", state[3] >= 1),
                              ("all correlated", state[2] >= expected_alarms and state[1] == state[2] - 1)):
            if reached:
                first.setdefault(part, seen_at)
        if state[0] == 1 and state[3] == 1 and state[2] >= expected_alarms and state[1] == state[2] - 1:
            done_at = time.time()
            break
        await asyncio.sleep(0.05)
    print("storm timeline (s after the last symptom): "
          + ", ".join(f"{part} {at:.2f}" for part, at in sorted(first.items(), key=lambda x: x[1])), flush=True)
    await asyncio.sleep(5.0)
    after = storm_state()
    verdict = f"{done_at - last_symptom:.2f} s" if done_at else "NOT within 60 s"
    print(
        f"storm (core router down, {len(below)} devices below it, {total} symptoms over 2 s on JetStream): "
        f"1 root + {expected_alarms - 1} correlated + 1 ticket {verdict} after the last symptom "
        f"(published {published_at - last_symptom:.2f} s after it); 5 s later: {after[0]} root cause(s), "
        f"{after[1]} correlated, {after[2]} active, {after[3]} open ticket(s)",
        flush=True,
    )
    with db.connect() as conn:
        seen = conn.execute(
            select(EventRecord.event_type, EventRecord.action, func.count())
            .where(EventRecord.device.like("storm-%"))
            .group_by(EventRecord.event_type, EventRecord.action)
        ).all()
    print(f"storm events at central: {sorted(tuple(r) for r in seen)}; {publisher.published} messages published, "
          f"{len(publisher.spool)} left in the spool")  # fmt: skip
    await publisher.stop()
    await link.stop()


async def run(args: argparse.Namespace, tmp: Path, central_url: str, single_url: str) -> None:  # noqa: C901, PLR0915
    from cryptography.fernet import Fernet

    from faultloop.db import make_engine
    from lab.inventory_out import inventory_dict
    from lab.topology import generate_topology

    procs: list[Proc] = []
    nats_popen, nats_url = start_nats(tmp)
    tap = Tap()
    try:
        lab_port = random.randint(20000, 60000)
        topo = generate_topology(args.devices, base_address=LAB_BASE, snmp_port=lab_port)
        doc = inventory_dict(topo, snmp_version="v2c")
        for d in doc["devices"]:
            # no parents and no link rows for the lab's devices: polling, traps and the fault latency
            # need neither, and the import is the slow part of the setup
            d["collector_group"], d["ssh"], d["parents"] = GROUP, None, []
        storm = storm_doc(args.storm)
        secret = Fernet.generate_key().decode()
        head = {"sites": doc["sites"] + storm["sites"], "devices": storm["devices"], "links": storm["links"]}
        took = await asyncio.to_thread(
            prepare_database, central_url, secret, head, doc["devices"] + storm["rest"], args.import_workers
        )
        print(f"inventory: {args.devices} lab devices ({sum(len(d.interfaces) for d in topo.devices)} interfaces)"
              f" in group {GROUP!r} + {len(storm['devices']) + len(storm['rest'])} storm devices in group "
              f"{STORM_GROUP!r}, imported into PostgreSQL in {took:.0f} s ({args.import_workers} importers)",
              flush=True)  # fmt: skip
        # the single-process reference knows only the flood's sources (it polls them too, at the same interval)
        flood = [d for d in topo.devices if d.device_type == "cisco_ios" and d.role in ("access", "cpe")][
            :FLOOD_SOURCES
        ]
        flood_names = {d.name for d in flood}
        single_head = {"sites": doc["sites"], "devices": [], "links": []}
        single_rest = [d for d in doc["devices"] if d["hostname"] in flood_names]
        await asyncio.to_thread(prepare_database, single_url, secret, single_head, single_rest, args.import_workers)

        policy_src = Path(__file__).parents[1] / "ticketing" / "data" / "policy.yaml"
        import yaml

        policy = yaml.safe_load(policy_src.read_text())
        policy["open"]["min_active_s"] = args.min_active
        (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
        prefix = f"scale{uuid.uuid4().hex[:8]}"
        common = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
        common.update(
            FAULTLOOP_CONFIG=str(tmp / "none.toml"),
            FAULTLOOP_SECRET_KEY=secret,
            FAULTLOOP_LOG_LEVEL="WARNING",
            FAULTLOOP_POLL_INTERVAL_S=str(args.interval),
            FAULTLOOP_POLL_TIMEOUT_S="2",
            FAULTLOOP_POLL_RETRIES="1",
            FAULTLOOP_ALARM_TICK_S="0.2",
            FAULTLOOP_TICKET_TICK_S="0.5",
            FAULTLOOP_TICKET_POLICY_FILE=str(tmp / "policy.yaml"),
            FAULTLOOP_ALARM_POLLER_DEVICES="storm-gw",
            FAULTLOOP_RECEIVER_QUEUE_SIZE="50000",
        )
        if args.poll_concurrency is not None:
            common["FAULTLOOP_POLL_CONCURRENCY"] = str(args.poll_concurrency)
        cluster = {
            **common,
            "FAULTLOOP_NATS_URL": nats_url,
            "FAULTLOOP_NATS_STREAM_PREFIX": prefix,
            "FAULTLOOP_COLLECTOR_KEY": Fernet.generate_key().decode(),
        }
        centrals = [serve(f"central{i}", "central", {**cluster, "FAULTLOOP_DATABASE_URL": central_url}, tmp)
                    for i in (1, 2)]  # fmt: skip
        procs += centrals
        for c in centrals:
            healthz(c)
        trap_ports = [free_port(socket.SOCK_DGRAM) for _ in range(2)]
        await tap.start(nats_url, prefix)
        collectors = [
            serve(f"collector{i + 1}", "collector", {
                **cluster, "FAULTLOOP_COLLECTOR_GROUP": GROUP, "FAULTLOOP_COLLECTOR_NAME": f"c{i + 1}",
                "FAULTLOOP_TRAP_PORT": str(trap_ports[i]), "FAULTLOOP_SYSLOG_ENABLED": "false",
                "FAULTLOOP_RECEIVER_DIRECTORY_REFRESH_S": "10",
            }, tmp)
            for i in range(2)
        ]  # fmt: skip
        procs += collectors
        labs: list[Proc] = []
        for i in range(args.labs):
            popen = subprocess.Popen(
                [sys.executable, "-m", "bench.scale", "lab", "--devices", str(args.devices), "--slice", str(i),
                 "--slices", str(args.labs), "--port", str(lab_port),
                 "--trap-to", f"127.0.0.1:{trap_ports[i % 2]}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            labs.append(Proc(f"lab{i + 1}", popen))
        procs += labs
        for lab in labs:
            assert lab.popen.stdout is not None
            line = lab.popen.stdout.readline().split()
            if not line or line[0] != "READY":
                raise RuntimeError(f"{lab.name} did not start")
            lab.extra["devices"] = int(line[1])
        for c in collectors:
            healthz(c)
        print(
            f"processes: 2 centrals, 2 collectors, {args.labs} lab slices, NATS (own, {nats_url}), PostgreSQL",
            flush=True,
        )

        rss: dict[str, float] = {}
        if "polling" not in args.skip:
            await measure_polling(args, tap, procs, collectors, centrals, labs, rss)

        db = make_engine(central_url)
        if "faults" not in args.skip:
            await measure_faults(args, topo, labs, db, flood_names)

        if "flood" not in args.skip:
            await measure_floods(args, tmp, flood, common, cluster, central_url, single_url, trap_ports, collectors,
                                 centrals, procs, rss)  # fmt: skip
        await measure_storm(args, tmp, storm, nats_url, prefix, secret, db)
        db.dispose()

        # ---- 5. memory
        for p in procs:
            if p.popen.poll() is None:
                rss[p.name] = max(rss.get(p.name, 0.0), rss_mb(p.pid))
        nats_rss = rss_mb(nats_popen.pid)
        print(
            "RSS: " + ", ".join(f"{n} {v:.0f} MB" for n, v in rss.items()) + f", nats-server {nats_rss:.0f} MB",
            flush=True,
        )
        for c in centrals + collectors:
            if "Traceback" in c.tail():
                print(f"warning: {c.name} logged a traceback:\n{c.tail()}", flush=True)
    finally:
        await tap.stop()
        for p in reversed(procs):
            p.stop()
        nats_popen.terminate()
        nats_popen.wait(10)


def main(argv: list[str]) -> int:
    if argv[:1] == ["lab"]:
        ap = argparse.ArgumentParser(prog="python -m bench.scale lab")
        ap.add_argument("--devices", type=int, required=True)
        ap.add_argument("--slice", type=int, required=True)
        ap.add_argument("--slices", type=int, required=True)
        ap.add_argument("--port", type=int, required=True)
        ap.add_argument("--trap-to", required=True)
        a = ap.parse_args(argv[1:])
        lab_slice(a.devices, a.slice, a.slices, a.port, a.trap_to)
        return 0
    if argv[:1] == ["send"]:
        ap = argparse.ArgumentParser(prog="python -m bench.scale send")
        ap.add_argument("--sources", required=True)
        ap.add_argument("--targets", required=True)
        ap.add_argument("--count", type=int, required=True)
        ap.add_argument("--rate", type=float, required=True)
        a = ap.parse_args(argv[1:])
        targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in a.targets.split(",")]
        sources = [(s, int(i)) for s, i in json.loads(Path(a.sources).read_text())]
        send_flood(targets, sources, a.count, a.rate)
        return 0
    ap = argparse.ArgumentParser(prog="python -m bench.scale")
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=300.0, help="poll interval per device, seconds")
    ap.add_argument("--window", type=float, default=1.0, help="intervals of sustained polling measured")
    ap.add_argument("--labs", type=int, default=4, help="lab processes (slices of the topology)")
    ap.add_argument("--faults", type=int, default=20, help="link cuts timed from the lab to the alarm row")
    ap.add_argument("--events", type=int, default=100_000, help="traps in each flood")
    ap.add_argument("--rate", type=float, default=20_000, help="offered traps per second in each flood")
    ap.add_argument("--settle", type=float, default=15.0, help="a flood ends after this long without a new row")
    ap.add_argument("--flood-max-s", type=float, default=240.0, help="a flood's measurement ends after this long")
    ap.add_argument("--storm", type=int, default=2000, help="devices below the failing core router")
    ap.add_argument("--min-active", type=float, default=3.0, help="ticket policy open.min_active_s (shipped: 60)")
    ap.add_argument("--import-workers", type=int, default=6, help="processes importing the inventory at once")
    ap.add_argument("--skip", default="", help="comma-separated phases left out: polling, faults, flood")
    ap.add_argument("--poll-concurrency", type=int, default=None,
                    help="FAULTLOOP_POLL_CONCURRENCY of the collectors and the single process (default: the setting's)")
    ap.add_argument("--quick", action="store_true", help="200 devices, 20 s interval, 5,000 traps, storm 200")
    args = ap.parse_args(argv)
    args.skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    if args.quick:  # small defaults for what the command line did not give
        quick = {"devices": 200, "interval": 20.0, "labs": 2, "faults": 5, "events": 5000, "rate": 5000.0,
                 "storm": 200, "settle": 8.0}  # fmt: skip
        for name, value in quick.items():
            given = any(a == f"--{name}" or a.startswith(f"--{name}=") for a in argv)
            if not given:
                setattr(args, name, value)
    from bench.scratch import scratch_postgres

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as d, scratch_postgres("scale") as central_url:
        if central_url is None:
            return 1
        with scratch_postgres("scale_single") as single_url:
            assert single_url is not None
            asyncio.run(run(args, Path(d), central_url, single_url))
    print(f"bench.scale: {time.time() - started:.0f} s in all; load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
