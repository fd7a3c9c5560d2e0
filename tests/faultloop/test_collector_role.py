"""The collector role (faultloop.cmd.app.build_collector) against the real NATS server and a real
central (alarm engine durable queue on the test database): no database on the collector."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import delete, select

from alarms.bus import AlarmBus
from alarms.models import Alarm, EventRecord
from alarms.runner import AlarmEngine
from faultloop.broker import BrokerLink
from faultloop.cmd.app import StartupError, build_collector
from faultloop.cmd.collector import DirectoryPublisher
from faultloop.db import make_sessionmaker, transaction
from faultloop.runtime import Runtime
from faultloop.transport import CentralIntake, stream_setup
from inventory import service as inventory
from inventory.models import Device
from inventory.schemas import DeviceIn
from tests.faultloop.natslab import SHARED_URL, delete_streams, free_port, unique_prefix, until

LINK_DOWN = b"<187>Mar  1 12:00:00 r1 %LINK-3-UPDOWN: Interface Gi0/7, changed state to down"


@pytest.fixture
def prefix():
    return unique_prefix()


@pytest.fixture
async def streams(prefix):
    yield
    await delete_streams(SHARED_URL, prefix)
    import nats

    nc = await nats.connect(SHARED_URL)
    js = nc.jetstream()
    for bucket in ("DIRECTORY", "MEMBERS"):
        try:
            await js.delete_key_value(f"{prefix}_{bucket}".upper())
        except Exception:
            pass
    await nc.close()


@pytest.fixture
def key():
    return Fernet.generate_key().decode()


@pytest.fixture
def group():
    return f"east-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def base(settings, prefix, key, group, tmp_path):
    return settings.model_copy(
        update={
            "nats_url": SHARED_URL, "nats_stream_prefix": prefix, "collector_key": _secret(key),
            "collector_group": group, "collector_name": "c1", "trap_enabled": False, "syslog_port": 0,
            "data_dir": tmp_path / "collector", "receiver_directory_refresh_s": 0.5, "collector_heartbeat_s": 0.5,
        }
    )  # fmt: skip


def _secret(value: str):
    from pydantic import SecretStr

    return SecretStr(value)


@pytest.fixture
def device(db_engine, vault, group):
    """A device at 127.0.0.1 in this test's collector group (committed; removed afterwards)."""
    sessions = make_sessionmaker(db_engine)
    hostname = f"natst-{uuid.uuid4().hex[:8]}"
    with transaction(sessions) as session:
        inventory.create_device(
            session, vault, DeviceIn(hostname=hostname, address="127.0.0.1", role="access", collector_group=group),
            actor="test",
        )  # fmt: skip
    yield hostname
    with db_engine.begin() as conn:
        conn.execute(delete(EventRecord).where(EventRecord.device == hostname))
        conn.execute(delete(Alarm).where(Alarm.device == hostname))  # the leader's intake made them; journal goes too
        conn.execute(delete(Device).where(Device.hostname == hostname))


async def start_central(s, db_engine, vault):
    sessions = make_sessionmaker(db_engine)
    rt = Runtime(settings=s, engine=db_engine, sessions=sessions, vault=vault)
    link = BrokerLink(s, client_name="central")
    stream_setup(link, s)
    intake = CentralIntake(link, sessions, AlarmEngine(rt, AlarmBus()), s)
    directory = DirectoryPublisher(link, sessions, s, vault=vault)
    for part in (link, intake):
        await part.start()
    await directory.publish_once()
    return [link, intake], intake, sessions


def send_syslog(port: int, payload: bytes = LINK_DOWN) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload, ("127.0.0.1", port))


def syslog_port(process) -> int:
    receiver = next(s for s in process.pipeline.services if s.name == "syslog receiver")
    return receiver.receiver.address[1]


async def test_a_collector_receives_for_its_group_and_central_stores_the_event(base, streams, device, db_engine, vault):
    parts, intake, sessions = await start_central(base, db_engine, vault)
    process = build_collector(base)
    await process.pipeline.start()
    try:
        assert process.health()["status"] == "ok"
        assert process.health()["devices"] == 1
        send_syslog(syslog_port(process))
        await until(lambda: intake.stored >= 1, what="the syslog event stored at central")
    finally:
        await process.pipeline.stop()
        for part in reversed(parts):
            await part.stop()
    with sessions() as s:
        rows = list(s.scalars(select(EventRecord).where(EventRecord.device == device)))
    assert [(r.source, r.event_type, r.managed_object) for r in rows] == [("syslog", "linkDown", "interface:Gi0/7")]


async def test_the_directory_on_the_wire_is_encrypted(base, streams, device, db_engine, vault):
    parts, _intake, _sessions = await start_central(base, db_engine, vault)
    try:
        kv = await parts[0].jetstream().key_value(f"{base.nats_stream_prefix}_DIRECTORY".upper())
        entry = await kv.get(base.collector_group)
    finally:
        for part in reversed(parts):
            await part.stop()
    assert device.encode() not in entry.value and b"127.0.0.1" not in entry.value


async def test_a_wrong_collector_key_is_one_error_naming_the_setting(base, streams, device, db_engine, vault):
    parts, _intake, _sessions = await start_central(base, db_engine, vault)
    wrong = base.model_copy(update={"collector_key": _secret(Fernet.generate_key().decode())})
    process = build_collector(wrong)
    try:
        with pytest.raises(StartupError) as exc:
            await process.pipeline.start()
    finally:
        for part in reversed(parts):
            await part.stop()
    message = str(exc.value)
    assert "FAULTLOOP_COLLECTOR_KEY: cannot decrypt the device directory" in message and "\n" not in message


