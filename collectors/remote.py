"""The SNMP poller of the collector role, and central's side of its results (issue 14).

A collector has no database. ``RemotePoller`` polls the devices its group's directory (from
central, over NATS) names and the group's work share gives it, with the same poll code as the
single process (``collectors.jobs.SnmpPoller``). After each batch it puts into its on-disk spool:

- one *poll result* per poll on ``<prefix>.results.<group>.<device id>``: the poll's outcome,
  the device's state for central to store (interfaces, system fields, LLDP neighbours, samples
  for graphs) and the poller's memory of the device (reachability, consecutive failures, the
  last good snapshot with its counters);
- the poll's events on the events stream (``faultloop.transport.ObservationPublisher``).

Central's ``ResultsIntake`` consumes the results stream on the leader: it claims each message id
in ``broker_inbox`` and applies the results with the single process's writer
(``collectors.jobs.PollWriter``: an unchanged poll leaves the interface rows alone and marks its
links seen in one UPDATE, every 30th is written in full) in ONE transaction, then acknowledges; so
each result is applied exactly once. The writer's memory is dropped whenever the leadership epoch
moved. Samples go to the alarm engine's threshold rules after the commit.

A collector that takes a device over from another member of its group (the member stopped, was
killed, or the device's share moved to a returning member) starts the device's memory from the
last poll result in the stream, and polls it when the previous owner's next turn would have come,
never sooner: no double polling, no lost reachability or link state at a handover. From a member
still alive it takes a device only once that member has said, in its membership entry, that it
settled on a member set naming the taker: it stopped polling what it gave up, waited for the polls
of those devices already running, and published their results (``RemotePoller.settle``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import nats.js.errors
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from collectors import service
from collectors.collection_set import STANDARD, CollectionSet
from collectors.jobs import (
    JITTER,
    DeviceLeft,
    PolledDevice,
    PollWriter,
    SnmpPoller,
    _Pending,
    slot_delay,
    spread,
)
from collectors.snmp_poll import DeviceTracker, PollResult, Snapshot
from faultloop import clock, inbox
from faultloop.broker import BrokerLink, Delivery, Publisher, PullConsumer, stream_name, subject
from faultloop.db import write_transaction
from faultloop.events import ObservationSink, Sample, sample_from_wire, sample_to_wire
from faultloop.leader import Leadership
from faultloop.settings import Settings
from faultloop.vault import Vault
from inventory import queries

log = logging.getLogger("faultloop.collector.poller")

WIRE_VERSION = 1
# pg_advisory_xact_lock key of the results apply: "flt" "res" as one bigint (per database)
RESULTS_LOCK_KEY = 0x666C74_726573


class PollRecord(BaseModel):
    """One poll as it travels from a collector to central (JSON on the results stream)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    device_id: int = Field(ge=1)
    device: str = Field(min_length=1, max_length=255)
    collector: str = Field("", max_length=64)  # the member of the group that polled
    ok: bool
    time: AwareDatetime
    duration_s: float = Field(ge=0)
    error: str = Field("", max_length=2000)
    timeout: bool = False
    truncated: Literal["", "rows", "time"] = ""
    reachable: bool | None = None  # the poller's view after this poll
    failures: int = Field(0, ge=0)
    snapshot: Snapshot | None = None  # this poll's snapshot when ok, else the last good one
    last_time_s: float | None = None  # when that snapshot was taken (rates continue from it)
    samples: list[dict[str, Any]] = Field(default_factory=list)

    def result(self) -> PollResult:
        """The ``PollResult`` central stores (``write_result``); a bad sample is a ``ValueError``."""
        return PollResult(
            device=self.device, ok=self.ok, time=self.time, duration_s=self.duration_s, error=self.error,
            timeout=self.timeout, snapshot=self.snapshot if self.ok else None, truncated=self.truncated,
            samples=[sample_from_wire(s) for s in self.samples],
        )  # fmt: skip

    def tracker(self, *, unreachable_after: int) -> DeviceTracker:
        """The poller's memory of the device as this poll left it (a collector taking it over)."""
        t = DeviceTracker(
            self.device, unreachable_after=unreachable_after, failures=self.failures, reachable=self.reachable
        )
        t.last, t.last_time_s, t.last_poll, t.truncated = self.snapshot, self.last_time_s, self.time, self.truncated
        return t


