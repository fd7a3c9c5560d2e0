"""Service verification before closure: a resolved ticket that affected customer services is
verified only when its alarms stayed clear for the hold-down AND each of those services passes
its catalog checks again on the live devices.

Ticketing never imports provisioning (the two are independent): the composition root hands the
ticketing service a ``ServiceChecker`` (``provisioning.verify.ServiceVerifier``), known here only
by its shape. One round, run by ``ticketing.jobs.TicketingService``:

1. in the tick's transaction, ``due`` picks the resolved tickets whose hold-down passed and that
   affect services (the impact of their alarms, and the service of a customer's fault report);
   they stay resolved;
2. after that transaction commits, the checker reads the devices (network I/O, never inside a
   transaction);
3. in a new short transaction, ``apply`` writes one ``service_check`` timeline entry per ticket
   (every service's outcome, the checks that passed, what a failed check read) and then:
   every service passed -> ``verify``; a check failed -> ``reopen`` with the failed check and
   what was read as the reason (the reopen notification goes through the ticket outbox, as any
   reopen); a device could not be read -> stays resolved and is tried again after
   ``verify_services.retry_s``, and after ``verify_services.attempts`` rounds it reopens saying so.
   A ticket someone changed meanwhile (reopened, verified by hand, resolved again) or whose alarm
   came back is left alone: the next round decides again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alarms import queries as alarm_queries
from ticketing.models import FaultReport, Ticket, TicketAlarm, TicketEvent
from ticketing.policy import Policy
from ticketing.service import SYSTEM, _record, transition

ACTION = "service_check"  # the timeline entry of one verification round


class CheckRecord(Protocol):
    """One expectation of a service's catalog checks, as read from a device."""

    @property
    def device(self) -> str: ...
    @property
    def check(self) -> str: ...  # what was expected, in words
    @property
    def ok(self) -> bool: ...
    @property
    def read(self) -> str: ...  # what the device said
    @property
    def problem(self) -> str: ...  # the failure in words ("" when ok)


class ServiceReport(Protocol):
    """The verdict on one service: ``outcome`` passed, failed, unchecked (a device could not be
    read: ``problems`` say why) or skipped (nothing to verify: terminated or gone)."""

    @property
    def service_id(self) -> int: ...
    @property
    def customer(self) -> str: ...
    @property
    def service_type(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def checks(self) -> Sequence[CheckRecord]: ...
    @property
    def problems(self) -> Sequence[str]: ...


class ServiceChecker(Protocol):
    """Runs the catalog checks of these services against the live devices; one report per id.
    Called outside any transaction; a device that cannot be read is an ``unchecked`` report,
    never an exception."""

    def __call__(self, service_ids: Sequence[int]) -> Sequence[ServiceReport]: ...


NO_ANSWER = "the service checker gave no answer for this service"


@dataclass(frozen=True)
class _NoAnswer:
    service_id: int
    problems: tuple[str, ...]
    customer: str = ""
    service_type: str = ""
    outcome: str = "unchecked"
    checks: tuple[CheckRecord, ...] = ()


@dataclass(frozen=True)
class CheckDue:
    """A resolved ticket whose services are to be checked this round."""

    ticket_id: int
    resolved_at: datetime
    service_ids: tuple[int, ...]
    attempt: int  # this round's number since the ticket was resolved (1 = first)


def affected_services(session: Session, ticket_id: int) -> list[int]:
    """Ids of the customer services the ticket affects: its alarms' impact (as the engine last
    computed it, kept once they cleared) and the services of the fault reports it carries."""
    alarm_ids = list(session.scalars(select(TicketAlarm.alarm_id).where(TicketAlarm.ticket_id == ticket_id)))
    ids = {r.service_id for r in alarm_queries.impact(session, alarm_ids)}
    ids.update(session.scalars(select(FaultReport.service_id).where(FaultReport.ticket_id == ticket_id)))
    return sorted(ids)


def rounds(session: Session, ticket: Ticket) -> list[TicketEvent]:
    """The service check entries since the ticket was (last) resolved, oldest first (by entry, not
    by time: a reopen and a new resolution may carry the very time of the last check)."""
    resolved = session.scalar(
        select(func.max(TicketEvent.id)).where(TicketEvent.ticket_id == ticket.id, TicketEvent.action == "resolve")
    )
    query = select(TicketEvent).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.action == ACTION, TicketEvent.id > (resolved or 0)
    )
    return list(session.scalars(query.order_by(TicketEvent.id)))


def due(session: Session, policy: Policy, ticket: Ticket, service_ids: Sequence[int], now: datetime) -> CheckDue | None:
    """The check to run now, or None while the retry after an unreadable device is not yet due."""
    earlier = rounds(session, ticket)
    if earlier and now - earlier[-1].at < timedelta(seconds=policy.service_check_retry_s):
        return None
    resolved_at = ticket.resolved_at or now
    return CheckDue(ticket.id, resolved_at, tuple(service_ids), attempt=len(earlier) + 1)


