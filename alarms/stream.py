"""The live stream of alarm changes for the dashboard (server-sent events).

A bus subscriber like the others (after commit). The engine publishes from its worker
thread; each listener is an asyncio queue on the API's event loop, fed thread-safely. A
slow listener loses its oldest changes (counted), never blocks the engine. When the server
shuts down, ``end_all`` ends every open stream: an open dashboard tab must not keep a
stopping service waiting for its connection to close.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter as Tally
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass

from prometheus_client import Counter

from faultloop.errors import Busy, TooManyRequests
from faultloop.events import AlarmChange
from faultloop.metrics import REGISTRY

STREAM_DROPPED = Counter(
    "faultloop_alarm_stream_dropped_total", "Alarm changes a slow live-stream listener missed", registry=REGISTRY
)

STREAM_REFUSED = Counter(
    "faultloop_alarm_stream_refused_total",
    "Live alarm streams refused at a cap (per_user, total)",
    ["cap"],
    registry=REGISTRY,
)
STREAM_ENDED = Counter(
    "faultloop_alarm_stream_ended_total",
    "Live alarm streams ended because their token no longer holds (revoked, expired, user disabled)",
    registry=REGISTRY,
)


def sse(change: AlarmChange) -> str:
    data = asdict(change)
    data["at"] = change.at.isoformat()
    return f"event: alarm\nid: {change.alarm_id}\ndata: {json.dumps(data, sort_keys=True)}\n\n"


@dataclass(eq=False)
class Listener:
    owner: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[AlarmChange | None]


class AlarmStream:
    def __init__(self, max_pending: int = 1000) -> None:
        self.max_pending = max_pending
        self._listeners: set[Listener] = set()
        self._per_owner: Tally[str] = Tally()
        self._lock = threading.Lock()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def publish(self, changes: Sequence[AlarmChange]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            for change in changes:
                try:
                    listener.loop.call_soon_threadsafe(self._put, listener.queue, change)
                except RuntimeError:  # that listener's loop is closed
                    self.close(listener)
                    break

    def end_all(self) -> None:
        """End every stream open now (each listener gets ``None`` after what it already has)."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener.loop.call_soon_threadsafe(self._put, listener.queue, None)
            except RuntimeError:  # that listener's loop is closed
                pass

    def _put(self, queue: asyncio.Queue[AlarmChange | None], change: AlarmChange | None) -> None:
        if queue.full():
            queue.get_nowait()
            STREAM_DROPPED.inc()
        queue.put_nowait(change)

    def open(self, owner: str, *, max_per_owner: int | None = None, max_total: int | None = None) -> Listener:
        """Register a listener on the running loop, or refuse it: 429 when ``owner`` (a user)
        already holds ``max_per_owner`` streams, 503 when ``max_total`` are open. ``close`` it."""
        listener = Listener(owner, asyncio.get_running_loop(), asyncio.Queue(self.max_pending))
        with self._lock:
            if max_total is not None and len(self._listeners) >= max_total:
                STREAM_REFUSED.labels("total").inc()
                raise Busy(f"{max_total} live alarm streams are open, the most this server serves", retry_after=10)
            if max_per_owner is not None and self._per_owner[owner] >= max_per_owner:
                STREAM_REFUSED.labels("per_user").inc()
                raise TooManyRequests(
                    f"this user already has {max_per_owner} live alarm streams open (the most allowed); "
                    "close one first",
                    retry_after=10,
                )
            self._listeners.add(listener)
            self._per_owner[owner] += 1
        return listener

    def close(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.discard(listener)
                self._per_owner[listener.owner] -= 1
                if self._per_owner[listener.owner] <= 0:
                    del self._per_owner[listener.owner]

    @asynccontextmanager
    async def listen(self, owner: str = "") -> AsyncIterator[asyncio.Queue[AlarmChange | None]]:
        """A queue of changes; ``None`` in it means the stream is over (the server stops)."""
        listener = self.open(owner)
        try:
            yield listener.queue
        finally:
            self.close(listener)


# One per process, like the metrics registry: build_pipeline subscribes it to the alarm bus,
# the API's GET /api/v1/alarms/stream listens to it.
STREAM = AlarmStream()
