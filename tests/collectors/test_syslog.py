"""Syslog receiver against real senders: util-linux ``logger`` (RFC 5424 and RFC 3164 over
UDP) and raw datagrams from device addresses; rules file validation; the same queue /
rate-limit / drop-count discipline as the trap receiver."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from collectors.receiver import DeviceDirectory, Malformed, Rejected
from collectors.syslog import SyslogHandler, SyslogReceiverService, load_rules, parse
from collectors.trapmap import MappingFileError
from faultloop import clock
from faultloop.settings import Settings
from inventory import service as inventory
from inventory.schemas import DeviceIn

from .receivers import CollectingSink, metric, random_loopback, udp_from

needs_logger = pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger not installed")

CISCO_DOWN = "%LINK-3-UPDOWN: Interface GigabitEthernet0/2, changed state to down"
JUNOS_DOWN = "SNMP_TRAP_LINK_DOWN: ifIndex 501, ifAdminStatus up(1), ifOperStatus down(2), ifName ge-0/0/3"


@dataclass
class Rx:
    service: SyslogReceiverService
    sink: CollectingSink

    @property
    def address(self) -> tuple[str, int]:
        return self.service.receiver.address

    @property
    def stats(self):
        return self.service.receiver.stats

    async def wait_datagrams(self, n: int, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.stats["datagrams"] < n or self.service.receiver._queue:
            if loop.time() > deadline:
                raise AssertionError(f"receiver read {self.stats['datagrams']} of {n} datagrams")
            await asyncio.sleep(0.005)
        await self.service.receiver.drain()


MakeRx = Callable[..., Awaitable[Rx]]


@pytest.fixture
async def make_rx(tmp_path: Path) -> AsyncIterator[MakeRx]:
    started: list[SyslogReceiverService] = []

    async def make(directory: DeviceDirectory | None = None, **overrides) -> Rx:
        settings = Settings(data_dir=tmp_path / "var", syslog_host=random_loopback(42), syslog_port=0, **overrides)
        sink = CollectingSink()
        service = SyslogReceiverService(settings=settings, sink=sink, directory=directory or DeviceDirectory(None))
        await service.start()
        started.append(service)
        return Rx(service, sink)

    yield make
    for service in started:
        await service.stop()


async def logger(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "logger", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, out.decode()


@needs_logger
async def test_rfc5424_from_logger_with_structured_data(make_rx):
    directory = DeviceDirectory(None)
    directory.hostnames = {socket.gethostname()}  # logger names this machine in HOSTNAME
    rx = await make_rx(directory, receiver_relays="127.0.0.0/8")  # HOSTNAME trusted from a relay only
    before = metric("faultloop_syslog_received_total", format="rfc5424")
    host, port = rx.address
    await logger(
        "--server", host, "--port", str(port), "--udp", "--rfc5424", "-t", "ios", "--msgid", "LINK",
        "--sd-id", "origin@32473", "--sd-param", 'software="IOS 15"', "-p", "local7.err", CISCO_DOWN,
    )  # fmt: skip
    [event] = await rx.sink.wait_for(lambda ev: len(ev) >= 1)
    assert (event.source, event.event_type, event.severity) == ("syslog", "linkDown", "major")
    assert event.managed_object == "interface:GigabitEthernet0/2"
    assert event.device == socket.gethostname()
    raw = event.raw
    assert (raw["format"], raw["app_name"], raw["msgid"], raw["facility"], raw["level"]) == (
        "rfc5424",
        "ios",
        "LINK",
        23,
        3,
    )
    assert raw["structured_data"].endswith('[origin@32473 software="IOS 15"]')
    assert raw["message"] == CISCO_DOWN and raw["rule"] == "cisco-link-down"
    assert metric("faultloop_syslog_received_total", format="rfc5424") == before + 1


@needs_logger
async def test_rfc3164_from_logger_junos_link_down(make_rx):
    rx = await make_rx()
    host, port = rx.address
    await logger("--server", host, "--port", str(port), "--udp", "--rfc3164", "-t", "mib2d", JUNOS_DOWN)
    [event] = await rx.sink.wait_for(lambda ev: len(ev) >= 1)
    assert event.event_type == "linkDown" and event.raw["claimed_object"] == "interface:ge-0/0/3"
    assert event.raw["format"] == "rfc3164" and event.raw["app_name"] == "mib2d"
    assert event.raw["hostname"] == socket.gethostname()
    assert event.device == ""  # neither the address nor the hostname is in the inventory
    assert event.managed_object == ""  # unattributed: one alarm per type, whatever object it names


async def test_forged_hostname_is_trusted_only_from_a_relay(make_rx):
    """A syslog HOSTNAME is a claim anyone can write: it names the device only when the
    datagram comes from a configured relay; otherwise the source address decides."""
    victim, relay, attacker = random_loopback(45), random_loopback(46), random_loopback(47)
    directory = DeviceDirectory(None)
    directory.by_address = {victim: "core-victim"}
    directory.hostnames = {"core-victim"}
    rx = await make_rx(directory, receiver_relays=relay)
    before = metric("faultloop_receiver_unattributed_total", receiver="syslog")
    line = f"<187>Nov 25 10:00:00 core-victim 12: {CISCO_DOWN}".encode()
    for source in (attacker, relay, victim):
        with udp_from(source) as s:
            s.sendto(line, rx.address)
        await rx.wait_datagrams(len(rx.sink.events) + 1)
    assert [(e.device, e.managed_object, e.raw["source_address"]) for e in rx.sink.events] == [
        ("", "", attacker),
        ("core-victim", "interface:GigabitEthernet0/2", relay),
        ("core-victim", "interface:GigabitEthernet0/2", victim),
    ]
    assert metric("faultloop_receiver_unattributed_total", receiver="syslog") == before + 1


async def test_unknown_syslog_sources_dropped_and_counted_when_configured(make_rx):
    victim = random_loopback(45)
    directory = DeviceDirectory(None)
    directory.by_address = {victim: "core-victim"}
    directory.hostnames = {"core-victim"}
    rx = await make_rx(directory, receiver_unknown_sources="drop")
    before = metric("faultloop_syslog_dropped_total", reason="unknown_source")
    line = f"<187>Nov 25 10:00:00 core-victim 12: {CISCO_DOWN}".encode()
    for source in (random_loopback(47), victim):
        with udp_from(source) as s:
            s.sendto(line, rx.address)
    await rx.wait_datagrams(2)
    assert [e.device for e in rx.sink.events] == ["core-victim"]
    assert rx.stats["dropped:unknown_source"] == 1
    assert metric("faultloop_syslog_dropped_total", reason="unknown_source") == before + 1


async def test_device_from_source_address_cisco_and_junos_config_changes(make_rx, session, sessions, vault):
    source = random_loopback(43)
    inventory.create_device(session, vault, DeviceIn(hostname="core9", address=source, role="core"), actor="test")
    session.flush()
    directory = DeviceDirectory(sessions)
    directory.load()
    rx = await make_rx(directory)
    lines = [
        b"<189>52: core9: *Mar  1 00:10:23.123: %SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.1)",
        b"<189>53: *Mar  1 00:10:24.001: %LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to up",
        b"<29>Nov 25 10:00:00 core9 mgd[4242]: UI_COMMIT: User 'noc' requested 'commit' operation (comment: none)",
        b"<30>Nov 25 10:00:01 core9 sshd[1]: Accepted publickey for noc",  # no rule
    ]
    before = metric("faultloop_syslog_dropped_total", reason="no_rule")
    with udp_from(source) as s:
        for line in lines:
            s.sendto(line, rx.address)
    await rx.wait_datagrams(len(lines))
    events = rx.sink.events
    assert [(e.device, e.event_type, e.severity, e.managed_object) for e in events] == [
        ("core9", "config_changed", "indeterminate", ""),
        ("core9", "lineProtocolUp", "cleared", "interface:Gi0/1"),
        ("core9", "config_changed", "indeterminate", ""),
    ]
    assert events[2].raw["app_name"] == "mgd" and events[2].raw["procid"] == "4242"
    assert rx.stats["dropped:no_rule"] == 1
    assert metric("faultloop_syslog_dropped_total", reason="no_rule") == before + 1


async def test_malformed_lines_are_counted_and_listener_keeps_working(make_rx):
    rx = await make_rx()
    bad = [b"", b"no pri here", b"<999>too big", b"<13>1 2026-01-01T00:00:00Z h", b"<13>1 - h a p m [unterminated"]
    before = metric("faultloop_syslog_malformed_total")
    with udp_from(random_loopback(44)) as s:
        for line in bad:
            s.sendto(line, rx.address)
        s.sendto(("<187>" + CISCO_DOWN).encode(), rx.address)
    await rx.wait_datagrams(len(bad) + 1)
    assert rx.stats["malformed"] == len(bad)
    assert metric("faultloop_syslog_malformed_total") == before + len(bad)
    [event] = rx.sink.events
    assert event.event_type == "linkDown"


async def test_flood_with_canaries(make_rx):
    with clock.use(clock.FrozenClock()):
        rx = await make_rx(receiver_rate_per_source=5, receiver_burst_per_source=20, receiver_queue_size=100_000)
        canaries = [random_loopback(45) for _ in range(4)]
        sent = 0
        with udp_from(random_loopback(46)) as noisy:
            quiet = [udp_from(c) for c in canaries]
            try:
                for round_ in range(5):
                    for _ in range(100):
                        noisy.sendto(("<187>" + CISCO_DOWN).encode(), rx.address)
                    for q in quiet:
                        q.sendto(f"<189>%SYS-5-CONFIG_I: Configured from console by r{round_}".encode(), rx.address)
                    sent += 100 + len(quiet)
                    await rx.wait_datagrams(sent)
            finally:
                for q in quiet:
                    q.close()
    events = rx.sink.events
    assert sum(e.event_type == "config_changed" for e in events) == 20  # every canary
    assert sum(e.event_type == "linkDown" for e in events) == 20  # the noisy source's burst
    assert rx.stats["dropped:rate_limited"] == 480


async def test_a_steady_stream_is_taken_in_batches_and_a_lone_line_after_a_quiet_spell_at_once(make_rx):
    """Under a flood a short batch waits a moment to fill (the sink's cost is per batch: a spool
    row and a NATS message, or a transaction); a datagram after a quiet spell is not held."""
    rx = await make_rx(receiver_rate_per_source=100_000, receiver_burst_per_source=100_000)
    line = ("<187>" + CISCO_DOWN).encode()
    with udp_from(random_loopback(47)) as s:
        for _ in range(300):  # one line about every millisecond: without the wait, ~300 batches
            s.sendto(line, rx.address)
            await asyncio.sleep(0.001)
        await rx.sink.wait_for(lambda ev: len(ev) == 300)
        assert len(rx.sink.batches) <= 100, rx.sink.batches
        rx.service.receiver.linger_s = 5.0  # were a lone line held, it would take this long
        await asyncio.sleep(0.3)  # quiet
        s.sendto(line, rx.address)
        await rx.sink.wait_for(lambda ev: len(ev) == 301, timeout=4.0)


# ---------------------------------------------------------------- parsing and default rules


def test_parse_rfc5424_escapes_bom_and_nil_fields():
    msg = parse('<165>1 2026-11-25T10:00:00.5Z r1 - - ID47 [a@1 x="q\\"]z"][b@2] \ufeffhello'.encode())
    assert (msg.format, msg.hostname, msg.app_name, msg.procid, msg.msgid) == ("rfc5424", "r1", "", "", "ID47")
    assert msg.structured_data == '[a@1 x="q\\"]z"][b@2]'
    assert msg.message == "hello" and msg.timestamp == "2026-11-25T10:00:00.5Z"
    assert parse(b"<14>1 - - - - - -").message == ""


def test_parse_rfc3164_with_and_without_header():
    m = parse(b"<13>Nov  5 01:02:03 edge1 kernel: link is down")
    assert (m.hostname, m.app_name, m.message, m.timestamp) == (
        "edge1",
        "kernel",
        "kernel: link is down",
        "Nov  5 01:02:03",
    )
    m = parse(b"<189>12: *Mar  1 00:00:01: %SYS-5-CONFIG_I: x\n")
    assert (m.hostname, m.message, m.facility, m.level) == ("", "12: *Mar  1 00:00:01: %SYS-5-CONFIG_I: x", 23, 5)


@pytest.mark.parametrize(
    ("line", "event_type", "managed_object"),
    [
        ("%LINK-3-UPDOWN: Interface Gi0/1, changed state to down", "linkDown", "interface:Gi0/1"),
        ("%LINK-5-UPDOWN: Interface Gi0/1, changed state to administratively down", "linkDown", "interface:Gi0/1"),
        ("%LINK-3-UPDOWN: Interface Te1/0/1, changed state to up", "linkUp", "interface:Te1/0/1"),
        (
            "%LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to down",
            "lineProtocolDown",
            "interface:Gi0/1",
        ),
        ("%SYS-5-CONFIG_I: Configured from console by admin on vty0", "config_changed", ""),
        ("%BGP-5-ADJCHANGE: neighbor 10.0.0.2 Down BGP Notification sent", "bgpPeerDown", "bgp-peer:10.0.0.2"),
        ("%BGP-5-ADJCHANGE: neighbor 10.0.0.2 Up", "bgpPeerUp", "bgp-peer:10.0.0.2"),
        (JUNOS_DOWN, "linkDown", "interface:ge-0/0/3"),
        (
            "SNMP_TRAP_LINK_UP: ifIndex 501, ifAdminStatus up(1), ifOperStatus up(1), ifName ge-0/0/3",
            "linkUp",
            "interface:ge-0/0/3",
        ),
        ("UI_COMMIT: User 'root' requested 'commit' operation (comment: none)", "config_changed", ""),
    ],
)
def test_default_rules(line, event_type, managed_object):
    directory = DeviceDirectory(None)
    directory.by_address = {"127.0.0.9": "r9"}
    handler = SyslogHandler(rules=load_rules(), directory=directory)
    event = handler.to_event(parse(f"<189>{line}".encode()), "127.0.0.9", clock.now())
    assert (event.event_type, event.managed_object) == (event_type, managed_object)
    assert event.time.tzinfo == dt.UTC


def test_unmatched_and_malformed_raise_for_the_receiver_to_count():
    handler = SyslogHandler(rules=load_rules(), directory=DeviceDirectory(None))
    with pytest.raises(Rejected) as err:
        handler(b"<13>just chatter", "127.0.0.9", clock.now())
    assert err.value.reason == "no_rule"
    with pytest.raises(Malformed, match="no <PRI> at the start"):
        handler(b"chatter", "127.0.0.9", clock.now())


BAD_RULES = [
    (
        "rules: [{name: r, pattern: '(', event_type: x, severity: major}]",
        "rules entry 1 (r): field 'pattern': not a valid",
    ),
    (
        "rules: [{name: r, pattern: 'a', event_type: x, severity: huge}]",
        "rules entry 1 (r): field 'severity': expected one of",
    ),
    (
        "rules: [{name: r, pattern: '(?P<a>x)', event_type: x, severity: major, object: 'if:{b}'}]",
        "field 'object': {b} is not a named group of the pattern",
    ),
    ("rules: [{name: r, pattern: 'a', severity: major}]", "rules entry 1 (r): field 'event_type': required"),
    (
        "rules:\n- {name: r, pattern: a, event_type: x, severity: major}\n"
        "- {name: r, pattern: b, event_type: y, severity: minor}",
        "rules entry 2 (r): field 'name': used twice",
    ),
    ("rules: [{name: r, pattern: a, event_type: x, severity: major, when: now}]", "field 'when': unknown field"),
    ("rules: {}", "expected a mapping with a 'rules' list"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_RULES)
def test_bad_rules_file_names_file_entry_and_field_and_binds_nothing(tmp_path, text, expected):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    host = random_loopback(42)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    settings = Settings(data_dir=tmp_path, syslog_host=host, syslog_port=port, syslog_rules_file=path)
    with pytest.raises(MappingFileError) as err:
        SyslogReceiverService(settings=settings, sink=CollectingSink(), directory=DeviceDirectory(None))
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind((host, port))


@hyp_settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: ("<13>" + t).encode()))
def test_parser_only_raises_malformed(data):
    try:
        parse(data)
    except Malformed:
        pass


@hyp_settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_rfc5424_any_message_text_round_trips(text):
    clean = text.replace("\x00", "").rstrip("\r\n")
    msg = parse(f"<13>1 2026-01-01T00:00:00Z host app - - - {clean}".encode())
    assert msg.message == clean.removeprefix("\ufeff")
