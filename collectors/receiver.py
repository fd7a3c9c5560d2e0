"""What the trap and syslog receivers share: a UDP listener feeding a bounded queue,
per-source token buckets, drop counting by reason, rate-limited logging of malformed
packets, and the source address -> inventory device directory.

Flow of one datagram::

    kernel socket buffer --(socket_buffer, read from /proc/net/udp every few seconds)
    socket --datagram_received--> per-source token bucket --(rate_limited)
           --> bounded deque --(queue_full)--> worker: handler(data) -> Event
           --> ObservationSink.submit_events(batch) --(sink_refused)

The protocol callback only checks the bucket and appends: decoding happens in the
worker, in batches, so a burst is absorbed by the queue rather than by the kernel's
socket buffer. A handler exception never stops the listener: it is counted as
malformed and logged at most once per source per ``MALFORMED_LOG_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from collections import Counter as Tally
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy.orm import Session, sessionmaker

from faultloop import clock
from faultloop.db import write_transaction
from faultloop.events import DurableSink, Event, ObservationSink
from faultloop.metrics import REGISTRY
from faultloop.signals import ChangeSignal
from faultloop.worker import stop_task
from inventory import queries

log = logging.getLogger(__name__)

MALFORMED_LOG_INTERVAL_S = 60.0
SOCKET_RCVBUF = 4 * 1024 * 1024
SOCKET_DROPS_CHECK_S = 5.0
LINGER_S = 0.01  # under a flood, how long a short batch waits to fill
BUSY_GAP_S = 0.05  # a batch this soon after the last one is part of a flood
MAX_TRACKED_SOURCES = 65536
REVISION_CHECK_S = 1.0  # how often the directory reads the inventory revision (changes by other processes)

QUEUE_DEPTH = Gauge(
    "faultloop_receiver_queue_depth",
    "Datagrams waiting in a receiver's queue",
    ["receiver"],
    registry=REGISTRY,
)


UNATTRIBUTED = Counter(
    "faultloop_receiver_unattributed",
    "Datagrams accepted from a source the inventory does not know (no device, not a relay naming one); "
    "with FAULTLOOP_RECEIVER_UNKNOWN_SOURCES=drop they are dropped as unknown_source instead",
    ["receiver"],
    registry=REGISTRY,
)


class ReceiverError(Exception):
    """The receiver cannot start (e.g. the port is taken); the message says what to change."""


class Malformed(Exception):
    """The datagram cannot be parsed; the message is safe to log (no packet content)."""


class Rejected(Exception):
    """A well-formed datagram the receiver refuses; ``reason`` is the drop-counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(slots=True)
class Handled:
    event: Event | None
    reply: bytes | None = None  # datagram to send back to the source (SNMP Inform response)


# data, source address, receive time -> Handled; raises Malformed / Rejected / anything (counted)
Handler = Callable[[bytes, str, datetime], Handled]
# events -> written to the durable queue and committed (blocking, run in a thread); raises if not
Store = Callable[[list[Event]], None]
ACKED_REMEMBERED = 4096  # answered Informs remembered, so a retransmission is answered, not stored again


