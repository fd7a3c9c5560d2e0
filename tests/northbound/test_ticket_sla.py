"""A TMF621 listener does not change what the SLA round does to a ticket: the breach is one change
(one version bump) whether or not the hub writes its TroubleTicketAttributeValueChangeEvent in the
middle of it (reading the ticket for the event must not flush the half-made change)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from faultloop import clock
from northbound import ticket as tmf
from northbound.models import HubEvent, HubSubscription
from tests.ticketing.conftest import make_user
from ticketing import service
from ticketing.jobs import TicketingService
from ticketing.policy import load_policy


@pytest.mark.parametrize("listening", [False, True], ids=["no-listener", "listener"])
def test_a_breach_is_one_version_bump_with_or_without_a_listener(runtime, session, frozen, monkeypatch, listening):
    monkeypatch.setitem(service.CHANGES, "tmf-hub", tmf.on_ticket_change)
    monkeypatch.setitem(service.OUTBOX, "tmf-hub", tmf.on_ticket_outbox)
    if listening:
        session.add(HubSubscription(id="00000000-0000-0000-0000-00000000sla1", api="troubleTicket",
                                    callback="http://127.0.0.1:9/desk", query="", created_at=clock.now(),
                                    created_by="test", state="active", failed_events=0))  # fmt: skip
    policy = load_policy()
    noc = service.Actor.of(make_user(session, "noc-sla", "noc"))
    t = service.create_manual(session, policy=policy, actor=noc, title="down", priority="P1", now=clock.now())
    session.commit()
    tid, version = t.id, t.version
    service.transition(session, policy=policy, ticket_id=tid, action="acknowledge", actor=noc,
                       expected_version=version, now=clock.now())  # fmt: skip
    session.commit()
    jobs = TicketingService(runtime, policy=policy)
    frozen.advance(11_520)  # P1 restore: warning at 11,520 s
    jobs.run_once()
    frozen.advance(14_400 - 11_520)  # the breach, which also raises the tier
    jobs.run_once()
    session.expire_all()
    ticket = service.get(session, tid)
    assert (ticket.restore_breached, ticket.tier, ticket.version) == (True, 2, version + 3)
    events = session.scalars(select(HubEvent.event_type).order_by(HubEvent.id)).all()
    if listening:
        assert events[-1] == "TroubleTicketAttributeValueChangeEvent" and "TroubleTicketStatusChangeEvent" in events
    else:
        assert events == []
