"""SNMP trap receiver: v1, v2c (and v2c Inform) and v3 USM notifications -> ``Event``s.

``TrapHandler`` turns one datagram into one normalized event (source ``"trap"``) using
the notification decoder (``snmpwire.pdu``), the trap map (``collectors.trapmap``) and the
device directory; ``TrapReceiverService`` runs it behind a ``collectors.receiver.UdpReceiver``
(bounded queue, per-source rate limits, drops counted by reason) as a
``faultloop.events.Service``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from collectors.receiver import (
    DeviceDirectory,
    Handled,
    ReceiverMetrics,
    ReceiverService,
    Rejected,
    SourcePolicy,
    durable_store,
)
from collectors.trapmap import TrapRule, load_trap_map
from collectors.traps.usm import UsmUsers, load_users
from faultloop.events import Event, ObservationSink
from faultloop.metrics import REGISTRY
from faultloop.settings import Settings
from snmpwire.pdu import Notification, Refused, decode_notification

TRAPS_RECEIVED = Counter(
    "faultloop_traps_received", "SNMP notifications decoded, by SNMP version", ["version"], registry=REGISTRY
)
TRAPS_DROPPED = Counter(
    "faultloop_traps_dropped",
    "SNMP trap datagrams not turned into events, by reason (socket_buffer, rate_limited, queue_full, malformed, "
    "auth_failed, unknown_source, "
    "unknown_user, unsupported_sec_level, decrypt_failed, not_in_time_window, "
    "bad_community, bad_version, unsupported_pdu, unsupported_security_model, sink_refused)",
    ["reason"],
    registry=REGISTRY,
)
TRAPS_MALFORMED = Counter(
    "faultloop_traps_malformed", "SNMP trap datagrams that could not be parsed", registry=REGISTRY
)

IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"  # IF-MIB ifName, sent by many agents next to ifIndex
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
MAX_DESCRIPTION = 500
MAX_VARBIND_TEXT = 1024


class TrapHandler:
    def __init__(
        self,
        *,
        trap_map: dict[str, TrapRule],
        directory: DeviceDirectory,
        users: UsmUsers | None = None,
        communities: frozenset[bytes] = frozenset(),
        sources: SourcePolicy | None = None,
    ) -> None:
        self.trap_map = trap_map
        self.directory = directory
        self.sources = sources or SourcePolicy()
        self.users = users or UsmUsers()
        self.communities = communities
        self._received = {v: TRAPS_RECEIVED.labels(version=v) for v in ("v1", "v2c", "v3")}

    def __call__(self, data: bytes, source: str, received_at: datetime) -> Handled:
        try:
            note = decode_notification(
                data, communities=self.communities, users=self.users, now_s=received_at.timestamp()
            )
        except Refused as exc:  # the codec's refusal reasons are the drop counter's labels
            raise Rejected(exc.reason, exc.detail) from None
        self._received[note.version].inc()
        return Handled(self.to_event(note, source, received_at), note.response)

    def to_event(self, note: Notification, source: str, received_at: datetime) -> Event:
        # the UDP source decides; the agent address the trap claims counts only from a relay
        device = self.sources.attribute(
            self.directory, source, receiver="trap", forwarded_address=note.agent_address or None
        )
        rule = self.trap_map.get(note.trap_oid)
        varbinds = {oid: _bounded(value) for oid, value in note.varbinds}
        raw: dict[str, Any] = {
            "source_address": source,
            "version": note.version,
            "trap_oid": note.trap_oid,
            "varbinds": varbinds,
        }
        if note.uptime is not None:
            raw["uptime_ticks"] = note.uptime
        if note.agent_address:
            raw["agent_address"] = note.agent_address
        if note.user:
            raw["user"] = note.user
            raw["engine_id"] = note.engine_id
        if note.inform:
            raw["inform"] = True
        if rule is None:
            return Event(
                source="trap",
                device=device,
                event_type="unknown_trap",
                severity="indeterminate",
                time=received_at,
                specific_problem=note.trap_oid,
                description=f"Unmapped trap {note.trap_oid}",
                raw=raw,
            )
        managed_object = self._managed_object(rule, note, device)
        if not device and managed_object:  # unattributed: one alarm per type, not one per claimed object
            raw["claimed_object"] = managed_object
            managed_object = ""
        return Event(
            source="trap",
            device=device,
            event_type=rule.event_type,
            severity=rule.severity,
            time=received_at,
            managed_object=managed_object,
            probable_cause=rule.probable_cause,
            specific_problem=note.trap_oid,
            description=(rule.description or rule.event_type)[:MAX_DESCRIPTION],
            raw=raw,
        )

    def _managed_object(self, rule: TrapRule, note: Notification, device: str) -> str:
        if not rule.object_varbind:
            return ""
        prefix = rule.object_varbind + "."
        value = next((v for o, v in note.varbinds if o == rule.object_varbind or o.startswith(prefix)), None)
        if value is None:
            return ""
        if rule.object_is_ifindex:
            if not isinstance(value, int):
                return ""
            name = self.directory.interface_name(device, value) if device else None
            if name is None:  # not (yet) in the inventory: the agent's own ifName / ifDescr for it
                suffix = f".{value}"
                name = next(
                    (
                        v
                        for o, v in note.varbinds
                        if isinstance(v, str) and o.endswith(suffix) and o.rsplit(".", 1)[0] in (IF_NAME, IF_DESCR)
                    ),
                    None,
                )
            return f"{rule.object_prefix}{name}" if name else f"{rule.object_prefix}ifIndex.{value}"
        return f"{rule.object_prefix}{value}"


def _bounded(value: Any) -> Any:
    """Varbind values go into stored events: cap device-supplied text so one trap cannot store 64 KiB."""
    if isinstance(value, str) and len(value) > MAX_VARBIND_TEXT:
        return f"{value[:MAX_VARBIND_TEXT]}...[{len(value) - MAX_VARBIND_TEXT} more characters]"
    return value


def receiver_metrics() -> ReceiverMetrics:
    return ReceiverMetrics(received=TRAPS_RECEIVED, dropped=TRAPS_DROPPED, malformed=TRAPS_MALFORMED, name="trap")


class TrapReceiverService(ReceiverService):
    """The trap receiver as a pipeline service (``faultloop.events.Service``)."""

    name = "trap receiver"

    def __init__(
        self,
        *,
        settings: Settings,
        sink: ObservationSink,
        directory: DeviceDirectory,
        trap_map_file: Path | None = None,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        """``sessions``: the database the sink's durable queue lives in; with a durable sink, an
        Inform is answered only once its event is committed there."""
        users_file = settings.trap_v3_users_file
        communities = settings.trap_communities.get_secret_value() if settings.trap_communities else ""
        self.directory = directory
        self.handler = TrapHandler(
            trap_map=load_trap_map(trap_map_file or settings.trap_map_file),
            directory=directory,
            users=load_users(users_file) if users_file else UsmUsers(),
            communities=frozenset(c.strip().encode() for c in communities.split(",") if c.strip()),
            sources=SourcePolicy.from_settings(settings),
        )
        super().__init__(
            settings=settings,
            host=settings.trap_host,
            port=settings.trap_port,
            handler=self.handler,
            sink=sink,
            metrics=receiver_metrics(),
            store=durable_store(sessions, sink) if sessions is not None else None,
        )
