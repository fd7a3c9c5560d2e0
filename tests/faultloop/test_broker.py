"""The NATS JetStream transport (faultloop.broker, faultloop.transport) against real NATS servers
and the real alarm engine (its processing at the leader, its durable queue elsewhere) on each test
database backend (real commits)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import nats
import pytest
from pydantic import SecretStr
from sqlalchemy import delete, func, select, text

from alarms.bus import AlarmBus
from alarms.models import Alarm, EventRecord
from alarms.runner import AlarmEngine
from faultloop.broker import (
    DROPPED,
    MSG_ID,
    OVERSIZED,
    BrokerError,
    BrokerLink,
    Delivery,
    Publisher,
    PullConsumer,
    Spool,
    ensure_streams,
    stream_name,
    subject,
)
from faultloop.db import make_sessionmaker
from faultloop.events import Event, Sample
from faultloop.inbox import InboxEntry
from faultloop.leader import PgLeadership
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from faultloop.transport import CentralIntake, ObservationPublisher, decode_events, stream_setup
from tests.faultloop.natslab import SHARED_URL, NatsServer, delete_streams, unique_prefix, until

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(device: str, i: int) -> Event:
    return Event(source="trap", device=device, event_type="linkDown", severity="major", time=T0,
                 managed_object=f"interface:{i}", raw={"seq": i})  # fmt: skip


@pytest.fixture
def prefix():
    return unique_prefix()


@pytest.fixture
def nats_settings(tmp_path, prefix, settings):
    return settings.model_copy(update={"nats_url": SHARED_URL, "nats_stream_prefix": prefix, "nats_batch_size": 200})


@pytest.fixture
async def shared_streams(prefix):
    yield
    await delete_streams(SHARED_URL, prefix)


@pytest.fixture
def committed(db_engine):
    """Real commits on the run's test database; this test's rows are removed afterwards."""
    sessions = make_sessionmaker(db_engine)
    yield sessions
    with db_engine.begin() as conn:
        conn.execute(delete(EventRecord).where(EventRecord.device.like("natst-%")))
        conn.execute(delete(Alarm).where(Alarm.device.like("natst-%")))  # its journal goes with it
        conn.execute(delete(InboxEntry))


def stored(sessions, device: str) -> list[EventRecord]:
    with sessions() as s:
        return list(s.scalars(select(EventRecord).where(EventRecord.device == device).order_by(EventRecord.id)))


def central(
    settings: Settings, committed, vault, db_engine, *, leadership=None
) -> tuple[BrokerLink, CentralIntake]:
    rt = Runtime(settings=settings, engine=db_engine, sessions=committed, vault=vault)
    link = BrokerLink(settings, client_name="test-central")
    stream_setup(link, settings)
    return link, CentralIntake(link, committed, AlarmEngine(rt, AlarmBus(), leadership=leadership), settings)


def active_alarms(sessions, device: str) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).where(Alarm.device == device, Alarm.state == "active")) or 0


# ---- the spool ----------------------------------------------------------------------------------


def test_spool_is_bounded_drops_oldest_first_and_counts(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_messages=100)
    spool.append([("a.b", f"id{i}", str(i).encode()) for i in range(150)])
    assert len(spool) == 100
    assert spool.dropped == 50
    head = spool.head(3)
    assert [row[3] for row in head] == [b"50", b"51", b"52"]
    spool.remove_through(head[1][0])
    assert len(spool) == 98
    spool.close()
    again = Spool(tmp_path / "s.sqlite", max_messages=100)  # survives a restart, order kept
    assert len(again) == 98
    assert again.head(1)[0][3] == b"52"
    again.close()


# ---- exactly-once storage -------------------------------------------------------------------------


async def test_published_events_are_processed_once_in_order_at_the_leader_without_the_durable_queue(
    nats_settings, shared_streams, committed, vault, db_engine, tmp_path
):
    """The leading central claims a batch and processes it into alarms in ONE transaction: the
    events are stored already processed (never pending in the durable queue, never read back)."""
    device = f"natst-{unique_prefix()}"
    link, intake = central(nats_settings, committed, vault, db_engine)
    await link.start()
    await intake.start()
    collector_link = BrokerLink(nats_settings, client_name="test-collector")
    publisher = Publisher(collector_link, Spool(tmp_path / "spool.sqlite", max_messages=10_000), batch_size=200)
    sink = ObservationPublisher(publisher, nats_settings, group="default", collector="c1")
    await collector_link.start()
    await publisher.start()
    try:
        for start in range(0, 1000, 100):
            assert sink.submit_events([event(device, i) for i in range(start, start + 100)])
        await until(lambda: intake.stored >= 1000, what="1000 events stored")
    finally:
        await publisher.stop()
        await intake.stop()
        await collector_link.stop()
        await link.stop()
    rows = stored(committed, device)
    assert [r.raw["seq"] for r in rows] == list(range(1000))
    assert all(r.processed and r.action == "raise" and r.alarm_id is not None for r in rows)
    assert active_alarms(committed, device) == 1000  # one per interface
    assert intake.queued == 0
    assert len(publisher.spool) == 0
    assert publisher.published == 10  # packed: one message for each hundred submitted together


async def test_a_batch_committed_but_not_acknowledged_is_redelivered_and_stored_once(
    nats_settings, shared_streams, committed, vault, db_engine
):
    """Central 'crashes' between commit and ack: the redelivery finds its ids claimed."""
    device = f"natst-{unique_prefix()}"
    link, intake = central(nats_settings, committed, vault, db_engine)
    calls = []

    def commit_then_crash(deliveries: list[Delivery[Event]]) -> None:
        intake.store_events(deliveries)
        calls.append(len(deliveries))
        if len(calls) == 1:
            raise RuntimeError("crash after commit, before ack")

    prefix = nats_settings.nats_stream_prefix
    consumer = PullConsumer(
        link, stream=stream_name(prefix, "events"), durable="crashy", filter_subject=f"{prefix}.events.>",
        decode=decode_events, handle=commit_then_crash, retry_s=0.1,
    )  # fmt: skip
    await link.start()
    js = link.jetstream()
    for i in range(20):
        payload = json.dumps({**_wire(event(device, i))}).encode()
        await js.publish(subject(prefix, "events", "g", "c"), payload, headers={MSG_ID: f"m-{device}-{i}"})
    # the same message published again (a collector whose publish ack was lost): JetStream drops it
    await js.publish(subject(prefix, "events", "g", "c"), payload, headers={MSG_ID: f"m-{device}-19"})
    await consumer.start()
    try:
        await until(lambda: sum(calls) >= 40, what="the batch delivered twice")
        await until(lambda: _acked(js, prefix), what="everything acknowledged")
    finally:
        await consumer.stop()
        await link.stop()
    rows = stored(committed, device)
    assert [r.raw["seq"] for r in rows] == list(range(20))
    assert intake.duplicates >= 20
    assert active_alarms(committed, device) == 20  # processed once: the redelivery raised nothing twice


async def _acked(js, prefix) -> bool:
    info = await js.consumer_info(stream_name(prefix, "events"), "crashy")
    return info.num_ack_pending == 0 and info.num_pending == 0


def _wire(e: Event) -> dict:
    from faultloop.events import event_to_wire

    return event_to_wire(e)


def test_the_same_ids_twice_store_once(nats_settings, committed, vault, db_engine):
    device = f"natst-{unique_prefix()}"
    _link, intake = central(nats_settings, committed, vault, db_engine)
    batch = [Delivery(subject="x", msg_id=f"{device}-{i}", value=[event(device, i)]) for i in range(5)]
    intake.store_events(batch + batch[:2])  # a copy inside the same batch, too
    intake.store_events(batch)
    assert [r.raw["seq"] for r in stored(committed, device)] == [0, 1, 2, 3, 4]
    assert intake.duplicates == 7
    assert active_alarms(committed, device) == 5


# ---- the leader processes, followers do not fetch (PostgreSQL: the election) -------------------------


@pytest.fixture
def election(db_engine):
    """Two candidates on the test database's advisory lock (PostgreSQL only)."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("the election runs on PostgreSQL")
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM leader_epochs"))
    a = PgLeadership(db_engine, lease_s=5.0, holder="a")
    b = PgLeadership(db_engine, lease_s=5.0, holder="b")
    yield a, b
    for candidate in (a, b):
        candidate.release()


