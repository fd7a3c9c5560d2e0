"""One device poll: walk the collection set, interpret it, compare with the last poll.

``poll_device`` does the I/O (through ``SnmpClient``) and returns a ``PollResult`` —
never raises for a device problem (one dead device must not abort a cycle).
``interpret`` turns raw rows into a ``Snapshot``; ``DeviceTracker.observe`` holds the
per-device memory between polls (counters, uptime, oper status, failure count) and
produces rates, events and samples. Both are pure and tested without a network.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter

from collectors import counters
from collectors.collection_set import HR_STORAGE_RAM, IF_STATUS, STANDARD, CollectionSet, Table
from devices.snmp import Oid, SnmpClient, SnmpConfigError, SnmpError, SnmpTarget, Value
from faultloop.events import Event, Sample
from faultloop.metrics import REGISTRY
from inventory.rules import display_name

Rows = dict[tuple[int, ...], dict[str, Value]]  # index -> column name -> value
COMMUNITY_VARBIND_BUDGET = 240
V3_VARBIND_BUDGET = 64


def _text(v: Value) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if v is None:
        return ""
    if isinstance(v, tuple):
        return ".".join(map(str, v))
    return str(v)


def _int(v: Value) -> int | None:
    return v if isinstance(v, int) else None


def table_rows(table: Table, walked: Mapping[Oid, Value]) -> Rows:
    rows: Rows = {}
    n = len(table.entry)
    by_number = {num: name for name, num in table.columns.items()}
    for oid, value in walked.items():
        if oid[:n] != table.entry or len(oid) <= n + 1:
            continue
        col = by_number.get(oid[n])
        if col is None:
            continue
        rows.setdefault(oid[n + 1 :], {})[col] = value
    return rows


POLL_TRUNCATED = Counter(
    "faultloop_poll_truncated",
    "SNMP polls cut short by FAULTLOOP_POLL_MAX_ROWS (rows), FAULTLOOP_POLL_MAX_WALK_S (time) or "
    "FAULTLOOP_POLL_MAX_INTERFACES (interfaces: ports beyond it not kept, no inventory row made)",
    ["reason"],
    registry=REGISTRY,
)


@dataclass(slots=True)
class InterfaceState:
    if_index: int
    name: str
    alias: str = ""
    admin_status: str = "unknown"
    oper_status: str = "unknown"
    speed_bps: int | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    counter_bits: int = 32
    in_errors: int | None = None
    out_errors: int | None = None
    in_discards: int | None = None
    out_discards: int | None = None
    discontinuity_cs: int | None = None
    in_bps: float | None = None  # filled by the tracker
    out_bps: float | None = None
    in_errors_ps: float | None = None
    out_errors_ps: float | None = None


@dataclass(slots=True)
class Neighbor:
    local_if_index: int
    local_port: str
    remote_name: str
    remote_port: str


@dataclass(slots=True)
class Snapshot:
    sys_descr: str = ""
    sys_name: str = ""
    sys_location: str = ""
    sys_object_id: str = ""
    uptime_cs: int | None = None
    interfaces: dict[int, InterfaceState] = field(default_factory=dict)
    cpu_percent: float | None = None
    memory_percent: float | None = None
    storage: dict[str, float] = field(default_factory=dict)  # descr -> used percent
    sensors: dict[str, float] = field(default_factory=dict)  # entity name -> value (scaled)
    neighbors: list[Neighbor] = field(default_factory=list)


_SCALE = {8: 1e-3, 9: 1.0, 10: 1e3}  # entPhySensorScale milli / units / kilo


def interpret(scalars: Mapping[Oid, Value], walked: Mapping[Oid, Value], cs: CollectionSet = STANDARD) -> Snapshot:
    snap = Snapshot()
    names = {oid: name for name, oid in cs.scalars.items()}
    for oid, value in scalars.items():
        name = names.get(oid)
        if name == "sysDescr":
            snap.sys_descr = _text(value)
        elif name == "sysName":
            snap.sys_name = _text(value)
        elif name == "sysLocation":
            snap.sys_location = _text(value)
        elif name == "sysObjectID":
            snap.sys_object_id = _text(value)
        elif name == "sysUpTime":
            snap.uptime_cs = _int(value)
    tables = {t.name: table_rows(t, walked) for t in cs.tables}
    ifx = tables.get("ifXTable", {})
    for idx, row in tables.get("ifTable", {}).items():
        if len(idx) != 1:
            continue
        x = ifx.get(idx, {})
        name = _text(x.get("ifName")) or _text(row.get("ifDescr")) or f"ifIndex{idx[0]}"
        itf = InterfaceState(if_index=idx[0], name=name, alias=_text(x.get("ifAlias")))
        itf.admin_status = IF_STATUS.get(_int(row.get("ifAdminStatus")) or 4, "unknown")
        itf.oper_status = IF_STATUS.get(_int(row.get("ifOperStatus")) or 4, "unknown")
        high = _int(x.get("ifHighSpeed"))
        low = _int(row.get("ifSpeed"))
        # ifSpeed saturates at 2**32-1 bit/s; ifHighSpeed (Mbit/s) is the real figure above that.
        itf.speed_bps = high * 1_000_000 if high else low
        hc_in, hc_out = _int(x.get("ifHCInOctets")), _int(x.get("ifHCOutOctets"))
        if hc_in is not None and hc_out is not None:
            itf.in_octets, itf.out_octets, itf.counter_bits = hc_in, hc_out, 64
        else:
            itf.in_octets, itf.out_octets = _int(row.get("ifInOctets")), _int(row.get("ifOutOctets"))
        itf.in_errors, itf.out_errors = _int(row.get("ifInErrors")), _int(row.get("ifOutErrors"))
        itf.in_discards, itf.out_discards = _int(row.get("ifInDiscards")), _int(row.get("ifOutDiscards"))
        itf.discontinuity_cs = _int(x.get("ifCounterDiscontinuityTime"))
        snap.interfaces[idx[0]] = itf
    _distinct_names(snap.interfaces)
    cpu_rows = tables.get("hrProcessorTable", {}).values()
    loads = [v for r in cpu_rows if (v := _int(r.get("hrProcessorLoad"))) is not None]
    if loads:
        snap.cpu_percent = sum(loads) / len(loads)
    for row in tables.get("hrStorageTable", {}).values():
        size, used = _int(row.get("hrStorageSize")), _int(row.get("hrStorageUsed"))
        if not size or used is None:
            continue
        pct = 100.0 * used / size
        if row.get("hrStorageType") == HR_STORAGE_RAM:
            snap.memory_percent = pct
        else:
            snap.storage[_text(row.get("hrStorageDescr"))] = pct
    ent_names = tables.get("entPhysicalTable", {})
    for idx, row in tables.get("entPhySensorTable", {}).items():
        value = _int(row.get("entPhySensorValue"))
        if value is None:
            continue
        scaled = value * _SCALE.get(_int(row.get("entPhySensorScale")) or 9, 1.0)
        scaled /= 10 ** (_int(row.get("entPhySensorPrecision")) or 0)
        label = _text(ent_names.get(idx, {}).get("entPhysicalName")) or f"sensor{'.'.join(map(str, idx))}"
        snap.sensors[label] = scaled
    loc_ports = tables.get("lldpLocPortTable", {})
    for idx, row in tables.get("lldpRemTable", {}).items():
        if len(idx) < 3:
            continue
        local_num = idx[1]
        local_port = _text(loc_ports.get((local_num,), {}).get("lldpLocPortId"))
        if not local_port and local_num in snap.interfaces:
            local_port = snap.interfaces[local_num].name
        snap.neighbors.append(
            Neighbor(
                local_if_index=local_num,
                local_port=local_port,
                remote_name=_text(row.get("lldpRemSysName")),
                remote_port=_text(row.get("lldpRemPortId")) or _text(row.get("lldpRemPortDesc")),
            )
        )
    return snap


def _distinct_names(interfaces: Mapping[int, InterfaceState]) -> None:
    """Devices repeat ifNames (two ``lo0``): the lowest ifIndex shows the name, each other one
    ``<ifName>#<ifIndex>`` (the inventory's rule, ``inventory.service.display_name``), so alarms,
    metrics and samples never mix two ports. The inventory's stored names win once known
    (``DeviceTracker.names``)."""
    taken: set[str] = set()
    for idx in sorted(interfaces):
        itf = interfaces[idx]
        itf.name = display_name(itf.name, idx, taken)
        taken.add(itf.name)


def cap_interfaces(snap: Snapshot, max_interfaces: int) -> bool:
    """Keep the ``max_interfaces`` lowest ifIndexes of a (hostile) agent's table; True if cut."""
    if len(snap.interfaces) <= max_interfaces:
        return False
    keep = sorted(snap.interfaces)[:max_interfaces]
    snap.interfaces = {idx: snap.interfaces[idx] for idx in keep}
    return True


