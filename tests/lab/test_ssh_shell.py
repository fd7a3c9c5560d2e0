"""The vendor CLIs as text state machines: what a terminal sends in, what comes back.

No SSH here (tests/lab/test_ssh.py drives the same shells through netmiko); these cover
the dialect details that would take a second each over a real session.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.model import LabDevice, LabInterface
from lab.shell import CiscoIosShell, JunosShell

PASSWORD = "s3cret"


class Clock:
    def __init__(self, now: float = 1_764_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_device(vendor: str) -> LabDevice:
    cisco = vendor == "cisco"
    names = [f"GigabitEthernet0/{i}" if cisco else f"ge-0/0/{i}" for i in range(3)]
    return LabDevice(
        name="r1",
        address="127.0.0.1",
        role="access",
        vendor=vendor,
        platform="ios" if cisco else "junos",
        device_type="cisco_ios" if cisco else "juniper_junos",
        site="s1",
        interfaces=[LabInterface(if_index=i + 1, name=n) for i, n in enumerate(names)],
        boot_time=1_764_000_000.0 - 7200,
    )


class Term:
    """Types into a shell the way a terminal does (chars + CR) and collects the screen."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.screen = shell.greeting()

    def type(self, line: str, end: str = "\r") -> str:
        out = self.shell.feed(line + end)
        self.screen += out
        assert "\r\n" in out or not out.count("\n"), "output must use CRLF line endings"
        return out.replace("\r\n", "\n")


@pytest.fixture
def ios() -> tuple[Term, LabDevice, list[str], Clock]:
    device = make_device("cisco")
    changes: list[str] = []
    clock = Clock()
    shell = CiscoIosShell(
        device, username="admin", password=PASSWORD, on_change=lambda d, i: changes.append(i), clock=clock
    )
    return Term(shell), device, changes, clock


def enable(term: Term) -> None:
    assert term.type("enable").endswith("Password: ")
    assert term.type(PASSWORD).endswith("\nr1#")


def test_ios_invalid_input_transcript_is_exact(ios: Any) -> None:
    term, *_ = ios
    enable(term)
    assert term.type("foo bar") == "foo bar\n   ^\n% Invalid input detected at '^' marker.\n\nr1#"
    assert term.type("show ip") == "show ip\n% Incomplete command.\n\nr1#"
    assert term.type("show interfaces Gi0/7").splitlines()[1] == " " * len("r1#show interfaces ") + "^"


def test_ios_enable_needs_the_secret(ios: Any) -> None:
    term, *_ = ios
    assert term.shell.prompt() == "r1>"
    # not an EXEC command at privilege level 1
    out = term.type("configure terminal")
    assert out.splitlines()[1:3] == ["   ^", "% Invalid input detected at '^' marker."]
    term.type("enable")
    out = term.type("wrong")
    assert "wrong" not in out  # the secret is never echoed
    assert out == "\n% Access denied\n\nr1>"
    enable(term)


def test_ios_abbreviations_modes_and_ctrl_z(ios: Any) -> None:
    term, device, changes, _ = ios
    enable(term)
    assert term.type("sh ip int br").count("unassigned") == 3
    assert term.type("conf t").endswith("r1(config)#")
    assert term.type("int GigabitEthernet 0/1").endswith("r1(config-if)#")
    term.type("descr uplink to core  ")
    assert device.interfaces[1].alias == "uplink to core"
    # a global command from a sub-mode runs in global config, as IOS does
    assert term.type("vlan 30").endswith("r1(config-vlan)#")
    term.type("name VOICE")
    assert device.vlans == {30: "VOICE"}
    assert term.type("interface gi0/2").endswith("r1(config-if)#")
    assert "GigabitEthernet0/2 is up" in term.type("do show interfaces gi0/2")
    term.type("no description")
    assert term.shell.feed("\x1a").replace("\r\n", "\n") == "^Z\nr1#"
    assert changes == ["GigabitEthernet0/1"]  # alias of 0/2 was already empty: no change


