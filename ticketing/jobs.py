"""The ticketing service: the alarm bus subscriber and the periodic timers.

The alarm bus calls ``on_alarm_changes`` after each alarm commit, in the engine's thread;
it only queues the changes and wakes this service's worker, so the alarm engine never
waits on ticket work. Each worker round (``run_once``) runs in its own transaction:
correlated children attach to their root's ticket, alarms that qualify open tickets,
resolved tickets are verified after the hold-down or reopened, SLA clocks advance.
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
from faultloop.events import AlarmChange
from faultloop.leader import Leadership, NotLeader, fenced_transaction
from faultloop.runtime import Runtime
from faultloop.worker import WorkerThread
from ticketing import metrics, service
from ticketing.policy import Policy, load_policy

log = logging.getLogger("faultloop.ticketing")


class TicketingService:
    name = "ticketing"

    def __init__(self, rt: Runtime, *, policy: Policy | None = None, leadership: Leadership | None = None) -> None:
        self.rt = rt
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
        try:
            with fenced_transaction(self.rt.sessions, self.leadership) as session:
                result = self._tick(session, changes, now)
        except NotLeader as exc:
            log.warning("ticket round not written: %s", exc)
            return service.TickResult([], [], [], [])
        self._rounds += 1
        if self._rounds % 720 == 1:
            cutoff = now - timedelta(hours=s.ticket_idempotency_retention_h)
            with write_transaction(self.rt.sessions) as session:
                service.purge_idempotency(session, older_than=cutoff)
        return result

    def _tick(self, session: Session, changes: list[AlarmChange], now: datetime) -> service.TickResult:
        s = self.rt.settings
        result = service.tick(session, policy=self.policy, now=now, hold_down_s=s.ticket_hold_down_s,
                              verify_timeout_s=s.ticket_verify_timeout_s,
                              reopen_window_s=s.ticket_reopen_window_s)  # fmt: skip
        if changes:  # children correlated to a root whose ticket exists (or was just opened above)
            service.on_alarm_changes(session, changes, now=now, policy=self.policy)
        return result

    async def start(self) -> None:
        metrics.OPEN.sessions = self.rt.sessions
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()
