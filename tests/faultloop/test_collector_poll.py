"""The collector role's SNMP poller (issue 14) against real peers: the lab's SNMP agents on
loopback, the NATS server with JetStream, central's consumers writing the test database, and (for
the failure test) two collector processes, one of them killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, select

from alarms.bus import AlarmBus
from alarms.models import Alarm, EventRecord
from alarms.runner import AlarmEngine
from collectors.jobs import PolledDevice
from collectors.models import DevicePollState, InterfaceSample
from collectors.remote import ResultsIntake, decode_record
from faultloop.broker import BrokerLink, Delivery
from faultloop.cmd.app import build_collector
from faultloop.cmd.collector import DirectoryPublisher, polled_device, rendezvous_owner
from faultloop.db import make_sessionmaker, transaction
from faultloop.inbox import InboxEntry
from faultloop.runtime import Runtime
from faultloop.transport import CentralIntake, stream_setup
from inventory import queries
from inventory import service as inventory
from inventory.models import Device
from inventory.schemas import InventoryDoc
from lab.inventory_out import inventory_dict
from lab.network import LabNetwork
from lab.usm import LAB_V3_AUTH_PASS, LAB_V3_PRIV_PASS
from tests.collectors.test_exposition import promtool_check_metrics
from tests.faultloop.natslab import SHARED_URL, free_port, until
from tests.faultloop.test_collector_role import base, group, key, prefix, streams  # noqa: F401 - fixtures
from tests.lab.conftest import small_topology

pytestmark = pytest.mark.usefixtures("streams")  # the test's streams and buckets removed afterwards

INTERVAL_S = 2.0
HEARTBEAT_S = 0.5


@pytest.fixture
async def lab():
    import random

    net = LabNetwork(small_topology(port=random.randint(20000, 60000)), ssh=False, fresh_boot=True)
    await net.start()
    try:
        yield net
    finally:
        await net.stop()


@pytest.fixture
def poll_base(base):  # noqa: F811
    return base.model_copy(
        update={"poll_interval_s": INTERVAL_S, "poll_timeout_s": 0.5, "poll_retries": 0, "unreachable_after": 2}
    )


@pytest.fixture
def lab_devices(db_engine, vault, lab, group):  # noqa: F811
    """The lab's devices in this test's collector group, committed (hostnames made unique), v3 authPriv."""
    sessions = make_sessionmaker(db_engine)
    suffix = uuid.uuid4().hex[:6]
    doc = inventory_dict(lab.topology, snmp_version="v3")
    doc["links"] = []
    names = {}
    for d in doc["devices"]:
        names[d["hostname"]] = f"natst-{d['hostname']}-{suffix}"
        d["hostname"], d["collector_group"], d["parents"], d["ssh"] = names[d["hostname"]], group, [], None
    with transaction(sessions) as session:
        inventory.import_inventory(
            session, vault, InventoryDoc.model_validate(doc), actor="test", forget_host_key=lambda _d: None
        )
        ids = {h: queries.device_by_hostname(session, h).id for h in names.values()}  # type: ignore[union-attr]
    yield names, ids
    with db_engine.begin() as conn:
        conn.execute(delete(EventRecord).where(EventRecord.device.in_(list(names.values()))))
        conn.execute(delete(Alarm).where(Alarm.device.in_(list(names.values()))))  # made by the leader's intake
        conn.execute(delete(DevicePollState).where(DevicePollState.device_id.in_(list(ids.values()))))
        conn.execute(delete(InterfaceSample).where(InterfaceSample.device_id.in_(list(ids.values()))))
        conn.execute(delete(Device).where(Device.id.in_(list(ids.values()))))
        conn.execute(delete(InboxEntry))


async def start_central(s, db_engine, vault):
    sessions = make_sessionmaker(db_engine)
    rt = Runtime(settings=s, engine=db_engine, sessions=sessions, vault=vault)
    link = BrokerLink(s, client_name="central")
    stream_setup(link, s)
    engine = AlarmEngine(rt, AlarmBus())
    events = CentralIntake(link, sessions, engine, s)
    results = ResultsIntake(link, sessions, engine, s)
    directory = DirectoryPublisher(link, sessions, s, vault=vault)
    parts = [link, events, results]
    for part in parts:
        await part.start()
    await directory.publish_once()
    return parts, results, sessions


class ResultsTap:
    """Every poll result published in the test's prefix, as central's stream receives it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []  # (device, collector, poll time)
        self.failed: set[tuple[str, float]] = set()  # (device, poll time) of failed polls (retried sooner)
        self.raw: list[bytes] = []
        self.nc = None

    async def start(self, stream_prefix: str) -> None:
        self.nc = await nats.connect(SHARED_URL)

        async def on(msg) -> None:
            self.raw.append(msg.data)
            record = decode_record(msg.data)
            self.seen.append((record.device, record.collector, record.time.timestamp()))
            if not record.ok:
                self.failed.add((record.device, record.time.timestamp()))

        await self.nc.subscribe(f"{stream_prefix}.results.>", cb=on)

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()

    def by(self, device: str) -> list[tuple[str, float]]:
        return [(c, t) for d, c, t in self.seen if d == device]


