"""The loop with the real alarm engine: alarm -> ticket (after min_active_s) -> children attach ->
resolve -> alarm clears -> verified after the hold-down -> closed (alarms archived); recurrence reopens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, func, select

from alarms import queries as alarm_queries
from alarms.bus import AlarmBus
from alarms.models import Alarm, AlarmJournal
from alarms.runner import AlarmEngine
from faultloop import clock
from faultloop.events import Event
from ticketing import service
from ticketing.jobs import TicketingService
from ticketing.models import Ticket, TicketAlarm, TicketEvent

from .conftest import make_device, make_technician, make_user


def _event(device: str, kind: str, severity: str = "major", ifname: str = "Gi0/1") -> Event:
    return Event(source="trap", device=device, event_type=kind, severity=severity, time=clock.now(),
                 managed_object=f"interface:{ifname}")  # fmt: skip


def _wired(runtime):
    bus = AlarmBus()
    engine = AlarmEngine(runtime, bus)
    engine.load()
    tickets = TicketingService(runtime)
    bus.subscribe("ticketing", tickets.on_alarm_changes)
    return engine, tickets


@contextmanager
def _statements(session) -> Iterator[list[str]]:
    """The SQL statements run on the session's connection inside the block."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(bind, "before_cursor_execute", count)


def _noc(session):
    return service.Actor.of(make_user(session, "noc-loop", "noc"))


def _drive_to_resolved(session, policy, ticket_id, noc, tech):
    def act(action, actor, **data):
        return service.transition(session, policy=policy, ticket_id=ticket_id, action=action, actor=actor,
                                  data=data, now=clock.now())  # fmt: skip

    act("acknowledge", noc)
    act("diagnose", noc, diagnosis="fiber cut between pop and agg", fault_category="transmission")
    act("dispatch", noc)  # auto: site, skill, least load
    act("accept", tech)
    act("en_route", tech, location_note="leaving depot")
    act("on_site", tech)
    return act("resolve", tech, cause_category="fiber_cut", action_taken="spliced", parts_used=["splice kit"])


