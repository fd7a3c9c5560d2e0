"""The objects one lab device exposes over SNMP, computed on read from the model.

``MibView`` is a sorted OID index (built lazily, once per device, on first request)
with one getter per instance. A getter returns ``(tag, value)`` or ``None`` when the
instance is currently absent (e.g. an LLDP neighbour on a link that is down); GETNEXT
skips absent instances. The index is rebuilt only when the interface list changes.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from lab.model import Clock, LabDevice, LabInterface
from snmpwire import ber

Getter = Callable[[], "tuple[int, Any] | None"]


def const(tag: int, value: Any) -> Getter:
    """A getter that always answers ``value`` (a closure: loop variables bound now)."""
    return lambda: (tag, value)


def port_getters(itf: LabInterface) -> tuple[Getter, Getter]:
    """lldpLocPortId and lldpLocPortDesc, read at each request (a fault may change the alias)."""
    return (lambda: (STR, itf.name)), (lambda: (STR, itf.alias or itf.name))


def scaled(read_kb: Callable[[], int], unit: int) -> Getter:
    """hrStorage sizes: kilobytes read at each request, in allocation units of ``unit`` bytes."""
    return lambda: (INT, read_kb() * 1024 // unit)

SYS = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
HR_SYSTEM_UPTIME = (1, 3, 6, 1, 2, 1, 25, 1, 1, 0)
HR_MEMORY_SIZE = (1, 3, 6, 1, 2, 1, 25, 2, 2, 0)
HR_STORAGE_ENTRY = (1, 3, 6, 1, 2, 1, 25, 2, 3, 1)
HR_PROCESSOR_LOAD = (1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2)
ENT_PHYSICAL_ENTRY = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1)
ENT_SENSOR_ENTRY = (1, 3, 6, 1, 2, 1, 99, 1, 1, 1)
LLDP_LOC = (1, 0, 8802, 1, 1, 2, 1, 3)
LLDP_LOC_PORT_ENTRY = LLDP_LOC + (7, 1)
LLDP_REM_ENTRY = (1, 0, 8802, 1, 1, 2, 1, 4, 1, 1)
SNMP_ENGINE = (1, 3, 6, 1, 6, 3, 10, 2, 1)

IF_TYPE_ETHERNET = 6
IF_TYPE_LOOPBACK = 24
HR_STORAGE_RAM = (1, 3, 6, 1, 2, 1, 25, 2, 1, 2)
HR_STORAGE_FIXED_DISK = (1, 3, 6, 1, 2, 1, 25, 2, 1, 4)
AVG_PACKET_BYTES = 700

INT, STR, OBJ, C32, G32, TT, C64 = (
    ber.INTEGER,
    ber.OCTET_STRING,
    ber.OID,
    ber.COUNTER32,
    ber.GAUGE32,
    ber.TIMETICKS,
    ber.COUNTER64,
)


def device_mac(name: str) -> bytes:
    """Stable locally-administered base MAC for a device (LLDP chassis ID)."""
    h = hashlib.sha256(name.encode()).digest()
    return bytes((0x02, h[0], h[1], h[2], h[3], 0x00))


def interface_mac(name: str, if_index: int) -> bytes:
    base = device_mac(name)
    return base[:5] + bytes((if_index & 0xFF,))


def mac_bytes(text: str) -> bytes:
    try:
        b = bytes(int(x, 16) for x in text.replace("-", ":").split(":"))
    except ValueError:
        return b"\x00" * 6
    return b if len(b) == 6 else b"\x00" * 6


class MibView:
    def __init__(
        self,
        device: LabDevice,
        now: Clock,
        resolve: Callable[[str], LabDevice | None],
        engine_id: bytes = b"",
    ) -> None:
        self.device = device
        self.now = now
        self.resolve = resolve
        self.engine_id = engine_id
        self._built_for: tuple[int, ...] | None = None
        self.oids: list[tuple[int, ...]] = []
        self.oid_tlvs: list[bytes] = []
        self.getters: list[Getter] = []
        self.position: dict[tuple[int, ...], int] = {}
        self.objects: set[tuple[int, ...]] = set()

    # ------------------------------------------------------------ index
    def ensure(self) -> None:
        """Build (or rebuild, when the interface list changed) the OID index."""
        key = tuple(i.if_index for i in self.device.interfaces)
        if key != self._built_for:
            self._build()
            self._built_for = key

    def invalidate(self) -> None:
        self._built_for = None

    def _build(self) -> None:
        entries: list[tuple[tuple[int, ...], Getter, int]] = []

        def add(oid: tuple[int, ...], getter: Getter, index_len: int = 1) -> None:
            entries.append((oid, getter, index_len))

        d = self.device
        now = self.now

        def uptime() -> int:
            return max(0, int((now() - d.boot_time) * 100))

        def ticks_at(t: float) -> int:
            return max(0, int((t - d.boot_time) * 100))

        add(SYS + (1, 0), lambda: (STR, d.sys_descr or f"{d.vendor} {d.platform} lab device {d.name}"))
        add(SYS + (2, 0), lambda: (OBJ, ber.parse_oid_str(d.sys_object_id)))
        add(SYS + (3, 0), lambda: (TT, uptime()))
        add(SYS + (4, 0), lambda: (STR, d.sys_contact))
        add(SYS + (5, 0), lambda: (STR, d.sys_name or d.name))
        add(SYS + (6, 0), lambda: (STR, d.sys_location or d.site))
        add(SYS + (7, 0), lambda: (INT, 6 if d.role in ("core", "distribution") else 2))
        add(IF_NUMBER, lambda: (INT, len(d.interfaces)))

        for itf in d.interfaces:
            self._add_interface(add, itf, ticks_at)

        # HOST-RESOURCES
        add(HR_SYSTEM_UPTIME, lambda: (TT, uptime()))
        add(HR_MEMORY_SIZE, lambda: (INT, d.memory_total_kb))
        storages = [
            (1, HR_STORAGE_RAM, "Physical memory", 1024, lambda: d.memory_total_kb, lambda: d.memory_used_kb),
            (2, HR_STORAGE_FIXED_DISK, "flash:", 4096, lambda: 262144, lambda: 98304),
        ]
        for idx, stype, descr, unit, size, used in storages:
            add(HR_STORAGE_ENTRY + (1, idx), const(INT, idx))
            add(HR_STORAGE_ENTRY + (2, idx), const(OBJ, stype))
            add(HR_STORAGE_ENTRY + (3, idx), const(STR, descr))
            add(HR_STORAGE_ENTRY + (4, idx), const(INT, unit))
            add(HR_STORAGE_ENTRY + (5, idx), scaled(size, unit))
            add(HR_STORAGE_ENTRY + (6, idx), scaled(used, unit))
        add(HR_PROCESSOR_LOAD + (768,), lambda: (INT, d.cpu_load))

        # ENTITY-MIB (chassis + one temperature sensor) and ENTITY-SENSOR-MIB
        phys = [(1, "chassis", 3, d.name), (2, "chassis temperature sensor", 8, "Temp 1")]
        for idx, descr, cls, name in phys:
            add(ENT_PHYSICAL_ENTRY + (2, idx), const(STR, descr))
            add(ENT_PHYSICAL_ENTRY + (5, idx), const(INT, cls))
            add(ENT_PHYSICAL_ENTRY + (7, idx), const(STR, name))
        sensor = 2
        add(ENT_SENSOR_ENTRY + (1, sensor), lambda: (INT, 8))  # celsius
        add(ENT_SENSOR_ENTRY + (2, sensor), lambda: (INT, 9))  # units
        add(ENT_SENSOR_ENTRY + (3, sensor), lambda: (INT, 0))
        add(ENT_SENSOR_ENTRY + (4, sensor), lambda: (INT, d.temperature_c))
        add(ENT_SENSOR_ENTRY + (5, sensor), lambda: (INT, 1))  # ok
        add(ENT_SENSOR_ENTRY + (6, sensor), lambda: (STR, "celsius"))
        add(ENT_SENSOR_ENTRY + (7, sensor), lambda: (TT, uptime()))
        add(ENT_SENSOR_ENTRY + (8, sensor), lambda: (G32, 60000))

        # LLDP-MIB local system + ports + remote table
        add(LLDP_LOC + (1, 0), lambda: (INT, 4))  # chassis id subtype macAddress
        add(LLDP_LOC + (2, 0), lambda: (STR, device_mac(d.name)))
        add(LLDP_LOC + (3, 0), lambda: (STR, d.name))
        add(LLDP_LOC + (4, 0), lambda: (STR, d.sys_descr or f"{d.vendor} {d.platform}"))
        for itf in d.interfaces:
            n = itf.if_index
            add(LLDP_LOC_PORT_ENTRY + (2, n), lambda: (INT, 5))  # interfaceName
            port_id, port_desc = port_getters(itf)
            add(LLDP_LOC_PORT_ENTRY + (3, n), port_id)
            add(LLDP_LOC_PORT_ENTRY + (4, n), port_desc)
            if itf.neighbor is not None:
                self._add_lldp_remote(add, itf)

        # SNMP-FRAMEWORK-MIB snmpEngine group
        add(SNMP_ENGINE + (1, 0), lambda: (STR, self.engine_id))
        add(SNMP_ENGINE + (2, 0), lambda: (INT, d.engine_boots))
        add(SNMP_ENGINE + (3, 0), lambda: (INT, max(0, int(now() - d.boot_time))))
        add(SNMP_ENGINE + (4, 0), lambda: (INT, 65507))

        entries.sort(key=lambda e: e[0])
        self.oids = [e[0] for e in entries]
        self.getters = [e[1] for e in entries]
        self.oid_tlvs = [ber.enc_oid(e[0]) for e in entries]
        self.position = {oid: i for i, oid in enumerate(self.oids)}
        self.objects = {e[0][: -e[2]] for e in entries}

    def _add_interface(self, add: Callable[..., None], itf: LabInterface, ticks_at: Callable) -> None:
        d = self.device
        now = self.now
        n = itf.if_index
        loop = itf.name.lower().startswith(("loopback", "lo0"))
        mac = mac_bytes(itf.mac) if itf.mac != "00:00:00:00:00:00" else interface_mac(d.name, n)
        if loop:
            mac = b""

        def col(c: int, g: Getter) -> None:
            add(IF_ENTRY + (c, n), g)

        def xcol(c: int, g: Getter) -> None:
            add(IFX_ENTRY + (c, n), g)

        def in_oct() -> int:
            return itf.in_octets(now())

        def out_oct() -> int:
            return itf.out_octets(now())

        col(1, lambda: (INT, n))
        col(2, lambda: (STR, itf.name))
        col(3, lambda: (INT, IF_TYPE_LOOPBACK if loop else IF_TYPE_ETHERNET))
        col(4, lambda: (INT, 1514 if loop else 1500))
        col(5, lambda: (G32, min(itf.speed_mbps * 1_000_000, 0xFFFFFFFF)))
        col(6, lambda: (STR, mac))
        col(7, lambda: (INT, 1 if itf.admin_up else 2))
        col(8, lambda: (INT, 1 if itf.oper_up else 2))
        col(9, lambda: (TT, ticks_at(itf.last_change)))
        col(10, lambda: (C32, in_oct()))
        col(11, lambda: (C32, in_oct() // AVG_PACKET_BYTES))
        col(12, lambda: (C32, in_oct() // (AVG_PACKET_BYTES * 100)))
        col(13, lambda: (C32, 0))
        col(14, lambda: (C32, itf.in_errors(now())))
        col(15, lambda: (C32, 0))
        col(16, lambda: (C32, out_oct()))
        col(17, lambda: (C32, out_oct() // AVG_PACKET_BYTES))
        col(18, lambda: (C32, out_oct() // (AVG_PACKET_BYTES * 100)))
        col(19, lambda: (C32, 0))
        col(20, lambda: (C32, itf.out_errors(now())))
        col(21, lambda: (G32, 0))
        col(22, lambda: (OBJ, (0, 0)))

        xcol(1, lambda: (STR, itf.name))
        xcol(2, lambda: (C32, in_oct() // (AVG_PACKET_BYTES * 200)))
        xcol(3, lambda: (C32, in_oct() // (AVG_PACKET_BYTES * 200)))
        xcol(4, lambda: (C32, out_oct() // (AVG_PACKET_BYTES * 200)))
        xcol(5, lambda: (C32, out_oct() // (AVG_PACKET_BYTES * 200)))
        xcol(6, lambda: (C64, in_oct()))
        xcol(7, lambda: (C64, in_oct() // AVG_PACKET_BYTES))
        xcol(8, lambda: (C64, in_oct() // (AVG_PACKET_BYTES * 200)))
        xcol(9, lambda: (C64, in_oct() // (AVG_PACKET_BYTES * 200)))
        xcol(10, lambda: (C64, out_oct()))
        xcol(11, lambda: (C64, out_oct() // AVG_PACKET_BYTES))
        xcol(12, lambda: (C64, out_oct() // (AVG_PACKET_BYTES * 200)))
        xcol(13, lambda: (C64, out_oct() // (AVG_PACKET_BYTES * 200)))
        xcol(14, lambda: (INT, 1))
        xcol(15, lambda: (G32, itf.speed_mbps))
        xcol(16, lambda: (INT, 2))
        xcol(17, lambda: (INT, 2 if loop else 1))
        xcol(18, lambda: (STR, itf.alias))
        xcol(19, lambda: (TT, ticks_at(itf.discontinuity_time)))

    def _add_lldp_remote(self, add: Callable[..., None], itf: LabInterface) -> None:
        # index: lldpRemTimeMark(0).lldpRemLocalPortNum(ifIndex).lldpRemIndex(1)
        idx = (0, itf.if_index, 1)

        def remote() -> tuple[LabDevice, LabInterface] | None:
            if itf.neighbor is None or not itf.oper_up:
                return None
            rdev = self.resolve(itf.neighbor[0])
            if rdev is None or rdev.crashed:
                return None
            ritf = rdev.interface(itf.neighbor[1])
            if ritf is None:
                return None
            return rdev, ritf

        def rcol(fn: Callable[[LabDevice, LabInterface], tuple[int, Any]]) -> Getter:
            def g() -> tuple[int, Any] | None:
                r = remote()
                return None if r is None else fn(*r)

            return g

        add(LLDP_REM_ENTRY + (4,) + idx, rcol(lambda rd, ri: (INT, 4)), 3)
        add(LLDP_REM_ENTRY + (5,) + idx, rcol(lambda rd, ri: (STR, device_mac(rd.name))), 3)
        add(LLDP_REM_ENTRY + (6,) + idx, rcol(lambda rd, ri: (INT, 5)), 3)
        add(LLDP_REM_ENTRY + (7,) + idx, rcol(lambda rd, ri: (STR, ri.name)), 3)
        add(LLDP_REM_ENTRY + (8,) + idx, rcol(lambda rd, ri: (STR, ri.alias or ri.name)), 3)
        add(LLDP_REM_ENTRY + (9,) + idx, rcol(lambda rd, ri: (STR, rd.name)), 3)
        add(
            LLDP_REM_ENTRY + (10,) + idx,
            rcol(lambda rd, ri: (STR, rd.sys_descr or f"{rd.vendor} {rd.platform}")),
            3,
        )

    # ------------------------------------------------------------ access
    def get(self, oid: tuple[int, ...], v1: bool) -> tuple[int, Any] | None:
        """Value at exactly ``oid``; None if absent (caller picks noSuchObject/Instance)."""
        self.ensure()
        i = self.position.get(oid)
        if i is None:
            return None
        val = self.getters[i]()
        if val is not None and v1 and val[0] == C64:
            return None
        return val

    def has_object(self, oid: tuple[int, ...]) -> bool:
        """True when ``oid`` lies under a known object (so the answer is noSuchInstance)."""
        self.ensure()
        return any(oid[:k] in self.objects for k in range(len(oid) - 1, 5, -1))

    def next(self, oid: tuple[int, ...], v1: bool) -> tuple[int, tuple[int, Any]] | None:
        """(position in the index, value) of the first present instance after ``oid``."""
        self.ensure()
        i = bisect_right(self.oids, oid)
        n = len(self.oids)
        getters = self.getters
        while i < n:
            val = getters[i]()
            if val is not None and not (v1 and val[0] == C64):
                return i, val
            i += 1
        return None
