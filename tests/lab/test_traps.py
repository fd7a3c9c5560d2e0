"""Traps from the lab, received by Debian's net-snmp snmptrapd on a loopback port."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab import usm
from lab.network import LabNetwork

from .conftest import FakeClock, run_tool, small_topology, target

pytestmark = pytest.mark.skipif(shutil.which("snmptrapd") is None, reason="snmptrapd not installed")

LINK_DOWN = ".1.3.6.1.6.3.1.1.5.3"
LINK_UP = ".1.3.6.1.6.3.1.1.5.4"
COLD_START = ".1.3.6.1.6.3.1.1.5.1"
AUTH_FAILURE = ".1.3.6.1.6.3.1.1.5.5"


class TrapDaemon:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.text = ""

    async def _read_until(self, predicate, timeout: float) -> None:
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.text):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"snmptrapd did not see the expected traps; got:\n{self.text}")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                raise AssertionError(f"snmptrapd exited; output:\n{self.text}")
            self.text += line.decode()

    def traps(self) -> list[tuple[str, str]]:
        """(header line, varbind line) pairs."""
        lines = [ln for ln in self.text.splitlines() if ln.strip()]
        return [(lines[i], lines[i + 1]) for i in range(len(lines) - 1) if lines[i].rstrip().endswith("]:")]

    async def wait_traps(self, predicate, timeout: float = 5.0) -> list[tuple[str, str]]:
        await self._read_until(lambda _t: predicate(self.traps()), timeout)
        return self.traps()


async def start_trapd(tmp_path: Path, port: int, extra_conf: str = "") -> TrapDaemon:
    conf = tmp_path / "snmptrapd.conf"
    conf.write_text(f"disableAuthorization yes\nauthCommunity log public\n{extra_conf}")
    env = {"SNMP_PERSISTENT_DIR": str(tmp_path / "trapd-persist"), "MIBS": "", "PATH": "/usr/sbin:/usr/bin:/bin"}
    proc = await asyncio.create_subprocess_exec(
        "snmptrapd",
        "-f",
        "-Lo",
        "-C",
        "-c",
        str(conf),
        "-On",
        f"udp:127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    daemon = TrapDaemon(proc, port)
    await daemon._read_until(lambda t: "NET-SNMP version" in t, 10)
    daemon.text = ""
    return daemon


@pytest.fixture
async def trapd(tmp_path: Path, trap_port: int) -> AsyncIterator[TrapDaemon]:
    d = await start_trapd(tmp_path, trap_port)
    yield d
    d.proc.terminate()
    await d.proc.wait()


@pytest.fixture
async def trap_lab(clock: FakeClock, trapd: TrapDaemon) -> AsyncIterator[LabNetwork]:
    net = LabNetwork(
        small_topology(), ssh=False, now=clock, fresh_boot=True, trap_receivers=[("127.0.0.1", trapd.port)]
    )
    await net.start()
    yield net
    await net.stop()


def _src(header: str) -> str:
    m = re.search(r"\[UDP: \[([0-9.]+)\]:", header)
    assert m, header
    return m.group(1)


def _of(traps, oid: str) -> list[tuple[str, str]]:
    return [t for t in traps if f"OID: {oid}\t" in t[1] + "\t"]


async def test_link_down_sends_traps_from_both_ends(trap_lab: LabNetwork, trapd: TrapDaemon) -> None:
    trap_lab.faults.apply("link_down", {"device": "core1", "interface": "GigabitEthernet0/1"})
    traps = await trapd.wait_traps(lambda ts: len(_of(ts, LINK_DOWN)) >= 2)
    downs = _of(traps, LINK_DOWN)
    sources = {_src(h) for h, _ in downs}
    assert sources == {trap_lab.devices["core1"].address, trap_lab.devices["dist1"].address}
    for _, vbs in downs:
        assert ".1.3.6.1.2.1.2.2.1.1.1 = INTEGER: 1" in vbs  # ifIndex
        assert ".1.3.6.1.2.1.2.2.1.7.1 = INTEGER: 1" in vbs  # ifAdminStatus up
        assert ".1.3.6.1.2.1.2.2.1.8.1 = INTEGER: 2" in vbs  # ifOperStatus down
    trap_lab.faults.apply("link_up", {"device": "dist1", "interface": "GigabitEthernet0/1"})
    traps = await trapd.wait_traps(lambda ts: len(_of(ts, LINK_UP)) >= 2)
    assert all(".1.3.6.1.2.1.2.2.1.8.1 = INTEGER: 1" in vbs for _, vbs in _of(traps, LINK_UP))


async def test_cli_style_shutdown_notifies_both_ends(trap_lab: LabNetwork, trapd: TrapDaemon) -> None:
    # what the SSH CLI does on `interface Gi0/2` + `shutdown`: change the model, call on_change
    dist1 = trap_lab.devices["dist1"]
    itf = dist1.interface("GigabitEthernet0/2")
    itf.admin_up = False
    trap_lab._on_ssh_change(dist1, "GigabitEthernet0/2")
    traps = await trapd.wait_traps(lambda ts: len(_of(ts, LINK_DOWN)) >= 2)
    by_source = {_src(h): vbs for h, vbs in _of(traps, LINK_DOWN)}
    assert ".1.3.6.1.2.1.2.2.1.7.2 = INTEGER: 2" in by_source[dist1.address]  # admin down locally
    assert ".1.3.6.1.2.1.2.2.1.7.1 = INTEGER: 1" in by_source[trap_lab.devices["acc1"].address]  # peer admin up
    assert not trap_lab.devices["acc1"].interface("ge-0/0/0").oper_up


async def test_reboot_sends_cold_start(trap_lab: LabNetwork, trapd: TrapDaemon, clock: FakeClock) -> None:
    clock.advance(100)
    trap_lab.faults.apply("reboot", {"device": "acc1"})
    traps = await trapd.wait_traps(lambda ts: len(_of(ts, COLD_START)) >= 1)
    header, vbs = _of(traps, COLD_START)[0]
    assert trap_lab.devices["acc1"].address in header
    assert "Timeticks: (0)" in vbs


async def test_wrong_community_sends_authentication_failure(
    trap_lab: LabNetwork, trapd: TrapDaemon, snmp_env: dict
) -> None:
    d = trap_lab.devices["dist1"]
    rc, _, err = await run_tool(
        snmp_env, "snmpget", "-v2c", "-c", "wrong", "-t", "0.3", "-r", "0", target(d), "1.3.6.1.2.1.1.5.0"
    )
    assert rc != 0 and "Timeout" in err
    traps = await trapd.wait_traps(lambda ts: len(_of(ts, AUTH_FAILURE)) >= 1)
    assert d.address in _of(traps, AUTH_FAILURE)[0][0]
    assert trap_lab.agents["dist1"].stats.bad_community == 1


async def test_v3_traps_decoded_by_snmptrapd(tmp_path: Path, trap_port: int, clock: FakeClock) -> None:
    topo = small_topology()
    users = "".join(
        f"createUser -e 0x{usm.engine_id_for(d.name).hex()} labv3 SHA-256 lab-auth-pass AES lab-priv-pass\n"
        for d in topo.devices
    )
    (tmp_path / "v3").mkdir()
    trapd = await start_trapd(tmp_path / "v3", trap_port, users)
    net = LabNetwork(
        topo, ssh=False, now=clock, fresh_boot=True, trap_receivers=[("127.0.0.1", trap_port)], trap_version="v3"
    )
    await net.start()
    try:
        net.faults.apply("link_down", {"device": "dist1", "interface": "GigabitEthernet0/2"})
        traps = await trapd.wait_traps(lambda ts: len(_of(ts, LINK_DOWN)) >= 2)
        assert len(_of(traps, LINK_DOWN)) == 2
    finally:
        await net.stop()
        trapd.proc.terminate()
        await trapd.proc.wait()
