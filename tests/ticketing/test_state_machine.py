"""Hypothesis rule-based state machine: random actions by random roles at random times.

Invariants after every step: the ticket is in a known state; an accepted action is exactly
one the table allows this actor; a refused one changes nothing; the timeline's transition
entries chain (each from_state is the previous to_state) and end at the ticket's state;
SLA elapsed never negative and never decreasing; the version grows by one per change.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from faultloop import clock
from faultloop.errors import DomainError
from ticketing import service
from ticketing.policy import ACTIONS, STATES, TRANSITIONS, allowed_actions

from .conftest import make_technician, make_user

VALID = {
    "acknowledge": {},
    "diagnose": {"diagnosis": "LOS", "fault_category": "transmission"},
    "dispatch": {"technician": "sm-tech-a"},
    "reassign": {"technician": "sm-tech-a"},
    "escalate": {"technician": "sm-tech-a"},
    "accept": {},
    "en_route": {"location_note": "on the way"},
    "on_site": {},
    "update": {"location_note": "still here"},
    "wait": {"reason": "parts"},
    "resume": {},
    "resolve": {"cause_category": "power", "action_taken": "replaced PSU"},
    "resolve_external": {"action_taken": "fixed by the service desk"},
    "verify": {},
    "close": {"rating": 3},
    "auto_close": {},
    "reopen": {"reason": "recurred"},
    "cancel": {"reason": "duplicate"},
}
TRANSITION_ACTIONS = {t.action for t in TRANSITIONS}


def test_random_actions_and_roles_keep_the_invariants(session, frozen, policy):
    actors = {
        "admin": service.Actor.of(make_user(session, "sm-admin", "admin")),
        "noc": service.Actor.of(make_user(session, "sm-noc", "noc")),
        "viewer": service.Actor.of(make_user(session, "sm-viewer", "viewer")),
        "oss": service.Actor.of(make_user(session, "sm-oss", "oss")),
        "tech-a": service.Actor.of(make_technician(session, "sm-tech-a")),
        "tech-b": service.Actor.of(make_technician(session, "sm-tech-b")),
        "system": service.SYSTEM,
    }

    reached: set[str] = set()

    class Tickets(RuleBasedStateMachine):
        @initialize()
        def open_ticket(self) -> None:
            t = service.create_manual(session, policy=policy, actor=actors["noc"], title="sm", now=clock.now())
            self.tid, self.version = t.id, t.version
            self.response, self.restore = 0.0, 0.0

        @rule(
            action=st.sampled_from(ACTIONS),
            who=st.sampled_from(sorted(actors)),
            valid=st.booleans(),
            wait_s=st.integers(0, 4 * 3600),
        )
        def act(self, action: str, who: str, valid: bool, wait_s: int) -> None:
            frozen.advance(wait_s)
            ticket = service.get(session, self.tid)
            before = ticket.state
            actor = actors[who]
            allowed = action in allowed_actions(
                before, role=actor.role, is_assignee=service.is_assignee(session, ticket, actor)
            )
            data = VALID[action] if valid else {}
            try:
                with session.begin_nested():
                    service.transition(session, policy=policy, ticket_id=self.tid, action=action, actor=actor,
                                       data=data, now=clock.now())  # fmt: skip
            except DomainError as exc:
                assert exc.status in (403, 404, 409, 422), exc
                session.expire_all()
                after = service.get(session, self.tid)
                assert (after.state, after.version) == (before, self.version)  # refused: nothing changed
                # a refusal is right when the table forbids it, or the action's fields were missing
                assert not allowed or not valid or exc.status == 409
                return
            assert allowed, f"{who} did {action} in {before}, which the table does not allow"
            self.version += 1

        @rule(data=st.data(), wait_s=st.integers(0, 3600))
        def progress(self, data: st.DataObject, wait_s: int) -> None:
            """A legal step by someone allowed to take it (so the walk reaches the far states)."""
            ticket = service.get(session, self.tid)
            options = [
                (a, who)
                for who in ("noc", "tech-a", "system")
                for a in allowed_actions(
                    ticket.state, role=actors[who].role, is_assignee=service.is_assignee(session, ticket, actors[who])
                )  # fmt: skip
            ]
            # forward moves only here; cancel/reassign/escalate/reopen come from the random rule above
            options = [(a, who) for a, who in options if a not in ("cancel", "reassign", "escalate", "reopen")]
            if not options:
                return
            action, who = data.draw(st.sampled_from(options))
            self.act(action, who, True, wait_s)

        @invariant()
        def consistent(self) -> None:
            if not hasattr(self, "tid"):
                return
            ticket = service.get(session, self.tid)
            assert ticket.state in STATES
            reached.add(ticket.state)
            assert ticket.version == self.version
            steps = [e for e in service.timeline(session, self.tid) if e.action in TRANSITION_ACTIONS | {"create"}]
            assert steps[0].to_state == "new"
            for prev, cur in zip(steps, steps[1:], strict=False):
                assert cur.from_state == prev.to_state and cur.at >= prev.at
            assert steps[-1].to_state == ticket.state
            assert len(steps) == ticket.version  # one timeline entry per change
            assert 0 <= self.response <= ticket.response_elapsed_s and 0 <= self.restore <= ticket.restore_elapsed_s
            self.response, self.restore = ticket.response_elapsed_s, ticket.restore_elapsed_s
            if ticket.state in ("closed", "cancelled"):
                assert ticket.active_key is None

    run_state_machine_as_test(
        Tickets,
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]),
    )  # fmt: skip
    assert reached == set(STATES)  # the walk visited every state
