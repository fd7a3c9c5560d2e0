"""The ticketing service: the alarm bus subscriber and the periodic timers.

The alarm bus calls ``on_alarm_changes`` after each alarm commit, in the engine's thread;
it only queues the changes and wakes this service's worker, so the alarm engine never
waits on ticket work. Each worker round (``run_once``) runs in its own transaction:
correlated children attach to their root's ticket, alarms that qualify open tickets,
resolved tickets are verified after the hold-down or reopened, SLA clocks advance. A resolved
ticket that affected customer services is verified only once they pass their catalog checks
again: the checker (handed in by the composition root) reads the devices after the round's
transaction committed, and a second short transaction writes the outcome (``ticketing.verify``).
Everything reads ``faultloop.clock``; tests call ``run_once`` after moving a FrozenClock.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from faultloop import clock
from faultloop.db import write_transaction
from faultloop.errors import DomainError
from faultloop.events import AlarmChange
from faultloop.leader import Leadership, NotLeader, fenced_transaction
from faultloop.runtime import Runtime
from faultloop.worker import WorkerThread
from ticketing import metrics, service, verify
from ticketing.models import Ticket
from ticketing.policy import Policy, load_policy
from ticketing.verify import CheckDue, ServiceChecker

log = logging.getLogger("faultloop.ticketing")


class TicketingService:
    name = "ticketing"

    def __init__(
        self, rt: Runtime, *, policy: Policy | None = None, leadership: Leadership | None = None,
        service_checker: ServiceChecker | None = None,
    ) -> None:  # fmt: skip
        self.rt = rt
        # None: resolved tickets are verified on their alarms alone (as with verify_services: false)
        self.service_checker = service_checker
        self._due: list[CheckDue] = []
        # None: the only ticketing loop (tests, commands); otherwise it runs only while this instance leads
        self.leadership = leadership
        self.policy = policy or load_policy(rt.settings.ticket_policy_file)
        self._changes: deque[AlarmChange] = deque()
        self._lock = threading.Lock()
        self._worker = WorkerThread(
            "ticketing", self.run_once, interval_s=lambda: rt.settings.ticket_tick_s, log=log,
            failure="ticketing round failed",
        )  # fmt: skip
        self._rounds = 0

    # the alarm bus subscriber (after the alarm transaction committed)
    def on_alarm_changes(self, changes: Sequence[AlarmChange]) -> None:
        with self._lock:
            self._changes.extend(changes)
        self._worker.wake()

    def run_once(self) -> service.TickResult:
        with self._lock:
            changes = list(self._changes)
            self._changes.clear()
        s = self.rt.settings
        now = clock.now()
        if self.leadership is not None and not self.leadership.leading:
            # the leader's engine published these, and the leader's ticketing handles them
            return service.TickResult([], [], [], [])
        self._due = []
        try:
            with fenced_transaction(self.rt.sessions, self.leadership) as session, service.alarm_notes_last(session):
                result = self._tick(session, changes, now)
        except NotLeader as exc:
            log.warning("ticket round not written: %s", exc)
            return service.TickResult([], [], [], [])
        if self._due:  # after the commit: the devices are read outside any transaction
            self._check_services(self._due, result)
        self._rounds += 1
        if self._rounds % 720 == 1:
            cutoff = now - timedelta(hours=s.ticket_idempotency_retention_h)
            with write_transaction(self.rt.sessions) as session:
                service.purge_idempotency(session, older_than=cutoff)
        return result

    def _tick(self, session: Session, changes: list[AlarmChange], now: datetime) -> service.TickResult:
        s = self.rt.settings
        checking = self.service_checker is not None and self.policy.verify_services
        result = service.tick(session, policy=self.policy, now=now, hold_down_s=s.ticket_hold_down_s,
                              verify_timeout_s=s.ticket_verify_timeout_s, reopen_window_s=s.ticket_reopen_window_s,
                              defer_verify=self._defer_verify if checking else None)  # fmt: skip
        if changes:  # children correlated to a root whose ticket exists (or was just opened above)
            service.on_alarm_changes(session, changes, now=now, policy=self.policy)
        return result

    def _defer_verify(self, session: Session, ticket: Ticket, now: datetime) -> bool:
        """A ticket that affected services waits for their checks (queued for after the commit)."""
        services = verify.affected_services(session, ticket.id)
        if not services:
            return False
        check = verify.due(session, self.policy, ticket, services, now)
        if check is not None:
            self._due.append(check)
        return True

    def _check_services(self, due: list[CheckDue], result: service.TickResult) -> None:
        assert self.service_checker is not None
        wanted = sorted({sid for d in due for sid in d.service_ids})
        no_answer = verify.NO_ANSWER
        try:  # one call for the round: a device shared by several tickets is read once
            reports = list(self.service_checker(wanted))
        except Exception as exc:  # counts as a round that could not check (bounded by the attempts)
            log.exception("service checks failed for tickets %s", [d.ticket_id for d in due])
            reports, no_answer = [], f"the service checks failed: {type(exc).__name__}"
        now = clock.now()
        outcomes: list[str] = []
        try:
            with fenced_transaction(self.rt.sessions, self.leadership) as session:
                for d in due:
                    reports_of = [r for r in reports if r.service_id in d.service_ids]
                    try:
                        with session.begin_nested():
                            outcome = verify.apply(
                                session, policy=self.policy, due=d, reports=reports_of, now=now,
                                hold_down_s=self.rt.settings.ticket_hold_down_s, no_answer=no_answer,
                            )  # fmt: skip
                    except DomainError as exc:  # e.g. changed meanwhile by someone else: the next round decides
                        log.warning("service check outcome of ticket %d not written: %s", d.ticket_id, exc)
                        continue
                    outcomes.append(outcome)
                    result.service_checked.append(d.ticket_id)
                    if outcome == "verified":
                        result.verified.append(d.ticket_id)
                    elif outcome == "reopened":
                        result.reopened.append(d.ticket_id)
        except NotLeader as exc:
            log.warning("service check outcomes not written: %s", exc)
            return
        for outcome in outcomes:
            metrics.SERVICE_CHECKS.labels(outcome=outcome).inc()

    async def start(self) -> None:
        metrics.OPEN.sessions = self.rt.sessions
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()
