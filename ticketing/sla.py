"""SLA clocks: response (until acknowledged) and restore (until resolved), with pauses.

Each clock is an accumulator advanced from ``sla_checked_at`` to now on every change and
on every timer tick, counting business seconds when the ticket's target says so, and
nothing while the ticket waits on others (``SLA_PAUSED_STATES``). An accumulator can only
grow, so elapsed time is never negative whatever order the updates come in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ticketing.models import Ticket
from ticketing.policy import SLA_PAUSED_STATES, SLA_STOPPED_STATES, Policy

WARN_AT = 0.8
# what ``advance`` writes when no threshold is crossed: bookkeeping, not a change of the ticket
CLOCK_COLUMNS = ("sla_checked_at", "response_elapsed_s", "restore_elapsed_s")


@dataclass(frozen=True, slots=True)
class SlaEvent:
    ticket_id: int
    clock: str  # response, restore
    kind: str  # warning, breach
    priority: str
    elapsed_s: float
    target_s: float


def running_seconds(policy: Policy, ticket: Ticket, start: datetime, end: datetime) -> float:
    if end <= start:
        return 0.0
    if ticket.business_hours and policy.business_hours is not None:
        return policy.business_hours.seconds_between(start, end)
    return (end - start).total_seconds()


def advance(policy: Policy, ticket: Ticket, now: datetime) -> list[SlaEvent]:
    """Advance the clocks of ``ticket`` (in its CURRENT state) up to ``now``; warnings/breaches crossed."""
    start = ticket.sla_checked_at
    if now <= start:
        return []
    ticket.sla_checked_at = now
    if ticket.state in SLA_STOPPED_STATES or ticket.state in SLA_PAUSED_STATES:
        return []
    delta = running_seconds(policy, ticket, start, now)
    events: list[SlaEvent] = []
    if ticket.acknowledged_at is None:
        ticket.response_elapsed_s += delta
        events += _thresholds(ticket, "response", ticket.response_elapsed_s, ticket.response_target_s)
    ticket.restore_elapsed_s += delta
    events += _thresholds(ticket, "restore", ticket.restore_elapsed_s, ticket.restore_target_s)
    return events


def _thresholds(ticket: Ticket, clock: str, elapsed: float, target: float) -> list[SlaEvent]:
    out: list[SlaEvent] = []
    warned, breached = f"{clock}_warned", f"{clock}_breached"
    if not getattr(ticket, warned) and elapsed >= WARN_AT * target:
        setattr(ticket, warned, True)
        out.append(SlaEvent(ticket.id, clock, "warning", ticket.priority, elapsed, target))
    if not getattr(ticket, breached) and elapsed >= target:
        setattr(ticket, breached, True)
        out.append(SlaEvent(ticket.id, clock, "breach", ticket.priority, elapsed, target))
    return out


def remaining(ticket: Ticket) -> dict[str, float | None]:
    return {
        "response_remaining_s": None
        if ticket.acknowledged_at is not None
        else ticket.response_target_s - ticket.response_elapsed_s,
        "restore_remaining_s": None
        if ticket.state in SLA_STOPPED_STATES
        else ticket.restore_target_s - ticket.restore_elapsed_s,
    }
