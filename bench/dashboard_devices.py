"""Dashboard topology map, device list and device page on the 500-device lab network,
beside a FastAPI hello-world and the JSON device list measured in the same run.

    python -m bench.dashboard_devices [--devices 500] [--requests 20] [--no-pg]

For each backend (SQLite file in WAL mode; PostgreSQL on 127.0.0.1:5432 in a database of
its own, when reachable): migrate, import the generated lab inventory (``faultloop lab up
--generate N``'s topology: sites, devices, interfaces, links), record one poll per device
(5 % unreachable, 2 % of the ports down), 15 % of the devices with an active alarm, an
hour of per-minute traffic samples on every port of one core router and two config
versions of it. Then start the real faultloop API under uvicorn in a child process, log
in through /login, and request each page ``--requests`` times one after another (closed
loop): the map of all devices, the device list (50 and 500 a page), the core router's
page and its config diff. The references, in the same run: GET /hello of a FastAPI
hello-world under the same uvicorn settings, and GET /api/v1/devices?limit=500 (the JSON
list of the same devices). Figures: median and p95 latency, page size, and the median as
a multiple of the references'. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

from bench.scratch import scratch_postgres
from bench.tickets import serve

PASSWORD = "bench password 1"  # noqa: S105 - a throwaway bench user


def seed(url: str, n_devices: int) -> tuple[int, int]:
    """Fill the database; returns the ids of the router whose page is measured and of its newest config."""
    from cryptography.fernet import Fernet
    from sqlalchemy import insert, select

    from alarms.models import Alarm
    from collectors import backup
    from collectors import service as collectors
    from collectors.models import InterfaceSample
    from collectors.snmp_poll import InterfaceState, PollResult, Snapshot
    from faultloop import clock, migrate
    from faultloop.accounts import service as accounts
    from faultloop.db import make_engine, make_sessionmaker, transaction
    from faultloop.vault import Vault
    from inventory import service as inventory
    from inventory.models import Device
    from inventory.schemas import InventoryDoc
    from lab.inventory_out import inventory_dict
    from lab.topology import generate_topology

    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    vault = Vault([Fernet.generate_key()])
    rng = random.Random(n_devices)
    now = clock.now()
    doc = InventoryDoc.model_validate(inventory_dict(generate_topology(n_devices)))
    with transaction(sessions) as s:
        inventory.import_inventory(s, vault, doc, actor="bench", forget_host_key=lambda _device_id: None)
        accounts.create_user(s, username="bench", role="noc", password=PASSWORD, actor="bench")
    with transaction(sessions) as s:
        devices = list(s.scalars(select(Device).order_by(Device.id)))
        alarms = []
        for d in devices:
            if rng.random() < 0.05:
                failed = PollResult(device=d.hostname, ok=False, time=now, duration_s=2.0, error="timeout")
                collectors.record_poll(s, device_id=d.id, result=failed, reachable=False, failures=3)
                continue
            ports = {
                i.if_index or k: InterfaceState(
                    i.if_index or k, i.name, admin_status="up", oper_status="down" if rng.random() < 0.02 else "up"
                )
                for k, i in enumerate(d.interfaces, start=1)
            }
            snap = Snapshot(sys_descr="lab", sys_name=d.hostname, uptime_cs=8_640_000, interfaces=ports)
            ok = PollResult(device=d.hostname, ok=True, time=now, duration_s=0.05, snapshot=snap)
            collectors.record_poll(s, device_id=d.id, result=ok, reachable=True, failures=0)
            if rng.random() < 0.15:
                sev = rng.choice(["critical", "major", "minor", "warning"])
                key = f"bench:{d.hostname}"
                alarms.append(
                    dict(
                        reduction_key=key,
                        clear_key=key,
                        alarm_type="linkDown",
                        source="trap",
                        device=d.hostname,
                        managed_object="interface:x",
                        first_occurrence=now,
                        last_occurrence=now,
                        count=1,
                        original_severity=sev,
                        severity=sev,
                        state="active",
                    )  # fmt: skip
                )
        if alarms:
            s.execute(insert(Alarm), alarms)
        router = devices[0]
        samples = [
            {
                "device_id": router.id,
                "interface": i.name,
                "metric": metric,
                "value": rng.random() * 1e9,
                "time": now - timedelta(minutes=m),
            }  # fmt: skip
            for i in router.interfaces
            for metric in ("interface_in_bits_per_second", "interface_out_bits_per_second")
            for m in range(60)
        ]
        s.execute(insert(InterfaceSample), samples)
        backup.store_backup(s, vault, device=router, text="hostname r\n!\nend\n", trigger="schedule", actor="bench")
        newest, _old, _new = backup.store_backup(
            s, vault, device=router, text="hostname r\n!\nntp server 1\nend\n", trigger="schedule", actor="bench"
        )
        ids = (router.id, newest.id)
    engine.dispose()
    return ids


def measure(client: httpx.Client, path: str, n: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(n):
        start = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - start)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path}: {r.status_code}")
        size = len(r.content)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], size


def run_backend(name: str, url: str, n_devices: int, n: int, log: Path) -> None:
    t0 = time.perf_counter()
    router, config = seed(url, n_devices)
    print(f"[{name}] seeded {n_devices} devices in {time.perf_counter() - t0:.1f} s", flush=True)
    procs = []
    try:
        hello, hello_url = serve("hello", url, log)
        procs.append(hello)
        app, app_url = serve("app", url, log)
        procs.append(app)
        with httpx.Client(base_url=hello_url, timeout=60) as c:
            measure(c, "/hello", 3)
            ref_hello = measure(c, "/hello", n)
        with httpx.Client(base_url=app_url, timeout=60) as c:
            r = c.post("/login", data={"username": "bench", "password": PASSWORD})
            if r.status_code != 303 or "faultloop_session" not in c.cookies:
                raise RuntimeError(f"login failed: {r.status_code}")
            c.headers["accept"] = "text/html"
            rows = [("GET /hello (FastAPI hello-world)", ref_hello)]
            for path in (
                "/api/v1/devices?limit=500",
                "/ui/topology",
                "/ui/devices",
                "/ui/devices?limit=500",
                f"/ui/devices/{router}",
                f"/ui/devices/{router}/config-backups/{config}/diff",
            ):
                measure(c, path, 2)  # warm
                rows.append((f"GET {path}", measure(c, path, n)))
        ref_json = rows[1][1][0]
        print(f"[{name}] {n} requests each, one after another")
        print(f"  {'request':52s} {'median':>9s} {'p95':>9s} {'size':>9s} {'x hello':>8s} {'x json':>7s}")
        for label, (med, p95, size) in rows:
            print(
                f"  {label:52s} {med * 1000:7.1f}ms {p95 * 1000:7.1f}ms {size / 1024:7.1f}K"
                f" {med / ref_hello[0]:8.1f} {med / ref_json:7.2f}"
            )
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_devices")
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)
    log = Path(tempfile.mkdtemp()) / "servers.log"
    with tempfile.TemporaryDirectory() as tmp:
        run_backend("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.devices, args.requests, log)
    if args.no_pg:
        return 0
    with scratch_postgres("bench_devices") as url:
        if url is not None:
            run_backend("postgresql", url, args.devices, args.requests, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
