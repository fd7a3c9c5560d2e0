"""The alarm engine as a background service and the collectors' ``ObservationSink``.

``submit_events`` / ``submit_samples`` only enqueue (never block; a full queue refuses
and counts the drop). One worker thread drains the queue in batches, processes each
batch in ONE transaction, and publishes the resulting ``AlarmChange`` objects on the
bus only after the commit. Each tick it also processes the API's durable event queue
(events stored by POST /api/v1/events), runs the timers, and publishes operator
changes. On any database error the transaction rolls back and the in-memory indexes
are rebuilt from the database, the source of truth. At the leader, the NATS intake hands
its batches over with ``process_claimed``: claimed and processed in one transaction, taking
turns with the worker's rounds on the core's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from alarms import service
from alarms.bus import AlarmBus
from alarms.engine import AlarmCore, EngineConfig
from alarms.errors import RuleError
from alarms.impact import ServiceSource
from alarms.rules import SEVERITY_RANK, RuleSet, load_ruleset
from faultloop import clock
from faultloop.db import transaction, write_transaction
from faultloop.events import AlarmChange, Claim, Event, Sample
from faultloop.leader import Leadership, NotLeader, fenced_transaction
from faultloop.metrics import REGISTRY
from faultloop.runtime import Runtime
from faultloop.worker import WorkerThread

log = logging.getLogger("faultloop.alarms")

EVENTS = Counter("faultloop_alarm_events_processed_total", "Events processed by the alarm engine", registry=REGISTRY)
DROPPED = Counter(
    "faultloop_alarm_observations_dropped_total",
    "Observations refused by the alarm engine",
    ["reason"],
    registry=REGISTRY,
)
FAILURES = Counter("faultloop_alarm_batch_failures_total", "Alarm batches rolled back", registry=REGISTRY)
RULE_RELOADS = Counter(
    "faultloop_alarm_rule_reloads_total", "Reloads of the alarm rules file", ["result"], registry=REGISTRY
)
QUEUE = Gauge("faultloop_alarm_queue_depth", "Observations waiting for the alarm engine", registry=REGISTRY)
BATCH = Histogram(
    "faultloop_alarm_batch_duration_seconds",
    "Time to process and commit one batch",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
    registry=REGISTRY,
)


class _ActiveAlarms(Collector):
    """faultloop_alarms_active{severity}, read from the running engine's index at scrape time."""

    def __init__(self) -> None:
        self.core: AlarmCore | None = None

    def collect(self) -> Any:
        family = GaugeMetricFamily("faultloop_alarms_active", "Active alarms by severity", labels=["severity"])
        counts = dict.fromkeys((s for s in SEVERITY_RANK if s != "cleared"), 0)
        core = self.core
        if core is not None:
            for alarm in list(core.active.values()):
                counts[alarm.severity] = counts.get(alarm.severity, 0) + 1
        for severity, n in counts.items():
            family.add_metric([severity], n)
        yield family
        services = GaugeMetricFamily(
            "faultloop_services_impaired", "Customer services degraded or down (service state)", labels=["state"]
        )
        states = {"degraded": 0, "down": 0}
        if core is not None:
            for state, _row in list(core.service_states.values()):
                states[state] = states.get(state, 0) + 1
        for state, n in states.items():
            services.add_metric([state], n)
        yield services


ACTIVE = _ActiveAlarms()
REGISTRY.register(ACTIVE)