def encode_record(device_id: int, result: PollResult, tracker: DeviceTracker, *, collector: str = "") -> bytes:
    doc = {
        "v": WIRE_VERSION, "device_id": device_id, "device": result.device, "collector": collector, "ok": result.ok,
        "time": result.time, "duration_s": result.duration_s, "error": result.error[:2000],
        "timeout": result.timeout, "truncated": result.truncated, "reachable": tracker.reachable,
        "failures": tracker.failures, "snapshot": tracker.last, "last_time_s": tracker.last_time_s,
        "samples": [sample_to_wire(s) for s in result.samples],
    }  # fmt: skip
    return PollRecord.model_validate(doc).model_dump_json().encode()


def decode_record(data: bytes) -> PollRecord:
    """A results message, or ``ValueError`` naming what is wrong (the consumer drops it, counted)."""
    try:
        record = PollRecord.model_validate_json(data)
        record.result()  # the samples decode too
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "message"
        raise ValueError(f"poll result: field {where!r}: {first['msg']}") from None
    return record


def results_subject(settings: Settings, group: str, device_id: int) -> str:
    return subject(settings.nats_stream_prefix, "results", group, str(device_id))


# ---- central ----------------------------------------------------------------------------------


class ResultsIntake:
    """Central's durable consumer of the results stream: each poll result applied exactly once."""

    name = "nats poll results intake"

    def __init__(
        self, link: BrokerLink, sessions: sessionmaker[Session], sink: ObservationSink, settings: Settings,
        *, durable: str = "central", leadership: Leadership | None = None,
    ) -> None:  # fmt: skip
        self.sessions = sessions
        self.sink = sink
        self.leadership = leadership
        self.applied = 0
        self.duplicates = 0
        self.unknown = 0  # results of devices central no longer has (deleted, renamed)
        # the short writes of unchanged polls, as the single process's poller: right while this intake
        # is the only one applying results, so with a leadership only the leader fetches them, and
        # what it remembers is forgotten whenever the epoch moved (another leader wrote meanwhile)
        self.writer = PollWriter(settings.poll_max_interfaces)
        self._epoch: int | None = None
        prefix = settings.nats_stream_prefix
        self.consumer: PullConsumer[PollRecord] = PullConsumer(
            link, stream=stream_name(prefix, "results"), durable=f"{durable}-results",
            filter_subject=f"{prefix}.results.>", decode=decode_record, handle=self.apply,
            batch_size=settings.nats_batch_size, ready=self.takes_results,
        )  # fmt: skip

    def takes_results(self) -> bool:
        return self.leadership is None or self.leadership.leading

    def apply(self, deliveries: list[Delivery[PollRecord]]) -> None:
        """Claim the ids and store the new results in one transaction (then the consumer acks); on
        PostgreSQL the instances' applies take turns (a transaction advisory lock)."""
        if self.leadership is not None and self.leadership.epoch != self._epoch:
            self.writer.clear()
            self._epoch = self.leadership.epoch
        rows: list[_Pending] = []
        with write_transaction(self.sessions) as session:
            # Two batches applied at once collided (the same device's first poll state or interface rows
            # inserted twice, deadlocks between batches taking devices in different orders, a
            # redelivered id claimed twice) and lost results: one apply at a time across the instances,
            # from the claim to the commit (a leader just deposed may still be in its last one).
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RESULTS_LOCK_KEY})
            new = inbox.claim(session, (d.msg_id for d in deliveries), now=clock.now())
            records = []
            for d in deliveries:
                key = d.msg_id[: inbox.MSG_ID_MAX]
                if key in new:
                    new.discard(key)  # a second copy inside the same batch is a duplicate too
                    records.append(d.value)
            names = {r.id: r.hostname for r in queries.devices(session, ids={r.device_id for r in records})}
            for record in records:
                if names.get(record.device_id) != record.device:
                    self.unknown += 1
                    continue
                try:
                    result = record.result()
                except ValueError as exc:
                    log.error("storing the poll of %s failed: %s", record.device, type(exc).__name__)
                    continue
                rows.append(_Pending(record.device_id, result, record.reachable, record.failures))
            states = service.load_states(session, [p.device_id for p in rows])  # one SELECT, not one per poll
            _names, memos, _errors = self.writer.store(session, rows)
            del states
        self.writer.remember(memos)
        failed = {device_id for device_id, memo in memos.items() if memo is None}
        fresh = [p for p in rows if p.device_id not in failed]
        self.applied += len(fresh)
        self.duplicates += len(deliveries) - len(records)
        samples: list[Sample] = [s for p in fresh if p.result.ok for s in p.result.samples]
        if samples:  # threshold rules, after the commit (in memory, like the single process's)
            self.sink.submit_samples(samples)

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()


