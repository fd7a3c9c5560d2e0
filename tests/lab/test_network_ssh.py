"""The runner with the SSH CLIs on: login works, `shutdown` over SSH sends traps, crash closes SSH."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest

from lab.network import LabNetwork

from .conftest import FakeClock, small_topology


@pytest.fixture
async def ssh_lab(clock: FakeClock):
    topo = small_topology()
    for d in topo.devices:
        d.ssh_port = 22022
    net = LabNetwork(topo, ssh=True, now=clock, fresh_boot=True)
    await net.start()
    yield net
    await net.stop()


async def _connect(device):
    return await asyncssh.connect(
        device.address,
        port=device.ssh_port,
        username="admin",
        password="lab-admin",
        known_hosts=None,
        connect_timeout=3,
    )


async def test_ssh_login_and_crash_reboot(ssh_lab: LabNetwork) -> None:
    d = ssh_lab.devices["dist1"]
    async with await _connect(d) as conn:
        assert conn is not None
    ssh_lab.faults.apply("crash", {"device": "dist1"})
    await asyncio.sleep(0.05)
    with pytest.raises((OSError, asyncssh.Error, TimeoutError)):
        conn = await _connect(d)
        conn.close()
    ssh_lab.faults.apply("reboot", {"device": "dist1"})
    for _ in range(500):  # the listener restarts in a background task: wait up to 10 s
        if "dist1" in ssh_lab._ssh:
            break
        await asyncio.sleep(0.02)
    async with await _connect(d) as conn:
        assert conn is not None


async def test_shutdown_over_ssh_changes_both_ends(ssh_lab: LabNetwork) -> None:
    d = ssh_lab.devices["dist1"]
    sent_before = ssh_lab.traps.stats.sent
    changes = []
    original = ssh_lab.notify_change

    def spy(device, interface):
        changes.append((device.name, interface))
        return original(device, interface)

    ssh_lab.notify_change = spy  # type: ignore[method-assign]
    async with await _connect(d) as conn:
        proc = await conn.create_process(term_type="vt100")
        for line in (
            "enable",
            "lab-admin",
            "configure terminal",
            "interface GigabitEthernet0/2",
            "shutdown",
            "end",
            "exit",
        ):
            proc.stdin.write(line + "\n")
        try:
            await asyncio.wait_for(proc.wait_closed(), 5)
        except TimeoutError:
            proc.close()
    assert ("dist1", "GigabitEthernet0/2") in changes
    assert not d.interface("GigabitEthernet0/2").admin_up
    assert not ssh_lab.devices["acc1"].interface("ge-0/0/0").oper_up  # the far end lost carrier
    assert ssh_lab.traps.stats.sent == sent_before  # no receivers configured: nothing sent, nothing crashed