def test_alarm_opens_one_ticket_verified_after_hold_down_and_closed(runtime, session, frozen, policy):
    make_device(session, "agg1", role="distribution", site="pop-7")
    tech_user = make_technician(session, "tech-loop", sites=["pop-7"])
    tech = service.Actor.of(tech_user)
    noc = _noc(session)
    session.commit()
    engine, tickets = _wired(runtime)

    engine.submit_events([_event("agg1", "linkDown")])
    engine.run_once()
    tickets.run_once()
    assert session.scalar(select(func.count()).select_from(Ticket)) == 0  # not active long enough yet
    frozen.advance(policy.min_active_s)
    engine.submit_events([_event("agg1", "linkDown")])  # duplicate: still one alarm, one ticket
    engine.run_once()
    tickets.run_once()
    tickets.run_once()
    [ticket] = session.scalars(select(Ticket)).all()
    [alarm] = session.scalars(select(Alarm).where(Alarm.device == "agg1")).all()
    assert (ticket.source, ticket.state, ticket.site, ticket.root_alarm_id) == ("alarm", "new", "pop-7", alarm.id)
    assert ticket.priority == "P3" and ticket.required_skill == "fiber"  # major on distribution; link_down
    assert alarm.ticket_id == ticket.id

    _drive_to_resolved(session, policy, ticket.id, noc, tech)
    session.commit()
    assert ticket.assignee_id == tech_user.id

    engine.submit_events([_event("agg1", "linkUp", "cleared")])
    engine.run_once()
    tickets.run_once()
    session.expire_all()
    assert session.get(Ticket, ticket.id).state == "resolved"  # hold-down not over
    frozen.advance(runtime.settings.ticket_hold_down_s - 1)
    tickets.run_once()
    session.expire_all()
    assert session.get(Ticket, ticket.id).state == "resolved"
    frozen.advance(1)
    result = tickets.run_once()
    assert result.verified == [ticket.id]
    session.expire_all()
    t = service.transition(session, policy=policy, ticket_id=ticket.id, action="close", actor=noc,
                           data={"rating": 5}, now=clock.now())  # fmt: skip
    session.commit()
    assert (t.state, t.rating, t.active_key) == ("closed", 5, None)
    [link] = session.scalars(select(TicketAlarm).where(TicketAlarm.ticket_id == t.id)).all()
    assert link.archived_at == clock.now()
    assert (
        session.scalar(
            select(func.count())
            .select_from(AlarmJournal)
            .where(AlarmJournal.alarm_id == alarm.id, AlarmJournal.action == "archived")  # fmt: skip
        )
        == 1
    )
    actions = [e.action for e in service.timeline(session, t.id)]
    assert actions == ["create", "alarm_attached", "acknowledge", "diagnose", "dispatch", "accept", "en_route",
                       "on_site", "resolve", "verify", "close"]  # fmt: skip

    # the same root cause recurs within the reopen window: the closed ticket reopens (no second ticket)
    frozen.advance(3600)
    engine.submit_events([_event("agg1", "linkDown")])
    engine.run_once()
    frozen.advance(policy.min_active_s)
    result = tickets.run_once()
    assert result.reopened == [t.id] and result.opened == []
    session.expire_all()
    again = session.get(Ticket, t.id)
    assert (again.state, again.reopen_count, again.active_key) == ("acknowledged", 1, alarm.reduction_key)
    assert session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_failed_verification_reopens(runtime, session, frozen, policy):
    make_device(session, "agg2", site="pop-8")
    tech = service.Actor.of(make_technician(session, "tech-v", sites=["pop-8"]))
    noc = _noc(session)
    session.commit()
    engine, tickets = _wired(runtime)
    engine.submit_events([_event("agg2", "linkDown")])
    engine.run_once()
    frozen.advance(policy.min_active_s)
    [tid] = tickets.run_once().opened
    _drive_to_resolved(session, policy, tid, noc, tech)
    session.commit()
    frozen.advance(runtime.settings.ticket_verify_timeout_s)
    result = tickets.run_once()
    assert result.reopened == [tid]
    entry = [e for e in service.timeline(session, tid) if e.action == "reopen"][-1]
    assert entry.actor == "system" and entry.detail["reason"].startswith("verification failed: still active after")


def test_correlated_children_attach_and_symptoms_never_open(runtime, session, frozen, policy):
    from .conftest import make_alarm

    make_device(session, "core9", role="core", site="pop-9")
    root = make_alarm(session, device="core9", severity="critical")
    child = make_alarm(session, device="core9", severity="critical", parent_id=root.id)
    muted = make_alarm(session, device="core9", severity="critical", muted=True)
    session.commit()
    tickets = TicketingService(runtime)
    result = tickets.run_once()
    [ticket] = session.scalars(select(Ticket)).all()
    assert result.opened == [ticket.id] and ticket.root_alarm_id == root.id
    assert ticket.priority == "P1"  # critical on a core router
    links = {(link.alarm_id, link.role) for link in service.linked_alarms(session, ticket.id)}
    assert links == {(root.id, "root"), (child.id, "child")}
    assert muted.id not in {a for a, _ in links}
    # a child correlated later (bus change) attaches too
    late = make_alarm(session, device="core9", parent_id=root.id)
    session.commit()
    from tests.ticketing.test_loop import _change

    tickets.on_alarm_changes([_change(late, "correlated")])
    tickets.run_once()
    assert (late.id, "child") in {(x.alarm_id, x.role) for x in service.linked_alarms(session, ticket.id)}


def test_one_ticket_per_root_cause_even_if_two_openers_race(runtime, session, frozen, policy):
    """Two processes (restart, second replica) see the same alarm: the unique index keeps one ticket."""
    from .conftest import make_alarm

    alarm = make_alarm(session, device="x1")
    session.commit()
    record = alarm_queries.alarm(session, alarm.id)
    first = service.open_for_alarm(session, policy=policy, alarm=record, now=clock.now())
    # the second opener skips its read check (as a concurrent process would) and hits the unique index
    dup = service._new_ticket(policy, title="dup", description="", severity="major", priority="P3", source="alarm",
                              device="x1", site="", actor=service.SYSTEM, now=clock.now(),
                              active_key=alarm.reduction_key)  # fmt: skip
    import pytest
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(dup)
        session.flush()
    assert first is not None
    assert service.open_for_alarm(session, policy=policy, alarm=record, now=clock.now()) is None
    assert session.scalar(select(func.count()).select_from(Ticket)) == 1
    assert session.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.action == "create")) == 1


