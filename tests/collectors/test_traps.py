"""Trap receiver against real senders: net-snmp's snmptrap/snmpinform (v1, v2c, v3
authPriv), the lab network's own traps, and hand-built SNMPv3 messages for the cases
net-snmp will not produce (empty digest, wrong security level)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collectors.receiver import DeviceDirectory, ReceiverError
from collectors.trapmap import MappingFileError, load_trap_map
from collectors.traps import TrapReceiverService
from collectors.traps.usm import UsmConfigError, load_users
from faultloop import clock
from faultloop.metrics import exposition
from faultloop.settings import Settings
from inventory import service as inventory
from inventory.schemas import DeviceIn, InterfaceIn
from lab.network import LabNetwork
from snmpwire import ber, pdu
from snmpwire.usm import localize, password_to_key

from ..lab.conftest import FakeClock, small_topology
from ..snmpwire.packets import v2c_trap, v3_trap
from .receivers import CollectingSink, metric, random_loopback, udp_from

pytestmark = pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp snmptrap not installed")

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
ENGINE = "8000000001020304"
AUTH_PASS = "trap-auth-pass-1"  # test credentials; the tests check they never reach a log line
PRIV_PASS = "trap-priv-pass-1"
USERS = f"""users:
  - user: noc-v3
    engine_id: "0x{ENGINE}"
    auth_protocol: SHA-256
    auth_password: {AUTH_PASS}
    priv_protocol: AES
    priv_password: {PRIV_PASS}
  - user: any-engine
    auth_protocol: SHA
    auth_password: {AUTH_PASS}
  - user: labv3
    auth_protocol: SHA-256
    auth_password: lab-auth-pass
    priv_protocol: AES
    priv_password: lab-priv-pass
"""


@dataclass
class Rx:
    service: TrapReceiverService
    sink: CollectingSink
    directory: DeviceDirectory

    @property
    def target(self) -> str:
        host, port = self.service.receiver.address
        return f"{host}:{port}"

    @property
    def stats(self):
        return self.service.receiver.stats

    async def wait_datagrams(self, n: int, timeout: float = 10.0) -> None:
        """Until the listener has read ``n`` datagrams and the worker has emptied the queue."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.stats["datagrams"] < n or self.service.receiver._queue:
            if loop.time() > deadline:
                raise AssertionError(f"receiver read {self.stats['datagrams']} of {n} datagrams")
            await asyncio.sleep(0.005)
        await self.service.receiver.drain()


MakeRx = Callable[..., Awaitable[Rx]]


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "trap-users.yaml"
    path.write_text(USERS)
    return path


@pytest.fixture
async def make_rx(tmp_path: Path, users_file: Path) -> AsyncIterator[MakeRx]:
    started: list[TrapReceiverService] = []

    async def make(directory: DeviceDirectory | None = None, **overrides) -> Rx:
        settings = Settings(
            data_dir=tmp_path / "var",
            trap_host=overrides.pop("trap_host", random_loopback(32)),
            trap_port=0,
            trap_v3_users_file=users_file,
            **overrides,
        )
        sink = CollectingSink()
        directory = directory or DeviceDirectory(None)
        service = TrapReceiverService(settings=settings, sink=sink, directory=directory)
        await service.start()
        started.append(service)
        return Rx(service, sink, directory)

    yield make
    for service in started:
        await service.stop()


