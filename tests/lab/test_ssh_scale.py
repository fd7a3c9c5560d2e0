"""500 lab SSH listeners in one process: all start, any of them answers netmiko.

Prints the RSS cost per listener (a figure for the README, not an assertion: timing
and memory limits do not belong in tests).
"""

from __future__ import annotations

import asyncio
import gc
import random
import resource
import threading
import time

import pytest
from netmiko import ConnectHandler

from lab.model import LabDevice, LabInterface
from lab.ssh import LAB_SSH_PASSWORD, LAB_SSH_USERNAME, lab_host_key, start_ssh_server

N_DEVICES = 500


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.mark.slow
def test_500_listeners_share_one_process_and_answer() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * N_DEVICES:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * N_DEVICES), hard))

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = random.randint(20_000, 60_000)
    second_octet = random.randint(1, 200)  # 127.33.x.y: x in [second_octet, second_octet + 1]
    devices = [
        LabDevice(
            name=f"scale-{i}",
            address=f"127.33.{second_octet + i // 250}.{i % 250 + 1}",
            role="access",
            vendor="cisco",
            platform="ios",
            device_type="cisco_ios",
            site="scale",
            interfaces=[LabInterface(if_index=j + 1, name=f"GigabitEthernet0/{j}") for j in range(8)],
            ssh_port=port,
        )
        for i in range(N_DEVICES)
    ]
    key = lab_host_key()

    async def start_all() -> tuple[list, int, int]:
        gc.collect()
        before = _rss_kib()
        acceptors = [await start_ssh_server(d, host_keys=key) for d in devices]
        gc.collect()
        return acceptors, before, _rss_kib()

    async def close_all(acceptors: list) -> None:
        for acceptor in acceptors:
            acceptor.close()
        for acceptor in acceptors:
            await acceptor.wait_closed()

    acceptors, before, after = asyncio.run_coroutine_threadsafe(start_all(), loop).result(60)
    try:
        assert len(acceptors) == N_DEVICES
        timings = []
        for device in random.sample(devices, 3):
            started = time.perf_counter()
            with ConnectHandler(
                device_type="cisco_ios",
                host=device.address,
                port=port,
                username=LAB_SSH_USERNAME,
                password=LAB_SSH_PASSWORD,
                system_host_keys=False,
                alt_host_keys=False,
            ) as conn:
                assert f"{device.name} uptime is" in conn.send_command("show version")
            timings.append(time.perf_counter() - started)
        print(
            f"\n{N_DEVICES} SSH listeners: RSS +{after - before} KiB "
            f"({(after - before) / N_DEVICES:.1f} KiB each); "
            f"netmiko connect+show version+disconnect: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}"
        )
    finally:
        asyncio.run_coroutine_threadsafe(close_all(acceptors), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
