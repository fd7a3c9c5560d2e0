"""The lab agent's packet handling under hostile input: it answers, ignores, or raises
BerError/ValueError (counted as malformed), and still answers afterwards; SNMPv3 reports."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.model import LabDevice, LabInterface
from lab.snmp_agent import SnmpAgent
from snmpwire import ber
from snmpwire import v3 as snmpv3
from snmpwire.pdu import NULL_VALUE, encode_pdu, varbind


def _agent() -> SnmpAgent:
    d = LabDevice(
        name="fz",
        address="127.0.0.1",
        role="core",
        vendor="cisco",
        platform="ios",
        device_type="cisco_ios",
        site="s",
        boot_time=time.time() - 10,
    )
    d.interfaces = [LabInterface(if_index=1, name="GigabitEthernet0/1", neighbor=None)]
    return SnmpAgent(d, now=time.time)


AGENT = _agent()
VALID = ber.enc_seq(
    ber.enc_int(1),
    ber.enc_octets(b"public"),
    ber.tlv(
        ber.GETBULK,
        ber.enc_int(9)
        + ber.enc_int(0)
        + ber.enc_int(30)
        + ber.enc_seq(ber.enc_seq(ber.enc_oid((1, 3, 6, 1, 2, 1, 2, 2)), b"\x05\x00")),
    ),
)


def _handle_strictly(data: bytes) -> None:
    """The agent either answers, ignores, or raises BerError/ValueError (counted as malformed)."""
    try:
        AGENT.handle(data, ("127.0.0.1", 1))
    except (ber.BerError, ValueError):
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_unexpected(data: bytes) -> None:
    _handle_strictly(data)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_mutated_valid_packets_never_raise_unexpected(pos: int, byte: int) -> None:
    _handle_strictly(VALID[:pos] + bytes((byte,)) + VALID[pos + 1 :])
    _handle_strictly(VALID[:pos])


def test_valid_packet_still_answered_after_fuzzing() -> None:
    resp = AGENT.handle(VALID, ("127.0.0.1", 1))
    assert resp is not None and b"GigabitEthernet0/1" in resp


def _v3_request() -> bytes:
    engine = AGENT.engine_id
    auth_key, priv_key = AGENT.user.keys(engine)
    pdu = encode_pdu(ber.GET, 5, 0, 0, [varbind(ber.enc_oid((1, 3, 6, 1, 2, 1, 1, 5, 0)), NULL_VALUE)])
    scoped = ber.enc_seq(ber.enc_octets(engine), ber.enc_octets(b""), pdu)
    return snmpv3.encode(
        msg_id=77,
        user=b"labv3",
        scoped=scoped,
        engine_id=engine,
        boots=AGENT.device.engine_boots,
        etime=AGENT._engine_time(),
        auth=("SHA-256", auth_key),
        priv_key=priv_key,
        reportable=True,
    )


V3_VALID = _v3_request()


def test_v3_authpriv_request_answered() -> None:
    resp = AGENT.handle(V3_VALID, ("127.0.0.1", 1))
    assert resp is not None
    before = AGENT.stats.usm["wrong_digests"]
    tampered = bytearray(V3_VALID)
    tampered[-1] ^= 0xFF  # flips a byte of the encrypted PDU: the digest no longer matches
    report = AGENT.handle(bytes(tampered), ("127.0.0.1", 1))
    assert AGENT.stats.usm["wrong_digests"] == before + 1
    assert report is not None and ber.enc_oid((1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0)) in report


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(V3_VALID) - 1), st.integers(0, 255))
def test_mutated_v3_packets_never_raise_unexpected(pos: int, byte: int) -> None:
    _handle_strictly(V3_VALID[:pos] + bytes((byte,)) + V3_VALID[pos + 1 :])
    _handle_strictly(V3_VALID[:pos])


def _v3(etime_offset: int = 0, boots_offset: int = 0, engine: bytes | None = None, auth: bool = True) -> bytes:
    engine_id = AGENT.engine_id if engine is None else engine
    auth_key, priv_key = AGENT.user.keys(AGENT.engine_id)
    pdu = encode_pdu(ber.GET, 6, 0, 0, [varbind(ber.enc_oid((1, 3, 6, 1, 2, 1, 1, 5, 0)), NULL_VALUE)])
    scoped = ber.enc_seq(ber.enc_octets(engine_id), ber.enc_octets(b""), pdu)
    return snmpv3.encode(
        msg_id=78,
        user=b"labv3" if engine_id else b"",
        scoped=scoped,
        engine_id=engine_id,
        boots=AGENT.device.engine_boots + boots_offset,
        etime=AGENT._engine_time() + etime_offset,
        auth=("SHA-256", auth_key) if auth else None,
        priv_key=priv_key if auth else None,
        reportable=True,
    )


def _report_oid(resp: bytes) -> tuple[int, ...]:
    # the Report's single varbind is the usmStats counter; find its OID in the plain scoped PDU
    for oid in snmpv3.USM_STATS.values():
        if ber.enc_oid(oid) in resp:
            return oid
    raise AssertionError("no usmStats OID in report")


def test_v3_discovery_and_time_window_reports() -> None:
    resp = AGENT.handle(_v3(engine=b"", auth=False), ("127.0.0.1", 1))
    assert resp is not None and AGENT.engine_id in resp
    assert _report_oid(resp) == snmpv3.USM_STATS["unknown_engine_ids"]
    resp = AGENT.handle(_v3(etime_offset=400), ("127.0.0.1", 1))
    assert _report_oid(resp) == snmpv3.USM_STATS["not_in_time_windows"]
    resp = AGENT.handle(_v3(boots_offset=1), ("127.0.0.1", 1))
    assert _report_oid(resp) == snmpv3.USM_STATS["not_in_time_windows"]
    resp = AGENT.handle(_v3(etime_offset=100), ("127.0.0.1", 1))  # inside the 150 s window: answered
    assert resp is not None and ber.enc_oid((1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0)) not in resp
    resp = AGENT.handle(_v3(auth=False), ("127.0.0.1", 1))  # known user, noAuthNoPriv
    assert _report_oid(resp) == snmpv3.USM_STATS["unsupported_sec_levels"]
