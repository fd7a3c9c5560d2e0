"""The SLA timer and the ticket's version (its ETag).

The routine advance of the SLA clocks (elapsed seconds, ``sla_checked_at``) every tick is
bookkeeping, not a change: it must leave the version alone, or every form and API client
holding a version older than one tick (~5 s) gets a 409 although nobody touched the ticket.
What a client acts on does raise it: a transition, and an SLA warning or breach (the flags
the ticket shows change, a timeline entry is written, and a breach may escalate) -- one bump
per threshold crossed in a round.
"""

from __future__ import annotations

from sqlalchemy import update

from faultloop import clock
from ticketing import service
from ticketing.jobs import TicketingService
from ticketing.models import Ticket

from .conftest import make_technician, make_user


def _reload(session, tid: int) -> Ticket:
    session.expire_all()
    return service.get(session, tid)


def test_clock_advance_keeps_the_version_warning_breach_and_transitions_raise_it(runtime, session, frozen, policy):
    noc = service.Actor.of(make_user(session, "noc-ver", "noc"))
    t = service.create_manual(session, policy=policy, actor=noc, title="down", priority="P1", now=clock.now())
    session.commit()
    tid, version = t.id, t.version
    jobs = TicketingService(runtime, policy=policy)
    for _ in range(7):  # P1: response 900 s, warning at 720 s
        frozen.advance(100)
        jobs.run_once()
    ticket = _reload(session, tid)
    assert (ticket.version, ticket.response_elapsed_s, ticket.restore_elapsed_s) == (version, 700.0, 700.0)
    assert ticket.sla_checked_at == clock.now() and not ticket.response_warned
    assert [e.action for e in service.timeline(session, tid)] == ["create"]
    # the version a client read before those rounds is still good for its next change
    service.transition(session, policy=policy, ticket_id=tid, action="acknowledge", actor=noc,
                       expected_version=version, now=clock.now())  # fmt: skip
    session.commit()
    assert _reload(session, tid).version == version + 1
    # the restore clock (P1: 14,400 s, warning at 11,520 s) keeps counting, quietly
    frozen.advance(10_800)
    jobs.run_once()
    ticket = _reload(session, tid)
    assert (ticket.version, ticket.response_elapsed_s, ticket.restore_elapsed_s) == (version + 1, 700.0, 11_500.0)
    # crossing the warning threshold is a change the ticket shows: one bump
    frozen.advance(20)
    jobs.run_once()
    ticket = _reload(session, tid)
    assert (ticket.version, ticket.restore_warned, ticket.restore_elapsed_s) == (version + 2, True, 11_520.0)
    frozen.advance(100)
    jobs.run_once()
    ticket = _reload(session, tid)
    assert (ticket.version, ticket.restore_elapsed_s) == (version + 2, 11_620.0)
    # the breach: one bump for the flag and the raised tier (acknowledged: nobody dispatched to escalate)
    frozen.advance(2780)
    jobs.run_once()
    ticket = _reload(session, tid)
    assert (ticket.version, ticket.restore_breached, ticket.tier) == (version + 3, True, 2)
    assert [e.action for e in service.timeline(session, tid)] == [
        "create", "acknowledge", "sla_warning", "sla_breach", "tier_raised"]  # fmt: skip
    # after the breach the clock keeps counting, quietly again
    for _ in range(3):
        frozen.advance(5)
        jobs.run_once()
    ticket = _reload(session, tid)
    assert (ticket.version, ticket.restore_elapsed_s) == (version + 3, 14_415.0)


def test_paused_ticket_keeps_its_version_across_ticks(runtime, session, frozen, policy):
    noc = service.Actor.of(make_user(session, "noc-pause", "noc"))
    tech = service.Actor.of(make_technician(session, "tech-pause"))
    t = service.create_manual(session, policy=policy, actor=noc, title="x", priority="P2", now=clock.now())
    for action, actor, data in (
        ("acknowledge", noc, {}), ("diagnose", noc, {"diagnosis": "d", "fault_category": "f"}),
        ("dispatch", noc, {"technician": "tech-pause"}), ("accept", tech, {}), ("on_site", tech, {}),
        ("wait", tech, {"reason": "waiting for a line card"}),
    ):  # fmt: skip
        service.transition(session, policy=policy, ticket_id=t.id, action=action, actor=actor, data=data,
                           now=clock.now())  # fmt: skip
    session.commit()
    version, elapsed = t.version, t.restore_elapsed_s
    for _ in range(3):
        frozen.advance(600)
        TicketingService(runtime, policy=policy).run_once()
    ticket = _reload(session, t.id)
    assert (ticket.version, ticket.restore_elapsed_s, ticket.sla_checked_at) == (version, elapsed, clock.now())