@dataclass(slots=True)
class PollResult:
    device: str
    ok: bool
    time: datetime
    duration_s: float
    error: str = ""
    timeout: bool = False
    snapshot: Snapshot | None = None
    # "rows" / "time": the walk hit FAULTLOOP_POLL_MAX_ROWS / _MAX_WALK_S; "interfaces": the agent
    # listed more than FAULTLOOP_POLL_MAX_INTERFACES ports
    truncated: str = ""
    events: list[Event] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    invalid_samples: int = 0


@dataclass
class DeviceTracker:
    """What the poller remembers about one device between polls (in memory).

    A new tracker starts from what the database knew (``reachable`` and ``baseline_oper``,
    the interfaces' oper status by ifIndex at the last poll before a restart): a link that
    went down, or a device that came back, while the service was stopped still gives its
    event on the first poll."""

    device: str
    site: str = ""
    unreachable_after: int = 3
    failures: int = 0
    reachable: bool | None = None  # None: never polled
    baseline_oper: dict[int, str] = field(default_factory=dict)  # used by the first poll only
    names: dict[int, str] = field(default_factory=dict)  # ifIndex -> the inventory's display name
    last: Snapshot | None = None
    last_time_s: float | None = None
    last_poll: datetime | None = None
    last_duration_s: float = 0.0
    poll_errors: int = 0
    invalid_samples: int = 0
    reboots: int = 0
    truncated: str = ""  # the last poll's walk was cut short ("rows" / "time")
    truncated_polls: int = 0
    observed: int = 0  # polls folded in: /metrics re-renders a device's series when it moves

    def observe(self, result: PollResult, time_s: float) -> None:
        """Fold one poll into the memory; add its events, samples and rates to ``result``."""
        try:
            self._observe(result, time_s)
        finally:
            self.observed += 1

    def _observe(self, result: PollResult, time_s: float) -> None:
        self.last_poll = result.time
        self.last_duration_s = result.duration_s
        if not result.ok or result.snapshot is None:
            self.poll_errors += 1
            self.failures += 1
            if self.failures >= self.unreachable_after and self.reachable is not False:
                self.reachable = False
                result.events.append(
                    Event(
                        source="poll",
                        device=self.device,
                        event_type="device_unreachable",
                        severity="critical",
                        time=result.time,
                        probable_cause="communicationsSubsystemFailure",
                        description=f"no SNMP answer for {self.failures} consecutive polls: {result.error}",
                    )
                )
            return
        snap = result.snapshot
        self._name_ports(snap)
        self._truncation(result)
        was_unreachable = self.reachable is False
        self.failures = 0
        self.reachable = True
        if was_unreachable:
            result.events.append(
                Event(
                    source="poll",
                    device=self.device,
                    event_type="device_reachable",
                    severity="cleared",
                    time=result.time,
                    description="SNMP answers again",
                )
            )
        prev = self.last
        if prev is not None and counters.uptime_went_back(prev.uptime_cs, snap.uptime_cs):
            self.reboots += 1
            result.events.append(
                Event(
                    source="poll",
                    device=self.device,
                    event_type="device_rebooted",
                    severity="warning",
                    time=result.time,
                    probable_cause="reinitialized",
                    description=f"sysUpTime went back from {prev.uptime_cs} to {snap.uptime_cs} centiseconds",
                )
            )
        for idx, itf in snap.interfaces.items():
            before = prev.interfaces.get(idx) if prev is not None else None
            self._rates(result, time_s, prev, before, itf, snap.uptime_cs)
            was = before.oper_status if before is not None else None
            if prev is None:
                was = self.baseline_oper.get(idx)
            if was is not None and was != itf.oper_status and itf.admin_status == "up":
                up = itf.oper_status == "up"
                if up or was == "up":
                    result.events.append(
                        Event(
                            source="poll",
                            device=self.device,
                            event_type="linkUp" if up else "linkDown",
                            severity="cleared" if up else "major",
                            time=result.time,
                            managed_object=f"interface:{itf.name}",
                            probable_cause="" if up else "lossOfSignal",
                            description=f"{itf.name} oper status {was} -> {itf.oper_status}",
                            raw={"ifIndex": idx, "ifAlias": itf.alias},
                        )
                    )
        self._device_samples(result, snap)
        self.last = snap
        self.last_time_s = time_s
        self.baseline_oper = {}

    def _rates(
        self,
        result: PollResult,
        time_s: float,
        prev: Snapshot | None,
        before: InterfaceState | None,
        itf: InterfaceState,
        uptime_cs: int | None,
    ) -> None:
        cap = counters.link_capacity_octets(itf.speed_bps)
        prev_uptime = prev.uptime_cs if prev is not None else None
        labels = {"interface": itf.name}
        for attr, out_attr, metric, scale, limit in (
            ("in_octets", "in_bps", "interface_in_bits_per_second", 8.0, cap),
            ("out_octets", "out_bps", "interface_out_bits_per_second", 8.0, cap),
            ("in_errors", "in_errors_ps", "interface_in_errors_per_second", 1.0, None),
            ("out_errors", "out_errors_ps", "interface_out_errors_per_second", 1.0, None),
        ):
            value = getattr(itf, attr)
            if value is None:
                continue
            bits = itf.counter_bits if attr.endswith("octets") else 32
            cur = counters.Reading(value, bits, time_s, uptime_cs, itf.discontinuity_cs)
            old = None
            if before is not None and getattr(before, attr) is not None and self.last_time_s is not None:
                old_bits = before.counter_bits if attr.endswith("octets") else 32
                old = counters.Reading(
                    getattr(before, attr), old_bits, self.last_time_s, prev_uptime, before.discontinuity_cs
                )
            r = counters.rate(old, cur, max_per_second=limit)
            if r.outcome is counters.Outcome.above_speed:
                result.invalid_samples += 1
                self.invalid_samples += 1
            if r.valid and r.per_second is not None:
                setattr(itf, out_attr, r.per_second * scale)
                result.samples.append(Sample(self.device, metric, r.per_second * scale, result.time, labels))
        result.samples.append(
            Sample(self.device, "interface_oper_up", 1.0 if itf.oper_status == "up" else 0.0, result.time, labels)
        )

    def _name_ports(self, snap: Snapshot) -> None:
        """Ports the inventory knows show its display name (stable: stored by ifIndex); a new port
        keeps the snapshot's, unless that name is the inventory's for another ifIndex."""
        if not self.names:
            return
        taken = {name for idx, name in self.names.items() if idx in snap.interfaces}
        for idx in sorted(snap.interfaces):
            itf = snap.interfaces[idx]
            known = self.names.get(idx)
            if known is not None:
                itf.name = known
            else:
                itf.name = display_name(itf.name, idx, taken)
                taken.add(itf.name)

    def _truncation(self, result: PollResult) -> None:
        """One warning on the device while its walks are cut short, cleared by the next whole walk
        (the alarm engine keeps it as one alarm, counted per poll)."""
        if result.truncated:
            self.truncated_polls += 1
            what, setting = {
                "rows": ("varbinds", "ROWS"),
                "time": ("seconds", "WALK_S"),
                "interfaces": ("interfaces", "INTERFACES"),
            }[result.truncated]
            result.events.append(
                Event(
                    source="poll",
                    device=self.device,
                    event_type="poll_truncated",
                    severity="warning",
                    time=result.time,
                    probable_cause="resourceAtOrNearingCapacity",
                    specific_problem=result.truncated,
                    description=f"SNMP poll stopped at the {what} cap (FAULTLOOP_POLL_MAX_{setting}); "
                    "the rest of the agent's tables was not read"
                    if result.truncated != "interfaces"
                    else "the agent lists more interfaces than FAULTLOOP_POLL_MAX_INTERFACES; "
                    "only the lowest ifIndexes are kept",
                )
            )
        elif self.truncated:
            result.events.append(
                Event(
                    source="poll",
                    device=self.device,
                    event_type="poll_truncated",
                    severity="cleared",
                    time=result.time,
                    description="SNMP walk complete again",
                )
            )
        self.truncated = result.truncated

    def _device_samples(self, result: PollResult, snap: Snapshot) -> None:
        if snap.cpu_percent is not None:
            result.samples.append(Sample(self.device, "device_cpu_percent", snap.cpu_percent, result.time))
        if snap.memory_percent is not None:
            result.samples.append(Sample(self.device, "device_memory_percent", snap.memory_percent, result.time))
        for name, value in snap.sensors.items():
            result.samples.append(Sample(self.device, "device_sensor_value", value, result.time, {"sensor": name}))