def test_a_batch_fenced_at_the_leader_goes_to_the_durable_queue_and_the_new_leader_processes_it_once(
    nats_settings, committed, vault, db_engine, election
):
    """Leadership moved between the fetch and the transaction (another instance took the epoch):
    the stale leader's processing is fenced, so nothing of it is written; the batch is claimed into
    the durable queue instead (then acknowledged), and the new leader processes it exactly once."""
    a, b = election
    a.step()
    assert a.leading
    device = f"natst-{unique_prefix()}"
    _link, intake = central(nats_settings, committed, vault, db_engine, leadership=a)
    with db_engine.begin() as conn:  # another instance was elected meanwhile
        conn.execute(text("UPDATE leader_epochs SET epoch = epoch + 1, holder = 'b'"))
    batch = [Delivery(subject="x", msg_id=f"{device}-{i}", value=[event(device, i)]) for i in range(5)]
    intake.store_events(batch)
    assert not a.leading
    assert intake.queued == 5 and intake.stored == 5
    rows = stored(committed, device)
    assert [(r.raw["seq"], r.processed, r.action) for r in rows] == [(i, False, "pending") for i in range(5)]
    assert active_alarms(committed, device) == 0
    intake.store_events(batch)  # redelivered: already claimed
    assert intake.stored == 5 and intake.duplicates == 5
    a.release()
    b.step()
    assert b.leading
    rt = Runtime(settings=nats_settings, engine=db_engine, sessions=committed, vault=vault)
    AlarmEngine(rt, AlarmBus(), leadership=b).run_once()
    assert [(r.processed, r.action) for r in stored(committed, device)] == [(True, "raise")] * 5
    assert active_alarms(committed, device) == 5