# ---- the collector ------------------------------------------------------------------------------


class WorkShare(Protocol):
    """Which of the group's devices this collector polls now (``faultloop.cmd.collector.GroupShare``)."""

    def assign(self) -> tuple[dict[int, PolledDevice], dict[int, str]]:
        """(this member's devices, {device id: the member that polled it until now} for those
        taken over: from a live member once it let go of them, from a dead one at once; at a first
        share the owner among the others is taken as that member)."""
        ...

    def released_by(self, member: str) -> bool:
        """Whether ``member`` has stopped polling what this collector took from it (it settled on a
        member set with this collector in it, its last results published), or is gone."""
        ...

    def may_poll(self) -> bool:
        """Whether this member's name is surely still alive (its heartbeat not overdue), so that no
        other member polls its share yet."""
        ...

    async def still_mine(self, device_id: int) -> bool:
        """Read the live members again now and say whether the device is still this member's."""
        ...


LastResult = Callable[[int], Awaitable[PollRecord | None]]


def last_result_reader(link: BrokerLink, settings: Settings, group: str) -> LastResult:
    """The newest poll result of a device of ``group`` in the results stream (None: none kept)."""
    stream = stream_name(settings.nats_stream_prefix, "results")

    async def read(device_id: int) -> PollRecord | None:
        if not link.connected:
            return None
        try:
            msg = await link.jetstream().get_last_msg(stream, results_subject(settings, group, device_id))
        except nats.js.errors.NotFoundError:
            return None
        try:
            return decode_record(msg.data or b"")
        except ValueError as exc:
            log.warning("last poll result of device %s unreadable: %s", device_id, exc)
            return None

    return read