async def poll_device(
    client: SnmpClient,
    device: str,
    target: SnmpTarget,
    *,
    now: datetime,
    cs: CollectionSet = STANDARD,
    max_rows: int | None = None,
    max_s: float | None = None,
    max_interfaces: int | None = None,
) -> PollResult:
    """Poll one device; failures come back as a result, never as an exception. The walk stops at
    ``max_rows`` varbinds or ``max_s`` seconds; what it read is used and ``truncated`` says why.
    Of more than ``max_interfaces`` ports, the lowest ifIndexes are kept (``truncated="interfaces"``)."""
    started = time.perf_counter()
    try:
        wanted = list(cs.scalars.values())
        # v1/v2c answers are decoded by the light codec: one big round trip is cheapest. v3
        # answers go through pyasn1 (~80 us per varbind), so ask for fewer rows past each
        # column's end at the price of a second round trip on bigger devices.
        budget = V3_VARBIND_BUDGET if target.version == "v3" else COMMUNITY_VARBIND_BUDGET
        walked = await client.walk(
            target, cs.roots(), max_repetitions=budget, scalars=wanted, max_rows=max_rows, max_s=max_s
        )
        truncated = walked.truncated
        if not any(oid in walked for oid in wanted):
            walked.update(await client.get(target, wanted))  # agents that refuse non-repeaters
        snap = interpret({oid: walked[oid] for oid in wanted if oid in walked}, walked, cs)
        if max_interfaces is not None and cap_interfaces(snap, max_interfaces) and not truncated:
            truncated = "interfaces"
    except SnmpError as exc:
        return PollResult(device, False, now, time.perf_counter() - started, error=str(exc), timeout=exc.timeout)
    except SnmpConfigError as exc:
        return PollResult(device, False, now, time.perf_counter() - started, error=str(exc))
    if truncated:
        POLL_TRUNCATED.labels(reason=truncated).inc()
    return PollResult(device, True, now, time.perf_counter() - started, snapshot=snap, truncated=truncated)
