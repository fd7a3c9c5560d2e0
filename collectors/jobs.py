"""The SNMP poller as a background service: one timer per device, one engine.

* One ``SnmpClient`` (one UDP socket for v1/v2c, one for v3) for every device.
* One turn per device and interval on the event loop's timers (``TurnScheduler``), with
  jitter (10 % of the interval) so a thousand devices do not fire together; a turn that
  comes while the device's previous poll still runs is skipped and counted (coalesced), so a
  slow poll never piles up; a semaphore bounds how many devices are polled at once.
* A failed poll is retried sooner (1/8, 1/4, 1/2 of the interval), then every interval:
  N consecutive failures are reached quickly, a dead device costs one request per
  interval, and recovery is seen within one interval.
* Results are written in batches (one transaction per flush, in a worker thread);
  events and samples go to the ``ObservationSink`` only after that commit.
* Device state for Prometheus is read from memory at scrape time (``collectors.exposition``:
  text rendered per device once per poll), so a deleted device disappears from ``/metrics``
  at the next inventory sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from collectors import exposition, service
from collectors.collection_set import STANDARD, CollectionSet
from collectors.models import DevicePollState
from collectors.snmp_poll import DeviceTracker, PollResult, poll_device
from devices.snmp import SnmpClient, SnmpConfigError
from devices.targets import snmp_target
from faultloop import clock
from faultloop.db import transaction, write_transaction
from faultloop.errors import InvalidInput
from faultloop.events import DurableSink, Event, ObservationSink
from faultloop.metrics import REGISTRY, add_text_source
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from faultloop.vault import Vault, VaultError
from inventory import queries

log = logging.getLogger(__name__)
JITTER = 0.1
BASELINE_IDS_MAX = 1000

# Fleet-wide poll latency and outcome (ok, timeout, error): bounded labels, unlike the per-device
# gauges below. Its _count by result gives polls and timeouts per minute.
POLL_SECONDS = Histogram(
    "faultloop_snmp_poll_duration_seconds",
    "Time of one device poll (the whole collection set), by result (ok, timeout, error)",
    ["result"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)


def spread(device_id: int) -> float:
    """A stable fraction in [0, 1) per device (the golden-ratio sequence over ids: consecutive ids
    land far apart, any subset of ids spreads evenly)."""
    return (device_id * 0.6180339887498949) % 1.0


def slot_delay(device_id: int, interval_s: float, now_s: float) -> float:
    """Seconds from ``now_s`` (epoch seconds) to the device's own slot in its poll interval: the
    next time whose offset in the interval (counted from the epoch) is ``spread(device_id)`` of it.
    Where a device's first turn falls when nothing says when it was last polled: a thousand devices
    starting together are spread evenly over one interval (about the sustained rate from the first
    second on), not all due at once; and the slot is the same in every process (a collector taking
    a device over, a restart), so it needs no coordination."""
    return (spread(device_id) * interval_s - now_s) % interval_s


def retry_delay(failures: int, interval_s: float) -> float:
    """Seconds until the next poll after ``failures`` consecutive failures (0: healthy)."""
    if failures <= 0:
        return interval_s
    return interval_s / 2 ** max(0, 4 - failures)


@dataclass
class PolledDevice:
    """What the poller keeps per device between inventory syncs; secrets stay Fernet tokens."""

    id: int
    hostname: str
    site: str
    interval_s: float
    timeout_s: float
    retries: int
    address: str = ""
    snmp_version: str | None = None
    snmp_port: int = 161
    snmp_community_enc: bytes | None = None
    snmp_user: str | None = None
    snmp_auth_protocol: str | None = None
    snmp_auth_key_enc: bytes | None = None
    snmp_priv_protocol: str | None = None
    snmp_priv_key_enc: bytes | None = None
    snmp_allow_weak: bool = False


def polled_devices(
    session: Session, settings: Settings, *, collector_group: str | None = None
) -> dict[int, PolledDevice]:
    """Every device with SNMP settings (of one collector group, if given) as the poller keeps it,
    with its own poll interval, timeout and retries where one is set (secrets still tokens)."""
    s = settings
    overrides = {r.device_id: r for r in session.scalars(select(DevicePollState))}
    out = {}
    for d in queries.devices(session, with_snmp=True, collector_group=collector_group):
        o = overrides.get(d.id)
        out[d.id] = PolledDevice(
            id=d.id,
            hostname=d.hostname,
            site=d.site or "",
            interval_s=(o.poll_interval_s if o and o.poll_interval_s else s.poll_interval_s),
            timeout_s=(o.poll_timeout_s if o and o.poll_timeout_s else s.poll_timeout_s),
            retries=(o.poll_retries if o and o.poll_retries is not None else s.poll_retries),
            address=d.address,
            snmp_version=d.snmp_version,
            snmp_port=d.snmp_port,
            snmp_community_enc=d.snmp_community_enc,
            snmp_user=d.snmp_user,
            snmp_auth_protocol=d.snmp_auth_protocol,
            snmp_auth_key_enc=d.snmp_auth_key_enc,
            snmp_priv_protocol=d.snmp_priv_protocol,
            snmp_priv_key_enc=d.snmp_priv_key_enc,
            snmp_allow_weak=d.snmp_allow_weak,
        )
    return out


@dataclass
class _Pending:
    device_id: int
    result: PollResult
    reachable: bool | None
    failures: int
    tracker: DeviceTracker | None = None  # the device's memory after this poll (the collector publishes it)


@dataclass
class PollerStats:
    polls: int = 0
    failures: int = 0
    timeouts: int = 0
    written: int = 0
    dropped_events: int = 0
    write_errors: int = 0
    skipped: int = 0  # turns skipped because the device's previous poll was still running
    per_device: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Turn:
    interval_s: float
    jitter_s: float
    at: float = 0.0  # the event loop's time of the next turn
    handle: asyncio.TimerHandle | None = None


class TurnScheduler:
    """Each device's turns on one event-loop timer (``loop.call_at``): what the poller needs of a
    scheduler, without APScheduler's per-run bookkeeping (job store, datetime triggers, events,
    executor), which cost about 1 ms CPU per poll. The next turn comes ``interval_s`` plus
    ``uniform(0, jitter_s)`` after the previous one; a turn that comes while the device's previous
    run is still going is skipped and counted (``on_skip``): runs never pile up. A loop stalled past
    a turn runs it once, late, then keeps the interval from there."""

    def __init__(self, run: Callable[[int], Awaitable[None]], *, on_skip: Callable[[], None]) -> None:
        self._run = run
        self._on_skip = on_skip
        self._turns: dict[int, _Turn] = {}
        self._busy: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.running = True
        for key, turn in self._turns.items():
            self._arm(key, turn, turn.at)

    def pause(self) -> None:
        """No more turns (runs going on finish); ``start`` resumes."""
        self.running = False
        for turn in self._turns.values():
            if turn.handle is not None:
                turn.handle.cancel()
                turn.handle = None

    def add(self, key: int, *, interval_s: float, jitter_s: float, first_delay_s: float) -> None:
        """Schedule ``key`` (replacing its turns if it had some), first turn ``first_delay_s`` from now."""
        self.remove(key)
        turn = self._turns[key] = _Turn(interval_s, jitter_s)
        self._arm(key, turn, self._now() + first_delay_s)

    def move(self, key: int, *, delay_s: float) -> None:
        """Move the next turn of ``key`` to ``delay_s`` seconds from now."""
        turn = self._turns.get(key)
        if turn is not None:
            if turn.handle is not None:
                turn.handle.cancel()
            self._arm(key, turn, self._now() + delay_s)

    def remove(self, key: int) -> None:
        turn = self._turns.pop(key, None)
        if turn is not None and turn.handle is not None:
            turn.handle.cancel()

    def turns(self) -> dict[int, tuple[float, float, float]]:
        """key -> (interval, jitter, seconds until its next turn)."""
        now = self._now()
        return {k: (t.interval_s, t.jitter_s, t.at - now) for k, t in self._turns.items()}

    async def idle(self) -> None:
        """Wait for the runs going on to end."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _now(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()

    def _arm(self, key: int, turn: _Turn, at: float) -> None:
        turn.at = at
        if self.running and self._loop is not None:
            turn.handle = self._loop.call_at(at, self._fire, key, turn)

    def _fire(self, key: int, turn: _Turn) -> None:
        if self._turns.get(key) is not turn or not self.running or self._loop is None:
            return
        now = self._loop.time()
        after = turn.at + turn.interval_s + random.uniform(0, turn.jitter_s)
        self._arm(key, turn, after if after > now else now + turn.interval_s)
        if key in self._busy:  # its previous run is still going: coalesced
            self._on_skip()
            return
        self._busy.add(key)
        task = self._loop.create_task(self._run_one(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_one(self, key: int) -> None:
        try:
            await self._run(key)
        finally:
            self._busy.discard(key)


class PollerStopping(Exception):
    """A queued poll found the service stopping; it is dropped, not run."""


class DeviceLeft(PollerStopping):
    """A poll's device is no longer in the poller's table (deleted, moved out of its share) by the
    time its turn came or got a slot; it is dropped, not run."""


class SnmpPoller:
    """Scheduling, polling and batching shared by the two pollers: ``PollerService`` (one process,
    the inventory and results in the database) and the collector role's ``RemotePoller``
    (devices from central's directory, results published over NATS). Subclasses say where the
    devices come from (``load_devices``), what a new device's memory starts from
    (``new_trackers``) and where a batch of results goes (``_write`` then ``_publish``)."""

    name = "snmp-poller"

    def __init__(
        self,
        settings: Settings,
        vault: Vault,
        sink: ObservationSink | None = None,
        *,
        collection_set: CollectionSet = STANDARD,
        sync_interval_s: float | None = None,
        collector: str = "",
    ) -> None:
        self.settings = settings
        self.collector = collector  # the ``collector`` label of this poller's series
        self.series = exposition.SeriesCache(collector)
        self.vault = vault
        self.sink = sink
        self.cs = collection_set
        s = settings
        self.interval_s = s.poll_interval_s
        self.sync_interval_s = sync_interval_s or max(30.0, min(300.0, s.poll_interval_s))
        self.devices: dict[int, PolledDevice] = {}
        self.trackers: dict[int, DeviceTracker] = {}
        self.stats = PollerStats()
        self.client: SnmpClient | None = None
        self.scheduler: TurnScheduler | None = None
        self._periodic: list[asyncio.Task[None]] = []
        self._limit = asyncio.Semaphore(s.poll_concurrency)
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._sync_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Engine, inventory and metrics, without the scheduler (``start`` adds it; tests drive polls)."""
        self.client = SnmpClient()
        _ACTIVE.add(self)
        await self.sync()

    async def start(self) -> None:
        await self.open()
        self.scheduler = TurnScheduler(self.poll_job, on_skip=self._skipped)
        self.scheduler.start()
        for dev in self.devices.values():
            self._schedule(dev, first_delay=self.first_delay(dev))
        self._periodic = [
            asyncio.create_task(self._every(self.sync_interval_s, self.sync), name="poll-sync"),
            asyncio.create_task(self._every(600, self.prune), name="poll-prune"),
        ]
        self._writer = asyncio.create_task(self._write_loop(), name="poll-writer")

    async def _every(self, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("poller job %s failed", getattr(job, "__name__", job))

    async def stop(self) -> None:
        self._stopping = True
        _ACTIVE.discard(self)
        if self.scheduler is not None:
            self.scheduler.pause()
        for task in self._periodic:
            task.cancel()
        for task in self._periodic:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Let polls in flight finish (each is bounded by its timeout and retries) before the
        # engine closes.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), 30)
        if self.scheduler is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.scheduler.idle(), 30)
        if self._writer is not None:
            self._wake.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer, 30)
        await self.flush()
        if self.client is not None:
            self.client.close()

    def _skipped(self) -> None:
        self.stats.skipped += 1

    async def _drain(self) -> None:
        for _ in range(self.settings.poll_concurrency):
            await self._limit.acquire()
        for _ in range(self.settings.poll_concurrency):
            self._limit.release()

    # ------------------------------------------------------------------ devices
    async def load_devices(self) -> dict[int, PolledDevice]:
        raise NotImplementedError

    async def new_trackers(self, devices: dict[int, PolledDevice], new: set[int]) -> dict[int, DeviceTracker]:
        """The memory each device in ``new`` starts from (missing ones start empty)."""
        return {}

    def first_delay(self, dev: PolledDevice) -> float:
        """Seconds until a newly scheduled device's first poll: its slot, so the first turns of the
        whole inventory are spread evenly over one interval (``slot_delay``)."""
        return slot_delay(dev.id, dev.interval_s, clock.now().timestamp())

    async def sync(self) -> None:
        """Follow the inventory: schedule new devices, drop deleted ones, apply new intervals."""
        async with self._sync_lock:  # a periodic sync and a pushed one never interleave
            devices = await self.load_devices()
            new = set(devices) - set(self.trackers)
            trackers = await self.new_trackers(devices, new) if new else {}
            for gone in set(self.devices) - set(devices):
                self.devices.pop(gone, None)
                self.trackers.pop(gone, None)
                if self.scheduler is not None:
                    self.scheduler.remove(gone)
            for dev in devices.values():
                old = self.devices.get(dev.id)
                self.devices[dev.id] = dev
                tracker = self.trackers.get(dev.id)
                if tracker is None:
                    tracker = self.trackers[dev.id] = trackers.get(dev.id) or DeviceTracker(
                        dev.hostname, unreachable_after=self.settings.unreachable_after
                    )
                tracker.device, tracker.site = dev.hostname, dev.site
                if self.scheduler is not None and (old is None or old.interval_s != dev.interval_s):
                    self._schedule(dev, first_delay=self.first_delay(dev))

    def _schedule(self, dev: PolledDevice, *, first_delay: float) -> None:
        assert self.scheduler is not None
        # the jitter adds uniform(0, jitter) to each turn: the base is shortened by half of it so
        # the mean interval is the configured one
        self.scheduler.add(
            dev.id, interval_s=dev.interval_s * (1 - JITTER / 2), jitter_s=dev.interval_s * JITTER,
            first_delay_s=first_delay,
        )  # fmt: skip

    def reschedule(self, device_id: int, *, delay_s: float) -> None:
        """Move the next poll of a scheduled device ``delay_s`` seconds from now."""
        if self.scheduler is not None:
            self.scheduler.move(device_id, delay_s=delay_s)

    # ------------------------------------------------------------------ polling
    async def poll(self, device_id: int) -> PollResult:
        """Poll one known device now, through the shared engine and the concurrency bound."""
        dev, tracker = self.devices.get(device_id), self.trackers.get(device_id)
        if dev is None or tracker is None:
            raise DeviceLeft(device_id)
        assert self.client is not None
        async with self._limit:
            if self._stopping:
                raise PollerStopping
            # the wait for a slot can be long (thousands of devices due at once): a device that left
            # meanwhile (an inventory sync, a re-share giving it to another member) is not polled
            # (one that changed meanwhile is polled with its new settings)
            dev, tracker = self.devices.get(device_id), self.trackers.get(device_id)
            if dev is None or tracker is None:
                raise DeviceLeft(device_id)
            now = clock.now()
            try:
                # decrypted right before the request, kept only for it
                target = snmp_target(dev, self.vault, timeout_s=dev.timeout_s, retries=dev.retries)
            except (VaultError, SnmpConfigError) as exc:
                result = PollResult(dev.hostname, False, now, 0.0, error=str(exc))
            else:
                if target is None:
                    result = PollResult(dev.hostname, False, now, 0.0, error="device has no SNMP settings")
                else:
                    s = self.settings
                    result = await poll_device(
                        self.client, dev.hostname, target, now=now, cs=self.cs,
                        max_rows=s.poll_max_rows, max_s=s.poll_max_walk_s, max_interfaces=s.poll_max_interfaces,
                    )  # fmt: skip
        tracker.observe(result, now.timestamp())
        self.stats.polls += 1
        POLL_SECONDS.labels(result="ok" if result.ok else "timeout" if result.timeout else "error").observe(
            result.duration_s
        )
        if not result.ok:
            self.stats.failures += 1
            self.stats.timeouts += int(result.timeout)
        return result

    def released_tracker(self, device_id: int) -> DeviceTracker | None:
        """The memory of a device handed to another collector while its poll ran (the collector
        role): its result carries it to the new owner."""
        return None

    async def due(self, device_id: int) -> bool:
        """Whether the turn that came should poll (the collector role skips a turn its group's
        previous owner of the device already took)."""
        return True

    async def poll_job(self, device_id: int) -> None:
        if device_id not in self.devices or self._stopping:
            return
        try:
            if not await self.due(device_id):
                return
            result = await self.poll(device_id)
        except PollerStopping:
            return
        except Exception:  # one broken device never stops the poller
            log.exception("poll of device %s failed", device_id)
            return
        tracker = self.trackers.get(device_id) or self.released_tracker(device_id)
        if tracker is None:  # deleted while the poll ran: its result still counts
            tracker = DeviceTracker(result.device)
        self._pending.append(_Pending(device_id, result, tracker.reachable, tracker.failures, tracker))
        self._wake.set()
        dev = self.devices.get(device_id)
        if tracker.failures and dev is not None:
            self.reschedule(device_id, delay_s=retry_delay(tracker.failures, dev.interval_s))

    # ------------------------------------------------------------------ writing
    async def _write_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.5)  # gather a batch: one transaction for many polls
            try:
                await self.flush()
            except Exception:
                log.exception("writing poll results failed; they are dropped")

    async def flush(self) -> None:
        async with self._write_lock:  # one writer at a time (SQLite has one)
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                names = await asyncio.to_thread(self._write, batch)
            except Exception:
                # The database is away: the results are lost, but the findings still go to the
                # engine's in-memory queue, which retries its own writes and counts what it drops.
                self.stats.write_errors += len(batch)
                self._publish(batch, stored=False)
                raise
        for device_id, stored in names.items():  # committed: the next polls name ports as stored
            tracker = self.trackers.get(device_id)
            if tracker is not None:
                tracker.names = stored
        self.stats.written += len(batch)
        self._publish(batch)

    def _write(self, batch: list[_Pending]) -> dict[int, dict[int, str]]:
        """Store or hand over a batch; returns the stored display names per device (may be empty)."""
        raise NotImplementedError

    def _publish(self, batch: list[_Pending], *, stored: bool = True) -> None:
        if self.sink is None:
            return
        events = [e for p in batch for e in p.result.events]
        samples = [s for p in batch for s in p.result.samples]
        if not _hand_over(self.sink, events, stored=stored):
            self.stats.dropped_events += len(events)
        if samples:
            self.sink.submit_samples(samples)

    async def prune(self) -> int:
        return 0


FULL_WRITE_EVERY = 30  # stored polls between two full reconciliations of a device's interfaces and links


@dataclass
class _Stored:
    """What the last full write of one device's poll stored, and the inventory revision then."""

    revision: int
    interfaces: tuple[tuple[Any, ...], ...]  # (ifIndex, name, alias, admin, oper, speed) as read
    names: dict[int, str]  # the display names stored for them
    neighbors: tuple[tuple[Any, ...], ...]  # the LLDP table as read
    link_ids: list[int]  # the discovered links it gave
    left: int  # polls still written the short way before the next full one


@dataclass
class _Batch:
    """A batch's short writes, stored together at its end."""

    links: set[int]  # of the link ids the batch's devices last stored, those still in the inventory
    samples: list[dict[str, Any]] = field(default_factory=list)
    seen: list[tuple[int, Any]] = field(default_factory=list)  # (link id, seen at)


class PollWriter:
    """Stores polls, the short way where it can: a device whose interfaces and LLDP table read the
    same as at its last stored poll, with the inventory unchanged since, has its interface rows left
    as they are and its links marked seen in one UPDATE (``_Stored``); every ``FULL_WRITE_EVERY``-th
    poll is reconciled in full anyway. Its memory is only right while it is the only writer of these
    devices' polls: one per process, used by one thread at a time."""

    def __init__(self, max_interfaces: int | None) -> None:
        self.max_interfaces = max_interfaces
        self._stored: dict[int, _Stored] = {}

    def clear(self) -> None:
        """Forget every stored poll (another writer may have written since): the next are full."""
        self._stored.clear()

    def store(
        self, session: Session, rows: list[_Pending]
    ) -> tuple[dict[int, dict[int, str]], dict[int, _Stored | None], int]:
        """Store ``rows`` in the session's transaction: (stored display names per device, what to
        ``remember`` once it commits, polls that could not be stored). The whole batch goes under one
        savepoint; when one poll cannot be stored, the batch is stored again with a savepoint per
        poll, so that one never loses the rest."""
        revision = queries.revision(session)
        try:
            with session.begin_nested():
                names, memos, errors = self._store(session, rows, revision, isolate=False)
        except (SQLAlchemyError, InvalidInput, ValueError):
            names, memos, errors = self._store(session, rows, revision, isolate=True)
        return names, memos, errors

    def remember(self, memos: dict[int, _Stored | None], *, keep: set[int] | None = None) -> None:
        """After the commit: what the batch stored; ``keep`` (when given): the devices still polled,
        the others forgotten."""
        for device_id, memo in memos.items():
            if memo is None:
                self._stored.pop(device_id, None)
            else:
                self._stored[device_id] = memo
        if keep is not None:
            for gone in set(self._stored) - keep:  # deleted devices: forgotten
                self._stored.pop(gone, None)

    def _store(
        self, session: Session, rows: list[_Pending], revision: int, *, isolate: bool
    ) -> tuple[dict[int, dict[int, str]], dict[int, _Stored | None], int]:
        names: dict[int, dict[int, str]] = {}
        memos: dict[int, _Stored | None] = {}
        errors = 0
        # the short writes of the whole batch: their samples and links in one statement each (not
        # when isolating polls: each then writes its own under its savepoint)
        batch: _Batch | None = None
        if not isolate:
            wanted = [i for p in rows if (m := self._stored.get(p.device_id)) is not None for i in m.link_ids]
            batch = _Batch(links=service.existing_links(session, wanted))
        done: set[int] = set()
        for p in rows:
            again = p.device_id in done  # a second poll of a device in one batch: its memory is stale
            done.add(p.device_id)
            try:
                with session.begin_nested() if isolate else contextlib.nullcontext():
                    stored, memo = self._store_one(session, p, revision, batch, full=again)
            except (SQLAlchemyError, InvalidInput, ValueError) as exc:
                if not isolate:
                    raise
                errors += 1
                log.error("storing the poll of %s failed: %s", p.result.device, type(exc).__name__)
                memos[p.device_id] = None
                continue
            if memo is not None:
                memos[p.device_id] = memo
            if stored:
                names[p.device_id] = stored
        if batch is not None:
            service.insert_samples(session, batch.samples)
            service.touch_neighbors(session, batch.seen)
            session.flush()
        return names, memos, errors

    def _store_one(
        self, session: Session, p: _Pending, revision: int, batch: _Batch | None, *, full: bool = False
    ) -> tuple[dict[int, str], _Stored | None]:
        result, max_interfaces = p.result, self.max_interfaces
        snap = result.snapshot
        if not result.ok or snap is None:
            failed = write_result(session, p.device_id, result, p.reachable, p.failures, max_interfaces=max_interfaces)
            return failed, None
        prev = None if full else self._stored.get(p.device_id)
        interfaces = tuple(
            (i.if_index, i.name, i.alias, i.admin_status, i.oper_status, i.speed_bps) for i in snap.interfaces.values()
        )
        neighbors = tuple((n.local_if_index, n.local_port, n.remote_name, n.remote_port) for n in snap.neighbors)
        fresh = prev is not None and prev.revision == revision and prev.left > 0 and not result.truncated
        same_interfaces = fresh and prev is not None and prev.interfaces == interfaces
        stored = service.record_poll(
            session, device_id=p.device_id, result=result, reachable=p.reachable, failures=p.failures,
            max_interfaces=max_interfaces, stored_names=prev.names if same_interfaces and prev is not None else None,
            sample_rows=batch.samples if batch is not None else None,
        )  # fmt: skip
        same_neighbors = fresh and prev is not None and prev.neighbors == neighbors
        if same_neighbors and prev is not None:
            if batch is not None:  # links deleted since: the full way, which finds them again
                same_neighbors = all(i in batch.links for i in prev.link_ids)
                if same_neighbors:
                    batch.seen.extend((i, result.time) for i in prev.link_ids)
            else:
                same_neighbors = len(service.existing_links(session, prev.link_ids)) == len(set(prev.link_ids))
                service.touch_neighbors(session, [(i, result.time) for i in prev.link_ids] if same_neighbors else [])
        if same_neighbors and prev is not None:
            link_ids = prev.link_ids
        else:
            link_ids = service.apply_neighbors(
                session, device_id=p.device_id, neighbors=snap.neighbors, now=result.time
            )
        left = prev.left - 1 if same_interfaces and same_neighbors and prev is not None else FULL_WRITE_EVERY
        return stored, _Stored(revision, interfaces, stored, neighbors, link_ids, left)


class PollerService(SnmpPoller):
    """The poller of one faultloop process: devices from the inventory, results into the database
    (findings into the alarm engine's durable queue in the same transaction)."""

    def __init__(
        self,
        rt: Runtime,
        sink: ObservationSink | None = None,
        *,
        collection_set: CollectionSet = STANDARD,
        sync_interval_s: float | None = None,
        collector: str = "",
    ) -> None:
        super().__init__(
            rt.settings, rt.vault, sink, collection_set=collection_set, sync_interval_s=sync_interval_s,
            collector=collector,
        )  # fmt: skip
        self.rt = rt
        self.writer = PollWriter(self.settings.poll_max_interfaces)  # used by the writer thread only

    # ------------------------------------------------------------------ inventory
    def _load(self) -> dict[int, PolledDevice]:
        with transaction(self.rt.sessions) as session:
            return polled_devices(session, self.settings)

    def _baselines(
        self, device_ids: set[int] | None
    ) -> dict[int, tuple[bool | None, dict[int, str], dict[int, str]]]:
        """Per device: (reachable, {ifIndex: oper status}, {ifIndex: display name}) as the last
        polls left them in the database; of ``device_ids`` only (None: every device, as at the
        first sync)."""
        with transaction(self.rt.sessions) as session:
            query = select(DevicePollState.device_id, DevicePollState.reachable)
            if device_ids is not None:
                query = query.where(DevicePollState.device_id.in_(sorted(device_ids)))
            reachable = dict(session.execute(query).all())
            oper = queries.known_oper_status(session, device_ids=device_ids)
            names = queries.known_interface_names(session, device_ids=device_ids)
        return {
            i: (reachable.get(i), oper.get(i, {}), names.get(i, {}))
            for i in reachable.keys() | oper.keys() | names.keys()
        }

    async def load_devices(self) -> dict[int, PolledDevice]:
        return await asyncio.to_thread(self._load)

    async def new_trackers(self, devices: dict[int, PolledDevice], new: set[int]) -> dict[int, DeviceTracker]:
        # devices added to a running poller read only their own baselines; the first sync (and an
        # import too large for one IN list) reads every device's in one pass
        wanted = new if self.trackers and len(new) <= BASELINE_IDS_MAX else None
        baselines = await asyncio.to_thread(self._baselines, wanted)
        out = {}
        for device_id in new:
            reachable, oper, names = baselines.get(device_id, (None, {}, {}))
            out[device_id] = DeviceTracker(
                devices[device_id].hostname, unreachable_after=self.settings.unreachable_after,
                reachable=reachable, baseline_oper=oper, names=names,
            )  # fmt: skip
        return out

    # ------------------------------------------------------------------ writing
    def _write(self, batch: list[_Pending]) -> dict[int, dict[int, str]]:
        """Store a batch in one transaction (``PollWriter.store``); returns the stored display names
        per device."""
        with write_transaction(self.rt.sessions) as session:
            known = queries.existing_device_ids(session, (p.device_id for p in batch))
            rows = [p for p in batch if p.device_id in known]  # not the ones deleted since their poll
            states = service.load_states(session, [p.device_id for p in rows])
            names, memos, errors = self.writer.store(session, rows)
            _store_findings(self.sink, session, [e for p in rows for e in p.result.events])
            del states
        self.stats.write_errors += errors
        self.writer.remember(memos, keep=set(list(self.devices)))  # committed
        return names

    async def prune(self) -> int:
        cutoff = clock.now() - timedelta(hours=self.settings.sample_retention_h)

        def run() -> int:
            with write_transaction(self.rt.sessions) as session:
                return service.prune_samples(session, older_than=cutoff)

        return await asyncio.to_thread(run)


def write_result(
    session: Session,
    device_id: int,
    result: PollResult,
    reachable: bool | None,
    failures: int,
    *,
    max_interfaces: int | None = None,
) -> dict[int, str]:
    """Store one poll; returns the inventory's display name of each polled ifIndex."""
    names = service.record_poll(
        session, device_id=device_id, result=result, reachable=reachable, failures=failures,
        max_interfaces=max_interfaces,
    )  # fmt: skip
    if result.ok and result.snapshot is not None:
        service.apply_neighbors(session, device_id=device_id, neighbors=result.snapshot.neighbors, now=result.time)
    return names


async def poll_now(
    rt: Runtime, device_id: int, poller: PollerService | None = None
) -> tuple[PollResult, DeviceTracker]:
    """One-shot poll (CLI, API): through the running poller when there is one, else a fresh engine.

    The result is written in its own transaction; the running poller's sink gets the events
    after the commit.
    """
    if poller is not None and device_id in poller.devices:
        result = await poller.poll(device_id)
        # the device may have left the poller's table while the poll ran (an inventory sync)
        tracker = poller.trackers.get(device_id) or DeviceTracker(result.device)
    else:
        s = rt.settings

        def target() -> Any:
            with transaction(rt.sessions) as session:
                device = service._device(session, device_id)
                return device.hostname, snmp_target(
                    device, rt.vault, timeout_s=s.poll_timeout_s, retries=s.poll_retries
                )

        hostname, snmp = await asyncio.to_thread(target)
        if snmp is None:
            raise InvalidInput(f"device {hostname!r} has no SNMP settings to poll with", field="snmp")
        def known_names() -> dict[int, str]:
            with transaction(rt.sessions) as session:
                return queries.known_interface_names(session, device_ids=[device_id]).get(device_id, {})

        tracker = DeviceTracker(hostname, unreachable_after=1, names=await asyncio.to_thread(known_names))
        now = clock.now()
        client = SnmpClient()
        try:
            result = await poll_device(
                client, hostname, snmp, now=now, max_rows=s.poll_max_rows, max_s=s.poll_max_walk_s,
                max_interfaces=s.poll_max_interfaces,
            )  # fmt: skip
        finally:
            client.close()
        tracker.observe(result, now.timestamp())

    sink = poller.sink if poller is not None else None

    def write() -> dict[int, str]:
        with write_transaction(rt.sessions) as session:
            names = write_result(
                session, device_id, result, tracker.reachable, tracker.failures,
                max_interfaces=rt.settings.poll_max_interfaces,
            )  # fmt: skip
            _store_findings(sink, session, result.events)
        return names

    names = await asyncio.to_thread(write)
    if names:
        tracker.names = names
    if sink is not None:
        _hand_over(sink, result.events)
    return result, tracker


def _store_findings(sink: ObservationSink | None, session: Session, events: list[Event]) -> None:
    """In the transaction that stores a poll: a durable sink (the alarm engine) takes its findings
    into its queue, so they commit with the state they changed (after a crash the restarted
    poller compares with that state and would not find them again)."""
    if isinstance(sink, DurableSink):
        sink.store_events(session, events)


def _hand_over(sink: ObservationSink, events: list[Event], *, stored: bool = True) -> bool:
    """After that transaction: wake a durable sink for the findings stored with it, or (another
    sink, or the transaction failed) hand them over in memory. False when the sink refused them."""
    if not events:
        return True
    if stored and isinstance(sink, DurableSink):
        sink.events_stored()
        return True
    return sink.submit_events(events)


# ---------------------------------------------------------------------- metrics
_ACTIVE: set[SnmpPoller] = set()


def poll_exposition() -> str:
    """Current device and interface state of every running poller, read at scrape time (from the
    per-device lines each poller keeps, re-rendered for the devices polled since the last scrape)."""
    services = list(_ACTIVE)
    fleet = None
    if services:
        fleet = (
            float(sum(s.client.dropped_datagrams for s in services if s.client is not None)),
            float(sum(s.stats.skipped for s in services)),
        )
    return exposition.render(((s.series, s.trackers) for s in services), fleet)


add_text_source(poll_exposition)