def durable_store(sessions: sessionmaker[Session], sink: ObservationSink) -> Store | None:
    """How a receiver makes an event durable before it acknowledges it (an SNMP Inform): the
    sink's durable queue (the alarm engine's ``alarm_events``), committed in a transaction of its
    own, then the sink is woken. None when the sink keeps events in memory only."""
    if not isinstance(sink, DurableSink):
        return None

    def store(events: list[Event]) -> None:
        with write_transaction(sessions) as session:
            sink.store_events(session, events)
        sink.events_stored()

    return store


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """Who a datagram is attributed to, and what happens to one nobody is.

    The UDP source address decides: a trap's agent-addr / ``snmpTrapAddress.0`` and a syslog
    HOSTNAME are claims anyone can write, trusted only from a configured relay
    (``FAULTLOOP_RECEIVER_RELAYS``). A datagram from an unknown source is dropped
    (``unknown_source``) or, with ``accept``, kept unattributed: device "" and no managed
    object, so however many unknown senders and ifIndexes there are, they fold into one
    alarm per alarm type instead of one per claimed object.
    """

    relays: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    drop_unknown: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> SourcePolicy:
        relays = tuple(
            ipaddress.ip_network(r.strip(), strict=False) for r in settings.receiver_relays.split(",") if r.strip()
        )
        return cls(relays=relays, drop_unknown=settings.receiver_unknown_sources == "drop")

    def is_relay(self, address: str) -> bool:
        if not self.relays:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.relays)

    def attribute(
        self,
        directory: DeviceDirectory,
        source: str,
        *,
        receiver: str,
        forwarded_address: str | None = None,
        forwarded_hostname: str | None = None,
    ) -> str:
        """The inventory hostname ``source`` speaks for, or "" (accept); raises Rejected (drop)."""
        if (forwarded_address or forwarded_hostname) and self.is_relay(source):
            device = directory.device_for(forwarded_address) if forwarded_address else ""
            if not device and forwarded_hostname:
                if forwarded_hostname in directory.hostnames:
                    device = forwarded_hostname
                else:
                    device = directory.device_for(forwarded_hostname)
        else:
            device = directory.device_for(source)
        if device:
            return device
        if self.drop_unknown:
            raise Rejected("unknown_source")
        UNATTRIBUTED.labels(receiver=receiver).inc()
        return ""


class TokenBuckets:
    """One token bucket per source address: ``rate_per_s`` sustained, ``burst`` at once.

    Time comes from ``faultloop.clock`` so tests freeze it and get exact counts.
    """

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self._buckets: dict[str, list[float]] = {}

    def allow(self, source: str, now_s: float) -> bool:
        b = self._buckets.get(source)
        if b is None:
            if len(self._buckets) >= MAX_TRACKED_SOURCES:
                self._forget_full(now_s)
            self._buckets[source] = [self.burst - 1.0, now_s]
            return True
        tokens = min(self.burst, b[0] + (now_s - b[1]) * self.rate)
        b[1] = now_s
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return True
        b[0] = tokens
        return False

    def _forget_full(self, now_s: float) -> None:
        # a bucket that has refilled is indistinguishable from a new one
        full_after = self.burst / self.rate if self.rate > 0 else float("inf")
        stale = [s for s, (_t, last) in self._buckets.items() if now_s - last >= full_after]
        for s in stale or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[s]


@dataclass
class ReceiverMetrics:
    received: Counter  # labelled by the handler (version / format)
    dropped: Counter  # labelled by reason
    malformed: Counter
    name: str
    _dropped_children: dict[str, Any] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        child = self._dropped_children.get(reason)
        if child is None:
            child = self._dropped_children[reason] = self.dropped.labels(reason=reason)
        child.inc(n)


class ReceiverService:
    """A UDP receiver as a pipeline service (``faultloop.events.Service``), limits from the settings."""

    name = "receiver"

    def __init__(
        self,
        *,
        settings: Any,
        host: str,
        port: int,
        handler: Handler,
        sink: ObservationSink,
        metrics: ReceiverMetrics,
        store: Store | None = None,
    ) -> None:
        self.receiver = UdpReceiver(
            name=self.name,
            host=host,
            port=port,
            handler=handler,
            sink=sink,
            metrics=metrics,
            queue_size=settings.receiver_queue_size,
            rate_per_source=settings.receiver_rate_per_source,
            burst_per_source=settings.receiver_burst_per_source,
            store=store,
        )

    async def start(self) -> None:
        await self.receiver.start()

    async def stop(self) -> None:
        await self.receiver.stop()


