"""The poller's own SNMPv3 client (snmpwire.v3 under devices.snmp) against two
independent agents over real UDP: Debian's net-snmp snmpd (every auth protocol and
security level, compared with what pysnmp reads from it) and the lab's agent (engine
reboot, replaced engine); and against a hostile fake agent (answers that must be refused)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tomllib
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from devices.snmp import SnmpClient, SnmpConfigError, SnmpError, SnmpTarget, _Engine
from lab import usm as lab_usm
from lab.network import LabNetwork
from snmpwire import ber, pdu
from snmpwire import v3 as snmpv3
from snmpwire.usm import localize, password_to_key
from tests.collectors.snmpd import COMMUNITY, V3_AUTH, V3_PRIV, V3_USER, V3_USERS, Snmpd
from tests.lab.conftest import FakeClock, small_topology

# CI installs snmpd (.ci/run): there a missing snmpd fails these tests instead of skipping them
needs_snmpd = pytest.mark.skipif(
    shutil.which("/usr/sbin/snmpd") is None and not os.environ.get("CI"), reason="net-snmp snmpd not installed"
)
# privacy protocols the poller hands to pysnmp's engine (cryptography's DES and CFB modes)
PYSNMP_PRIV = {"DES", "AES-192", "AES-256"}

SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)


def user_target(d: Snmpd, user: str, **kw) -> SnmpTarget:
    auth, priv, _level = V3_USERS[user]
    return SnmpTarget(
        d.host, d.port, "v3", user=user, auth_protocol=auth, auth_key=V3_AUTH if auth else "", priv_protocol=priv,
        priv_key=V3_PRIV if priv else "", allow_weak=True, **kw,
    )  # fmt: skip


@needs_snmpd
@pytest.mark.parametrize("user", sorted(V3_USERS))
async def test_every_auth_protocol_and_level_reads_what_pysnmp_reads(snmpd, snmp_client, user):
    t = user_target(snmpd, user)
    ours = await snmp_client.walk(t, [IF_DESCR], scalars=[SYS_NAME])
    assert ours[SYS_NAME] == b"fl-snmpd"
    # AES-128 and no privacy: answered without the pysnmp engine; DES, AES-192/256 through it
    assert bool(snmp_client._targets) == (V3_USERS[user][1] in PYSNMP_PRIV)
    v2c = SnmpTarget(snmpd.host, snmpd.port, "v2c", community=COMMUNITY)
    assert ours == await snmp_client.walk(v2c, [IF_DESCR], scalars=[SYS_NAME])
    reference = SnmpClient(native=False)
    try:
        theirs = await reference.walk(t, [IF_DESCR], scalars=[SYS_NAME])
    finally:
        reference.close()
    assert ours == theirs and len(ours) > 1


@needs_snmpd
async def test_agent_refusals_are_named_errors_not_timeouts(snmpd, snmp_client):
    good = user_target(snmpd, V3_USER, timeout_s=0.5, retries=0)
    wrong_auth = replace(good, auth_key="not-the-auth-passphrase")
    with pytest.raises(SnmpError, match=r"wrong auth password or protocol \(usmStatsWrongDigests\)") as exc:
        await snmp_client.get(wrong_auth, [SYS_NAME])
    assert not exc.value.timeout
    unknown = replace(good, user="nobody")
    with pytest.raises(SnmpError, match=r"does not know this SNMPv3 user") as exc:
        await snmp_client.get(unknown, [SYS_NAME])
    assert not exc.value.timeout
    too_low = replace(good, priv_protocol=None, priv_key="")  # fltest is rouser ... priv
    with pytest.raises(SnmpError, match=r"agent error authorizationError|usmStatsUnsupportedSecLevels"):
        await snmp_client.get(too_low, [SYS_NAME])
    # net-snmp drops what it cannot decrypt without a Report: the request times out
    wrong_priv = replace(good, priv_key="not-the-priv-passphrase")
    with pytest.raises(SnmpError) as exc:
        await snmp_client.get(wrong_priv, [SYS_NAME])
    assert exc.value.timeout
    assert (await snmp_client.get(good, [SYS_NAME]))[SYS_NAME] == b"fl-snmpd"  # the engine state is unharmed


async def test_bad_v3_settings_are_refused_before_sending(snmp_client):
    t = SnmpTarget("127.0.0.1", 9, "v3", user="u", priv_protocol="AES", priv_key="priv-passphrase")
    with pytest.raises(SnmpConfigError, match="privacy needs an snmp_auth_protocol"):
        await snmp_client.get(t, [SYS_NAME])
    with pytest.raises(SnmpConfigError, match="snmp_user: required"):
        await snmp_client.get(SnmpTarget("127.0.0.1", 9, "v3", auth_protocol="SHA", auth_key="x" * 8), [SYS_NAME])
    with pytest.raises(SnmpConfigError, match="MD5 is refused unless the device has snmp_allow_weak"):
        md5 = SnmpTarget("127.0.0.1", 9, "v3", user="u", auth_protocol="MD5", auth_key="x" * 8)
        await snmp_client.get(md5, [SYS_NAME])


# ---- the lab's agent: reboot and replaced engine -----------------------------------------------


@pytest.fixture
async def lab() -> AsyncIterator[LabNetwork]:
    clock = FakeClock(1_800_000_000.0)
    net = LabNetwork(small_topology(port=random.randint(20000, 60000)), ssh=False, now=clock, fresh_boot=True)
    await net.start()
    try:
        yield net
    finally:
        await net.stop()


def lab_target(device) -> SnmpTarget:
    return SnmpTarget(
        device.address, device.snmp_port, "v3", user=lab_usm.LAB_V3_USER, auth_protocol="SHA-256",
        auth_key=lab_usm.LAB_V3_AUTH_PASS, priv_protocol="AES-128", priv_key=lab_usm.LAB_V3_PRIV_PASS, timeout_s=1,
        retries=0,
    )  # fmt: skip


async def test_engine_reboot_and_replacement_are_followed(lab, snmp_client):
    device = lab.devices["dist1"]
    agent = lab.agents["dist1"]
    t = lab_target(device)
    assert (await snmp_client.get(t, [SYS_NAME]))[SYS_NAME] == b"dist1"
    engine = snmp_client._engines[(t.host, t.port)]
    assert engine.engine_id == agent.engine_id and engine.boots == device.engine_boots
    # a reload: engineBoots + 1; the agent answers our stale boots with an authentic
    # notInTimeWindow Report, which the client adopts and retries once
    lab.reboot(device)
    before = agent.stats.usm["not_in_time_windows"]
    assert (await snmp_client.get(t, [SYS_NAME]))[SYS_NAME] == b"dist1"
    assert agent.stats.usm["not_in_time_windows"] == before + 1
    assert engine.boots == device.engine_boots
    # the device was replaced (another engine ID): unknownEngineID Report, discovered again
    snmp_client._engines[(t.host, t.port)] = _Engine(b"\x80\x00\x1f\x88\x04old-box", 1, 1, 0.0)
    assert (await snmp_client.get(t, [SYS_NAME]))[SYS_NAME] == b"dist1"
    assert snmp_client._engines[(t.host, t.port)].engine_id == agent.engine_id
    # a walk of the whole interface table over v3 matches v2c's
    v2c = SnmpTarget(device.address, device.snmp_port, "v2c", community="public")
    assert await snmp_client.walk(t, [IF_DESCR]) == await snmp_client.walk(v2c, [IF_DESCR])


# ---- a hostile agent ------------------------------------------------------------------------------


ENGINE = b"\x80\x00\x1f\x88\x04hostile"


class HostileAgent(asyncio.DatagramProtocol):
    """Answers discovery correctly, then the request in the way ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.transport: asyncio.DatagramTransport | None = None
        ku = password_to_key(V3_AUTH, "sha256")
        self.auth_key = localize(ku, ENGINE, "sha256")

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        s, e = ber.expect(data, 0, len(data), ber.SEQUENCE)
        _version, p = ber.read_int(data, s, e)
        m = snmpv3.parse(data, p, e)
        assert self.transport is not None
        if not m.engine_id:  # discovery
            report = pdu.encode_request(ber.REPORT, 0, [])
            scoped = ber.enc_seq(ber.enc_octets(ENGINE), ber.enc_octets(b""), report)
            self.transport.sendto(
                snmpv3.encode(msg_id=m.msg_id, user=b"", scoped=scoped, engine_id=ENGINE, boots=1, etime=5), addr
            )
            return
        response = pdu.encode_request(ber.RESPONSE, 1, [SYS_NAME])
        scoped = ber.enc_seq(ber.enc_octets(ENGINE), ber.enc_octets(b""), response)
        if self.mode == "garbage":
            self.transport.sendto(b"\x30\x03\x02\x01\x03", addr)
            return
        if self.mode == "unauthenticated":
            answer = snmpv3.encode(msg_id=m.msg_id, user=m.user, scoped=scoped, engine_id=ENGINE, boots=1, etime=5)
        else:  # signed with another key
            answer = snmpv3.encode(
                msg_id=m.msg_id, user=m.user, scoped=scoped, engine_id=ENGINE, boots=1, etime=5,
                auth=("SHA-256", bytes(32)),
            )  # fmt: skip
        self.transport.sendto(answer, addr)


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("unauthenticated", "an answer below the security level asked for"),
        ("wrong-key", r"the answer failed authentication \(wrong digest\)"),
        ("garbage", "No SNMP response received before timeout"),
    ],
)
async def test_answers_that_fail_usm_are_refused(snmp_client, mode, error):
    loop = asyncio.get_running_loop()
    host = f"127.{random.randint(61, 70)}.{random.randint(0, 250)}.{random.randint(1, 250)}"
    transport, _agent = await loop.create_datagram_endpoint(lambda: HostileAgent(mode), local_addr=(host, 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        t = SnmpTarget(
            host, port, "v3", user="u", auth_protocol="SHA-256", auth_key=V3_AUTH, timeout_s=0.3, retries=0
        )  # fmt: skip
        with pytest.raises(SnmpError, match=error):
            await snmp_client.get(t, [SYS_NAME])
        assert snmp_client._engines[(host, port)].engine_id == ENGINE  # discovery itself went through
        if mode == "garbage":
            assert snmp_client.dropped_datagrams >= 1
    finally:
        transport.close()


def test_the_cryptography_pin_stops_before_cfb_leaves_the_primitives():
    """pysnmp's AES (all key sizes) uses ``cryptography``'s ``modes.CFB``, deprecated since 47
    and announced for removal in 49 (``cryptography.hazmat.decrepit``): the pin must stop below
    that release, and the installed release must still have it where pysnmp looks."""
    from cryptography import __version__ as installed
    from cryptography.hazmat.primitives.ciphers import modes
    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[2]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(Requirement(d) for d in deps if Requirement(d).name == "cryptography")
    assert "49.0.0" not in pin.specifier and installed in pin.specifier, (str(pin), installed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation itself is what the pin is about
        assert hasattr(modes, "CFB")