def _change(alarm: Alarm, kind: str):
    from faultloop.events import AlarmChange

    return AlarmChange(kind=kind, alarm_id=alarm.id, reduction_key=alarm.reduction_key, alarm_type=alarm.alarm_type,
                       device=alarm.device, managed_object=alarm.managed_object, severity=alarm.severity,
                       state=alarm.state, count=1, muted=True, suppression_reason="correlated",
                       parent_id=alarm.parent_id, root_cause=False, at=clock.now())  # fmt: skip


def test_a_storm_of_correlated_children_costs_one_lookup_of_their_root_s_ticket(runtime, session, frozen, policy):
    """Scale bench (issue 14): 2,000 children correlated under one root were looked up two queries
    each, every ticketing round, before the root had a ticket: the root's ticket came 8.7 s after
    the last symptom. The root's ticket is now looked up once, and a child read only to attach it."""
    from .conftest import make_alarm

    make_device(session, "core8", role="core", site="pop-8")
    root = make_alarm(session, device="core8", severity="critical")
    children = [make_alarm(session, device=f"acc8-{i}", severity="critical", parent_id=root.id) for i in range(300)]
    session.commit()
    changes = [_change(child, "correlated") for child in children]
    with _statements(session) as statements:
        assert service.on_alarm_changes(session, changes, now=clock.now()) == 0  # no ticket yet: nothing to attach
    assert len(statements) <= 3, f"{len(statements)} statements for {len(changes)} children of one root"
    # once the root has its ticket, the same changes attach every child
    tickets = TicketingService(runtime)
    tickets.run_once()
    [ticket] = session.scalars(select(Ticket)).all()
    late = make_alarm(session, device="acc8-late", severity="critical", parent_id=root.id)
    session.commit()
    assert service.on_alarm_changes(session, [_change(late, "correlated")], now=clock.now()) == 1
    assert (late.id, "child") in {(x.alarm_id, x.role) for x in service.linked_alarms(session, ticket.id)}


def test_the_ticket_of_a_root_with_a_storm_of_children_opens_with_them_in_bulk(runtime, session, frozen, policy):
    """Scale bench (issue 14): opening the root's ticket attached its 2,000 children one by one, four
    round trips each (a check, the alarm's ticket id, the link, the ticket event): seconds. They are
    attached in bulk now, with the same links, alarm ticket ids and ticket events."""
    from .conftest import make_alarm

    make_device(session, "core7", role="core", site="pop-7")
    root = make_alarm(session, device="core7", severity="critical")
    children = [make_alarm(session, device=f"acc7-{i}", severity="critical", parent_id=root.id) for i in range(300)]
    session.commit()
    record = alarm_queries.alarm(session, root.id)
    with _statements(session) as statements:
        ticket = service.open_for_alarm(session, policy=policy, alarm=record, now=clock.now())
        session.commit()
    assert ticket is not None
    assert len(statements) <= 40, f"{len(statements)} statements to open a ticket with {len(children)} children"
    links = {(link.alarm_id, link.role) for link in service.linked_alarms(session, ticket.id)}
    assert links == {(root.id, "root")} | {(c.id, "child") for c in children}
    ticket_ids = set(session.scalars(select(Alarm.ticket_id).where(Alarm.id.in_([root.id, *(c.id for c in children)]))))
    assert ticket_ids == {ticket.id}
    attached = session.scalar(
        select(func.count()).select_from(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.action == "alarm_attached")
    )  # fmt: skip
    assert attached == len(children) + 1


