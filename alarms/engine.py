"""The alarm engine: events -> dedup -> clear -> escalate -> flapping -> maintenance -> topology.

``AlarmCore`` is synchronous and owns the in-memory indexes (active alarm per reduction
key, flapping history, the topology graph, maintenance windows). It writes through the
session it is given and never commits: the caller (``AlarmEngine``'s worker, the replay,
a test) owns the transaction and publishes the returned ``AlarmChange`` list only after
the commit. If the transaction fails, the caller calls ``load()`` again: the database is
the source of truth.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from alarms.flapping import FlapDetector
from alarms.impact import ServiceIndex, ServiceSource, service_states
from alarms.maintenance import Window, covering
from alarms.models import Alarm, AlarmJournal, AlarmServiceImpact, EventRecord, MaintenanceWindow, ServiceStatePeriod
from alarms.rules import Decision, MappingRule, RuleSet, ThresholdRule, severity_rank
from alarms.topology import Cause, Graph, causes, interface_of, reachable
from faultloop.db import insert_rows
from faultloop.events import AlarmChange, ChangeKind, Event, Sample
from inventory import queries as inventory

log = logging.getLogger("faultloop.alarms")
# Core tables for the hot path (the ORM's bulk paths cost more than the database here).
ALARMS = cast(Table, Alarm.__table__)
EVENTS = cast(Table, EventRecord.__table__)
JOURNAL = cast(Table, AlarmJournal.__table__)
IMPACT = cast(Table, AlarmServiceImpact.__table__)
STATES = cast(Table, ServiceStatePeriod.__table__)
ENGINE = "engine"
MAJOR = severity_rank("major")  # an alarm this severe on a service's port takes the service down


@dataclass(slots=True)
class ActiveAlarm:
    """The engine's compact view of one active alarm (100k of these must fit in memory)."""

    id: int | None
    key: str
    alarm_type: str
    rule: str
    topology: str | None
    device: str
    managed_object: str
    severity: str
    count: int
    first: datetime
    last: datetime
    state: str = "active"
    parent: ActiveAlarm | None = None
    parent_id: int | None = None
    correlation_reason: str | None = None
    root_cause: bool = False
    muted: bool = False
    suppression: str | None = None
    flapping: bool = False
    pending_clear: bool = False
    cleared_at: datetime | None = None
    maintenance_window: int | None = None
    groups: bool = False  # its rule groups the device's interface alarms under it
    # customer services it affects: service id -> (how, level); None: none (most alarms)
    impact: dict[int, tuple[str, str]] | None = None


@dataclass
class EngineConfig:
    flap_threshold: int = 4
    flap_window_s: float = 600.0
    settle_s: float = 60.0
    poller_devices: tuple[str, ...] = ()


@dataclass
class _Batch:
    new: list[ActiveAlarm] = field(default_factory=list)
    dirty: dict[int, ActiveAlarm] = field(default_factory=dict)  # id() -> alarm
    events: list[tuple[Event, int | None, str, str | None, ActiveAlarm | None]] = field(default_factory=list)
    journal: list[tuple[ActiveAlarm, str, dict[str, Any]]] = field(default_factory=list)
    changes: list[tuple[ChangeKind, ActiveAlarm]] = field(default_factory=list)
    raising: dict[int, Event] = field(default_factory=dict)  # id(new alarm) -> the event that raised it
    topology_dirty: bool = False
    correlated: bool = False  # the topology correlation ran in this batch
    impact: dict[int, ActiveAlarm] = field(default_factory=dict)  # id() -> alarm whose service impact changed

    def touch(self, alarm: ActiveAlarm) -> None:
        self.dirty[id(alarm)] = alarm

    def note(self, alarm: ActiveAlarm, action: str, kind: ChangeKind | None, **detail: Any) -> None:
        self.touch(alarm)
        self.journal.append((alarm, action, detail))
        if kind is not None:
            self.changes.append((kind, alarm))