class RemotePoller(SnmpPoller):
    """The collector's poller: its share of the group's devices, results into the spool."""

    def __init__(
        self,
        settings: Settings,
        vault: Vault,
        *,
        publisher: Publisher,
        sink: ObservationSink,
        share: WorkShare,
        last_result: LastResult,
        collector: str,
        collection_set: CollectionSet = STANDARD,
    ) -> None:
        # Re-read the share every heartbeat: a member that joins or expires is seen within one.
        super().__init__(
            settings, vault, sink, collection_set=collection_set, sync_interval_s=settings.collector_heartbeat_s,
            collector=collector,
        )  # fmt: skip
        self.publisher = publisher
        self.share = share
        self.last_result = last_result
        self.group = settings.collector_group
        self.collector = collector
        # A device taken from a live member waits until that member says it let go of it (its
        # membership entry names this collector; ``WorkShare.released_by``). One that never says
        # so while alive (hung, an older release) is taken after this long, counted and logged.
        tries = settings.poll_retries + 1
        self.fence_timeout_s = 3 * settings.collector_heartbeat_s + settings.poll_timeout_s * tries
        # A member that died (or stalled past its heartbeat timeout) stopped starting polls one
        # heartbeat before its entry expired (``Membership.lease_valid``); one it began just before
        # ends and has its result in the stream this long after that (the writer batches 0.5 s).
        self.dead_grace_s = max(0.0, settings.poll_timeout_s * tries + 1.0 - settings.collector_heartbeat_s)
        # A device taken over is polled at the turn its last poll set, or soon after when that turn
        # passed while its previous owner was being found dead (up to the heartbeat timeout, the
        # grace above and one heartbeat until this member's re-share). Later than that, the group
        # has not polled it for a whole interval and more (a group restarted after an outage): such
        # devices go to their slots (``slot_delay``) like never polled ones, or a group coming back
        # would poll all of them at once.
        # (the heartbeat timeout is three heartbeats: ``faultloop.cmd.collector.MISSED_HEARTBEATS``)
        self.catch_up_s = 4 * settings.collector_heartbeat_s + self.dead_grace_s
        self.taken_over = 0  # devices this collector started polling after another member
        self.unconfirmed_handovers = 0  # taken from a live member that never said it let go
        self._fresh: set[int] = set()  # acquired, first turn not taken yet
        self._from_member: dict[int, str] = {}  # acquired from this live member, not yet released by it
        self._fence_since: dict[int, float] = {}  # first turn that found the device not yet released
        self._released: dict[int, DeviceTracker] = {}
        self._given_up: set[int] = set()  # released since the membership entry last said so
        self._polling: Counter[int] = Counter()  # polls running now, per device
        self._poll_ended = asyncio.Event()
        self._due_at: dict[int, datetime] = {}

    async def load_devices(self) -> dict[int, PolledDevice]:
        mine, from_member = self.share.assign()
        # kept until the device's first turn has passed the fence (a sync may run before the scheduler)
        self._from_member = {d: m for d, m in (self._from_member | from_member).items() if d in mine}
        return mine

    async def sync(self) -> None:
        before = dict(self.trackers)
        await super().sync()
        for device_id, tracker in before.items():  # released: remembered in case it comes back
            if device_id not in self.trackers:
                self._released[device_id] = tracker
                self._given_up.add(device_id)

    def released_tracker(self, device_id: int) -> DeviceTracker | None:
        return self._released.get(device_id)

    async def poll(self, device_id: int) -> PollResult:
        # A device given up while its turn waited (the fence check reads NATS) is not polled: the
        # membership entry may already say it was let go.
        if device_id not in self.devices:
            raise DeviceLeft(device_id)
        self._polling[device_id] += 1
        try:
            return await super().poll(device_id)
        finally:
            self._polling[device_id] -= 1
            if self._polling[device_id] <= 0:
                del self._polling[device_id]
            self._poll_ended.set()

    async def settle(self) -> bool:
        """True once the devices given up at the last re-shares are polled no more and the results
        of their last polls have left the spool (``Membership.on_settle``: then the membership
        entry says so, and their new owners poll them from those results). False: not within a
        poll's bound (a hung walk, NATS away), asked again at the next heartbeat."""
        given_up = set(self._given_up)
        if not given_up:
            return True
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.poll_max_walk_s + s.poll_timeout_s * (s.poll_retries + 1)
        while any(d in self._polling for d in given_up):
            self._poll_ended.clear()
            try:
                await asyncio.wait_for(self._poll_ended.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return False
        await self.flush()  # the poll job queued the result before it ended: into the spool now
        if not await self.publisher.caught_up(max(0.0, deadline - loop.time())):
            return False
        self._given_up -= given_up
        return True

    async def new_trackers(self, devices: dict[int, PolledDevice], new: set[int]) -> dict[int, DeviceTracker]:
        out = {}
        for device_id in new:
            self._fresh.add(device_id)
            record = await self.last_result(device_id)
            tracker = self._released.pop(device_id, None)
            self._given_up.discard(device_id)
            if record is not None and (tracker is None or tracker.last_poll is None or record.time > tracker.last_poll):
                self.taken_over += 1
                tracker = record.tracker(unreachable_after=self.settings.unreachable_after)
            interval = timedelta(seconds=devices[device_id].interval_s)
            if tracker is not None and device_id in self._polling:
                # given up and taken back while its poll still runs (a lost and re-claimed name):
                # that poll completes this memory and is the turn to count from
                out[device_id] = tracker
                self._due_at[device_id] = clock.now() + interval
                continue
            if tracker is None or tracker.last_poll is None:
                continue
            out[device_id] = tracker
            self._due_at[device_id] = tracker.last_poll + interval
        return out

    def first_delay(self, dev: PolledDevice) -> float:
        """When a device this member starts polling (its first share, one taken over or handed
        back) has its first turn here: the turn after its last poll in the group, or, when there is
        none (never polled) or it is long past (nobody polled it for over an interval), the device's
        slot in the interval. Never all of them at once: 10,000 devices of a group starting together
        were all due within a tenth of the interval (18 % timeouts in that burst)."""
        due_at = self._due_at.pop(dev.id, None)
        now = clock.now()
        late = None if due_at is None else (now - due_at).total_seconds()
        if late is None or late > self.catch_up_s:
            base = slot_delay(dev.id, dev.interval_s, now.timestamp())
        else:
            base = max(0.0, -late) + dev.interval_s * JITTER * spread(dev.id)
        if dev.id in self._from_member:  # its first turn re-reads the newest result (``due``)
            base = max(base, self.dead_grace_s)
        return base

    async def due(self, device_id: int) -> bool:
        """The first turn of an acquired device: wait until its previous owner, if alive, says it let
        go of it; then, if that owner polled it meanwhile, take over that memory and wait for the
        turn after its last poll instead of polling twice."""
        if not self.share.may_poll():
            self.reschedule(device_id, delay_s=self.settings.collector_heartbeat_s)
            return False
        if device_id not in self._fresh:
            return self._spaced(device_id)
        # a stalled event loop (start-up, a long pause) may have kept the member list stale
        if not await self.share.still_mine(device_id):
            self._fresh.discard(device_id)
            return False
        dev = self.devices.get(device_id)
        if dev is None:
            return False
        previous = self._from_member.get(device_id)
        if previous is not None and not self.share.released_by(previous):
            since = self._fence_since.setdefault(device_id, time.monotonic())
            if time.monotonic() - since < self.fence_timeout_s + dev.interval_s:
                self.reschedule(device_id, delay_s=self.settings.collector_heartbeat_s)
                return False
            self.unconfirmed_handovers += 1
            log.warning(
                "device %s: taken from %s, which is alive but has not said it let go of it; polled anyway",
                dev.hostname, previous,
            )  # fmt: skip
        self._fresh.discard(device_id)
        self._from_member.pop(device_id, None)
        self._fence_since.pop(device_id, None)
        record = await self.last_result(device_id)
        tracker = self.trackers.get(device_id)
        if record is None or tracker is None:
            self._rebase(device_id)
            return True
        if tracker.last_poll is None or record.time > tracker.last_poll:
            self.trackers[device_id] = record.tracker(unreachable_after=self.settings.unreachable_after)
            self.trackers[device_id].site = dev.site
        wait = (record.time + timedelta(seconds=dev.interval_s * (1 - JITTER)) - clock.now()).total_seconds()
        if wait > 0:
            self.reschedule(device_id, delay_s=wait + dev.interval_s * JITTER * spread(device_id))
            return False
        self._rebase(device_id)
        return True

    def _spaced(self, device_id: int) -> bool:
        """A turn that comes sooner than the jittered interval after the last good poll (the
        scheduler catching up on turns a stalled event loop made late) waits for its time: one
        device is never polled twice in one interval. A failed poll's early retries still go."""
        tracker, dev = self.trackers.get(device_id), self.devices.get(device_id)
        if tracker is None or dev is None or tracker.last_poll is None or tracker.failures:
            return True
        wait = (tracker.last_poll + timedelta(seconds=dev.interval_s * (1 - JITTER)) - clock.now()).total_seconds()
        if wait <= 0:
            return True
        self.reschedule(device_id, delay_s=wait + dev.interval_s * JITTER * spread(device_id))
        return False

    def _rebase(self, device_id: int) -> None:
        """The first turn of an acquired device polls now, after the reads above (NATS round trips,
        slow on a loaded host): its next turn comes an interval after now, not after the planned
        turn, or the two polls would be closer than the interval."""
        dev = self.devices.get(device_id)
        if dev is not None:
            jitter = dev.interval_s * JITTER
            self.reschedule(device_id, delay_s=dev.interval_s - jitter / 2 + random.uniform(0, jitter))

    def _write(self, batch: list[_Pending]) -> dict[int, dict[int, str]]:
        """Into the spool, in order: the results, then the events (published when NATS takes them).
        The display names are central's to store: none come back here."""
        messages = []
        for p in batch:
            tracker = p.tracker or DeviceTracker(p.result.device)
            data = encode_record(p.device_id, p.result, tracker, collector=self.collector)
            messages.append((results_subject(self.settings, self.group, p.device_id), data))
        self.publisher.submit(messages)
        events = [e for p in batch for e in p.result.events]
        if events and self.sink is not None:
            self.sink.submit_events(events)
        return {}

    def _publish(self, batch: Sequence[_Pending], *, stored: bool = True) -> None:
        """Nothing more: events went into the spool with the results, samples travel in them."""