OUTBOX_FAILURES = Counter(
    "faultloop_alarm_outbox_failures_total",
    "Alarm batches whose outbox hook (notifications) failed; the changes committed without its rows",
    ["outbox"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "faultloop_alarm_batch_retries_total", "Batches put back for a retry after the database refused them",
    registry=REGISTRY,
)

FAILED: Any = object()  # what _in_transaction returns when the work rolled back


class EngineRefused(Exception):
    """The database refused a batch handed to ``process_claimed``: nothing of it was written."""

RETRY_BASE_S = 0.5  # a refused batch waits 0.5 s, 1 s, 2 s, ... up to RETRY_MAX_S before the next try
RETRY_MAX_S = 15.0

# Writes what must not be lost with an alarm change (a notification) in the change's own transaction.
Outbox = Callable[[Session, Sequence[AlarmChange]], None]


def engine_config(rt: Runtime) -> EngineConfig:
    s = rt.settings
    return EngineConfig(
        flap_threshold=s.alarm_flap_threshold,
        flap_window_s=s.alarm_flap_window_s,
        settle_s=s.alarm_settle_s,
        poller_devices=tuple(h.strip() for h in s.alarm_poller_devices.split(",") if h.strip()),
    )


def configured_rules(rt: Runtime) -> RuleSet:
    path = rt.settings.alarm_rules_file
    return load_ruleset([path] if path else [])


class AlarmEngine:
    name = "alarms"

    def __init__(
        self, rt: Runtime, bus: AlarmBus, *, rules: RuleSet | None = None, leadership: Leadership | None = None,
        services: ServiceSource | None = None,
    ) -> None:  # fmt: skip
        self.rt = rt
        self.bus = bus
        # None: this engine is the only one (tests, commands). Otherwise it processes only while this
        # instance leads, every write transaction fenced (faultloop.leader).
        self.leadership = leadership
        self._loaded_epoch: int | None = None
        # services: where the customer services come from (impact); None: alarms carry no impact
        self.core = AlarmCore(rules or configured_rules(rt), engine_config(rt), services=services)
        self._queue: deque[tuple[str, Sequence[Event] | Sequence[Sample], int]] = deque()  # kind, items, attempts
        self._queued = 0
        self._lock = threading.Lock()
        # The core's indexes are one thread's at a time: the worker's rounds and the batches the
        # leader's NATS intake processes at once (``process_claimed``) take turns on this lock.
        self._core_lock = threading.RLock()
        self._worker = WorkerThread(
            "alarm-engine", self.run_once, interval_s=lambda: rt.settings.alarm_tick_s, log=log,
            failure="alarm engine round failed",
        )  # fmt: skip
        self._outboxes: list[tuple[str, Outbox]] = []
        self._retry_at: datetime | None = None  # a refused batch is not tried again before this (faultloop.clock)
        self._failures = 0  # consecutive refused batches (the back-off's exponent)
        # Events per transaction, at most alarm_batch_size: halved when a batch rolls back (a round
        # that outlasted the fence's idle-in-transaction timeout, twice the lease, is ended by the
        # server: retrying the same size would fail forever) or runs past the round budget, doubled
        # back while batches finish well within it.
        self._limit: int | None = None
        self._loaded = False
        self._last_topology = 0.0
        self._last_purge = 0.0
        self._rules_mtime = self._mtime()
        self._windows_at: datetime | None = None  # maintenance windows last read (faultloop.clock)

    def add_outbox(self, name: str, outbox: Outbox) -> None:
        """Run ``outbox`` on every batch of changes inside the transaction that makes them."""
        self._outboxes.append((name, outbox))

    # ---- ObservationSink ------------------------------------------------------------------

    def submit_events(self, events: Sequence[Event]) -> bool:
        return self._submit("events", events)

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        return self._submit("samples", samples)

    def _submit(self, kind: str, items: Sequence[Any]) -> bool:
        if not items:
            return True
        with self._lock:
            if self._queued + len(items) > self.rt.settings.alarm_queue_size:
                DROPPED.labels(reason="queue_full").inc(len(items))
                return False
            self._queue.append((kind, list(items), 0))
            self._queued += len(items)
            QUEUE.set(self._queued)
        self._worker.wake()
        return True

    # ---- DurableSink: findings stored in the producer's own transaction ----------------------

    def store_events(self, session: Session, events: Sequence[Event]) -> None:
        if events:
            service.store_events(session, events, now=clock.now())

    def events_stored(self) -> None:
        self._worker.wake()

    # ---- ClaimingSink: the leader's intake processes its batches at once ----------------------

    def takes_claimed(self) -> bool:
        return self.leadership is None or self.leadership.leading

    def process_claimed(self, claim: Claim) -> bool:
        """The leader's NATS intake: claim its messages and process their events in ONE fenced
        transaction, stored as processed events (no write to the durable queue read back in a
        later round). False when this instance does not lead (then, or once fenced, nothing was
        written); ``EngineRefused`` when the database refused the batch."""
        if not self.takes_claimed():
            return False
        with self._core_lock:
            if not self._loaded or (self.leadership is not None and self._loaded_epoch != self.leadership.epoch):
                self.load()
            result = self._in_transaction(lambda s: self._process_claimed(s, claim))
        if result is FAILED:
            if self._stood_down():
                return False
            raise EngineRefused("the alarm batch rolled back")
        return True

    def _process_claimed(self, session: Session, claim: Claim) -> list[AlarmChange]:
        events = list(claim(session))
        if not events:
            return []
        now = clock.now()
        if self._windows_at is None or (now - self._windows_at).total_seconds() >= self.rt.settings.alarm_tick_s:
            self.core.load_windows(session, now)  # as a round does first: windows made a moment ago apply
            self._windows_at = now
        changes = self.core.process(session, events, now)
        EVENTS.inc(len(events))
        return changes

    # ---- Service ----------------------------------------------------------------------------

    async def start(self) -> None:
        import asyncio

        await asyncio.to_thread(self.load)
        ACTIVE.core = self.core
        self._worker.start()

    async def stop(self) -> None:
        import asyncio

        await self._worker.stop()
        # What was queued but not processed is processed now, so a clean stop loses nothing; what the
        # database still refuses then is counted, never dropped silently.
        self._retry_at = None
        await asyncio.to_thread(self.run_once)
        with self._lock:
            left, self._queue, self._queued = self._queued, deque(), 0
        if left:
            DROPPED.labels(reason="shutdown").inc(left)
            log.error("stopped with %d observations the database did not take", left)

    # ---- work ---------------------------------------------------------------------------------

    def load(self) -> None:
        epoch = self.leadership.epoch if self.leadership is not None else None
        with self._core_lock, transaction(self.rt.sessions) as session:
            self.core.load(session, clock.now())
        self._loaded = True
        self._loaded_epoch = epoch
        self._last_topology = time.monotonic()
        log.info("alarm engine loaded %d active alarms", len(self.core.active))

    def reload_rules(self, path: Path | None) -> RuleSet:
        """Validate the whole rule set first; swap it in only if valid (RuleError otherwise)."""
        rules = load_ruleset([path] if path else [])
        with self._lock:
            self.core.replace_rules(rules)
        return rules

    def _mtime(self) -> float | None:
        path = self.rt.settings.alarm_rules_file
        try:
            return path.stat().st_mtime_ns if path else None
        except OSError:
            return None

    def _reload_rules_if_changed(self) -> None:
        """Hot reload of FAULTLOOP_ALARM_RULES_FILE; an invalid file leaves the running rules as they were."""
        mtime = self._mtime()
        if mtime == self._rules_mtime:
            return
        self._rules_mtime = mtime
        try:
            self.reload_rules(self.rt.settings.alarm_rules_file)
        except RuleError as exc:
            RULE_RELOADS.labels(result="invalid").inc()
            log.error("alarm rules not reloaded, the running rules stay: %s", exc)
            return
        RULE_RELOADS.labels(result="ok").inc()
        log.info("alarm rules reloaded from %s", self.rt.settings.alarm_rules_file)

    def run_once(self) -> list[AlarmChange]:
        """Drain the queue, the durable queue and the timers once (the worker's loop body; tests call it)."""
        if self.leadership is not None and not self.leadership.leading:
            self._hand_over()
            return []
        if not self._loaded or (self.leadership is not None and self._loaded_epoch != self.leadership.epoch):
            self.load()  # first round, or newly elected: another leader changed the alarms meanwhile
        self._reload_rules_if_changed()
        published: list[AlarmChange] = []
        # Windows created or deleted through the API a moment ago apply to this round's events.
        self._in_transaction(self._load_windows)
        while self._retry_at is None or clock.now() >= self._retry_at:
            batch = self._take()
            if batch is None:
                break
            started = time.perf_counter()
            result = self._in_transaction(lambda s, b=batch: self._process(s, b[:2]))  # type: ignore[misc]
            self._sized(None if result is FAILED else time.perf_counter() - started)
            if result is FAILED:
                # The database may be out for a while: keep the batch (the queue's bound still holds for
                # new work) and try again after a back-off, for as long as the outage lasts.
                self._requeue(batch)
                self._failures += 1
                delay = min(RETRY_BASE_S * 2 ** (self._failures - 1), RETRY_MAX_S)
                self._retry_at = clock.now() + timedelta(seconds=delay)
                break
            self._failures, self._retry_at = 0, None
            published += result
        published += self._drain_pending()
        if self._stood_down():
            return published
        result = self._in_transaction(lambda s: self.core.tick(s, clock.now()))
        if result is not FAILED:
            published += result
        if self._stood_down():
            return published
        if time.monotonic() - self._last_topology >= self.rt.settings.alarm_topology_refresh_s:
            self._in_transaction(self._reload_topology)
            self._last_topology = time.monotonic()
        if time.monotonic() - self._last_purge >= 3600:
            cutoff = service.retention_cutoff(clock.now(), self.rt.settings.alarm_event_retention_days)
            self._in_transaction(lambda s: service.purge_events(s, older_than=cutoff))
            self._last_purge = time.monotonic()
        return published

    def _load_windows(self, session: Session) -> None:
        now = clock.now()
        self.core.load_windows(session, now)
        self._windows_at = now

    def _reload_topology(self, session: Session) -> None:
        """Links, dependencies and the customer services' resources change outside the engine."""
        self.core.load_topology(session)
        self.core.load_services(session)

    def _stood_down(self) -> bool:
        """This round was fenced (leadership lost in the middle): write nothing more."""
        return self.leadership is not None and not self.leadership.leading

    def _hand_over(self) -> None:
        """Not the leader: what was submitted here goes to the durable queue, which the leader
        processes; samples only feed this engine's thresholds and are dropped (counted)."""
        batch = self._take()
        while batch is not None:
            events, samples, _attempts = batch
            if samples:
                DROPPED.labels(reason="not_leader").inc(len(samples))
            if events:
                try:
                    with write_transaction(self.rt.sessions) as session:
                        service.store_events(session, events, now=clock.now())
                except Exception as exc:
                    log.error("follower could not hand %d events over (%s)", len(events), type(exc).__name__)
                    self._requeue(batch)
                    return
            batch = self._take()
        self._loaded = False

    def _drain_pending(self) -> list[AlarmChange]:
        """The durable queue, batch after batch while full batches come back, for up to one tick (a
        flood drains without waiting a tick per batch); a batch that rolls back is retried at once
        with half the size, down to one event."""
        published: list[AlarmChange] = []
        deadline = time.monotonic() + self.rt.settings.alarm_tick_s  # timers still run once a tick
        while not self._stood_down():
            size = self._size()
            started = time.perf_counter()
            result = self._in_transaction(self._process_pending)
            failed = result is FAILED
            self._sized(None if failed else time.perf_counter() - started)
            if failed:
                if size <= 1 or self._stood_down() or time.monotonic() > deadline:
                    break
                continue
            published += result
            if self.core.last_pending < size or time.monotonic() > deadline:
                break
        return published

    def _process_pending(self, session: Any) -> list[AlarmChange]:
        changes = self.core.process_pending(session, clock.now(), limit=self._size())
        EVENTS.inc(self.core.last_pending)
        return changes

    def _size(self) -> int:
        configured = self.rt.settings.alarm_batch_size
        if self._limit is None or self._limit > configured:
            return configured
        return self._limit

    def _budget_s(self) -> float | None:
        """How long one batch's transaction may take: a quarter of the lease (the fence ends an
        idle transaction after twice the lease); None when not fenced by a lease."""
        lease = getattr(self.leadership, "lease_s", None)
        return float(lease) / 4 if lease else None

    def _sized(self, took_s: float | None) -> None:
        """Adapt the batch size: None: the batch rolled back; otherwise how long it took."""
        size = self._size()
        budget = self._budget_s()
        if took_s is None:
            if size > 1:
                self._limit = max(1, size // 2)
                log.warning("alarm batches shrink to %d events after a rollback", self._limit)
        elif budget is not None and took_s > budget and size > 1:
            self._limit = max(1, size // 2)
        elif (budget is None or took_s < budget / 4) and self._limit is not None:
            self._limit = size * 2 if size * 2 < self.rt.settings.alarm_batch_size else None

    def _take(self) -> tuple[list[Event], list[Sample], int] | None:
        events: list[Event] = []
        samples: list[Sample] = []
        attempts = 0
        with self._lock:
            while self._queue and len(events) + len(samples) < self._size():
                kind, items, tried = self._queue.popleft()
                self._queued -= len(items)
                attempts = max(attempts, tried)
                if kind == "events":
                    events.extend(items)  # type: ignore[arg-type]
                else:
                    samples.extend(items)  # type: ignore[arg-type]
            QUEUE.set(self._queued)
        return (events, samples, attempts) if events or samples else None

    def _requeue(self, batch: tuple[list[Event], list[Sample], int]) -> None:
        events, samples, attempts = batch
        RETRIES.inc()
        if attempts == 0 or attempts % 20 == 0:
            log.warning("%d observations wait for the database (attempt %d)", len(events) + len(samples), attempts + 1)
        with self._lock:
            for kind, items in (("samples", samples), ("events", events)):
                if items:
                    self._queue.appendleft((kind, items, attempts + 1))
                    self._queued += len(items)
            QUEUE.set(self._queued)

    def _process(self, session: Any, batch: tuple[list[Event], list[Sample]]) -> list[AlarmChange]:
        events, samples = batch
        now = clock.now()
        changes = self.core.process(session, events, now) if events else []
        if samples:
            changes += self.core.process_samples(session, samples, now)
        EVENTS.inc(len(events))
        return changes

    def _fill_outboxes(self, session: Session, changes: Sequence[AlarmChange]) -> None:
        for name, outbox in self._outboxes:
            try:
                with session.begin_nested():  # a faulty hook must not take the alarm changes down with it
                    outbox(session, changes)
            except Exception as exc:
                OUTBOX_FAILURES.labels(outbox=name).inc()
                log.error("outbox %s failed for %d alarm changes: %s", name, len(changes), type(exc).__name__)
                if not session.is_active:
                    raise

    def _in_transaction(self, work: Any) -> Any:
        with self._core_lock:
            return self._in_transaction_locked(work)

    def _in_transaction_locked(self, work: Any) -> Any:
        started = time.perf_counter()
        try:
            with fenced_transaction(self.rt.sessions, self.leadership) as session:
                result = work(session)
                if isinstance(result, list) and result:
                    self._fill_outboxes(session, result)
        except NotLeader as exc:
            log.warning("alarm round not written: %s", exc)
            self._loaded = False  # the next leader owns the alarms now; reload when leading again
            return FAILED
        except Exception as exc:
            FAILURES.inc()
            log.error("alarm batch rolled back (%s); rebuilding indexes from the database", type(exc).__name__)
            try:
                self.load()
            except Exception as again:
                log.error("alarm engine reload failed: %s", type(again).__name__)
                self._loaded = False
            return FAILED
        BATCH.observe(time.perf_counter() - started)
        if result is not FAILED and isinstance(result, list):
            self._failures = 0
        if isinstance(result, list):
            self.bus.publish(result)  # after commit, never before
        return result
