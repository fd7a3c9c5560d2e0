"""Ticket notifications: ticket events through the notification file's ``ticket_routes`` and the
channels it names (webhook, e-mail, Slack/Mattermost, Teams, PagerDuty), and the notice to a
technician of a dispatch to them (e-mail or webhook, per technician profile).

Delivery is **at-least-once**, as for alarms: ``ticketing.service`` calls ``TicketNotifier.enqueue``
(registered in ``service.OUTBOX``) inside the transaction of the ticket change, which adds one
``ticket_notifications`` row per matching (route, channel) and per technician notice; the rows
commit with the change or not at all. The delivery loop (only on the leader) sends due rows, each in
its own transaction, retried with back-off (10 s doubling to 1 h) until
``FAULTLOOP_ALARM_NOTIFY_MAX_ATTEMPTS``, then given up visibly (``gave_up_at``, ``last_error``).

PagerDuty gets one alert per root cause (``dedup_key`` = the ticket's root alarm reduction key, or
``faultloop-ticket-<id>`` for a manual ticket): trigger on created and reopened, acknowledge on
acknowledged and accepted, resolve on resolved, closed and cancelled.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from faultloop import clock
from faultloop.accounts.models import User
from faultloop.events import after_commit
from faultloop.leader import Leadership
from faultloop.notify import (
    Channel,
    ChannelSpec,
    EmailChannel,
    Message,
    NotifyConfigError,
    PdAction,
    PermanentError,
    WebhookChannel,
    build_channel,
    check_url,
    deliver_due,
    header_text,
    leader_round,
    read_document,
    redact_url,
    validate_entries,
)
from faultloop.runtime import Runtime
from faultloop.worker import WorkerThread
from inventory import queries as inventory
from ticketing import dispatch, service
from ticketing.models import Ticket, TicketNotification

log = logging.getLogger("faultloop.ticketing.notify")

EventName = Literal[
    "created", "acknowledged", "dispatched", "accepted", "sla_warning", "sla_breach", "escalated", "resolved",
    "verified", "reopened", "closed", "cancelled",
]  # fmt: skip
PD_ACTIONS: dict[str, PdAction] = {
    "created": "trigger", "reopened": "trigger", "acknowledged": "acknowledge", "accepted": "acknowledge",
    "resolved": "resolve", "closed": "resolve", "cancelled": "resolve",
}  # fmt: skip
TECHNICIAN = "technician"  # the channel name of a notice to the assigned technician (profile address)


# ---- configuration -----------------------------------------------------------------------------


class TicketRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    events: list[EventName] = []  # empty: every ticket event
    priorities: list[Literal["P1", "P2", "P3", "P4"]] = []
    severities: list[Literal["critical", "major", "minor", "warning", "indeterminate"]] = []
    sites: list[str] = []
    devices: list[str] = []
    tags: list[str] = []
    channels: list[str] = Field(min_length=1)

    def matches(self, event: str, ticket: Ticket, tags: frozenset[str]) -> bool:
        if self.events and event not in self.events:
            return False
        if self.priorities and ticket.priority not in self.priorities:
            return False
        if self.severities and ticket.severity not in self.severities:
            return False
        if self.sites and ticket.site not in self.sites:
            return False
        if self.devices and ticket.device not in self.devices:
            return False
        return not self.tags or not tags.isdisjoint(self.tags)


class TicketNotifyConfig(BaseModel):
    channels: list[ChannelSpec] = []
    routes: list[TicketRoute] = []


def parse_config(text: str, *, file: str) -> TicketNotifyConfig:
    """The ``channels`` and ``ticket_routes`` of the notification file (its alarm ``routes`` are the
    alarm notifier's); an error names the file, the entry and the field."""
    doc, channels = read_document(text, file=file)
    routes = validate_entries(TicketRoute, doc, "ticket_routes", file=file)
    names = {c.name for c in channels}
    for route in routes:
        for channel in route.channels:
            if channel not in names:
                raise NotifyConfigError(file, route.name, "channels", f"unknown channel {channel!r}")
    return TicketNotifyConfig(channels=channels, routes=routes)


def load_config(path: Path | None) -> TicketNotifyConfig:
    if path is None:
        return TicketNotifyConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotifyConfigError(str(path), "", "(file)", f"cannot read: {exc.strerror}") from None
    return parse_config(text, file=str(path))


def shown_address(value: str) -> str:
    """What the API shows of a technician's address: an e-mail address, or a webhook's host only."""
    return redact_url(value) if "://" in value else value


# ---- what is sent ------------------------------------------------------------------------------------


def ticket_payload(session: Session, ticket: Ticket, event: str, detail: dict[str, Any]) -> dict[str, Any]:
    assignee = session.get(User, ticket.assignee_id) if ticket.assignee_id is not None else None
    return {
        "reason": event,
        "ticket": {
            "id": ticket.id, "title": ticket.title, "state": ticket.state, "priority": ticket.priority,
            "severity": ticket.severity, "site": ticket.site, "device": ticket.device,
            "alarm_type": ticket.alarm_type, "root_key": ticket.root_key,
            "assignee": assignee.username if assignee is not None else None, "team": ticket.team,
            "tier": ticket.tier, "created_at": ticket.created_at.isoformat(),
        },
        "detail": {k: v for k, v in detail.items() if isinstance(v, str | int | float | bool | type(None))},
    }  # fmt: skip


def ticket_message(payload: dict[str, Any]) -> Message:
    ticket, event = payload["ticket"], payload["reason"]
    words = event.replace("_", " ")
    title = f"{ticket['priority']} ticket {ticket['id']} {words}: {ticket['title']}"
    facts = {"ticket": str(ticket["id"]), "event": words}
    facts.update({k: str(v) for k, v in ticket.items() if v not in (None, "") and k not in ("id",)})
    facts.update({f"detail.{k}": str(v) for k, v in payload.get("detail", {}).items()})
    return Message(
        title=header_text(title, limit=300), severity=ticket["severity"], source=ticket["device"] or ticket["site"],
        facts=facts, body=payload, dedup_key=ticket["root_key"] or f"faultloop-ticket-{ticket['id']}",
        pd_action=PD_ACTIONS.get(event), kind="ticket",
    )  # fmt: skip


# ---- the notifier ----------------------------------------------------------------------------------------


class TicketNotifier:
    """Fills the ticket outbox inside ticket transactions; delivers it from a thread on the leader."""

    name = "ticket notifications"

    def __init__(
        self,
        rt: Runtime,
        config: TicketNotifyConfig,
        channels: dict[str, Channel] | None = None,
        *,
        leadership: Leadership | None = None,
    ) -> None:
        self.rt = rt
        self.config = config
        self.leadership = leadership  # None: the only notifier (tests); else it delivers only while leading
        self.channels = channels if channels is not None else {c.name: build_channel(c, rt.settings)
                                                               for c in config.channels}  # fmt: skip
        self._worker = WorkerThread(
            "ticket-notify", self.run_once, interval_s=lambda: 5.0, log=log, failure="ticket notification round failed"
        )

    # ticketing.service.OUTBOX hook: runs inside the transaction of the ticket change, before its commit
    def enqueue(self, session: Session, ticket: Ticket, event: str, detail: dict[str, Any]) -> None:
        payload: dict[str, Any] | None = None
        now = clock.now()

        def add(channel: str, route: str, recipient_id: int | None = None) -> None:
            session.add(TicketNotification(
                ticket_id=ticket.id, channel=channel, route=route, recipient_id=recipient_id, reason=event,
                payload=payload, created_at=now, next_attempt_at=now, attempts=0,
            ))  # fmt: skip

        tags: frozenset[str] | None = None
        for route in self.config.routes:
            if route.tags and tags is None:
                scope = inventory.device_scope(session, ticket.device) if ticket.device else None
                tags = frozenset(scope.tags) if scope is not None else frozenset()
            if not route.matches(event, ticket, tags or frozenset()):
                continue
            payload = payload or ticket_payload(session, ticket, event, detail)
            message = ticket_message(payload)
            for channel in route.channels:
                adapter = self.channels.get(channel)
                if adapter is None or adapter.accepts(message):
                    add(channel, route.name)
        # the technician a ticket was just dispatched (or escalated) to is told, at their profile's address
        if (
            event in ("dispatched", "escalated")
            and ticket.assignee_id is not None
            and detail.get("from") != detail.get("technician")
        ):
            profile = dispatch.profile_of(session, ticket.assignee_id)
            if profile is not None and profile.notify_to:
                payload = payload or ticket_payload(session, ticket, event, detail)
                add(TECHNICIAN, TECHNICIAN, ticket.assignee_id)
        if payload is not None:
            after_commit(session, self._worker.wake)

    def _send(self, session: Session, row: TicketNotification) -> None:
        channel = (
            self._technician_channel(session, row) if row.channel == TECHNICIAN else self.channels.get(row.channel)
        )
        if channel is None:
            raise PermanentError(f"channel {row.channel!r} is not configured")
        channel.send(row.id, ticket_message(row.payload))

    def _technician_channel(self, session: Session, row: TicketNotification) -> Channel:
        profile = dispatch.profile_of(session, row.recipient_id) if row.recipient_id is not None else None
        address = profile.notify_to if profile is not None else ""
        if not address:
            raise PermanentError("the technician has no notification address")
        s = self.rt.settings
        if "://" not in address:
            password = s.smtp_password.get_secret_value() if s.smtp_password else ""
            return EmailChannel(s.smtp_host, s.smtp_port, s.smtp_from, [address], s.smtp_starttls, s.smtp_username,
                                password)  # fmt: skip
        try:
            check_url(address, allow_private=s.technician_notify_allow_private)
        except ValueError as exc:  # the setting changed since the address was saved
            raise PermanentError(f"technician address refused: {exc}") from None
        secret = s.alarm_webhook_secret.get_secret_value().encode() if s.alarm_webhook_secret else None
        return WebhookChannel(address, secret)

    def deliver_due(self, now: datetime | None = None, *, limit: int = 100) -> tuple[int, int]:
        return deliver_due(self.rt.sessions, self.leadership, TicketNotification, self._send, now or clock.now(),
                           max_attempts=self.rt.settings.alarm_notify_max_attempts, limit=limit)  # fmt: skip

    def run_once(self) -> tuple[int, int]:
        return leader_round(self.leadership, self.deliver_due, log=log, what="ticket notification")

    async def start(self) -> None:
        service.OUTBOX["notifications"] = self.enqueue
        self._worker.start()

    async def stop(self) -> None:
        if service.OUTBOX.get("notifications") == self.enqueue:
            del service.OUTBOX["notifications"]
        await self._worker.stop()


@contextlib.contextmanager
def outbox_hook(rt: Runtime) -> Iterator[TicketNotifier]:
    """For a one-shot command that changes tickets (the CLI): its changes write their notification
    rows like the service's; the service's leader delivers them."""
    notifier = TicketNotifier(rt, load_config(rt.settings.alarm_notify_file))
    previous = service.OUTBOX.get("notifications")
    service.OUTBOX["notifications"] = notifier.enqueue
    try:
        yield notifier
    finally:
        if previous is None:
            service.OUTBOX.pop("notifications", None)
        else:
            service.OUTBOX["notifications"] = previous
