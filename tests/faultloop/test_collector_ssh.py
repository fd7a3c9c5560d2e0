"""The collector role's SSH work (issue 14): config backups and CLI collection for the devices of
its group, against real peers: the lab's SSH CLIs (asyncssh servers on loopback, netmiko), the
NATS server with JetStream, and central's consumers writing the test database."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import nats
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import delete, select

from alarms.bus import AlarmBus
from alarms.models import Alarm, EventRecord
from alarms.runner import AlarmEngine
from collectors import backup
from collectors.backup_models import CliResult, ConfigBackup
from collectors.cli_collect import ssh_device_ids
from collectors.remote_ssh import (
    RemoteBackupError,
    RemoteSshWork,
    SshIntake,
    SshRecord,
    WireKey,
    encode_ssh,
    ssh_decoder,
    ssh_device,
)
from devices import hostkeys
from devices.hostkeys import HostKeyError, OfferedKey
from devices.models import SshHostKey
from faultloop import clock
from faultloop.broker import BrokerLink, Delivery
from faultloop.cmd.app import build_collector, served_by_collectors, service_handles, unplanned_checked
from faultloop.cmd.collector import DirectoryPublisher, rendezvous_owner
from faultloop.db import make_sessionmaker, transaction
from faultloop.inbox import InboxEntry
from faultloop.runtime import Runtime
from faultloop.transport import CentralIntake, stream_setup
from inventory import service as inventory
from inventory.models import Device
from inventory.schemas import DeviceIn
from lab.ssh import LAB_SSH_USERNAME
from tests.collectors import cli_lab
from tests.collectors.cli_lab import RecordingSink
from tests.faultloop.natslab import SHARED_URL, NatsServer, until
from tests.faultloop.test_collector_role import base, group, key, prefix, streams  # noqa: F401 - fixtures

bg, host_key, lab_ssh = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh

pytestmark = pytest.mark.usefixtures("streams")


@pytest.fixture
def ssh_base(base):  # noqa: F811
    return base.model_copy(update={"ssh_timeout_s": 5.0, "ssh_workers": 2, "syslog_enabled": False})


@pytest.fixture
def marker():
    """The SSH password of the test's devices: it must never travel or rest in plaintext."""
    return f"pw-{uuid.uuid4().hex}"


@pytest.fixture
def ssh_devices(db_engine, vault, lab_ssh, group, marker):  # noqa: F811
    """Two lab SSH devices (IOS, Junos) in the test's collector group, committed; removed afterwards."""
    sessions = make_sessionmaker(db_engine)
    suffix = uuid.uuid4().hex[:6]
    labs = [lab_ssh.new_device("cisco_ios", f"rs-ios-{suffix}", password=marker),
            lab_ssh.new_device("juniper_junos", f"rs-junos-{suffix}", password=marker)]  # fmt: skip
    ids = {}
    with transaction(sessions) as session:
        for lab in labs:
            row = inventory.create_device(session, vault, DeviceIn.model_validate({
                "hostname": lab.name, "address": lab.address, "role": "access", "vendor": lab.vendor,
                "platform": lab.platform, "device_type": lab.device_type, "collector_group": group,
                "ssh": {"port": lab.ssh_port, "username": LAB_SSH_USERNAME, "password": marker,
                        "host_key_policy": "tofu"},
            }), actor="test")  # fmt: skip
            ids[lab.name] = row.id
    yield labs, ids
    with db_engine.begin() as conn:
        conn.execute(delete(EventRecord).where(EventRecord.device.in_(list(ids))))
        conn.execute(delete(Alarm).where(Alarm.device.in_(list(ids))))  # made by the leader's intake
        conn.execute(delete(ConfigBackup).where(ConfigBackup.device_id.in_(list(ids.values()))))
        conn.execute(delete(CliResult).where(CliResult.device_id.in_(list(ids.values()))))
        conn.execute(delete(SshHostKey).where(SshHostKey.device_id.in_(list(ids.values()))))
        conn.execute(delete(Device).where(Device.id.in_(list(ids.values()))))
        conn.execute(delete(InboxEntry))


