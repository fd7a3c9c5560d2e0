"""A small, strict BER decoder for the SNMP messages a trap receiver accepts.

Hand-rolled instead of pyasn1 because a receiver must turn thousands of traps per
second into events on one core: decoding a typical trap here costs tens of
microseconds, pyasn1's generic decoder about a millisecond. It is deliberately strict
and bounded: single-byte tags, definite lengths of at most 4 length octets, at most
``MAX_DEPTH`` nested constructions, bounded OIDs, integers and varbind counts. Anything
else raises ``BerError``, which the receiver counts as a malformed packet. Fuzzed in
tests/collectors/test_traps_fuzz.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any

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

RESPONSE = 0xA2
TRAP_V1 = 0xA4
INFORM = 0xA6
TRAP_V2 = 0xA7
REPORT = 0xA8

MAX_OID_ARCS = 128
MAX_INT_OCTETS = 9  # Counter64 may need a leading zero octet
MAX_VARBINDS = 512
MAX_DEPTH = 8


class BerError(ValueError):
    """The packet is not well-formed BER, or not the SNMP shape a receiver accepts."""


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, value_start, value_end) of the TLV at ``pos``; every bound checked against ``end``."""
    if pos + 2 > end:
        raise BerError("truncated TLV header")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-byte tag")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0:
            raise BerError("indefinite length")
        if n > 4:
            raise BerError("length of length too large")
        if pos + n > end:
            raise BerError("truncated length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise BerError("length exceeds packet")
    return tag, pos, pos + length


def expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    t, vs, ve = read_tlv(buf, pos, end)
    if t != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{t:02x}")
    return vs, ve


def dec_int(buf: bytes, vs: int, ve: int) -> int:
    if ve == vs:
        raise BerError("empty integer")
    if ve - vs > MAX_INT_OCTETS:
        raise BerError("integer too long")
    return int.from_bytes(buf[vs:ve], "big", signed=True)


def dec_uint(buf: bytes, vs: int, ve: int) -> int:
    if ve - vs > MAX_INT_OCTETS:
        raise BerError("unsigned integer too long")
    return int.from_bytes(buf[vs:ve], "big", signed=False)


def read_int(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, next position) of an INTEGER at ``pos``."""
    vs, ve = expect(buf, pos, end, INTEGER)
    return dec_int(buf, vs, ve), ve


def read_octets(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    vs, ve = expect(buf, pos, end, OCTET_STRING)
    return buf[vs:ve], ve


_OID_CACHE: dict[bytes, str] = {}
_OID_CACHE_MAX = 65536


def dec_oid(buf: bytes, vs: int, ve: int) -> str:
    """Dotted OID text (numeric, no leading dot).

    Traps repeat the same few OIDs (sysUpTime.0, snmpTrapOID.0, ifIndex.N...), so decoded
    OIDs are cached by their encoding; the cache is bounded and simply cleared when full.
    """
    raw = buf[vs:ve]
    text = _OID_CACHE.get(raw)
    if text is None:
        text = _dec_oid(raw, 0, len(raw))
        if len(_OID_CACHE) >= _OID_CACHE_MAX:
            _OID_CACHE.clear()
        _OID_CACHE[raw] = text
    return text


def _dec_oid(buf: bytes, vs: int, ve: int) -> str:
    if ve == vs:
        raise BerError("empty OID")
    arcs: list[int] = []
    value = 0
    started = False
    for i in range(vs, ve):
        b = buf[i]
        if not started and b == 0x80:
            raise BerError("non-minimal OID sub-identifier")
        value = (value << 7) | (b & 0x7F)
        started = True
        if not b & 0x80:
            if value > 0xFFFFFFFF and arcs:
                raise BerError("OID sub-identifier too large")
            arcs.append(value)
            value = 0
            started = False
            if len(arcs) > MAX_OID_ARCS:
                raise BerError("OID too long")
    if started:
        raise BerError("truncated OID")
    first = arcs[0]
    if first < 40:
        head = [0, first]
    elif first < 80:
        head = [1, first - 40]
    else:
        head = [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def dec_value(buf: bytes, tag: int, vs: int, ve: int, depth: int = 0) -> Any:
    """A varbind value as a plain Python value (OIDs and addresses as text)."""
    if tag == INTEGER:
        return dec_int(buf, vs, ve)
    if tag == OCTET_STRING or tag == OPAQUE:
        return octets_text(buf[vs:ve])
    if tag == OID:
        return dec_oid(buf, vs, ve)
    if tag in (COUNTER32, GAUGE32, TIMETICKS, COUNTER64):
        return dec_uint(buf, vs, ve)
    if tag == IP_ADDRESS:
        if ve - vs != 4:
            raise BerError("IpAddress must be 4 octets")
        return str(ipaddress.IPv4Address(buf[vs:ve]))
    if tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
        if ve != vs:
            raise BerError("NULL with content")
        return None
    if tag & 0x20:  # a constructed value in a varbind: not SNMP, but bound the walk anyway
        if depth >= MAX_DEPTH:
            raise BerError("nesting too deep")
        items = []
        pos = vs
        while pos < ve:
            t, cs, ce = read_tlv(buf, pos, ve)
            items.append(dec_value(buf, t, cs, ce, depth + 1))
            pos = ce
        return items
    raise BerError(f"unknown value tag 0x{tag:02x}")


def octets_text(raw: bytes) -> str:
    """Printable UTF-8 as text; anything else as ``0x`` hex so binary never reaches a log line raw."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
        return text
    return "0x" + raw.hex()


def read_varbinds(buf: bytes, pos: int, end: int) -> tuple[list[tuple[str, Any]], int]:
    """The VarBindList SEQUENCE at ``pos`` as [(oid, value)], and the position after it.

    The hot loop of the receiver: short-form lengths (what nearly every varbind uses) are
    read inline; anything longer goes through ``read_tlv``'s full checks.
    """
    vs, ve = expect(buf, pos, end, SEQUENCE)
    out: list[tuple[str, Any]] = []
    p = vs
    while p < ve:
        if p + 2 <= ve and buf[p] == SEQUENCE and buf[p + 1] < 0x80:
            bs = p + 2
            be = bs + buf[p + 1]
            if be > ve:
                raise BerError("length exceeds packet")
        else:
            bs, be = expect(buf, p, ve, SEQUENCE)
        if bs + 2 <= be and buf[bs] == OID and buf[bs + 1] < 0x80:
            os_ = bs + 2
            oe = os_ + buf[bs + 1]
            if oe > be:
                raise BerError("length exceeds packet")
        else:
            os_, oe = expect(buf, bs, be, OID)
        tag, xs, xe = read_tlv(buf, oe, be)
        if xe != be:
            raise BerError("trailing bytes in varbind")
        out.append((dec_oid(buf, os_, oe), dec_value(buf, tag, xs, xe)))
        if len(out) > MAX_VARBINDS:
            raise BerError("too many varbinds")
        p = be
    return out, ve


# ---------------------------------------------------------------- encoding (inform responses only)


def enc_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + enc_len(len(value)) + value


def enc_int(n: int) -> bytes:
    return tlv(INTEGER, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))
