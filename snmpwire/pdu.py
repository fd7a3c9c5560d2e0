"""SNMP PDUs and community messages: the one varbind loop, the request/response PDUs of the
poller and the lab's agents, and notifications (v1 Trap, SNMPv2-Trap, Inform) for the trap
receiver, in v1, v2c and v3 (USM) messages.

Decoding is strict on hostile input (on top of ``snmpwire.ber``'s rules): at most
``MAX_VARBINDS`` varbinds, a varbind is exactly an OID and one value, a PDU ends with its
varbind list and a message with its PDU, NULL-like values carry no content, an IpAddress
is 4 octets. Values come back as plain Python values: ``int``, ``bytes`` (``IpAddress``
for addresses), OID tuples, ``None`` (NULL, noSuchObject, noSuchInstance) and
``END_OF_MIB_VIEW_VALUE``. Anything out of shape raises ``BerError``; a notification that
is well-formed but refused (bad community, unknown user, wrong digest...) raises
``Refused``, whose ``reason`` the receiver counts. Nothing secret ends up in a
``Notification`` or an exception message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from snmpwire import v3
from snmpwire.ber import (
    COUNTER32,
    COUNTER64,
    END_OF_MIB_VIEW,
    GAUGE32,
    GET,
    GETBULK,
    GETNEXT,
    INFORM,
    INTEGER,
    IP_ADDRESS,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    NULL,
    OCTET_STRING,
    OID,
    OPAQUE,
    REPORT,
    RESPONSE,
    SEQUENCE,
    SET,
    TIMETICKS,
    TRAP_V1,
    TRAP_V2,
    BerError,
    Oid,
    dec_int,
    decode_oid,
    enc_int,
    enc_octets,
    enc_oid,
    expect,
    oid_text,
    read_int,
    read_octets,
    read_tlv,
    tlv,
)
from snmpwire.usm import UserTable, aes_decrypt

MAX_VARBINDS = 512
UNSIGNED = frozenset((COUNTER32, GAUGE32, TIMETICKS, COUNTER64))
NO_VALUE = frozenset((NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE))
# the PDUs with the request-id, two integers, varbind-list shape (all but the v1 Trap-PDU)
SNMPV2_PDUS = frozenset((GET, GETNEXT, RESPONSE, SET, GETBULK, INFORM, TRAP_V2, REPORT))

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


class IpAddress(bytes):
    """The 4 octets of an IpAddress value: ``bytes`` to the poller, dotted text in a notification."""

    __slots__ = ()


Value = int | bytes | Oid | EndOfMibView | None
Varbinds = list[tuple[Oid, Value]]


class Refused(Exception):
    """A well-formed notification the receiver must not accept; ``reason`` names why
    (bad_community, bad_version, unsupported_pdu, unsupported_security_model, unknown_user,
    unsupported_sec_level, auth_failed, not_in_time_window, decrypt_failed)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- decoding


def decode_value(buf: bytes, tag: int, s: int, e: int) -> Value:
    """The value with ``tag`` whose content octets are ``buf[s:e]``."""
    if tag == INTEGER:
        return dec_int(buf, s, e)
    if tag == OCTET_STRING or tag == OPAQUE:
        return buf[s:e]
    if tag in UNSIGNED:
        return dec_int(buf, s, e, False)
    if tag == OID:
        return decode_oid(buf, s, e)
    if tag in NO_VALUE or tag == END_OF_MIB_VIEW:
        if e != s:
            raise BerError("NULL with content")
        return END_OF_MIB_VIEW_VALUE if tag == END_OF_MIB_VIEW else None
    if tag == IP_ADDRESS:
        if e - s != 4:
            raise BerError("IpAddress must be 4 octets")
        return IpAddress(buf[s:e])
    raise BerError(f"unknown value tag 0x{tag:02x}")


def read_varbinds(buf: bytes, pos: int, end: int) -> tuple[Varbinds, int]:
    """The VarBindList SEQUENCE at ``pos`` as [(oid, value)], and the position after it.

    The hot loop of every decoder: a varbind's SEQUENCE and OID headers are read by
    ``_short_header``, its value by ``read_tlv``'s full checks.
    """
    vs, ve = expect(buf, pos, end, SEQUENCE)
    out: Varbinds = []
    p = vs
    while p < ve:
        bs, be = _short_header(buf, p, ve, SEQUENCE)
        os_, oe = _short_header(buf, bs, be, OID)
        tag, xs, xe = read_tlv(buf, oe, be)
        if xe != be:
            raise BerError("trailing bytes in varbind")
        out.append((decode_oid(buf, os_, oe), decode_value(buf, tag, xs, xe)))
        if len(out) > MAX_VARBINDS:
            raise BerError("too many varbinds")
        p = be
    return out, ve


