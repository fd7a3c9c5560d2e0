"""The notification decoder against net-snmp's snmptrap / snmpinform datagrams (v1, v2c,
v3), pysnmp's encoder, the malformed corpus and random bytes: it returns a Notification
or raises only BerError (malformed) or Refused (with the receiver's drop reason)."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import encoder
from pysnmp.proto import api

from collectors.traps.usm import UsmUsers
from snmpwire import ber, pdu
from snmpwire.usm import UsmUser
from tests.collectors.test_traps import AUTH_PASS, ENGINE, PRIV_PASS, net_snmp, v3_args

from .packets import VALID, malformed_corpus, v2c_trap, v3_trap

needs_net_snmp = pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp snmptrap not installed")

ANY_ENGINE = bytes.fromhex("80000000aabbccdd01")
USERS = UsmUsers(
    [
        UsmUser.from_passwords("noc-v3", "SHA-256", AUTH_PASS, "AES", PRIV_PASS, bytes.fromhex(ENGINE)),
        UsmUser.from_passwords("any-engine", "SHA", AUTH_PASS),
    ]
)
X = "1.3.6.1.4.1.99999.1"


async def _capture(tmp_path: Path, tool: str, *args: str, answer: bool = False) -> tuple[bytes, int]:
    """The datagram ``tool`` sends to a socket of ours (answered with the Inform response when
    ``answer``), and the tool's exit code."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        target = f"127.0.0.1:{sock.getsockname()[1]}"
        run = asyncio.ensure_future(net_snmp(tmp_path, tool, *[target if a == "TARGET" else a for a in args]))
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 10)
        if answer:
            note = pdu.decode_notification(data)
            assert note.response is not None
            sock.sendto(note.response, addr)
        rc, out = await run
    assert rc == 0, out
    return data, rc


@needs_net_snmp
async def test_v2c_trap_from_snmptrap_with_every_value_type(tmp_path):
    values = [
        ("1", "i", "-5", -5),
        ("2", "u", "4294967295", 4294967295),
        ("3", "c", "12", 12),
        ("4", "C", "18446744073709551615", 2**64 - 1),
        ("5", "s", "fan tray <b>hot</b>", "fan tray <b>hot</b>"),
        ("6", "x", "00ff10", "0x00ff10"),
        ("7", "o", "1.3.6.1.4.1.4294967295", "1.3.6.1.4.1.4294967295"),
        ("8", "a", "10.1.2.3", "10.1.2.3"),
        ("9", "t", "123456", 123456),
    ]
    args = [a for n, kind, text, _ in values for a in (f"{X}.{n}", kind, text)]
    args = ["-v2c", "-c", "public", "TARGET", "", "1.3.6.1.4.1.99999.0.1", *args]
    data, _rc = await _capture(tmp_path, "snmptrap", *args)
    note = pdu.decode_notification(data, communities=frozenset({b"public"}))
    assert (note.version, note.trap_oid, note.inform) == ("v2c", "1.3.6.1.4.1.99999.0.1", False)
    assert note.varbinds == [(f"{X}.{n}", expected) for n, _kind, _text, expected in values]
    assert isinstance(note.uptime, int)
    with pytest.raises(pdu.Refused) as refused:
        pdu.decode_notification(data, communities=frozenset({b"other"}))
    assert refused.value.reason == "bad_community"


@needs_net_snmp
async def test_v1_trap_from_snmptrap_is_translated_per_rfc3584(tmp_path):
    args = ["-v1", "-c", "public", "TARGET", "1.3.6.1.4.1.9", "127.9.9.9", "6", "17", "", f"{X}.1", "i", "3"]
    data, _rc = await _capture(tmp_path, "snmptrap", *args)
    note = pdu.decode_notification(data)
    assert (note.version, note.trap_oid, note.agent_address) == ("v1", "1.3.6.1.4.1.9.0.17", "127.9.9.9")
    assert note.varbinds == [(f"{X}.1", 3), (pdu.SNMP_TRAP_ENTERPRISE_0, "1.3.6.1.4.1.9")]


@needs_net_snmp
async def test_v2c_inform_response_is_accepted_by_snmpinform(tmp_path):
    args = ["-v2c", "-c", "public", "-t", "2", "-r", "0", "TARGET", "", "1.3.6.1.6.3.1.1.5.1"]
    data, rc = await _capture(tmp_path, "snmpinform", *args, answer=True)
    assert rc == 0  # snmpinform exits non-zero unless our Response matched its request
    assert pdu.decode_notification(data).inform