async def test_only_the_leader_fetches_events_and_a_new_leader_takes_them_over(
    nats_settings, shared_streams, committed, vault, db_engine, election
):
    """A follower's intake leaves the events in JetStream (its batches would only be written to the
    durable queue and read back by the leader); once it leads it fetches and processes them."""
    a, b = election
    a.step()
    b.step()
    assert a.leading and not b.leading
    device = f"natst-{unique_prefix()}"
    link, intake = central(nats_settings, committed, vault, db_engine, leadership=b)
    await link.start()
    await intake.start()
    try:
        js = link.jetstream()
        prefix = nats_settings.nats_stream_prefix
        for i in range(30):
            payload = json.dumps(_wire(event(device, i))).encode()
            await js.publish(subject(prefix, "events", "g", "c"), payload, headers={MSG_ID: f"f-{device}-{i}"})
        await asyncio.sleep(1.0)  # ten of the follower's idle turns
        assert intake.stored == 0 and stored(committed, device) == []
        a.release()
        b.step()
        assert b.leading
        await until(lambda: intake.stored >= 30, what="the new leader's intake took the events")
    finally:
        await intake.stop()
        await link.stop()
    assert intake.queued == 0
    assert [(r.raw["seq"], r.action) for r in stored(committed, device)] == [(i, "raise") for i in range(30)]
    assert active_alarms(committed, device) == 30


# ---- bad input on the wire --------------------------------------------------------------------------


async def test_an_unparseable_message_is_counted_dropped_and_logged_with_its_subject(
    nats_settings, shared_streams, committed, vault, db_engine, caplog
):
    device = f"natst-{unique_prefix()}"
    prefix = nats_settings.nats_stream_prefix
    link, intake = central(nats_settings, committed, vault, db_engine)
    await link.start()
    stream = stream_name(prefix, "events")
    before = DROPPED.labels(stream=stream, reason="unparseable")._value.get()
    js = link.jetstream()
    bad = [b"not json", b"[1, 2]", json.dumps({**_wire(event(device, 0)), "severity": "apocalyptic"}).encode()]
    for n, payload in enumerate(bad):
        await js.publish(subject(prefix, "events", "g", f"bad{n}"), payload)
    await js.publish(subject(prefix, "events", "g", "good"), json.dumps(_wire(event(device, 7))).encode())
    caplog.set_level(logging.ERROR, logger="faultloop.broker")
    await intake.start()
    try:
        await until(lambda: intake.stored >= 1, what="the good event stored")
    finally:
        await intake.stop()
        await link.stop()
    assert DROPPED.labels(stream=stream, reason="unparseable")._value.get() - before == 3
    text = caplog.text
    for n in range(3):
        assert f"{prefix}.events.g.bad{n}" in text
    assert "severity" in text  # the reason names the bad field
    assert [r.raw["seq"] for r in stored(committed, device)] == [7]


async def test_a_wrong_nats_credential_is_one_error_naming_the_setting(tmp_path, settings):
    server = NatsServer(tmp_path / "js", user="collector", password="right")
    server.start()
    try:
        wrong = settings.model_copy(
            update={"nats_url": server.url, "nats_user": "collector", "nats_password": SecretStr("wrong")}
        )
        link = BrokerLink(wrong, client_name="t")
        with pytest.raises(BrokerError) as exc:
            await link.start()
        message = str(exc.value)
        assert "FAULTLOOP_NATS_USER / FAULTLOOP_NATS_PASSWORD" in message and "refused" in message
        assert "wrong" not in message and "\n" not in message
        right = wrong.model_copy(update={"nats_password": SecretStr("right")})
        ok = BrokerLink(right, client_name="t")
        await ok.start()
        assert ok.connected
        await ok.stop()
    finally:
        server.stop()


