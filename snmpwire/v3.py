"""SNMPv3 messages (RFC 3412) under the User-based Security Model (RFC 3414, 3826, 7860).

One encoder and one strict parser, shared by the poller's SNMPv3 client
(devices.snmp), the notification decoder (``snmpwire.pdu``, for the trap receiver) and
the lab's agents (lab). Cryptography is in ``snmpwire.usm``; keys never appear in a
repr, an exception message or a log line.

    SEQUENCE { msgVersion 3,
               msgGlobalData SEQUENCE { msgID, msgMaxSize, msgFlags (1 octet), msgSecurityModel 3 },
               msgSecurityParameters OCTET STRING { SEQUENCE { engineID, boots, time, userName,
                                                               authParams, privParams } },
               msgData: ScopedPDU SEQUENCE { contextEngineID, contextName, PDU }
                        or, with privacy, OCTET STRING (the encrypted ScopedPDU) }
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from snmpwire import ber
from snmpwire.ber import BerError, enc_int, enc_octets, enc_seq, tlv
from snmpwire.usm import AUTH_PROTOCOLS, aes_encrypt, mac

AUTH_FLAG, PRIV_FLAG, REPORTABLE_FLAG = 1, 2, 4
USM_SECURITY_MODEL = 3
MAX_INT = 0x7FFFFFFF

# usmStats counters (1.3.6.1.6.3.15.1.1.N.0): the varbind of a Report PDU names the refusal
USM_STATS: dict[str, tuple[int, ...]] = {
    "unsupported_sec_levels": (1, 3, 6, 1, 6, 3, 15, 1, 1, 1, 0),
    "not_in_time_windows": (1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0),
    "unknown_user_names": (1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0),
    "unknown_engine_ids": (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0),
    "wrong_digests": (1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0),
    "decryption_errors": (1, 3, 6, 1, 6, 3, 15, 1, 1, 6, 0),
}
USM_STAT_NAMES: dict[tuple[int, ...], str] = {oid: name for name, oid in USM_STATS.items()}


@dataclass(frozen=True, slots=True)
class V3Message:
    """The header and security parameters of one SNMPv3 message; the data stays in the packet."""

    msg_id: int
    max_size: int
    flags: int
    security_model: int
    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth_span: tuple[int, int]  # msgAuthenticationParameters in the packet (zeroed for the MAC)
    priv_params: bytes  # the AES salt
    data_at: int  # msgData: the plaintext ScopedPDU's SEQUENCE, or the OCTET STRING of the encrypted one

    @property
    def authenticated(self) -> bool:
        return bool(self.flags & AUTH_FLAG)

    @property
    def private(self) -> bool:
        return bool(self.flags & PRIV_FLAG)

    @property
    def reportable(self) -> bool:
        return bool(self.flags & REPORTABLE_FLAG)


def parse(data: bytes, pos: int, end: int) -> V3Message:
    """Parse from just after msgVersion (3) to ``end``; strict: anything out of shape is BerError.
    The security model and the type of msgData are left to the caller (which may count a bad
    digest before a malformed body): read the body with ``scoped_pdu`` or ``encrypted``."""
    gs, ge = ber.expect(data, pos, end, ber.SEQUENCE)
    msg_id, p = ber.read_int(data, gs, ge)
    max_size, p = ber.read_int(data, p, ge)
    flags_raw, p = ber.read_octets(data, p, ge)
    model, p = ber.read_int(data, p, ge)
    if len(flags_raw) != 1 or p != ge:
        raise BerError("bad msgGlobalData")
    if not 0 <= msg_id <= MAX_INT or not 484 <= max_size <= MAX_INT:
        raise BerError("msgID or msgMaxSize out of range")
    flags = flags_raw[0]
    if flags & PRIV_FLAG and not flags & AUTH_FLAG:
        raise BerError("privacy without authentication")
    ss, se = ber.expect(data, ge, end, ber.OCTET_STRING)
    us, ue = ber.expect(data, ss, se, ber.SEQUENCE)
    engine_id, p = ber.read_octets(data, us, ue)
    boots, p = ber.read_int(data, p, ue)
    etime, p = ber.read_int(data, p, ue)
    user, p = ber.read_octets(data, p, ue)
    auth_s, auth_e = ber.expect(data, p, ue, ber.OCTET_STRING)
    salt, p = ber.read_octets(data, auth_e, ue)
    if p != ue or ue != se:
        raise BerError("bad msgSecurityParameters")
    if not 0 <= boots <= MAX_INT or not 0 <= etime <= MAX_INT:
        raise BerError("engine boots/time out of range")
    _tag, _ds, de = ber.read_tlv(data, se, end)
    if de != end:
        raise BerError("trailing bytes after the scopedPDU")
    return V3Message(msg_id, max_size, flags, model, engine_id, boots, etime, user, (auth_s, auth_e), salt, se)


def digest_ok(data: bytes, msg: V3Message, protocol: str, auth_key: bytes) -> bool:
    """The message's HMAC checks out under ``auth_key`` (RFC 3414 6.3.2 / RFC 7860)."""
    s, e = msg.auth_span
    if e - s != AUTH_PROTOCOLS[protocol][1]:
        return False
    zeroed = data[:s] + bytes(e - s) + data[e:]
    return hmac.compare_digest(mac(auth_key, zeroed, protocol), data[s:e])


