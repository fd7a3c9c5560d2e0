"""Service verification before closure, against lab devices over real SSH (netmiko) and SNMP (UDP),
on SQLite and PostgreSQL with real commits (the checks run between two transactions, in other
threads, as in production).

A customer service is activated by a real provisioning order; a link fault on its port raises an
alarm (real alarm engine, service impact from the service inventory) that opens a ticket; the
ticket is repaired and resolved, the alarm clears, and after the hold-down the service's catalog
checks are read again: they pass -> verified; the port is shut or the VLAN removed on the device
-> reopened with the failed check and what was read in the timeline (and the reopen notification
through the ticket outbox to a local webhook); the device does not answer -> tried again, then
reopened saying so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from alarms.bus import AlarmBus
from alarms.runner import AlarmEngine
from faultloop import clock, migrate
from faultloop.cmd.app import service_sla_classes, service_source
from faultloop.db import make_engine, make_sessionmaker, transaction
from faultloop.errors import InvalidInput
from faultloop.events import Event
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from faultloop.vault import Vault
from lab.model import LabDevice
from provisioning import queries as service_inventory
from provisioning.models import ServiceInstance
from provisioning.verify import ServiceVerifier
from tests.collectors import cli_lab
from tests.collectors.cli_lab import push_config
from tests.conftest import BACKENDS
from tests.pgdb import scratch_database
from tests.provisioning.lab import add_device, lab_device
from tests.provisioning.test_lab_orders import run as run_order
from tests.support import Hook
from ticketing import desk, service
from ticketing.jobs import TicketingService
from ticketing.models import Ticket, TicketEvent, TicketNotification
from ticketing.notify import TicketNotifier, parse_config
from ticketing.policy import load_policy, parse_policy
from ticketing.service import Actor

bg, host_key, lab_ssh = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh

NOC = Actor("nina", "noc")
FIELD = Actor("root", "admin")  # may act for the field (accept, on site, resolve)


@pytest.fixture(params=BACKENDS)
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime with real commits on its own database: an SQLite file, or a scratch PostgreSQL database."""
    key = Fernet.generate_key().decode()
    settings = Settings(
        data_dir=tmp_path / "var", secret_key=key, ssh_workers=2, ssh_timeout_s=15, poll_timeout_s=1,
        poll_retries=0, provisioning_check_timeout_s=2,
    )  # fmt: skip
    vault = Vault([key.encode()])
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'own.db'}")
        migrate.upgrade(engine)
        yield Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=vault)
        engine.dispose()
        return
    with scratch_database(prefix="faultloop_v") as url:
        engine = make_engine(url)
        yield Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=vault)
        engine.dispose()


@pytest.fixture
def transports() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for t in started:
        t.close()


@dataclass
class Loop:
    rt: Runtime
    lab: LabDevice
    interface: str
    engine: AlarmEngine
    tickets: TicketingService
    frozen: clock.FrozenClock

    def event(self, event_type: str, severity: str) -> None:
        self.engine.submit_events([
            Event(source="trap", device=self.lab.name, event_type=event_type, severity=severity, time=clock.now(),
                  managed_object=f"interface:{self.interface}")
        ])  # fmt: skip
        self.engine.run_once()

    def act(self, ticket_id: int, action: str, actor: Actor, **data: Any) -> None:
        with transaction(self.rt.sessions) as session:
            service.transition(session, policy=self.tickets.policy, ticket_id=ticket_id, action=action, actor=actor,
                               data=data, now=clock.now())  # fmt: skip

    def resolved_and_cleared(self) -> int:
        """Link down on the service's port -> ticket -> repaired and resolved -> link up; the hold-down not yet over."""
        self.event("linkDown", "major")
        self.frozen.advance(self.tickets.policy.min_active_s)
        [ticket_id] = self.tickets.run_once().opened
        self.act(ticket_id, "acknowledge", NOC)
        self.repair(ticket_id)
        self.event("linkUp", "cleared")
        assert self.tickets.run_once().service_checked == []  # clear, but not yet for the hold-down
        self.frozen.advance(self.rt.settings.ticket_hold_down_s)
        return ticket_id

    def repair(self, ticket_id: int) -> None:
        """An acknowledged ticket diagnosed, dispatched, repaired on site and resolved."""
        self.act(ticket_id, "diagnose", NOC, diagnosis="port down", fault_category="transmission")
        self.act(ticket_id, "dispatch", NOC, team="field")
        for action in ("accept", "on_site"):
            self.act(ticket_id, action, FIELD)
        self.act(ticket_id, "resolve", FIELD, cause_category="hardware", action_taken="replaced the SFP")

    def ticket(self, ticket_id: int) -> Ticket:
        with transaction(self.rt.sessions) as session:
            found = session.get(Ticket, ticket_id)
            assert found is not None
            return found

    def timeline(self, ticket_id: int) -> list[TicketEvent]:
        with transaction(self.rt.sessions) as session:
            query = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
            return list(session.scalars(query))


