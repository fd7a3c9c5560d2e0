"""The one in-process interface between collectors and the alarm engine.

Collectors produce normalized ``Event`` objects (a trap, a syslog line, a poll finding)
and metric ``Sample`` objects; they hand them to an ``ObservationSink`` and never
import ``alarms``. The wiring module (``faultloop.cmd.app``) connects the sink to the alarm
engine. ``submit_*`` never blocks: a full queue refuses and the caller counts the drop.
A ``DurableSink`` (the alarm engine) also takes events into its durable queue inside the
caller's own transaction, so a finding stored with the state it changed survives a crash
before the engine's next round.

The alarm engine in turn tells its subscribers (ticketing, notifications, the live stream)
what changed with ``AlarmChange`` values, only after the change committed (``after_commit``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("faultloop.events")

Source = Literal["poll", "trap", "syslog", "api", "alertmanager", "backup", "provisioning"]
Severity = Literal["critical", "major", "minor", "warning", "indeterminate", "cleared"]
SEVERITIES: tuple[Severity, ...] = ("critical", "major", "minor", "warning", "indeterminate", "cleared")


@dataclass(frozen=True, slots=True)
class Event:
    source: Source
    device: str  # inventory hostname ("" when the source could not be mapped to a device)
    event_type: str  # e.g. "linkDown", "linkUp", "device_unreachable", "coldStart", "config_changed"
    severity: Severity
    time: datetime  # timezone-aware, from faultloop.clock
    managed_object: str = ""  # e.g. "interface:GigabitEthernet0/1"; "" for the device itself
    probable_cause: str = ""  # X.733 probable cause, e.g. "lossOfSignal"
    specific_problem: str = ""
    description: str = ""  # human text; device-supplied, so escape on display
    raw: Mapping[str, Any] = field(default_factory=dict)  # varbinds, syslog fields, ...


@dataclass(frozen=True, slots=True)
class Sample:
    device: str
    metric: str  # Prometheus-style name, e.g. "interface_in_bits_per_second"
    value: float
    time: datetime
    labels: Mapping[str, str] = field(default_factory=dict)  # e.g. {"interface": "Gi0/1"}


class ObservationSink(Protocol):
    def submit_events(self, events: Sequence[Event]) -> bool:
        """Queue events for the alarm engine; False when refused (queue full)."""
        ...

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        """Queue metric samples for threshold rules; False when refused."""
        ...


@runtime_checkable
class DurableSink(ObservationSink, Protocol):
    def store_events(self, session: Session, events: Sequence[Event]) -> None:
        """Add events to the durable queue in ``session``'s transaction (committed with it)."""
        ...

    def events_stored(self) -> None:
        """After that transaction committed: process the durable queue now, not at the next tick."""
        ...


# What a ``ClaimingSink`` runs in its own transaction: claim the messages (``faultloop.inbox``)
# and return the events to process, the ones not stored before.
Claim = Callable[[Session], Sequence[Event]]


@runtime_checkable
class ClaimingSink(DurableSink, Protocol):
    """A durable sink that can also take events straight into its processing (the alarm engine of
    the instance that leads): no write to the durable queue and read back in a later round."""

    def takes_claimed(self) -> bool:
        """Whether ``process_claimed`` would process now (this instance leads)."""
        ...

    def process_claimed(self, claim: Claim) -> bool:
        """In ONE transaction of the sink's own: ``claim(session)``, then the events it returned
        processed and stored as processed; committed when this returns True. False: nothing was
        written (this instance does not lead): store the events in the durable queue instead.
        Raises when the database refused the transaction (nothing written either)."""
        ...


