"""The lab SSH CLI driven end to end by netmiko over real SSH on loopback."""

from __future__ import annotations

import os
import random
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

from lab.model import LabDevice, LabInterface
from lab.ssh import LAB_SSH_PASSWORD, LAB_SSH_USERNAME, lab_host_key, start_ssh_server
from tests.support import BackgroundLoop


@pytest.fixture(scope="module")
def bg() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop(timeout=10)
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def host_key() -> asyncssh.SSHKey:
    return lab_host_key()


def _address() -> str:
    # distinct per test and per parallel run: 127.32.0.0/16 is all loopback on Linux
    return f"127.32.{random.randint(1, 254)}.{random.randint(1, 254)}"


def make_device(device_type: str, name: str) -> LabDevice:
    cisco = device_type == "cisco_ios"
    names = [f"GigabitEthernet0/{i}" if cisco else f"ge-0/0/{i}" for i in range(4)]
    interfaces = [
        LabInterface(
            if_index=i + 1,
            name=n,
            mac=f"52:54:00:00:00:{i:02x}",
            ip_address="10.1.0.1/30" if i == 0 else None,
            neighbor=("peer-1", "Gi0/3" if cisco else "ge-0/0/3") if i == 1 else None,
            in_rate_bps=8_000_000.0,
        )
        for i, n in enumerate(names)
    ]
    return LabDevice(
        name=name,
        address=_address(),
        role="access",
        vendor="cisco" if cisco else "juniper",
        platform="ios" if cisco else "junos",
        device_type=device_type,
        site="lab-1",
        interfaces=interfaces,
        ssh_port=random.randint(20_000, 60_000),
        boot_time=time.time() - 3 * 86400 - 3700,
    )


Started = Callable[..., tuple[LabDevice, list[tuple[str, str]]]]


@pytest.fixture
def started(bg: BackgroundLoop, host_key: asyncssh.SSHKey) -> Iterator[Started]:
    acceptors: list[asyncssh.SSHAcceptor] = []

    def start(device_type: str, name: str = "lab-r1") -> tuple[LabDevice, list[tuple[str, str]]]:
        changes: list[tuple[str, str]] = []
        for _ in range(5):  # a random port may be taken by a parallel run
            device = make_device(device_type, name)
            try:
                acceptor = bg.run(
                    start_ssh_server(device, host_keys=host_key, on_change=lambda d, i: changes.append((d.name, i)))
                )
            except OSError:
                continue
            acceptors.append(acceptor)
            return device, changes
        raise RuntimeError("no free port")

    yield start

    async def close_all() -> None:
        for acceptor in acceptors:
            acceptor.close()
            await acceptor.wait_closed()

    bg.run(close_all())


def connect(device: LabDevice, **overrides: Any) -> Any:
    params: dict[str, Any] = {
        "device_type": device.device_type,
        "host": device.address,
        "port": device.ssh_port,
        "username": LAB_SSH_USERNAME,
        "password": LAB_SSH_PASSWORD,
        "secret": LAB_SSH_PASSWORD,
        "conn_timeout": 5,
        "auth_timeout": 5,
        "banner_timeout": 5,
        # the lab's host key is generated per run: nothing to pin against here
        "system_host_keys": False,
        "alt_host_keys": False,
    }
    params.update(overrides)
    return ConnectHandler(**params)


# ------------------------------------------------------------------------ Cisco IOS


def test_ios_show_version_and_textfsm_parsed_brief(started: Started) -> None:
    device, _ = started("cisco_ios", "lab-r1")
    with connect(device) as conn:
        assert conn.find_prompt() == "lab-r1>"
        version = conn.send_command("show version")
        assert "Cisco IOS Software" in version
        assert "lab-r1 uptime is 3 days, 1 hour, 1 minute" in version

        rows = conn.send_command("show ip interface brief", use_textfsm=True)
        assert rows == [
            {"interface": "GigabitEthernet0/0", "ip_address": "10.1.0.1", "status": "up", "proto": "up"},
            {"interface": "GigabitEthernet0/1", "ip_address": "unassigned", "status": "up", "proto": "up"},
            {"interface": "GigabitEthernet0/2", "ip_address": "unassigned", "status": "up", "proto": "up"},
            {"interface": "GigabitEthernet0/3", "ip_address": "unassigned", "status": "up", "proto": "up"},
        ]
        lldp = conn.send_command("show lldp neighbors", use_textfsm=True)
        assert [(r["neighbor_name"], r["local_interface"], r["neighbor_interface"]) for r in lldp] == [
            ("peer-1", "Gi0/1", "Gi0/3")
        ]
        parsed_version = conn.send_command("show version", use_textfsm=True)
        assert parsed_version[0]["hostname"] == "lab-r1"
        assert parsed_version[0]["version"] == "15.9(3)M4"
        assert parsed_version[0]["uptime_days"] == "3"


