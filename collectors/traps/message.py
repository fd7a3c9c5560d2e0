"""SNMP notification messages (v1 Trap, v2c/v3 SNMPv2-Trap, v2c Inform) -> ``Notification``.

``decode`` raises ``Rejected(reason)`` for a packet that is well-formed but refused
(bad community, unknown user, wrong digest...) and ``BerError`` for one that is not
well-formed; the receiver counts both by reason. Nothing secret ends up in a
``Notification`` or an exception message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collectors.receiver import Rejected
from collectors.traps import ber
from collectors.traps.ber import BerError
from collectors.traps.usm import UsmUsers, decrypt_aes
from snmpwire import v3 as snmpv3

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
    m = snmpv3.parse(data, pos, end)
    if m.security_model != snmpv3.USM_SECURITY_MODEL:
        raise Rejected("unsupported_security_model", f"security model {m.security_model}")
    user = users.find(m.engine_id, m.user)
    if user is None:
        raise Rejected("unknown_user")
    if (user.auth_protocol is not None) != m.authenticated or (user.priv_protocol is not None) != m.private:
        raise Rejected("unsupported_sec_level")
    auth_key, priv_key = user.keys(m.engine_id)
    if m.authenticated:
        assert user.auth_protocol is not None
        if m.auth_span[1] - m.auth_span[0] != user.mac_length:
            raise Rejected("auth_failed", "digest of the wrong length")
        if not snmpv3.digest_ok(data, m, user.auth_protocol, auth_key):
            raise Rejected("auth_failed", "wrong digest")
        if not users.timely(m.engine_id, m.boots, m.time, now_s):
            raise Rejected("not_in_time_window")
    if m.private:
        scoped = decrypt_aes(priv_key, m.boots, m.time, m.priv_params, snmpv3.encrypted(data, m, end))
        try:
            return _scoped(scoped, 0, len(scoped), user.name, m.engine_id)
        except BerError:
            raise Rejected("decrypt_failed") from None
    return _scoped(data, m.data_at, end, user.name, m.engine_id)


def _scoped(data: bytes, pos: int, end: int, user: str, engine_id: bytes) -> Notification:
    _ctx_engine, _ctx_name, pdu_at, scoped_end = snmpv3.scoped_pdu(data, pos, end)
    tag, ps, pe = ber.read_tlv(data, pdu_at, scoped_end)
    if pe != scoped_end:
        raise BerError("trailing bytes in the scopedPDU")
    if tag == ber.INFORM:
        # acknowledging a v3 inform needs this receiver as the authoritative engine; not supported
        raise Rejected("unsupported_pdu", "SNMPv3 InformRequest")
    note = _pdu(data, tag, ps, pe, "v3")
    note.user = user
    note.engine_id = engine_id.hex()
    return note