async def test_the_collector_polls_its_group_and_central_stores_the_results_once(
    poll_base, lab_devices, db_engine, vault
):
    names, ids = lab_devices
    parts, results, sessions = await start_central(poll_base, db_engine, vault)
    tap = ResultsTap()
    await tap.start(poll_base.nats_stream_prefix)
    process = build_collector(poll_base)
    await process.pipeline.start()
    try:
        await until(lambda: results.applied >= 2 * len(ids), what="two polls of every lab device applied")
        health = process.health()
        assert health["status"] == "ok" and health["polled_devices"] == len(ids) and health["members"] == ["c1"]
        assert health["unconfirmed_handovers"] == 0
        # the same result delivered again (a lost ack) changes nothing
        record = decode_record(tap.raw[0])
        before = results.applied
        await asyncio.to_thread(results.apply, [Delivery("x", "dup-1", record), Delivery("x", "dup-1", record)])
        await asyncio.to_thread(results.apply, [Delivery("x", "dup-1", record)])
        assert results.applied == before + 1 and results.duplicates >= 2
    finally:
        await process.pipeline.stop()
        await tap.stop()
        for part in reversed(parts):
            await part.stop()
    with sessions() as session:
        state = {r.device_id: r for r in session.scalars(select(DevicePollState).where(
            DevicePollState.device_id.in_(list(ids.values()))))}  # fmt: skip
        assert {i: state[i].reachable for i in ids.values()} == {i: True for i in ids.values()}
        core = ids[names["core1"]]
        interfaces = queries.interfaces(session, core)
        assert interfaces and all(i.if_index is not None and i.oper_status == "up" for i in interfaces)
        samples = session.scalars(select(InterfaceSample.metric).where(InterfaceSample.device_id == core)).all()
        assert "interface_in_bits_per_second" in samples
    # the SNMPv3 secrets never travel in plaintext: not in the directory, not in the results
    nc = await nats.connect(SHARED_URL)
    try:
        kv = await nc.jetstream().key_value(f"{poll_base.nats_stream_prefix}_DIRECTORY".upper())
        entry = await kv.get(poll_base.collector_group)
    finally:
        await nc.close()
    from cryptography.fernet import Fernet

    inner = Fernet(poll_base.collector_key.get_secret_value().encode()).decrypt(entry.value)
    for blob in [entry.value, inner, *tap.raw]:
        assert LAB_V3_AUTH_PASS.encode() not in blob and LAB_V3_PRIV_PASS.encode() not in blob


def test_rendezvous_spreads_devices_and_a_leaving_member_moves_only_its_own():
    members = ["c1", "c2", "c3"]
    owners = {d: rendezvous_owner(str(d), members) for d in range(3000)}
    counts = Counter(owners.values())
    assert set(counts) == set(members) and min(counts.values()) > 800  # about 1,000 each
    after = {d: rendezvous_owner(str(d), ["c1", "c3"]) for d in range(3000)}
    moved = {d for d in owners if owners[d] != after[d]}
    assert moved == {d for d, o in owners.items() if o == "c2"}
    assert rendezvous_owner("1", []) is None


@pytest.mark.parametrize(
    "data,expected",
    [
        (b"not json", "poll result: field 'message': Invalid JSON"),
        (b'{"v":1,"device":"r1","ok":true,"time":"2026-03-01T12:00:00Z","duration_s":0.1}', "field 'device_id'"),
        (b'{"v":1,"device_id":1,"device":"r1","ok":true,"time":"2026-03-01T12:00:00","duration_s":0.1}',
         "field 'time'"),
        (b'{"v":1,"device_id":1,"device":"r1","ok":true,"time":"2026-03-01T12:00:00Z","duration_s":0.1,'
         b'"samples":[{"device":"r1"}]}', "missing field 'metric'"),
        (b'{"v":2,"device_id":1,"device":"r1","ok":true,"time":"2026-03-01T12:00:00Z","duration_s":0.1}',
         "field 'v'"),
    ],
)  # fmt: skip
def test_a_poll_result_that_does_not_decode_names_the_field(data, expected):
    with pytest.raises(ValueError) as exc:
        decode_record(data)
    assert expected in str(exc.value)