def test_ios_config_push_changes_shared_state(started: Started) -> None:
    device, changes = started("cisco_ios", "lab-r2")
    with connect(device) as conn:
        conn.enable()
        assert conn.find_prompt() == "lab-r2#"
        out = conn.send_config_set(["interface Gi0/2", "description CUST-42", "shutdown"])
        assert "Invalid input" not in out
        saved = conn.save_config()
        assert "[OK]" in saved

        running = conn.send_command("show running-config")
        block = running.split("interface GigabitEthernet0/2\n", 1)[1].split("!", 1)[0]
        assert " description CUST-42\n" in block
        assert " shutdown\n" in block
        assert conn.send_command("show startup-config").count("description CUST-42") == 1

        brief = conn.send_command("show ip interface brief", use_textfsm=True)
        assert brief[2]["status"] == "administratively down"
        assert "GigabitEthernet0/2 is administratively down, line protocol is down" in conn.send_command(
            "show interfaces GigabitEthernet0/2"
        )

    itf = device.interface("GigabitEthernet0/2")
    assert itf is not None
    assert (itf.alias, itf.admin_up) == ("CUST-42", False)
    assert changes == [("lab-r2", "GigabitEthernet0/2"), ("lab-r2", "GigabitEthernet0/2")]
    assert device.saved_config is not None and "description CUST-42" in device.saved_config


def test_ios_invalid_command_is_reported_and_session_survives(started: Started) -> None:
    device, _ = started("cisco_ios", "lab-r3")
    with connect(device) as conn:
        conn.enable()
        # netmiko has already consumed the prompt the echo follows; the caret still counts it
        raw = conn.send_command("foo bar", strip_prompt=False, strip_command=False)
        assert raw.splitlines() == [
            "foo bar",
            "       ^",
            "% Invalid input detected at '^' marker.",
            "",
            "lab-r3#",
        ]
        # the caret marks the first character no command can continue with
        raw = conn.send_command("show ip interface bruf", strip_prompt=False, strip_command=False)
        assert raw.splitlines()[1] == " " * len("lab-r3#show ip interface br") + "^"
        assert "% Incomplete command." in conn.send_command("show ip")
        assert '% Ambiguous command:  "co"' in conn.send_command("co")

        out = conn.send_config_set(["interface Gi0/9", "interface gi0/1", "ip address 10.9.9.1 255.0.255.0"])
        assert "% Invalid input detected at '^' marker." in out
        assert "Bad mask 0xFF00FF00 for address 10.9.9.1" in out
        # still alive and answering
        assert "Cisco IOS Software" in conn.send_command("show version")


def test_ios_config_via_abbreviations_and_vlans(started: Started) -> None:
    device, changes = started("cisco_ios", "lab-r4")
    with connect(device) as conn:
        conn.enable()
        conn.send_config_set(
            [
                "vlan 120",
                "name CUST-120",
                "int GigabitEthernet 0/3",
                "switchport mode access",
                "switchport access vlan 120",
                "int gi0/1",
                "ip address 192.0.2.1 255.255.255.252",
                "no shutdown",
            ]
        )
        running = conn.send_command("show running-config")
    assert device.vlans == {120: "CUST-120"}
    assert device.interfaces[3].access_vlan == 120
    assert device.interfaces[1].ip_address == "192.0.2.1/30"
    assert "vlan 120\n name CUST-120\n" in running
    assert " ip address 192.0.2.1 255.255.255.252\n" in running
    # no shutdown on an interface already up is not a change
    assert changes == [("lab-r4", "GigabitEthernet0/1")]


# ------------------------------------------------------------------------ Junos


