"""Tickets and customer services (SQLite and PostgreSQL): priority and SLA targets from the highest
SLA class among the affected services (device rules otherwise), following the impact as it changes;
self-healed faults closed as "cleared before dispatch"; the catalog refused for an undefined class."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from alarms.models import AlarmServiceImpact
from faultloop import clock
from faultloop.cmd.app import service_sla_classes
from faultloop.events import AlarmChange
from faultloop.runtime import StartupError
from faultloop.settings import Settings
from provisioning.render import PACKAGED_CATALOG
from tests.ticketing.conftest import make_alarm, make_device
from ticketing import service
from ticketing.models import Ticket, TicketEvent

HOLD = 300.0


def tick(session, policy, now=None):
    return service.tick(session, policy=policy, now=now or clock.now(), hold_down_s=HOLD, verify_timeout_s=3600,
                        reopen_window_s=86400)  # fmt: skip


def affect(session, alarm, *services: tuple[int, str, str | None]):
    """What the alarm engine writes for an alarm's impact (rows + counts)."""
    for sid, customer, sla_class in services:
        session.add(AlarmServiceImpact(alarm_id=alarm.id, service_id=sid, customer=customer, service_type="x",
                                       sla_class=sla_class, how="direct", level="down"))  # fmt: skip
    alarm.services_affected = len(services)
    alarm.customers_affected = len({c for _, c, _ in services})
    session.flush()


def impact_change(alarm) -> AlarmChange:
    return AlarmChange(kind="impact", alarm_id=alarm.id, reduction_key=alarm.reduction_key, alarm_type=alarm.alarm_type,
                       device=alarm.device, managed_object=alarm.managed_object, severity=alarm.severity,
                       state=alarm.state, count=1, muted=False, suppression_reason=None, parent_id=None,
                       root_cause=False, at=clock.now())  # fmt: skip


def test_priority_and_sla_clocks_come_from_the_highest_service_class(session, frozen, policy):
    make_device(session, "acc-9", role="access")
    plain = make_alarm(session, device="acc-9")
    gold = make_alarm(session, device="acc-9")
    affect(session, gold, (1, "acme", "bronze"), (2, "bolt", "gold"), (3, "acme", None))
    tick(session, policy)
    by_alarm = {t.root_alarm_id: t for t in session.scalars(select(Ticket))}
    assert by_alarm[plain.id].priority == "P3" and by_alarm[plain.id].sla_class is None  # device rules
    ticket = by_alarm[gold.id]
    assert (ticket.priority, ticket.sla_class) == ("P1", "gold")
    assert (ticket.response_target_s, ticket.restore_target_s, ticket.business_hours) == (900, 14400, False)


def test_a_bronze_business_hours_class_and_unknown_classes_fall_back(session, frozen, policy):
    make_device(session, "acc-8", role="access")
    bronze = make_alarm(session, device="acc-8")
    affect(session, bronze, (1, "acme", "bronze"))
    unknown = make_alarm(session, device="acc-8")
    affect(session, unknown, (2, "acme", "platinum"))  # a class no longer in the policy: device rules
    tick(session, policy)
    by_alarm = {t.root_alarm_id: t for t in session.scalars(select(Ticket))}
    assert (by_alarm[bronze.id].priority, by_alarm[bronze.id].business_hours) == ("P3", True)
    assert by_alarm[bronze.id].response_target_s == 3600
    assert by_alarm[unknown.id].sla_class is None


def test_priority_follows_the_impact_as_it_changes(session, frozen, policy):
    make_device(session, "acc-7", role="access")
    alarm = make_alarm(session, device="acc-7")
    tick(session, policy)
    ticket = session.scalar(select(Ticket).where(Ticket.root_alarm_id == alarm.id))
    assert (ticket.priority, ticket.sla_class) == ("P3", None)
    version = ticket.version
    affect(session, alarm, (5, "acme", "silver"))
    frozen.advance(60)
    service.on_alarm_changes(session, [impact_change(alarm)], now=clock.now(), policy=policy)
    assert (ticket.priority, ticket.sla_class, ticket.response_target_s) == ("P2", "silver", 1800)
    assert ticket.version == version + 1
    entry = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                      TicketEvent.action == "sla_class_changed")).one()  # fmt: skip
    assert entry.detail["from"] == {"sla_class": None, "priority": "P3"} and entry.detail["priority"] == "P2"
    # the impact goes away: back to the device rules; an unchanged impact changes nothing
    session.query(AlarmServiceImpact).filter_by(alarm_id=alarm.id).delete()
    service.on_alarm_changes(session, [impact_change(alarm)], now=clock.now(), policy=policy)
    assert (ticket.priority, ticket.sla_class, ticket.response_target_s) == ("P3", None, 3600)
    service.on_alarm_changes(session, [impact_change(alarm)], now=clock.now(), policy=policy)
    assert ticket.version == version + 2


