"""Trap-specific BER decoding on top of the shared strict codec in ``snmpwire.ber``.

The receiver decodes varbind values into plain Python values (OIDs and addresses as
text) with extra bounds a hostile sender cannot get around: at most ``MAX_VARBINDS``
varbinds and ``MAX_DEPTH`` nested constructions. Anything else raises ``BerError``,
which the receiver counts as a malformed packet. Fuzzed in
tests/collectors/test_traps_fuzz.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from snmpwire.ber import (  # noqa: F401 - re-exported for the trap decoder
    COUNTER32,
    COUNTER64,
    END_OF_MIB_VIEW,
    GAUGE32,
    INFORM,
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
    TRAP_V1,
    TRAP_V2,
    BerError,
    expect,
    read_int,
    read_octets,
    read_tlv,
    tlv,
)

MAX_INT_OCTETS = 9  # Counter64 may need a leading zero octet
MAX_VARBINDS = 512
MAX_DEPTH = 8


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