async def net_snmp(tmp_path: Path, tool: str, *args: str, source: str | None = None) -> tuple[int, str]:
    env = {"MIBS": "", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SNMP_PERSISTENT_DIR": str(tmp_path / "snmp")}
    opts = [f"--clientaddr={source}"] if source else []
    proc = await asyncio.create_subprocess_exec(
        tool, *opts, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode or 0, out.decode()


def v3_args(user: str = "noc-v3", auth: str = AUTH_PASS, priv: str = PRIV_PASS, engine: str = ENGINE) -> list[str]:
    return ["-v3", "-e", f"0x{engine}", "-u", user, "-l", "authPriv", "-a", "SHA-256", "-A", auth, "-x", "AES"] + [
        "-X",
        priv,
    ]


# ---------------------------------------------------------------- v1 / v2c / inform with net-snmp


async def test_v2c_link_down_names_inventory_device_and_interface(make_rx, session, sessions, vault, tmp_path):
    source = random_loopback(33)
    inventory.create_device(
        session,
        vault,
        DeviceIn(
            hostname="edge7",
            address=source,
            role="access",
            interfaces=[InterfaceIn(name="GigabitEthernet0/7", if_index=7)],
        ),
        actor="test",
    )
    session.flush()
    directory = DeviceDirectory(sessions)
    directory.load()
    rx = await make_rx(directory)
    rc, out = await net_snmp(
        tmp_path, "snmptrap", "-v2c", "-c", "public", rx.target, "", LINK_DOWN, f"{IF_INDEX}.7", "i", "7", source=source
    )
    assert rc == 0, out
    [event] = await rx.sink.wait_for(lambda ev: len(ev) >= 1)
    assert (event.source, event.device, event.event_type, event.severity) == ("trap", "edge7", "linkDown", "major")
    assert event.managed_object == "interface:GigabitEthernet0/7"
    assert event.raw["source_address"] == source
    assert event.raw["varbinds"] == {f"{IF_INDEX}.7": 7}
    assert "public" not in repr(event)  # the community is never carried into an event
    assert event.time.tzinfo is not None


async def test_v1_trap_is_translated_per_rfc3584(make_rx, tmp_path):
    directory = DeviceDirectory(None)
    directory.by_address = {"127.9.9.9": "relayed-dev"}  # the agent-addr field, not the UDP source
    rx = await make_rx(directory, receiver_relays="127.0.0.1")  # snmptrap sends from 127.0.0.1: a relay
    before = metric("faultloop_traps_received_total", version="v1")
    args = ["-v1", "-c", "public", rx.target, "1.3.6.1.4.1.9", "127.9.9.9", "2", "0", "", f"{IF_INDEX}.3", "i", "3"]
    rc, out = await net_snmp(tmp_path, "snmptrap", *args)
    assert rc == 0, out
    rc, out = await net_snmp(tmp_path, "snmptrap", "-v1", "-c", "public", rx.target, "1.3.6.1.4.1.9", "", "6", "17", "")
    assert rc == 0, out
    events = await rx.sink.wait_for(lambda ev: len(ev) >= 2)
    down, vendor = events
    assert down.event_type == "linkDown" and down.specific_problem == LINK_DOWN
    assert down.raw["agent_address"] == "127.9.9.9" and down.device == "relayed-dev"
    assert down.managed_object == "interface:ifIndex.3"  # not in the inventory and no ifName sent
    assert vendor.event_type == "unknown_trap" and vendor.specific_problem == "1.3.6.1.4.1.9.0.17"
    assert vendor.raw["varbinds"]["1.3.6.1.6.3.1.1.4.3.0"] == "1.3.6.1.4.1.9"  # snmpTrapEnterprise.0
    assert metric("faultloop_traps_received_total", version="v1") == before + 2


# ---------------------------------------------------------------- attribution: forged agent addresses

SNMP_TRAP_ADDRESS_0 = "1.3.6.1.6.3.18.1.3.0"


def victim_directory() -> tuple[DeviceDirectory, str]:
    victim = random_loopback(34)
    directory = DeviceDirectory(None)
    directory.by_address = {victim: "core-victim"}
    directory.hostnames = {"core-victim"}
    directory.interfaces = {("core-victim", 7): "Gi0/7"}
    return directory, victim


def forged_v2c(rx: Rx, victim: str, if_index: int = 7) -> list[str]:
    """snmptrap arguments: a v2c linkDown whose snmpTrapAddress.0 names ``victim``."""
    return ["-v2c", "-c", "public", rx.target, "", LINK_DOWN, f"{IF_INDEX}.{if_index}", "i", str(if_index)] + [
        SNMP_TRAP_ADDRESS_0,
        "a",
        victim,
    ]


async def test_forged_agent_address_from_unknown_source_is_not_attributed(make_rx, tmp_path):
    """Anyone who reaches the port can write a real device's address into snmpTrapAddress.0 or a
    v1 agent-addr: from a source that is not a relay, the claim is ignored; the trap is kept
    unattributed, without a managed object (so it cannot raise or clear the device's alarms),
    and counted."""
    directory, victim = victim_directory()
    rx = await make_rx(directory)
    attacker = random_loopback(35)
    before = metric("faultloop_receiver_unattributed_total", receiver="trap")
    rc, out = await net_snmp(tmp_path, "snmptrap", *forged_v2c(rx, victim), source=attacker)
    assert rc == 0, out
    v1 = ["-v1", "-c", "public", rx.target, "1.3.6.1.4.1.9", victim, "2", "0", "", f"{IF_INDEX}.7", "i", "7"]
    rc, out = await net_snmp(tmp_path, "snmptrap", *v1, source=attacker)
    assert rc == 0, out
    events = await rx.sink.wait_for(lambda ev: len(ev) >= 2)
    assert [(e.device, e.event_type, e.managed_object) for e in events] == [("", "linkDown", "")] * 2
    assert [e.raw["agent_address"] for e in events] == [victim, victim]  # kept as evidence
    assert [e.raw["source_address"] for e in events] == [attacker, attacker]
    assert [e.raw["claimed_object"] for e in events] == ["interface:ifIndex.7"] * 2
    assert metric("faultloop_receiver_unattributed_total", receiver="trap") == before + 2


async def test_unknown_sources_dropped_and_counted_when_configured(make_rx, tmp_path):
    directory, victim = victim_directory()
    rx = await make_rx(directory, receiver_unknown_sources="drop")
    before = metric("faultloop_traps_dropped_total", reason="unknown_source")
    rc, out = await net_snmp(tmp_path, "snmptrap", *forged_v2c(rx, victim), source=random_loopback(35))
    assert rc == 0, out
    rc, out = await net_snmp(tmp_path, "snmptrap", *forged_v2c(rx, victim), source=victim)  # the device itself
    assert rc == 0, out
    await rx.wait_datagrams(2)
    assert [(e.device, e.managed_object) for e in rx.sink.events] == [("core-victim", "interface:Gi0/7")]
    assert rx.stats["dropped:unknown_source"] == 1
    assert metric("faultloop_traps_dropped_total", reason="unknown_source") == before + 1


async def test_agent_address_trusted_only_from_configured_relays(make_rx, tmp_path):
    directory, victim = victim_directory()
    relay = random_loopback(36)
    rx = await make_rx(directory, receiver_relays=f"{relay}/32", receiver_unknown_sources="drop")
    rc, out = await net_snmp(tmp_path, "snmptrap", *forged_v2c(rx, victim), source=relay)
    assert rc == 0, out
    # the relay forwarding an agent the inventory does not know: unknown, not the relay's own
    rc, out = await net_snmp(tmp_path, "snmptrap", *forged_v2c(rx, "127.254.0.9"), source=relay)
    assert rc == 0, out
    await rx.wait_datagrams(2)
    assert [(e.device, e.managed_object) for e in rx.sink.events] == [("core-victim", "interface:Gi0/7")]
    assert rx.stats["dropped:unknown_source"] == 1


def link_down_trap(if_index: int) -> bytes:
    vbs = [
        pdu.varbind(ber.enc_oid(pdu.SYS_UPTIME_0), ber.enc_uint(5, ber.TIMETICKS)),
        pdu.varbind(ber.enc_oid(pdu.SNMP_TRAP_OID_0), ber.enc_oid(ber.parse_oid_str(LINK_DOWN))),
        pdu.varbind(ber.enc_oid(ber.parse_oid_str(f"{IF_INDEX}.{if_index}")), ber.enc_int(if_index)),
    ]
    return pdu.encode_community(1, b"public", pdu.encode_pdu(ber.TRAP_V2, if_index, 0, 0, vbs))


async def test_unknown_source_raises_one_alarm_however_many_ifindexes(make_rx, runtime, session):
    """One linkDown per ifIndex from a source nobody knows used to open one alarm (and one ticket)
    per ifIndex, without bound; unattributed they fold into one alarm."""
    from sqlalchemy import select

    from alarms.bus import AlarmBus
    from alarms.models import Alarm
    from alarms.runner import AlarmEngine

    engine = AlarmEngine(runtime, AlarmBus())
    engine.load()
    rx = await make_rx()
    rx.service.receiver.sink = engine
    with udp_from(random_loopback(37)) as s:
        for if_index in range(1, 41):
            s.sendto(link_down_trap(if_index), rx.service.receiver.address)
    await rx.wait_datagrams(40)
    assert rx.stats["events"] == 40
    engine.run_once()
    alarms = session.scalars(select(Alarm).where(Alarm.alarm_type == "link_down")).all()
    assert [(a.device, a.managed_object, a.count) for a in alarms] == [("", "", 40)]


async def test_unknown_trap_becomes_event_with_raw_varbinds(make_rx, tmp_path):
    rx = await make_rx()
    args = ["-v2c", "-c", "public", rx.target, "", "1.3.6.1.4.1.99999.0.1"]
    args += ["1.3.6.1.4.1.99999.1.1", "s", "fan tray 2 <b>hot</b>", "1.3.6.1.4.1.99999.1.2", "u", "71"]
    rc, out = await net_snmp(tmp_path, "snmptrap", *args)
    assert rc == 0, out
    [event] = await rx.sink.wait_for(lambda ev: len(ev) >= 1)
    assert (event.event_type, event.severity, event.device) == ("unknown_trap", "indeterminate", "")
    assert event.raw["varbinds"] == {"1.3.6.1.4.1.99999.1.1": "fan tray 2 <b>hot</b>", "1.3.6.1.4.1.99999.1.2": 71}


async def test_long_varbind_text_is_capped_in_the_event(make_rx):
    rx = await make_rx()
    with udp_from(random_loopback(34)) as s:
        s.sendto(v2c_trap("1.3.6.1.4.1.99999.0.2", "x" * 5000), rx.service.receiver.address)
    [event] = await rx.sink.wait_for(lambda ev: len(ev) >= 1)
    assert event.raw["varbinds"]["1.3.6.1.4.1.99999.9"] == "x" * 1024 + "...[3976 more characters]"


async def test_v2c_inform_is_acknowledged_and_becomes_event(make_rx, tmp_path):
    rx = await make_rx()
    rc, out = await net_snmp(
        tmp_path, "snmpinform", "-v2c", "-c", "public", "-t", "2", "-r", "0", rx.target, "", "1.3.6.1.6.3.1.1.5.1"
    )
    assert rc == 0, out  # snmpinform exits non-zero when no Response comes back
    [event] = await rx.sink.wait_for(lambda ev: len(ev) >= 1)
    assert event.event_type == "coldStart" and event.raw["inform"] is True


async def test_community_filter_drops_other_communities(make_rx, tmp_path):
    rx = await make_rx(trap_communities="n0c-only,second")
    before = metric("faultloop_traps_dropped_total", reason="bad_community")
    for community in ("public", "n0c-only"):
        rc, out = await net_snmp(tmp_path, "snmptrap", "-v2c", "-c", community, rx.target, "", "1.3.6.1.6.3.1.1.5.1")
        assert rc == 0, out
    await rx.wait_datagrams(2)
    assert len(rx.sink.events) == 1
    assert rx.stats["dropped:bad_community"] == 1
    assert metric("faultloop_traps_dropped_total", reason="bad_community") == before + 1


# ---------------------------------------------------------------- SNMPv3


async def test_v3_auth_priv_from_snmptrap(make_rx, tmp_path):
    rx = await make_rx()
    before = metric("faultloop_traps_received_total", version="v3")
    rc, out = await net_snmp(tmp_path, "snmptrap", *v3_args(), rx.target, "", LINK_DOWN, f"{IF_INDEX}.2", "i", "2")
    assert rc == 0, out
    [event] = await rx.sink.wait_for(lambda ev: len(ev) >= 1)
    assert event.event_type == "linkDown" and event.raw["user"] == "noc-v3" and event.raw["engine_id"] == ENGINE
    assert metric("faultloop_traps_received_total", version="v3") == before + 1


async def test_v3_auth_no_priv_any_engine_user_from_snmptrap(make_rx, tmp_path):
    rx = await make_rx()
    for engine in ("80000000aabbcc0001", "80000000aabbcc0002"):  # keys localized per engine on first sight
        args = ["-v3", "-e", f"0x{engine}", "-u", "any-engine", "-l", "authNoPriv", "-a", "SHA", "-A", AUTH_PASS]
        rc, out = await net_snmp(tmp_path, "snmptrap", *args, rx.target, "", "1.3.6.1.6.3.1.1.5.2")
        assert rc == 0, out
    events = await rx.sink.wait_for(lambda ev: len(ev) >= 2)
    assert [(e.event_type, e.raw["engine_id"]) for e in events] == [
        ("warmStart", "80000000aabbcc0001"),
        ("warmStart", "80000000aabbcc0002"),
    ]


async def test_v3_rejections_are_counted_by_reason_and_never_log_secrets(make_rx, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    rx = await make_rx()
    reasons = ["auth_failed", "decrypt_failed", "unknown_user"]
    before = {r: metric("faultloop_traps_dropped_total", reason=r) for r in reasons}
    cases = [
        v3_args(auth="wrong-auth-pass"),  # wrong key -> digest mismatch
        v3_args(priv="wrong-priv-pass"),  # right digest, wrong privacy key
        v3_args(user="nobody"),  # unknown user
        v3_args(engine="8000000001020399"),  # user bound to another engine ID
    ]
    for args in cases:
        rc, out = await net_snmp(tmp_path, "snmptrap", *args, rx.target, "", "1.3.6.1.6.3.1.1.5.1")
        assert rc == 0, out
    await rx.wait_datagrams(len(cases))
    assert rx.sink.events == []
    assert rx.stats["dropped:auth_failed"] == 1
    assert rx.stats["dropped:decrypt_failed"] == 1
    assert rx.stats["dropped:unknown_user"] == 2
    assert metric("faultloop_traps_dropped_total", reason="auth_failed") == before["auth_failed"] + 1
    assert metric("faultloop_traps_dropped_total", reason="unknown_user") == before["unknown_user"] + 2
    for secret in (AUTH_PASS, PRIV_PASS, "wrong-auth-pass", "wrong-priv-pass"):
        assert secret not in caplog.text
        assert secret not in exposition().decode()


def _signed(user: bytes, engine: bytes, boots: int = 1, etime: int = 10) -> bytes:
    """authNoPriv with HMAC-SHA-96 (the any-engine user), signed the RFC 3414 way."""
    marker = b"\xa5" * 12
    msg = v3_trap(user, engine, 0x01, marker, boots, etime)
    key = localize(password_to_key(AUTH_PASS, "sha1"), engine, "sha1")
    digest = hmac.new(key, msg.replace(marker, bytes(12)), hashlib.sha1).digest()[:12]
    return msg.replace(marker, digest)


async def test_v3_empty_digest_and_wrong_level_rejected_valid_signed_accepted(make_rx):
    rx = await make_rx()
    host, port = rx.service.receiver.address
    engine = bytes.fromhex("80000000aabbccdd01")
    packets = [
        v3_trap(b"any-engine", engine, 0x01, b""),  # auth flag, empty digest
        v3_trap(b"any-engine", engine, 0x00, b""),  # noAuthNoPriv for a user that requires auth
        v3_trap(b"noc-v3", bytes.fromhex(ENGINE), 0x03, bytes(24)),  # authPriv flag, all-zero digest
        _signed(b"any-engine", engine),  # valid: any engine ID, keys localized on first sight
    ]
    with udp_from(random_loopback(34)) as s:
        for p in packets:
            s.sendto(p, (host, port))
    await rx.wait_datagrams(len(packets))
    assert rx.stats["dropped:auth_failed"] == 2  # empty and all-zero digests
    assert rx.stats["dropped:unsupported_sec_level"] == 1
    assert rx.stats["malformed"] == 0
    [event] = rx.sink.events
    assert event.event_type == "coldStart" and event.raw["engine_id"] == engine.hex()


async def test_v3_replay_outside_time_window_is_rejected(make_rx):
    frozen = clock.FrozenClock()
    with clock.use(frozen):
        rx = await make_rx()
        host, port = rx.service.receiver.address
        engine = bytes.fromhex("80000000aabbccdd02")
        first = _signed(b"any-engine", engine, boots=5, etime=1000)
        with udp_from(random_loopback(34)) as s:
            s.sendto(first, (host, port))
            s.sendto(first, (host, port))  # a replay inside the 150 s window is allowed (RFC 3414)
            await rx.wait_datagrams(2)
            frozen.advance(200)
            s.sendto(first, (host, port))  # now 200 s stale
            s.sendto(_signed(b"any-engine", engine, boots=4, etime=5000), (host, port))  # older boots
            s.sendto(_signed(b"any-engine", engine, boots=5, etime=1210), (host, port))  # current
            await rx.wait_datagrams(5)
    assert rx.stats["dropped:not_in_time_window"] == 2
    assert len(rx.sink.events) == 3


# ---------------------------------------------------------------- the lab network's traps


@pytest.mark.parametrize("version", ["v2c", "v3"])
async def test_lab_link_down_reaches_receiver_from_both_ends(make_rx, version):
    topology = small_topology()
    directory = DeviceDirectory(None)
    directory.by_address = {d.address: d.name for d in topology.devices}
    directory.hostnames = set(directory.by_address.values())
    directory.interfaces = {(d.name, i.if_index): i.name for d in topology.devices for i in d.interfaces}
    rx = await make_rx(directory, trap_host="127.0.0.1")
    net = LabNetwork(
        topology,
        ssh=False,
        now=FakeClock(),
        fresh_boot=True,
        trap_version=version,
        trap_receivers=[rx.service.receiver.address],
    )
    await net.start()
    try:
        net.faults.apply("link_down", {"device": "core1", "interface": "GigabitEthernet0/1"})
        events = await rx.sink.wait_for(lambda ev: sum(e.event_type == "linkDown" for e in ev) >= 2)
    finally:
        await net.stop()
    downs = [e for e in events if e.event_type == "linkDown"]
    assert {e.device for e in downs} == {"core1", "dist1"}
    assert {e.managed_object for e in downs} == {"interface:GigabitEthernet0/1"}
    assert {e.raw["version"] for e in downs} == {version}


# ---------------------------------------------------------------- flood, queue, sink, logging


async def test_flood_with_canaries_every_quiet_source_gets_through(make_rx):
    with clock.use(clock.FrozenClock()):  # no refill during the test: exact bucket arithmetic
        rx = await make_rx(receiver_rate_per_source=10, receiver_burst_per_source=50, receiver_queue_size=100_000)
        host, port = rx.service.receiver.address
        before = metric("faultloop_traps_dropped_total", reason="rate_limited")
        noisy_payload = v2c_trap(LINK_DOWN, "noisy")
        canaries = [random_loopback(35) for _ in range(5)]
        sent = 0
        with udp_from(random_loopback(36)) as noisy:
            quiet = [udp_from(c) for c in canaries]
            try:
                for burst in range(10):
                    for _ in range(200):
                        noisy.sendto(noisy_payload, (host, port))
                    for i, q in enumerate(quiet):
                        q.sendto(v2c_trap("1.3.6.1.6.3.1.1.5.1", f"canary-{i}-{burst}"), (host, port))
                    sent += 200 + len(quiet)
                    await rx.wait_datagrams(sent)  # keep the kernel buffer from being the one dropping
            finally:
                for q in quiet:
                    q.close()
    events = rx.sink.events
    canary_events = [e for e in events if e.event_type == "coldStart"]
    assert len(canary_events) == 50
    assert {e.raw["source_address"] for e in canary_events} == set(canaries)
    assert sum(e.event_type == "linkDown" for e in events) == 50  # the noisy source's burst
    assert rx.stats["dropped:rate_limited"] == 2000 - 50
    assert metric("faultloop_traps_dropped_total", reason="rate_limited") == before + 1950


async def test_full_queue_drops_are_counted_and_queued_ones_still_delivered(make_rx):
    rx = await make_rx(receiver_queue_size=10)
    receiver = rx.service.receiver
    payload = v2c_trap("1.3.6.1.6.3.1.1.5.1", "q")
    # straight into the protocol callback, without yielding: the worker cannot drain in between
    for i in range(25):
        receiver.datagram_received(payload, (f"127.37.0.{i + 1}", 162))
    assert rx.stats["dropped:queue_full"] == 15
    await rx.wait_datagrams(25)
    assert len(rx.sink.events) == 10


async def test_refusing_sink_is_counted(make_rx):
    rx = await make_rx()
    rx.sink.accept = False
    host, port = rx.service.receiver.address
    with udp_from(random_loopback(34)) as s:
        s.sendto(v2c_trap("1.3.6.1.6.3.1.1.5.1", "x"), (host, port))
    await rx.wait_datagrams(1)
    assert rx.stats["dropped:sink_refused"] == 1 and rx.stats["events"] == 0


async def test_malformed_logged_once_per_source_per_minute(make_rx, caplog):
    caplog.set_level(logging.WARNING, logger="collectors.receiver")
    frozen = clock.FrozenClock()
    with clock.use(frozen):
        rx = await make_rx()
        host, port = rx.service.receiver.address
        a, b = random_loopback(38), random_loopback(39)
        with udp_from(a) as sa, udp_from(b) as sb:
            for _ in range(5):
                sa.sendto(b"\x30\x84\xff\xff\xff\xff", (host, port))
                sb.sendto(b"garbage", (host, port))
            await rx.wait_datagrams(10)
            assert len([r for r in caplog.records if "malformed packet" in r.getMessage()]) == 2
            frozen.advance(61)
            sa.sendto(b"\x02\x01", (host, port))
            await rx.wait_datagrams(11)
    lines = [r.getMessage() for r in caplog.records if "malformed packet" in r.getMessage()]
    assert len(lines) == 3
    assert sum(a in line for line in lines) == 2
    assert rx.stats["malformed"] == 11


async def test_metrics_are_exposed_in_prometheus_format(make_rx):
    rx = await make_rx()
    host, port = rx.service.receiver.address
    with udp_from(random_loopback(34)) as s:
        s.sendto(v2c_trap("1.3.6.1.6.3.1.1.5.1", "m"), (host, port))
        s.sendto(b"\xff", (host, port))
    await rx.wait_datagrams(2)
    families = {f.name: f for f in text_string_to_metric_families(exposition().decode())}
    received = {
        s.labels["version"]: s.value for s in families["faultloop_traps_received"].samples if s.name.endswith("_total")
    }
    assert received["v2c"] >= 1
    assert any(s.labels.get("reason") == "malformed" for s in families["faultloop_traps_dropped"].samples)
    assert families["faultloop_traps_malformed"].samples[0].value >= 1
    assert {s.labels["receiver"] for s in families["faultloop_receiver_queue_depth"].samples} >= {"trap"}


# ---------------------------------------------------------------- configuration errors


async def test_port_in_use_names_the_settings(make_rx, tmp_path, users_file):
    host = random_loopback(32)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((host, 0))
        port = taken.getsockname()[1]
        settings = Settings(data_dir=tmp_path, trap_host=host, trap_port=port)
        service = TrapReceiverService(settings=settings, sink=CollectingSink(), directory=DeviceDirectory(None))
        with pytest.raises(ReceiverError) as err:
            await service.start()
    assert str(err.value) == (
        f"trap receiver: cannot listen on udp {host}:{port}: Address already in use; "
        "set FAULTLOOP_TRAP_HOST / FAULTLOOP_TRAP_PORT"
    )


BAD_MAPS = [
    (
        "traps: [{oid: 1.3.6.1.4.1.9.1, event_type: x, severity: bad}]",
        "traps entry 1 (1.3.6.1.4.1.9.1): field 'severity'",
    ),
    ("traps: [{oid: 'not.an.oid', event_type: x, severity: major}]", "traps entry 1 (not.an.oid): field 'oid'"),
    ("traps: [{oid: 1.3.6.1, severity: major}]", "traps entry 1 (1.3.6.1): field 'event_type': required"),
    ("traps: [{oid: 1.3.6.1, event_type: x, severity: major, colour: red}]", "field 'colour': unknown field"),
    (
        "traps:\n- {oid: 1.3.6.1, event_type: x, severity: major}\n- {oid: .1.3.6.1, event_type: y, severity: minor}",
        "traps entry 2 (.1.3.6.1): field 'oid': 1.3.6.1 is mapped twice",
    ),
    (
        "traps: [{oid: 1.3.6.1, event_type: x, severity: major, object_is_ifindex: true}]",
        "field 'object_is_ifindex': needs object_varbind",
    ),
    ("traps: [{oid: 1.3.6.1, event_type: 'two words', severity: major}]", "field 'event_type': expected a name"),
    ("traps: [nope]", "traps entry 1: expected a mapping"),
    ("nothing: here", "expected a mapping with a 'traps' list"),
    ("traps: [", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_MAPS)
async def test_bad_trap_map_names_file_entry_and_field_and_binds_nothing(tmp_path, text, expected):
    path = tmp_path / "map.yaml"
    path.write_text(text)
    host = random_loopback(32)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    settings = Settings(data_dir=tmp_path, trap_host=host, trap_port=port, trap_map_file=path)
    with pytest.raises(MappingFileError) as err:
        TrapReceiverService(settings=settings, sink=CollectingSink(), directory=DeviceDirectory(None))
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind((host, port))  # nothing was left listening


def test_missing_trap_map_file(tmp_path):
    with pytest.raises(MappingFileError, match=r"nope\.yaml: cannot read: No such file or directory"):
        load_trap_map(tmp_path / "nope.yaml")


def test_default_trap_map_loads_with_standard_notifications():
    rules = load_trap_map()
    assert {rules[f"1.3.6.1.6.3.1.1.5.{n}"].event_type for n in range(1, 6)} == {
        "coldStart",
        "warmStart",
        "linkDown",
        "linkUp",
        "authenticationFailure",
    }
    assert rules[LINK_DOWN].object_is_ifindex and rules[LINK_DOWN].object_prefix == "interface:"


BAD_USERS = [
    (
        "users: [{user: u1, auth_protocol: SHA-1024, auth_password: longenough}]",
        "users entry 1 (u1): field 'auth_protocol'",
    ),
    (
        "users: [{user: u1, auth_protocol: SHA, auth_password: short}]",
        "users entry 1 (u1): field 'auth_password': expected at least 8",
    ),
    (
        "users: [{user: u1, priv_protocol: AES, priv_password: longenough}]",
        "field 'priv_protocol': privacy needs an auth_protocol",
    ),
    (
        "users: [{user: u1, engine_id: zz, auth_protocol: SHA, auth_password: longenough}]",
        "field 'engine_id': expected hex",
    ),
    (
        "users: [{user: u1, auth_protocol: SHA, auth_password: longenough, priv_protocol: DES,"
        " priv_password: longenough}]",
        "field 'priv_protocol': expected AES or none",
    ),
    ("users: [{name: u1}]", "users entry 1: field 'name': unknown field"),
    ("users: [{auth_protocol: SHA}]", "users entry 1: field 'user': expected a name"),
    ("users: 3", "expected a mapping with a 'users' list"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_USERS)
def test_bad_users_file_names_entry_and_field_but_no_secret(tmp_path, text, expected):
    path = tmp_path / "users.yaml"
    path.write_text(text)
    with pytest.raises(UsmConfigError) as err:
        load_users(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)
    assert "longenough" not in str(err.value) and "short" not in str(err.value).replace("short_", "")


def test_user_repr_hides_keys(users_file):
    users = load_users(users_file)
    user = users.find(bytes.fromhex(ENGINE), b"noc-v3")
    assert user is not None
    user.keys(bytes.fromhex(ENGINE))
    text = repr(user)
    assert "noc-v3" in text
    key = localize(password_to_key(AUTH_PASS, "sha256"), bytes.fromhex(ENGINE), "sha256")
    assert key.hex() not in text and repr(key) not in text


def test_users_file_readable_by_others_is_warned_about(users_file, caplog):
    caplog.set_level(logging.WARNING, logger="collectors.traps.usm")
    users_file.chmod(0o600)
    load_users(users_file)
    assert caplog.records == []
    users_file.chmod(0o644)
    load_users(users_file)
    assert [r.getMessage() for r in caplog.records] == [
        f"{users_file} holds SNMPv3 passwords and is readable by group or others; chmod 600 it"
    ]
    assert AUTH_PASS not in caplog.text


def test_token_buckets_refill_and_forget_idle_sources(monkeypatch):
    from collectors import receiver

    buckets = receiver.TokenBuckets(rate_per_s=2, burst=3)
    assert [buckets.allow("a", 100.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.allow("a", 100.4) is False  # 0.8 token
    assert buckets.allow("a", 100.5) is True  # 1.0 token
    assert [buckets.allow("a", 110.0) for _ in range(4)] == [True, True, True, False]  # capped at burst
    monkeypatch.setattr(receiver, "MAX_TRACKED_SOURCES", 4)
    for i in range(4):
        buckets.allow(f"s{i}", 200.0)
    buckets.allow("late", 202.0)  # table full: buckets idle long enough to be full again are forgotten
    assert set(buckets._buckets) == {"late"}


async def test_kernel_socket_buffer_drops_are_counted(make_rx, monkeypatch):
    from collectors import receiver

    monkeypatch.setattr(receiver, "SOCKET_RCVBUF", 2048)  # tiny buffer: the kernel must drop
    rx = await make_rx()
    before = metric("faultloop_traps_dropped_total", reason="socket_buffer")
    payload = v2c_trap("1.3.6.1.6.3.1.1.5.1", "k")
    with udp_from(random_loopback(34)) as s:
        for _ in range(300):  # no await in between: the event loop cannot read meanwhile
            s.sendto(payload, rx.service.receiver.address)
    dropped = rx.service.receiver.count_socket_drops()
    assert dropped > 0
    await rx.wait_datagrams(300 - dropped)
    assert rx.stats["datagrams"] + rx.stats["dropped:socket_buffer"] == 300
    assert len(rx.sink.events) == rx.stats["datagrams"]
    assert metric("faultloop_traps_dropped_total", reason="socket_buffer") == before + dropped
    assert rx.service.receiver.count_socket_drops() == 0  # counted once


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"receiver_relays": "127.0.0.1, relay.example"},
            "FAULTLOOP_RECEIVER_RELAYS (receiver_relays): Value error, expected IP addresses or networks "
            "(a.b.c.d or a.b.c.0/24), got 'relay.example'",
        ),
        ({"receiver_relays": "10.0.0.0/33"}, "got '10.0.0.0/33'"),
        ({"receiver_unknown_sources": "ignore"}, "FAULTLOOP_RECEIVER_UNKNOWN_SOURCES (receiver_unknown_sources)"),
    ],
)
def test_bad_source_settings_name_the_setting(overrides, expected):
    from faultloop.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as err:
        load_settings(**overrides)
    assert expected in str(err.value)
