"""Poller storage functions: plain ``f(session, *, ...)``, they flush and never commit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from collectors.models import DevicePollState, InterfaceSample
from collectors.schemas import DeviceStatusOut, InterfaceStatusOut, PollSettingsIn, PollSettingsOut, SampleOut
from collectors.snmp_poll import POLL_TRUNCATED, InterfaceState, Neighbor, PollResult
from faultloop.audit import service as audit
from faultloop.db import insert_rows
from faultloop.errors import InvalidInput, NotFound
from inventory import queries
from inventory import service as inventory
from inventory.queries import DeviceRecord
from inventory.schemas import ObservedInterface, ObservedNeighbor

METRICS = (
    "interface_in_bits_per_second",
    "interface_out_bits_per_second",
    "interface_in_errors_per_second",
    "interface_out_errors_per_second",
    "interface_oper_up",
    "device_cpu_percent",
    "device_memory_percent",
    "device_sensor_value",
)


def load_states(session: Session, device_ids: Sequence[int]) -> list[DevicePollState]:
    """The state rows of these devices in one SELECT, so the ``record_poll`` of each finds its row
    in the session (keep the returned list while writing: the session holds its rows weakly)."""
    if not device_ids:
        return []
    return list(session.scalars(select(DevicePollState).where(DevicePollState.device_id.in_(sorted(device_ids)))))


def _state_row(session: Session, device_id: int) -> DevicePollState:
    row = session.get(DevicePollState, device_id)
    if row is None:
        row = DevicePollState(device_id=device_id, consecutive_failures=0, last_error="")
        row.sys_descr = row.sys_name = row.sys_location = row.sys_object_id = ""
        session.add(row)
    return row


def record_poll(
    session: Session,
    *,
    device_id: int,
    result: PollResult,
    reachable: bool | None,
    failures: int,
    max_interfaces: int | None = None,
    stored_names: dict[int, str] | None = None,
    sample_rows: list[dict[str, Any]] | None = None,
) -> dict[int, str]:
    """Latest state, interface status and samples of one poll; returns the display name the
    inventory keeps for each polled ifIndex (empty for a failed poll). Ports beyond
    ``max_interfaces`` inventory rows of the device are not added (counted as truncated).
    ``stored_names``: the caller knows the interface rows already hold what this poll read (the
    same interfaces as a poll it stored, the inventory unchanged since): they are not synced again
    and these names are returned."""
    row = _state_row(session, device_id)
    row.reachable = reachable
    row.consecutive_failures = failures
    row.last_poll_at = result.time
    row.poll_duration_s = result.duration_s
    if not result.ok or result.snapshot is None:
        row.last_error = result.error[:255]
        session.flush()
        return {}
    snap = result.snapshot
    row.last_error = ""
    row.last_success_at = result.time
    row.sys_uptime_cs = snap.uptime_cs
    row.sys_descr = snap.sys_descr[:1024]
    row.sys_name = snap.sys_name[:255]
    row.sys_location = snap.sys_location[:255]
    row.sys_object_id = snap.sys_object_id[:255]
    row.cpu_percent = snap.cpu_percent
    row.memory_percent = snap.memory_percent
    if stored_names is not None and sample_rows is not None:
        sample_rows.extend(_sample_rows(device_id, result))
        return stored_names
    if stored_names is not None:
        add_samples(session, device_id=device_id, result=result)
        session.flush()
        return stored_names
    synced = inventory.sync_interfaces(
        session,
        max_interfaces=max_interfaces,
        complete=not result.truncated,
        device_id=device_id,
        observed=[
            ObservedInterface(
                if_index=i.if_index,
                name=i.name,
                alias=i.alias,
                admin_status=i.admin_status,
                oper_status=i.oper_status,
                speed_bps=i.speed_bps,
            )
            for i in snap.interfaces.values()
        ],
    )
    if synced.refused:
        POLL_TRUNCATED.labels(reason="interfaces").inc()
    add_samples(session, device_id=device_id, result=result)
    session.flush()
    return synced.names


def _sample_rows(device_id: int, result: PollResult) -> list[dict[str, Any]]:
    return [
        {
            "device_id": device_id,
            "interface": s.labels.get("interface", s.labels.get("sensor", ""))[:100],
            "metric": s.metric,
            "value": s.value,
            "time": s.time,
        }
        for s in result.samples
    ]


def add_samples(session: Session, *, device_id: int, result: PollResult) -> int:
    rows = _sample_rows(device_id, result)
    if rows:
        session.execute(insert(InterfaceSample), rows)
    return len(rows)


def insert_samples(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Sample rows of many polls in one statement (COPY on PostgreSQL)."""
    table: Any = InterfaceSample.__table__
    insert_rows(session, table, rows)


def apply_neighbors(session: Session, *, device_id: int, neighbors: Sequence[Neighbor], now: datetime) -> list[int]:
    """LLDP neighbours of one poll -> the inventory's discovered links; ids of the links seen."""
    return inventory.record_lldp_links(
        session,
        device_id=device_id,
        neighbors=[
            ObservedNeighbor(
                local_if_index=n.local_if_index,
                local_port=n.local_port,
                remote_name=n.remote_name,
                remote_port=n.remote_port,
            )
            for n in neighbors
        ],
        now=now,
    )