def test_tick_in_the_same_session_leaves_no_stale_or_pending_clock_values(session, frozen, policy, runtime):
    """The ticket object the tick advanced is used again in the same session: it holds the written
    values and nothing pending, so the next transition's UPDATE is the one bump and counts from there."""
    noc = service.Actor.of(make_user(session, "noc-same", "noc"))
    t = service.create_manual(session, policy=policy, actor=noc, title="x", priority="P1", now=clock.now())
    session.flush()
    version = t.version
    s = runtime.settings
    kw = {"policy": policy, "hold_down_s": s.ticket_hold_down_s, "verify_timeout_s": s.ticket_verify_timeout_s,
          "reopen_window_s": s.ticket_reopen_window_s}  # fmt: skip
    frozen.advance(300)
    service.tick(session, now=clock.now(), **kw)
    assert not session.is_modified(t)
    assert (t.version, t.response_elapsed_s, t.sla_checked_at) == (version, 300.0, clock.now())
    frozen.advance(60)
    service.transition(session, policy=policy, ticket_id=t.id, action="acknowledge", actor=noc,
                       expected_version=version, now=clock.now())  # fmt: skip
    ticket = _reload(session, t.id)
    assert (ticket.version, ticket.state, ticket.response_elapsed_s, ticket.restore_elapsed_s) == (
        version + 1, "acknowledged", 360.0, 360.0)  # fmt: skip


def test_clocks_computed_from_an_outdated_row_are_not_written(session, frozen, policy, runtime):
    """Someone else changed the ticket after the tick read it: the quiet UPDATE is guarded by the version
    it was computed from, so it writes nothing (the next tick advances from the new row)."""
    noc = service.Actor.of(make_user(session, "noc-race", "noc"))
    t = service.create_manual(session, policy=policy, actor=noc, title="x", priority="P1", now=clock.now())
    session.flush()
    version, checked = t.version, t.sla_checked_at
    # another writer: a real change (version + 1) that the identity map of this session does not see
    session.execute(update(Ticket).where(Ticket.id == t.id).values(version=version + 1, title="renamed")
                    .execution_options(synchronize_session=False))  # fmt: skip
    frozen.advance(300)
    s = runtime.settings
    service.tick(session, policy=policy, now=clock.now(), hold_down_s=s.ticket_hold_down_s,
                 verify_timeout_s=s.ticket_verify_timeout_s, reopen_window_s=s.ticket_reopen_window_s)  # fmt: skip
    # the object was expired, so it reads the row as the other writer left it
    assert (t.version, t.title, t.response_elapsed_s, t.sla_checked_at) == (version + 1, "renamed", 0.0, checked)
    frozen.advance(5)
    service.tick(session, policy=policy, now=clock.now(), hold_down_s=s.ticket_hold_down_s,
                 verify_timeout_s=s.ticket_verify_timeout_s, reopen_window_s=s.ticket_reopen_window_s)  # fmt: skip
    ticket = _reload(session, t.id)
    assert (ticket.version, ticket.response_elapsed_s) == (version + 1, 305.0)


def test_the_routine_advance_of_many_tickets_is_one_statement_and_an_outdated_row_is_skipped(
    session, frozen, policy, runtime
):
    """A flood opens hundreds of tickets: their routine clock advance goes out as one executemany per
    round (not one UPDATE per ticket), and the row someone else changed meanwhile is still left alone."""
    from sqlalchemy import event

    noc = service.Actor.of(make_user(session, "noc-many", "noc"))
    tickets = [service.create_manual(session, policy=policy, actor=noc, title=f"t{i}", priority="P1",
                                     now=clock.now()) for i in range(40)]  # fmt: skip
    session.flush()
    versions = {t.id: t.version for t in tickets}
    changed = tickets[7]
    session.execute(update(Ticket).where(Ticket.id == changed.id).values(version=changed.version + 1, title="renamed")
                    .execution_options(synchronize_session=False))  # fmt: skip
    updates: list[tuple[str, int]] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE TICKETS"):
            updates.append((statement, len(parameters) if executemany else 1))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        frozen.advance(300)
        s = runtime.settings
        service.tick(session, policy=policy, now=clock.now(), hold_down_s=s.ticket_hold_down_s,
                     verify_timeout_s=s.ticket_verify_timeout_s, reopen_window_s=s.ticket_reopen_window_s)  # fmt: skip
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [n for _, n in updates] == [40]
    session.commit()
    for t in tickets:
        ticket = _reload(session, t.id)
        if t.id == changed.id:
            assert (ticket.version, ticket.title, ticket.response_elapsed_s) == (versions[t.id] + 1, "renamed", 0.0)
        else:
            assert (ticket.version, ticket.response_elapsed_s) == (versions[t.id], 300.0)
