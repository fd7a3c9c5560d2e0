"""SLA clocks on the frozen clock: 80 % warning, breach (timeline, notifier, counter, escalation),
paused while waiting, stopped at resolved, business hours."""

from __future__ import annotations

from datetime import UTC, datetime

from faultloop import clock
from ticketing import metrics, service
from ticketing.jobs import TicketingService

from .conftest import make_technician, make_user


def _breaches(clock_name: str, priority: str) -> float:
    return metrics.SLA_BREACHES.labels(clock=clock_name, priority=priority)._value.get()


def test_warning_at_80_percent_then_breach_notifies_counts_and_raises_tier(runtime, session, frozen, policy):
    noc = service.Actor.of(make_user(session, "noc-sla", "noc"))
    t = service.create_manual(session, policy=policy, actor=noc, title="down", priority="P1", now=clock.now())
    session.commit()
    seen: list[dict] = []
    service.NOTIFIERS.append(seen.append)
    jobs = TicketingService(runtime, policy=policy)
    before = _breaches("response", "P1")
    try:
        frozen.advance(0.8 * 900 - 1)
        jobs.run_once()
        assert seen == []
        frozen.advance(1)
        jobs.run_once()
        assert [(n["event"], n["clock"]) for n in seen] == [("sla_warning", "response")]
        frozen.advance(180)
        jobs.run_once()
    finally:
        service.NOTIFIERS.remove(seen.append)
    assert [(n["event"], n["clock"], n["elapsed_s"]) for n in seen] == [
        ("sla_warning", "response", 720.0),
        ("sla_breach", "response", 900.0),
    ]
    assert _breaches("response", "P1") == before + 1
    session.expire_all()
    ticket = service.get(session, t.id)
    assert (ticket.response_breached, ticket.tier, ticket.restore_breached) == (True, 2, False)
    actions = [e.action for e in service.timeline(session, t.id)]
    assert actions == ["create", "sla_warning", "sla_breach", "tier_raised"]
    # acknowledging stops the response clock for good
    service.transition(session, policy=policy, ticket_id=t.id, action="acknowledge", actor=noc, now=clock.now())
    frozen.advance(3600)
    jobs.run_once()
    session.expire_all()
    ticket = service.get(session, t.id)
    assert ticket.response_elapsed_s == 900.0 and ticket.restore_elapsed_s == 900.0 + 3600


def test_breach_in_the_field_escalates_to_the_next_tier(runtime, session, frozen, policy):
    noc = service.Actor.of(make_user(session, "noc-esc", "noc"))
    make_technician(session, "tier1")
    senior = make_technician(session, "tier2", tier=2)
    t = service.create_manual(session, policy=policy, actor=noc, title="x", priority="P1", now=clock.now())
    for action, data in (("acknowledge", {}), ("diagnose", {"diagnosis": "d", "fault_category": "f"}),
                         ("dispatch", {"technician": "tier1"})):  # fmt: skip
        service.transition(session, policy=policy, ticket_id=t.id, action=action, actor=noc, data=data,
                           now=clock.now())  # fmt: skip
    session.commit()
    frozen.advance(14400)
    result = TicketingService(runtime, policy=policy).run_once()
    assert result.escalated == [t.id]
    session.expire_all()
    ticket = service.get(session, t.id)
    assert (ticket.state, ticket.tier, ticket.assignee_id, ticket.restore_breached) == (
        "dispatched",
        2,
        senior.id,
        True,
    )
    last = service.timeline(session, t.id)[-1]
    assert (last.action, last.actor, last.detail["technician"], last.detail["from"]) == (
        "escalate", "system", "tier2", "tier1")  # fmt: skip


def test_clock_paused_while_waiting_and_stopped_when_resolved(runtime, session, frozen, policy):
    noc = service.Actor.of(make_user(session, "noc-w", "noc"))
    tech = service.Actor.of(make_technician(session, "tech-w"))
    t = service.create_manual(session, policy=policy, actor=noc, title="x", priority="P2", now=clock.now())

    def act(action, actor, **data):
        return service.transition(session, policy=policy, ticket_id=t.id, action=action, actor=actor, data=data,
                                  now=clock.now())  # fmt: skip

    act("acknowledge", noc)
    act("diagnose", noc, diagnosis="d", fault_category="f")
    act("dispatch", noc, technician="tech-w")
    act("accept", tech)
    frozen.advance(100)
    act("on_site", tech)
    act("wait", tech, reason="waiting for a line card")
    frozen.advance(50_000)
    TicketingService(runtime, policy=policy).run_once()
    session.expire_all()
    assert service.get(session, t.id).restore_elapsed_s == 100.0
    act("resume", tech)
    frozen.advance(20)
    act("resolve", tech, cause_category="hardware", action_taken="swapped card")
    frozen.advance(99_999)
    TicketingService(runtime, policy=policy).run_once()
    session.expire_all()
    ticket = service.get(session, t.id)
    assert (ticket.restore_elapsed_s, ticket.restore_breached) == (120.0, False)


def test_business_hours_clock(runtime, session, policy):
    friday_17 = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)
    c = clock.FrozenClock(friday_17)
    with clock.use(c):
        noc = service.Actor.of(make_user(session, "noc-bh", "noc"))
        t = service.create_manual(session, policy=policy, actor=noc, title="x", priority="P3", now=clock.now())
        session.commit()
        assert t.business_hours
        c.current = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # Monday 09:00: the weekend does not count
        TicketingService(runtime, policy=policy).run_once()
        session.expire_all()
        ticket = service.get(session, t.id)
        assert ticket.response_elapsed_s == 2 * 3600  # not the 64 wall-clock hours since Friday 17:00
