"""The SNMP poller as a background service: APScheduler jobs per device, one engine.

* One ``SnmpClient`` (one UDP socket for v1/v2c, one for v3) for every device.
* One APScheduler interval job per device, with jitter (10 % of the interval) so a
  thousand devices do not fire together, ``coalesce=True`` and ``max_instances=1`` so a
  slow poll never piles up; a semaphore bounds how many devices are polled at once.
* A failed poll is retried sooner (1/8, 1/4, 1/2 of the interval), then every interval:
  N consecutive failures are reached quickly, a dead device costs one request per
  interval, and recovery is seen within one interval.
* Results are written in batches (one transaction per flush, in a worker thread);
  events and samples go to the ``ObservationSink`` only after that commit.
* Device state for Prometheus is read from memory by a custom collector, so a deleted
  device disappears from ``/metrics`` at the next inventory sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from collectors import service
from collectors.collection_set import STANDARD, CollectionSet
from collectors.models import DevicePollState
from collectors.snmp_poll import DeviceTracker, PollResult, poll_device
from devices.snmp import SnmpClient, SnmpConfigError
from devices.targets import snmp_target
from faultloop import clock
from faultloop.db import transaction, write_transaction
from faultloop.errors import InvalidInput
from faultloop.events import DurableSink, Event, ObservationSink
from faultloop.metrics import REGISTRY
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
    ) -> None:
        self.settings = settings
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
        self.scheduler: AsyncIOScheduler | None = None
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
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        # A poll still running when its next turn comes is coalesced, not piled up: count it
        # instead of APScheduler's warning per occurrence.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        # ... and not one INFO line per poll (thousands a minute)
        logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()
        for dev in self.devices.values():
            self._schedule(dev, first_delay=self.first_delay(dev))
        self.scheduler.add_job(self.sync, IntervalTrigger(seconds=self.sync_interval_s), id="poll-sync", coalesce=True)
        self.scheduler.add_job(self.prune, IntervalTrigger(seconds=600), id="poll-prune", coalesce=True)
        self._writer = asyncio.create_task(self._write_loop(), name="poll-writer")

    async def stop(self) -> None:
        self._stopping = True
        _ACTIVE.discard(self)
        if self.scheduler is not None:
            self.scheduler.pause()
        # Let polls in flight finish (each is bounded by its timeout and retries) before the
        # engine closes; APScheduler's shutdown would cancel them mid-request.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), 30)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self._writer is not None:
            self._wake.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer, 30)
        await self.flush()
        if self.client is not None:
            self.client.close()

    def _skipped(self, _event: Any) -> None:
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
        """Seconds until a newly scheduled device's first poll: spread over one interval."""
        return random.uniform(0, dev.interval_s)

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
                    with contextlib.suppress(Exception):
                        self.scheduler.remove_job(f"poll:{gone}")
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
        self.scheduler.add_job(
            self.poll_job,
            # APScheduler adds uniform(0, jitter) to each turn: shorten the base by half of it so
            # the mean interval is the configured one.
            IntervalTrigger(seconds=dev.interval_s * (1 - JITTER / 2), jitter=dev.interval_s * JITTER),
            args=[dev.id],
            id=f"poll:{dev.id}",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(dev.interval_s)),
            next_run_time=clock.now() + timedelta(seconds=first_delay),
        )

    def reschedule(self, device_id: int, *, delay_s: float) -> None:
        """Move the next poll of a scheduled device ``delay_s`` seconds from now."""
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.modify_job(f"poll:{device_id}", next_run_time=clock.now() + timedelta(seconds=delay_s))

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
    ) -> None:
        super().__init__(rt.settings, rt.vault, sink, collection_set=collection_set, sync_interval_s=sync_interval_s)
        self.rt = rt

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
        """Store a batch in one transaction; returns the stored display names per device."""
        names: dict[int, dict[int, str]] = {}
        max_interfaces = self.rt.settings.poll_max_interfaces
        with write_transaction(self.rt.sessions) as session:
            known = queries.existing_device_ids(session, (p.device_id for p in batch))
            for p in batch:
                if p.device_id not in known:  # deleted since the poll
                    continue
                try:
                    with session.begin_nested():  # one bad row never loses the rest of the batch
                        stored = write_result(
                            session, p.device_id, p.result, p.reachable, p.failures, max_interfaces=max_interfaces
                        )
                except (SQLAlchemyError, InvalidInput) as exc:
                    self.stats.write_errors += 1
                    log.error("storing the poll of %s failed: %s", p.result.device, type(exc).__name__)
                else:
                    if stored:
                        names[p.device_id] = stored
            _store_findings(self.sink, session, [e for p in batch if p.device_id in known for e in p.result.events])
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


