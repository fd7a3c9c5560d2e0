"""The one state-machine helper (faultloop.statemachine) under both tables it enforces: tickets
and service orders. Property: no move outside the table is ever accepted, a refusal changes
nothing and says why (409 with the allowed actions, 403, or 422 for an unknown action)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultloop import statemachine
from faultloop.errors import Forbidden, IllegalTransition, InvalidInput
from faultloop.statemachine import SAME, StateTable, Transition
from provisioning.policy import ORDERS
from ticketing.policy import TICKETS

TABLES = {"tickets": TICKETS, "orders": ORDERS}
ROLES = ["admin", "noc", "provisioner", "technician", "viewer", "system"]


def _walk(table: StateTable) -> st.SearchStrategy[list[tuple[str, str, tuple[str, ...]]]]:
    step = st.tuples(
        st.sampled_from([*table.actions, "bogus"]),
        st.sampled_from(ROLES),
        st.sampled_from([(), ("assignee",)]),
    )
    return st.lists(step, max_size=30)


@pytest.mark.parametrize("name", sorted(TABLES))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_no_move_outside_the_table_is_ever_accepted(name: str, data: st.DataObject) -> None:
    table = TABLES[name]
    state = data.draw(st.sampled_from(table.states))
    for action, role, relations in data.draw(_walk(table)):
        row = table.find(state, action)
        roles = {role, *relations}
        try:
            found = statemachine.check(table, state, action, role=role, relations=relations)
        except InvalidInput as exc:
            assert table.strict_actions and action not in table.actions and exc.status == 422
            continue
        except IllegalTransition as exc:
            assert row is None and exc.status == 409
            assert action not in exc.allowed and exc.problem_extra == {"allowed_actions": exc.allowed}
            for offered in exc.allowed:  # everything offered is a move the state has
                assert table.find(state, offered) is not None
            continue
        except Forbidden as exc:
            assert row is not None and not row.roles & roles and exc.status == 403
            continue
        assert row is not None and found == row and row.roles & roles
        assert found.to_state in table.states or found.to_state == SAME
        state = found.next_state()
    assert state in table.states


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_allowed_list_is_the_table(name: str) -> None:
    table = TABLES[name]
    for state in table.states:
        rows = [t for t in table.transitions if t.from_state == state]
        assert set(table.allowed(state)) == {t.action for t in rows}
        for role in ROLES:
            assert set(table.allowed(state, {role})) == {t.action for t in rows if role in t.roles}


def test_a_table_is_checked_when_it_is_built() -> None:
    def table(*rows: Transition) -> StateTable:
        return StateTable(states=("a", "b"), transitions=rows, illegal="no {action}", forbidden="{who} no")

    anyone = frozenset({"admin"})
    with pytest.raises(ValueError, match="two rows for 'go' from 'a'"):
        table(Transition("a", "go", "b", anyone), Transition("a", "go", "a", anyone))
    with pytest.raises(ValueError, match="unknown state 'c'"):
        table(Transition("a", "go", "c", anyone))
    with pytest.raises(ValueError, match="exactly the table's actions"):
        StateTable(
            states=("a", "b"), transitions=(Transition("a", "go", "b", anyone),), illegal="", forbidden="",
            actions=("go", "stay"),
        )  # fmt: skip


def test_wording_comes_from_the_table() -> None:
    with pytest.raises(IllegalTransition) as illegal:
        statemachine.check(ORDERS, "approved", "plan", role="viewer")
    # an order's refusal lists what the state allows anyone, without the executor's own steps
    assert illegal.value.allowed == ["cancel", "execute"]
    assert (
        str(illegal.value) == "action 'plan' is not allowed on an order in state 'approved'; allowed: cancel, execute"
    )
    with pytest.raises(
        Forbidden, match=r"^role 'viewer' may not cancel an order \(allowed: admin, noc, oss, provisioner\)$"
    ):
        statemachine.check(ORDERS, "draft", "cancel", role="viewer")
    # a ticket's lists what this actor may do
    with pytest.raises(IllegalTransition) as ticket:
        statemachine.check(TICKETS, "on_site", "accept", role="technician", relations=("assignee",))
    assert ticket.value.allowed == ["update", "wait", "resolve"]
    with pytest.raises(Forbidden, match="^the assigned technician may not accept a ticket in state 'dispatched'$"):
        statemachine.check(TICKETS, "dispatched", "accept", role="technician")
    assert (
        statemachine.check(TICKETS, "dispatched", "accept", role="technician", relations=("assignee",)).next_state()
        == "accepted"
    )
    assert statemachine.check(TICKETS, "on_site", "update", role="noc").next_state() == "on_site"  # SAME