def _short_header(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """``expect`` with the short-form length (what nearly every varbind uses) read inline."""
    if pos + 2 <= end and buf[pos] == tag and buf[pos + 1] < 0x80:
        e = pos + 2 + buf[pos + 1]
        if e > end:
            raise BerError("length beyond end of packet")
        return pos + 2, e
    return expect(buf, pos, end, tag)


def _pdu_fields(buf: bytes, ps: int, pe: int) -> tuple[int, int, int, Varbinds]:
    request_id, p = read_int(buf, ps, pe)
    f1, p = read_int(buf, p, pe)
    f2, p = read_int(buf, p, pe)
    varbinds, p = read_varbinds(buf, p, pe)
    if p != pe:
        raise BerError("trailing bytes after the varbind list")
    return request_id, f1, f2, varbinds


def decode_pdu(buf: bytes, pos: int, end: int) -> tuple[int, int, int, int, Varbinds]:
    """(tag, request-id, error-status or non-repeaters, error-index or max-repetitions, varbinds)
    of the PDU filling ``buf[pos:end]``: any PDU but the v1 Trap-PDU."""
    tag, ps, pe = read_tlv(buf, pos, end)
    if pe != end:
        raise BerError("trailing bytes after the PDU")
    if tag not in SNMPV2_PDUS:
        raise BerError(f"not a PDU tag: 0x{tag:02x}")
    return (tag, *_pdu_fields(buf, ps, pe))


def decode_answer(buf: bytes, pos: int, end: int) -> tuple[int, int, int, int, Varbinds]:
    """``decode_pdu`` of a Response- or Report-PDU (an agent's answer); BerError for another PDU."""
    answer = decode_pdu(buf, pos, end)
    if answer[0] not in (RESPONSE, REPORT):
        raise BerError(f"expected tag 0x{RESPONSE:02x} (Response) or 0x{REPORT:02x} (Report), got 0x{answer[0]:02x}")
    return answer


def read_message(data: bytes) -> tuple[int, int, int]:
    """(msgVersion, where what follows it starts, end) of the SNMP message filling ``data``."""
    end = len(data)
    s, e = expect(data, 0, end, SEQUENCE)
    if e != end:
        raise BerError("trailing bytes after message")
    version, p = read_int(data, s, e)
    return version, p, e


def decode_response(packet: bytes) -> tuple[int, bytes, int, int, int, Varbinds]:
    """(version, community, request_id, error_status, error_index, varbinds) of a community
    message carrying a Response-PDU."""
    version, p, end = read_message(packet)
    community, p = read_octets(packet, p, end)
    tag, request_id, status, index, varbinds = decode_pdu(packet, p, end)
    if tag != RESPONSE:
        raise BerError(f"expected tag 0x{RESPONSE:02x} (Response), got 0x{tag:02x}")
    return version, community, request_id, status, index, varbinds


# ---------------------------------------------------------------- encoding

NULL_VALUE = b"\x05\x00"


def varbind(oid_tlv: bytes, value_tlv: bytes) -> bytes:
    return tlv(SEQUENCE, oid_tlv + value_tlv)


def encode_pdu(tag: int, request_id: int, f1: int, f2: int, varbinds: Iterable[bytes]) -> bytes:
    """A PDU of encoded ``varbind``s; f1, f2: error-status and -index, or non-repeaters and
    max-repetitions (GETBULK)."""
    return tlv(tag, enc_int(request_id) + enc_int(f1) + enc_int(f2) + tlv(SEQUENCE, b"".join(varbinds)))


# A poller asks for the same OIDs at every poll of every device (the collection set's columns, the
# same first indexes): each one's encoded request varbind is kept instead of encoded again (it was
# about a third of the poller's codec CPU). Bounded: emptied when full.
_NULL_VARBINDS: dict[tuple[int, ...], bytes] = {}
NULL_VARBINDS_MAX = 50_000


def null_varbind(oid: Sequence[int]) -> bytes:
    """``oid`` with a NULL value, encoded (what GET / GETNEXT / GETBULK requests carry)."""
    key = tuple(oid)
    encoded = _NULL_VARBINDS.get(key)
    if encoded is None:
        encoded = varbind(enc_oid(key), NULL_VALUE)
        if len(_NULL_VARBINDS) >= NULL_VARBINDS_MAX:
            _NULL_VARBINDS.clear()
        _NULL_VARBINDS[key] = encoded
    return encoded


def encode_request(tag: int, request_id: int, oids: Sequence[Oid], a: int = 0, b: int = 0) -> bytes:
    """A GET / GETNEXT (a = b = 0) or GETBULK (a = non-repeaters, b = max-repetitions) PDU."""
    return encode_pdu(tag, request_id, a, b, [null_varbind(o) for o in oids])


def encode_community(version: int, community: bytes, pdu: bytes) -> bytes:
    """A v1 (0) or v2c (1) message carrying ``pdu``."""
    return tlv(SEQUENCE, enc_int(version) + enc_octets(community) + pdu)


# ---------------------------------------------------------------- notifications

SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0 = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ADDRESS_0 = "1.3.6.1.6.3.18.1.3.0"
SNMP_TRAP_ENTERPRISE_0 = "1.3.6.1.6.3.1.1.4.3.0"
STANDARD_TRAPS = "1.3.6.1.6.3.1.1.5"  # coldStart.1 warmStart.2 linkDown.3 linkUp.4 authenticationFailure.5 egp.6


@dataclass(slots=True)
class Notification:
    """A received notification; OIDs as dotted text, values as ``text_value`` makes them."""

    version: str  # "v1", "v2c", "v3"
    trap_oid: str
    varbinds: list[tuple[str, Any]]
    uptime: int | None = None
    agent_address: str | None = None  # v1 agent-addr or snmpTrapAddress.0
    user: str = ""  # v3 user name (not secret); "" for community-based versions
    engine_id: str = ""  # v3 authoritative (sending) engine ID, hex
    inform: bool = False
    response: bytes | None = field(default=None, repr=False)  # datagram to send back (v2c Inform)


def octets_text(raw: bytes) -> str:
    """Printable UTF-8 as text; anything else as ``0x`` hex so binary never reaches a log line raw."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
        return text
    return "0x" + raw.hex()


def text_value(value: Value) -> Any:
    """A varbind value as a notification carries it: OIDs and addresses as text, octets as
    ``octets_text``, endOfMibView as None."""
    if isinstance(value, IpAddress):
        return ".".join(map(str, value))
    if isinstance(value, bytes):
        return octets_text(value)
    if isinstance(value, tuple):
        return oid_text(value)
    if isinstance(value, EndOfMibView):
        return None
    return value


def v1_trap_oid(enterprise: str, generic: int, specific: int) -> str:
    """RFC 3584 section 3.1: the snmpTrapOID.0 a v1 trap translates to."""
    if 0 <= generic <= 5:
        return f"{STANDARD_TRAPS}.{generic + 1}"
    if generic == 6:
        return f"{enterprise}.0.{specific}"
    raise BerError(f"generic-trap {generic} out of range")


def decode_notification(
    data: bytes,
    *,
    communities: frozenset[bytes] = frozenset(),
    users: UserTable | None = None,
    now_s: float = 0.0,
) -> Notification:
    """One datagram -> ``Notification``; ``communities`` (empty: any) are accepted in v1/v2c
    messages, ``users`` in v3 ones; ``now_s`` is the local receive time (seconds) for the
    SNMPv3 time-window check."""
    version, pos, end = read_message(data)
    if version in (0, 1):
        community, pos = read_octets(data, pos, end)
        # checked after the shape so a malformed packet counts as malformed, not as a bad community
        note = _notification(data, pos, end, "v1" if version == 0 else "v2c")
        if communities and community not in communities:
            raise Refused("bad_community")
        if note.inform:
            note.response = _inform_response(data, pos, end)
        return note
    if version == 3:
        return _v3_notification(data, pos, end, users, now_s)
    raise Refused("bad_version", f"SNMP version field {version}")


def _notification(data: bytes, pos: int, end: int, version: str) -> Notification:
    tag, ps, pe = read_tlv(data, pos, end)
    if pe != end:
        raise BerError("trailing bytes after the PDU")
    if tag == TRAP_V1:
        if version != "v1":
            raise BerError("v1 Trap-PDU in a v2c/v3 message")
        es, ee = expect(data, ps, pe, OID)
        enterprise = oid_text(decode_oid(data, es, ee))
        as_, ae = expect(data, ee, pe, IP_ADDRESS)
        agent = text_value(decode_value(data, IP_ADDRESS, as_, ae))
        generic, p = read_int(data, ae, pe)
        specific, p = read_int(data, p, pe)
        uptime, p = read_int(data, p, pe, TIMETICKS)
        raw, p = read_varbinds(data, p, pe)
        if p != pe:
            raise BerError("trailing bytes after the varbind list")
        varbinds = [(oid_text(o), text_value(v)) for o, v in raw]
        varbinds.append((SNMP_TRAP_ENTERPRISE_0, enterprise))
        return Notification(
            version=version,
            trap_oid=v1_trap_oid(enterprise, generic, specific),
            varbinds=varbinds,
            uptime=uptime,
            agent_address=agent,
        )
    if tag in (TRAP_V2, INFORM):
        if version == "v1":
            raise BerError("SNMPv2 PDU in a v1 message")
        if tag == INFORM and version == "v3":
            # acknowledging a v3 inform needs this receiver as the authoritative engine; not supported
            raise Refused("unsupported_pdu", "SNMPv3 InformRequest")
        _reqid, _status, _index, raw = _pdu_fields(data, ps, pe)
        # RFC 3416 4.2.6: sysUpTime.0 then snmpTrapOID.0 come first
        if len(raw) < 2 or raw[0][0] != SYS_UPTIME_0 or raw[1][0] != SNMP_TRAP_OID_0:
            raise BerError("notification does not start with sysUpTime.0, snmpTrapOID.0")
        trap_oid = raw[1][1]
        if not isinstance(trap_oid, tuple):
            raise BerError("snmpTrapOID.0 is not an OID")
        uptime_value = raw[0][1]
        rest = [(oid_text(o), text_value(v)) for o, v in raw[2:]]
        agent = next((v for o, v in rest if o == SNMP_TRAP_ADDRESS_0 and isinstance(v, str)), None)
        return Notification(
            version=version,
            trap_oid=oid_text(trap_oid),
            varbinds=rest,
            uptime=uptime_value if isinstance(uptime_value, int) else None,
            agent_address=agent,
            inform=tag == INFORM,
        )
    raise Refused("unsupported_pdu", f"PDU tag 0x{tag:02x}")


def _inform_response(data: bytes, pdu_at: int, end: int) -> bytes:
    """The Response-PDU acknowledging a v2c Inform: same request ID and varbinds (RFC 3416 4.2.7),
    in a message with the version and community as received."""
    _tag, ps, pe = read_tlv(data, pdu_at, end)
    version_at, _end = expect(data, 0, end, SEQUENCE)
    return tlv(SEQUENCE, data[version_at:pdu_at] + tlv(RESPONSE, data[ps:pe]))


def _v3_notification(data: bytes, pos: int, end: int, users: UserTable | None, now_s: float) -> Notification:
    m = v3.parse(data, pos, end)
    if m.security_model != v3.USM_SECURITY_MODEL:
        raise Refused("unsupported_security_model", f"security model {m.security_model}")
    user = users.find(m.engine_id, m.user) if users is not None else None
    if user is None:
        raise Refused("unknown_user")
    if (user.auth_protocol is not None) != m.authenticated or (user.priv_protocol is not None) != m.private:
        raise Refused("unsupported_sec_level")
    auth_key, priv_key = user.keys(m.engine_id)
    if m.authenticated:
        assert user.auth_protocol is not None and users is not None
        if m.auth_span[1] - m.auth_span[0] != user.mac_length:
            raise Refused("auth_failed", "digest of the wrong length")
        if not v3.digest_ok(data, m, user.auth_protocol, auth_key):
            raise Refused("auth_failed", "wrong digest")
        if not users.timely(m.engine_id, m.boots, m.time, now_s):
            raise Refused("not_in_time_window")
    if m.private:
        scoped = aes_decrypt(priv_key, m.boots, m.time, m.priv_params, v3.encrypted(data, m, end))
        try:
            return _scoped_notification(scoped, 0, len(scoped), user.name, m.engine_id)
        except BerError:
            raise Refused("decrypt_failed") from None
    return _scoped_notification(data, m.data_at, end, user.name, m.engine_id)


def _scoped_notification(data: bytes, pos: int, end: int, user: str, engine_id: bytes) -> Notification:
    _ctx_engine, _ctx_name, pdu_at, scoped_end = v3.scoped_pdu(data, pos, end)
    note = _notification(data, pdu_at, scoped_end, "v3")
    note.user = user
    note.engine_id = engine_id.hex()
    return note