def encrypted(data: bytes, msg: V3Message, end: int) -> bytes:
    """The encrypted ScopedPDU of a private message (BerError when msgData is not an OCTET STRING)."""
    if len(msg.priv_params) != 8:
        raise BerError("privParameters: expected an 8-octet salt")
    value, _ = ber.read_octets(data, msg.data_at, end)
    return value


def scoped_pdu(data: bytes, pos: int, end: int) -> tuple[bytes, bytes, int, int]:
    """(contextEngineID, contextName, where the PDU's TLV starts, where the ScopedPDU ends) of the
    ScopedPDU at ``pos`` (``data_at`` of a plaintext message, or 0 in a decrypted one)."""
    ss, se = ber.expect(data, pos, end, ber.SEQUENCE)
    ctx_engine, p = ber.read_octets(data, ss, se)
    ctx_name, p = ber.read_octets(data, p, se)
    return ctx_engine, ctx_name, p, se


def encode(
    *,
    msg_id: int,
    user: bytes,
    scoped: bytes,
    engine_id: bytes,
    boots: int,
    etime: int,
    auth: tuple[str, bytes] | None = None,
    priv_key: bytes | None = None,
    reportable: bool = False,
    max_size: int = 65507,
) -> bytes:
    """A whole SNMPv3 message; ``auth`` = (protocol, localized key) signs it, ``priv_key``
    (16-byte AES key, needs ``auth``) encrypts the ScopedPDU with a fresh random salt."""
    if priv_key is not None and auth is None:
        raise ValueError("privacy needs authentication")
    flags = (AUTH_FLAG if auth else 0) | (PRIV_FLAG if priv_key else 0) | (REPORTABLE_FLAG if reportable else 0)
    salt = b""
    data = scoped
    if priv_key is not None:
        salt = os.urandom(8)
        data = enc_octets(aes_encrypt(priv_key, boots, etime, salt, scoped))
    mac_len = AUTH_PROTOCOLS[auth[0]][1] if auth else 0
    usm_head = enc_octets(engine_id) + enc_int(boots) + enc_int(etime) + enc_octets(user)
    usm_body = usm_head + enc_octets(bytes(mac_len)) + enc_octets(salt)
    usm_seq = tlv(ber.SEQUENCE, usm_body)
    sec = tlv(ber.OCTET_STRING, usm_seq)
    header = enc_seq(enc_int(msg_id), enc_int(max_size), enc_octets(bytes((flags,))), enc_int(USM_SECURITY_MODEL))
    inner = enc_int(3) + header + sec + data
    msg = tlv(ber.SEQUENCE, inner)
    if auth is None:
        return msg
    off = (
        (len(msg) - len(inner))
        + 3  # msgVersion TLV
        + len(header)
        + (len(sec) - len(usm_seq))
        + (len(usm_seq) - len(usm_body))
        + len(usm_head)
        + len(enc_octets(bytes(mac_len)))
        - mac_len  # the authParams OCTET STRING header
    )
    digest = mac(auth[1], msg, auth[0])
    return msg[:off] + digest + msg[off + mac_len :]
