"""The state machine table, its one enforcement function, its rendering, and the YAML policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from faultloop.errors import Forbidden, IllegalTransition, InvalidInput
from ticketing.policy import (
    ACTIONS,
    STATES,
    TRANSITIONS,
    allowed_actions,
    check,
    load_policy,
    parse_policy,
    render_markdown,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "tickets.md"


def test_docs_embed_exactly_the_rendered_table():
    text = DOC.read_text()
    embedded = text.split("<!-- transitions:begin -->\n", 1)[1].split("<!-- transitions:end -->", 1)[0]
    assert embedded == render_markdown(), "docs/tickets.md is stale: regenerate with python -m ticketing.policy"


def test_table_is_consistent():
    assert len({(t.from_state, t.action) for t in TRANSITIONS}) == len(TRANSITIONS)  # deterministic
    for t in TRANSITIONS:
        assert t.from_state in STATES and (t.to_state in STATES or t.to_state == "_same")
    assert not [t for t in TRANSITIONS if t.from_state in ("cancelled",)]  # terminal
    # every state except the terminal ones has a way forward
    assert {t.from_state for t in TRANSITIONS} == set(STATES) - {"cancelled"}


def test_check_returns_next_state_and_enforces_roles():
    assert check("new", "acknowledge", role="noc") == "acknowledged"
    assert check("dispatched", "accept", role="technician", is_assignee=True) == "accepted"
    assert check("en_route", "update", role="technician", is_assignee=True) == "en_route"
    with pytest.raises(Forbidden, match="the assigned technician may not accept"):
        check("dispatched", "accept", role="technician", is_assignee=False)
    with pytest.raises(Forbidden, match="role 'viewer' may not acknowledge"):
        check("new", "acknowledge", role="viewer")
    with pytest.raises(Forbidden):
        check("resolved", "verify", role="technician", is_assignee=True)


def test_illegal_transition_lists_allowed_actions():
    with pytest.raises(IllegalTransition) as err:
        check("new", "resolve", role="noc")
    assert err.value.status == 409
    assert err.value.allowed == ["acknowledge", "cancel"]
    assert err.value.detail == "cannot resolve a ticket in state 'new'; allowed: acknowledge, cancel"
    assert err.value.problem_extra == {"allowed_actions": ["acknowledge", "cancel"]}


def test_unknown_action_is_422():
    with pytest.raises(InvalidInput, match="action: expected one of acknowledge"):
        check("new", "teleport", role="admin")


def test_allowed_actions_per_actor():
    assert allowed_actions("on_site", role="technician", is_assignee=True) == ["update", "wait", "resolve"]
    assert allowed_actions("on_site", role="technician", is_assignee=False) == []
    assert "escalate" in allowed_actions("on_site", role="system")
    assert set(ACTIONS) >= set(allowed_actions("dispatched", role="admin"))


def test_packaged_policy_opens_and_prioritises():
    p = load_policy()
    assert p.opens_ticket(severity="critical", parent_id=None, muted=False, active_s=61) is None
    assert p.opens_ticket(severity="minor", parent_id=None, muted=False, active_s=600) == "severity minor below major"
    assert p.opens_ticket(severity="critical", parent_id=7, muted=False, active_s=600) == "symptom of another alarm"
    assert p.opens_ticket(severity="critical", parent_id=None, muted=True, active_s=600).startswith("muted")
    assert p.opens_ticket(severity="critical", parent_id=None, muted=False, active_s=10) == "active 10s < 60s"
    assert p.priority(severity="critical", role="access", site="x", impact=0) == "P2"
    assert p.priority(severity="critical", role="core", site="x", impact=0) == "P1"
    assert p.priority(severity="critical", role="core", site="x", impact=50) == "P1"  # never above P1
    assert p.priority(severity="major", role="access", site="x", impact=10) == "P2"
    assert p.priority(severity="minor", role="access", site="x", impact=0) == "P4"
    assert p.target("P1").response_s == 900 and not p.target("P1").business_hours
    assert p.target("P3").business_hours


@pytest.mark.parametrize(
    "doc,message",
    [
        ([], "expected a mapping at the top level"),
        ({"open": {"min_severity": "loud"}}, "open.min_severity: expected critical, major"),
        ({"open": {"min_active_s": -1}}, "open.min_active_s: expected a number of seconds >= 0"),
        ({"priority": {"severity": {"critical": 9}}}, "priority.severity: expected severity -> 1..4"),
        ({"priority": {"role_raise": {"core": 7}}}, "priority.role_raise: expected name -> steps 0..3"),
        ({"sla": {"P9": {"response_s": 1, "restore_s": 2}}}, "sla.P9: expected P1..P4"),
        ({"sla": {"P1": {"response_s": 0, "restore_s": 2}}}, "sla.P1: expected positive response_s and restore_s"),
        ({"business_hours": {"days": ["funday"]}}, "business_hours: expected days (mon..sun)"),
        ({"business_hours": {"start": "18:00", "end": "08:00"}}, "business_hours.end: expected a time after start"),
    ],
)
def test_bad_policy_names_the_key(doc, message):
    with pytest.raises(InvalidInput, match="^policy: " + message.replace("(", r"\(").replace(")", r"\)")):
        parse_policy(doc)


def test_unreadable_policy_file(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("open: [unclosed")
    with pytest.raises(InvalidInput, match="cannot read the ticket policy"):
        load_policy(bad)


def test_business_hours_count_only_open_hours():
    hours = parse_policy({"business_hours": {"days": ["mon", "tue"], "start": "08:00", "end": "18:00"}}).business_hours
    assert hours is not None
    mon_17 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    tue_09 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert hours.seconds_between(mon_17, tue_09) == 2 * 3600  # 17-18 Monday, 08-09 Tuesday
    assert hours.seconds_between(tue_09, mon_17) == 0  # never negative
    wed = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    assert hours.seconds_between(wed, wed.replace(day=5)) == 0  # closed days