class AlarmCore:
    def __init__(
        self, rules: RuleSet, config: EngineConfig | None = None, *, services: ServiceSource | None = None
    ) -> None:
        self.rules = rules
        self.config = config or EngineConfig()
        # where customer services come from (the composition root hands provisioning's read API in)
        self.service_source = services
        self.services = ServiceIndex()
        self._impact_stale = True  # recompute every active alarm's impact in the next round
        # the services that are not up: service id -> (degraded | down, id of its open history row)
        self.service_states: dict[int, tuple[str, int]] = {}
        self._states_dirty = True  # re-derive the services' states from the active alarms' impact
        self.active: dict[str, ActiveAlarm] = {}
        self.by_device: dict[str, set[str]] = {}
        self.flaps = FlapDetector(threshold=self.config.flap_threshold, window_s=self.config.flap_window_s)
        self.graph = Graph()
        self.windows: list[Window] = []
        self._reach: set[str] | None = None
        self._correlated: set[str] = set()  # keys of active alarms that have a parent
        self._journal_seen = 0  # operator journal entries up to this id have been published
        self.last_pending = 0  # events taken from the durable queue by the last process_pending
        self._escalations: list[tuple[datetime, str, str]] = []  # (due, key, severity) heap
        self._threshold_state: dict[tuple[str, str, tuple[tuple[str, str], ...]], datetime] = {}
        self._threshold_firing: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()

    # ---- start: rebuild everything from the database ------------------------------------

    def load(self, session: Session, now: datetime) -> None:
        self.active.clear()
        self.by_device.clear()
        self._escalations.clear()
        self.flaps = FlapDetector(threshold=self.config.flap_threshold, window_s=self.config.flap_window_s)
        rows = session.execute(
            select(
                Alarm.id,
                Alarm.reduction_key,
                Alarm.alarm_type,
                Alarm.rule,
                Alarm.device,
                Alarm.managed_object,
                Alarm.severity,
                Alarm.count.label("n"),
                Alarm.first_occurrence,
                Alarm.last_occurrence,
                Alarm.parent_id,
                Alarm.correlation_reason,
                Alarm.root_cause,
                Alarm.muted,
                Alarm.suppression_reason,
                Alarm.flapping,
            ).where(Alarm.state == "active")
        ).all()
        by_id: dict[int, ActiveAlarm] = {}
        for r in rows:
            rule = self.rules.by_alarm_type.get(r.alarm_type)
            alarm = ActiveAlarm(
                id=r.id,
                key=r.reduction_key,
                alarm_type=r.alarm_type,
                rule=r.rule,
                topology=rule.topology if rule else None,
                device=r.device,
                managed_object=r.managed_object,
                severity=r.severity,
                count=r.n,
                first=r.first_occurrence,
                last=r.last_occurrence,
                parent_id=r.parent_id,
                correlation_reason=r.correlation_reason,
                root_cause=r.root_cause,
                muted=r.muted,
                suppression=r.suppression_reason,
                flapping=r.flapping,
                groups=bool(rule and rule.groups_interfaces),
            )
            by_id[r.id] = alarm
            self._index(alarm)
            self._schedule_escalations(alarm, rule)
        self._correlated = set()
        for alarm in by_id.values():
            if alarm.parent_id is not None:
                alarm.parent = by_id.get(alarm.parent_id)
                if alarm.parent is not None:
                    self._correlated.add(alarm.key)
        # Flapping history: the state changes of the last window, from the stored events.
        since = now - timedelta(seconds=self.config.flap_window_s)
        history = session.execute(
            select(EventRecord.reduction_key, EventRecord.time, EventRecord.action)
            .where(EventRecord.time >= since, EventRecord.action.in_(("raise", "clear", "flap")))
            .order_by(EventRecord.id)
        ).all()
        for key, at, _action in history:
            if key is not None:
                self.flaps.record(key, at)
        for alarm in self.active.values():
            if alarm.flapping:
                # pending_clear: was the last state change a clear?
                last = session.execute(
                    select(EventRecord.event_type, EventRecord.severity)
                    .where(EventRecord.alarm_id == alarm.id, EventRecord.action.in_(("raise", "clear", "flap")))
                    .order_by(EventRecord.id.desc())
                    .limit(1)
                ).first()
                if last is not None:
                    decision = self.rules.decide(
                        Event(source="api", device=alarm.device, event_type=last[0], severity=last[1], time=now)  # type: ignore[arg-type]
                    )
                    alarm.pending_clear = decision.action == "clear"
        self._journal_seen = session.scalar(select(func.max(AlarmJournal.id))) or 0
        self.load_topology(session)
        self.load_windows(session, now)
        self.load_services(session)
        impact_rows = session.execute(
            select(AlarmServiceImpact.alarm_id, AlarmServiceImpact.service_id, AlarmServiceImpact.how,
                   AlarmServiceImpact.level)
            .join(Alarm, Alarm.id == AlarmServiceImpact.alarm_id).where(Alarm.state == "active")
        )  # fmt: skip
        for alarm_id, service_id, how, level in impact_rows:
            found = by_id.get(alarm_id)
            if found is not None:
                if found.impact is None:
                    found.impact = {}
                found.impact[service_id] = (how, level)
        open_periods = session.execute(
            select(ServiceStatePeriod.service_id, ServiceStatePeriod.state, ServiceStatePeriod.id)
            .where(ServiceStatePeriod.ended_at.is_(None))
        )  # fmt: skip
        self.service_states = {sid: (state, row_id) for sid, state, row_id in open_periods}
        self._states_dirty = True  # reconcile with the alarms as loaded in the first round

    def load_services(self, session: Session) -> None:
        """Re-read the customer services (their resources); the next round recomputes every impact."""
        if self.service_source is None:
            return
        self.services = ServiceIndex.of(self.service_source(session))
        self._impact_stale = True

    def load_topology(self, session: Session) -> None:
        topology = inventory.topology(session)
        graph = Graph()
        for d in topology.devices:
            graph.add_device(d.hostname)
            if d.site is not None:
                graph.device_site[d.hostname] = d.site
            graph.device_tags[d.hostname] = frozenset(d.tags)
        for link in topology.links:
            graph.add_link(link.id, link.a, link.b)
        for child, parent in topology.dependencies:
            graph.add_dependency(child, parent)
        devices = topology.devices
        if self.config.poller_devices:
            graph.roots = frozenset(self.config.poller_devices)
        else:
            graph.roots = frozenset(d.hostname for d in devices if d.role == "core")
        self.graph = graph
        self._reach = None

    def load_windows(self, session: Session, now: datetime) -> None:
        rows = session.scalars(
            select(MaintenanceWindow).where((MaintenanceWindow.ends_at.is_(None)) | (MaintenanceWindow.ends_at > now))
        ).all()
        self.windows = [
            Window(
                id=w.id,
                name=w.name,
                starts_at=w.starts_at,
                ends_at=w.ends_at,
                rrule=w.rrule,
                cron=w.cron,
                duration_s=w.duration_s,
                devices=frozenset(w.devices or ()),
                sites=frozenset(w.sites or ()),
                tags=frozenset(w.tags or ()),
                interfaces=frozenset(w.interfaces or ()),
            )
            for w in rows
        ]

    def replace_rules(self, rules: RuleSet) -> None:
        """Swap in a fully validated rule set (a reload never half-applies)."""
        self.rules = rules
        for alarm in self.active.values():
            rule = self.rules.by_alarm_type.get(alarm.alarm_type)
            alarm.topology = rule.topology if rule else None
            alarm.groups = bool(rule and rule.groups_interfaces)

    # ---- processing ------------------------------------------------------------------------

    def process(
        self, session: Session, events: Sequence[Event], now: datetime, *, stored_ids: Sequence[int] | None = None
    ) -> list[AlarmChange]:
        """Process one batch in the caller's transaction; returns the changes to publish after commit."""
        batch = _Batch()
        decisions = [self.rules.decide(e) for e in events]
        self._verify_active(session, {d.reduction_key for d in decisions})
        for i, event in enumerate(events):
            stored = stored_ids[i] if stored_ids is not None else None
            self._one(batch, event, decisions[i], stored, now)
        self._after(batch, now)
        return self._flush(session, batch, now)

    def process_samples(self, session: Session, samples: Sequence[Sample], now: datetime) -> list[AlarmChange]:
        events = [e for s in samples for e in self._threshold(s)]
        return self.process(session, events, now) if events else []

    def process_pending(self, session: Session, now: datetime, *, limit: int = 5000) -> list[AlarmChange]:
        """Events stored by the ingest API (the durable queue), oldest first."""
        rows = session.scalars(
            select(EventRecord).where(EventRecord.processed.is_(False)).order_by(EventRecord.id).limit(limit)
        ).all()
        self.last_pending = 0
        if not rows:
            return []
        events = [
            Event(
                source=r.source,  # type: ignore[arg-type]
                device=r.device,
                event_type=r.event_type,
                severity=r.severity,  # type: ignore[arg-type]
                time=r.time,
                managed_object=r.managed_object,
                probable_cause=r.probable_cause,
                specific_problem=r.specific_problem,
                description=r.description,
                raw=r.raw or {},
            )
            for r in rows
        ]
        self.last_pending = len(rows)
        return self.process(session, events, now, stored_ids=[r.id for r in rows])

    def tick(self, session: Session, now: datetime) -> list[AlarmChange]:
        """Timers: duration escalation, end of flapping, maintenance window edges, settle re-parenting."""
        batch = _Batch()
        self.load_windows(session, now)
        due: list[tuple[str, str]] = []
        while self._escalations and self._escalations[0][0] <= now:
            _due, key, severity = heapq.heappop(self._escalations)
            due.append((key, severity))
        timed = [a for a in self.active.values() if a.flapping or a.maintenance_window is not None]
        timed += [a for a in self.active.values() if a.muted and (a.suppression or "").startswith("maintenance")]
        self._verify_active(session, {k for k, _ in due} | {a.key for a in timed})
        for key, severity in due:
            alarm = self.active.get(key)
            if alarm is not None and severity_rank(severity) > severity_rank(alarm.severity):
                previous, alarm.severity = alarm.severity, severity
                batch.note(alarm, "escalated", "escalated", **{"from": previous, "to": severity, "by": "duration"})
                self._severity_moved(alarm)
        for alarm in [a for a in timed if a.flapping and a.state == "active"]:
            if self.flaps.stable(alarm.key, now):
                alarm.flapping = False
                if alarm.pending_clear:
                    batch.note(alarm, "flapping_ended", None, outcome="cleared")
                    self._clear(batch, alarm, now, reason="flapping ended; object stable in cleared state")
                else:
                    batch.note(alarm, "flapping_ended", "updated", outcome="active")
                    self._suppress(batch, alarm, now)
        for alarm in timed:
            self._suppress(batch, alarm, now)
        self.flaps.forget_idle(now)
        operator_changes = self._operator_changes(session, batch, now)
        self._after(batch, now)
        return operator_changes + self._flush(session, batch, now)

    def _operator_changes(self, session: Session, batch: _Batch, now: datetime) -> list[AlarmChange]:
        """Changes operators made through the API or CLI (already committed): index them, publish them."""
        rows = session.execute(
            select(AlarmJournal.id, AlarmJournal.action, AlarmJournal.actor, Alarm)
            .join(Alarm, Alarm.id == AlarmJournal.alarm_id)
            .where(AlarmJournal.id > self._journal_seen, AlarmJournal.actor != ENGINE)
            .order_by(AlarmJournal.id)
        ).all()
        out: list[AlarmChange] = []
        for journal_id, action, actor, row in rows:
            self._journal_seen = max(self._journal_seen, journal_id)
            indexed = self.active.get(row.reduction_key)
            if indexed is not None and indexed.id == row.id:
                if row.state != "active":
                    self._unindex(indexed)
                    indexed.state = "cleared"
                    if indexed.topology is not None or indexed.root_cause or indexed.parent is not None:
                        batch.topology_dirty = True
                elif indexed.severity != row.severity:
                    indexed.severity = row.severity
                    self._severity_moved(indexed)
            kind: ChangeKind = "cleared" if action == "cleared" else "updated"
            out.append(
                AlarmChange(
                    kind=kind,
                    alarm_id=row.id,
                    reduction_key=row.reduction_key,
                    alarm_type=row.alarm_type,
                    device=row.device,
                    managed_object=row.managed_object,
                    severity=row.severity,
                    state=row.state,
                    count=row.count,
                    muted=row.muted,
                    suppression_reason=row.suppression_reason,
                    parent_id=row.parent_id,
                    root_cause=row.root_cause,
                    at=now,
                    actor=actor,
                )
            )
        return out

    # ---- one event -------------------------------------------------------------------------

    def _one(self, batch: _Batch, event: Event, decision: Decision, stored: int | None, now: datetime) -> None:
        alarm = self.active.get(decision.reduction_key)
        if decision.action == "clear":
            if alarm is None:
                batch.events.append((event, stored, "ignored", decision.reduction_key, None))
                return
            changes = self.flaps.record(alarm.key, event.time)
            alarm.last = max(alarm.last, event.time)
            if alarm.flapping or self.flaps.is_flapping(changes):
                alarm.pending_clear = True
                if not alarm.flapping:
                    alarm.flapping = True
                    batch.note(alarm, "flapping", "flapping", changes=changes, window_s=self.config.flap_window_s)
                    self._suppress(batch, alarm, now)
                else:
                    batch.touch(alarm)
                batch.events.append((event, stored, "flap", alarm.key, alarm))
                return
            batch.events.append((event, stored, "clear", alarm.key, alarm))
            self._clear(batch, alarm, event.time, reason=f"clear event {event.event_type}")
            return
        rule = decision.rule
        if alarm is None:
            changes = self.flaps.record(decision.reduction_key, event.time)
            alarm = self._raise(batch, event, decision, rule)
            batch.events.append((event, stored, "raise", alarm.key, alarm))
            if self.flaps.is_flapping(changes):
                alarm.flapping = True
                batch.note(alarm, "flapping", "flapping", changes=changes, window_s=self.config.flap_window_s)
            self._suppress(batch, alarm, now)
            return
        # Dedup (or a raise while flapping in the cleared state: a state change, still one alarm).
        if alarm.pending_clear:
            alarm.pending_clear = False
            self.flaps.record(alarm.key, event.time)
            batch.events.append((event, stored, "flap", alarm.key, alarm))
        else:
            batch.events.append((event, stored, "dedup", alarm.key, alarm))
        alarm.count += 1
        alarm.last = max(alarm.last, event.time)
        batch.touch(alarm)
        target = self._count_escalation(rule, alarm.count)
        if target is not None and severity_rank(target) > severity_rank(alarm.severity):
            previous, alarm.severity = alarm.severity, target
            batch.note(alarm, "escalated", "escalated", **{"from": previous, "to": target, "by": "count"})
            self._severity_moved(alarm)

    def _raise(self, batch: _Batch, event: Event, decision: Decision, rule: MappingRule | None) -> ActiveAlarm:
        alarm = ActiveAlarm(
            id=None,
            key=decision.reduction_key,
            alarm_type=decision.alarm_type,
            rule=rule.name if rule else "",
            topology=rule.topology if rule else None,
            device=event.device,
            managed_object=event.managed_object,
            severity=decision.severity,
            count=1,
            first=event.time,
            last=event.time,
        )
        alarm.groups = bool(rule and rule.groups_interfaces)
        batch.raising[id(alarm)] = event
        batch.new.append(alarm)
        self._index(alarm)
        batch.note(alarm, "raised", "raised", event_type=event.event_type, severity=alarm.severity)
        if (alarm.topology is not None and self.graph.roots) or alarm.groups or self._grouped_by(alarm) is not None:
            batch.topology_dirty = True
        self._schedule_escalations(alarm, rule)
        return alarm

    def _clear(self, batch: _Batch, alarm: ActiveAlarm, at: datetime, *, reason: str, actor: str = ENGINE) -> None:
        alarm.state = "cleared"
        alarm.cleared_at = at
        alarm.flapping = False
        alarm.pending_clear = False
        self._unindex(alarm)
        batch.note(alarm, "cleared", "cleared", reason=reason)
        if (alarm.topology is not None and self.graph.roots) or alarm.groups or alarm.root_cause or alarm.parent:
            batch.topology_dirty = True

    def _grouped_by(self, alarm: ActiveAlarm) -> ActiveAlarm | None:
        """The active alarm of the same device that groups this interface alarm, if any."""
        if not alarm.managed_object.startswith("interface:"):
            return None
        for key in self.by_device.get(alarm.device, ()):
            other = self.active.get(key)
            if other is not None and other.groups and other is not alarm:
                return other
        return None

    def _count_escalation(self, rule: MappingRule | None, count: int) -> str | None:
        if rule is None:
            return None
        best: str | None = None
        for step in rule.escalate:
            if step.count is not None and count >= step.count:
                if best is None or severity_rank(step.severity) > severity_rank(best):
                    best = step.severity
        return best

    def _schedule_escalations(self, alarm: ActiveAlarm, rule: MappingRule | None) -> None:
        if rule is None:
            return
        for step in rule.escalate:
            if step.after_s is not None:
                due = alarm.first + timedelta(seconds=step.after_s)
                heapq.heappush(self._escalations, (due, alarm.key, step.severity))

    # ---- suppressors: maintenance, flapping, topology (like Alertmanager's Muter) -----------

    def _suppression(self, alarm: ActiveAlarm, now: datetime) -> tuple[str | None, int | None]:
        window = covering(
            self.windows,
            now,
            device=alarm.device,
            managed_object=alarm.managed_object,
            site=self.graph.device_site.get(alarm.device),
            tags=self.graph.device_tags.get(alarm.device, frozenset()),
        )
        if window is not None:
            return f"maintenance window {window.name!r} (id {window.id})", window.id
        if alarm.flapping:
            return (
                f"flapping: more than {self.config.flap_threshold} state changes in {self.config.flap_window_s:g} s",
                None,
            )
        if alarm.parent is not None:
            return f"correlated: {alarm.correlation_reason}", None
        return None, None

    def _suppress(self, batch: _Batch, alarm: ActiveAlarm, now: datetime) -> None:
        if alarm.state != "active":
            return
        reason, window_id = self._suppression(alarm, now)
        alarm.maintenance_window = window_id
        if reason == alarm.suppression:
            return
        was_muted = alarm.muted
        alarm.suppression = reason
        alarm.muted = reason is not None
        if alarm.muted and not was_muted:
            batch.note(alarm, "muted", "muted", reason=reason)
        elif was_muted and not alarm.muted:
            batch.note(alarm, "unmuted", "unmuted")
        else:
            batch.note(alarm, "suppression_changed", "updated", reason=reason)

    # ---- topology correlation ---------------------------------------------------------------

    def _after(self, batch: _Batch, now: datetime) -> None:
        if self.graph.roots or batch.topology_dirty:
            reach = self._reach
            if (
                batch.topology_dirty
                or reach is None
                or any(
                    a.topology == "link" or (a.device in self.graph.adjacency and a.device not in reach)
                    for a in batch.new
                )
            ):
                self._correlate(batch, now)
        self._refresh_impact(batch)

    # ---- customer service impact ------------------------------------------------------------

    def _refresh_impact(self, batch: _Batch) -> None:
        """Recompute which services the alarms affect: every active alarm after a correlation (the
        topology part and the roots' unions may have moved), else only the batch's new alarms."""
        if not self.services.by_device and not self._impact_stale:
            return
        full = batch.correlated or self._impact_stale
        self._impact_stale = False
        alarms = list(self.active.values()) if full else [a for a in batch.new if a.state == "active"]
        if not alarms:
            return
        own: dict[str, dict[int, tuple[str, str]]] = {}
        for a in alarms:
            direct = self.services.direct(
                device=a.device, managed_object=a.managed_object, device_failed=a.topology == "device"
            )
            if direct:
                level = "down" if a.topology is not None or severity_rank(a.severity) >= MAJOR else "degraded"
                own[a.key] = dict.fromkeys(direct, ("direct", level))
        if full and self.graph.roots and self.services.by_device:
            failed_devices, failed_links, device_alarm, link_alarms = self._failures()
            reach = self._reach if self._reach is not None else reachable(self.graph, failed_devices, failed_links)
            cut = [d for d in self.services.by_device if d in self.graph.adjacency and d not in reach]
            for device, cause in causes(self.graph, failed_devices, failed_links, cut).items():
                if cause is None:
                    continue
                if cause[0] == "device":
                    culprit = device_alarm.get(str(cause[1]))
                else:
                    ends = sorted(link_alarms.get(int(cause[1]), []), key=lambda x: (x.device not in reach, x.device))
                    culprit = ends[0] if ends else None
                if culprit is None:
                    continue
                mine = own.setdefault(culprit.key, {})
                for fp in self.services.by_device[device]:
                    mine.setdefault(fp.service_id, ("topology", "down"))
        total = {key: dict(m) for key, m in own.items()}
        if full:  # a root cause carries the union of its children's impact
            for a in alarms:
                if a.parent is not None and a.key in own:
                    carried = total.setdefault(a.parent.key, {})
                    for sid, (_how, level) in own[a.key].items():
                        carried.setdefault(sid, ("child", level))
        for a in alarms:
            wanted = total.get(a.key) or None
            if wanted != a.impact:
                a.impact = wanted
                batch.impact[id(a)] = a
                self._states_dirty = True
                services = len(wanted or ())
                batch.note(a, "impact", "impact", services=services,
                           customers=self.services.customers(wanted or ()))  # fmt: skip

    def _severity_moved(self, alarm: ActiveAlarm) -> None:
        """A service's level on its alarm follows the severity (major and up: down): recompute."""
        if alarm.impact:
            self._impact_stale = True

    def _failures(self) -> tuple[set[str], set[int], dict[str, ActiveAlarm], dict[int, list[ActiveAlarm]]]:
        failed_devices: set[str] = set()
        failed_links: set[int] = set()
        device_alarm: dict[str, ActiveAlarm] = {}
        link_alarms: dict[int, list[ActiveAlarm]] = {}
        for alarm in self.active.values():
            if alarm.topology == "device":
                failed_devices.add(alarm.device)
                device_alarm.setdefault(alarm.device, alarm)
            elif alarm.topology == "link":
                iface = interface_of(alarm.managed_object)
                link = self.graph.interface_link.get((alarm.device, iface)) if iface else None
                if link is not None:
                    failed_links.add(link)
                    link_alarms.setdefault(link, []).append(alarm)
        return failed_devices, failed_links, device_alarm, link_alarms

    def _correlate(self, batch: _Batch, now: datetime) -> None:
        batch.correlated = True
        failed_devices, failed_links, device_alarm, link_alarms = self._failures()
        reach = reachable(self.graph, failed_devices, failed_links)
        self._reach = reach
        alarmed = set(self.by_device)
        # Devices whose alarms may be symptoms: cut off, or at the far end of a failed link.
        candidates = {d for d in alarmed if d in self.graph.adjacency and d not in reach}
        groupers = {a.device: a for a in self.active.values() if a.groups}
        candidates |= set(groupers)
        for link in failed_links:
            for end in self.graph.link_ends[link]:
                candidates.add(end[0])
        cause_of = causes(self.graph, failed_devices, failed_links, candidates | failed_devices)

        def cause_alarm(cause: Cause) -> tuple[ActiveAlarm | None, str]:
            kind, what = cause
            if kind == "device":
                return device_alarm.get(str(what)), f"upstream device {what} unreachable"
            link_id = int(what)
            (a_dev, a_if), (b_dev, b_if) = self.graph.link_ends[link_id]
            alarms = sorted(link_alarms.get(link_id, []), key=lambda x: (x.device not in reach, x.device))
            return (alarms[0] if alarms else None), f"link {a_dev}:{a_if} - {b_dev}:{b_if} down"

        desired: dict[str, tuple[ActiveAlarm, str]] = {}
        for device in candidates:
            for key in self.by_device.get(device, ()):
                alarm = self.active[key]
                parent: ActiveAlarm | None = None
                reason = ""
                cause = cause_of.get(device)
                if cause is None:
                    if alarm.topology == "link":
                        # Reachable end of a link whose far device is cut off: under that device's cause.
                        iface = interface_of(alarm.managed_object)
                        link_id = self.graph.interface_link.get((device, iface)) if iface else None
                        if link_id is not None:
                            ends = self.graph.link_ends[link_id]
                            far = ends[1][0] if ends[0][0] == device else ends[0][0]
                            far_cause = cause_of.get(far)
                            # Only a failed far device explains this link; another failed link does not.
                            if far_cause is not None and far_cause[0] == "device":
                                parent, _ = cause_alarm(far_cause)
                                reason = f"neighbor device {far} unreachable"
                elif cause == ("device", device):
                    if alarm.topology != "device":
                        parent, reason = device_alarm.get(device), f"device {device} unreachable"
                else:
                    parent, reason = cause_alarm(cause)
                grouper = groupers.get(device)
                if parent is None and grouper is not None and alarm.managed_object.startswith("interface:"):
                    parent, reason = grouper, f"{grouper.alarm_type} on device {device}"
                if parent is None or parent is alarm:
                    continue
                # Settle window: a symptom older than its cause by more than settle_s is an independent fault.
                if alarm.first < parent.first - timedelta(seconds=self.config.settle_s) and alarm.parent is not parent:
                    continue
                desired[key] = (parent, reason)
        # Flatten chains so every child hangs under a top-level root cause.
        for key, (top, why) in list(desired.items()):
            seen = {key}
            while top.key in desired and top.key not in seen:
                seen.add(top.key)
                top = desired[top.key][0]
            desired[key] = (top, why)
        changed_roots: set[str] = set()
        for key in set(desired) | self._correlated:
            found = self.active.get(key)
            if found is None:
                continue
            alarm = found
            want = desired.get(alarm.key)
            want_parent, want_reason = want if want is not None else (None, None)
            if want_parent is alarm.parent and want_reason == alarm.correlation_reason:
                continue
            if alarm.parent is not None:
                changed_roots.add(alarm.parent.key)
            alarm.parent = want_parent
            alarm.correlation_reason = want_reason
            if want_parent is not None:
                self._correlated.add(alarm.key)
                changed_roots.add(want_parent.key)
                batch.note(alarm, "correlated", "correlated", parent_key=want_parent.key, reason=want_reason)
            else:
                self._correlated.discard(alarm.key)
                batch.note(alarm, "uncorrelated", "updated")
            self._suppress(batch, alarm, now)
        children: set[str] = {p.key for p, _ in desired.values()}
        for key in changed_roots | {a.key for a in self.active.values() if a.root_cause}:
            root = self.active.get(key)
            if root is None:
                continue
            alarm = root
            is_root = key in children
            if is_root != alarm.root_cause:
                alarm.root_cause = is_root
                n = sum(1 for p, _ in desired.values() if p is alarm)
                batch.note(alarm, "root_cause" if is_root else "root_cause_unset", "root_cause", children=n)

    # ---- thresholds on samples -------------------------------------------------------------

    def _threshold(self, sample: Sample) -> Iterable[Event]:
        for rule in self.rules.thresholds:
            if not rule.matches(sample.metric, sample.labels):
                continue
            labels = tuple(sorted(sample.labels.items()))
            state_key = (rule.name, sample.device, labels)
            mo = ",".join(f"{k}={v}" for k, v in labels)
            if state_key in self._threshold_firing:
                if rule.clearing(sample.value):
                    self._threshold_firing.discard(state_key)
                    yield self._threshold_event(rule, sample, mo, "cleared")
                continue
            if rule.firing(sample.value):
                since = self._threshold_state.setdefault(state_key, sample.time)
                if (sample.time - since).total_seconds() >= rule.for_s:
                    self._threshold_firing.add(state_key)
                    self._threshold_state.pop(state_key, None)
                    yield self._threshold_event(rule, sample, mo, rule.severity)
            else:
                self._threshold_state.pop(state_key, None)

    def _threshold_event(self, rule: ThresholdRule, sample: Sample, mo: str, severity: str) -> Event:
        return Event(
            source="poll",
            device=sample.device,
            event_type=f"threshold:{rule.name}",
            severity=severity,  # type: ignore[arg-type]
            time=sample.time,
            managed_object=mo,
            specific_problem=f"{rule.metric} {rule.op} {rule.value:g}",
            description=f"{rule.metric}={sample.value:g}",
            raw={"metric": rule.metric, "value": sample.value, "labels": dict(sample.labels)},
        )

    # ---- index and database ----------------------------------------------------------------

    def _index(self, alarm: ActiveAlarm) -> None:
        self.active[alarm.key] = alarm
        self.by_device.setdefault(alarm.device, set()).add(alarm.key)

    def _unindex(self, alarm: ActiveAlarm) -> None:
        if self.active.get(alarm.key) is alarm:
            del self.active[alarm.key]
            self._correlated.discard(alarm.key)
            if alarm.impact:
                self._states_dirty = True
        keys = self.by_device.get(alarm.device)
        if keys is not None:
            keys.discard(alarm.key)
            if not keys:
                del self.by_device[alarm.device]

    def _verify_active(self, session: Session, keys: set[str]) -> None:
        """Drop index entries an operator cleared through the API since we last looked."""
        known = [a for k in keys if (a := self.active.get(k)) is not None and a.id is not None]
        if not known:
            return
        ids = [a.id for a in known]
        still: dict[int, tuple[str, bool]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row in session.execute(select(Alarm.id, Alarm.severity, Alarm.state).where(Alarm.id.in_(chunk))):
                still[row.id] = (row.severity, row.state == "active")
        for alarm in known:
            state = still.get(alarm.id)  # type: ignore[arg-type]
            if state is None or not state[1]:
                self._unindex(alarm)
                alarm.state = "cleared"
                self._reach = None if alarm.topology else self._reach
            elif alarm.severity != state[0]:
                alarm.severity = state[0]
                self._severity_moved(alarm)

    def _flush(self, session: Session, batch: _Batch, now: datetime) -> list[AlarmChange]:
        new_ids = {id(a) for a in batch.new}
        # Existing alarms first: a cleared row must leave the active key before a new row takes it.
        existing = [a for a in batch.dirty.values() if id(a) not in new_ids]
        later = [a for a in existing if a.parent is not None and a.parent.id is None]
        self._write_updates(session, [a for a in existing if not (a.parent is not None and a.parent.id is None)])
        if batch.new:
            rows = []
            for a in batch.new:
                ev = batch.raising[id(a)]
                rows.append(
                    {
                        "reduction_key": a.key,
                        "clear_key": a.key,
                        "alarm_type": a.alarm_type,
                        "rule": a.rule,
                        "source": ev.source,
                        "device": a.device,
                        "managed_object": a.managed_object,
                        "probable_cause": ev.probable_cause,
                        "specific_problem": ev.specific_problem,
                        "description": ev.description,
                        "first_occurrence": a.first,
                        "last_occurrence": a.last,
                        "cleared_at": a.cleared_at,
                        "count": a.count,
                        "original_severity": ev.severity if ev.severity != "cleared" else a.severity,
                        "severity": a.severity,
                        "state": a.state,
                        "flapping": a.flapping,
                        "acknowledged": False,
                        "root_cause": a.root_cause,
                        "parent_id": None,
                        "correlation_reason": a.correlation_reason,
                        "muted": a.muted,
                        "suppression_reason": a.suppression,
                    }
                )
            ids = _insert_returning_ids(session, rows)
            for a, new_id in zip(batch.new, ids, strict=True):
                a.id = new_id
        self._write_updates(session, later + [a for a in batch.new if a.parent is not None])
        if batch.impact:
            self._write_impact(session, list(batch.impact.values()))
        if self._states_dirty:
            self._write_states(session, now)
        new_events = []
        stored_updates = []
        for event, stored, action, key, alarm in batch.events:
            alarm_id = alarm.id if alarm is not None else None
            if stored is not None:
                stored_updates.append({"eid": stored, "action": action, "reduction_key": key, "alarm_id": alarm_id})
                continue
            new_events.append(
                {
                    "received_at": now,
                    "time": event.time,
                    "source": event.source,
                    "device": event.device,
                    "managed_object": event.managed_object,
                    "event_type": event.event_type,
                    "severity": event.severity,
                    "probable_cause": event.probable_cause,
                    "specific_problem": event.specific_problem,
                    "description": event.description,
                    "raw": dict(event.raw),
                    "processed": True,
                    "action": action,
                    "reduction_key": key,
                    "alarm_id": alarm_id,
                }
            )
        if stored_updates:
            session.execute(
                update(EVENTS).where(EVENTS.c.id == bindparam("eid")).values(processed=True), stored_updates
            )
        # Core statements (COPY on PostgreSQL), not the ORM's bulk paths: the engine's hot loop.
        insert_rows(session, EVENTS, new_events)
        insert_rows(
            session,
            JOURNAL,
            [{"alarm_id": a.id, "at": now, "actor": ENGINE, "action": action, "detail": detail}
             for a, action, detail in batch.journal],
        )  # fmt: skip
        # A new alarm is announced once, in its final state of this batch.
        announced: set[int] = set()
        out = []
        for kind, a in batch.changes:
            if id(a) in new_ids:
                if id(a) in announced or kind not in ("raised", "root_cause"):
                    continue
                if kind == "raised":
                    announced.add(id(a))
            out.append(_change(kind, a, now))
        return out

    def _write_impact(self, session: Session, alarms: list[ActiveAlarm]) -> None:
        """Replace the stored service impact of these alarms and their counts."""
        ids = [a.id for a in alarms if a.id is not None]
        for start in range(0, len(ids), 500):
            session.execute(delete(IMPACT).where(IMPACT.c.alarm_id.in_(ids[start : start + 500])))
        rows = []
        counts = []
        for a in alarms:
            impact = a.impact or {}
            for sid, (how, level) in sorted(impact.items()):
                info = self.services.info.get(sid)
                if info is None:
                    continue
                rows.append({"alarm_id": a.id, "service_id": sid, "customer": info.customer,
                             "service_type": info.service_type, "sla_class": info.sla_class, "how": how,
                             "level": level})  # fmt: skip
            counts.append({"aid": a.id, "services_affected": len(impact),
                           "customers_affected": self.services.customers(impact)})  # fmt: skip
        insert_rows(session, IMPACT, rows)
        session.execute(update(ALARMS).where(ALARMS.c.id == bindparam("aid")), counts)

    def _write_states(self, session: Session, now: datetime) -> None:
        """Re-derive each service's state from the active alarms' impact; a change closes the
        service's open history row and opens one for the new state (none when it is up again)."""
        wanted = service_states(
            (a.id, a.impact) for a in self.active.values() if a.impact and a.id is not None and a.state == "active"
        )
        closing: list[int] = []
        opening: list[tuple[int, str, int]] = []
        for sid in sorted(set(wanted) | set(self.service_states)):
            new = wanted.get(sid)
            old = self.service_states.get(sid)
            if (new and new[0]) == (old and old[0]):
                continue
            if old is not None:
                closing.append(old[1])
                del self.service_states[sid]
            if new is not None:
                opening.append((sid, new[0], new[1]))
        for at in range(0, len(closing), 500):
            session.execute(update(STATES).where(STATES.c.id.in_(closing[at : at + 500])).values(ended_at=now))
        if opening:
            rows = [
                {"service_id": sid, "customer": info.customer if (info := self.services.info.get(sid)) else "",
                 "state": state, "started_at": now, "ended_at": None, "alarm_id": alarm_id}
                for sid, state, alarm_id in opening
            ]  # fmt: skip
            result = session.execute(
                insert(STATES).returning(STATES.c.id, sort_by_parameter_order=True), rows
            )
            for (sid, state, _alarm_id), row_id in zip(opening, result.scalars(), strict=True):
                self.service_states[sid] = (state, row_id)
        self._states_dirty = False

    def _write_updates(self, session: Session, alarms: list[ActiveAlarm]) -> None:
        updates = []
        # ascending ids, as ticketing writes them (``alarms_ticketed``): row locks in one order, no deadlock
        for a in sorted(alarms, key=lambda x: x.id or 0):
            assert a.id is not None
            a.parent_id = a.parent.id if a.parent is not None else None
            updates.append(
                {
                    "aid": a.id,
                    "count": a.count,
                    "last_occurrence": a.last,
                    "severity": a.severity,
                    "state": a.state,
                    "cleared_at": a.cleared_at,
                    "flapping": a.flapping,
                    "muted": a.muted,
                    "suppression_reason": a.suppression,
                    "parent_id": a.parent_id,
                    "correlation_reason": a.correlation_reason,
                    "root_cause": a.root_cause,
                }
            )
        if updates:
            session.execute(update(ALARMS).where(ALARMS.c.id == bindparam("aid")), updates)


def _insert_returning_ids(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert alarm rows and return their ids in order.

    PostgreSQL: ids drawn from the sequence first, then one COPY, because a multi-row
    INSERT .. RETURNING spends its time in client-side query parsing. SQLite: INSERT ..
    RETURNING in parameter order.
    """
    if session.get_bind().dialect.name == "postgresql":
        ids = list(
            session.execute(
                text("SELECT nextval(pg_get_serial_sequence('alarms', 'id')) FROM generate_series(1, :n)"),
                {"n": len(rows)},
            ).scalars()
        )
        insert_rows(session, ALARMS, [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
        return ids
    result = session.execute(insert(ALARMS).returning(ALARMS.c.id, sort_by_parameter_order=True), rows)
    return list(result.scalars())


def _change(kind: ChangeKind, a: ActiveAlarm, now: datetime) -> AlarmChange:
    assert a.id is not None
    return AlarmChange(
        kind=kind,
        alarm_id=a.id,
        reduction_key=a.key,
        alarm_type=a.alarm_type,
        device=a.device,
        managed_object=a.managed_object,
        severity=a.severity,
        state=a.state,
        count=a.count,
        muted=a.muted,
        suppression_reason=a.suppression,
        parent_id=a.parent.id if a.parent is not None else None,
        root_cause=a.root_cause,
        at=now,
    )
