"""Ticket metrics on the process registry: open tickets (read from the database at scrape time),
SLA breaches, time to acknowledge and to restore."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from faultloop.metrics import REGISTRY

CREATED = Counter("faultloop_tickets_created_total", "Tickets opened", ["source", "priority"], registry=REGISTRY)
SLA_BREACHES = Counter(
    "faultloop_ticket_sla_breaches_total", "SLA targets breached", ["clock", "priority"], registry=REGISTRY
)
SELF_HEALED = Counter(
    "faultloop_tickets_self_healed_total", "Tickets closed as cleared before dispatch", ["priority"], registry=REGISTRY
)
SERVICE_CHECKS = Counter(
    "faultloop_ticket_service_checks_total",
    "Service verification rounds of resolved tickets by outcome (verified, reopened, retry, stale)",
    ["outcome"],
    registry=REGISTRY,
)
_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200)
TIME_TO_ACK = Histogram(
    "faultloop_ticket_time_to_acknowledge_seconds", "Ticket created -> acknowledged", ["priority"],
    buckets=_BUCKETS, registry=REGISTRY,
)  # fmt: skip
TIME_TO_RESTORE = Histogram(
    "faultloop_ticket_time_to_restore_seconds", "Ticket created -> resolved", ["priority"],
    buckets=_BUCKETS, registry=REGISTRY,
)  # fmt: skip


class _OpenTickets(Collector):
    """faultloop_tickets_open{state,priority}: one GROUP BY per scrape (the database is the truth)."""

    def __init__(self) -> None:
        self.sessions: sessionmaker[Session] | None = None

    def collect(self) -> Any:
        from ticketing.models import Ticket
        from ticketing.policy import OPEN_STATES

        family = GaugeMetricFamily("faultloop_tickets_open", "Open tickets by state and priority",
                                   labels=["state", "priority"])  # fmt: skip
        if self.sessions is not None:
            try:
                with self.sessions() as session:
                    rows = session.execute(
                        select(Ticket.state, Ticket.priority, func.count())
                        .where(Ticket.state.in_(OPEN_STATES))
                        .group_by(Ticket.state, Ticket.priority)
                    ).all()
            except Exception:  # a scrape during a database outage shows no series rather than failing
                rows = []
            for state, priority, n in rows:
                family.add_metric([state, priority], n)
        yield family


OPEN = _OpenTickets()
REGISTRY.register(OPEN)
