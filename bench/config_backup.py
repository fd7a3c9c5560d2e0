"""Config backup benchmark: faultloop's backup cycle vs raw netmiko on the same lab devices.

    python -m bench.config_backup [--devices 40] [--workers 8] [--rounds 2]

One run, one machine, ratios are the result:

1. a child process serves ``--devices`` lab SSH CLIs (half Cisco IOS, half Junos) on
   random 127.34.x.y addresses (the devices' CPU is not in this process);
2. reference: raw netmiko in a thread pool of ``--workers`` (connect, enable on IOS,
   ``show running-config`` / ``show configuration``, disconnect), nothing stored;
3. faultloop: ``CliCollectorService.run_backups()`` on the same pool size: the same SSH
   work plus host key pinning (TOFU on the first round), per-device locks, vault
   decryption, normalization, hashing, and SQLite writes (one version per device on the
   first round, ``unchanged`` afterwards);
4. rounds alternate reference / faultloop so drift on a shared machine hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- server side


def serve(n: int, seed: int) -> None:
    from lab.model import LabDevice, LabInterface
    from lab.ssh import lab_host_key, start_ssh_server

    rnd = random.Random(seed)
    port = rnd.randint(20_000, 60_000)
    b, c = rnd.randint(0, 200), rnd.randint(0, 200)

    async def run() -> None:
        key = lab_host_key()
        listed = []
        for i in range(n):
            cisco = i % 2 == 0
            names = [f"GigabitEthernet0/{j}" if cisco else f"ge-0/0/{j}" for j in range(8)]
            device = LabDevice(
                name=f"bench-{i}",
                address=f"127.34.{b + i // 250}.{c % 5 + i % 250 + 1}",
                role="access",
                vendor="cisco" if cisco else "juniper",
                platform="ios" if cisco else "junos",
                device_type="cisco_ios" if cisco else "juniper_junos",
                site="bench",
                interfaces=[
                    LabInterface(if_index=j + 1, name=nm, mac=f"52:54:00:00:{i % 256:02x}:{j:02x}")
                    for j, nm in enumerate(names)
                ],
                ssh_port=port,
            )
            await start_ssh_server(device, host_keys=key)
            listed.append([device.name, device.device_type, device.address, device.ssh_port])
        print("READY " + json.dumps(listed), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin

    asyncio.run(run())


# ---------------------------------------------------------------- client side


def raw_netmiko(device: list[Any]) -> int:
    from netmiko import ConnectHandler

    from lab.ssh import LAB_SSH_PASSWORD, LAB_SSH_USERNAME

    _name, device_type, address, port = device
    with ConnectHandler(
        device_type=device_type,
        host=address,
        port=port,
        username=LAB_SSH_USERNAME,
        password=LAB_SSH_PASSWORD,
        secret=LAB_SSH_PASSWORD,
        system_host_keys=False,
        alt_host_keys=False,
        conn_timeout=20,
    ) as conn:
        if device_type == "cisco_ios":
            conn.enable()
        return len(conn.send_command("show running-config" if device_type == "cisco_ios" else "show configuration"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.config_backup")
    ap.add_argument("cmd", nargs="?", default="bench", choices=["bench", "serve"])
    ap.add_argument("--devices", type=int, default=40)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=random.randint(0, 1 << 30))
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        serve(args.devices, args.seed)
        return 0

    from cryptography.fernet import Fernet

    from collectors.cli_collect import CliCollectorService
    from faultloop import migrate
    from faultloop.db import make_engine, make_sessionmaker, transaction
    from faultloop.runtime import Runtime
    from faultloop.settings import Settings
    from faultloop.vault import Vault
    from inventory import service as inventory
    from inventory.schemas import DeviceIn
    from lab.ssh import LAB_SSH_PASSWORD, LAB_SSH_USERNAME

    server = subprocess.Popen(
        [sys.executable, "-m", "bench.config_backup", "serve", "--devices", str(args.devices)]
        + ["--seed", str(args.seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    tmp = tempfile.TemporaryDirectory(prefix="fl-bench-backup-")
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY "):
            print(f"lab server did not start: {line!r}", file=sys.stderr)
            return 1
        devices = json.loads(line[len("READY ") :])

        key = Fernet.generate_key().decode()
        settings = Settings(
            data_dir=Path(tmp.name), secret_key=key, ssh_workers=args.workers, ssh_timeout_s=20, log_level="WARNING"
        )
        engine = make_engine(f"sqlite:///{Path(tmp.name) / 'bench.db'}")
        migrate.upgrade(engine)
        vault = Vault([key.encode()])
        rt = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=vault)
        with transaction(rt.sessions) as session:
            for name, device_type, address, port in devices:
                inventory.create_device(
                    session,
                    vault,
                    DeviceIn.model_validate(
                        {
                            "hostname": name,
                            "address": address,
                            "role": "access",
                            "device_type": device_type,
                            "ssh": {"port": port, "username": LAB_SSH_USERNAME, "password": LAB_SSH_PASSWORD},
                        }
                    ),
                    actor="bench",
                )

        service = CliCollectorService(rt, sink=None)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(service.start())
        raw_times: list[float] = []
        ours: list[tuple[float, dict[str, int]]] = []
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    sizes = list(pool.map(raw_netmiko, devices))
                    raw_times.append(time.perf_counter() - t0)
                    assert all(sizes), "a raw fetch returned nothing"

                    t0 = time.perf_counter()
                    results = service.run_backups()
                    elapsed = time.perf_counter() - t0
                    statuses: dict[str, int] = {}
                    for r in results:
                        key_ = r.value.status if r.ok else "failed"
                        statuses[key_] = statuses.get(key_, 0) + 1
                    ours.append((elapsed, statuses))
        finally:
            loop.run_until_complete(service.stop())
            loop.close()
            engine.dispose()

        n = len(devices)
        print(f"devices: {n} (half cisco_ios, half juniper_junos), workers: {args.workers}, rounds: {args.rounds}")
        print(f"{'round':>5} {'raw netmiko s':>14} {'faultloop s':>12} {'ratio':>6}  faultloop results")
        for i, (raw, (mine, statuses)) in enumerate(zip(raw_times, ours, strict=True), 1):
            print(f"{i:>5} {raw:>14.2f} {mine:>12.2f} {mine / raw:>6.2f}  {statuses}")
        raw_med = statistics.median(raw_times)
        first = ours[0][0]
        later = statistics.median(t for t, _ in ours[1:]) if len(ours) > 1 else float("nan")
        print(f"reference raw netmiko: {raw_med / n * 1000:.0f} ms per device, {n / raw_med * 60:.0f} devices/min")
        print(f"faultloop first round (new versions, TOFU): ratio {first / raw_med:.2f} vs raw netmiko")
        print(f"faultloop later rounds (unchanged): ratio {later / raw_med:.2f} vs raw netmiko")
        failed = sum(statuses.get("failed", 0) for _t, statuses in ours)
        if failed:
            print(f"FAILED: {failed} device backup(s) failed", file=sys.stderr)
        return 1 if failed else 0
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        tmp.cleanup()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
