"""The community codec against pysnmp/pyasn1's own encoder and decoder, and hostile input."""

from __future__ import annotations

import shutil
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

from collectors import snmp_ber
from devices.snmp import SnmpClient, SnmpTarget, _CommunityProtocol
from tests.collectors.snmpd import COMMUNITY, start_snmpd

P = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
oids = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20).map(lambda tail: (1, 3, *tail))


def pysnmp_response(request_id: int, varbinds: list) -> bytes:
    pdu = P.GetResponsePDU()
    P.apiPDU.set_defaults(pdu)
    P.apiPDU.set_request_id(pdu, request_id)
    P.apiPDU.set_varbinds(pdu, varbinds)
    msg = P.Message()
    P.apiMessage.set_defaults(msg)
    P.apiMessage.set_community(msg, b"pub")
    P.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


@given(request_id=st.integers(1, 2**31 - 1), oid_list=st.lists(oids, min_size=1, max_size=10), reps=st.integers(0, 100))
def test_requests_decode_with_pyasn1(request_id, oid_list, reps):
    packet = snmp_ber.encode_request(1, b"secret", snmp_ber.GETBULK, request_id, oid_list, 0, reps)
    msg, rest = decoder.decode(packet, asn1Spec=P.Message())
    assert rest == b""
    pdu = P.apiMessage.get_pdu(msg)
    assert int(P.apiBulkPDU.get_request_id(pdu)) == request_id
    assert int(P.apiBulkPDU.get_max_repetitions(pdu)) == reps
    assert [tuple(oid) for oid, _ in P.apiPDU.get_varbinds(pdu)] == oid_list


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
    version, community, rid, status, index, got = snmp_ber.decode_response(pysnmp_response(request_id, varbinds))
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
        snmp_ber.END_OF_MIB_VIEW_VALUE,
    ]


VALID = pysnmp_response(7, [((1, 3, 6, 1, 2, 1, 1, 5, 0), P.OctetString(b"x" * 40))])


@settings(max_examples=500)
@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_bererror(data):
    try:
        snmp_ber.decode_response(data)
    except snmp_ber.BerError:
        pass


@pytest.mark.parametrize("cut", range(1, len(VALID)))
def test_every_truncation_is_a_bererror(cut):
    with pytest.raises(snmp_ber.BerError):
        snmp_ber.decode_response(VALID[:cut])


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
    with pytest.raises(snmp_ber.BerError, match=message):
        snmp_ber.decode_response(packet)


def test_deep_nesting_and_long_oids_are_refused():
    nested = b"\x30\x02" * 1 + b"\x30\x00"
    with pytest.raises(snmp_ber.BerError):
        snmp_ber.decode_response(nested)
    long_oid = bytes([0x2B]) + b"\x01" * 200
    with pytest.raises(snmp_ber.BerError, match="OID"):
        snmp_ber.decode_oid(long_oid, 0, len(long_oid))


@pytest.mark.skipif(shutil.which("/usr/sbin/snmpd") is None, reason="net-snmp snmpd not installed")
async def test_garbage_and_spoofed_datagrams_are_dropped_and_counted_and_polling_goes_on():
    d = start_snmpd()
    client = SnmpClient()
    try:
        t = SnmpTarget(d.host, d.port, "v2c", community=COMMUNITY)
        assert (await client.get(t, [(1, 3, 6, 1, 2, 1, 1, 5, 0)]))[(1, 3, 6, 1, 2, 1, 1, 5, 0)] == b"fl-snmpd"
        udp, _proto = client._sockets[_CommunityProtocol]
        port = udp.get_extra_info("socket").getsockname()[1]
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # garbage, a truncated packet, a response nobody asked for (unknown request id), a huge length
            for junk in (b"\x00" * 10, VALID[:-3], VALID, b"\x30\x84\xff\xff\xff\xff"):
                attacker.sendto(junk, ("127.0.0.1", port))
        finally:
            attacker.close()
        # loopback delivers in order: by the time this walk's answers are read, the junk was too
        walked = await client.walk(t, [(1, 3, 6, 1, 2, 1, 1)])
        assert walked[(1, 3, 6, 1, 2, 1, 1, 5, 0)] == b"fl-snmpd"
        assert client.dropped_datagrams == 4
    finally:
        client.close()
        d.stop()