def test_a_ticket_round_notes_its_tickets_on_the_alarm_rows_last(runtime, session, frozen, policy):
    """Scale bench, issue 14: the alarm engine updates the alarm rows in every batch of a flood, and
    a ticket round that opened hundreds of tickets held their row locks from its first ticket to its
    commit (seconds; the engine's batches waited all that time). Inside ``alarm_notes_last`` the
    round writes ``Alarm.ticket_id`` when it ends, all at once."""
    make_device(session, "agg-last", role="distribution", site="pop-7")
    session.commit()
    engine, _tickets = _wired(runtime)
    engine.submit_events([_event("agg-last", "linkDown", ifname=f"Gi0/{i}") for i in range(3)])
    engine.run_once()
    frozen.advance(policy.min_active_s)
    s = runtime.settings

    def ticket_ids() -> dict[int, int | None]:
        return dict(session.execute(select(Alarm.id, Alarm.ticket_id).where(Alarm.device == "agg-last")).tuples().all())

    with service.alarm_notes_last(session):
        result = service.tick(session, policy=policy, now=clock.now(), hold_down_s=s.ticket_hold_down_s,
                              verify_timeout_s=s.ticket_verify_timeout_s,
                              reopen_window_s=s.ticket_reopen_window_s)  # fmt: skip
        assert len(result.opened) == 3
        assert set(ticket_ids().values()) == {None}  # not yet: the rows are not locked while the round runs
    opened = select(Ticket.root_alarm_id, Ticket.id).where(Ticket.id.in_(result.opened))
    roots = dict(session.execute(opened).tuples().all())
    assert ticket_ids() == roots  # each alarm noted with its own ticket when the block ended


def test_a_round_opening_many_tickets_reads_their_keys_once(runtime, session, frozen, policy):
    """Scale bench (issue 14): a flood's 500 faults open 500 tickets in one round, mid-flood on the
    leader. Whether a ticket holds each key, or a recently closed one had it, is read for the whole
    round, and a new ticket's root link is inserted without looking for it first."""
    from .conftest import make_alarm

    alarms = [make_alarm(session, device=f"fl-{i}", severity="major") for i in range(40)]
    session.commit()
    s = runtime.settings
    with _statements(session) as statements, service.alarm_notes_last(session):
        result = service.tick(session, policy=policy, now=clock.now(), hold_down_s=s.ticket_hold_down_s,
                              verify_timeout_s=s.ticket_verify_timeout_s,
                              reopen_window_s=s.ticket_reopen_window_s)  # fmt: skip
    assert len(result.opened) == len(alarms)
    per_ticket = len(statements) / len(alarms)
    assert per_ticket <= 11, f"{len(statements)} statements for {len(alarms)} tickets"
    by_key = [s for s in statements if "tickets.active_key = " in s or "tickets.root_key = " in s]
    assert by_key == [], by_key[:2]  # no key asked one by one
    links = session.execute(select(TicketAlarm.alarm_id, TicketAlarm.role)).tuples().all()
    assert sorted(links) == sorted((a.id, "root") for a in alarms)


def test_without_root_cause_only_a_child_taken_by_its_root_s_new_ticket_opens_none_of_its_own(
    runtime, session, frozen, policy
):
    from dataclasses import replace

    from .conftest import make_alarm

    make_device(session, "core6", role="core", site="pop-6")
    root = make_alarm(session, device="core6", severity="critical")
    child = make_alarm(session, device="core6", severity="critical", parent_id=root.id)
    session.commit()
    loose = replace(policy, root_cause_only=False)
    s = runtime.settings
    result = service.tick(session, policy=loose, now=clock.now(), hold_down_s=s.ticket_hold_down_s,
                          verify_timeout_s=s.ticket_verify_timeout_s, reopen_window_s=s.ticket_reopen_window_s)
    [ticket] = session.scalars(select(Ticket)).all()
    assert result.opened == [ticket.id] and ticket.root_alarm_id == root.id
    links = {(link.alarm_id, link.role) for link in service.linked_alarms(session, ticket.id)}
    assert links == {(root.id, "root"), (child.id, "child")}
