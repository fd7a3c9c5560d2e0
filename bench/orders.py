"""Service order benchmark: one order across many lab devices, bounded parallelism vs serial.

    python -m bench.orders [--devices 50] [--workers 50]

One run, one machine, ratios are the result:

1. a child process serves ``--devices`` lab Cisco IOS SSH CLIs on random 127.35.x.y addresses;
2. serial reference: one l2_vlan order over every device with ``provisioning_workers=1``
   (backup, push, show post-checks, then save + post-change backup, device after device);
3. parallel: the same order shape (another VLAN and port) with ``provisioning_workers=--workers``;
4. reported: the order totals, the slowest single device's push (its session, backup, push and
   post-checks) in each run, and total / slowest push. The issue's target is parallel total
   at most 1.5x the slowest single device's push.
The lab devices have no SNMP agent here, so SNMP post-checks are skipped (show checks run).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def serve(n: int, seed: int) -> None:
    import asyncio

    from lab.model import LabDevice, LabInterface
    from lab.ssh import lab_host_key, start_ssh_server

    rnd = random.Random(seed)
    port = rnd.randint(20_000, 60_000)
    b, c = rnd.randint(0, 200), rnd.randint(0, 200)

    async def run() -> None:
        key = lab_host_key()
        listed = []
        for i in range(n):
            device = LabDevice(
                name=f"obench-{i}",
                address=f"127.35.{b + i // 250}.{c % 5 + i % 250 + 1}",
                role="access",
                vendor="cisco",
                platform="ios",
                device_type="cisco_ios",
                site="bench",
                interfaces=[
                    LabInterface(if_index=j + 1, name=f"GigabitEthernet0/{j}", mac=f"52:54:00:01:{i % 256:02x}:{j:02x}")
                    for j in range(4)
                ],
                ssh_port=port,
            )
            await start_ssh_server(device, host_keys=key)
            listed.append([device.name, device.address, device.ssh_port])
        print("READY " + json.dumps(listed), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(run())


def _order(rt: Any, names: list[str], vlan: int, interface: str) -> Any:
    from faultloop.db import transaction
    from provisioning import service as orders
    from provisioning.executor import execute_order

    body = {
        "service_type": "l2_vlan",
        "customer": "BENCH",
        "params": {"vlan": vlan, "vlan_name": f"BENCH-{vlan}", "description": f"bench {vlan}", "interface": interface},
        "targets": [{"device": n} for n in names],
    }
    with transaction(rt.sessions) as session:
        order_id = orders.create_order(session, orders.parse_order(body), actor="bench").id
        orders.act(session, order_id, "plan", actor="bench", role="provisioner", four_eyes=False)
        orders.act(session, order_id, "approve", actor="bench", role="admin", four_eyes=False)
    t0 = time.perf_counter()
    outcome = execute_order(rt, order_id, actor="bench", role="admin")
    return time.perf_counter() - t0, outcome


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.orders")
    ap.add_argument("cmd", nargs="?", default="bench", choices=["bench", "serve"])
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--seed", type=int, default=random.randint(0, 1 << 30))
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        serve(args.devices, args.seed)
        return 0

    from cryptography.fernet import Fernet

    from faultloop import migrate
    from faultloop.db import make_engine, make_sessionmaker, transaction
    from faultloop.runtime import Runtime
    from faultloop.settings import Settings
    from faultloop.vault import Vault
    from inventory import service as inventory
    from inventory.schemas import DeviceIn
    from lab.ssh import LAB_SSH_PASSWORD, LAB_SSH_USERNAME

    server = subprocess.Popen(
        [sys.executable, "-m", "bench.orders", "serve", "--devices", str(args.devices), "--seed", str(args.seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    tmp = tempfile.TemporaryDirectory(prefix="fl-bench-orders-")
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY "):
            print(f"lab server did not start: {line!r}", file=sys.stderr)
            return 1
        devices = json.loads(line[len("READY ") :])
        key = Fernet.generate_key().decode()
        base = Settings.model_validate(
            {
                "data_dir": Path(tmp.name),
                "secret_key": key,
                "ssh_timeout_s": 60,
                "log_level": "WARNING",
                "provisioning_check_timeout_s": 30,
            }
        )
        engine = make_engine(f"sqlite:///{Path(tmp.name) / 'bench.db'}")
        migrate.upgrade(engine)
        vault = Vault([key.encode()])
        rt = Runtime(settings=base, engine=engine, sessions=make_sessionmaker(engine), vault=vault)
        with transaction(rt.sessions) as session:
            for name, address, port in devices:
                inventory.create_device(
                    session,
                    vault,
                    DeviceIn.model_validate(
                        {
                            "hostname": name,
                            "address": address,
                            "role": "access",
                            "device_type": "cisco_ios",
                            "ssh": {"port": port, "username": LAB_SSH_USERNAME, "password": LAB_SSH_PASSWORD},
                        }
                    ),
                    actor="bench",
                )
        names = [d[0] for d in devices]
        rt.settings = base.model_copy(update={"provisioning_workers": 1})
        serial_total, serial = _order(rt, names, 501, "GigabitEthernet0/1")
        rt.settings = base.model_copy(update={"provisioning_workers": args.workers})
        par_total, par = _order(rt, names, 502, "GigabitEthernet0/2")
        engine.dispose()

        def pushes(outcome: Any) -> list[float]:
            return [r.seconds for r in outcome.results[: len(devices)]]  # the push results come first

        s_push, p_push = pushes(serial), pushes(par)
        n = len(devices)
        print(f"devices: {n} cisco_ios, order: l2_vlan (backup, push, show post-checks, save, post-change backup)")
        print(
            f"serial   (workers 1): {serial.state:>10}  total {serial_total:7.2f} s  "
            f"push per device median {statistics.median(s_push):.2f} s, slowest {max(s_push):.2f} s"
        )
        print(
            f"parallel (workers {args.workers}): {par.state:>10}  total {par_total:7.2f} s  "
            f"push per device median {statistics.median(p_push):.2f} s, slowest {max(p_push):.2f} s"
        )
        finals = [r.seconds for r in par.results[len(devices) :]]
        print(
            "parallel save phase (write memory + post-change backup, same session): "
            f"median {statistics.median(finals):.2f} s, slowest {max(finals):.2f} s"
        )
        print("parallel phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in par.phases_s.items()))
        print(
            f"parallel total / slowest single push in the parallel run: {par_total / max(p_push):.2f}x (target <= 1.5x)"
        )
        print(f"parallel total / slowest single push in the serial run:   {par_total / max(s_push):.2f}x")
        print(f"speed-up vs serial: {serial_total / par_total:.1f}x")
        ok = serial.state == par.state == "completed"
        if not ok:
            print(
                f"FAILED: serial {serial.state} ({serial.message}); parallel {par.state} ({par.message})",
                file=sys.stderr,
            )
        return 0 if ok else 1
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
