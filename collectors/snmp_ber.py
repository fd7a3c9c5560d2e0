"""A small, strict BER codec for SNMPv1/v2c community messages (the poller's hot path).

Profiling a full walk through pysnmp showed pyasn1 decoding at about 70 % of the CPU
(``bench/snmp_walk.py``): every varbind becomes several pyasn1 objects (clone,
setComponentByPosition) before the caller sees a Python value. Community messages
carry no cryptography, so the poller encodes its GET/GETNEXT/GETBULK and decodes the
response here, straight into ``int`` / ``bytes`` / OID tuples. SNMPv3 (USM discovery,
authentication, privacy) stays on the pysnmp engine.

Strict on hostile input: single-byte tags, definite lengths of at most 4 octets, OIDs of
at most 128 arcs, integers of at most 9 octets (Counter64); anything else raises
``BerError`` and the datagram is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

INTEGER, OCTET_STRING, NULL, OID, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
GET, GETNEXT, RESPONSE, GETBULK = 0xA0, 0xA1, 0xA2, 0xA5
MAX_OID_ARCS = 128
UNSIGNED = frozenset((COUNTER32, GAUGE32, TIMETICKS, COUNTER64))
OCTETS = frozenset((OCTET_STRING, IP_ADDRESS, OPAQUE))

ERROR_STATUS = {
    1: "tooBig",
    2: "noSuchName",
    3: "badValue",
    4: "readOnly",
    5: "genErr",
    6: "noAccess",
    7: "wrongType",
    8: "wrongLength",
    9: "wrongEncoding",
    10: "wrongValue",
    11: "noCreation",
    12: "inconsistentValue",
    13: "resourceUnavailable",
    14: "commitFailed",
    15: "undoFailed",
    16: "authorizationError",
    17: "notWritable",
    18: "inconsistentName",
}


class BerError(ValueError):
    """Not well-formed BER, or not the SNMP response shape."""


class EndOfMibView:
    __slots__ = ()

    def __repr__(self) -> str:
        return "endOfMibView"


END_OF_MIB_VIEW_VALUE = EndOfMibView()


# ------------------------------------------------------------------ encoding
def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _int(value: int) -> bytes:
    return _tlv(INTEGER, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def encode_oid(oid: Sequence[int]) -> bytes:
    if len(oid) < 2 or oid[0] > 2 or oid[1] >= 40 or len(oid) > MAX_OID_ARCS:
        raise ValueError(f"not an encodable OID: {oid!r}")
    out = bytearray((oid[0] * 40 + oid[1],))
    for arc in oid[2:]:
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = []
        while arc:
            chunk.append(arc & 0x7F)
            arc >>= 7
        chunk.reverse()
        out.extend([c | 0x80 for c in chunk[:-1]] + [chunk[-1]])
    return _tlv(OID, bytes(out))


_NULL = b"\x05\x00"


def encode_request(
    version: int, community: bytes, pdu_tag: int, request_id: int, oids: Sequence[Sequence[int]], a: int = 0, b: int = 0
) -> bytes:
    """A GET / GETNEXT (a = b = 0) or GETBULK (a = non-repeaters, b = max-repetitions) message."""
    varbinds = b"".join(_tlv(SEQUENCE, encode_oid(o) + _NULL) for o in oids)
    pdu = _tlv(pdu_tag, _int(request_id) + _int(a) + _int(b) + _tlv(SEQUENCE, varbinds))
    return _tlv(SEQUENCE, _int(version) + _tlv(OCTET_STRING, community) + pdu)


# ------------------------------------------------------------------ decoding
def _tlv_at(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    if pos + 2 > end:
        raise BerError("truncated TLV header")
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise BerError("bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise BerError("length beyond end of packet")
    return tag, pos, pos + length


def _expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    t, s, e = _tlv_at(buf, pos, end)
    if t != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{t:02x}")
    return s, e


def _read_int(buf: bytes, s: int, e: int, signed: bool = True) -> int:
    if e - s > 9 or e == s:
        raise BerError("bad integer length")
    return int.from_bytes(buf[s:e], "big", signed=signed)


def decode_oid(buf: bytes, s: int, e: int) -> tuple[int, ...]:
    if e == s or e - s > MAX_OID_ARCS * 5:
        raise BerError("bad OID length")
    first = buf[s]
    if first & 0x80:
        raise BerError("unsupported first OID arc")
    arcs = [first // 40, first % 40] if first < 80 else [2, first - 80]
    value = 0
    for byte in buf[s + 1 : e]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if buf[e - 1] & 0x80:
        raise BerError("truncated OID arc")
    if len(arcs) > MAX_OID_ARCS:
        raise BerError("OID too long")
    return tuple(arcs)


Value = int | bytes | tuple[int, ...] | EndOfMibView | None


def decode_response(
    packet: bytes,
) -> tuple[int, bytes, int, int, int, list[tuple[tuple[int, ...], Value]]]:
    """(version, community, request_id, error_status, error_index, varbinds) of a Response-PDU."""
    end = len(packet)
    s, e = _expect(packet, 0, end, SEQUENCE)
    vs, ve = _expect(packet, s, e, INTEGER)
    version = _read_int(packet, vs, ve)
    cs, ce = _expect(packet, ve, e, OCTET_STRING)
    community = packet[cs:ce]
    ps, pe = _expect(packet, ce, e, RESPONSE)
    rs, re_ = _expect(packet, ps, pe, INTEGER)
    request_id = _read_int(packet, rs, re_)
    ss, se = _expect(packet, re_, pe, INTEGER)
    status = _read_int(packet, ss, se)
    is_, ie = _expect(packet, se, pe, INTEGER)
    index = _read_int(packet, is_, ie)
    ls, le = _expect(packet, ie, pe, SEQUENCE)
    varbinds: list[tuple[tuple[int, ...], Value]] = []
    pos = ls
    while pos < le:
        bs, be = _expect(packet, pos, le, SEQUENCE)
        os_, oe = _expect(packet, bs, be, OID)
        oid = decode_oid(packet, os_, oe)
        tag, xs, xe = _tlv_at(packet, oe, be)
        value: Value
        if tag == INTEGER:
            value = _read_int(packet, xs, xe)
        elif tag in UNSIGNED:
            value = _read_int(packet, xs, xe, signed=False)
        elif tag in OCTETS:
            value = packet[xs:xe]
        elif tag == OID:
            value = decode_oid(packet, xs, xe)
        elif tag == END_OF_MIB_VIEW:
            value = END_OF_MIB_VIEW_VALUE
        elif tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE):
            value = None
        else:
            raise BerError(f"unknown value tag 0x{tag:02x}")
        varbinds.append((oid, value))
        pos = be
    return version, community, request_id, status, index, varbinds