class UdpReceiver:
    """A UDP listener with a bounded queue and per-source rate limits, feeding a sink."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        handler: Handler,
        sink: ObservationSink,
        metrics: ReceiverMetrics,
        queue_size: int,
        rate_per_source: float,
        burst_per_source: int,
        batch_size: int = 256,
        store: Store | None = None,
        linger_s: float = LINGER_S,
    ) -> None:
        self.name = name
        self.linger_s = linger_s
        self.store = store
        # Informs being stored (their retransmissions are not stored again) and answered ones
        # (a retransmission gets the same answer): keyed by sender and answer, which for v1/v2c
        # carries the request id and varbinds of the Inform
        self._storing: set[tuple[tuple[str, int], bytes]] = set()
        self._acked: OrderedDict[tuple[tuple[str, int], bytes], None] = OrderedDict()
        self._store_tasks: set[asyncio.Task[None]] = set()
        self.host = host
        self.port = port
        self.handler = handler
        self.sink = sink
        self.metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.buckets = TokenBuckets(rate_per_source, burst_per_source)
        self.stats: Tally[str] = Tally()  # this instance's counts (metrics are process-wide)
        self._queue: deque[tuple[bytes, tuple[str, int], datetime]] = deque()
        self._wakeup = asyncio.Event()
        self._sock: socket.socket | None = None
        self._worker: asyncio.Task[None] | None = None
        self._malformed_logged: dict[str, float] = {}
        self._inode = 0
        self._kernel_drops = 0
        self._drops_watch: asyncio.Task[None] | None = None
        self._depth = QUEUE_DEPTH.labels(receiver=metrics.name)

    @property
    def address(self) -> tuple[str, int]:
        """Where the listener is bound (the real port when started with port 0)."""
        if self._sock is None:
            return (self.host, self.port)
        host, port = self._sock.getsockname()[:2]
        return (host, port)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RCVBUF)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ReceiverError(
                f"{self.name}: cannot listen on udp {self.host}:{self.port}: {exc.strerror}; "
                f"set FAULTLOOP_{self.name.split()[0].upper()}_HOST / FAULTLOOP_{self.name.split()[0].upper()}_PORT"
            ) from None
        sock.setblocking(False)
        self._sock = sock
        self._inode = os.fstat(sock.fileno()).st_ino
        self._kernel_drops = 0
        # add_reader + a recvfrom loop rather than a DatagramProtocol: asyncio's transport
        # reads one datagram per event-loop turn, which caps a flood at the loop's speed
        loop.add_reader(sock.fileno(), self._readable)
        self._worker = asyncio.create_task(self._run(), name=f"{self.name} worker")
        self._drops_watch = asyncio.create_task(self._watch_socket_drops(), name=f"{self.name} socket drops")

    async def stop(self) -> None:
        if self._drops_watch is not None:
            await stop_task(self._drops_watch)
            self._drops_watch = None
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self.count_socket_drops()
        if self._worker is not None:
            await stop_task(self._worker)
            self._worker = None
        self._process_batch(len(self._queue))  # what was accepted is not silently lost
        if self._store_tasks:  # Informs being stored: answered if their write commits
            await asyncio.gather(*self._store_tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # ------------------------------------------------------------ kernel-side drops
    def count_socket_drops(self) -> int:
        """Datagrams the kernel dropped because the socket buffer was full (Linux /proc/net/udp),
        counted as ``socket_buffer`` drops; returns how many are new since the last call."""
        if self._sock is None or not self._inode:
            return 0
        table = "/proc/net/udp6" if self._sock.family == socket.AF_INET6 else "/proc/net/udp"
        inode = str(self._inode)
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == inode:
                        total = int(fields[12])
                        break
                else:
                    return 0
        except (OSError, ValueError):  # not Linux, or /proc not mounted: nothing to add
            return 0
        new = total - self._kernel_drops
        if new > 0:
            self._kernel_drops = total
            self._drop("socket_buffer", new)
        return max(new, 0)

    async def _watch_socket_drops(self) -> None:
        while True:
            await asyncio.sleep(SOCKET_DROPS_CHECK_S)
            self.count_socket_drops()

    # ------------------------------------------------------------ receive side (socket readable)
    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(self.batch_size):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP port unreachable after an Inform response
                log.debug("%s: socket error: %s", self.name, exc)
                return
            self.datagram_received(data, addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stats["datagrams"] += 1
        now = clock.now()
        if not self.buckets.allow(addr[0], now.timestamp()):
            self._drop("rate_limited")
            return
        if len(self._queue) >= self.queue_size:
            self._drop("queue_full")
            return
        self._queue.append((data, addr, now))
        self._wakeup.set()

    # ------------------------------------------------------------ worker side
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = float("-inf")  # when the last batch went
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                # Under a flood (the last batch went moments ago) a short batch waits a moment to
                # fill: the sink's cost is per batch (a spool row and a NATS message, a transaction),
                # so a few large ones beat many small ones. A datagram after a quiet spell goes at once.
                if len(self._queue) < self.batch_size and loop.time() - last < BUSY_GAP_S:
                    await asyncio.sleep(self.linger_s)
                last = loop.time()
                self._process_batch(self.batch_size)
                await asyncio.sleep(0)  # let the protocol read the socket between batches

    async def drain(self) -> None:
        """Wait until everything queued so far has been handed to the sink (tests, shutdown)."""
        while self._queue:
            await asyncio.sleep(0)
        await asyncio.sleep(0)

    def _process_batch(self, limit: int) -> None:
        events: list[Event] = []
        replies: list[tuple[bytes, tuple[str, int]]] = []
        informs: list[tuple[Handled, tuple[str, int]]] = []
        queue = self._queue
        for _ in range(min(limit, len(queue))):
            data, addr, received_at = queue.popleft()
            try:
                handled = self.handler(data, addr[0], received_at)
            except Rejected as exc:
                self._drop(exc.reason)
                continue
            except Exception as exc:  # malformed input must never stop the listener
                self._malformed(addr[0], received_at, exc)
                continue
            if handled.reply is not None and self.store is not None:
                self._inform(handled, addr, informs)
                continue
            if handled.event is not None:
                events.append(handled.event)
            if handled.reply is not None:
                replies.append((handled.reply, addr))
        if events:
            if self.sink.submit_events(events):
                self.stats["events"] += len(events)
            else:
                self._drop("sink_refused", len(events))
                replies = []  # not taken: the Informs among them go unanswered, their senders retry
        for reply, addr in replies:
            self._reply(reply, addr)
        if informs:
            task = asyncio.get_running_loop().create_task(self._store_informs(informs))
            self._store_tasks.add(task)
            task.add_done_callback(self._store_tasks.discard)
        self._depth.set(len(queue))

    def _reply(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto(reply, addr)
        except OSError as exc:  # a full send buffer or an unreachable sender: the sender retries
            log.debug("%s: reply to %s failed: %s", self.name, addr[0], exc)

    def _inform(self, handled: Handled, addr: tuple[str, int], informs: list[tuple[Handled, tuple[str, int]]]) -> None:
        """An Inform is acknowledged only once its event is durable: queued for the store here;
        a retransmission of one being stored is dropped, of one answered is answered again."""
        assert handled.reply is not None
        key = (addr, handled.reply)
        if key in self._acked:
            self.stats["inform_retransmitted"] += 1
            self._reply(handled.reply, addr)
            return
        if key in self._storing:
            self.stats["inform_retransmitted"] += 1
            return
        self._storing.add(key)
        self.stats["inform_storing"] += 1
        informs.append((handled, addr))

    async def _store_informs(self, informs: list[tuple[Handled, tuple[str, int]]]) -> None:
        assert self.store is not None
        events = [h.event for h, _ in informs if h.event is not None]
        try:
            if events:
                await asyncio.to_thread(self.store, events)
        except Exception as exc:  # the database refused (locked, down): no answer, the sender retries
            self._drop("store_failed", len(informs))
            log.warning("%s: storing %d Inform(s) failed (%s); unanswered, the senders retry",
                        self.name, len(informs), type(exc).__name__)  # fmt: skip
            for handled, addr in informs:
                self._storing.discard((addr, handled.reply or b""))
            return
        self.stats["events"] += len(events)
        for handled, addr in informs:
            assert handled.reply is not None
            key = (addr, handled.reply)
            self._storing.discard(key)
            self._acked[key] = None
            if len(self._acked) > ACKED_REMEMBERED:
                self._acked.popitem(last=False)
            self._reply(handled.reply, addr)
        self.stats["inform_acknowledged"] += len(informs)

    def _drop(self, reason: str, n: int = 1) -> None:
        self.stats[f"dropped:{reason}"] += n
        self.metrics.drop(reason, n)

    def _malformed(self, source: str, at: datetime, exc: Exception) -> None:
        self.stats["malformed"] += 1
        self.metrics.malformed.inc()
        self._drop("malformed")
        t = at.timestamp()
        last = self._malformed_logged.get(source)
        if last is None or t - last >= MALFORMED_LOG_INTERVAL_S:
            if len(self._malformed_logged) >= MAX_TRACKED_SOURCES:
                self._malformed_logged.clear()
            self._malformed_logged[source] = t
            # the exception text comes from our parsers and never quotes packet content
            detail = str(exc) if isinstance(exc, Malformed | ValueError) else type(exc).__name__
            log.warning(
                "%s: malformed packet from %s (%s); further ones from this source are counted, "
                "logged at most once a minute",
                self.name,
                source,
                detail[:200],
            )


class DeviceDirectory:
    """Source address -> inventory hostname, and (hostname, ifIndex) -> interface name.

    Loaded from the inventory while started (it is a pipeline service of its own, shared by
    the receivers); lookups are dictionary reads on the receive path, never database queries.
    It reloads when told (``changes``: the inventory's after-commit signal in this process, so a
    device added through the API is known a few milliseconds after its commit), when the stored
    inventory revision moves (read every ``check_s``: a device added by the CLI, another
    process), and every ``refresh_s`` regardless.
    """

    name = "device directory"

    def __init__(
        self,
        sessions: sessionmaker[Session] | None,
        refresh_s: float = 60.0,
        *,
        changes: ChangeSignal | None = None,
        check_s: float = REVISION_CHECK_S,
    ) -> None:
        self.sessions = sessions
        self.refresh_s = refresh_s
        self.check_s = min(check_s, refresh_s)
        self.changes = changes
        self.by_address: dict[str, str] = {}
        self.hostnames: set[str] = set()
        self.interfaces: dict[tuple[str, int], str] = {}
        self.loaded_at: datetime | None = None
        self.revision: int | None = None
        self.reloads = 0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()

    def load(self) -> None:
        if self.sessions is None:
            return
        with self.sessions() as session:
            revision = queries.revision(session)
            devices = queries.device_addresses(session)
            itfs = queries.interface_names(session)
        by_address: dict[str, str] = {}
        for hostname, address in sorted(devices):
            by_address.setdefault(address, hostname)  # two devices on one address: first name wins
        self.by_address = by_address
        self.hostnames = {h for h, _a in devices}
        self.interfaces = {(h, i): n for h, i, n in itfs}
        self.revision = revision
        self.loaded_at = clock.now()
        self.reloads += 1

    def stale(self) -> bool:
        """Whether the stored inventory revision moved since the last load (one small read)."""
        if self.sessions is None:
            return False
        with self.sessions() as session:
            return queries.revision(session) != self.revision

    async def refresh(self) -> bool:
        try:
            await asyncio.to_thread(self.load)
            return True
        except Exception as exc:  # a database outage must not stop the receivers
            log.warning("device directory refresh failed: %s", type(exc).__name__)
            return False

    def inventory_changed(self) -> None:
        """The inventory committed a change in this process (any thread): reload soon."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        full_at = loop.time() + self.refresh_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.check_s)
            reload = self._wake.is_set() or loop.time() >= full_at
            self._wake.clear()
            if not reload:
                try:
                    reload = await asyncio.to_thread(self.stale)
                except Exception as exc:  # the full refresh logs an outage; this check stays quiet
                    log.debug("device directory revision check failed: %s", type(exc).__name__)
            if reload:
                await self.refresh()
                full_at = loop.time() + self.refresh_s

    async def start(self) -> None:
        await self.refresh()
        if self.sessions is not None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            if self.changes is not None:
                self.changes.subscribe(self.inventory_changed)
            self._task = asyncio.create_task(self._run(), name="device directory refresh")

    async def stop(self) -> None:
        if self.changes is not None:
            self.changes.unsubscribe(self.inventory_changed)
        self._loop = None
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    def device_for(self, address: str) -> str:
        return self.by_address.get(address, "")

    def interface_name(self, hostname: str, if_index: int) -> str | None:
        return self.interfaces.get((hostname, if_index))
