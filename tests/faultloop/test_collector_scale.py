"""The collector role at scale (issue 14, defects the scale benchmark found), against the shared NATS
server with JetStream: many directory devices on a silent UDP port (no agent answers; what is counted
is the collector's own NATS work, seen from the server's side)."""

from __future__ import annotations

import asyncio
import socket

import nats
import nats.js.errors
import pytest
from cryptography.fernet import Fernet

from collectors.jobs import DeviceLeft
from collectors.remote import RemotePoller
from faultloop.cmd.app import build_collector
from faultloop.cmd.collector import encode_directory
from tests.faultloop.natslab import SHARED_URL, until
from tests.faultloop.test_collector_role import base, group, key, prefix, streams  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("streams")


@pytest.fixture
def silent_port():
    """A bound UDP port that never answers (and sends no ICMP error): every poll times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def poll_entries(n: int, port: int, cipher: Fernet, *, first_id: int = 1) -> list[dict]:
    community = cipher.encrypt(b"public").decode()
    return [
        {
            "id": i, "hostname": f"scale-{i}", "site": "s", "interval_s": 2.0, "timeout_s": 0.3, "retries": 0,
            "address": "127.0.0.1", "snmp_version": "v2c", "snmp_port": port, "snmp_community_enc": community,
            "snmp_auth_key_enc": None, "snmp_priv_key_enc": None, "snmp_user": None, "snmp_auth_protocol": None,
            "snmp_priv_protocol": None, "snmp_allow_weak": False,
        }  # fmt: skip
        for i in range(first_id, first_id + n)
    ]


async def put_directory(s, entries: list[dict]) -> None:
    cipher = Fernet(s.collector_key.get_secret_value().encode())
    devices = [(e["hostname"], e["address"]) for e in entries]
    nc = await nats.connect(SHARED_URL)
    try:
        js = nc.jetstream()
        bucket = f"{s.nats_stream_prefix}_DIRECTORY".upper()
        try:
            kv = await js.key_value(bucket)
        except Exception:
            kv = await js.create_key_value(bucket=bucket, history=1)
        await kv.put(s.collector_group, encode_directory(cipher, devices, [], entries))
    finally:
        await nc.close()


class ConsumerCount:
    """The server's own advisories: one ``$JS.EVENT.ADVISORY.CONSUMER.CREATED`` per consumer created
    on the members bucket's stream."""

    def __init__(self, s) -> None:
        self.stream = f"KV_{s.nats_stream_prefix}_MEMBERS".upper()
        self.created = 0
        self.nc = None

    async def start(self) -> None:
        self.nc = await nats.connect(SHARED_URL)

        async def on(_msg) -> None:
            self.created += 1

        await self.nc.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.CREATED.{self.stream}.>", cb=on)
        await self.nc.flush()

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()


def poller_of(process) -> RemotePoller:
    return next(p for p in process.pipeline.services if isinstance(p, RemotePoller))


async def test_first_turns_of_many_devices_open_no_consumer_per_device(base, silent_port):  # noqa: F811
    n = 300
    s = base.model_copy(update={"poll_concurrency": 400, "collector_heartbeat_s": 1.0})
    cipher = Fernet(s.collector_key.get_secret_value().encode())
    await put_directory(s, poll_entries(n, silent_port, cipher))
    count = ConsumerCount(s)
    await count.start()
    process = build_collector(s)
    await process.pipeline.start()
    try:
        poller = poller_of(process)
        assert len(poller.devices) == n  # one member: the whole group is its share
        # every device's first turn has passed (its first poll ran, a timeout)
        await until(lambda: poller.stats.polls >= n, timeout=30, what="a first poll of every device")
        await asyncio.sleep(0.2)
        created = count.created
    finally:
        await process.pipeline.stop()
        await count.stop()
    # the member list is read once per heartbeat (and per membership change), not once per device:
    # a few seconds of heartbeats, nowhere near one consumer per device
    assert 1 <= created < 30, f"{created} consumers for {n} devices"