def _loop(rt: Runtime, lab_ssh: Any, bg: Any, transports: list[Any], device_type: str,
          order: dict[str, Any]) -> Iterator[Loop]:  # fmt: skip
    frozen = clock.FrozenClock(clock.now().replace(microsecond=0))
    with clock.use(frozen):
        lab, transport = lab_device(lab_ssh, bg, "sv-acc1", device_type=device_type)
        transports.append(transport)
        with transaction(rt.sessions) as session:
            add_device(session, rt.vault, lab)
        itf = lab.interfaces[1].name
        outcome = run_order(rt, {**order, "targets": [{"device": lab.name, "params": {"interface": itf}}]})
        assert outcome.state == "completed", outcome.message
        # past the maintenance window the order opened over the port (its linkDown would be muted)
        frozen.advance(rt.settings.provisioning_window_grace_s + 60)
        policy = load_policy()
        engine = AlarmEngine(rt, AlarmBus(), services=service_source(service_sla_classes(rt.settings, policy)))
        engine.load()
        tickets = TicketingService(rt, policy=policy, service_checker=ServiceVerifier(rt))
        yield Loop(rt, lab, itf, engine, tickets, frozen)


@pytest.fixture
def loop(rt: Runtime, lab_ssh: Any, bg: Any, transports: list[Any]) -> Iterator[Loop]:
    """A business_internet service (VLAN 120, "ACME-42 BIA") on an IOS lab device's Gi0/1."""
    order = {"service_type": "business_internet", "customer": "ACME",
             "params": {"vlan": 120, "description": "ACME-42 BIA"}}  # fmt: skip
    yield from _loop(rt, lab_ssh, bg, transports, "cisco_ios", order)


@pytest.fixture
def junos_loop(rt: Runtime, lab_ssh: Any, bg: Any, transports: list[Any]) -> Iterator[Loop]:
    """An l2_vlan service (VLAN 220, "ACME L2 220") on a Junos lab device's ge-0/0/1."""
    order = {"service_type": "l2_vlan", "customer": "ACME",
             "params": {"vlan": 220, "vlan_name": "ACME-220", "description": "ACME L2 220"}}  # fmt: skip
    yield from _loop(rt, lab_ssh, bg, transports, "juniper_junos", order)


def _checks(loop: Loop, ticket_id: int) -> list[dict[str, Any]]:
    return [e.detail for e in loop.timeline(ticket_id) if e.action == "service_check"]


def test_a_service_that_passes_its_checks_again_is_verified(loop: Loop) -> None:
    tid = loop.resolved_and_cleared()
    result = loop.tickets.run_once()
    assert (result.verified, result.reopened, result.service_checked) == ([tid], [], [tid])
    assert loop.ticket(tid).state == "verified"
    [check] = _checks(loop, tid)
    assert (check["result"], check["attempt"]) == ("passed", 1)
    assert check["summary"].endswith("(ACME business_internet) passed 4 checks")
    [svc] = check["services"]
    assert (svc["customer"], svc["service_type"], svc["outcome"], svc["failed"]) == (
        "ACME", "business_internet", "passed", []
    )  # fmt: skip
    port = loop.interface
    assert f"sv-acc1: {port} oper_status is 'up'" in svc["passed"]
    assert f"sv-acc1: {port} if_alias is 'ACME-42 BIA'" in svc["passed"]
    assert any("switchport access vlan 120" in p for p in svc["passed"])  # read over SSH
    actions = [e.action for e in loop.timeline(tid)]
    assert actions[-2:] == ["service_check", "verify"]
    assert "4 service checks passed on 1 service(s)" in loop.timeline(tid)[-1].detail["how"]


