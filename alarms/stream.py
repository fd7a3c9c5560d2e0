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
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict

from prometheus_client import Counter

from faultloop.events import AlarmChange
from faultloop.metrics import REGISTRY

STREAM_DROPPED = Counter(
    "faultloop_alarm_stream_dropped_total", "Alarm changes a slow live-stream listener missed", registry=REGISTRY
)


def sse(change: AlarmChange) -> str:
    data = asdict(change)
    data["at"] = change.at.isoformat()
    return f"event: alarm\nid: {change.alarm_id}\ndata: {json.dumps(data, sort_keys=True)}\n\n"


class AlarmStream:
    def __init__(self, max_pending: int = 1000) -> None:
        self.max_pending = max_pending
        self._listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[AlarmChange | None]]] = set()
        self._lock = threading.Lock()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def publish(self, changes: Sequence[AlarmChange]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for loop, queue in listeners:
            for change in changes:
                try:
                    loop.call_soon_threadsafe(self._put, queue, change)
                except RuntimeError:  # that listener's loop is closed
                    with self._lock:
                        self._listeners.discard((loop, queue))
                    break

    def end_all(self) -> None:
        """End every stream open now (each listener gets ``None`` after what it already has)."""
        with self._lock:
            listeners = list(self._listeners)
        for loop, queue in listeners:
            try:
                loop.call_soon_threadsafe(self._put, queue, None)
            except RuntimeError:  # that listener's loop is closed
                pass

    def _put(self, queue: asyncio.Queue[AlarmChange | None], change: AlarmChange | None) -> None:
        if queue.full():
            queue.get_nowait()
            STREAM_DROPPED.inc()
        queue.put_nowait(change)

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[AlarmChange | None]]:
        """A queue of changes; ``None`` in it means the stream is over (the server stops)."""
        entry = (asyncio.get_running_loop(), asyncio.Queue[AlarmChange | None](self.max_pending))
        with self._lock:
            self._listeners.add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._listeners.discard(entry)


# One per process, like the metrics registry: build_pipeline subscribes it to the alarm bus,
# the API's GET /api/v1/alarms/stream listens to it.
STREAM = AlarmStream()
