"""The live alarm stream across instances: alarm changes fanned out over core NATS pub/sub.

Only the leading central instance runs the alarm engine, but a dashboard may be open on any
instance. This bus subscriber publishes each committed batch of changes on one subject;
every instance subscribes and hands what other instances published to its own live stream
(``alarms.stream``). Its own batches reach its stream directly, from the bus, so a broker
outage never silences the leader's dashboards. Core NATS is at-most-once, like the stream
itself: a dashboard that misses a change reloads the console (the database is the truth).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from alarms.bus import AlarmChange
from alarms.stream import AlarmStream
from faultloop.metrics import REGISTRY

log = logging.getLogger("faultloop.alarms.fanout")

SUBJECT = "faultloop.alarms.changes"
FANOUT = Counter(
    "faultloop_alarm_fanout_total",
    "Alarm change batches fanned out between instances, by outcome",
    ["outcome"],  # published, received, publish_failed, malformed
    registry=REGISTRY,
)
CONNECT_TIMEOUT_S = 10
_FIELDS = {f.name for f in fields(AlarmChange)}


def encode(origin: str, changes: Sequence[AlarmChange]) -> bytes:
    items = []
    for change in changes:
        data = asdict(change)
        data["at"] = change.at.isoformat()
        items.append(data)
    return json.dumps({"origin": origin, "changes": items}, separators=(",", ":")).encode()


def decode(payload: bytes) -> tuple[str, list[AlarmChange]]:
    """(origin, changes); ValueError naming what is wrong for anything else."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("origin"), str) or not isinstance(doc.get("changes"), list):
        raise ValueError("expected an object with 'origin' (string) and 'changes' (list)")
    changes = []
    for item in doc["changes"]:
        if not isinstance(item, dict) or set(item) - _FIELDS or not {"kind", "alarm_id", "at"} <= set(item):
            raise ValueError("a change is not an alarm change object")
        try:
            item = dict(item, at=datetime.fromisoformat(item["at"]))
            changes.append(AlarmChange(**item))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a change is malformed: {exc}") from None
    return doc["origin"], changes


class StreamFanout:
    """A service: connects to NATS, subscribes; ``publish`` is the alarm bus subscriber."""

    name = "live stream fan-out"

    def __init__(
        self,
        url: str,
        stream: AlarmStream,
        *,
        subject: str = SUBJECT,
        cluster: Callable[[], str] | None = None,
        origin: str | None = None,
    ) -> None:
        """``cluster``: what the instances sharing one database have in common (read at start), appended to
        ``subject`` so that two deployments on one broker never see each other's alarms."""
        self.url = url
        self.stream = stream
        self.subject = subject
        self._cluster = cluster
        self.origin = origin or uuid.uuid4().hex
        self._nc: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        import nats

        self._loop = asyncio.get_running_loop()
        if self._cluster is not None:
            self.subject = f"{self.subject}.{await asyncio.to_thread(self._cluster)}"
        try:
            # unlimited reconnects (a broker restart must not end the fan-out for good) also make the
            # first connect retry forever: bound it, so a wrong URL stops the start with a message
            self._nc = await asyncio.wait_for(
                nats.connect(
                    servers=[u.strip() for u in self.url.split(",") if u.strip()],
                    name=f"faultloop {self.origin}",
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=self._on_error,
                ),
                CONNECT_TIMEOUT_S,
            )
        except (Exception, TimeoutError) as exc:
            reason = str(exc) or ("no answer" if isinstance(exc, TimeoutError) else type(exc).__name__)
            raise RuntimeError(f"cannot reach NATS at {self.url} (FAULTLOOP_NATS_URL): {reason}") from None
        await self._nc.subscribe(self.subject, cb=self._on_message)
        # the server registers the subscription only when it reads the SUB: until the PONG of this
        # flush, a change another instance publishes may reach the server first and miss this one
        await self._nc.flush(timeout=CONNECT_TIMEOUT_S)

    async def stop(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                await asyncio.wait_for(nc.drain(), 5)
            except Exception as exc:  # the broker is gone; nothing is left to flush
                log.info("NATS drain on stop failed: %s", type(exc).__name__)
                await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS: %s", type(exc).__name__)

    def publish(self, changes: Sequence[AlarmChange]) -> None:
        """Alarm bus subscriber (the engine's thread, after commit): hand the batch to the loop."""
        nc, loop = self._nc, self._loop
        if nc is None or loop is None or not changes:
            return
        payload = encode(self.origin, changes)
        try:
            asyncio.run_coroutine_threadsafe(self._send(payload), loop)
        except RuntimeError:  # the loop is closed: the process is stopping
            FANOUT.labels(outcome="publish_failed").inc()

    async def _send(self, payload: bytes) -> None:
        nc = self._nc
        try:
            if nc is None:
                raise ConnectionError("not connected")
            await nc.publish(self.subject, payload)
            FANOUT.labels(outcome="published").inc()
        except Exception as exc:
            FANOUT.labels(outcome="publish_failed").inc()
            log.warning("alarm changes not fanned out: %s", type(exc).__name__)

    async def _on_message(self, msg: Any) -> None:
        try:
            origin, changes = decode(msg.data)
        except ValueError as exc:
            FANOUT.labels(outcome="malformed").inc()
            log.warning("malformed alarm fan-out message on %s dropped: %s", msg.subject, exc)
            return
        if origin == self.origin:
            return  # our own batch already reached our stream from the bus
        FANOUT.labels(outcome="received").inc()
        self.stream.publish(changes)