def directory_of(process):
    from faultloop.cmd.collector import RemoteDirectory

    return next(p for p in process.pipeline.services if isinstance(p, RemoteDirectory))


async def test_a_device_that_leaves_the_share_while_its_turn_is_due_is_not_polled(base, silent_port, caplog):  # noqa: F811
    # one poll at a time: device 2's turn waits for device 1's poll (0.3 s timeout) to end
    s = base.model_copy(update={"poll_concurrency": 1, "poll_interval_s": 600.0})
    cipher = Fernet(s.collector_key.get_secret_value().encode())
    entries = [{**e, "interval_s": 600.0} for e in poll_entries(3, silent_port, cipher)]
    await put_directory(s, entries)
    process = build_collector(s)
    await process.pipeline.start()
    try:
        poller, directory = poller_of(process), directory_of(process)
        assert set(poller.devices) == {1, 2, 3}
        assert poller.scheduler is not None and 2 in poller.scheduler.turns()
        first = asyncio.create_task(poller.poll_job(1))
        await until(lambda: poller._limit.locked(), what="device 1's poll holding the only slot")
        due = asyncio.create_task(poller.poll_job(2))
        await until(lambda: 2 in poller._polling, what="device 2's turn waiting for a slot")
        # device 2 leaves the group's directory (so the share) while its turn waits
        await put_directory(s, [e for e in entries if e["id"] != 2])
        await directory.fetch()
        await poller.sync()
        assert 2 not in poller.devices and 2 not in poller.scheduler.turns()  # its job went with it
        await asyncio.wait_for(asyncio.gather(first, due), 10)
        assert poller.stats.polls == 1, "device 2 was polled after it left the share"
        # a job of a device that left, firing anyway, is a no-op: no poll, no error
        caplog.clear()
        await poller.poll_job(2)
        with pytest.raises(DeviceLeft):  # the shared poll code itself (was a KeyError)
            await super(RemotePoller, poller).poll(2)
        assert poller.stats.polls == 1
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
    finally:
        await process.pipeline.stop()


async def test_a_member_joining_a_live_one_polls_nothing_of_its_share_until_that_one_lets_go(base, silent_port):  # noqa: F811
    from faultloop.broker import BrokerLink
    from faultloop.cmd.collector import Membership, rendezvous_owner

    n = 40
    # short polls: the grace a first turn taken from a member waits is 0.3 s + 1 s - 0.5 s
    s = base.model_copy(update={"collector_heartbeat_s": 0.5, "poll_timeout_s": 0.3, "poll_retries": 0})
    cipher = Fernet(s.collector_key.get_secret_value().encode())
    await put_directory(s, poll_entries(n, silent_port, cipher))
    # c2: a live member that polled the whole group until now and never says it let go (its entry
    # keeps naming only itself)
    s2 = s.model_copy(update={"collector_name": "c2"})
    link = BrokerLink(s2, client_name="c2")
    await link.start()
    other = Membership(link, s2)

    async def never_settles() -> bool:  # a poll of what it gives up never ends (a hung walk)
        return False

    other.on_settle(never_settles)
    await other.start()
    process = build_collector(s)  # c1 joins
    await process.pipeline.start()
    try:
        poller = poller_of(process)
        mine = {i for i in range(1, n + 1) if rendezvous_owner(str(i), ["c1", "c2"]) == "c1"}
        assert mine and set(poller.devices) == mine
        # its share is fenced: taken from c2, which is alive and has not said it let go
        assert set(poller._from_member) == mine and set(poller._from_member.values()) == {"c2"}
        # every device's first turn has come (its slot in the 2 s interval, after the grace) and found
        # the device not let go of
        await until(lambda: set(poller._fence_since) == mine, timeout=15, what="every first turn fenced")
        assert poller.stats.polls == 0
    finally:
        await process.pipeline.stop()
        await other.stop()
        await link.stop()


