"""Notifications: webhook (JSON, HMAC-SHA256 signed) and SMTP e-mail, routed by severity, site,
tag and device, with re-notify and escalation intervals.

Delivery is **at-least-once**: an alarm change that matches a route becomes a row in the
``alarm_notifications`` outbox (committed before any send); the delivery loop sends due
rows and marks them delivered only after the channel accepted them. A failure is retried
with exponential back-off (10 s doubling up to 1 h); a crash between the send and the
mark sends the row again, so receivers should dedupe on ``X-Faultloop-Delivery`` (the
outbox id). Muted alarms (maintenance, flapping, correlated children) notify nobody.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alarms.bus import AlarmChange
from alarms.errors import RuleError
from alarms.models import Alarm, Notification
from faultloop import clock
from faultloop.db import transaction
from faultloop.runtime import Runtime
from faultloop.worker import WorkerThread

log = logging.getLogger("faultloop.alarms.notify")
RETRY_BASE_S = 10.0
RETRY_MAX_S = 3600.0
NOTIFY_KINDS = {"raised", "unmuted", "cleared", "escalated"}


# ---- configuration -------------------------------------------------------------------------


class ChannelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    type: Literal["webhook", "email"]
    url: str | None = Field(None, pattern=r"^https?://")
    to: list[str] = []
    timeout_s: float = Field(10, gt=0, le=120)

    @model_validator(mode="after")
    def _fields_for_type(self) -> ChannelSpec:
        if self.type == "webhook" and not self.url:
            raise ValueError("a webhook channel needs url")
        if self.type == "email" and not self.to:
            raise ValueError("an email channel needs at least one address in to")
        return self


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
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise RuleError(file, "", "(yaml)", "not valid YAML") from None
    if not isinstance(doc, dict):
        raise RuleError(file, "", "(document)", "expected a mapping with channels and routes")
    try:
        config = NotifyConfig.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        item = ""
        if len(loc) >= 2 and loc[1].isdigit():
            entries = doc.get(loc[0]) or []
            index = int(loc[1])
            name = entries[index].get("name") if index < len(entries) and isinstance(entries[index], dict) else None
            item, loc = str(name or f"{loc[0]}[{index}]"), loc[2:]
        raise RuleError(file, item, ".".join(loc) or "(entry)", str(err["msg"]).removeprefix("Value error, ")) from None
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


# ---- channels (adapters behind a Protocol; tests use a real HTTP server and a real SMTP server) --


class Channel(Protocol):
    def send(self, delivery_id: int, payload: dict[str, Any]) -> None:
        """Deliver or raise."""
        ...


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass
class WebhookChannel:
    url: str
    secret: bytes | None
    timeout_s: float = 10.0

    def send(self, delivery_id: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        timestamp = str(int(clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Faultloop-Delivery": str(delivery_id),
            "X-Faultloop-Timestamp": timestamp,
        }
        if self.secret:
            headers["X-Faultloop-Signature"] = sign(self.secret, timestamp, body)
        response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        if response.status_code >= 300:
            raise DeliveryError(f"HTTP {response.status_code}")


@dataclass
class EmailChannel:
    host: str
    port: int
    sender: str
    to: list[str]
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout_s: float = 10.0
    allow_plaintext_auth: bool = False
    ca_file: str | None = None  # PEM bundle that signs the server's certificate; None: the system CAs

    def send(self, delivery_id: int, payload: dict[str, Any]) -> None:
        if not self.host:
            raise DeliveryError("FAULTLOOP_SMTP_HOST is not set")
        alarm = payload["alarm"]
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = (
            f"[faultloop] {alarm['severity'].upper()} {alarm['alarm_type']} {alarm['device']} "
            f"{alarm['managed_object']} ({payload['reason']})"
        )
        msg["X-Faultloop-Delivery"] = str(delivery_id)
        lines = [f"{k}: {v}" for k, v in alarm.items()]
        msg.set_content(f"Alarm {payload['reason']}\n\n" + "\n".join(lines) + "\n")
        if self.username and not self.starttls and not self.allow_plaintext_auth:
            # the settings refuse this at start; checked here too, before any connection
            raise DeliveryError("SMTP credentials need STARTTLS (FAULTLOOP_SMTP_STARTTLS=true)")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                # a verified certificate: TLS to whoever answers would hand the password to a man in the middle
                context = ssl.create_default_context(cafile=self.ca_file)
                try:
                    smtp.starttls(context=context)  # raises when the server offers none: nothing sent in clear
                except smtplib.SMTPNotSupportedError:
                    raise DeliveryError(f"{self.host}:{self.port} offers no STARTTLS; credentials not sent") from None
                except ssl.SSLCertVerificationError as exc:
                    raise DeliveryError(
                        f"{self.host}:{self.port}: certificate not trusted ({exc.verify_message}); credentials not sent"
                    ) from None
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(msg)


class DeliveryError(Exception):
    pass


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


class Notifier:
    """Subscribes to the alarm bus (after commit), fills the outbox, delivers it from a thread."""

    name = "notifications"

    def __init__(self, rt: Runtime, config: NotifyConfig, channels: dict[str, Channel] | None = None) -> None:
        self.rt = rt
        self.config = config
        self.channels = channels if channels is not None else build_channels(rt, config)
        # the outbox is also swept every 5 s: retries come due without an alarm change
        self._worker = WorkerThread(
            "alarm-notify", self.run_once, interval_s=lambda: 5.0, log=log, failure="notification round failed"
        )

    # bus subscriber: runs after the engine's commit
    def on_alarm_changes(self, changes: Sequence[AlarmChange]) -> None:
        wanted = [c for c in changes if c.kind in NOTIFY_KINDS and (c.kind == "cleared" or not c.muted)]
        if not wanted or not self.config.routes:
            return
        with transaction(self.rt.sessions) as session:
            for change in wanted:
                self._enqueue_change(session, change)
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
        for channel in channels:
            session.add(
                Notification(
                    alarm_id=alarm.id,
                    channel=channel,
                    route=route.name,
                    reason=reason,
                    payload=alarm_payload(alarm, reason),
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
        now = now or clock.now()
        with self.rt.sessions() as session:
            ids = session.scalars(
                select(Notification.id)
                .where(Notification.delivered_at.is_(None), Notification.next_attempt_at <= now)
                .order_by(Notification.id)
                .limit(limit)
            ).all()
        delivered = failed = 0
        for row_id in ids:
            with transaction(self.rt.sessions) as session:
                row = session.get(Notification, row_id)
                if row is None or row.delivered_at is not None:
                    continue
                channel = self.channels.get(row.channel)
                try:
                    if channel is None:
                        raise DeliveryError(f"channel {row.channel!r} is not configured")
                    channel.send(row.id, row.payload)
                except Exception as exc:  # every failure is retried with back-off, never lost
                    row.attempts += 1
                    delay = min(RETRY_BASE_S * 2 ** (row.attempts - 1), RETRY_MAX_S)
                    row.next_attempt_at = now + timedelta(seconds=delay)
                    row.last_error = (str(exc) if isinstance(exc, DeliveryError) else type(exc).__name__)[:500]
                    failed += 1
                    log.warning(
                        "notification %d via %s failed (%s); retry in %.0f s",
                        row.id,
                        row.channel,
                        row.last_error,
                        delay,
                    )
                    continue
                row.attempts += 1
                row.delivered_at = clock.now()
                delivered += 1
        return delivered, failed

    def run_once(self) -> tuple[int, int]:
        now = clock.now()
        with transaction(self.rt.sessions) as session:
            self.schedule(session, now)
        return self.deliver_due(now)

    async def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()


def _device_scope(session: Session, hostname: str) -> tuple[str | None, frozenset[str]]:
    from inventory.models import Device, Site

    row = session.execute(
        select(Site.name, Device.tags).outerjoin(Site, Site.id == Device.site_id).where(Device.hostname == hostname)
    ).first()
    if row is None:
        return None, frozenset()
    return row[0], frozenset(row[1] or ())


def build_channels(rt: Runtime, config: NotifyConfig) -> dict[str, Channel]:
    s = rt.settings
    secret = s.alarm_webhook_secret.get_secret_value().encode() if s.alarm_webhook_secret else None
    password = s.smtp_password.get_secret_value() if s.smtp_password else ""
    channels: dict[str, Channel] = {}
    for spec in config.channels:
        if spec.type == "webhook":
            assert spec.url is not None
            channels[spec.name] = WebhookChannel(spec.url, secret, spec.timeout_s)
        else:
            channels[spec.name] = EmailChannel(
                s.smtp_host,
                s.smtp_port,
                s.smtp_from,
                spec.to,
                s.smtp_starttls,
                s.smtp_username,
                password,
                spec.timeout_s,
                s.smtp_allow_plaintext_auth,
                str(s.smtp_ca_file) if s.smtp_ca_file else None,
            )
    return channels
