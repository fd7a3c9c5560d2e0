"""SNMP notification messages (v1 Trap, v2c/v3 SNMPv2-Trap, v2c Inform) -> ``Notification``.

``decode`` raises ``Rejected(reason)`` for a packet that is well-formed but refused
(bad community, unknown user, wrong digest...) and ``BerError`` for one that is not
well-formed; the receiver counts both by reason. Nothing secret ends up in a
``Notification`` or an exception message.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from collectors.receiver import Rejected
from collectors.traps import ber
from collectors.traps.ber import BerError
from collectors.traps.usm import UsmUsers, decrypt_aes

SYS_UPTIME_0 = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID_0 = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAP_ADDRESS_0 = "1.3.6.1.6.3.18.1.3.0"
SNMP_TRAP_ENTERPRISE_0 = "1.3.6.1.6.3.1.1.4.3.0"
STANDARD_TRAPS = "1.3.6.1.6.3.1.1.5"  # coldStart.1 warmStart.2 linkDown.3 linkUp.4 authenticationFailure.5 egp.6


@dataclass(slots=True)
class Notification:
    version: str  # "v1", "v2c", "v3"
    trap_oid: str
    varbinds: list[tuple[str, Any]]
    uptime: int | None = None
    agent_address: str | None = None  # v1 agent-addr or snmpTrapAddress.0
    user: str = ""  # v3 user name (not secret); "" for community-based versions
    engine_id: str = ""  # v3 authoritative (sending) engine ID, hex
    inform: bool = False
    response: bytes | None = field(default=None, repr=False)  # datagram to send back (v2c Inform)


def v1_trap_oid(enterprise: str, generic: int, specific: int) -> str:
    """RFC 3584 section 3.1: the snmpTrapOID.0 a v1 trap translates to."""
    if 0 <= generic <= 5:
        return f"{STANDARD_TRAPS}.{generic + 1}"
    if generic == 6:
        return f"{enterprise}.0.{specific}"
    raise BerError(f"generic-trap {generic} out of range")


def decode(
    data: bytes,
    *,
    communities: frozenset[bytes] = frozenset(),
    users: UsmUsers | None = None,
    now_s: float = 0.0,
) -> Notification:
    """One datagram -> ``Notification``; ``now_s`` is the local receive time (seconds) for the
    SNMPv3 time-window check."""
    end = len(data)
    vs, ve = ber.expect(data, 0, end, ber.SEQUENCE)
    if ve != end:
        raise BerError("trailing bytes after message")
    version, pos = ber.read_int(data, vs, ve)
    if version in (0, 1):
        community, pos = ber.read_octets(data, pos, ve)
        tag, ps, pe = ber.read_tlv(data, pos, ve)
        if pe != ve:
            raise BerError("trailing bytes after PDU")
        # checked after the shape so a malformed packet counts as malformed, not as a bad community
        note = _pdu(data, tag, ps, pe, "v1" if version == 0 else "v2c")
        if communities and community not in communities:
            raise Rejected("bad_community")
        if note.inform:
            note.response = _inform_response(data, vs, pos, ps, pe)
        return note
    if version == 3:
        return _v3(data, pos, ve, users or UsmUsers(), now_s)
    raise Rejected("bad_version", f"SNMP version field {version}")


def _pdu(data: bytes, tag: int, ps: int, pe: int, version: str) -> Notification:
    if tag == ber.TRAP_V1:
        if version != "v1":
            raise BerError("v1 Trap-PDU in a v2c/v3 message")
        es, ee = ber.expect(data, ps, pe, ber.OID)
        enterprise = ber.dec_oid(data, es, ee)
        as_, ae = ber.expect(data, ee, pe, ber.IP_ADDRESS)
        agent = ber.dec_value(data, ber.IP_ADDRESS, as_, ae)
        generic, p = ber.read_int(data, ae, pe)
        specific, p = ber.read_int(data, p, pe)
        ts, te = ber.expect(data, p, pe, ber.TIMETICKS)
        varbinds, p = ber.read_varbinds(data, te, pe)
        if p != pe:
            raise BerError("trailing bytes in Trap-PDU")
        varbinds.append((SNMP_TRAP_ENTERPRISE_0, enterprise))
        return Notification(
            version=version,
            trap_oid=v1_trap_oid(enterprise, generic, specific),
            varbinds=varbinds,
            uptime=ber.dec_uint(data, ts, te),
            agent_address=agent,
        )
    if tag in (ber.TRAP_V2, ber.INFORM):
        if version == "v1":
            raise BerError("SNMPv2 PDU in a v1 message")
        _reqid, p = ber.read_int(data, ps, pe)
        _status, p = ber.read_int(data, p, pe)
        _index, p = ber.read_int(data, p, pe)
        varbinds, p = ber.read_varbinds(data, p, pe)
        if p != pe:
            raise BerError("trailing bytes in PDU")
        # RFC 3416 4.2.6: sysUpTime.0 then snmpTrapOID.0 come first
        if len(varbinds) < 2 or varbinds[0][0] != SYS_UPTIME_0 or varbinds[1][0] != SNMP_TRAP_OID_0:
            raise BerError("notification does not start with sysUpTime.0, snmpTrapOID.0")
        trap_oid = varbinds[1][1]
        if not isinstance(trap_oid, str) or not trap_oid[:1].isdigit():
            raise BerError("snmpTrapOID.0 is not an OID")
        uptime = varbinds[0][1] if isinstance(varbinds[0][1], int) else None
        rest = varbinds[2:]
        agent = next((v for o, v in rest if o == SNMP_TRAP_ADDRESS_0 and isinstance(v, str)), None)
        return Notification(
            version=version,
            trap_oid=trap_oid,
            varbinds=rest,
            uptime=uptime,
            agent_address=agent,
            inform=tag == ber.INFORM,
        )
    raise Rejected("unsupported_pdu", f"PDU tag 0x{tag:02x}")


def _inform_response(data: bytes, vs: int, community_end: int, ps: int, pe: int) -> bytes:
    """The Response-PDU acknowledging a v2c Inform: same request ID and varbinds (RFC 3416 4.2.7)."""
    head = data[vs:community_end]  # version + community, as received
    body = data[ps:pe]
    return ber.tlv(ber.SEQUENCE, head + ber.tlv(ber.RESPONSE, body))


def _v3(data: bytes, pos: int, end: int, users: UsmUsers, now_s: float) -> Notification:
    gs, ge = ber.expect(data, pos, end, ber.SEQUENCE)
    _msg_id, p = ber.read_int(data, gs, ge)
    _max_size, p = ber.read_int(data, p, ge)
    flags_raw, p = ber.read_octets(data, p, ge)
    model, p = ber.read_int(data, p, ge)
    if len(flags_raw) != 1 or p != ge:
        raise BerError("bad msgGlobalData")
    flags = flags_raw[0]
    if model != 3:
        raise Rejected("unsupported_security_model", f"security model {model}")
    ss, se = ber.expect(data, ge, end, ber.OCTET_STRING)
    us, ue = ber.expect(data, ss, se, ber.SEQUENCE)
    engine_id, p = ber.read_octets(data, us, ue)
    boots, p = ber.read_int(data, p, ue)
    etime, p = ber.read_int(data, p, ue)
    user_name, p = ber.read_octets(data, p, ue)
    auth_s, auth_e = ber.expect(data, p, ue, ber.OCTET_STRING)
    salt, p = ber.read_octets(data, auth_e, ue)
    if p != ue or ue != se:
        raise BerError("bad msgSecurityParameters")
    if not 0 <= boots <= 0x7FFFFFFF or not 0 <= etime <= 0x7FFFFFFF:
        raise BerError("engine boots/time out of range")
    data_tag, ds, de = ber.read_tlv(data, se, end)
    if de != end:
        raise BerError("trailing bytes after scopedPDU")
    user = users.find(engine_id, user_name)
    if user is None:
        raise Rejected("unknown_user")
    authed, private = bool(flags & 1), bool(flags & 2)
    if private and not authed:
        raise BerError("privacy without authentication")
    if (user.auth_protocol is not None) != authed or (user.priv_protocol is not None) != private:
        raise Rejected("unsupported_sec_level")
    auth_key, priv_key = user.keys(engine_id)
    if authed:
        if auth_e - auth_s != user.mac_length:
            raise Rejected("auth_failed", "digest of the wrong length")
        zeroed = data[:auth_s] + bytes(auth_e - auth_s) + data[auth_e:]
        if not hmac.compare_digest(user.mac(auth_key, zeroed), data[auth_s:auth_e]):
            raise Rejected("auth_failed", "wrong digest")
        if not users.timely(engine_id, boots, etime, now_s):
            raise Rejected("not_in_time_window")
    if private:
        if data_tag != ber.OCTET_STRING or len(salt) != 8:
            raise BerError("encrypted scopedPDU expected")
        scoped = decrypt_aes(priv_key, boots, etime, salt, data[ds:de])
        try:
            return _scoped(scoped, 0, len(scoped), user.name, engine_id)
        except BerError:
            raise Rejected("decrypt_failed") from None
    if data_tag != ber.SEQUENCE:
        raise BerError("plaintext scopedPDU expected")
    return _scoped(data, se, end, user.name, engine_id)


def _scoped(data: bytes, pos: int, end: int, user: str, engine_id: bytes) -> Notification:
    ss, se = ber.expect(data, pos, end, ber.SEQUENCE)
    _ctx_engine, p = ber.read_octets(data, ss, se)
    _ctx_name, p = ber.read_octets(data, p, se)
    tag, ps, pe = ber.read_tlv(data, p, se)
    if tag == ber.INFORM:
        # acknowledging a v3 inform needs this receiver as the authoritative engine; not supported
        raise Rejected("unsupported_pdu", "SNMPv3 InformRequest")
    note = _pdu(data, tag, ps, pe, "v3")
    note.user = user
    note.engine_id = engine_id.hex()
    return note