def test_junos_commit_applies_candidate(started: Started) -> None:
    device, changes = started("juniper_junos", "lab-j1")
    itf = device.interface("ge-0/0/2")
    assert itf is not None
    with connect(device, secret="") as conn:
        assert conn.find_prompt() == "admin@lab-j1>"
        assert "Junos: 21.4R3.15" in conn.send_command("show version")
        terse = conn.send_command("show interfaces terse")
        assert "ge-0/0/0.0              up    up   inet     10.1.0.1/30" in terse

        out = conn.send_config_set(
            ['set interfaces ge-0/0/2 description "CUST 42"', "set interfaces ge-0/0/2 disable"],
            exit_config_mode=False,
        )
        assert "error" not in out
        # candidate only: nothing reaches the device before commit
        assert (itf.alias, itf.admin_up, changes) == ("", True, [])
        compare = conn.send_command("show | compare")
        assert "[edit interfaces ge-0/0/2]" in compare
        assert '+   description "CUST 42";' in compare

        assert "commit complete" in conn.commit()
        conn.exit_config_mode()
        config = conn.send_command("show configuration")
        assert 'description "CUST 42";' in config
        assert "disable;" in config
        display_set = conn.send_command("show configuration | display set")
        assert 'set interfaces ge-0/0/2 description "CUST 42"' in display_set
        assert conn.send_command("show interfaces terse").count("ge-0/0/2                down  down") == 1

    assert (itf.alias, itf.admin_up) == ("CUST 42", False)
    assert changes == [("lab-j1", "ge-0/0/2")]


def test_junos_errors_rollback_and_lldp(started: Started) -> None:
    device, changes = started("juniper_junos", "lab-j2")
    with connect(device, secret="") as conn:
        raw = conn.send_command("foo", strip_prompt=False, strip_command=False)
        assert raw.splitlines()[:3] == ["foo", " " * len("admin@lab-j2> ") + "^", "unknown command."]
        lldp = conn.send_command("show lldp neighbors", use_textfsm=True)
        assert [(r["local_interface"], r["neighbor_name"], r["neighbor_interface"]) for r in lldp] == [
            ("ge-0/0/1", "peer-1", "ge-0/0/3")
        ]
        out = conn.send_config_set(
            [
                "set interfaces ge-0/0/1 bogus",
                "set vlans CUST vlan-id 300",
                "set interfaces ge-0/0/1 description X",
            ],
            exit_config_mode=False,
        )
        assert "syntax error." in out
        assert "load complete" in conn.send_command("rollback 0")
        assert conn.send_command("show | compare").strip() == ""
        assert "commit complete" in conn.commit(and_quit=True)
    assert device.vlans == {}
    assert device.interface("ge-0/0/1").alias == ""  # type: ignore[union-attr]
    assert changes == []


# ------------------------------------------------------------------- security / faults


def test_wrong_password_is_rejected(started: Started) -> None:
    device, _ = started("cisco_ios", "lab-r5")
    with pytest.raises(NetmikoAuthenticationException):
        connect(device, password="not-the-password")


def test_crashed_device_refuses_and_drops_sessions(started: Started) -> None:
    device, _ = started("cisco_ios", "lab-r6")
    conn = connect(device)
    assert "Cisco IOS Software" in conn.send_command("show version")
    device.crashed = True
    with pytest.raises(NetmikoTimeoutException):
        connect(device)
    # the open session is dropped by the crash watch (0.5 s period)
    deadline = time.monotonic() + 5
    while conn.is_alive() and time.monotonic() < deadline:
        conn.remote_conn.transport.send_ignore()  # poke: a dropped transport notices
        threading.Event().wait(0.1)
    assert not conn.is_alive()
    conn.disconnect()

    device.crashed = False  # the box comes back: sessions work again
    with connect(device) as again:
        assert "Cisco IOS Software" in again.send_command("show version")


def test_exec_channel_runs_one_command(started: Started, bg: BackgroundLoop) -> None:
    device, _ = started("cisco_ios", "lab-r7")

    async def run() -> tuple[str, Any]:
        async with asyncssh.connect(
            device.address,
            device.ssh_port,
            username=LAB_SSH_USERNAME,
            password=LAB_SSH_PASSWORD,
            known_hosts=None,
            client_keys=None,
        ) as client:
            result = await client.run("show ip interface brief", timeout=5)
            return str(result.stdout), result.exit_status

    stdout, status = bg.run(run())
    assert status == 0
    assert "GigabitEthernet0/0     10.1.0.1        YES NVRAM  up                    up" in stdout


def test_lab_host_key_is_created_once_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "lab" / "ssh_host_ed25519_key"
    first = lab_host_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = lab_host_key(path)
    assert first.public_data == second.public_data
    assert first.algorithm == b"ssh-ed25519"
    assert lab_host_key() is lab_host_key()