@needs_net_snmp
async def test_v3_auth_priv_and_auth_no_priv_traps_from_snmptrap(tmp_path):
    args = [*v3_args(), "TARGET", "", "1.3.6.1.6.3.1.1.5.3", f"{X}.2", "i", "2"]
    data, _rc = await _capture(tmp_path, "snmptrap", *args)
    note = pdu.decode_notification(data, users=USERS, now_s=1000.0)
    assert (note.version, note.user, note.engine_id, note.trap_oid) == ("v3", "noc-v3", ENGINE, "1.3.6.1.6.3.1.1.5.3")
    assert note.varbinds == [(f"{X}.2", 2)]
    with pytest.raises(pdu.Refused) as refused:
        pdu.decode_notification(data, users=UsmUsers(), now_s=1000.0)
    assert refused.value.reason == "unknown_user"
    engine = "80000000aabbcc0001"
    args = ["-v3", "-e", f"0x{engine}", "-u", "any-engine", "-l", "authNoPriv", "-a", "SHA", "-A", AUTH_PASS]
    data, _rc = await _capture(tmp_path, "snmptrap", *args, "TARGET", "", "1.3.6.1.6.3.1.1.5.2")
    note = pdu.decode_notification(data, users=USERS, now_s=1000.0)
    assert (note.user, note.engine_id, note.trap_oid) == ("any-engine", engine, "1.3.6.1.6.3.1.1.5.2")


def test_v2c_trap_encoded_by_pysnmp_decodes():
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    trap = p.TrapPDU()
    p.apiTrapPDU.set_defaults(trap)
    p.apiTrapPDU.set_varbinds(
        trap,
        [
            ((1, 3, 6, 1, 2, 1, 1, 3, 0), p.TimeTicks(42)),
            ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), p.ObjectIdentifier((1, 3, 6, 1, 6, 3, 1, 1, 5, 4))),
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 9), p.Integer(9)),
            ((1, 3, 6, 1, 6, 3, 18, 1, 3, 0), p.IpAddress("192.0.2.7")),
            ((1, 3, 6, 1, 4, 1, 99999, 1), p.OctetString(b"\x00\x01binary")),
        ],
    )
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, b"public")
    p.apiMessage.set_pdu(msg, trap)
    note = pdu.decode_notification(encoder.encode(msg))
    assert (note.trap_oid, note.uptime, note.agent_address) == ("1.3.6.1.6.3.1.1.5.4", 42, "192.0.2.7")
    assert note.varbinds == [
        ("1.3.6.1.2.1.2.2.1.1.9", 9),
        ("1.3.6.1.6.3.18.1.3.0", "192.0.2.7"),
        ("1.3.6.1.4.1.99999.1", "0x0001" + b"binary".hex()),  # binary never reaches a log line raw
    ]


def _refusal(data: bytes) -> str:
    with pytest.raises(pdu.Refused) as refused:
        pdu.decode_notification(data, users=USERS)
    return refused.value.reason


def test_well_formed_but_refused_notifications_name_the_reason():
    get = ber.tlv(ber.GET, ber.enc_int(1) + ber.enc_int(0) + ber.enc_int(0) + ber.enc_seq())
    assert _refusal(pdu.encode_community(1, b"public", get)) == "unsupported_pdu"
    assert _refusal(VALID.replace(b"\x02\x01\x01", b"\x02\x01\x02", 1)) == "bad_version"
    assert _refusal(v3_trap(b"nobody", ANY_ENGINE, 0x01, bytes(12))) == "unknown_user"
    assert _refusal(v3_trap(b"any-engine", ANY_ENGINE, 0x00, b"")) == "unsupported_sec_level"
    assert _refusal(v3_trap(b"any-engine", ANY_ENGINE, 0x01, b"")) == "auth_failed"  # empty digest
    assert _refusal(v3_trap(b"any-engine", ANY_ENGINE, 0x01, bytes(12))) == "auth_failed"  # wrong digest
    other_model = v3_trap(b"any-engine", ANY_ENGINE, 0x01, bytes(12)).replace(
        b"\x04\x01\x01\x02\x01\x03", b"\x04\x01\x01\x02\x01\x02", 1
    )
    assert _refusal(other_model) == "unsupported_security_model"


def test_every_packet_of_the_malformed_corpus_is_refused():
    malformed = refused = 0
    for packet in malformed_corpus(random.Random(4242), 10_000):
        try:
            pdu.decode_notification(packet, users=USERS)
        except ber.BerError:
            malformed += 1
        except pdu.Refused:
            refused += 1
    assert malformed + refused == 10_000
    assert malformed >= 9_000


@settings(max_examples=600, deadline=None)
@given(data=st.binary(max_size=400), cut=st.integers(min_value=0, max_value=200))
def test_decoder_only_raises_its_own_errors(data, cut):
    v3 = v3_trap(b"any-engine", ANY_ENGINE, 0x01, b"\x00" * 12)
    for packet in (data, VALID[:cut] + data, v3[:cut] + data, v3[: len(v3) - cut % 20]):
        try:
            pdu.decode_notification(packet, users=USERS)
        except (ber.BerError, pdu.Refused):
            pass


def test_a_valid_trap_still_decodes():
    note = pdu.decode_notification(v2c_trap("1.3.6.1.6.3.1.1.5.3", "marker"))
    assert (note.trap_oid, note.uptime) == ("1.3.6.1.6.3.1.1.5.3", 5)
    assert note.varbinds == [("1.3.6.1.4.1.99999.9", "marker")]