def test_a_shut_port_reopens_with_what_was_read_and_notifies(loop: Loop) -> None:
    hook = Hook()
    notifier = TicketNotifier(loop.rt, parse_config(json.dumps({
        "channels": [{"name": "noc", "type": "webhook", "url": hook.url, "allow_private": True}],
        "routes": [], "ticket_routes": [{"name": "reopens", "events": ["reopened"], "channels": ["noc"]}],
    }), file="notify.yaml"))  # fmt: skip
    service.OUTBOX["notifications"] = notifier.enqueue
    try:
        tid = loop.resolved_and_cleared()
        push_config(loop.lab, [f"interface {loop.interface}", "shutdown"])  # someone shut the customer's port
        result = loop.tickets.run_once()
        assert (result.verified, result.reopened) == ([], [tid])
        ticket = loop.ticket(tid)
        assert (ticket.state, ticket.reopen_count) == ("acknowledged", 1)
        [check] = _checks(loop, tid)
        assert check["result"] == "failed"
        assert check["summary"].endswith(f"failed: sv-acc1 {loop.interface}: oper_status is 'down', expected 'up'")
        [svc] = check["services"]
        assert {"device": "sv-acc1", "check": f"{loop.interface} oper_status is 'up'", "read": "down"} in svc["failed"]
        reopen = loop.timeline(tid)[-1]
        assert reopen.action == "reopen" and reopen.actor == "system"
        assert reopen.detail["reason"].startswith("service verification failed: service ")
        assert f"{loop.interface}: oper_status is 'down', expected 'up' (read 'down')" in reopen.detail["reason"]
        assert notifier.deliver_due() == (1, 0)
        [(_headers, body)] = hook.requests
        sent = json.loads(body)
        assert sent["reason"] == "reopened" and "oper_status is 'down'" in sent["detail"]["reason"]
        with transaction(loop.rt.sessions) as session:
            rows = session.scalars(select(TicketNotification).where(TicketNotification.ticket_id == tid)).all()
            assert [r.reason for r in rows] == ["reopened"]
    finally:
        service.OUTBOX.pop("notifications", None)
        hook.close()


def test_a_removed_vlan_reopens_with_the_show_output_read(loop: Loop) -> None:
    tid = loop.resolved_and_cleared()
    push_config(loop.lab, [f"interface {loop.interface}", "no switchport access vlan 120"])
    assert loop.tickets.run_once().reopened == [tid]
    [check] = _checks(loop, tid)
    [svc] = check["services"]
    [failed] = svc["failed"]  # the port is up and described: only the VLAN check fails
    assert failed["check"] == (
        f"'show running-config interface {loop.interface}' has a line matching '^ switchport access vlan 120$'"
    )
    assert "description ACME-42 BIA" in failed["read"] and "switchport access vlan" not in failed["read"]
    reason = loop.timeline(tid)[-1].detail["reason"]
    assert "no line matches '^ switchport access vlan 120$'" in reason


def test_an_unreachable_device_is_retried_then_the_ticket_reopens_saying_so(
    loop: Loop, lab_ssh: Any, transports: list[Any]
) -> None:
    tid = loop.resolved_and_cleared()
    lab_ssh.stop(loop.lab.name)  # SSH refused
    for t in transports:
        t.close()  # SNMP silent
    attempts = loop.tickets.policy.service_check_attempts
    for attempt in range(1, attempts):
        result = loop.tickets.run_once()
        assert (result.service_checked, result.verified, result.reopened) == ([tid], [], [])
        assert loop.ticket(tid).state == "resolved"
        assert loop.tickets.run_once().service_checked == []  # the retry is not due yet
        loop.frozen.advance(loop.tickets.policy.service_check_retry_s)
    assert loop.tickets.run_once().reopened == [tid]
    checks = _checks(loop, tid)
    assert [(c["result"], c["attempt"]) for c in checks] == [("unchecked", n) for n in range(1, attempts + 1)]
    problems = checks[0]["services"][0]["problems"]
    assert any(p.startswith("sv-acc1: SSH:") for p in problems)
    assert any(p.startswith("sv-acc1: SNMP:") for p in problems)
    reason = loop.timeline(tid)[-1].detail["reason"]
    assert reason.startswith(f"service verification could not run in {attempts} attempts: service ")
    assert loop.ticket(tid).state == "acknowledged"


def test_without_service_verification_the_alarms_alone_verify(loop: Loop) -> None:
    loop.tickets.policy = replace(loop.tickets.policy, verify_services=False)
    tid = loop.resolved_and_cleared()
    push_config(loop.lab, [f"interface {loop.interface}", "shutdown"])
    assert loop.tickets.run_once().verified == [tid]  # the shut port is not looked at
    assert _checks(loop, tid) == []


