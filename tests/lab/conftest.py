"""Fixtures for the lab tests: small topologies on random loopback addresses, a movable
clock, and helpers that drive Debian's net-snmp tools against the running agents.

Addresses are drawn at random inside 127.31.0.0/16 per test so parallel runs do not
collide; every device listens on its own address at the same high port.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab.network import LabNetwork
from lab.topology import Topology, address_at, topology_from_dict

SNMP_PORT = 16161
V3 = [
    "-v3",
    "-l",
    "authPriv",
    "-u",
    "labv3",
    "-a",
    "SHA-256",
    "-A",
    "lab-auth-pass",
    "-x",
    "AES",
    "-X",
    "lab-priv-pass",
]

needs_netsnmp = pytest.mark.skipif(shutil.which("snmpget") is None, reason="net-snmp tools not installed")


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def random_base() -> str:
    return f"127.31.{random.randint(0, 250)}.{random.randint(1, 200)}"


def small_topology(base: str | None = None, port: int = SNMP_PORT) -> Topology:
    """core1 -- dist1 -- acc1 (juniper), plus a spare port on acc1."""
    base = base or random_base()
    addr = [address_at(base, i) for i in range(3)]
    return topology_from_dict(
        {
            "snmp_port": port,
            "ssh_port": 22222,
            "sites": [{"name": "t-site", "description": "test site"}],
            "devices": [
                {
                    "name": "core1",
                    "address": addr[0],
                    "role": "core",
                    "device_type": "cisco_ios",
                    "site": "t-site",
                    "interfaces": [
                        {
                            "name": "GigabitEthernet0/1",
                            "speed_mbps": 10000,
                            "description": "to dist1",
                            "in_bps": 8e8,
                            "out_bps": 4e8,
                        },
                        {"name": "GigabitEthernet0/2", "speed_mbps": 1000, "description": "transit"},
                    ],
                },
                {
                    "name": "dist1",
                    "address": addr[1],
                    "role": "distribution",
                    "device_type": "cisco_ios",
                    "site": "t-site",
                    "interfaces": [
                        {"name": "GigabitEthernet0/1", "speed_mbps": 10000, "description": "uplink core1"},
                        {"name": "GigabitEthernet0/2", "speed_mbps": 1000, "description": "to acc1"},
                    ],
                },
                {
                    "name": "acc1",
                    "address": addr[2],
                    "role": "access",
                    "device_type": "juniper_junos",
                    "site": "t-site",
                    "interfaces": [
                        {
                            "name": "ge-0/0/0",
                            "speed_mbps": 1000,
                            "description": "uplink dist1",
                            "in_bps": 1e6,
                            "out_bps": 2e6,
                        },
                        {"name": "ge-0/0/1", "speed_mbps": 100, "description": "spare", "admin_up": False},
                    ],
                },
            ],
            "links": [
                {
                    "a_device": "core1",
                    "a_interface": "GigabitEthernet0/1",
                    "b_device": "dist1",
                    "b_interface": "GigabitEthernet0/1",
                },
                {
                    "a_device": "dist1",
                    "a_interface": "GigabitEthernet0/2",
                    "b_device": "acc1",
                    "b_interface": "ge-0/0/0",
                },
            ],
        }
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def snmp_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SNMP_PERSISTENT_DIR"] = str(tmp_path / "snmp-persist")
    env["MIBS"] = ""
    return env


@pytest.fixture
def trap_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
async def lab(clock: FakeClock) -> AsyncIterator[LabNetwork]:
    net = LabNetwork(small_topology(), ssh=False, now=clock, fresh_boot=True)
    await net.start()
    try:
        yield net
    finally:
        await net.stop()


async def run_tool(env: dict[str, str], tool: str, *args: str, timeout: float = 15) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        tool,
        "-On",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


_LINE = re.compile(r"^(\.[0-9.]+) = (.*)$")


def parse_vars(out: str) -> dict[str, str]:
    """'.1.3.6.1.2.1.1.5.0 = STRING: "x"' lines -> {'1.3.6.1.2.1.1.5.0': 'STRING: "x"'}."""
    result = {}
    for line in out.splitlines():
        m = _LINE.match(line.strip())
        if m:
            result[m.group(1)[1:]] = m.group(2)
    return result


def target(device) -> str:
    return f"{device.address}:{device.snmp_port}"