async def test_a_second_collector_with_the_same_name_is_refused(base, streams, device, db_engine, vault):
    parts, _intake, _sessions = await start_central(base, db_engine, vault)
    first = build_collector(base)
    await first.pipeline.start()
    second = build_collector(base.model_copy(update={"data_dir": base.data_dir / "second"}))
    try:
        with pytest.raises(StartupError, match="FAULTLOOP_COLLECTOR_NAME: a collector named 'c1' is already running"):
            await second.pipeline.start()
        other = build_collector(base.model_copy(update={"collector_name": "c2", "data_dir": base.data_dir / "c2"}))
        await other.pipeline.start()  # another name in the same group is welcome
        await other.pipeline.stop()
    finally:
        await first.pipeline.stop()
        for part in reversed(parts):
            await part.stop()


async def test_with_nats_unreachable_the_collector_receives_spools_and_says_degraded(base, tmp_path):
    s = base.model_copy(update={"nats_url": f"nats://127.0.0.1:{free_port()}"})
    process = build_collector(s)
    await process.pipeline.start()
    try:
        health = process.health()
        assert health["status"] == "degraded" and health["nats"] == "unreachable"
        from fastapi.testclient import TestClient

        assert TestClient(process.app).get("/healthz").json()["status"] == "degraded"
        receiver = next(x for x in process.pipeline.services if x.name == "syslog receiver")
        # no directory yet: the source is unknown, but the line is still received and spooled
        send_syslog(receiver.receiver.address[1])
        await until(lambda: process.health()["spooled"] >= 1, what="the event spooled")
    finally:
        await process.pipeline.stop()
    assert (s.data_dir / "spool" / f"{s.collector_group}-c1.sqlite").exists()


@pytest.mark.parametrize(
    "update,expected",
    [
        ({"nats_url": ""}, "FAULTLOOP_NATS_URL: empty; the collector role needs the broker"),
        ({"collector_key": None}, "FAULTLOOP_COLLECTOR_KEY: empty"),
        ({"collector_key": "not-a-key"}, "FAULTLOOP_COLLECTOR_KEY: not a valid Fernet key"),
    ],
)
def test_collector_settings_that_cannot_work_name_the_setting(base, update, expected):
    if isinstance(update.get("collector_key"), str):
        update = {"collector_key": _secret(update["collector_key"])}
    with pytest.raises(StartupError, match=expected):
        build_collector(base.model_copy(update=update))


def test_the_collector_s_metrics_need_the_metrics_token_when_set(base):
    """docker-compose publishes no collector port, but the collector's /metrics answers anyone who
    reaches it: with FAULTLOOP_METRICS_TOKEN set it wants the same bearer token as central's."""
    from fastapi.testclient import TestClient

    token = "m-" + uuid.uuid4().hex
    client = TestClient(build_collector(base.model_copy(update={"metrics_token": _secret(token)})).app)
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"] == "metrics need Authorization: Bearer <FAULTLOOP_METRICS_TOKEN>"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and "faultloop_" in ok.text
    open_client = TestClient(build_collector(base).app)  # no token set: open, as central's
    assert open_client.get("/metrics").status_code == 200


async def test_a_member_says_it_let_go_only_once_its_poller_settled_and_stops_when_its_heartbeat_is_overdue(
    base, streams
):
    """The per-device fence of the hand-back (README "Scaling out"): c1's entry names c2 only after
    c1's settle hook (its poller let go of c2's devices and published their last results) says so;
    until then c2 takes nothing from c1. A member whose heartbeat is overdue polls nothing."""
    from faultloop.cmd.collector import GroupShare, Membership, RemoteDirectory
    from faultloop.worker import stop_task

    s1, s2 = base, base.model_copy(update={"collector_name": "c2"})
    links = [BrokerLink(s, client_name=f"test-{s.collector_name}") for s in (s1, s2)]
    for link in links:
        await link.start()
    let_go = asyncio.Event()
    let_go.set()
    settles = []

    async def settle() -> bool:
        settles.append(len(c1.members))
        await let_go.wait()
        return True

    c1, c2 = Membership(links[0], s1), Membership(links[1], s2)
    c1.on_settle(settle)
    share2 = GroupShare(RemoteDirectory(links[1], s2), c2)
    try:
        await c1.start()
        await until(lambda: c1.settled == {"c1"}, what="c1 settled alone")
        let_go.clear()  # c1's poller is still busy with what it gives up
        await c2.start()
        await c1.refresh_members()
        assert c1.members == {"c1", "c2"} and c1.settled == {"c1"}
        await c2.refresh_members()
        assert c2.views["c1"] == {"c1"}
        assert not share2.released_by("c1")  # alive and still polling c2's share: c2 waits
        let_go.set()
        await until(lambda: c1.settled == {"c1", "c2"}, what="c1 settled on both")
        await c2.refresh_members()
        assert c2.views["c1"] == {"c1", "c2"} and share2.released_by("c1")
        assert settles[-1] == 2
        # c1's heartbeat stops (a stalled loop): it stops polling before its entry expires
        assert c1.lease_valid()
        await stop_task(c1._task)  # type: ignore[arg-type]
        await until(lambda: not c1.lease_valid(), what="c1's lease runs out")
        # then its entry expires and c2 no longer waits for it (a dead member lets go of everything)
        async def c1_gone() -> bool:
            await c2.refresh_members()
            return "c1" not in c2.members

        await until(c1_gone, what="c1's entry expired")
        assert share2.released_by("c1")
    finally:
        await c2.stop()
        await c1.stop()
        for link in links:
            await link.stop()
