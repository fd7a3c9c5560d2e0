"""The live stream of alarm changes (server-sent events) for the dashboard."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime

from alarms.bus import AlarmBus
from alarms.stream import STREAM, AlarmStream
from faultloop.events import AlarmChange
from faultloop.metrics import REGISTRY


def change(alarm_id: int, kind: str = "raised") -> AlarmChange:
    return AlarmChange(
        kind=kind,  # type: ignore[arg-type]
        alarm_id=alarm_id,
        reduction_key=f"link_down:r1:interface:Gi0/{alarm_id}",
        alarm_type="link_down",
        device="r1",
        managed_object=f"interface:Gi0/{alarm_id}",
        severity="major",
        state="active",
        count=1,
        muted=False,
        suppression_reason=None,
        parent_id=None,
        root_cause=False,
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_changes_published_from_another_thread_reach_a_listener():
    stream = AlarmStream()
    bus = AlarmBus()
    bus.subscribe("live stream", stream.publish)
    async with stream.listen() as queue:
        assert stream.listeners == 1
        worker = threading.Thread(target=bus.publish, args=([change(1), change(2, "cleared")],))
        worker.start()
        got = [await asyncio.wait_for(queue.get(), 5), await asyncio.wait_for(queue.get(), 5)]
        worker.join()
    assert [(c.alarm_id, c.kind) for c in got] == [(1, "raised"), (2, "cleared")]
    assert stream.listeners == 0


async def test_end_all_ends_open_streams_after_what_they_already_have():
    """A stopping server ends the live streams: an open dashboard tab must not hold it up."""
    stream = AlarmStream()
    async with stream.listen() as first, stream.listen() as second:
        stream.publish([change(7)])
        threading.Thread(target=stream.end_all).start()
        assert (await asyncio.wait_for(first.get(), 5)).alarm_id == 7
        assert await asyncio.wait_for(first.get(), 5) is None
        assert (await asyncio.wait_for(second.get(), 5)).alarm_id == 7
        assert await asyncio.wait_for(second.get(), 5) is None
    async with stream.listen() as later:  # a stream opened afterwards is not ended
        stream.publish([change(8)])
        assert (await asyncio.wait_for(later.get(), 5)).alarm_id == 8


async def test_a_slow_listener_loses_its_oldest_changes_and_they_are_counted():
    stream = AlarmStream(max_pending=2)
    before = REGISTRY.get_sample_value("faultloop_alarm_stream_dropped_total") or 0
    async with stream.listen() as queue:
        stream.publish([change(i) for i in range(5)])
        await asyncio.sleep(0)  # let the loop run the thread-safe callbacks already queued
        assert [queue.get_nowait().alarm_id for _ in range(queue.qsize())] == [3, 4]
    assert REGISTRY.get_sample_value("faultloop_alarm_stream_dropped_total") == before + 3


def test_sse_endpoint_streams_changes_to_any_role(client, auth):
    assert client.get("/api/v1/alarms/stream").status_code == 401
    with client.stream("GET", "/api/v1/alarms/stream", params={"limit": 1}, headers=auth("viewer")) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        STREAM.publish([change(7)])
        rest = [line for line in lines if line]
    assert rest[0] == "event: alarm" and rest[1] == "id: 7"
    data = json.loads(rest[2].removeprefix("data: "))
    assert (data["kind"], data["reduction_key"], data["at"]) == (
        "raised",
        "link_down:r1:interface:Gi0/7",
        "2026-01-01T00:00:00+00:00",
    )