def touch_neighbors(session: Session, seen: Sequence[tuple[int, datetime]]) -> None:
    """Links of LLDP tables unchanged since the polls that stored them: (link id, seen at)."""
    inventory.touch_lldp_links(session, seen=seen)


def existing_links(session: Session, link_ids: Iterable[int]) -> set[int]:
    return queries.existing_link_ids(session, link_ids)


def prune_samples(session: Session, *, older_than: datetime) -> int:
    result = session.execute(delete(InterfaceSample).where(InterfaceSample.time < older_than))
    return int(getattr(result, "rowcount", 0) or 0)


def _device(session: Session, device_id: int) -> DeviceRecord:
    device = queries.device(session, device_id)
    if device is None:
        raise NotFound(f"device {device_id} not found")
    return device


def device_status(
    session: Session, *, device_id: int, live: dict[int, InterfaceState] | None = None
) -> DeviceStatusOut:
    """Latest state from the database, with rates from the poller's memory when it has them."""
    device = _device(session, device_id)
    row = session.get(DevicePollState, device_id)
    live = live or {}
    itfs = []
    for i in queries.interfaces(session, device_id):
        cur = live.get(i.if_index) if i.if_index is not None else None
        itfs.append(
            InterfaceStatusOut(
                name=i.name,
                if_index=i.if_index,
                description=i.description,
                alias=i.alias,
                admin_status=i.admin_status,
                oper_status=i.oper_status,
                speed_mbps=i.speed_mbps,
                in_bps=cur.in_bps if cur else None,
                out_bps=cur.out_bps if cur else None,
                in_errors_ps=cur.in_errors_ps if cur else None,
                out_errors_ps=cur.out_errors_ps if cur else None,
            )
        )
    out = DeviceStatusOut(device_id=device.id, hostname=device.hostname, reachable=None, interfaces=itfs)
    if row is not None:
        for name in (
            "reachable",
            "consecutive_failures",
            "last_poll_at",
            "last_success_at",
            "last_error",
            "poll_duration_s",
            "sys_uptime_cs",
            "sys_descr",
            "sys_name",
            "sys_location",
            "sys_object_id",
            "cpu_percent",
            "memory_percent",
        ):
            setattr(out, name, getattr(row, name))
    return out


def list_samples(
    session: Session,
    *,
    device_id: int,
    interface: str | None = None,
    metric: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[SampleOut]:
    _device(session, device_id)
    if metric is not None and metric not in METRICS:
        raise InvalidInput(f"metric: expected one of {', '.join(METRICS)}", field="metric")
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since: expected a timestamp with a timezone, e.g. 2026-01-01T00:00:00Z", field="since")
    query = select(InterfaceSample).where(InterfaceSample.device_id == device_id)
    if interface is not None:
        query = query.where(InterfaceSample.interface == interface)
    if metric is not None:
        query = query.where(InterfaceSample.metric == metric)
    if since is not None:
        query = query.where(InterfaceSample.time >= since)
    rows = session.scalars(query.order_by(InterfaceSample.time.desc(), InterfaceSample.id.desc()).limit(limit))
    return [SampleOut(time=r.time, interface=r.interface, metric=r.metric, value=r.value) for r in rows][::-1]


def recent_series(
    session: Session, *, device_id: int, metrics: Sequence[str], since: datetime, limit: int = 100_000
) -> list[tuple[str, str, datetime, float]]:
    """(metric, interface, time, value) of ``metrics`` since ``since``, oldest first: plain rows for
    graphs, without building an object per sample (an hour of a 48-port switch is ~6,000 rows
    per metric). Beyond ``limit`` rows, the oldest are left out."""
    _device(session, device_id)
    for metric in metrics:
        if metric not in METRICS:
            raise InvalidInput(f"metric: expected one of {', '.join(METRICS)}", field="metric")
    if since.tzinfo is None:
        raise InvalidInput("since: expected a timestamp with a timezone, e.g. 2026-01-01T00:00:00Z", field="since")
    s = InterfaceSample
    query = (
        select(s.metric, s.interface, s.time, s.value)
        .where(s.device_id == device_id, s.metric.in_(list(metrics)), s.time >= since)
        .order_by(s.time.desc(), s.id.desc())
        .limit(limit)
    )
    return [(r[0], r[1], r[2], r[3]) for r in session.execute(query)][::-1]


def set_poll_settings(session: Session, *, device_id: int, data: PollSettingsIn, actor: str) -> PollSettingsOut:
    """Per-device poll interval/timeout/retries; the running poller applies them at its next sync."""
    _device(session, device_id)
    row = _state_row(session, device_id)
    before = {"interval_s": row.poll_interval_s, "timeout_s": row.poll_timeout_s, "retries": row.poll_retries}
    row.poll_interval_s, row.poll_timeout_s, row.poll_retries = data.interval_s, data.timeout_s, data.retries
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="device.poll_settings",
        object_type="device",
        object_id=device_id,
        before=before,
        after=data.model_dump(),
    )
    return PollSettingsOut(device_id=device_id, **data.model_dump())
