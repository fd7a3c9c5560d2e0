"""Observations over NATS JetStream: the collector's sink and central's intake.

A collector hands its events and samples to an ``ObservationPublisher`` (an ``ObservationSink``):
they are spooled on disk and published to ``<prefix>.events.<group>.<collector>`` /
``<prefix>.samples.<group>.<collector>``, packed: one message holds a JSON array of up to
``PER_MESSAGE`` events (samples) of one submitted batch, so a flood costs one spool row, one
publish, one stored message, one ack and one inbox claim per array, not per event. A message id
names the array: it is stored (or dropped as a duplicate) whole. A message holding one JSON object
is one event, as collectors before the packing sent them. Central's ``CentralIntake`` consumes both streams with
durable pull consumers. Events: the message ids are claimed in the ``broker_inbox`` table and the
new events are processed into alarms and stored as processed events in ONE transaction, the alarm
engine's (``ClaimingSink.process_claimed``); only after it commits are the messages acknowledged.
So a crash anywhere loses no acknowledged event and a redelivered one is stored once. Only the
instance that leads (whose engine processes) fetches events; a batch it fetched just before it
lost the lead goes into the durable queue (``DurableSink.store_events``) in the claiming
transaction instead, which the next leader processes. Samples feed threshold rules only; they
are handed to the engine's in-memory queue and acknowledged once it accepted them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from faultloop import clock, inbox
from faultloop.broker import BrokerLink, Delivery, Publisher, PullConsumer, ensure_streams, stream_name, subject
from faultloop.db import write_transaction
from faultloop.events import (
    ClaimingSink,
    DurableSink,
    Event,
    ObservationSink,
    Sample,
    event_from_wire,
    event_to_wire,
    sample_from_wire,
    sample_to_wire,
)
from faultloop.settings import Settings

log = logging.getLogger("faultloop.transport")

INBOX_PURGE_EVERY_S = 3600.0

T = TypeVar("T")


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=str).encode()


PER_MESSAGE = 200  # events (samples) packed into one message at most
MESSAGE_MAX_BYTES = 256 * 1024  # and at most this much (NATS refuses payloads over max_payload, 1 MiB by default)


def pack(docs: Sequence[dict[str, Any]]) -> list[bytes]:
    """JSON arrays of the wire documents, in order, each within PER_MESSAGE and MESSAGE_MAX_BYTES
    (a document bigger than the byte bound on its own travels alone)."""
    messages: list[bytes] = []
    parts: list[bytes] = []
    size = 2
    for doc in docs:
        part = _json(doc)
        if parts and (len(parts) >= PER_MESSAGE or size + len(part) + 1 > MESSAGE_MAX_BYTES):
            messages.append(b"[" + b",".join(parts) + b"]")
            parts, size = [], 2
        parts.append(part)
        size += len(part) + 1
    if parts:
        messages.append(b"[" + b",".join(parts) + b"]")
    return messages


def _unpack(data: bytes, from_wire: Callable[[Any], T]) -> list[T]:
    doc = json.loads(data)
    if not isinstance(doc, list):
        return [from_wire(doc)]  # one object: a collector from before the packing
    if not doc:
        raise ValueError("an empty array")
    out = []
    for n, item in enumerate(doc):
        try:
            out.append(from_wire(item))
        except ValueError as exc:
            raise ValueError(f"item {n}: {exc}") from None
    return out


def decode_events(data: bytes) -> list[Event]:
    """A message of the events stream: a JSON array of events (or one event object). ValueError
    (naming the item and field) when any part does not parse: the message is dropped whole."""
    return _unpack(data, event_from_wire)


def decode_samples(data: bytes) -> list[Sample]:
    return _unpack(data, sample_from_wire)


class ObservationPublisher:
    """The collector-side ``ObservationSink``: never refuses (the spool drops its oldest when full)."""

    def __init__(self, publisher: Publisher, settings: Settings, *, group: str, collector: str) -> None:
        prefix = settings.nats_stream_prefix
        self.publisher = publisher
        self._events_subject = subject(prefix, "events", group, collector)
        self._samples_subject = subject(prefix, "samples", group, collector)

    def submit_events(self, events: Sequence[Event]) -> bool:
        if events:
            self.publisher.submit([(self._events_subject, m) for m in pack([event_to_wire(e) for e in events])])
        return True

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        if samples:
            self.publisher.submit([(self._samples_subject, m) for m in pack([sample_to_wire(s) for s in samples])])
        return True


class SinkRefused(Exception):
    """The alarm engine's queue refused a batch; it is redelivered later."""


