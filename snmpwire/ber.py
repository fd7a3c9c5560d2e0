"""A small, strict BER codec for the SNMP subset faultloop speaks on the hot paths.

One codec shared by the lab's agents (lab) and the trap receiver
(collectors.traps). Hand-rolled rather than pyasn1 because both must handle thousands of
messages per second on one core: decoding a request or a trap and encoding a
200-varbind response must cost tens of microseconds, not milliseconds. It is
deliberately strict: single-byte tags, definite lengths of at most 4 length octets,
bounded OIDs and integers; anything else raises ``BerError``, which callers count as a
malformed packet and drop. Fuzzed in tests/lab/test_ber.py and
tests/collectors/test_traps_fuzz.py.
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


def read_int(buf: bytes, pos: int, end: int, tag: int = INTEGER) -> tuple[int, int]:
    s, e = expect(buf, pos, end, tag)
    if e - s == 0 or e - s > 9:
        raise BerError("bad integer length")
    return int.from_bytes(buf[s:e], "big", signed=tag == INTEGER), e


def read_octets(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    s, e = expect(buf, pos, end, OCTET_STRING)
    return bytes(buf[s:e]), e


def decode_oid(buf: bytes, s: int, e: int) -> tuple[int, ...]:
    if e <= s:
        raise BerError("empty OID")
    if e - s > MAX_OID_ARCS * 5:
        raise BerError("OID too long")
    arcs: list[int] = []
    value = 0
    nbytes = 0
    for i in range(s, e):
        b = buf[i]
        value = (value << 7) | (b & 0x7F)
        nbytes += 1
        if nbytes > 5:
            raise BerError("OID arc too large")
        if not b & 0x80:
            if not arcs:
                if value < 80:
                    arcs.extend(divmod(value, 40))
                else:
                    arcs.extend((2, value - 80))
            else:
                arcs.append(value)
            value = 0
            nbytes = 0
    if nbytes:
        raise BerError("truncated OID arc")
    if len(arcs) > MAX_OID_ARCS:
        raise BerError("OID too long")
    return tuple(arcs)


def read_oid(buf: bytes, pos: int, end: int) -> tuple[tuple[int, ...], int]:
    s, e = expect(buf, pos, end, OID)
    return decode_oid(buf, s, e), e


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


def enc_oid_content(oid: tuple[int, ...]) -> bytes:
    if len(oid) < 2:
        oid = tuple(oid) + (0,) * (2 - len(oid))
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = []
        while arc:
            chunk.append(arc & 0x7F)
            arc >>= 7
        chunk.reverse()
        for b in chunk[:-1]:
            out.append(b | 0x80)
        out.append(chunk[-1])
    return bytes(out)


def enc_oid(oid: tuple[int, ...]) -> bytes:
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


def parse_oid_str(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.strip(".").split("."))
