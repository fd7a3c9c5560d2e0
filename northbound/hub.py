"""TMF hub subscriptions and their events, delivered at least once from an outbox.

A listener registers with ``POST /tmf-api/<api>/v4/hub`` (``callback``, ``query``). A domain
change calls ``publish`` INSIDE its own transaction (the resource modules' outbox hooks do): one
``HubEvent`` row per subscription whose query selects the event, so a change never commits without
its events and an event is never sent for a change that rolled back. ``HubDelivery`` (the leader's
thread) POSTs each row to ``{callback}/listener/{eventName}`` with the TMF envelope (``eventId``,
``eventTime``, ``eventType``, ``event``), signed like the notification webhooks
(``X-Faultloop-Signature`` over timestamp and body, with ``FAULTLOOP_TMF_HUB_SECRET``), and retries
with the notifications' back-off (``faultloop.notify.attempt``). A subscription whose event was given
up is ``failing`` (visible in the API) until one of its events is delivered again. ``eventId`` is
the same for every subscriber of one event: a listener deduplicates by it.

Callback URLs are checked like notification URLs (``faultloop.notify.check_url``): http(s), no
credentials, no loopback / link-local / unspecified host unless ``FAULTLOOP_TMF_HUB_ALLOW_PRIVATE``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from faultloop import clock
from faultloop.audit import service as audit
from faultloop.errors import NotFound
from faultloop.events import after_commit
from faultloop.leader import Leadership
from faultloop.notify import DeliveryError, PermanentError, check_url, deliver_due, leader_round, sign
from faultloop.settings import Settings
from faultloop.worker import WorkerThread
from northbound.models import HubEvent, HubSubscription
from northbound.query import Attribute, Filter, Kind, TmfQueryError, matches, parse_hub_query

log = logging.getLogger("faultloop.northbound.hub")
CHANNEL = "tmf-hub"
MAX_SUBSCRIPTIONS = 200  # per API: every change writes one row per matching subscription


@dataclass(frozen=True)
class HubApi:
    """One TMF API's hub: its name in the path, the key of its resource in an event
    (``event.alarm``), its event types, and the resource's filterable attributes."""

    name: str  # alarmManagement, troubleTicket, serviceOrdering, serviceInventory
    resource_key: str  # alarm, troubleTicket, serviceOrder, service
    event_types: frozenset[str]
    filters: Mapping[str, Attribute]

    def query_attributes(self) -> dict[str, Attribute]:
        """What a subscription's query may name: ``eventType`` and the resource's attributes
        under ``event.<resource_key>.``."""
        out = {"eventType": Attribute(Kind.text, self.event_types)}
        out.update({f"event.{self.resource_key}.{path}": attr for path, attr in self.filters.items()})
        return out

    def parse_query(self, query: str) -> tuple[Filter, ...]:
        return parse_hub_query(query, self.query_attributes(), what=f"{self.name} hub events")


def listener_name(event_type: str) -> str:
    """The listener path's last segment: ``AlarmCreateEvent`` -> ``alarmCreateEvent``."""
    return event_type[:1].lower() + event_type[1:]


# ---- subscriptions --------------------------------------------------------------------------------


def subscribe(session: Session, api: HubApi, *, callback: str, query: str, actor: str,
              allow_private: bool) -> HubSubscription:  # fmt: skip
    try:
        check_url(callback, allow_private=allow_private)
    except ValueError as exc:
        raise TmfQueryError(f"callback: {exc}", field="callback") from None
    if len(callback) > 2000:
        raise TmfQueryError("callback: longer than 2000 characters", field="callback")
    api.parse_query(query)  # refuses a query that names what the API's events do not have
    count = len(session.scalars(select(HubSubscription.id).where(HubSubscription.api == api.name)).all())
    if count >= MAX_SUBSCRIPTIONS:
        raise TmfQueryError(f"{api.name} already has {count} subscriptions (the most it keeps)", field="callback")
    row = HubSubscription(
        id=str(uuid.uuid4()), api=api.name, callback=callback, query=query, created_at=clock.now(),
        created_by=actor, state="active", failed_events=0,
    )  # fmt: skip
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="tmf.hub.subscribe", object_type="hub_subscription",
                 object_id=row.id, after={"api": api.name, "query": query})  # fmt: skip
    return row


def get_subscription(session: Session, api: HubApi, subscription_id: str) -> HubSubscription:
    row = session.get(HubSubscription, subscription_id[:36])
    if row is None or row.api != api.name:
        raise NotFound(f"hub subscription {subscription_id[:36]!r} not found", field="id")
    return row


def list_subscriptions(session: Session, api: HubApi) -> list[HubSubscription]:
    return list(session.scalars(
        select(HubSubscription).where(HubSubscription.api == api.name).order_by(HubSubscription.created_at)
    ))  # fmt: skip


def unsubscribe(session: Session, api: HubApi, subscription_id: str, *, actor: str) -> None:
    row = get_subscription(session, api, subscription_id)
    session.delete(row)  # its undelivered events go with it (ON DELETE CASCADE; the ORM deletes them too)
    session.flush()
    audit.record(session, actor=actor, action="tmf.hub.unsubscribe", object_type="hub_subscription",
                 object_id=subscription_id[:36], before={"api": api.name})  # fmt: skip


def subscription_out(row: HubSubscription) -> dict[str, Any]:
    """The TMF ``EventSubscription`` (``id``, ``callback``, ``query``) and how its delivery fares."""
    return {
        "id": row.id,
        "callback": row.callback,
        "query": row.query,
        "state": row.state,
        "failedEvents": row.failed_events,
        "lastError": row.last_error,
        "lastDeliveredTime": row.last_delivered_at.isoformat() if row.last_delivered_at else None,
        "@type": "EventSubscription",
    }