def _label(report: ServiceReport) -> str:
    what = " ".join(p for p in (report.customer, report.service_type) if p)
    return f"service {report.service_id}" + (f" ({what})" if what else "")


def _summary(report: ServiceReport) -> str:
    """One line per service for the timeline: what passed, or what failed, or why nothing could be read."""
    if report.outcome == "failed":
        return f"{_label(report)} failed: " + ", ".join(f"{c.device} {c.problem or c.check}" for c in report.checks
                                                       if not c.ok)  # fmt: skip
    if report.outcome in ("unchecked", "skipped"):
        return f"{_label(report)} {report.outcome}: {', '.join(report.problems)}"
    return f"{_label(report)} passed {sum(1 for c in report.checks if c.ok)} checks"


def _detail(report: ServiceReport) -> dict[str, Any]:
    return {
        "service_id": report.service_id,
        "customer": report.customer,
        "service_type": report.service_type,
        "outcome": report.outcome,
        "passed": [f"{c.device}: {c.check}" for c in report.checks if c.ok],
        "failed": [{"device": c.device, "check": c.check, "read": c.read} for c in report.checks if not c.ok],
        "problems": list(report.problems),
    }


def apply(
    session: Session, *, policy: Policy, due: CheckDue, reports: Sequence[ServiceReport], now: datetime,
    hold_down_s: float, no_answer: str = NO_ANSWER,
) -> str:  # fmt: skip
    """Write the round's outcome for one ticket: ``verified``, ``reopened``, ``retry`` (a device
    could not be read; attempts left) or ``stale`` (the ticket moved on meanwhile: nothing written).
    A service without a report counts as unchecked, for ``no_answer``."""
    ticket = session.get(Ticket, due.ticket_id)
    if ticket is None or ticket.state != "resolved" or ticket.resolved_at != due.resolved_at:
        return "stale"
    links = session.scalars(select(TicketAlarm.alarm_id).where(TicketAlarm.ticket_id == ticket.id))
    if any(a.state == "active" for a in alarm_queries.alarms(session, links).values()):
        return "stale"  # the fault came back while the devices were read: the tick handles it
    by_id = {r.service_id: r for r in reports}
    answers: list[ServiceReport] = [by_id.get(sid) or _NoAnswer(sid, (no_answer,)) for sid in due.service_ids]
    failed = [r for r in answers if r.outcome == "failed"]
    unchecked = [r for r in answers if r.outcome == "unchecked"]
    result = "failed" if failed else "unchecked" if unchecked else "passed"
    passed_checks = sum(1 for r in answers for c in r.checks if c.ok)
    summary = "; ".join(_summary(r) for r in answers)
    _record(session, ticket, actor=SYSTEM, action=ACTION, now=now, result=result, summary=summary[:1000],
            attempt=due.attempt, attempts=policy.service_check_attempts,
            services=[_detail(r) for r in answers])  # fmt: skip
    if failed:
        reasons = [f"{_label(r)}: {c.device} {c.problem or c.check}{_read(c)}" for r in failed for c in r.checks
                   if not c.ok]  # fmt: skip
        _reopen(session, policy, ticket, f"service verification failed: {'; '.join(reasons)}", now)
        return "reopened"
    if unchecked:
        problems = "; ".join(f"{_label(r)}: {', '.join(r.problems)}" for r in unchecked)
        if due.attempt >= policy.service_check_attempts:
            reason = f"service verification could not run in {due.attempt} attempts: {problems}"
            _reopen(session, policy, ticket, reason, now)
            return "reopened"
        session.flush()
        return "retry"
    services = len([r for r in answers if r.outcome == "passed"])
    how = f"linked alarms clear for {hold_down_s:.0f}s; {passed_checks} service checks passed on {services} service(s)"
    transition(session, policy=policy, ticket_id=ticket.id, action="verify", actor=SYSTEM, now=now,
               data={"how": how[:200]})  # fmt: skip
    return "verified"


def _read(check: CheckRecord) -> str:
    """What was read, for the reopen reason when it is short (a command's output stays in the entry)."""
    if len(check.read) <= 80 and "\n" not in check.read:
        return f" (read {check.read!r})"
    return " (the output read is in the service_check entry)"


def _reopen(session: Session, policy: Policy, ticket: Ticket, reason: str, now: datetime) -> None:
    if len(reason) > 500:
        reason = reason[:497] + "..."
    transition(session, policy=policy, ticket_id=ticket.id, action="reopen", actor=SYSTEM, now=now,
               data={"reason": reason})  # fmt: skip