@pytest.mark.parametrize(
    ("raw", "field", "expected"),
    [
        ("yes", "verify_services", "true, false or a mapping {enabled, attempts, retry_s}"),
        ({"attempts": 0}, "verify_services.attempts", "an integer 1..100"),
        ({"retry_s": -1}, "verify_services.retry_s", "a number of seconds 0..86400"),
        ({"enabled": "on"}, "verify_services.enabled", "true or false"),
        ({"tries": 3}, "verify_services.tries", "one of enabled, attempts, retry_s"),
    ],
)
def test_a_bad_verify_services_policy_names_the_field(raw: Any, field: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_policy({"verify_services": raw}, source="policy.yaml")
    assert err.value.field == field and str(err.value.detail) == f"policy.yaml: {field}: expected {expected}"


def test_a_customer_reported_fault_is_verified_on_its_service(loop: Loop) -> None:
    """No alarm at all: the ticket affects the service its fault report names. The VLAN is missing
    (the customer's complaint); a repair that does not put it back reopens, one that does verifies."""
    push_config(loop.lab, [f"interface {loop.interface}", "no switchport access vlan 120"])
    with transaction(loop.rt.sessions) as session:
        [sid] = session.scalars(select(ServiceInstance.id).where(ServiceInstance.customer == "ACME")).all()
        record = service_inventory.customer_service(session, customer="ACME", service_id=sid)
        report = desk.check_report({"symptom": "no traffic", "contact": "+41 00", "channel": "phone"})
        outcome = desk.report_fault(session, policy=loop.tickets.policy, service=record, report=report,
                                    customer_ref="", actor=Actor("desk", "servicedesk"), now=clock.now())  # fmt: skip
        tid = outcome.ticket.id
        assert not outcome.correlated
    loop.act(tid, "acknowledge", NOC)
    loop.repair(tid)  # ... but nobody put the VLAN back
    assert loop.tickets.run_once().service_checked == []  # the hold-down holds for a customer's ticket too
    loop.frozen.advance(loop.rt.settings.ticket_hold_down_s)
    assert loop.tickets.run_once().reopened == [tid]
    assert "no line matches '^ switchport access vlan 120$'" in loop.timeline(tid)[-1].detail["reason"]

    push_config(loop.lab, [f"interface {loop.interface}", "switchport access vlan 120"])
    loop.repair(tid)
    loop.frozen.advance(loop.rt.settings.ticket_hold_down_s)
    assert loop.tickets.run_once().verified == [tid]
    checks = _checks(loop, tid)
    assert [(c["result"], c["attempt"]) for c in checks] == [("failed", 1), ("passed", 1)]  # counted per resolution
    assert [c["services"][0]["service_id"] for c in checks] == [sid, sid]


def test_a_ticket_changed_while_its_devices_are_read_is_left_alone(loop: Loop) -> None:
    """The devices are read between two transactions: the NOC can reopen the ticket meanwhile (on
    SQLite that write would wait for the lock if a transaction were held), and then the outcome of
    the stale check writes nothing."""
    tid = loop.resolved_and_cleared()
    verifier = ServiceVerifier(loop.rt)

    def checker(service_ids: Any) -> Any:
        loop.act(tid, "reopen", NOC, reason="customer says still down")
        return verifier(service_ids)

    loop.tickets.service_checker = checker
    result = loop.tickets.run_once()
    assert (result.service_checked, result.verified, result.reopened) == ([tid], [], [])
    ticket = loop.ticket(tid)
    assert (ticket.state, ticket.reopen_count) == ("acknowledged", 1)
    assert _checks(loop, tid) == []
    assert [e.actor for e in loop.timeline(tid) if e.action == "reopen"] == ["nina"]


def test_a_junos_service_whose_description_was_deleted_reopens(junos_loop: Loop) -> None:
    loop = junos_loop
    tid = loop.resolved_and_cleared()
    push_config(loop.lab, [f"delete interfaces {loop.interface} description"])
    assert loop.tickets.run_once().reopened == [tid]
    [check] = _checks(loop, tid)
    [svc] = check["services"]
    assert (svc["service_type"], svc["passed"]) == ("l2_vlan", [])
    assert svc["failed"] == [{"device": "sv-acc1", "check": f"{loop.interface} if_alias is 'ACME L2 220'", "read": ""}]
    reason = loop.timeline(tid)[-1].detail["reason"]
    assert f"{loop.interface}: if_alias is '', expected 'ACME L2 220' (read '')" in reason


def test_a_terminated_service_is_not_checked(loop: Loop) -> None:
    tid = loop.resolved_and_cleared()
    with transaction(loop.rt.sessions) as session:
        [instance] = session.scalars(select(ServiceInstance)).all()
        instance.state = "terminated"  # as a terminate order leaves it (its port may be shut now)
    push_config(loop.lab, [f"interface {loop.interface}", "shutdown"])
    assert loop.tickets.run_once().verified == [tid]
    [check] = _checks(loop, tid)
    assert check["result"] == "passed" and check["services"][0]["outcome"] == "skipped"
    assert check["summary"].endswith("skipped: service is terminated, nothing to verify")