async def test_a_group_directory_larger_than_max_payload_reaches_the_collector_whole(base, silent_port):  # noqa: F811
    from faultloop.cmd.collector import put_group_entry

    n = 3500
    s = base.model_copy(update={"poll_interval_s": 600.0})
    cipher = Fernet(s.collector_key.get_secret_value().encode())
    entries = [{**e, "interval_s": 600.0} for e in poll_entries(n, silent_port, cipher)]
    devices = [(e["hostname"], f"10.{e['id'] // 65536}.{e['id'] // 256 % 256}.{e['id'] % 256}") for e in entries]
    interfaces = [(e["hostname"], i, f"GigabitEthernet0/{i}") for e in entries for i in range(1, 5)]
    blob = encode_directory(cipher, devices, interfaces, entries)
    nc = await nats.connect(SHARED_URL)
    try:
        assert len(blob) > nc.max_payload == 1024 * 1024  # the shared server's default limit
        js = nc.jetstream()
        bucket = f"{s.nats_stream_prefix}_DIRECTORY".upper()
        kv = await js.create_key_value(bucket=bucket, history=1)
        with pytest.raises(Exception, match="(?i)payload"):  # as one value it cannot be published
            await kv.put(s.collector_group, blob)
        # the publisher's way (as DirectoryPublisher.publish_once does): chunks under max_payload
        chunks = await put_group_entry(kv, s.collector_group, blob, max_payload=nc.max_payload)
        assert chunks >= 2
    finally:
        await nc.close()
    process = build_collector(s)
    await process.pipeline.start()
    try:
        directory = directory_of(process)
        assert len(directory.poll) == n and len(directory.hostnames) == n
        assert len(directory.interfaces) == 4 * n
        assert set(poller_of(process).devices) == set(range(1, n + 1))  # alone in the group: all its share
    finally:
        await process.pipeline.stop()


async def test_a_chunked_directory_read_while_it_is_rewritten_is_refused_and_a_shrunk_one_leaves_no_chunk(base):  # noqa: F811
    from faultloop.cmd.collector import DirectoryChanging, get_group_entry, put_group_entry

    s = base
    nc = await nats.connect(SHARED_URL)
    try:
        kv = await nc.jetstream().create_key_value(bucket=f"{s.nats_stream_prefix}_DIRECTORY".upper(), history=1)
        group = s.collector_group
        first = bytes(range(256)) * 40  # 10,240 bytes, chunks of 1,024 with a small max_payload
        assert await put_group_entry(kv, group, first, max_payload=1024) == 10
        revision, value = await get_group_entry(kv, group)
        assert value == first
        assert await get_group_entry(kv, group, known=revision) == (revision, None)  # chunks not read again
        await kv.put(f"{group}.3", b"x" * 1024)  # central half-way through rewriting it
        with pytest.raises(DirectoryChanging):
            await get_group_entry(kv, group)
        # it shrinks to one value: the chunks go
        assert await put_group_entry(kv, group, b"small", max_payload=1024) == 0
        assert (await get_group_entry(kv, group))[1] == b"small"
        for n in range(10):
            with pytest.raises(nats.js.errors.KeyNotFoundError):
                await kv.get(f"{group}.{n}")
    finally:
        await nc.close()


@pytest.fixture
def many_devices(db_engine, vault, group):  # noqa: F811
    """3,200 devices with SNMP settings in this test's collector group (committed; removed afterwards)."""
    from datetime import UTC, datetime

    from sqlalchemy import delete

    from faultloop.db import make_sessionmaker, transaction
    from inventory.models import Device

    sessions = make_sessionmaker(db_engine)
    community = vault.encrypt("public-community-of-a-long-name")
    now = datetime.now(UTC)
    names = [f"natst-big-{group}-{i:05d}" for i in range(3200)]
    with transaction(sessions) as session:
        session.add_all(
            Device(hostname=h, address=f"10.9.{i // 250}.{i % 250 + 1}", role="access", collector_group=group,
                   snmp_version="v2c", snmp_community_enc=community, created_at=now, updated_at=now)
            for i, h in enumerate(names)
        )  # fmt: skip
    yield names
    with db_engine.begin() as conn:
        conn.execute(delete(Device).where(Device.hostname.in_(names)))