def test_half_a_credential_names_both_settings(settings):
    with pytest.raises(BrokerError, match="FAULTLOOP_NATS_USER and FAULTLOOP_NATS_PASSWORD: set both or neither"):
        BrokerLink(settings.model_copy(update={"nats_url": SHARED_URL, "nats_user": "x"}), client_name="t")


def test_no_url_means_no_broker(settings):
    with pytest.raises(BrokerError, match="FAULTLOOP_NATS_URL: empty"):
        BrokerLink(settings, client_name="t")


# ---- resilience: NATS away, then back ----------------------------------------------------------------


async def test_nats_unreachable_at_start_spools_then_replays_in_order(
    tmp_path, settings, prefix, committed, vault, db_engine
):
    device = f"natst-{unique_prefix()}"
    server = NatsServer(tmp_path / "js")  # not started yet: nothing listens on its port
    s = settings.model_copy(update={"nats_url": server.url, "nats_stream_prefix": prefix})
    link = BrokerLink(s, client_name="collector", retry_s=0.1)
    stream_setup(link, s)
    publisher = Publisher(link, Spool(tmp_path / "spool.sqlite", max_messages=10_000), retry_s=0.1)
    sink = ObservationPublisher(publisher, s, group="default", collector="c1")
    await link.start()  # does not fail: degraded, retrying
    await publisher.start()
    assert publisher.degraded
    for i in range(300):
        sink.submit_events([event(device, i)])
    assert len(publisher.spool) == 300
    server.start()
    c_link, intake = central(s, committed, vault, db_engine)
    try:
        await until(lambda: link.connected and len(publisher.spool) == 0, what="the spool replayed")
        assert not publisher.degraded
        await c_link.start()
        await intake.start()
        await until(lambda: intake.stored >= 300, what="300 events stored")
    finally:
        await publisher.stop()
        await intake.stop()
        await link.stop()
        await c_link.stop()
        server.stop()
    assert [r.raw["seq"] for r in stored(committed, device)] == list(range(300))


async def test_a_message_over_the_servers_max_payload_is_dropped_counted_and_logged_and_does_not_block_the_rest(
    tmp_path, nats_settings, shared_streams, committed, vault, db_engine, caplog
):
    """An event too big for NATS (1 MiB by default) is dropped at the spool's head, not retried
    for ever: the events spooled before and after it still reach central, in order."""
    device = f"natst-{unique_prefix()}"
    link = BrokerLink(nats_settings, client_name="collector", retry_s=0.1)
    stream_setup(link, nats_settings)
    publisher = Publisher(link, Spool(tmp_path / "spool.sqlite", max_messages=1000, name="big"), retry_s=0.1)
    sink = ObservationPublisher(publisher, nats_settings, group="default", collector="c1")
    huge = Event(source="trap", device=device, event_type="linkDown", severity="major", time=T0,
                 managed_object="interface:1", raw={"seq": 1, "blob": "x" * (1100 * 1024)})  # fmt: skip
    before = OVERSIZED.labels(spool="big")._value.get()
    sink.submit_events([event(device, 0)])
    sink.submit_events([huge])
    sink.submit_events([event(device, 2)])
    c_link, intake = central(nats_settings, committed, vault, db_engine)
    await link.start()
    await c_link.start()
    await intake.start()
    try:
        with caplog.at_level(logging.ERROR, logger="faultloop.broker"):
            await publisher.start()
            await until(lambda: len(publisher.spool) == 0, what="the spool emptied")
            await until(lambda: intake.stored >= 2, what="the two small events stored")
    finally:
        await publisher.stop()
        await intake.stop()
        await link.stop()
        await c_link.stop()
    assert [r.raw["seq"] for r in stored(committed, device)] == [0, 2]
    assert publisher.published == 2
    assert OVERSIZED.labels(spool="big")._value.get() == before + 1
    assert any("max_payload" in r.getMessage() and ".events.default.c1" in r.getMessage() for r in caplog.records)