def test_a_directory_poll_entry_with_a_missing_field_is_named():
    with pytest.raises(ValueError, match="poll entry: missing field 'snmp_port'"):
        polled_device({"id": 1, "hostname": "r1", "site": "", "interval_s": 60, "timeout_s": 2, "retries": 1,
                       "address": "10.0.0.1", "snmp_version": "v2c"})  # fmt: skip
    with pytest.raises(ValueError, match="expected an object"):
        polled_device(["r1"])
    entry = {f: None for f in ("snmp_user", "snmp_auth_protocol", "snmp_priv_protocol", "snmp_auth_key_enc",
                               "snmp_priv_key_enc")}  # fmt: skip
    entry |= {"id": 1, "hostname": "r1", "site": "", "interval_s": 60.0, "timeout_s": 2.0, "retries": 1,
              "address": "10.0.0.1", "snmp_version": "v2c", "snmp_port": 161, "snmp_allow_weak": False,
              "snmp_community_enc": "token"}  # fmt: skip
    assert polled_device(entry) == PolledDevice(**{**entry, "snmp_community_enc": b"token"})


# ---- two collector processes, one killed --------------------------------------------------------

COLLECTOR_MAIN = """
import asyncio
from faultloop.cmd.app import run_collector
from faultloop.settings import Settings
asyncio.run(run_collector(Settings()))
"""


def spawn_collector(s, name: str, tmp_path, *, port: int | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FAULTLOOP_NATS_URL": s.nats_url, "FAULTLOOP_NATS_STREAM_PREFIX": s.nats_stream_prefix,
        "FAULTLOOP_COLLECTOR_KEY": s.collector_key.get_secret_value(), "FAULTLOOP_COLLECTOR_GROUP": s.collector_group,
        "FAULTLOOP_COLLECTOR_NAME": name, "FAULTLOOP_COLLECTOR_HEARTBEAT_S": str(HEARTBEAT_S),
        "FAULTLOOP_DATA_DIR": str(tmp_path / name), "FAULTLOOP_PORT": str(port or free_port()),
        "FAULTLOOP_TRAP_ENABLED": "false", "FAULTLOOP_SYSLOG_ENABLED": "false",
        "FAULTLOOP_RECEIVER_DIRECTORY_REFRESH_S": "0.5", "FAULTLOOP_POLL_TIMEOUT_S": "0.5",
        "FAULTLOOP_POLL_RETRIES": "0", "FAULTLOOP_CONFIG": str(tmp_path / "none.toml"),
        "FAULTLOOP_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", COLLECTOR_MAIN], env=env, cwd=tmp_path)