async def test_central_publishes_a_group_of_thousands_of_devices_and_its_collector_gets_them_all(
    base, many_devices, db_engine, vault  # noqa: F811
):
    from faultloop.broker import BrokerLink
    from faultloop.cmd.collector import DirectoryPublisher
    from faultloop.db import make_sessionmaker

    s = base.model_copy(update={"poll_interval_s": 600.0})
    link = BrokerLink(s, client_name="central")
    await link.start()
    try:
        assert link.nc is not None and link.nc.max_payload == 1024 * 1024
        assert await DirectoryPublisher(link, make_sessionmaker(db_engine), s, vault=vault).publish_once() == 1
        entry = await (await link.jetstream().key_value(f"{s.nats_stream_prefix}_DIRECTORY".upper())).get(
            s.collector_group
        )
        assert entry.value is not None and entry.value.startswith(b'{"v":2,')  # a manifest: it was chunked
    finally:
        await link.stop()
    process = build_collector(s)
    await process.pipeline.start()
    try:
        directory = directory_of(process)
        assert directory.hostnames == set(many_devices) and len(directory.poll) == len(many_devices)
        assert len(poller_of(process).devices) == len(many_devices)
    finally:
        await process.pipeline.stop()


async def test_a_collector_starting_on_a_group_never_polled_spreads_its_first_turns_over_the_interval(
    base, silent_port  # noqa: F811
):
    """The scale bench's first-turn burst: 10,000 devices' first turns within a tenth of the interval
    (18 % timeouts). Through the real collector (directory, share, scheduler): one per device's slot."""
    from collectors.jobs import slot_delay
    from faultloop import clock

    n, interval = 300, 600.0
    s = base.model_copy(update={"poll_interval_s": interval})
    cipher = Fernet(s.collector_key.get_secret_value().encode())
    await put_directory(s, [{**e, "interval_s": interval} for e in poll_entries(n, silent_port, cipher)])
    process = build_collector(s)
    frozen = clock.FrozenClock(clock.now())
    with clock.use(frozen):
        await process.pipeline.start()
        try:
            poller = poller_of(process)
            await until(lambda: len(poller.devices) == n, what="the group's devices in the share")
            assert poller.scheduler is not None
            started = asyncio.get_running_loop().time()
            turns = poller.scheduler.turns()
            elapsed = asyncio.get_running_loop().time() - started
        finally:
            await process.pipeline.stop()
    assert set(turns) == set(range(1, n + 1))
    delays = {i: left for i, (_interval, _jitter, left) in turns.items()}
    tenths = [sum(1 for d in delays.values() if k * interval / 10 <= d < (k + 1) * interval / 10)
              for k in range(10)]  # fmt: skip
    assert max(tenths) <= 33, tenths  # 30 per tenth of the interval: the demand rate from the start
    # each at its slot (the time since the scheduling: the start's own NATS round trips, a few seconds at most)
    expected = {i: slot_delay(i, interval, frozen.current.timestamp()) for i in delays}
    slack = 10.0 + elapsed
    waiting = [i for i in delays if expected[i] > slack]  # not polled yet (the others: their next turn)
    assert len(waiting) > 0.9 * n
    assert all(-0.5 <= expected[i] - delays[i] <= slack for i in waiting), [
        (i, expected[i], delays[i]) for i in waiting if not -0.5 <= expected[i] - delays[i] <= slack
    ][:5]