class Central:
    """Central's part for these tests: the events and ssh consumers, the directory, the API's handles."""

    def __init__(self, s, db_engine, vault) -> None:
        self.sessions = make_sessionmaker(db_engine)
        self.rt = Runtime(settings=s, engine=db_engine, sessions=self.sessions, vault=vault)
        self.link = BrokerLink(s, client_name="central")
        stream_setup(self.link, s)
        self.sink = RecordingSink()
        self.events = CentralIntake(self.link, self.sessions, AlarmEngine(self.rt, AlarmBus()), s)
        self.ssh = SshIntake(self.link, self.sessions, self.sink, s, vault=vault,
                             cipher=Fernet(s.collector_key.get_secret_value().encode()))  # fmt: skip
        self.directory = DirectoryPublisher(self.link, self.sessions, s, vault=vault)
        self.handles = service_handles(self.rt, poller=None, sink=self.sink, backup_sink=self.sink, remote_ssh=self.ssh)

    async def start(self) -> None:
        for part in (self.link, self.events, self.ssh):
            await part.start()
        await self.directory.publish_once()

    async def stop(self) -> None:
        for part in (self.ssh, self.events, self.link):
            await part.stop()


class Tap:
    """Every message on the test's ssh subjects, as the stream receives them."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.nc = None

    async def start(self, stream_prefix: str) -> None:
        self.nc = await nats.connect(SHARED_URL)

        async def on(msg) -> None:
            self.raw.append(msg.data)

        await self.nc.subscribe(f"{stream_prefix}.ssh.>", cb=on)

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()


def ssh_work(process) -> RemoteSshWork:
    return next(s for s in process.pipeline.services if isinstance(s, RemoteSshWork))


def fingerprint(ssh_key) -> str:
    return hostkeys.fingerprint(ssh_key.export_public_key("openssh").split()[1].decode())


async def test_the_collector_backs_up_and_collects_its_group_on_schedule_and_central_stores_once(
    ssh_base, ssh_devices, db_engine, vault, host_key, marker
):
    labs, ids = ssh_devices
    central = Central(ssh_base, db_engine, vault)
    await central.start()
    tap = Tap()
    await tap.start(ssh_base.nats_stream_prefix)
    frozen = clock.FrozenClock(datetime.now(UTC))
    with clock.use(frozen):
        process = build_collector(ssh_base)
        await process.pipeline.start()
        try:
            work = ssh_work(process)
            await until(lambda: len(work.mine()) == 2, what="both SSH devices in the collector's share")
            assert process.health()["ssh_devices"] == 2
            assert central.ssh.applied == 0  # nothing is due before the first (jittered) turn
            frozen.advance(61)  # past the first turn of both kinds (at most a minute after start)
            await until(lambda: central.ssh.applied >= 4, what="a backup and a CLI collection of each device stored")
            # a redelivered result (a lost ack) stores nothing again
            record = ssh_decoder(Fernet(ssh_base.collector_key.get_secret_value().encode()))(tap.raw[0])
            before = central.ssh.applied
            await asyncio.to_thread(central.ssh.apply, [Delivery("x", "dup-ssh", record)] * 2)
            await asyncio.to_thread(central.ssh.apply, [Delivery("x", "dup-ssh", record)])
            assert central.ssh.applied == before + 1 and central.ssh.duplicates >= 2
            # the next directory carries central's TOFU pins back to the collector
            await central.directory.publish_once()
            directory = next(s for s in process.pipeline.services if s.name == "device directory (from central)")
            await until(lambda: all(d.fingerprint for d in directory.ssh.values()), what="the pins in the directory")
        finally:
            await process.pipeline.stop()
            await tap.stop()
            await central.stop()
    with central.sessions() as session:
        for lab in labs:
            device_id = ids[lab.name]
            rows = list(session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)))
            assert len(rows) == 1 and rows[0].trigger == "schedule" and rows[0].actor == "scheduler"
            assert rows[0].text is None and rows[0].text_encrypted is not None  # sealed with central's vault
            text = backup.backup_text(vault, rows[0])
            assert lab.name in text and ("hostname" in text or "host-name" in text)
            commands = session.scalars(select(CliResult.command).where(CliResult.device_id == device_id)).all()
            assert commands  # the platform's show commands, stored per command
            pin = hostkeys.get_host_key(session, device_id)
            assert pin is not None and pin.trusted_by == "tofu" and pin.fingerprint == fingerprint(host_key)
    assert central.sink.events == []  # first versions change nothing
    # no secret in plaintext on the wire or in JetStream: not the SSH password, not the configuration
    nc = await nats.connect(SHARED_URL)
    try:
        entry = await (await nc.jetstream().key_value(f"{ssh_base.nats_stream_prefix}_DIRECTORY".upper())).get(
            ssh_base.collector_group
        )
    finally:
        await nc.close()
    inner = Fernet(ssh_base.collector_key.get_secret_value().encode()).decrypt(entry.value)
    assert len(tap.raw) >= 4
    for blob in [entry.value, inner, *tap.raw]:
        assert marker.encode() not in blob
    for blob in tap.raw:
        assert b"interface" not in blob and labs[0].name.encode() not in blob


async def test_a_changed_host_key_is_refused_by_the_collector_before_login_kept_pending_and_alarmed(
    ssh_base, ssh_devices, db_engine, vault, lab_ssh, host_key
):
    labs, ids = ssh_devices
    ios = labs[0]
    device_id = ids[ios.name]
    central = Central(ssh_base, db_engine, vault)
    await central.start()
    process = build_collector(ssh_base)
    await process.pipeline.start()
    try:
        work = ssh_work(process)
        await until(lambda: device_id in {d.id for d in work.mine()}, what="the device in the share")
        results = await asyncio.to_thread(work.run_backups)
        assert all(r.ok for r in results), results
        await until(lambda: central.ssh.applied >= 2, what="the first backups stored (keys pinned)")
        # the device comes back with another host key at the same address
        import asyncssh

        lab_ssh.stop(ios.name)
        other = asyncssh.generate_private_key("ssh-ed25519")
        attempts_before = len(lab_ssh.auth_attempts[ios.name])
        lab_ssh.start(ios, other)
        await central.directory.publish_once()  # the pins reach the collector (or it kept its own)
        dev = work.devices()[device_id]
        from devices.hostkeys import HostKeyChanged

        with pytest.raises(HostKeyChanged):
            await asyncio.to_thread(work.backup, dev)
        assert len(lab_ssh.auth_attempts[ios.name]) == attempts_before  # no password sent to the new key
        await until(lambda: central.events.stored >= 1, what="the host_key_changed event stored at central")

        def pending() -> str | None:
            with central.sessions() as session:
                row = hostkeys.get_host_key(session, device_id)
                return row.pending_fingerprint if row is not None else None

        await until(lambda: pending() == fingerprint(other), what="the refused key kept pending at central")
        # backup now through the API's handle: the collector's refusal, a HostKeyError (the API's 409)
        with pytest.raises(HostKeyError, match="SSH host key changed"):
            await asyncio.to_thread(central.handles.backup_now, device_id, actor="alice")
        assert len(lab_ssh.auth_attempts[ios.name]) == attempts_before
        await until(lambda: central.events.stored >= 2, what="the second refusal's event stored")
    finally:
        await process.pipeline.stop()
        await central.stop()
    with central.sessions() as session:
        row = hostkeys.get_host_key(session, device_id)
        assert row.fingerprint == fingerprint(host_key)  # the pin did not move
        events = list(session.scalars(select(EventRecord).where(EventRecord.device == ios.name)))
        # one event per refused session (the alarm engine keeps one alarm per key)
        assert [(e.event_type, e.severity) for e in events] == [("host_key_changed", "major")] * 2
        assert session.scalar(select(ConfigBackup.id).where(ConfigBackup.device_id == device_id)) is not None


async def test_backup_now_is_asked_of_the_owning_collector_and_reported_like_a_local_one(
    ssh_base, ssh_devices, db_engine, vault, lab_ssh
):
    labs, ids = ssh_devices
    device_id = ids[labs[1].name]
    central = Central(ssh_base, db_engine, vault)
    await central.start()
    process = build_collector(ssh_base)
    await process.pipeline.start()
    try:
        work = ssh_work(process)
        await until(lambda: device_id in {d.id for d in work.mine()}, what="the device in the share")
        first = await asyncio.to_thread(central.handles.backup_now, device_id, actor="alice")
        assert first.status == "first_version" and first.summary["trigger"] == "on_demand"
        assert first.summary["actor"] == "alice" and work.requests == 1
        again = await asyncio.to_thread(central.handles.backup_now, device_id, actor="bob")
        assert (again.status, again.backup_id, again.previous_id) == ("unchanged", first.backup_id, None)
    finally:
        await process.pipeline.stop()
    attempts = len(lab_ssh.auth_attempts[labs[1].name])
    try:  # no collector of the group runs now: a clear error, and central opened no SSH session itself
        with pytest.raises(RemoteBackupError, match=r"collector group '.*': no collector of the group answered"):
            await asyncio.to_thread(central.handles.backup_now, device_id, actor="alice")
        assert len(lab_ssh.auth_attempts[labs[1].name]) == attempts
    finally:
        await central.stop()
    with central.sessions() as session:
        assert len(session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)).all()) == 1


async def test_two_collectors_of_a_group_each_take_their_rendezvous_share(ssh_base, ssh_devices, db_engine, vault):
    labs, ids = ssh_devices
    central = Central(ssh_base, db_engine, vault)
    await central.start()
    tap = Tap()
    await tap.start(ssh_base.nats_stream_prefix)
    c1 = build_collector(ssh_base)
    c2 = build_collector(ssh_base.model_copy(update={"collector_name": "c2", "data_dir": ssh_base.data_dir / "c2"}))
    await c1.pipeline.start()
    await c2.pipeline.start()
    try:
        w1, w2 = ssh_work(c1), ssh_work(c2)
        await until(lambda: c1.health()["members"] == c2.health()["members"] == ["c1", "c2"], what="both members seen")
        await until(lambda: len(w1.mine()) + len(w2.mine()) == 2, what="the devices shared")
        owners = {d: rendezvous_owner(str(d), ["c1", "c2"]) for d in ids.values()}
        assert {d.id for d in w1.mine()} == {d for d, o in owners.items() if o == "c1"}
        assert {d.id for d in w2.mine()} == {d for d, o in owners.items() if o == "c2"}
        await asyncio.gather(asyncio.to_thread(w1.run_backups), asyncio.to_thread(w2.run_backups))
        await until(lambda: central.ssh.applied >= 2, what="one backup of each device stored")
        await c2.pipeline.stop()  # c2 leaves: c1 serves the whole group from its next member read
        await until(lambda: len(w1.mine()) == 2, what="c2's devices taken over by c1")
    finally:
        await c2.pipeline.stop()
        await c1.pipeline.stop()
        await tap.stop()
        await central.stop()
    decode = ssh_decoder(Fernet(ssh_base.collector_key.get_secret_value().encode()))
    by = sorted((r.device_id, r.collector) for r in map(decode, tap.raw) if r.kind == "backup")
    assert by == sorted(owners.items())  # each device once, by its owner


async def test_backups_taken_while_nats_is_down_are_spooled_and_stored_once_after(
    ssh_base, ssh_devices, db_engine, vault, tmp_path
):
    labs, ids = ssh_devices
    server = NatsServer(tmp_path / "nats")
    server.start()
    s = ssh_base.model_copy(update={"nats_url": server.url})
    central = Central(s, db_engine, vault)
    await central.start()
    process = build_collector(s)
    await process.pipeline.start()
    try:
        work = ssh_work(process)
        await until(lambda: len(work.mine()) == 2, what="the share read from the directory")
        server.kill()
        await until(lambda: process.health()["nats"] == "unreachable", what="the collector sees NATS gone")
        results = await asyncio.to_thread(work.run_backups)  # the devices are reachable, NATS is not
        assert all(r.ok for r in results), results
        assert process.health()["spooled"] >= 2 and process.health()["status"] == "degraded"
        server.start()  # same port and store: the streams and the durable consumer are still there
        await until(lambda: central.ssh.applied >= 2, timeout=60, what="the spooled backups stored after the return")
        await until(lambda: process.health()["spooled"] == 0, what="the spool drained")
    finally:
        await process.pipeline.stop()
        await central.stop()
        server.stop()
    with central.sessions() as session:
        for device_id in ids.values():
            assert len(session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)).all()) == 1


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"device_id": "x"}', b'{"actor": "alice"}'])
async def test_a_malformed_backup_request_gets_an_error_naming_the_field(ssh_base, payload, caplog):
    process = build_collector(ssh_base)
    await process.pipeline.start()
    nc = await nats.connect(SHARED_URL)
    try:
        reply = await nc.request(f"{ssh_base.nats_stream_prefix}.sshreq.{ssh_base.collector_group}", payload, timeout=5)
    finally:
        await nc.close()
        await process.pipeline.stop()
    answer = json.loads(reply.data)
    assert answer["error"] == "request: expected a JSON object with an integer 'device_id' (and 'actor')"
    assert answer["collector"] == "c1" and "msg_id" not in answer
    assert "on-demand request on " + f"{ssh_base.nats_stream_prefix}.sshreq." in caplog.text


def test_central_schedules_no_ssh_for_groups_its_collectors_serve(ssh_base, ssh_devices, db_engine, vault, lab_ssh):
    labs, ids = ssh_devices
    sessions = make_sessionmaker(db_engine)
    local = lab_ssh.new_device("cisco_ios", f"rs-local-{uuid.uuid4().hex[:6]}")
    with transaction(sessions) as session:
        local_id = cli_lab.add_to_inventory(session, vault, local)  # group "default"
    try:
        remote = served_by_collectors(ssh_base)
        assert remote is not None and remote("default") is False and remote(ssh_base.collector_group) is True
        with transaction(sessions) as session:
            everything = ssh_device_ids(session)
            here = ssh_device_ids(session, remote_group=remote)
        assert set(ids.values()) <= set(everything) and local_id in everything
        assert not set(ids.values()) & set(here) and local_id in here
        # without a broker there are no collectors: everything stays local
        assert served_by_collectors(ssh_base.model_copy(update={"nats_url": ""})) is None
    finally:
        with db_engine.begin() as conn:
            conn.execute(delete(Device).where(Device.id == local_id))


def _record(device_id: int, device: str, offered: OfferedKey, **kw) -> SshRecord:
    wire = WireKey(key_type=offered.key_type, key_base64=offered.key_base64, fingerprint=offered.fingerprint)
    return SshRecord(kind="backup", device_id=device_id, device=device, collector="c9", time=clock.now(), key=wire,
                     text="hostname x\n!\ninterface Gi0/1\n", **kw)  # fmt: skip


def test_central_refuses_a_result_whose_session_key_is_not_the_pinned_one(ssh_base, ssh_devices, db_engine, vault):
    """Two collectors that each trusted a different first key, or one with a directory older than the
    pin: central's pin decides; the result is not stored, the key is kept pending and alarmed."""
    labs, ids = ssh_devices
    name, device_id = labs[0].name, ids[labs[0].name]
    pinned = OfferedKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIPinnedPinnedPinnedPinnedPinnedPinnedPinned",
                        "SHA256:pinned")  # fmt: skip
    other = OfferedKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOtherOt",
                       "SHA256:other")  # fmt: skip
    sessions = make_sessionmaker(db_engine)
    sink = RecordingSink()
    intake = SshIntake(BrokerLink(ssh_base, client_name="unused"), sessions, sink, ssh_base, vault=vault,
                       cipher=Fernet(ssh_base.collector_key.get_secret_value().encode()))  # fmt: skip
    intake.apply([Delivery("x", f"a-{uuid.uuid4().hex}", _record(device_id, name, pinned, trust=True))])
    assert intake.applied == 1 and sink.events == []
    intake.apply([Delivery("x", f"b-{uuid.uuid4().hex}", _record(device_id, name, other, trust=True))])
    assert intake.refused == 1 and intake.applied == 1
    [event] = sink.events
    assert (event.event_type, event.severity, event.device) == ("host_key_changed", "major", name)
    assert event.raw["offered_fingerprint"] == "SHA256:other"
    # a result of a device central does not know under that name is dropped, counted
    intake.apply([Delivery("x", f"c-{uuid.uuid4().hex}", _record(device_id, "someone-else", pinned))])
    assert intake.unknown == 1
    with transaction(sessions) as session:
        row = hostkeys.get_host_key(session, device_id)
        assert (row.fingerprint, row.trusted_by, row.pending_fingerprint) == ("SHA256:pinned", "tofu", "SHA256:other")
    # a key a collector refused with an old directory, which central trusts by now, is not made pending
    stale = _record(device_id, name, pinned, refused=True).model_copy(update={"kind": "hostkey", "text": ""})
    intake.apply([Delivery("x", f"d-{uuid.uuid4().hex}", stale)])
    with transaction(sessions) as session:
        assert hostkeys.get_host_key(session, device_id).pending_fingerprint == "SHA256:other"
        assert len(session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)).all()) == 1