def _clear(session, alarm):
    alarm.state, alarm.cleared_at = "cleared", clock.now()
    session.flush()


def test_self_healed_fault_closes_as_cleared_before_dispatch(session, frozen, policy):
    make_device(session, "acc-6", role="access")
    alarm = make_alarm(session, device="acc-6")
    tick(session, policy)
    ticket = session.scalar(select(Ticket).where(Ticket.root_alarm_id == alarm.id))
    _clear(session, alarm)
    frozen.advance(HOLD - 1)
    assert tick(session, policy).self_healed == [] and ticket.state == "new"  # not clear long enough yet
    frozen.advance(1)
    result = tick(session, policy)
    assert result.self_healed == [ticket.id]
    assert (ticket.state, ticket.close_reason, ticket.active_key) == ("closed", "cleared before dispatch", None)
    last = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                           .order_by(TicketEvent.id.desc())).first()  # fmt: skip
    assert (last.action, last.actor, last.to_state) == ("auto_close", "system", "closed")
    (row,) = [r for r in service.mttr_report(session, by="device") if r["key"] == "acc-6"]
    assert row["cleared_before_dispatch"] == 1


def test_an_acknowledged_ticket_or_a_policy_without_auto_close_is_not_auto_closed(session, frozen, policy):
    make_device(session, "acc-5", role="access")
    acked, kept = make_alarm(session, device="acc-5"), make_alarm(session, device="acc-5")
    tick(session, policy)
    tickets = {t.root_alarm_id: t for t in session.scalars(select(Ticket))}
    service.transition(session, policy=policy, ticket_id=tickets[acked.id].id, action="acknowledge",
                       actor=service.Actor("noc1", "noc"), now=clock.now())  # fmt: skip
    _clear(session, acked)
    _clear(session, kept)
    frozen.advance(HOLD)
    off = replace(policy, auto_close_self_healed=False)
    assert tick(session, off).self_healed == []
    assert tickets[kept.id].state == "new" and tickets[acked.id].state == "acknowledged"
    assert tick(session, policy).self_healed == [tickets[kept.id].id]
    assert tickets[acked.id].state == "acknowledged"


def test_only_the_system_may_auto_close(session, frozen, policy):
    make_device(session, "acc-4", role="access")
    alarm = make_alarm(session, device="acc-4")
    tick(session, policy)
    ticket = session.scalar(select(Ticket).where(Ticket.root_alarm_id == alarm.id))
    with pytest.raises(Exception) as refused:
        service.transition(session, policy=policy, ticket_id=ticket.id, action="auto_close",
                           actor=service.Actor("noc1", "noc"), now=clock.now())  # fmt: skip
    assert getattr(refused.value, "status", None) == 403 and ticket.state == "new"


def test_catalog_naming_an_undefined_sla_class_fails_naming_file_type_and_field(tmp_path: Path, policy):
    folder = tmp_path / "catalog"
    for st in PACKAGED_CATALOG.iterdir():
        if st.is_dir():
            (folder / st.name).mkdir(parents=True)
            for f in st.iterdir():
                (folder / st.name / f.name).write_text(f.read_text())
    schema = folder / "l2_vlan" / "schema.yaml"
    schema.write_text(schema.read_text().replace("sla_class: silver", "sla_class: platinum"))
    settings = Settings(data_dir=tmp_path / "var", provisioning_catalog_dir=folder)
    with pytest.raises(StartupError) as failed:
        service_sla_classes(settings, policy)
    message = str(failed.value)
    assert str(schema) in message and "service type l2_vlan" in message and "sla_class: 'platinum'" in message
    assert "\n" not in message
    # the packaged catalog agrees with the packaged policy
    classes = service_sla_classes(Settings(data_dir=tmp_path / "var"), policy)
    assert classes["business_internet"] == "gold" and classes["l2_vlan"] == "silver"


def test_policy_sla_class_bad_input_names_the_field(policy):
    from faultloop.errors import InvalidInput
    from ticketing.policy import parse_policy

    for doc, field in (
        ({"sla_classes": {"gold": {"rank": 1, "priority": "P9", "response_s": 1, "restore_s": 1}}},
         "sla_classes.gold.priority"),
        ({"sla_classes": {"gold": {"rank": 1, "priority": "P1", "response_s": 0, "restore_s": 1}}},
         "sla_classes.gold.response_s"),
        ({"sla_classes": {"gold": {"rank": 1, "priority": "P1", "response_s": 1, "restore_s": 1, "hours": "9to5"}}},
         "sla_classes.gold.hours"),
        ({"sla_classes": {"Gold!": {}}}, "sla_classes.Gold!"),
        ({"auto_close": {"cleared_before_dispatch": "yes"}}, "auto_close.cleared_before_dispatch"),
    ):  # fmt: skip
        with pytest.raises(InvalidInput) as bad:
            parse_policy(doc)
        assert bad.value.field == field and field in str(bad.value)