async def test_nats_restart_while_publishing_loses_nothing_and_duplicates_nothing(
    tmp_path, settings, prefix, committed, vault, db_engine
):
    device = f"natst-{unique_prefix()}"
    server = NatsServer(tmp_path / "js")
    server.start()
    s = settings.model_copy(update={"nats_url": server.url, "nats_stream_prefix": prefix})
    link = BrokerLink(s, client_name="collector", retry_s=0.1)
    stream_setup(link, s)
    publisher = Publisher(link, Spool(tmp_path / "spool.sqlite", max_messages=100_000), retry_s=0.1,
                          ack_timeout_s=2)  # fmt: skip
    sink = ObservationPublisher(publisher, s, group="default", collector="c1")
    c_link, intake = central(s, committed, vault, db_engine)
    for part in (link, publisher, c_link, intake):
        await part.start()
    try:
        for i in range(500):
            sink.submit_events([event(device, i)])
        await until(lambda: intake.stored >= 100, what="the first events stored")
        server.kill()  # kill -9 of the broker in the middle of the flow
        for i in range(500, 1000):
            sink.submit_events([event(device, i)])
        await until(lambda: publisher.degraded, what="the publisher degraded")
        server.start()
        await until(lambda: intake.stored >= 1000, timeout=60, what="all 1000 events stored")
    finally:
        for part in (publisher, intake, link, c_link):
            await part.stop()
        server.stop()
    assert [r.raw["seq"] for r in stored(committed, device)] == list(range(1000))


# ---- streams ---------------------------------------------------------------------------------------


async def test_streams_are_bounded_file_backed_and_deduplicating(nats_settings, shared_streams):
    nc = await nats.connect(SHARED_URL)
    try:
        js = nc.jetstream()
        await ensure_streams(js, nats_settings)
        await ensure_streams(js, nats_settings)  # idempotent
        info = await js.stream_info(stream_name(nats_settings.nats_stream_prefix, "events"))
    finally:
        await nc.close()
    assert info.config.max_age == nats_settings.nats_stream_max_age_h * 3600
    assert info.config.max_bytes == nats_settings.nats_stream_max_bytes
    assert info.config.duplicate_window == nats_settings.nats_duplicate_window_s
    assert getattr(info.config.storage, "value", info.config.storage) == "file"


def test_samples_travel_too(nats_settings, committed, vault, db_engine):
    """A sample batch the engine refuses (queue full) raises, so the consumer does not ack it."""
    from faultloop.transport import SinkRefused

    _link, intake = central(nats_settings.model_copy(update={"alarm_queue_size": 100}), committed, vault, db_engine)
    sample = Sample(device="natst-x", metric="m", value=1.0, time=T0)
    intake.take_samples([Delivery(subject="s", msg_id="1", value=[sample] * 5)] * 2)
    with pytest.raises(SinkRefused):
        intake.take_samples([Delivery(subject="s", msg_id="1", value=[sample] * 100)] * 2)


# ---- wiring -------------------------------------------------------------------------------------


def test_central_wiring_only_with_a_nats_url(runtime, nats_settings, vault, db_engine, committed):
    from faultloop.cmd.app import StartupError, build_pipeline, central_intake

    names = [s.name for s in build_pipeline(runtime).services]
    assert "nats link" not in names and "nats intake" not in names  # `make demo` needs no broker
    rt = Runtime(settings=nats_settings, engine=db_engine, sessions=committed, vault=vault)
    names = [s.name for s in build_pipeline(rt).services]
    assert names[:4] == ["leadership", "alarms", "nats link", "nats intake"]

    class Recorder:
        def submit_events(self, events):
            return True

        def submit_samples(self, samples):
            return True

    with pytest.raises(StartupError, match="FAULTLOOP_NATS_URL: central needs a durable sink"):
        central_intake(rt, Recorder())


async def test_caught_up_says_whether_what_was_spooled_before_has_been_published(tmp_path, settings, prefix):
    """The collector's hand-over waits on this (``RemotePoller.settle``): False while NATS is away,
    True once everything spooled before the call is acknowledged by JetStream."""
    device = f"natst-{unique_prefix()}"
    server = NatsServer(tmp_path / "js")  # not started yet: nothing listens on its port
    s = settings.model_copy(update={"nats_url": server.url, "nats_stream_prefix": prefix})
    link = BrokerLink(s, client_name="collector", retry_s=0.1)
    stream_setup(link, s)
    publisher = Publisher(link, Spool(tmp_path / "spool.sqlite", max_messages=10_000), retry_s=0.1)
    sink = ObservationPublisher(publisher, s, group="default", collector="c1")
    await link.start()
    await publisher.start()
    try:
        assert await publisher.caught_up(0.1)  # nothing spooled: nothing to wait for
        for i in range(5):
            sink.submit_events([event(device, i)])
        assert not await publisher.caught_up(0.3)
        assert len(publisher.spool) == 5
        server.start()
        assert await publisher.caught_up(30)
        assert len(publisher.spool) == 0 and publisher.published == 5
    finally:
        await publisher.stop()
        await link.stop()
        server.stop()