class CentralIntake:
    """Central's consumers of the events and samples streams, feeding the alarm engine."""

    name = "nats intake"

    def __init__(
        self, link: BrokerLink, sessions: sessionmaker[Session], sink: DurableSink, settings: Settings,
        *, durable: str = "central",
    ) -> None:  # fmt: skip
        self.link = link
        self.sessions = sessions
        self.sink = sink
        self.settings = settings
        self.stored = 0  # new events taken, either way
        self.queued = 0  # of those, put into the durable queue (this instance did not lead)
        self.duplicates = 0
        self._last_purge: float | None = None
        prefix = settings.nats_stream_prefix
        self.events = PullConsumer(
            link, stream=stream_name(prefix, "events"), durable=f"{durable}-events",
            filter_subject=f"{prefix}.events.>", decode=decode_events, handle=self.store_events,
            batch_size=settings.nats_batch_size, ready=self.takes_events,
        )  # fmt: skip
        self.samples = PullConsumer(
            link, stream=stream_name(prefix, "samples"), durable=f"{durable}-samples",
            filter_subject=f"{prefix}.samples.>", decode=decode_samples, handle=self.take_samples,
            batch_size=settings.nats_batch_size,
        )  # fmt: skip

    def takes_events(self) -> bool:
        """Fetch events only where they are processed at once: on the instance that leads (a
        follower's batches would be written to the durable queue and read back by the leader)."""
        return not isinstance(self.sink, ClaimingSink) or self.sink.takes_claimed()

    def store_events(self, deliveries: list[Delivery[list[Event]]]) -> None:
        """Claim the messages' ids and process (leader) or store (otherwise) the new messages'
        events in one transaction; then the consumer acks."""
        now = clock.now()
        events: list[Event] = []
        duplicates = 0

        def claim(session: Session) -> list[Event]:
            nonlocal duplicates
            new = inbox.claim(session, (d.msg_id for d in deliveries), now=now)
            events.clear()
            duplicates = 0
            for d in deliveries:
                key = d.msg_id[: inbox.MSG_ID_MAX]
                if key in new:
                    new.discard(key)  # a second copy inside the same batch is a duplicate too
                    events.extend(d.value)
                else:
                    duplicates += len(d.value)
            self._maybe_purge(session, now)
            return events

        if not (isinstance(self.sink, ClaimingSink) and self.sink.process_claimed(claim)):
            with write_transaction(self.sessions) as session:
                self.sink.store_events(session, claim(session))
            self.queued += len(events)
            if events:
                self.sink.events_stored()
        self.stored += len(events)
        self.duplicates += duplicates

    def _maybe_purge(self, session: Session, now: Any) -> None:
        mono = now.timestamp()
        if self._last_purge is not None and mono - self._last_purge < INBOX_PURGE_EVERY_S:
            return
        self._last_purge = mono
        keep = timedelta(hours=self.settings.nats_stream_max_age_h, seconds=self.settings.nats_duplicate_window_s)
        inbox.purge(session, older_than=now - keep - timedelta(days=1))

    def take_samples(self, deliveries: list[Delivery[list[Sample]]]) -> None:
        if not self.sink.submit_samples([s for d in deliveries for s in d.value]):
            raise SinkRefused("the alarm engine's queue is full")

    async def start(self) -> None:
        await self.events.start()
        await self.samples.start()

    async def stop(self) -> None:
        await self.events.stop()
        await self.samples.stop()


def stream_setup(link: BrokerLink, settings: Settings) -> None:
    """Create or update the streams each time the link (re)connects."""

    async def ensure() -> None:
        await ensure_streams(link.jetstream(), settings)

    link.on_connect(ensure)


def is_durable(sink: ObservationSink) -> bool:
    return isinstance(sink, DurableSink)