class PollMetrics(Collector):
    """Current device and interface state of every running poller, read at scrape time."""

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "faultloop_device_up", "1 when the device answered its last SNMP poll", labels=["device", "site"]
        )
        cpu = GaugeMetricFamily("faultloop_device_cpu_percent", "Average hrProcessorLoad", labels=["device", "site"])
        mem = GaugeMetricFamily("faultloop_device_memory_percent", "RAM used (hrStorage)", labels=["device", "site"])
        dur = GaugeMetricFamily(
            "faultloop_poll_duration_seconds", "Duration of the last poll", labels=["device", "site"]
        )
        errs = CounterMetricFamily("faultloop_poll_errors", "Failed polls", labels=["device", "site"])
        invalid = CounterMetricFamily(
            "faultloop_poll_invalid_samples", "Rates dropped as above interface speed", labels=["device", "site"]
        )
        il = ["device", "interface", "site"]
        in_bps = GaugeMetricFamily("faultloop_interface_in_bits_per_second", "Inbound rate", labels=il)
        out_bps = GaugeMetricFamily("faultloop_interface_out_bits_per_second", "Outbound rate", labels=il)
        in_oct = CounterMetricFamily("faultloop_interface_in_octets", "ifHCInOctets / ifInOctets", labels=il)
        out_oct = CounterMetricFamily("faultloop_interface_out_octets", "ifHCOutOctets / ifOutOctets", labels=il)
        in_err = CounterMetricFamily("faultloop_interface_in_errors", "ifInErrors", labels=il)
        out_err = CounterMetricFamily("faultloop_interface_out_errors", "ifOutErrors", labels=il)
        in_disc = CounterMetricFamily("faultloop_interface_in_discards", "ifInDiscards", labels=il)
        out_disc = CounterMetricFamily("faultloop_interface_out_discards", "ifOutDiscards", labels=il)
        speed = GaugeMetricFamily(
            "faultloop_interface_speed_bits_per_second", "Interface speed: ifHighSpeed x 10^6, else ifSpeed", labels=il
        )
        oper = GaugeMetricFamily("faultloop_interface_oper_up", "1 when ifOperStatus is up", labels=il)
        dropped = CounterMetricFamily(
            "faultloop_snmp_dropped_datagrams", "Malformed, unsolicited or spoofed SNMP answers dropped"
        )
        coalesced = CounterMetricFamily(
            "faultloop_poll_coalesced", "Poll turns skipped because the previous poll of the device was still running"
        )
        services = list(_ACTIVE)
        dropped.add_metric([], sum(s.client.dropped_datagrams for s in services if s.client is not None))
        coalesced.add_metric([], sum(s.stats.skipped for s in services))
        for svc in services:
            for tracker in list(svc.trackers.values()):
                if tracker.reachable is None:
                    continue
                dl = [tracker.device, tracker.site]
                up.add_metric(dl, 1.0 if tracker.reachable else 0.0)
                dur.add_metric(dl, tracker.last_duration_s)
                errs.add_metric(dl, tracker.poll_errors)
                invalid.add_metric(dl, tracker.invalid_samples)
                snap = tracker.last
                if snap is None or not tracker.reachable:
                    continue
                if snap.cpu_percent is not None:
                    cpu.add_metric(dl, snap.cpu_percent)
                if snap.memory_percent is not None:
                    mem.add_metric(dl, snap.memory_percent)
                for itf in snap.interfaces.values():
                    labels = [tracker.device, itf.name, tracker.site]
                    oper.add_metric(labels, 1.0 if itf.oper_status == "up" else 0.0)
                    if itf.speed_bps:  # 0 or unknown: no utilisation to divide by
                        speed.add_metric(labels, float(itf.speed_bps))
                    for fam, value in (
                        (in_bps, itf.in_bps),
                        (out_bps, itf.out_bps),
                        (in_oct, itf.in_octets),
                        (out_oct, itf.out_octets),
                        (in_err, itf.in_errors),
                        (out_err, itf.out_errors),
                        (in_disc, itf.in_discards),
                        (out_disc, itf.out_discards),
                    ):
                        if value is not None:
                            fam.add_metric(labels, float(value))
        yield from (up, cpu, mem, dur, errs, invalid, in_bps, out_bps, in_oct, out_oct, in_err, out_err)
        yield from (in_disc, out_disc, speed, oper)
        if services:
            yield from (dropped, coalesced)

    def describe(self) -> Iterator[Any]:
        return iter(())


POLL_METRICS = PollMetrics()
REGISTRY.register(POLL_METRICS)