def test_ios_line_editing_and_pipes(ios: Any) -> None:
    term, *_ = ios
    enable(term)
    out = term.type("show verx\x7fsion | include uptime")
    assert out.splitlines()[-2] == "r1 uptime is 2 hours, 0 minutes"
    assert term.type("show clock", end="\r\n").startswith("show clock\n*")  # CRLF is one Enter
    assert term.type("").endswith("\nr1#")


def test_ios_shutdown_rebases_counters_and_stamps_last_change(ios: Any) -> None:
    term, device, changes, clock = ios
    itf = device.interfaces[0]
    itf.in_rate_bps = 8_000.0  # 1000 octets/s
    itf.base_time = clock.now
    enable(term)
    clock.now += 10
    assert "10000 bytes" in term.type("show interfaces GigabitEthernet0/0")
    term.type("configure terminal")
    term.type("interface Gi0/0")
    term.type("shutdown")
    assert (itf.admin_up, itf.in_octets_base, itf.last_change) == (False, 10_000, clock.now)
    clock.now += 10  # no traffic while down
    term.type("end")
    assert "10000 bytes" in term.type("show interfaces Gi0/0")
    assert changes == ["GigabitEthernet0/0"]


def test_ios_copy_run_start_asks_for_the_destination(ios: Any) -> None:
    term, device, _, _ = ios
    enable(term)
    assert term.type("copy running-config startup-config").endswith("Destination filename [startup-config]? ")
    assert "[OK]" in term.type("")
    assert device.saved_config is not None and "hostname r1" in device.saved_config
    assert term.type("show startup-config").count("hostname r1") == 1
    assert term.type("exit") == "exit\n"
    assert term.shell.closed


# ------------------------------------------------------------------------ Junos


@pytest.fixture
def junos() -> tuple[Term, LabDevice, list[str], dict[str, Any]]:
    device = make_device("juniper")
    changes: list[str] = []
    shared: dict[str, Any] = {}
    shell = JunosShell(
        device,
        username="admin",
        password=PASSWORD,
        on_change=lambda d, i: changes.append(i),
        clock=Clock(),
        shared=shared,
    )
    return Term(shell), device, changes, shared


def test_junos_candidate_is_shared_and_survives_exit(junos: Any) -> None:
    term, device, changes, shared = junos
    assert term.type("configure").endswith("\n[edit]\nadmin@r1# ")
    term.type("set interfaces ge-0/0/1 description core-link")
    out = term.type("exit")
    assert out.endswith("Exit with uncommitted changes? [yes,no] (yes) ")
    assert term.type("yes").endswith("admin@r1> ")
    assert device.interfaces[1].alias == ""

    # a second session on the same box sees the same candidate and commits it
    other = Term(JunosShell(device, username="admin", password=PASSWORD, clock=Clock(), shared=shared))
    assert "changed but not committed" in other.type("configure")
    assert "+   description core-link;" in other.type("show | compare")
    assert "commit complete" in other.type("commit and-quit")
    assert device.interfaces[1].alias == "core-link"
    assert changes == []  # the second session had no on_change callback


def test_junos_commit_applies_only_what_the_candidate_changed(junos: Any) -> None:
    term, device, changes, _ = junos
    term.type("configure")
    term.type("set interfaces ge-0/0/2 disable")
    device.interfaces[2].alias = "set by SNMP meanwhile"
    assert term.type("commit").startswith("commit\ncommit complete\n")
    assert (device.interfaces[2].admin_up, device.interfaces[2].alias) == (False, "set by SNMP meanwhile")
    term.type("delete interfaces ge-0/0/2 disable")
    term.type("commit")
    assert device.interfaces[2].admin_up
    assert changes == ["ge-0/0/2", "ge-0/0/2"]