def test_central_stores_a_remote_config_change_and_its_events_in_one_transaction_once(
    ssh_base, ssh_devices, db_engine, vault
):
    """As the composition root wires it: config_changed (and unplanned_change, no order explains it)
    into the alarm engine's durable queue with the backup; a redelivery stores neither again."""
    labs, ids = ssh_devices
    name, device_id = labs[1].name, ids[labs[1].name]
    pinned = OfferedKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIPinnedPinnedPinnedPinnedPinnedPinnedPinned",
                        "SHA256:pinned")  # fmt: skip
    sessions = make_sessionmaker(db_engine)
    engine = AlarmEngine(Runtime(settings=ssh_base, engine=db_engine, sessions=sessions, vault=vault), AlarmBus())
    intake = SshIntake(BrokerLink(ssh_base, client_name="unused"), sessions, None, ssh_base, vault=vault,
                       cipher=Fernet(ssh_base.collector_key.get_secret_value().encode()),
                       store_events=unplanned_checked(engine, grace_s=60),
                       events_stored=engine.events_stored)  # fmt: skip
    intake.apply([Delivery("x", f"e-{uuid.uuid4().hex}", _record(device_id, name, pinned, trust=True))])
    changed = _record(device_id, name, pinned).model_copy(update={"text": "hostname x\n!\ninterface Gi0/2\n"})
    delivery = Delivery("x", f"f-{uuid.uuid4().hex}", changed)
    intake.apply([delivery])
    intake.apply([delivery])  # redelivered (the ack was lost)
    assert intake.applied == 2 and intake.duplicates == 1
    with transaction(sessions) as session:
        events = session.scalars(select(EventRecord).where(EventRecord.device == name)).all()
        assert sorted(e.event_type for e in events) == ["config_changed", "unplanned_change"]
        assert len(session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)).all()) == 2