class Service(Protocol):
    """A background component the service process starts and stops (poller, receivers, engine)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# ---- alarm changes, and side effects after commit ----------------------------------------------

ChangeKind = Literal[
    "raised", "updated", "cleared", "root_cause", "correlated", "muted", "unmuted", "flapping", "escalated", "impact"
]


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """One committed change of one alarm, as its subscribers see it."""

    kind: ChangeKind
    alarm_id: int
    reduction_key: str
    alarm_type: str
    device: str
    managed_object: str
    severity: str
    state: str
    count: int
    muted: bool  # in maintenance, flapping or correlated under a root cause: no ticket, no notification
    suppression_reason: str | None
    parent_id: int | None
    root_cause: bool
    at: datetime
    actor: str = "engine"


_AFTER_COMMIT = "faultloop_after_commit"


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn`` once the transaction ``session`` is in commits; never if it rolls back.
    A failing ``fn`` is logged and never undoes the commit or stops the next one."""
    session.info.setdefault(_AFTER_COMMIT, []).append(fn)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for fn in session.info.pop(_AFTER_COMMIT, []):
        try:
            fn()
        except Exception as exc:  # a failing metric, notifier or subscriber never undoes a committed change
            log.error("after-commit hook failed: %s", type(exc).__name__)


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


# ---- wire form (the NATS transport): JSON, validated on the way in --------------------------

SOURCES: tuple[Source, ...] = ("poll", "trap", "syslog", "api", "alertmanager", "backup", "provisioning")


class WireError(ValueError):
    """A message that does not decode to an Event or Sample; the text names the bad field."""


def _time_text(t: datetime) -> str:
    return t.isoformat()


def event_to_wire(e: Event) -> dict[str, Any]:
    return {
        "source": e.source, "device": e.device, "event_type": e.event_type, "severity": e.severity,
        "time": _time_text(e.time), "managed_object": e.managed_object, "probable_cause": e.probable_cause,
        "specific_problem": e.specific_problem, "description": e.description, "raw": dict(e.raw),
    }  # fmt: skip


def sample_to_wire(s: Sample) -> dict[str, Any]:
    return {"device": s.device, "metric": s.metric, "value": s.value, "time": _time_text(s.time),
            "labels": dict(s.labels)}  # fmt: skip


def _field(doc: Mapping[str, Any], name: str, kind: type, *, default: Any = None) -> Any:
    if name not in doc:
        if default is None:
            raise WireError(f"missing field {name!r}")
        return default
    value = doc[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise WireError(f"field {name!r}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _time_field(doc: Mapping[str, Any]) -> datetime:
    text = _field(doc, "time", str)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise WireError(f"field 'time': expected an ISO 8601 time, got {text[:40]!r}") from None
    if t.tzinfo is None:
        raise WireError("field 'time': expected a time with a UTC offset")
    return t


def event_from_wire(doc: Any) -> Event:
    if not isinstance(doc, Mapping):
        raise WireError(f"expected a JSON object, got {type(doc).__name__}")
    source = _field(doc, "source", str)
    if source not in SOURCES:
        raise WireError(f"field 'source': expected one of {', '.join(SOURCES)}, got {source[:40]!r}")
    severity = _field(doc, "severity", str)
    if severity not in SEVERITIES:
        raise WireError(f"field 'severity': expected one of {', '.join(SEVERITIES)}, got {severity[:40]!r}")
    return Event(
        source=source,
        device=_field(doc, "device", str),
        event_type=_field(doc, "event_type", str),
        severity=severity,
        time=_time_field(doc),
        managed_object=_field(doc, "managed_object", str, default=""),
        probable_cause=_field(doc, "probable_cause", str, default=""),
        specific_problem=_field(doc, "specific_problem", str, default=""),
        description=_field(doc, "description", str, default=""),
        raw=_field(doc, "raw", dict, default={}),
    )


def sample_from_wire(doc: Any) -> Sample:
    if not isinstance(doc, Mapping):
        raise WireError(f"expected a JSON object, got {type(doc).__name__}")
    labels = _field(doc, "labels", dict, default={})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise WireError("field 'labels': expected an object of strings")
    return Sample(
        device=_field(doc, "device", str),
        metric=_field(doc, "metric", str),
        value=_field(doc, "value", float),
        time=_time_field(doc),
        labels=labels,
    )
