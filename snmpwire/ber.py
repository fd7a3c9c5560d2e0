"""A small, strict BER codec for the SNMP subset faultloop speaks on its hot paths.

The one BER layer under the poller (devices.snmp), the trap receiver (collectors.traps)
and the lab's agents (lab). Hand-rolled rather than pyasn1 because each must handle
thousands of messages per second on one core: decoding a response or a trap and encoding
a 200-varbind response must cost tens of microseconds, not milliseconds (pyasn1 was about
70 % of a pysnmp walk's CPU). It is deliberately strict: single-byte tags, definite
lengths of at most 4 length octets, integers of 1 to 9 octets, OIDs of at most 128 arcs
with minimally encoded sub-identifiers of at most 32 bits; anything else raises
``BerError``, which callers count as a malformed packet and drop.
"""

from __future__ import annotations

from typing import Any

# universal / application tags
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

# PDU tags
GET = 0xA0
GETNEXT = 0xA1
RESPONSE = 0xA2
SET = 0xA3
TRAP_V1 = 0xA4
GETBULK = 0xA5
INFORM = 0xA6
TRAP_V2 = 0xA7
REPORT = 0xA8

MAX_OID_ARCS = 128
MAX_SUBID = 0xFFFFFFFF  # SMI: every sub-identifier is an unsigned 32-bit number
MAX_INT_OCTETS = 9  # Counter64 may need a leading zero octet
OID_CACHE_SIZE = 65536

Oid = tuple[int, ...]


class BerError(ValueError):
    """The packet is not well-formed BER (or not the SNMP shape we expect)."""


# ---------------------------------------------------------------- decoding


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Return (tag, value_start, value_end) of the TLV at ``pos``; bounds-checked."""
    if pos + 2 > end:
        raise BerError("truncated TLV header")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-byte tags are not used by SNMP")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0:
            raise BerError("indefinite length")
        if n > 4 or pos + n > end:
            raise BerError("bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise BerError("length beyond end of packet")
    return tag, pos, pos + length


def expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    t, s, e = read_tlv(buf, pos, end)
    if t != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{t:02x}")
    return s, e


def dec_int(buf: bytes, s: int, e: int, signed: bool = True) -> int:
    """The integer in ``buf[s:e]`` (the content octets of an INTEGER, Counter, Gauge, TimeTicks)."""
    if e - s > MAX_INT_OCTETS or e == s:
        raise BerError("bad integer length")
    return int.from_bytes(buf[s:e], "big", signed=signed)


def read_int(buf: bytes, pos: int, end: int, tag: int = INTEGER) -> tuple[int, int]:
    s, e = expect(buf, pos, end, tag)
    return dec_int(buf, s, e, tag == INTEGER), e


def read_octets(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    s, e = expect(buf, pos, end, OCTET_STRING)
    return bytes(buf[s:e]), e


_OID_CACHE: dict[bytes, Oid] = {}
_TEXT_CACHE: dict[Oid, str] = {}


def decode_oid(buf: bytes, s: int, e: int) -> Oid:
    """The OID whose content octets are ``buf[s:e]``.

    Agents and traps repeat the same OIDs (sysUpTime.0, snmpTrapOID.0, the columns of every
    device's ifTable...), so decoded OIDs are cached by their encoding; the cache is bounded
    and simply cleared when full.
    """
    raw = buf[s:e]
    oid = _OID_CACHE.get(raw)
    if oid is None:
        oid = _decode_oid(raw)
        if len(_OID_CACHE) >= OID_CACHE_SIZE:
            _OID_CACHE.clear()
        _OID_CACHE[raw] = oid
    return oid


def _decode_oid(raw: bytes) -> Oid:
    if not raw:
        raise BerError("empty OID")
    if len(raw) > MAX_OID_ARCS * 5:
        raise BerError("OID too long")
    if raw[-1] & 0x80:
        raise BerError("truncated OID sub-identifier")
    subids: list[int] = []
    value = 0
    for b in raw:
        if b & 0x80:
            if not value and b == 0x80:  # a leading 0x80 octet adds nothing (X.690 8.19.2)
                raise BerError("non-minimal OID sub-identifier")
            value = (value << 7) | (b & 0x7F)
            if value > MAX_SUBID >> 7:
                raise BerError("OID sub-identifier too large")
        else:
            subids.append((value << 7) | b)
            value = 0
    if len(subids) >= MAX_OID_ARCS:  # the first sub-identifier holds two arcs
        raise BerError("OID too long")
    first = subids[0]
    if first < 80:
        return (*divmod(first, 40), *subids[1:])
    return (2, first - 80, *subids[1:])


def read_oid(buf: bytes, pos: int, end: int) -> tuple[Oid, int]:
    s, e = expect(buf, pos, end, OID)
    return decode_oid(buf, s, e), e


def oid_text(oid: Oid) -> str:
    """Dotted numeric text of an OID (no leading dot), cached like ``decode_oid``."""
    text = _TEXT_CACHE.get(oid)
    if text is None:
        text = ".".join(map(str, oid))
        if len(_TEXT_CACHE) >= OID_CACHE_SIZE:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[oid] = text
    return text


def parse_oid_str(text: str) -> Oid:
    return tuple(int(x) for x in text.strip(".").split("."))


# ---------------------------------------------------------------- encoding


def enc_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(b),)) + b


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + enc_len(n) + content


def enc_int(v: int, tag: int = INTEGER) -> bytes:
    if 0 <= v < 0x80:
        return bytes((tag, 1, v))
    n = (v + (v < 0)).bit_length() // 8 + 1
    return tlv(tag, v.to_bytes(n, "big", signed=True))


def enc_uint(v: int, tag: int) -> bytes:
    if 0 <= v < 0x80:
        return bytes((tag, 1, v))
    n = v.bit_length() // 8 + 1  # leading zero octet when the top bit is set
    return tlv(tag, v.to_bytes(n, "big"))


def enc_oid_content(oid: Oid) -> bytes:
    """The content octets of ``oid``; ValueError for what ``decode_oid`` would refuse."""
    if len(oid) < 2 or len(oid) > MAX_OID_ARCS or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
        raise ValueError(f"not an encodable OID: {oid!r}")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if 0 <= arc < 0x80:
            out.append(arc)
            continue
        if not 0 < arc <= MAX_SUBID:
            raise ValueError(f"not an encodable OID: {oid!r}")
        chunk = []
        while arc:
            chunk.append(arc & 0x7F)
            arc >>= 7
        chunk.reverse()
        for b in chunk[:-1]:
            out.append(b | 0x80)
        out.append(chunk[-1])
    return bytes(out)


def enc_oid(oid: Oid) -> bytes:
    return tlv(OID, enc_oid_content(oid))


def enc_octets(b: bytes) -> bytes:
    return tlv(OCTET_STRING, b)


def enc_seq(*parts: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(parts))


def enc_value(tag: int, value: Any) -> bytes:
    """Encode a typed value as returned by a MIB getter: (tag, python value)."""
    if tag == OCTET_STRING:
        return tlv(tag, value if isinstance(value, bytes) else str(value).encode())
    if tag == INTEGER:
        return enc_int(value)
    if tag in (COUNTER32, GAUGE32, TIMETICKS):
        return enc_uint(value & 0xFFFFFFFF, tag)
    if tag == COUNTER64:
        return enc_uint(value & 0xFFFFFFFFFFFFFFFF, tag)
    if tag == OID:
        return enc_oid(value)
    if tag == IP_ADDRESS:
        return tlv(tag, value)
    if tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
        return bytes((tag, 0))
    raise ValueError(f"cannot encode tag 0x{tag:02x}")