def test_junos_vlans_and_commit_check(junos: Any) -> None:
    term, device, _, _ = junos
    term.type("configure")
    term.type("set interfaces ge-0/0/0 unit 0 family ethernet-switching vlan members CUST")
    out = term.type("commit")
    assert "Referenced vlan CUST is not defined" in out
    assert "error: configuration check-out failed" in out
    term.type("set vlans CUST vlan-id 300")
    term.type("set interfaces ge-0/0/1 unit 0 family inet address 192.0.2.1/31")
    assert "configuration check succeeds" in term.type("commit check")
    assert device.vlans == {}
    term.type("commit")
    assert device.vlans == {300: "CUST"}
    assert device.interfaces[0].access_vlan == 300
    assert device.interfaces[1].ip_address == "192.0.2.1/31"
    shown = term.type("show interfaces ge-0/0/1")
    assert "address 192.0.2.1/31;" in shown
    assert "set vlans CUST vlan-id 300" in term.type("run show configuration | display set")


def test_junos_error_messages(junos: Any) -> None:
    term, *_ = junos
    caret = " " * len("admin@r1> show ") + "^"
    assert term.type("show bogus") == f"show bogus\n{caret}\nsyntax error.\n\nadmin@r1> "
    assert term.type("frobnicate").splitlines()[2] == "unknown command."
    term.type("configure")
    out = term.type("set interfaces ge-0/0/1 description")
    assert out.splitlines()[2] == "missing argument."
    out = term.type("set interfaces ge-0/0/9 disable")
    assert out.splitlines()[1] == " " * len("admin@r1# set interfaces ") + "^"
    assert out.splitlines()[2] == "syntax error."
    assert term.type("rollback 0").startswith("rollback 0\nload complete\n")


def test_ios_section_pipe_and_last_change_stamp(ios: Any) -> None:
    term, _, _, clock = ios
    enable(term)
    term.type("configure terminal")
    clock.now += 60
    term.type("interface Gi0/1")
    term.type("description to-core")
    term.type("end")
    out = term.type("show running-config | section interface GigabitEthernet0/1")
    assert out.splitlines()[1:4] == ["interface GigabitEthernet0/1", " description to-core", " no ip address"]
    assert "! Last configuration change at 16:01:00 UTC Mon Nov 24 2025 by admin" in term.type("show run")


def test_a_failing_on_change_does_not_break_the_session() -> None:
    device = make_device("cisco")

    def explode(_device: LabDevice, _name: str) -> None:
        raise RuntimeError("trap sender down")

    term = Term(CiscoIosShell(device, username="admin", password=PASSWORD, on_change=explode, clock=Clock()))
    enable(term)
    term.type("configure terminal")
    term.type("interface Gi0/0")
    assert term.type("shutdown").endswith("r1(config-if)#")
    assert not device.interfaces[0].admin_up
    assert term.type("end").endswith("r1#")


def test_junos_last_commit_is_remembered(junos: Any) -> None:
    term, _, _, shared = junos
    term.type("configure")
    term.type("set interfaces ge-0/0/0 description x")
    term.shell.clock.now += 3600
    term.type("commit and-quit")
    assert term.type("show configuration").splitlines()[1] == "## Last commit: 2025-11-24 17:00:00 UTC by admin"


def test_a_pipe_inside_config_text_is_text(ios: Any, junos: Any) -> None:
    term, device, _, _ = ios
    enable(term)
    term.type("configure terminal")
    term.type("interface Gi0/0")
    term.type("description A|B circuit")
    assert device.interfaces[0].alias == "A|B circuit"
    out = term.type("do show interfaces description | include A.B")
    assert out.splitlines()[1:] == [f"{'Gi0/0':<31}{'up':<15}{'up':<9}A|B circuit", "r1(config-if)#"]

    jterm, jdevice, _, _ = junos
    jterm.type("configure")
    jterm.type('set interfaces ge-0/0/0 description "A|B circuit"')
    jterm.type("commit")
    assert jdevice.interfaces[0].alias == "A|B circuit"


def test_junos_caret_marks_the_start_of_the_bad_word(junos: Any) -> None:
    term, *_ = junos
    out = term.type("show interfaces tersely")
    assert out.splitlines()[1:3] == [" " * len("admin@r1> show interfaces ") + "^", "syntax error."]
    term.type("configure")
    out = term.type("sett interfaces ge-0/0/0 disable")
    assert out.splitlines()[1:3] == [" " * len("admin@r1# ") + "^", "unknown command."]
