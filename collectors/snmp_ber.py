"""A small, strict BER codec for the poller's requests and responses (its hot path).

Profiling a full walk through pysnmp showed pyasn1 decoding at about 70 % of the CPU
(``bench/snmp_walk.py``): every varbind becomes several pyasn1 objects (clone,
setComponentByPosition) before the caller sees a Python value. So the poller encodes
its GET/GETNEXT/GETBULK PDUs and decodes the Response (or Report) PDUs here, straight
into ``int`` / ``bytes`` / OID tuples: in community messages, and inside SNMPv3
messages (``snmpwire.v3``: USM, discovery, authentication, privacy).

Strict on hostile input: single-byte tags, definite lengths of at most 4 octets, OIDs of
at most 128 arcs, integers of at most 9 octets (Counter64); anything else raises
``BerError`` and the datagram is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from snmpwire.ber import (  # the shared strict codec; re-exported names are the poller's API
    COUNTER32,
    COUNTER64,
    END_OF_MIB_VIEW,
    GAUGE32,
    GET,
    GETBULK,
    GETNEXT,
    INTEGER,
    IP_ADDRESS,
    MAX_OID_ARCS,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    NULL,
    OCTET_STRING,
    OID,
    OPAQUE,
    REPORT,
    RESPONSE,
    SEQUENCE,
    TIMETICKS,
    BerError,
    decode_oid,
    enc_int,
    enc_oid_content,
    expect,
    read_tlv,
    tlv,
)

__all__ = [
    "GET", "GETBULK", "GETNEXT", "REPORT", "BerError", "decode_oid", "decode_pdu", "decode_response", "encode_pdu",
    "encode_request",
]  # fmt: skip

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


class EndOfMibView:
    __slots__ = ()

    def __repr__(self) -> str:
        return "endOfMibView"


END_OF_MIB_VIEW_VALUE = EndOfMibView()


# ------------------------------------------------------------------ encoding
def encode_oid(oid: Sequence[int]) -> bytes:
    if len(oid) < 2 or oid[0] > 2 or oid[1] >= 40 or len(oid) > MAX_OID_ARCS:
        raise ValueError(f"not an encodable OID: {oid!r}")
    return tlv(OID, enc_oid_content(tuple(oid)))


_NULL = b"\x05\x00"


def encode_pdu(pdu_tag: int, request_id: int, oids: Sequence[Sequence[int]], a: int = 0, b: int = 0) -> bytes:
    """A GET / GETNEXT (a = b = 0) or GETBULK (a = non-repeaters, b = max-repetitions) PDU."""
    varbinds = b"".join(tlv(SEQUENCE, encode_oid(o) + _NULL) for o in oids)
    return tlv(pdu_tag, enc_int(request_id) + enc_int(a) + enc_int(b) + tlv(SEQUENCE, varbinds))


def encode_request(
    version: int, community: bytes, pdu_tag: int, request_id: int, oids: Sequence[Sequence[int]], a: int = 0, b: int = 0
) -> bytes:
    """A community (v1/v2c) message carrying ``encode_pdu``'s PDU."""
    pdu = encode_pdu(pdu_tag, request_id, oids, a, b)
    return tlv(SEQUENCE, enc_int(version) + tlv(OCTET_STRING, community) + pdu)


# ------------------------------------------------------------------ decoding
def _read_int(buf: bytes, s: int, e: int, signed: bool = True) -> int:
    if e - s > 9 or e == s:
        raise BerError("bad integer length")
    return int.from_bytes(buf[s:e], "big", signed=signed)


Value = int | bytes | tuple[int, ...] | EndOfMibView | None


Varbinds = list[tuple[tuple[int, ...], Value]]


def decode_response(packet: bytes) -> tuple[int, bytes, int, int, int, Varbinds]:
    """(version, community, request_id, error_status, error_index, varbinds) of a Response-PDU."""
    end = len(packet)
    s, e = expect(packet, 0, end, SEQUENCE)
    vs, ve = expect(packet, s, e, INTEGER)
    version = _read_int(packet, vs, ve)
    cs, ce = expect(packet, ve, e, OCTET_STRING)
    community = packet[cs:ce]
    tag, request_id, status, index, varbinds = decode_pdu(packet, ce, e)
    if tag != RESPONSE:
        raise BerError(f"expected tag 0x{RESPONSE:02x} (Response), got 0x{tag:02x}")
    return version, community, request_id, status, index, varbinds


def decode_pdu(packet: bytes, pos: int, end: int) -> tuple[int, int, int, int, Varbinds]:
    """(tag, request_id, error_status, error_index, varbinds) of the Response- or Report-PDU at ``pos``."""
    tag, ps, pe = read_tlv(packet, pos, end)
    if tag not in (RESPONSE, REPORT):
        raise BerError(f"expected tag 0x{RESPONSE:02x} (Response) or 0x{REPORT:02x} (Report), got 0x{tag:02x}")
    rs, re_ = expect(packet, ps, pe, INTEGER)
    request_id = _read_int(packet, rs, re_)
    ss, se = expect(packet, re_, pe, INTEGER)
    status = _read_int(packet, ss, se)
    is_, ie = expect(packet, se, pe, INTEGER)
    index = _read_int(packet, is_, ie)
    ls, le = expect(packet, ie, pe, SEQUENCE)
    varbinds: Varbinds = []
    pos = ls
    while pos < le:
        bs, be = expect(packet, pos, le, SEQUENCE)
        os_, oe = expect(packet, bs, be, OID)
        oid = decode_oid(packet, os_, oe)
        tag_v, xs, xe = read_tlv(packet, oe, be)
        value: Value
        if tag_v == INTEGER:
            value = _read_int(packet, xs, xe)
        elif tag_v in UNSIGNED:
            value = _read_int(packet, xs, xe, signed=False)
        elif tag_v in OCTETS:
            value = packet[xs:xe]
        elif tag_v == OID:
            value = decode_oid(packet, xs, xe)
        elif tag_v == END_OF_MIB_VIEW:
            value = END_OF_MIB_VIEW_VALUE
        elif tag_v in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE):
            value = None
        else:
            raise BerError(f"unknown value tag 0x{tag_v:02x}")
        varbinds.append((oid, value))
        pos = be
    return tag, request_id, status, index, varbinds
