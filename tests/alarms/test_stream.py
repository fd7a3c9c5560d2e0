"""The live stream of alarm changes (server-sent events) for the dashboard."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from itertools import islice

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


# ---- the token is checked again while the stream is open; listeners are capped ---------------------


def _user_token(session, name, role="viewer", ttl_days=1.0):
    from faultloop.accounts import service as accounts

    user = accounts.create_user(session, username=name, role=role, password=None, actor="test")
    row, token = accounts.create_token(session, user=user, name="test", ttl_days=ttl_days, actor="test")
    session.commit()
    return user, row, {"Authorization": f"Bearer {token}"}


def _read_until_end(lines):
    """Every line left up to the end of the stream (the server closes it)."""
    return list(lines)


def test_a_revoked_token_ends_the_stream_at_its_next_check(client, session):
    from faultloop import clock
    from faultloop.accounts import service as accounts

    _user, row, headers = _user_token(session, "stream-viewer")
    frozen = clock.FrozenClock(datetime.now(UTC))
    with clock.use(frozen), client.stream(
        "GET", "/api/v1/alarms/stream", params={"limit": 2, "heartbeat_s": 60}, headers=headers
    ) as response:
        lines = (line for line in response.iter_lines() if line)
        assert next(lines) == ": connected"
        STREAM.publish([change(1)])  # within the heartbeat: no check, delivered
        assert [next(lines), next(lines)] == ["event: alarm", "id: 1"]
        accounts.revoke_token(session, token_id=row.id, actor="test")
        session.commit()
        frozen.advance(61)  # a heartbeat's time later, the next change makes the stream check again
        STREAM.publish([change(2)])
        rest = _read_until_end(lines)
    assert "event: alarm" not in rest, rest
    assert rest[-2:] == ["event: end", 'data: {"reason": "invalid or revoked token"}']


def test_an_expired_token_or_a_disabled_user_ends_the_stream(client, session):
    from faultloop import clock
    from faultloop.accounts.models import User

    _user, _row, headers = _user_token(session, "stream-expiring", ttl_days=1)
    frozen = clock.FrozenClock(datetime.now(UTC))
    with clock.use(frozen), client.stream(
        "GET", "/api/v1/alarms/stream", params={"limit": 1, "heartbeat_s": 60}, headers=headers
    ) as response:
        lines = (line for line in response.iter_lines() if line)
        assert next(lines) == ": connected"
        frozen.advance(2 * 86400)
        STREAM.publish([change(3)])
        rest = _read_until_end(lines)
    assert rest == ["event: end", 'data: {"reason": "token expired"}']

    user, _row, headers = _user_token(session, "stream-disabled")
    frozen = clock.FrozenClock(datetime.now(UTC))
    with clock.use(frozen), client.stream(
        "GET", "/api/v1/alarms/stream", params={"limit": 1, "heartbeat_s": 60}, headers=headers
    ) as response:
        lines = (line for line in response.iter_lines() if line)
        assert next(lines) == ": connected"
        session.get(User, user.id).disabled = True
        session.commit()
        frozen.advance(61)
        STREAM.publish([change(4)])
        rest = _read_until_end(lines)
    assert rest == ["event: end", 'data: {"reason": "user disabled"}']


def test_a_quiet_stream_checks_the_token_at_its_heartbeat(client, session):
    """No change flows: the heartbeat itself (1 s here) re-checks the token."""
    from faultloop.accounts import service as accounts

    _user, row, headers = _user_token(session, "stream-quiet")
    with client.stream(
        "GET", "/api/v1/alarms/stream", params={"limit": 1, "heartbeat_s": 1}, headers=headers
    ) as response:
        lines = (line for line in response.iter_lines() if line)
        assert next(lines) == ": connected"
        accounts.revoke_token(session, token_id=row.id, actor="test")
        session.commit()
        rest = list(islice(lines, 2))  # the first heartbeat ends it (bounded: a regression cannot hang)
    assert rest == ["event: end", 'data: {"reason": "invalid or revoked token"}']


def test_listeners_are_capped_per_user_and_in_total(runtime, client, session):
    from contextlib import ExitStack

    runtime.settings.alarm_stream_max_per_user = 2
    runtime.settings.alarm_stream_max_total = STREAM.listeners + 3
    _a, _ra, alice = _user_token(session, "stream-alice")
    _b, _rb, bob = _user_token(session, "stream-bob")
    _c, _rc, carol = _user_token(session, "stream-carol")
    before = REGISTRY.get_sample_value("faultloop_alarm_stream_refused_total", {"cap": "per_user"}) or 0

    def open_stream(stack, headers):
        response = stack.enter_context(client.stream("GET", "/api/v1/alarms/stream", headers=headers))
        if response.status_code == 200:
            assert next(response.iter_lines()) == ": connected"
        else:
            response.read()
        return response

    with ExitStack() as stack:
        assert open_stream(stack, alice).status_code == 200
        first_of_alice = stack.pop_all()
        assert open_stream(stack, alice).status_code == 200
        r = open_stream(stack, alice)
        assert r.status_code == 429, r.status_code
        assert r.headers["retry-after"] == "10" and "already has 2 live alarm streams" in r.json()["detail"]
        assert REGISTRY.get_sample_value("faultloop_alarm_stream_refused_total", {"cap": "per_user"}) == before + 1
        assert open_stream(stack, bob).status_code == 200  # three open: the total cap
        r = open_stream(stack, carol)
        assert r.status_code == 503 and r.headers["retry-after"] == "10"
        assert "live alarm streams are open" in r.json()["detail"]
        first_of_alice.close()  # a closed stream frees its slot
        assert open_stream(stack, carol).status_code == 200
    assert STREAM.listeners == runtime.settings.alarm_stream_max_total - 3
