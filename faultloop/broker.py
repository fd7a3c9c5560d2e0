"""The NATS JetStream transport between collectors and central: generic plumbing, no domain.

- ``BrokerLink`` holds one connection made from the settings (``FAULTLOOP_NATS_*``). A wrong
  credential stops the start with a ``BrokerError`` naming the setting; an unreachable server
  does not: the link keeps trying in the background and reports itself degraded meanwhile.
- ``ensure_streams`` creates (or updates) the durable streams, file storage, bounded by age and
  bytes, with a duplicate window so a re-published ``Nats-Msg-Id`` is stored once.
- ``Publisher`` never blocks its callers: every message goes first into a bounded on-disk
  ``Spool`` (SQLite, in order; when full the oldest are dropped and counted), and one task
  publishes the spool's head in asynchronous batches (one publish ack awaited per batch, not per
  message) and removes only what JetStream acknowledged. A NATS outage just lets the spool grow;
  it drains in order when the link returns. A message published twice (its ack lost) keeps its
  ``Nats-Msg-Id``, so JetStream or the consumer's inbox stores it once.
- ``PullConsumer`` fetches batches from a durable pull consumer, decodes them (a message that does
  not decode is counted, logged with its subject and terminated, never a crash), hands the batch to
  a blocking callback that commits, and acknowledges only after the callback returned. A crash
  before the ack means redelivery; the callback deduplicates by message id (``faultloop.inbox``).
  A consumer given ``ready`` fetches only while it says yes (central's events: the leader only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import ssl
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import DEFAULT_MAX_PAYLOAD_SIZE
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from prometheus_client import Counter, Gauge

from faultloop.metrics import REGISTRY
from faultloop.settings import Settings
from faultloop.worker import stop_task

log = logging.getLogger("faultloop.broker")

MSG_ID = "Nats-Msg-Id"
HEADER_ROOM = 256  # the NATS/1.0 header line and the Nats-Msg-Id header, with room to spare
STREAM_KINDS = ("events", "samples", "results", "ssh")

PUBLISHED = Counter("faultloop_broker_published_total", "Messages acknowledged by JetStream", registry=REGISTRY)
SPOOLED = Gauge("faultloop_broker_spool_messages", "Messages waiting in the local spool", ["spool"], registry=REGISTRY)
SPOOL_DROPPED = Counter(
    "faultloop_broker_spool_dropped_total", "Oldest spooled messages dropped because the spool was full",
    ["spool"], registry=REGISTRY,
)  # fmt: skip
CONSUMED = Counter(
    "faultloop_broker_consumed_total", "Messages committed and acknowledged", ["stream"], registry=REGISTRY
)
OVERSIZED = Counter(
    "faultloop_broker_oversized_dropped_total",
    "Spooled messages dropped because they exceed the NATS server's max_payload", ["spool"], registry=REGISTRY,
)  # fmt: skip
DROPPED = Counter(
    "faultloop_broker_messages_dropped_total", "Messages consumed and dropped", ["stream", "reason"], registry=REGISTRY
)


class BrokerError(Exception):
    """The broker cannot be used as configured; the message names the setting to fix."""


# ---- names --------------------------------------------------------------------------------


def stream_name(prefix: str, kind: str) -> str:
    return f"{prefix}_{kind}".upper().replace("-", "_")


def subject(prefix: str, kind: str, *tokens: str) -> str:
    """``<prefix>.<kind>.<token>...``; tokens are sanitised (no '.', '*', '>' or spaces)."""
    clean = [t.replace(".", "_").replace("*", "_").replace(">", "_").replace(" ", "_") or "_" for t in tokens]
    return ".".join([prefix, kind, *clean])


# ---- connection ---------------------------------------------------------------------------


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    wants_tls = any(u.strip().startswith(("tls://", "wss://")) for u in settings.nats_url.split(","))
    if not (wants_tls or settings.nats_tls_ca_file or settings.nats_tls_cert_file):
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(settings.nats_tls_ca_file) if settings.nats_tls_ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"FAULTLOOP_NATS_TLS_CA_FILE: cannot load {settings.nats_tls_ca_file}: {exc}") from None
    if settings.nats_tls_cert_file or settings.nats_tls_key_file:
        if not (settings.nats_tls_cert_file and settings.nats_tls_key_file):
            raise BrokerError("FAULTLOOP_NATS_TLS_CERT_FILE and FAULTLOOP_NATS_TLS_KEY_FILE: set both or neither")
        try:
            ctx.load_cert_chain(str(settings.nats_tls_cert_file), str(settings.nats_tls_key_file))
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(
                f"FAULTLOOP_NATS_TLS_CERT_FILE / FAULTLOOP_NATS_TLS_KEY_FILE: cannot load the client certificate: {exc}"
            ) from None
    return ctx


def connect_options(settings: Settings, *, name: str) -> dict[str, Any]:
    """nats-py ``connect`` keyword arguments from the settings (validated; secrets stay in memory)."""
    if not settings.nats_url:
        raise BrokerError("FAULTLOOP_NATS_URL: empty, no broker configured")
    opts: dict[str, Any] = {
        "servers": [u.strip() for u in settings.nats_url.split(",") if u.strip()],
        "name": name,
        "connect_timeout": 5,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,  # once connected, reconnect forever (the spool holds the backlog)
        "reconnect_time_wait": 1,
    }
    if settings.nats_user or settings.nats_password is not None:
        if not settings.nats_user or settings.nats_password is None:
            raise BrokerError("FAULTLOOP_NATS_USER and FAULTLOOP_NATS_PASSWORD: set both or neither")
        opts["user"] = settings.nats_user
        opts["password"] = settings.nats_password.get_secret_value()
    if settings.nats_token is not None:
        opts["token"] = settings.nats_token.get_secret_value()
    if settings.nats_creds_file is not None:
        if not settings.nats_creds_file.is_file():
            raise BrokerError(f"FAULTLOOP_NATS_CREDS_FILE: no such file {settings.nats_creds_file}")
        opts["user_credentials"] = str(settings.nats_creds_file)
    tls = _tls_context(settings)
    if tls is not None:
        opts["tls"] = tls
    return opts


def _credential_setting(settings: Settings) -> str:
    if settings.nats_creds_file is not None:
        return "FAULTLOOP_NATS_CREDS_FILE"
    if settings.nats_token is not None:
        return "FAULTLOOP_NATS_TOKEN"
    if settings.nats_user:
        return "FAULTLOOP_NATS_USER / FAULTLOOP_NATS_PASSWORD"
    return "FAULTLOOP_NATS_USER / FAULTLOOP_NATS_PASSWORD (none set)"


def _is_auth_failure(exc: BaseException) -> bool:
    if isinstance(exc, nats.errors.AuthorizationError | nats.errors.InvalidUserCredentialsError):
        return True
    return "authorization" in str(exc).lower()


class BrokerLink:
    """One NATS connection for a process. ``start`` fails only on what retrying cannot fix (a
    refused credential, a bad TLS file); an unreachable server is retried in the background."""

    name = "nats link"

    def __init__(self, settings: Settings, *, client_name: str, retry_s: float = 1.0) -> None:
        self.settings = settings
        self.client_name = client_name
        self._options = connect_options(settings, name=client_name)
        self._retry_s = retry_s
        self.nc: NATS | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_connect: list[Callable[[], Any]] = []
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def on_connect(self, callback: Callable[[], Any]) -> None:
        """An async callable run after each (re)connection, e.g. ``ensure_streams``."""
        self._on_connect.append(callback)

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return self.connected

    @property
    def max_payload(self) -> int:
        """The largest message (payload and headers) the connected server takes (its INFO)."""
        return self.nc.max_payload if self.nc is not None else DEFAULT_MAX_PAYLOAD_SIZE

    def jetstream(self) -> Any:
        if self.nc is None:
            raise BrokerError("not connected to NATS")
        return self.nc.jetstream()

    async def start(self) -> None:
        try:
            await self._connect_once()
        except BrokerError:
            raise
        except Exception as exc:  # unreachable: keep trying in the background, degraded meanwhile
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("NATS at %s unreachable (%s); retrying", self._servers(), type(exc).__name__)
            self._task = asyncio.create_task(self._keep_connecting(), name=f"nats-connect-{self.client_name}")

    def _servers(self) -> str:
        return ",".join(self._options["servers"])

    async def _connect_once(self) -> None:
        async def on_error(exc: Exception) -> None:
            self.last_error = type(exc).__name__
            log.debug("NATS: %s", type(exc).__name__)

        async def on_disconnected() -> None:
            self._connected.clear()
            if self.nc is not None:  # not while the first attempt fails
                log.warning("NATS connection lost; spooling")

        async def on_reconnected() -> None:
            log.info("NATS reconnected")
            await self._connected_now()

        options = dict(self._options)
        # The first attempt only: a failure here is reported, not retried inside nats-py.
        options["allow_reconnect"] = False
        options["max_reconnect_attempts"] = 1  # nats-py: -1 loops here forever, 0 never gives up
        nc = NATS()
        try:
            await nc.connect(
                **options, error_cb=on_error, disconnected_cb=on_disconnected, reconnected_cb=on_reconnected
            )
        except Exception as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            if _is_auth_failure(exc):
                raise BrokerError(
                    f"{_credential_setting(self.settings)}: the NATS server at {self._servers()} refused the credential"
                ) from None
            if isinstance(exc, ssl.SSLError):
                raise BrokerError(f"FAULTLOOP_NATS_TLS_CA_FILE: TLS with {self._servers()} failed: {exc}") from None
            raise
        # From now on nats-py reconnects by itself, forever.
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        self.nc = nc
        await self._connected_now()

    async def _connected_now(self) -> None:
        for callback in self._on_connect:
            try:
                await callback()
            except Exception as exc:
                log.error("after connecting to NATS: %s: %s", type(exc).__name__, exc)
        self._connected.set()

    async def _keep_connecting(self) -> None:
        while self.nc is None:
            await asyncio.sleep(self._retry_s)
            try:
                await self._connect_once()
            except BrokerError as exc:
                log.error("%s", exc)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        self.nc = None
        self._connected.clear()


async def ensure_streams(js: Any, settings: Settings, kinds: Sequence[str] = STREAM_KINDS) -> None:
    """Create or update ``<PREFIX>_<KIND>`` streams on ``<prefix>.<kind>.>`` (idempotent)."""
    prefix = settings.nats_stream_prefix
    for kind in kinds:
        config = js_api.StreamConfig(
            name=stream_name(prefix, kind),
            subjects=[f"{prefix}.{kind}.>"],
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE,
            discard=js_api.DiscardPolicy.OLD,
            max_age=settings.nats_stream_max_age_h * 3600,
            max_bytes=settings.nats_stream_max_bytes,
            duplicate_window=settings.nats_duplicate_window_s,
        )
        try:
            await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


# ---- the on-disk spool --------------------------------------------------------------------


class Spool:
    """A bounded FIFO of (subject, message id, payload) in a SQLite file; thread-safe.

    Appends commit in WAL mode without fsync per message (``synchronous=NORMAL``): a process crash
    loses nothing, a power cut may lose the last moments. When full, the oldest go first (counted)."""

    def __init__(self, path: Path, *, max_messages: int, name: str = "spool") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.name = name
        self.max_messages = max_messages
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, "
            "msg_id TEXT NOT NULL, payload BLOB NOT NULL)"
        )
        self._count = int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])
        SPOOLED.labels(spool=name).set(self._count)

    def __len__(self) -> int:
        return self._count

    def append(self, rows: Sequence[tuple[str, str, bytes]]) -> None:
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO spool (subject, msg_id, payload) VALUES (?, ?, ?)", rows)
                overflow = self._count + len(rows) - self.max_messages
                if overflow > 0:
                    self._db.execute(
                        "DELETE FROM spool WHERE seq IN (SELECT seq FROM spool ORDER BY seq LIMIT ?)", (overflow,)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if overflow > 0:
                self.dropped += overflow
                SPOOL_DROPPED.labels(spool=self.name).inc(overflow)
            self._count += len(rows) - max(overflow, 0)
            SPOOLED.labels(spool=self.name).set(self._count)
        if overflow > 0:
            log.warning("spool %s full: dropped the %d oldest messages", self.name, overflow)

    def head(self, limit: int) -> list[tuple[int, str, str, bytes]]:
        with self._lock:
            return list(
                self._db.execute("SELECT seq, subject, msg_id, payload FROM spool ORDER BY seq LIMIT ?", (limit,))
            )

    def seq_range(self) -> tuple[int, int] | None:
        """(oldest, newest) sequence number held, or None when empty."""
        with self._lock:
            low, high = self._db.execute("SELECT min(seq), max(seq) FROM spool").fetchone()
        return None if low is None else (int(low), int(high))

    def remove_through(self, seq: int) -> None:
        """Remove every message up to ``seq`` (published, or dropped by the caller)."""
        with self._lock:
            removed = self._db.execute("DELETE FROM spool WHERE seq <= ?", (seq,)).rowcount
            self._count -= removed
            SPOOLED.labels(spool=self.name).set(self._count)

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ---- publishing ---------------------------------------------------------------------------


class Publisher:
    """Spool first, then publish the spool's head in asynchronous batches, in order."""

    name = "nats publisher"

    def __init__(
        self, link: BrokerLink, spool: Spool, *, batch_size: int = 500, ack_timeout_s: float = 10.0,
        retry_s: float = 1.0,
    ) -> None:  # fmt: skip
        self.link = link
        self.spool = spool
        self.batch_size = batch_size
        self.ack_timeout_s = ack_timeout_s
        self.retry_s = retry_s
        self.published = 0
        self.failing = False  # the last batch failed: NATS (or the stream) is not taking messages
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._origin = uuid.uuid4().hex[:12]
        self._counter = 0
        self._id_lock = threading.Lock()

    def _next_id(self) -> str:
        with self._id_lock:
            self._counter += 1
            return f"{self._origin}-{self._counter}"

    def submit(self, messages: Sequence[tuple[str, bytes]]) -> list[str]:
        """Spool ``(subject, payload)`` messages (any thread; never blocks on the network).
        Returns their message ids, kept through every re-publish."""
        rows = [(subj, self._next_id(), payload) for subj, payload in messages]
        self.spool.append(rows)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)
        return [r[1] for r in rows]

    @property
    def degraded(self) -> bool:
        return not self.link.connected or self.failing

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="nats-publisher")

    async def stop(self, drain_s: float = 5.0) -> None:
        """Publish what can be published within ``drain_s``; the rest stays in the spool for next start."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), drain_s)
        await stop_task(self._task)
        self._task = None

    async def caught_up(self, timeout_s: float) -> bool:
        """Whether everything submitted before this call has left the spool (acknowledged by
        JetStream, or dropped as the oldest when full) within ``timeout_s``; what is submitted
        meanwhile is not waited for."""
        held = await asyncio.to_thread(self.spool.seq_range)
        if held is None:
            return True
        mark = held[1]
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            held = await asyncio.to_thread(self.spool.seq_range)
            if held is None or held[0] > mark:
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.05)

    async def _drained(self) -> None:
        while len(self.spool) and self.link.connected:
            self._wake.set()
            await asyncio.sleep(0.05)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.retry_s)
            self._wake.clear()
            while len(self.spool) and self.link.connected:
                try:
                    ok = await self._publish_head()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("publishing to NATS failed: %s", type(exc).__name__)
                    ok = False
                self.failing = not ok
                if not ok:
                    break

    async def _publish_head(self) -> bool:
        rows = await asyncio.to_thread(self.spool.head, self.batch_size)
        if not rows:
            return True
        # A message the server would refuse for its size would block the head for ever: the ones
        # before it go now, then it is dropped (counted, logged) and the rest follows.
        limit = self.link.max_payload - HEADER_ROOM
        too_big = next((i for i, row in enumerate(rows) if len(row[3]) > limit), None)
        if too_big == 0:
            seq, subj, msg_id, payload = rows[0]
            await asyncio.to_thread(self.spool.remove_through, seq)
            OVERSIZED.labels(spool=self.spool.name).inc()
            log.error("dropped message %s on %s: %d bytes, over the NATS server's max_payload (%d bytes)",
                      msg_id, subj, len(payload), self.link.max_payload)  # fmt: skip
            return True
        if too_big is not None:
            rows = rows[:too_big]
        js = self.link.jetstream()
        futures = []
        for _seq, subj, msg_id, payload in rows:
            futures.append(await js.publish_async(subj, payload, headers={MSG_ID: msg_id}))
        done, pending = await asyncio.wait(futures, timeout=self.ack_timeout_s)
        for f in pending:
            f.cancel()
        # Remove only the acknowledged prefix: order is kept, the rest is re-published (same ids).
        last_ok = None
        for (seq, *_rest), future in zip(rows, futures, strict=True):
            if future not in done or future.cancelled() or future.exception() is not None:
                break
            last_ok = seq
        acked = 0 if last_ok is None else sum(1 for r in rows if r[0] <= last_ok)
        if last_ok is not None:
            await asyncio.to_thread(self.spool.remove_through, last_ok)
            self.published += acked
            PUBLISHED.inc(acked)
        return acked == len(rows)


# ---- consuming ----------------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivery(Generic[T]):
    subject: str
    msg_id: str  # the publisher's Nats-Msg-Id, else "<stream>:<stream sequence>"
    value: T


class PullConsumer(Generic[T]):
    """A durable pull consumer: fetch a batch, decode, ``handle`` (blocking: commits), then ack.

    ``decode`` raises ``ValueError`` for a message that does not parse: it is counted, logged with
    its subject and terminated (never redelivered, never a crash). ``handle`` raising means the
    batch was not stored: nothing is acknowledged and the batch comes back after ``retry_s``.
    ``ready`` (optional): fetch only while it returns True, asked again every ``idle_s``."""

    def __init__(
        self,
        link: BrokerLink,
        *,
        stream: str,
        durable: str,
        filter_subject: str,
        decode: Callable[[bytes], T],
        handle: Callable[[list[Delivery[T]]], None],
        batch_size: int = 500,
        ack_wait_s: float = 30.0,
        retry_s: float = 2.0,
        ready: Callable[[], bool] | None = None,
        idle_s: float = 0.1,
    ) -> None:
        self.link = link
        self.stream = stream
        self.durable = durable
        self.filter_subject = filter_subject
        self.decode = decode
        self.handle = handle
        self.batch_size = batch_size
        self.ack_wait_s = ack_wait_s
        self.retry_s = retry_s
        self.ready = ready
        self.idle_s = idle_s
        self.name = f"consumer {durable}"
        self.failing = False
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"nats-consumer-{self.durable}")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def _subscribe(self) -> Any:
        config = js_api.ConsumerConfig(
            durable_name=self.durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            deliver_policy=js_api.DeliverPolicy.ALL,
            ack_wait=self.ack_wait_s,
            max_ack_pending=max(self.batch_size * 4, 1000),
            filter_subject=self.filter_subject,
        )
        return await self.link.jetstream().pull_subscribe(
            self.filter_subject, durable=self.durable, stream=self.stream, config=config
        )

    async def _run(self) -> None:
        # Two stages: while one batch is handled (a thread: claim, store, commit) and then acked,
        # the next is fetched and decoded here. Batches are handled one at a time, in fetch order.
        handling: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    if not self.link.connected:
                        self._sub = None
                        await self.link.wait_connected(self.retry_s)
                        continue
                    if self.ready is not None and not self.ready():
                        await asyncio.sleep(self.idle_s)
                        continue
                    if self._sub is None:
                        self._sub = await self._subscribe()
                    try:
                        msgs = await self._sub.fetch(self.batch_size, timeout=1.0)
                    except (nats.errors.TimeoutError, TimeoutError):
                        continue
                    deliveries, good = await self._decode(msgs)
                    if handling is not None:
                        previous, handling = handling, None
                        await previous
                    if deliveries:
                        handling = asyncio.create_task(self._handle(deliveries, good))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a lost connection, a deleted consumer: subscribe again
                    log.warning("consumer %s: %s: %s", self.durable, type(exc).__name__, str(exc)[:200])
                    self._sub = None
                    await asyncio.sleep(self.retry_s)
        finally:
            if handling is not None:  # stopping: the batch in hand is committed and acked (else it comes again)
                await asyncio.shield(handling)

    async def _decode(self, msgs: list[Msg]) -> tuple[list[Delivery[T]], list[Msg]]:
        deliveries: list[Delivery[T]] = []
        good: list[Msg] = []
        for msg in msgs:
            try:
                value = self.decode(msg.data)
            except ValueError as exc:
                DROPPED.labels(stream=self.stream, reason="unparseable").inc()
                log.error("dropped a message on %s that does not parse: %s", msg.subject, str(exc)[:200])
                with contextlib.suppress(Exception):
                    await msg.term()
                continue
            msg_id = (msg.headers or {}).get(MSG_ID) or f"{self.stream}:{msg.metadata.sequence.stream}"
            deliveries.append(Delivery(subject=msg.subject, msg_id=msg_id, value=value))
            good.append(msg)
        return deliveries, good

    async def _handle(self, deliveries: list[Delivery[T]], good: list[Msg]) -> None:
        try:
            await asyncio.to_thread(self.handle, deliveries)
        except Exception as exc:
            self.failing = True
            log.error("consumer %s: batch of %d not stored (%s); redelivered later", self.durable,
                      len(deliveries), type(exc).__name__)  # fmt: skip
            for msg in good:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=self.retry_s)
            return
        self.failing = False
        for msg in good:
            await msg.ack()
        CONSUMED.labels(stream=self.stream).inc(len(good))