def exposed_devices(port: int) -> set[str] | None:
    """The devices a collector's /metrics shows (faultloop_device_up series); None: not serving yet."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    text = response.text
    return {
        s.labels["device"] for f in text_string_to_metric_families(text) if f.name == "faultloop_device_up"
        for s in f.samples
    }  # fmt: skip


def owners(ids: dict[str, int], members: list[str]) -> dict[str, str]:
    return {h: rendezvous_owner(str(i), members) or "" for h, i in ids.items()}


async def test_a_killed_collector_s_devices_are_polled_by_its_peer_and_taken_back_without_double_polls(
    poll_base, lab_devices, db_engine, vault, tmp_path, lab
):
    names, ids = lab_devices
    share = owners(ids, ["c1", "c2"])
    victim = Counter(share.values()).most_common(1)[0][0]  # the member with the most devices
    survivor = "c2" if victim == "c1" else "c1"
    victims_devices = sorted(h for h, o in share.items() if o == victim)
    parts, results, sessions = await start_central(poll_base, db_engine, vault)
    tap = ResultsTap()
    await tap.start(poll_base.nats_stream_prefix)
    ports = {name: free_port() for name in ("c1", "c2")}
    procs = {name: spawn_collector(poll_base, name, tmp_path, port=ports[name]) for name in ("c1", "c2")}
    try:
        # both polling their own share, each device by its owner only
        def shared() -> bool:
            return all(any(c == share[h] for c, _t in tap.by(h)) for h in ids)

        await until(shared, timeout=60, what="each device polled by its rendezvous owner")
        # each collector's /metrics: its own devices only (the victim has at least one), each series
        # labelled with its name
        for name, port in ports.items():
            mine = {h for h, o in share.items() if o == name}
            await until(lambda p=port, m=mine: exposed_devices(p) == m,
                        timeout=30, what=f"{name}'s /metrics showing its share")  # fmt: skip
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert response.status_code == 200
            promtool_check_metrics(response.text)
            per_device = [s for f in text_string_to_metric_families(response.text) for s in f.samples
                          if "device" in s.labels]  # fmt: skip
            assert {s.labels["collector"] for s in per_device} == ({name} if mine else set())
            assert {s.labels["device"] for s in per_device} == mine
            assert bool(mine) == any(s.name == "faultloop_interface_in_octets_total" for s in per_device)
        # a link on one of the victim's devices goes down: one linkDown, from the victim
        device = lab.devices[next(k for k, v in names.items() if v == victims_devices[0])]
        lab.cut_link(device, device.interfaces[0], True)
        hostname = names[device.name]

        def link_down_events() -> list[EventRecord]:
            with sessions() as session:
                return list(session.scalars(select(EventRecord).where(
                    EventRecord.device == hostname, EventRecord.event_type == "linkDown")))  # fmt: skip

        await until(lambda: len(link_down_events()) == 1, what="the linkDown stored at central")
        # kill -9: no goodbye, its membership entry has to expire
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait(10)
        killed_at = time.time()
        last_by_victim = {h: max(t for c, t in tap.by(h) if c == victim) for h in victims_devices}

        def taken_over() -> bool:
            return all(any(c == survivor and t > killed_at for c, t in tap.by(h)) for h in victims_devices)

        await until(taken_over, timeout=30, what="the victim's devices polled by the survivor")
        gaps = {h: min(t for c, t in tap.by(h) if c == survivor and t > killed_at) - last_by_victim[h]
                for h in victims_devices}  # fmt: skip
        print(f"\nkill -9 -> first poll by the peer, gap after the victim's last poll: {json.dumps(gaps)}")
        # within one poll interval (+ its jitter) and the heartbeat timeout (3 heartbeats), with 2 s
        # for a loaded shared machine
        assert max(gaps.values()) <= INTERVAL_S * 1.05 + 3 * HEARTBEAT_S + 2.0, gaps
        # the survivor took the device's memory over: the link is still down, no second linkDown
        lab.cut_link(device, device.interfaces[0], False)

        def link_up_events() -> int:
            with sessions() as session:
                return len(session.scalars(select(EventRecord.id).where(
                    EventRecord.device == hostname, EventRecord.event_type == "linkUp")).all())  # fmt: skip

        await until(lambda: link_up_events() == 1, what="the linkUp reported by the survivor")
        assert len(link_down_events()) == 1
        # the victim returns (its old entry expired): it takes its share back
        procs[victim] = spawn_collector(poll_base, victim, tmp_path / "again")
        returned_at = time.time()
        await until(lambda: all(any(c == victim and t > returned_at for c, t in tap.by(h)) for h in victims_devices),
                    timeout=60, what="the returning collector polling its share again")  # fmt: skip
        settle = time.time()
        await until(lambda: all(sum(1 for _c, t in tap.by(h) if t > settle) >= 3 for h in ids), timeout=60,
                    what="three more polls of every device")  # fmt: skip
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await tap.stop()
        for part in reversed(parts):
            await part.stop()
    # never two polls of one device closer than the jittered interval allows: no double polling at
    # the kill, at the return (the returning collector polls a device only once the survivor's
    # membership entry says it let go of it, and after the survivor's last poll of it) nor in steady
    # state. A failed poll is retried after 1/8 of the interval by design: only turns after a good
    # one count.
    for h in ids:
        times = sorted(t for _c, t in tap.by(h))
        close = [(a, b) for a, b in zip(times, times[1:], strict=False)
                 if (h, a) not in tap.failed and b - a <= INTERVAL_S * 0.8]  # fmt: skip
        assert not close, (h, close, tap.by(h))
    # a clean hand-back: once the returning collector polled one of its devices, the survivor never
    # polled it again
    for h in victims_devices:
        first_back = min(t for c, t in tap.by(h) if c == victim and t > returned_at)
        assert not [t for c, t in tap.by(h) if c == survivor and t > first_back], (h, tap.by(h))
    after_return = [(h, c) for h in victims_devices for c, t in tap.by(h) if t > settle]
    assert {c for _h, c in after_return} == {victim}
