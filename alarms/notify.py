"""Notifications: webhook (JSON, HMAC-SHA256 signed) and SMTP e-mail, routed by severity, site,
tag and device, with re-notify and escalation intervals.

Delivery is **at-least-once**: an alarm change that matches a route becomes a row in the
``alarm_notifications`` outbox in the very transaction that made the change (the engine
calls ``Notifier.enqueue`` before it commits), so a change is never committed without its
notifications; the delivery loop sends due rows and marks them delivered only after the
channel accepted them. A failure is retried with exponential back-off (10 s doubling up to
1 h) until ``FAULTLOOP_ALARM_NOTIFY_MAX_ATTEMPTS``; then, or at once for a row that can never
be sent, the row is given up (``gave_up_at``, ``last_error``, counted and logged). Each row
is sent in its own transaction, so one bad row never holds up the others. A crash between the
send and the mark sends the row again, so receivers should dedupe on ``X-Faultloop-Delivery``
(the outbox id). Muted alarms (maintenance, flapping, correlated children) notify nobody.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alarms.errors import RuleError
from alarms.models import Alarm, Notification
from faultloop import clock
from faultloop.events import AlarmChange
from faultloop.leader import Leadership, fenced_transaction
from faultloop.notify import (
    Channel,
    ChannelSpec,
    DeliveryError,
    Message,
    NotifyConfigError,
    PermanentError,
    build_channel,
    deliver_due,
    header_text,
    leader_round,
    read_document,
    validate_entries,
)
from faultloop.runtime import Runtime
from faultloop.worker import WorkerThread
from inventory import queries as inventory

__all__ = ["Channel", "ChannelSpec", "DeliveryError", "Message", "Notifier", "PermanentError", "header_text"]

log = logging.getLogger("faultloop.alarms.notify")
NOTIFY_KINDS = {"raised", "unmuted", "cleared", "escalated"}


# ---- configuration -------------------------------------------------------------------------


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    severities: list[Literal["critical", "major", "minor", "warning", "indeterminate"]] = []
    sites: list[str] = []
    tags: list[str] = []
    devices: list[str] = []
    channels: list[str] = Field(min_length=1)
    renotify_s: float | None = Field(None, ge=60)
    escalate_after_s: float | None = Field(None, ge=60)
    escalate_to: list[str] = []
    notify_clear: bool = True

    def matches(self, severity: str, device: str, site: str | None, tags: frozenset[str]) -> bool:
        if self.severities and severity not in self.severities:
            return False
        if self.devices and device not in self.devices:
            return False
        if self.sites and site not in self.sites:
            return False
        return not self.tags or not tags.isdisjoint(self.tags)


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: list[ChannelSpec] = []
    routes: list[RouteSpec] = []


def parse_config(text: str, *, file: str) -> NotifyConfig:
    try:
        doc, channels = read_document(text, file=file)
        config = NotifyConfig(channels=channels, routes=validate_entries(RouteSpec, doc, "routes", file=file))
    except NotifyConfigError as exc:
        raise RuleError(exc.file, exc.entry, exc.entry_field, exc.message) from None
    names = {c.name for c in config.channels}
    for route in config.routes:
        for channel in [*route.channels, *route.escalate_to]:
            if channel not in names:
                raise RuleError(file, route.name, "channels", f"unknown channel {channel!r}")
    return config


def load_config(path: Path) -> NotifyConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(str(path), "", "(file)", f"cannot read: {exc.strerror}") from None
    return parse_config(text, file=str(path))


# ---- the notifier ---------------------------------------------------------------------------------


def alarm_payload(alarm: Alarm, reason: str) -> dict[str, Any]:
    return {
        "reason": reason,
        "alarm": {
            "id": alarm.id,
            "reduction_key": alarm.reduction_key,
            "alarm_type": alarm.alarm_type,
            "device": alarm.device,
            "managed_object": alarm.managed_object,
            "severity": alarm.severity,
            "state": alarm.state,
            "count": alarm.count,
            "first_occurrence": alarm.first_occurrence.isoformat(),
            "last_occurrence": alarm.last_occurrence.isoformat(),
            "root_cause": alarm.root_cause,
            "acknowledged": alarm.acknowledged,
            "description": alarm.description,
        },
    }


PD_ACTIONS: dict[str, Any] = {"raised": "trigger", "unmuted": "trigger", "escalated": "trigger",
                              "renotify": "trigger", "escalation": "trigger", "cleared": "resolve"}  # fmt: skip


def alarm_message(payload: dict[str, Any]) -> Message:
    """What the channels carry for one stored alarm notification (the row's payload)."""
    alarm, reason = payload["alarm"], payload["reason"]
    title = (f"{alarm['severity'].upper()} {alarm['alarm_type']} {alarm['device']} {alarm['managed_object']}"
             f" ({reason})")  # fmt: skip
    return Message(
        title=header_text(title, limit=300), severity=alarm["severity"], source=alarm["device"],
        facts={k: str(v) for k, v in alarm.items()}, body=payload, dedup_key=alarm["reduction_key"],
        pd_action=PD_ACTIONS.get(reason), kind="alarm",
    )  # fmt: skip


class Notifier:
    """Subscribes to the alarm bus (after commit), fills the outbox, delivers it from a thread."""

    name = "notifications"

    def __init__(
        self,
        rt: Runtime,
        config: NotifyConfig,
        channels: dict[str, Channel] | None = None,
        *,
        leadership: Leadership | None = None,
    ) -> None:
        self.rt = rt
        # None: the only notifier (tests); otherwise it schedules and delivers only while this instance leads.
        # The outbox rows of a change are added by whoever committed the change (on_alarm_changes).
        self.leadership = leadership
        self.config = config
        self.channels = channels if channels is not None else build_channels(rt, config)
        # the outbox is also swept every 5 s: retries come due without an alarm change
        self._worker = WorkerThread(
            "alarm-notify", self.run_once, interval_s=lambda: 5.0, log=log, failure="notification round failed"
        )

    @staticmethod
    def _wanted(changes: Sequence[AlarmChange]) -> list[AlarmChange]:
        return [c for c in changes if c.kind in NOTIFY_KINDS and (c.kind == "cleared" or not c.muted)]

    # the engine's outbox hook: runs inside the transaction that made the changes, before its commit
    def enqueue(self, session: Session, changes: Sequence[AlarmChange]) -> None:
        if not self.config.routes:
            return
        for change in self._wanted(changes):
            self._enqueue_change(session, change)

    # bus subscriber: runs after the engine's commit; the rows are already in the outbox
    def on_alarm_changes(self, changes: Sequence[AlarmChange]) -> None:
        if self.config.routes and self._wanted(changes):
            self._worker.wake()

    def _enqueue_change(self, session: Session, change: AlarmChange) -> None:
        alarm = session.get(Alarm, change.alarm_id)
        if alarm is None:
            return
        site, tags = _device_scope(session, alarm.device)
        for route in self.config.routes:
            if not route.matches(alarm.severity, alarm.device, site, tags):
                continue
            if change.kind == "cleared":
                if not route.notify_clear or not self._notified(session, alarm.id, route.name):
                    continue  # nobody was told it was raised (muted, or another route)
            self._add(session, alarm, route, route.channels, change.kind)

    def _notified(self, session: Session, alarm_id: int, route: str) -> bool:
        return (
            session.scalar(
                select(Notification.id).where(Notification.alarm_id == alarm_id, Notification.route == route).limit(1)
            )
            is not None
        )

    def _add(self, session: Session, alarm: Alarm, route: RouteSpec, channels: Sequence[str], reason: str) -> None:
        now = clock.now()
        payload = alarm_payload(alarm, reason)
        message = alarm_message(payload)
        for channel in channels:
            adapter = self.channels.get(channel)
            if adapter is not None and not adapter.accepts(message):
                continue  # e.g. PagerDuty: nothing to trigger or resolve
            session.add(
                Notification(
                    alarm_id=alarm.id,
                    channel=channel,
                    route=route.name,
                    reason=reason,
                    payload=payload,
                    created_at=now,
                    next_attempt_at=now,
                    attempts=0,
                )
            )
        session.flush()

    def schedule(self, session: Session, now: datetime) -> int:
        """Re-notify and escalation intervals for active, unmuted, unacknowledged alarms."""
        routes = [r for r in self.config.routes if r.renotify_s or r.escalate_after_s]
        if not routes:
            return 0
        added = 0
        # Only alarms someone was already told about can be re-notified or escalated: the outbox
        # rows give them, in two grouped queries (no query per alarm).
        last_plain: dict[tuple[int, str], datetime] = {}
        escalated: set[tuple[int, str]] = set()
        for alarm_id, route_name, reason, latest in session.execute(
            select(Notification.alarm_id, Notification.route, Notification.reason, func.max(Notification.created_at))
            .join(Alarm, Alarm.id == Notification.alarm_id)
            .where(Alarm.state == "active", Alarm.muted.is_(False), Alarm.acknowledged.is_(False))
            .group_by(Notification.alarm_id, Notification.route, Notification.reason)
        ):
            if reason == "escalation":
                escalated.add((alarm_id, route_name))
            else:
                key = (alarm_id, route_name)
                last_plain[key] = max(latest, last_plain.get(key, latest))
        if not last_plain:
            return 0
        alarms = session.scalars(select(Alarm).where(Alarm.id.in_({a for a, _ in last_plain}))).all()
        by_route = {r.name: r for r in routes}
        per_alarm: dict[int, list[tuple[str, datetime]]] = {}
        for (alarm_id, route_name), last in last_plain.items():
            per_alarm.setdefault(alarm_id, []).append((route_name, last))
        for alarm in alarms:
            for route_name, last in per_alarm.get(alarm.id, []):
                route = by_route.get(route_name)
                if route is None:
                    continue
                if route.renotify_s and now - last >= timedelta(seconds=route.renotify_s):
                    self._add(session, alarm, route, route.channels, "renotify")
                    added += len(route.channels)
                if (
                    route.escalate_after_s
                    and route.escalate_to
                    and now - alarm.first_occurrence >= timedelta(seconds=route.escalate_after_s)
                    and (alarm.id, route.name) not in escalated
                ):
                    self._add(session, alarm, route, route.escalate_to, "escalation")
                    added += len(route.escalate_to)
        return added

    def deliver_due(self, now: datetime | None = None, *, limit: int = 100) -> tuple[int, int]:
        """Send due rows, each in its own transaction; (delivered, failed)."""
        return deliver_due(self.rt.sessions, self.leadership, Notification, self._send, now or clock.now(),
                           max_attempts=self.rt.settings.alarm_notify_max_attempts, limit=limit)  # fmt: skip

    def _send(self, session: Session, row: Notification) -> None:
        channel = self.channels.get(row.channel)
        if channel is None:
            raise PermanentError(f"channel {row.channel!r} is not configured")
        channel.send(row.id, alarm_message(row.payload))

    def run_once(self) -> tuple[int, int]:
        return leader_round(self.leadership, self._round, log=log, what="notification")

    def _round(self) -> tuple[int, int]:
        now = clock.now()
        with fenced_transaction(self.rt.sessions, self.leadership) as session:
            self.schedule(session, now)
        return self.deliver_due(now)

    async def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()


def _device_scope(session: Session, hostname: str) -> tuple[str | None, frozenset[str]]:
    scope = inventory.device_scope(session, hostname)
    if scope is None:
        return None, frozenset()
    return scope.site, frozenset(scope.tags)


def build_channels(rt: Runtime, config: NotifyConfig) -> dict[str, Channel]:
    return {spec.name: build_channel(spec, rt.settings) for spec in config.channels}
