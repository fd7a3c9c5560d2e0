"""PDUs and community messages against pysnmp/pyasn1's own encoder and decoder, hostile input,
and the one strict varbind loop under the poller, the trap receiver and the lab's agent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

from devices.snmp import _CommunityProtocol
from lab.snmp_agent import parse_pdu
from snmpwire import ber, pdu, v3

P = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
oids = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20).map(lambda tail: (1, 3, *tail))


def pysnmp_response(request_id: int, varbinds: list) -> bytes:
    response = P.GetResponsePDU()
    P.apiPDU.set_defaults(response)
    P.apiPDU.set_request_id(response, request_id)
    P.apiPDU.set_varbinds(response, varbinds)
    msg = P.Message()
    P.apiMessage.set_defaults(msg)
    P.apiMessage.set_community(msg, b"pub")
    P.apiMessage.set_pdu(msg, response)
    return encoder.encode(msg)


@given(request_id=st.integers(1, 2**31 - 1), oid_list=st.lists(oids, min_size=1, max_size=10), reps=st.integers(0, 100))
def test_requests_decode_with_pyasn1(request_id, oid_list, reps):
    packet = pdu.encode_community(1, b"secret", pdu.encode_request(ber.GETBULK, request_id, oid_list, 0, reps))
    msg, rest = decoder.decode(packet, asn1Spec=P.Message())
    assert rest == b""
    bulk = P.apiMessage.get_pdu(msg)
    assert int(P.apiBulkPDU.get_request_id(bulk)) == request_id
    assert int(P.apiBulkPDU.get_max_repetitions(bulk)) == reps
    assert [tuple(oid) for oid, _ in P.apiPDU.get_varbinds(bulk)] == oid_list


@given(
    request_id=st.integers(1, 2**31 - 1),
    integer=st.integers(-(2**31), 2**31 - 1),
    c32=st.integers(0, 2**32 - 1),
    c64=st.integers(0, 2**64 - 1),
    text=st.binary(max_size=300),
    oid=oids,
)
def test_responses_encoded_by_pysnmp_decode_to_python(request_id, integer, c32, c64, text, oid):
    varbinds = [
        ((1, 3, 6, 1, 1), P.Integer(integer)),
        ((1, 3, 6, 1, 2), P.Counter32(c32)),
        ((1, 3, 6, 1, 3), P.Counter64(c64)),
        ((1, 3, 6, 1, 4), P.OctetString(text)),
        ((1, 3, 6, 1, 5), P.ObjectIdentifier(oid)),
        ((1, 3, 6, 1, 6), P.IpAddress("10.1.2.3")),
        ((1, 3, 6, 1, 7), P.TimeTicks(c32)),
        ((1, 3, 6, 1, 8), P.Gauge32(c32)),
        ((1, 3, 6, 1, 9), P.NoSuchObject("")),
        ((1, 3, 6, 1, 10), P.EndOfMibView("")),
    ]
    version, community, rid, status, index, got = pdu.decode_response(pysnmp_response(request_id, varbinds))
    assert (version, community, rid, status, index) == (1, b"pub", request_id, 0, 0)
    assert [v for _, v in got] == [
        integer,
        c32,
        c64,
        text,
        oid,
        bytes([10, 1, 2, 3]),
        c32,
        c32,
        None,
        pdu.END_OF_MIB_VIEW_VALUE,
    ]


VALID = pysnmp_response(7, [((1, 3, 6, 1, 2, 1, 1, 5, 0), P.OctetString(b"x" * 40))])


@settings(max_examples=500)
@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_bererror(data):
    try:
        pdu.decode_response(data)
    except ber.BerError:
        pass


@pytest.mark.parametrize("cut", range(1, len(VALID)))
def test_every_truncation_is_a_bererror(cut):
    with pytest.raises(ber.BerError):
        pdu.decode_response(VALID[:cut])


@pytest.mark.parametrize(
    "packet, message",
    [
        (b"\x30\x84\xff\xff\xff\xff" + VALID[2:], "length beyond end"),  # huge length
        (b"\x30\x80" + VALID[2:], "indefinite length"),
        (b"\x30\x85\x00\x00\x00\x00\x10", "bad length"),  # 5 length octets
        (VALID.replace(b"\xa2", b"\xa0", 1), "expected tag 0xa2"),  # a request, not a response
    ],
)
def test_hostile_shapes_are_refused(packet, message):
    with pytest.raises(ber.BerError, match=message):
        pdu.decode_response(packet)


def test_deep_nesting_and_long_oids_are_refused():
    nested = b"\x30\x02" * 1 + b"\x30\x00"
    with pytest.raises(ber.BerError):
        pdu.decode_response(nested)
    long_oid = bytes([0x2B]) + b"\x01" * 200
    with pytest.raises(ber.BerError, match="OID"):
        ber.decode_oid(long_oid, 0, len(long_oid))


# ---- one strict varbind loop: the poller, the trap receiver and the lab's agent refuse alike ----

SYS_NAME = ber.enc_oid((1, 3, 6, 1, 2, 1, 1, 5, 0))
UPTIME = pdu.varbind(ber.enc_oid(pdu.SYS_UPTIME_0), ber.enc_uint(5, ber.TIMETICKS))
TRAP_OID = pdu.varbind(ber.enc_oid(pdu.SNMP_TRAP_OID_0), ber.enc_oid((1, 3, 6, 1, 6, 3, 1, 1, 5, 3)))
REQUEST_ID = ber.enc_int(7)


def _pdu(tag: int, varbinds: list[bytes], tail: bytes = b"", request_id: bytes = REQUEST_ID) -> bytes:
    return ber.tlv(tag, request_id + ber.enc_int(0) + ber.enc_int(0) + ber.enc_seq(*varbinds) + tail)


# each path decodes one PDU the way its caller does and says how many varbinds it read
def _poller(varbinds: list[bytes], tail: bytes = b"", request_id: bytes = REQUEST_ID) -> int:
    packet = pdu.encode_community(1, b"pub", _pdu(ber.RESPONSE, varbinds, tail, request_id))
    _request_id, _community, (_status, _index, got) = _CommunityProtocol().decode(packet)
    return len(got)


def _poller_v3(varbinds: list[bytes], tail: bytes = b"", request_id: bytes = REQUEST_ID) -> int:
    scoped = ber.enc_seq(ber.enc_octets(b"engine"), ber.enc_octets(b""), _pdu(ber.REPORT, varbinds, tail, request_id))
    _ctx, _name, pdu_at, end = v3.scoped_pdu(scoped, 0, len(scoped))
    return len(pdu.decode_answer(scoped, pdu_at, end)[4])  # what devices.snmp reads a decrypted ScopedPDU with


def _trap(varbinds: list[bytes], tail: bytes = b"", request_id: bytes = REQUEST_ID) -> int:
    packet = pdu.encode_community(1, b"public", _pdu(ber.TRAP_V2, [UPTIME, TRAP_OID, *varbinds[2:]], tail, request_id))
    return len(pdu.decode_notification(packet).varbinds) + 2  # sysUpTime.0 and snmpTrapOID.0 are taken out


def _trap_v1(varbinds: list[bytes], tail: bytes = b"", request_id: bytes = REQUEST_ID) -> int:
    head = ber.enc_oid((1, 3, 6, 1, 4, 1, 9)) + ber.tlv(ber.IP_ADDRESS, bytes(4)) + ber.enc_int(6) + ber.enc_int(1)
    body = head + ber.enc_uint(5, ber.TIMETICKS) + ber.enc_seq(*varbinds) + tail
    note = pdu.decode_notification(pdu.encode_community(0, b"public", ber.tlv(ber.TRAP_V1, body)))
    return len(note.varbinds) - 1  # snmpTrapEnterprise.0 is added (RFC 3584)


def _agent(varbinds: list[bytes], tail: bytes = b"", request_id: bytes = REQUEST_ID) -> int:
    request = _pdu(ber.GET, varbinds, tail, request_id)
    return len(parse_pdu(request, 0, len(request))[4])


PATHS = {"poller": _poller, "poller v3": _poller_v3, "trap v2c": _trap, "trap v1": _trap_v1, "lab agent": _agent}
FILLER = pdu.varbind(SYS_NAME, pdu.NULL_VALUE)


def _with(bad: bytes) -> list[bytes]:
    # two harmless varbinds first: the trap path puts sysUpTime.0 and snmpTrapOID.0 there
    return [FILLER, FILLER, bad]


NON_MINIMAL_OID = ber.tlv(ber.OID, b"\x2b\x06\x01\x80\x04")  # 0x80 0x04 is 4 written in two octets
HUGE_SUBID_OID = ber.tlv(ber.OID, b"\x2b\x90\x80\x80\x80\x00")  # 2**32
BIGGEST = pdu.varbind(ber.enc_oid((1, 3, 2**32 - 1)), ber.tlv(ber.COUNTER64, b"\x00" + b"\xff" * 8))

STRICT_CASES = {
    "non-minimal OID sub-identifier": (_with(pdu.varbind(NON_MINIMAL_OID, pdu.NULL_VALUE)), b""),
    "sub-identifier over 32 bits": (_with(pdu.varbind(HUGE_SUBID_OID, pdu.NULL_VALUE)), b""),
    "over-long integer": (_with(pdu.varbind(SYS_NAME, ber.tlv(ber.INTEGER, b"\x01" * 10))), b""),
    "over-long counter": (_with(pdu.varbind(SYS_NAME, ber.tlv(ber.COUNTER64, b"\x01" * 10))), b""),
    "empty counter": (_with(pdu.varbind(SYS_NAME, ber.tlv(ber.COUNTER32, b""))), b""),
    "too many varbinds": ([FILLER] * (pdu.MAX_VARBINDS + 1), b""),
    "trailing bytes after the varbind list": ([FILLER, FILLER], b"\x05\x00"),
    "trailing bytes in a varbind": (_with(ber.tlv(ber.SEQUENCE, SYS_NAME + b"\x05\x00\x05\x00")), b""),
    "NULL with content": (_with(pdu.varbind(SYS_NAME, b"\x05\x01\x00")), b""),
    "5-octet IpAddress": (_with(pdu.varbind(SYS_NAME, ber.tlv(ber.IP_ADDRESS, bytes(5)))), b""),
    "constructed value": (_with(pdu.varbind(SYS_NAME, ber.enc_seq(b"\x05\x00"))), b""),
}


@pytest.mark.parametrize("path", PATHS)
def test_every_path_accepts_the_well_formed_baseline(path):
    assert PATHS[path]([FILLER] * pdu.MAX_VARBINDS) == pdu.MAX_VARBINDS  # at the bound
    assert PATHS[path]([FILLER, FILLER, BIGGEST]) == 3  # the largest arc and counter


@pytest.mark.parametrize("case", STRICT_CASES)
@pytest.mark.parametrize("path", PATHS)
def test_every_path_refuses_what_the_strict_decoder_refuses(path, case):
    varbinds, tail = STRICT_CASES[case]
    with pytest.raises(ber.BerError):
        PATHS[path](varbinds, tail)


@pytest.mark.parametrize("path", ["poller", "poller v3", "trap v2c", "lab agent"])
def test_every_path_refuses_an_over_long_request_id(path):
    with pytest.raises(ber.BerError, match="bad integer length"):
        PATHS[path]([FILLER, FILLER], b"", ber.tlv(ber.INTEGER, b"\x01" * 10))


def test_trailing_bytes_after_the_message_or_the_pdu_are_refused():
    good = pdu.encode_community(1, b"pub", _pdu(ber.RESPONSE, [FILLER]))
    pdu.decode_response(good)
    with pytest.raises(ber.BerError, match="trailing bytes after message"):
        pdu.decode_response(good + b"\x00")
    inner = _pdu(ber.RESPONSE, [FILLER])
    padded = ber.tlv(ber.SEQUENCE, ber.enc_int(1) + ber.enc_octets(b"pub") + inner + b"\x05\x00")
    with pytest.raises(ber.BerError, match="trailing bytes after the PDU"):
        pdu.decode_response(padded)


def test_request_varbinds_from_the_cache_are_the_encoded_oids_and_bad_oids_still_refused():
    from snmpwire import pdu as pdu_module
    from snmpwire.ber import enc_oid

    oids = [(1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 7), (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 2**32 - 1)]
    expected = pdu_module.encode_pdu(0xA5, 9, 0, 25, [pdu_module.varbind(enc_oid(o), b"\x05\x00") for o in oids])
    assert pdu_module.encode_request(0xA5, 9, oids, 0, 25) == expected
    assert pdu_module.encode_request(0xA5, 9, [list(o) for o in oids], 0, 25) == expected  # served from the cache
    for _ in range(2):
        with pytest.raises(ValueError, match="not an encodable OID"):
            pdu_module.encode_request(0xA0, 1, [(1, 3, 6, 2**32)])
    pdu_module._NULL_VARBINDS.clear()
    pdu_module.NULL_VARBINDS_MAX, saved = 1, pdu_module.NULL_VARBINDS_MAX
    try:
        assert pdu_module.encode_request(0xA5, 9, oids, 0, 25) == expected  # bounded: emptied when full
        assert len(pdu_module._NULL_VARBINDS) == 1
    finally:
        pdu_module.NULL_VARBINDS_MAX = saved