def test_a_result_under_another_key_or_malformed_is_a_clear_error(ssh_base):
    right = Fernet(ssh_base.collector_key.get_secret_value().encode())
    record = _record(1, "r1", OfferedKey("ssh-ed25519", "AAAA", "SHA256:x"))
    assert ssh_decoder(right)(encode_ssh(right, record)) == record
    with pytest.raises(ValueError, match="not encrypted with FAULTLOOP_COLLECTOR_KEY"):
        ssh_decoder(right)(encode_ssh(Fernet(Fernet.generate_key()), record))
    with pytest.raises(ValueError, match="not encrypted with FAULTLOOP_COLLECTOR_KEY"):
        ssh_decoder(right)(record.model_dump_json().encode())  # plaintext is refused too
    with pytest.raises(ValueError, match=r"ssh result: field 'kind'"):
        ssh_decoder(right)(right.encrypt(b'{"kind":"reboot","device_id":1,"device":"r1","time":"2026-01-01T00:00:00Z"}'))
    with pytest.raises(ValueError, match=r"ssh result: field 'device_id'"):
        ssh_decoder(right)(right.encrypt(b'{"kind":"cli","device_id":0,"device":"r1","time":"2026-01-01T00:00:00Z"}'))


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"port": 0}, "ssh entry: field 'port'"),
        ({"host_key_policy": "trust-all"}, "ssh entry: field 'host_key_policy'"),
        ({"username": ""}, "ssh entry: field 'username'"),
        ({"id": "x"}, "ssh entry: field 'id'"),
    ],
)
def test_a_bad_directory_ssh_entry_names_the_field(change, expected):
    good = {"id": 1, "hostname": "r1", "device_type": "cisco_ios", "address": "10.0.0.1", "port": 22,
            "username": "admin", "host_key_policy": "tofu"}  # fmt: skip
    assert ssh_device(good).id == 1
    with pytest.raises(ValueError, match=expected):
        ssh_device({**good, **change})
