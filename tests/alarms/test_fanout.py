"""The live stream across instances: alarm changes fanned out over a real NATS server
(127.0.0.1:4222, core pub/sub), each instance's dashboards fed from its own stream."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid

import pytest

from alarms.bus import AlarmBus
from alarms.fanout import StreamFanout, decode, encode
from alarms.stream import AlarmStream
from faultloop.metrics import REGISTRY
from tests.alarms.test_stream import change

NATS_URL = "nats://127.0.0.1:4222"


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("faultloop_alarm_fanout_total", {"outcome": outcome}) or 0.0


async def next_change(queue, timeout=10):
    return await asyncio.wait_for(queue.get(), timeout)


async def test_a_change_committed_on_the_leader_reaches_the_other_instances_stream():
    subject = f"test.fanout.{uuid.uuid4().hex}"  # other runs on this broker never cross ours
    leader_stream, follower_stream = AlarmStream(), AlarmStream()
    leader = StreamFanout(NATS_URL, leader_stream, subject=subject)
    follower = StreamFanout(NATS_URL, follower_stream, subject=subject)
    await leader.start()
    await follower.start()
    bus = AlarmBus()  # the leader's bus, as build_pipeline wires it
    bus.subscribe("live stream", leader_stream.publish)
    bus.subscribe("live stream fan-out", leader.publish)
    try:
        async with leader_stream.listen() as mine, follower_stream.listen() as theirs:
            published = [change(1), change(2, "cleared")]
            worker = threading.Thread(target=bus.publish, args=(published,))  # the engine's thread
            worker.start()
            worker.join()
            assert [await next_change(theirs), await next_change(theirs)] == published
            assert [await next_change(mine), await next_change(mine)] == published
            # a second batch proves the first did not come back to the leader through the broker
            bus.publish([change(3)])
            assert await next_change(mine) == change(3)
            assert await next_change(theirs) == change(3)
            assert mine.empty() and theirs.empty()
    finally:
        await leader.stop()
        await follower.stop()


async def test_a_malformed_message_is_counted_and_dropped_and_the_next_one_still_arrives():
    import nats

    subject = f"test.fanout.{uuid.uuid4().hex}"
    stream = AlarmStream()
    follower = StreamFanout(NATS_URL, stream, subject=subject)
    await follower.start()
    nc = await nats.connect(NATS_URL)
    before = counted("malformed")
    try:
        async with stream.listen() as queue:
            for junk in (b"\xff\xfe", b"[1, 2]", b'{"origin": "x", "changes": [{"kind": "raised"}]}'):
                await nc.publish(subject, junk)
            await nc.publish(subject, encode("another instance", [change(7)]))
            assert await next_change(queue) == change(7)
            assert counted("malformed") - before == 3
    finally:
        await nc.close()
        await follower.stop()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"changes": []}', "expected an object with 'origin' (string) and 'changes' (list)"),
        (b'{"origin": "a", "changes": [{"kind": "raised", "alarm_id": 1}]}', "a change is not an alarm change object"),
        (
            b'{"origin": "a", "changes": [{"kind": "raised", "alarm_id": 1, "at": "yesterday"}]}',
            "a change is malformed",
        ),
        (
            b'{"origin": "a", "changes": [{"kind": "raised", "alarm_id": 1, "at": "2026-01-01T00:00:00+00:00",'
            b' "evil": 1}]}',
            "a change is not an alarm change object",
        ),
    ],
)
def test_decode_names_what_is_wrong(payload, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        decode(payload)


def test_encode_decode_round_trip():
    assert decode(encode("me", [change(1), change(2, "cleared")])) == ("me", [change(1), change(2, "cleared")])
