"""The hand-rolled BER codec and the agent's packet handling under hostile input."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.model import LabDevice, LabInterface
from lab.snmp_agent import SnmpAgent
from snmpwire import ber

oids = st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=30).flatmap(
    lambda tail: st.tuples(st.integers(0, 2), st.integers(0, 39)).map(lambda head: head + tuple(tail))
)


@given(oids)
def test_oid_roundtrip(oid) -> None:
    enc = ber.enc_oid(oid)
    decoded, end = ber.read_oid(enc, 0, len(enc))
    assert decoded == oid and end == len(enc)


@given(st.integers(-(2**63), 2**63 - 1))
def test_integer_roundtrip(v: int) -> None:
    enc = ber.enc_int(v)
    assert ber.read_int(enc, 0, len(enc)) == (v, len(enc))


@given(st.integers(0, 2**64 - 1))
def test_counter64_roundtrip(v: int) -> None:
    enc = ber.enc_uint(v, ber.COUNTER64)
    assert ber.read_int(enc, 0, len(enc), ber.COUNTER64) == (v, len(enc))


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
    from lab.snmp_agent import encode_response, varbind
    from snmpwire import v3 as snmpv3

    engine = AGENT.engine_id
    auth_key, priv_key = AGENT.user.keys(engine)
    pdu = encode_response(5, 0, 0, [varbind(ber.enc_oid((1, 3, 6, 1, 2, 1, 1, 5, 0)), b"\x05\x00")], ber.GET)
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
    from lab.snmp_agent import encode_response, varbind
    from snmpwire import v3 as snmpv3

    engine_id = AGENT.engine_id if engine is None else engine
    auth_key, priv_key = AGENT.user.keys(AGENT.engine_id)
    pdu = encode_response(6, 0, 0, [varbind(ber.enc_oid((1, 3, 6, 1, 2, 1, 1, 5, 0)), b"\x05\x00")], ber.GET)
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
    for name, oid in __import__("lab.usm", fromlist=["USM_STATS"]).USM_STATS.items():
        if ber.enc_oid(oid) in resp:
            return oid
    raise AssertionError("no usmStats OID in report")


def test_v3_discovery_and_time_window_reports() -> None:
    from lab import usm

    resp = AGENT.handle(_v3(engine=b"", auth=False), ("127.0.0.1", 1))
    assert resp is not None and AGENT.engine_id in resp
    assert _report_oid(resp) == usm.USM_STATS["unknown_engine_ids"]
    resp = AGENT.handle(_v3(etime_offset=400), ("127.0.0.1", 1))
    assert _report_oid(resp) == usm.USM_STATS["not_in_time_windows"]
    resp = AGENT.handle(_v3(boots_offset=1), ("127.0.0.1", 1))
    assert _report_oid(resp) == usm.USM_STATS["not_in_time_windows"]
    resp = AGENT.handle(_v3(etime_offset=100), ("127.0.0.1", 1))  # inside the 150 s window: answered
    assert resp is not None and ber.enc_oid((1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0)) not in resp
    resp = AGENT.handle(_v3(auth=False), ("127.0.0.1", 1))  # known user, noAuthNoPriv
    assert _report_oid(resp) == usm.USM_STATS["unsupported_sec_levels"]