# ---- events -----------------------------------------------------------------------------------------


def envelope(api: HubApi, event_type: str, resource: Mapping[str, Any], *, at: datetime) -> dict[str, Any]:
    return {
        "eventId": str(uuid.uuid4()),
        "eventTime": at.isoformat(),
        "eventType": event_type,
        "event": {api.resource_key: dict(resource)},
        "@type": event_type,
    }


def listened(session: Session, api: HubApi) -> bool:
    """Whether ``api`` has any subscription: without one, a change builds no TMF document."""
    return session.scalar(select(HubSubscription.id).where(HubSubscription.api == api.name).limit(1)) is not None


_WRITTEN = "faultloop_tmf_hub_written"


def wake_after_commit(session: Session, wake: Callable[[], None]) -> None:
    """Have ``wake`` (the delivery's) run after the commit of ``session``'s transaction if hub events
    were written in it since the last call: the composition root wraps each domain hook with this."""
    if session.info.pop(_WRITTEN, False):
        after_commit(session, wake)


def publish(session: Session, api: HubApi, event_type: str, resource: Mapping[str, Any], *,
            at: datetime | None = None) -> int:  # fmt: skip
    """Write the event for every subscription of ``api`` whose query selects it, in ``session``'s
    transaction; the number of rows written. Call it from the transaction of the change."""
    return publish_many(session, api, [(event_type, resource, at)])


def publish_many(session: Session, api: HubApi,
                 events: Sequence[tuple[str, Mapping[str, Any], datetime | None]]) -> int:  # fmt: skip
    """``publish`` for many events (event type, resource, time) of one transaction: the
    subscriptions are read and their queries parsed once (an alarm engine batch may hold thousands)."""
    for event_type, _resource, _at in events:
        if event_type not in api.event_types:
            raise ValueError(f"{event_type} is not an event of {api.name}")
    subscriptions = session.scalars(select(HubSubscription).where(HubSubscription.api == api.name)).all()
    if not subscriptions or not events:
        return 0
    selective: list[tuple[HubSubscription, tuple[Filter, ...]]] = []
    for sub in subscriptions:
        try:
            selective.append((sub, api.parse_query(sub.query)))
        except TmfQueryError:  # a query valid when stored that a newer release no longer reads: tell nobody
            log.error("hub subscription %s: its query no longer parses; no event written", sub.id)
    written = 0
    for event_type, resource, at in events:
        now = at or clock.now()
        body = envelope(api, event_type, resource, at=now)
        for sub, filters in selective:
            if not matches(body, filters):
                continue
            session.add(HubEvent(
                subscription_id=sub.id, event_id=body["eventId"], event_type=event_type, channel=CHANNEL,
                route=sub.id[:100], payload=body, created_at=now, next_attempt_at=now, attempts=0,
            ))  # fmt: skip
            written += 1
    if written:  # not flushed here: a hook may run in the middle of a domain's change (the commit flushes)
        session.info[_WRITTEN] = True
    return written


# ---- delivery -----------------------------------------------------------------------------------------


class HubDelivery:
    """Sends due hub events from a thread, on the leader only (``leadership`` None: the only instance)."""

    name = "tmf hub"

    def __init__(self, sessions: Any, settings: Settings, *, leadership: Leadership | None = None,
                 timeout_s: float = 10.0) -> None:  # fmt: skip
        self.sessions = sessions
        self.settings = settings
        self.leadership = leadership
        self.timeout_s = timeout_s
        self._worker = WorkerThread("tmf-hub", self.run_once, interval_s=lambda: 5.0, log=log,
                                    failure="hub delivery round failed")  # fmt: skip

    def wake(self) -> None:
        self._worker.wake()

    def _post(self, sub: HubSubscription, row: HubEvent) -> None:
        try:
            check_url(sub.callback, allow_private=self.settings.tmf_hub_allow_private)
        except ValueError as exc:  # the setting changed since the subscription was made
            raise PermanentError(f"callback refused: {exc}") from None
        body = json.dumps(row.payload, sort_keys=True, separators=(",", ":")).encode()
        timestamp = str(int(clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Faultloop-Delivery": str(row.id),
            "X-Faultloop-Event-Id": row.event_id,
            "X-Faultloop-Timestamp": timestamp,
        }
        secret = self.settings.tmf_hub_secret
        if secret is not None:
            headers["X-Faultloop-Signature"] = sign(secret.get_secret_value().encode(), timestamp, body)
        url = sub.callback.rstrip("/") + "/listener/" + listener_name(row.event_type)
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:  # its text can hold the URL
            raise DeliveryError(type(exc).__name__) from None
        if response.status_code >= 300:
            raise DeliveryError(f"HTTP {response.status_code}")

    def _send(self, session: Session, row: HubEvent) -> None:
        sub = session.get(HubSubscription, row.subscription_id)
        if sub is None:
            raise PermanentError("the subscription was deleted")
        try:
            self._post(sub, row)
        except Exception as exc:
            last = isinstance(exc, PermanentError) or row.attempts >= self.settings.tmf_hub_max_attempts
            if last:
                sub.state = "failing"
                sub.failed_events += 1
                sub.last_error = (str(exc) if isinstance(exc, DeliveryError) else type(exc).__name__)[:500]
            raise
        sub.state = "active"
        sub.last_delivered_at = clock.now()

    def deliver_due(self, now: datetime | None = None, *, limit: int = 100) -> tuple[int, int]:
        return deliver_due(self.sessions, self.leadership, HubEvent, self._send, now or clock.now(),
                           max_attempts=self.settings.tmf_hub_max_attempts, limit=limit)  # fmt: skip

    def run_once(self) -> tuple[int, int]:
        return leader_round(self.leadership, self.deliver_due, log=log, what="hub delivery")

    async def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()
