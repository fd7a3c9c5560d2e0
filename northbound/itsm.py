"""Two-way sync with an external service desk (ITSM: ServiceNow, ...) that speaks TMF621.

When ``FAULTLOOP_ITSM_URL`` is set, the service desk owns every ticket of ``FAULTLOOP_ITSM_MIN_PRIORITY``
or more urgent that faultloop opens:

- out (``ItsmSync``): in the transaction of the ticket change, a row in ``itsm_outbox``: the ticket's
  creation (``POST {url}/troubleTicket`` with ``externalId`` = faultloop's id; the answer's ``id`` is kept
  as the ticket's ``externalId``), each change of its TMF status (``PATCH`` ``status`` and
  ``statusChangeReason``: a reopen here is ``inProgress`` there), each note, and each change of its alarms
  (raised, cleared, severity: a note). Sent by the leader, at least once, in order per ticket (a ticket's
  next request waits until the one before went through or was given up), retried 10 s doubling to 1 h,
  given up after ``FAULTLOOP_ITSM_MAX_ATTEMPTS`` or at once on a 4xx answer (but 408 and 429).
- back: the desk PATCHes ``/tmf-api/troubleTicket/v4/troubleTicket/{id}`` as the ``FAULTLOOP_ITSM_USER``
  (role oss), or posts a ``TroubleTicketStatusChangeEvent`` to our listener
  (``/tmf-api/troubleTicket/v4/listener/troubleTicketStatusChangeEvent``); ``resolved`` there is
  ``resolve_external`` here, and the ticket is then verified here as any resolved ticket
  (``ticketing/verify.py``: its alarms stay clear for the hold-down, its services pass their checks).
  Changes made by that user are not sent back (no echo).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from faultloop import clock
from faultloop.events import AlarmChange
from faultloop.leader import Leadership, NotLeader, fenced_transaction
from faultloop.notify import DeliveryError, PermanentError, attempt, check_url
from faultloop.settings import Settings
from faultloop.worker import WorkerThread
from northbound import ticket as tmf
from northbound.query import TmfQueryError
from northbound.ticket_models import ItsmOutbox, TicketLink
from ticketing import service
from ticketing.models import Ticket, TicketAlarm
from ticketing.policy import PRIORITIES

log = logging.getLogger("faultloop.northbound.itsm")
CHANNEL = "itsm"
OWNER = "itsm"
ROUNDS = 20  # delivery passes per run: a ticket's queue advances one row per pass
ALARM_KINDS = frozenset({"raised", "cleared", "escalated", "updated"})


def _enqueue(session: Session, ticket_id: int, route: str, payload: dict[str, Any]) -> None:
    now = clock.now()
    # not flushed here (as the hub's publish): a hook may run in the middle of a domain's change, and a
    # flush would write the half-made ticket (one more version); the commit inserts the rows in this order
    session.add(ItsmOutbox(ticket_id=ticket_id, channel=CHANNEL, route=route, payload=payload, created_at=now,
                           next_attempt_at=now, attempts=0))  # fmt: skip


def _create_body(doc: dict[str, Any]) -> dict[str, Any]:
    """What the desk gets to create its ticket: faultloop's view, faultloop's id as its externalId."""
    keep = ("name", "description", "severity", "priority", "ticketType", "status", "relatedEntity", "relatedParty",
            "note", "expectedResolutionDate")  # fmt: skip
    body = {k: doc[k] for k in keep if k in doc}
    body["externalId"] = doc["id"]
    body["@type"] = "TroubleTicket"
    return body


class ItsmSync:
    """The outbound half: the hooks that write the outbox rows, and the leader's delivery."""

    name = "itsm sync"

    def __init__(self, sessions: Any, settings: Settings, *, leadership: Leadership | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.leadership = leadership
        self.url = settings.itsm_url.rstrip("/")
        if self.url:
            check_url(self.url, allow_private=settings.itsm_allow_private)  # ValueError names what is wrong
        self._worker = WorkerThread("itsm-sync", self.run_once, interval_s=lambda: 5.0, log=log,
                                    failure="ITSM sync round failed")  # fmt: skip

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def owns(self, ticket: Ticket) -> bool:
        wanted = PRIORITIES.index(self.settings.itsm_min_priority)
        return ticket.priority in PRIORITIES and PRIORITIES.index(ticket.priority) <= wanted

    # ---- hooks (inside the transaction of the change) ------------------------------------------------

    def on_ticket_change(self, session: Session, ticket: Ticket, change: str, detail: dict[str, Any]) -> None:
        """``ticketing.service.CHANGES["itsm"]``."""
        if not self.enabled or (self.settings.itsm_user and detail.get("actor") == self.settings.itsm_user):
            return  # the desk's own change: it knows
        link = session.get(TicketLink, ticket.id)
        if change == "created":
            if not self.owns(ticket):
                return
            if link is None:
                link = TicketLink(ticket_id=ticket.id, external_id=None, ticket_type="", owner=OWNER,
                                  created_at=ticket.created_at)  # fmt: skip
                session.add(link)
            link.owner = OWNER
            _enqueue(session, ticket.id, "create", _create_body(tmf.to_tmf(tmf.gather(session, ticket))))
            return
        if link is None or link.owner != OWNER:
            return
        if change == "note":
            note = {"text": str(detail.get("text", ""))[:4000], "author": str(detail.get("actor", "")),
                    "date": clock.now().isoformat(), "@type": "Note"}  # fmt: skip
            _enqueue(session, ticket.id, "update", {"note": [note]})
            return
        from_state, to_state = detail.get("from_state"), detail.get("to_state")
        if from_state is None or to_state is None:
            return
        before = tmf.STATE_STATUS[from_state]  # (cancelled is terminal: never a from-state)
        after = tmf.tmf_status(to_state, never_taken=tmf.never_taken(ticket))
        if before == after:
            return
        reason = str(detail.get("reason") or detail.get("how") or detail.get("action_taken") or "")
        words = f"{change} in faultloop" + (f": {reason}" if reason else "")
        _enqueue(session, ticket.id, "update", {"status": after, "statusChangeReason": words[:500]})

    def on_alarm_changes(self, session: Session, changes: Sequence[AlarmChange]) -> None:
        """The alarm engine's outbox hook (``runner.add_outbox("itsm", ...)``): a change of an alarm
        linked to a ticket the desk owns is a note there."""
        if not self.enabled:
            return
        wanted = {c.alarm_id: c for c in changes if c.kind in ALARM_KINDS}
        if not wanted:
            return
        rows = session.execute(
            select(TicketAlarm.alarm_id, TicketAlarm.ticket_id)
            .join(TicketLink, TicketLink.ticket_id == TicketAlarm.ticket_id)
            .where(TicketAlarm.alarm_id.in_(sorted(wanted)), TicketLink.owner == OWNER)
            .order_by(TicketAlarm.id)
        ).all()
        for alarm_id, ticket_id in rows:
            c = wanted[alarm_id]
            text = (f"alarm {c.alarm_id} {c.alarm_type} on {c.device} {c.managed_object}".rstrip()
                    + f": {c.kind} ({c.severity}, {c.state})")  # fmt: skip
            note = {"text": text, "author": "faultloop", "date": c.at.isoformat(), "@type": "Note"}
            _enqueue(session, ticket_id, "update", {"note": [note]})

    # ---- delivery (the leader) ---------------------------------------------------------------------------

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self.settings.itsm_token is not None:
            headers["Authorization"] = f"Bearer {self.settings.itsm_token.get_secret_value()}"
        return headers

    def _request(self, method: str, url: str, body: dict[str, Any], content_type: str) -> httpx.Response:
        try:
            response = httpx.request(method, url, json=body, headers=self._headers(content_type),
                                     timeout=self.settings.itsm_timeout_s)  # fmt: skip
        except httpx.HTTPError as exc:  # its text can hold the URL
            raise DeliveryError(type(exc).__name__) from None
        if response.status_code >= 300:
            permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
            error = PermanentError if permanent else DeliveryError
            raise error(f"HTTP {response.status_code} from the service desk")
        return response

    def _send(self, session: Session, row: ItsmOutbox) -> None:
        link = session.get(TicketLink, row.ticket_id)
        if link is None:
            raise PermanentError("the ticket's link is gone")
        if row.route == "create":
            response = self._request("POST", f"{self.url}/troubleTicket", row.payload, "application/json")
            try:
                external = response.json()["id"]
            except (ValueError, KeyError, TypeError):
                raise PermanentError("the service desk's answer has no ticket id") from None
            if not isinstance(external, str) or not external or len(external) > 200:
                raise PermanentError("the service desk's ticket id is not 1-200 characters of text")
            link.external_id = external
            link.synced_at = clock.now()
            return
        if not link.external_id:
            raise PermanentError("the ticket was never created at the service desk")
        self._request("PATCH", f"{self.url}/troubleTicket/{link.external_id}", row.payload,
                      "application/merge-patch+json")  # fmt: skip
        link.synced_at = clock.now()

    def deliver_due(self, now: datetime | None = None, *, limit: int = 100) -> tuple[int, int]:
        """Send due rows, each in its own fenced transaction; only the oldest pending row of a ticket
        is tried (its later ones wait for it); (delivered, failed)."""
        now = now or clock.now()
        with self.sessions() as session:
            pending = session.execute(
                select(ItsmOutbox.id, ItsmOutbox.ticket_id, ItsmOutbox.next_attempt_at)
                .where(ItsmOutbox.delivered_at.is_(None), ItsmOutbox.gave_up_at.is_(None))
                .order_by(ItsmOutbox.id)
                .limit(limit * 10)
            ).all()
        heads: list[int] = []
        seen: set[int] = set()
        for row_id, ticket_id, due in pending:
            if ticket_id in seen:
                continue
            seen.add(ticket_id)
            if due <= now:
                heads.append(row_id)
        delivered = failed = 0
        for row_id in heads[:limit]:
            with fenced_transaction(self.sessions, self.leadership) as session:
                row = session.get(ItsmOutbox, row_id)
                if row is None or row.delivered_at is not None or row.gave_up_at is not None:
                    continue
                if attempt(row, lambda s=session, r=row: self._send(s, r), now,
                           max_attempts=self.settings.itsm_max_attempts):  # fmt: skip
                    delivered += 1
                else:
                    failed += 1
        return delivered, failed

    def run_once(self) -> tuple[int, int]:
        if not self.enabled or (self.leadership is not None and not self.leadership.leading):
            return 0, 0
        total = (0, 0)
        try:
            # a ticket's next row is due as soon as the one before went through or was given up
            for _ in range(ROUNDS):
                done, failed = self.deliver_due()
                total = (total[0] + done, total[1] + failed)
                if not done and not failed:
                    break
        except NotLeader as exc:
            log.warning("ITSM sync round not written: %s", exc)
        return total

    async def start(self) -> None:
        if self.enabled:
            self._worker.start()

    async def stop(self) -> None:
        if self.enabled:
            await self._worker.stop()


# ---- back: the desk's hub event ----------------------------------------------------------------------


def _ticket_of(session: Session, resource: dict[str, Any]) -> Ticket:
    """Our ticket for the desk's: by the desk's id kept as our externalId, else by its externalId (ours)."""
    theirs = resource.get("id")
    if isinstance(theirs, str) and theirs:
        found = session.scalar(select(TicketLink.ticket_id).where(TicketLink.external_id == theirs[:200]).limit(1))
        if found is not None:
            return service.get(session, found)
    ours = resource.get("externalId")
    if isinstance(ours, str) and ours.isascii() and ours.isdigit() and len(ours) < 12:
        return service.get(session, int(ours))
    raise service.NotFound("event.troubleTicket: no ticket here has this id or externalId", field="event.troubleTicket")


def accept_status_event(session: Session, envelope: Any, *, policy: Any, actor: service.Actor, now: datetime,
                        reopen_window_s: float) -> dict[str, Any]:  # fmt: skip
    """A ``TroubleTicketStatusChangeEvent`` from the desk's hub: the status it carries is applied here
    as a TMF PATCH by ``actor`` would be (the same state machine, the same refusals)."""
    if not isinstance(envelope, dict):
        raise TmfQueryError("expected the event envelope (eventType, event)", field="body")
    if envelope.get("eventType") != tmf.STATUS_EVENT:
        raise TmfQueryError(f"eventType: expected {tmf.STATUS_EVENT}", field="eventType")
    event = envelope.get("event")
    resource = event.get("troubleTicket") if isinstance(event, dict) else None
    if not isinstance(resource, dict):
        raise TmfQueryError("event.troubleTicket: expected the trouble ticket", field="event.troubleTicket")
    status = resource.get("status")
    if not isinstance(status, str):
        raise TmfQueryError("event.troubleTicket.status: required", field="event.troubleTicket.status")
    ticket = _ticket_of(session, resource)
    body: dict[str, Any] = {"status": status}
    reason = resource.get("statusChangeReason")
    if isinstance(reason, str) and reason.strip():
        body["statusChangeReason"] = reason.strip()[:500]
    try:
        return tmf.patch(session, str(ticket.id), body, policy=policy, actor=actor, now=now,
                         reopen_window_s=reopen_window_s)  # fmt: skip
    except TmfQueryError as exc:
        raise TmfQueryError(f"event.troubleTicket.{exc.detail}", field=f"event.troubleTicket.{exc.field}") from None
