"""The lab network's state: one object per simulated device, shared by the SNMP agent,
the SSH CLI, the trap sender and fault injection.

This module is the contract between those parts. Everything reads time through an
injectable ``now`` callable (seconds, float) so tests can move time.

Counters are derived, not stored per tick: an interface carries a byte rate and the
counter value at the last rate change; the current value is computed on read. That
keeps 500 devices idle at zero CPU and makes 32-bit wraps happen exactly as on a real
device (value modulo 2**32).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

COUNTER32_MOD = 2**32
COUNTER64_MOD = 2**64


@dataclass
class LabInterface:
    if_index: int
    name: str  # vendor name, e.g. "GigabitEthernet0/1" or "ge-0/0/1"
    speed_mbps: int = 1000
    alias: str = ""  # ifAlias / "description"
    admin_up: bool = True
    link_up: bool = True  # physical state (both ends of a lab link share it)
    mac: str = "00:00:00:00:00:00"
    ip_address: str | None = None  # "10.0.0.1/30" when configured
    access_vlan: int | None = None
    in_rate_bps: float = 0.0  # bits per second, settable
    out_rate_bps: float = 0.0
    # counter bases: octets at `base_time`; the current value adds rate * elapsed
    in_octets_base: int = 0
    out_octets_base: int = 0
    in_errors_base: int = 0
    error_rate_pps: float = 0.0
    base_time: float = 0.0
    last_change: float = 0.0  # time of the last oper status change (ifLastChange)
    neighbor: tuple[str, str] | None = None  # (remote device name, remote interface name)
    # added for the SNMP agent: time of the last counter reset (ifCounterDiscontinuityTime)
    discontinuity_time: float = 0.0
    out_errors_base: int = 0

    @property
    def oper_up(self) -> bool:
        return self.admin_up and self.link_up

    # Counter reads. Traffic only flows while the interface is operationally up; whoever
    # changes oper state calls ``rebase(now, was_up)`` first so the elapsed period is
    # credited with the state it really had. Values are unbounded ints; SNMP applies
    # the 2**32 / 2**64 modulus.
    def _elapsed(self, now: float, up: bool | None = None) -> float:
        if not (self.oper_up if up is None else up):
            return 0.0
        return max(0.0, now - self.base_time)

    def in_octets(self, now: float, up: bool | None = None) -> int:
        return self.in_octets_base + int(self.in_rate_bps / 8 * self._elapsed(now, up))

    def out_octets(self, now: float, up: bool | None = None) -> int:
        return self.out_octets_base + int(self.out_rate_bps / 8 * self._elapsed(now, up))

    def in_errors(self, now: float, up: bool | None = None) -> int:
        return self.in_errors_base + int(self.error_rate_pps * self._elapsed(now, up))

    def out_errors(self, now: float, up: bool | None = None) -> int:
        return self.out_errors_base

    def rebase(self, now: float, was_up: bool | None = None) -> None:
        """Fold the counters accumulated so far into the bases (before a rate/state change)."""
        self.in_octets_base = self.in_octets(now, was_up)
        self.out_octets_base = self.out_octets(now, was_up)
        self.in_errors_base = self.in_errors(now, was_up)
        self.base_time = now

    def reset_counters(self, now: float) -> None:
        self.in_octets_base = self.out_octets_base = 0
        self.in_errors_base = self.out_errors_base = 0
        self.base_time = now
        self.discontinuity_time = now


@dataclass
class LabDevice:
    name: str
    address: str  # loopback address the agents bind to, e.g. "127.0.1.5"
    role: str  # core | distribution | access | cpe
    vendor: str  # "cisco" | "juniper" | ...
    platform: str  # "ios" | "junos" | ...
    device_type: str  # netmiko device_type, e.g. "cisco_ios"
    site: str
    interfaces: list[LabInterface] = field(default_factory=list)
    snmp_port: int = 161
    ssh_port: int = 22
    sys_object_id: str = "1.3.6.1.4.1.9.1.1"
    sys_descr: str = ""
    sys_name: str = ""  # sysName.0 when set; empty = the device name (LLDP keeps the name)
    sys_contact: str = "noc@example.net"
    sys_location: str = ""
    boot_time: float = field(default_factory=time.time)
    crashed: bool = False  # stops answering SNMP and SSH
    cpu_load: int = 5  # hrProcessorLoad percent
    memory_total_kb: int = 4_194_304
    memory_used_kb: int = 1_048_576
    temperature_c: int = 38
    snmp_delay_s: float = 0.0
    snmp_drop_pct: float = 0.0
    # extra running-config lines that are not derived from interface state
    # (hostname, vlans, ...); the CLI renders the full running-config from state + these
    vlans: dict[int, str] = field(default_factory=dict)
    saved_config: str | None = None  # set by `write memory`
    parents: list[str] = field(default_factory=list)  # upstream device names
    # added for the SNMP agent: snmpEngineBoots (incremented on every reboot)
    engine_boots: int = 1

    def interface(self, name: str) -> LabInterface | None:
        for itf in self.interfaces:
            if itf.name.lower() == name.lower():
                return itf
        return None

    def by_index(self, if_index: int) -> LabInterface | None:
        for itf in self.interfaces:
            if itf.if_index == if_index:
                return itf
        return None
