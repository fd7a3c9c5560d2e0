"""The lab agents' SNMPv3 user (RFC 3414, 3826, 7860) and engine IDs.

One user, authPriv with HMAC-SHA-256 (usmHMAC192SHA256AuthProtocol: 24-byte MAC) and
AES-128-CFB. Keys: password-to-key with SHA-256 over 1 MiB of the repeated password,
then localized per engine ID (``snmpwire.usm.UsmUser``). The 16-byte AES key is the
first half of the SHA-256 localized privacy key (what net-snmp and pysnmp do for AES-128
with a SHA-2 user).
"""

from __future__ import annotations

from snmpwire.usm import UsmUser

LAB_V3_USER = "labv3"
LAB_V3_AUTH_PASS = "lab-auth-pass"  # noqa: S105 - the lab's published demo credential
LAB_V3_PRIV_PASS = "lab-priv-pass"  # noqa: S105 - the lab's published demo credential
AUTH_PROTOCOL = "SHA-256"  # usmHMAC192SHA256AuthProtocol: a 24-byte MAC (RFC 7860)


def lab_user() -> UsmUser:
    return UsmUser.from_passwords(LAB_V3_USER, AUTH_PROTOCOL, LAB_V3_AUTH_PASS, "AES", LAB_V3_PRIV_PASS)


def engine_id_for(name: str) -> bytes:
    """RFC 3411 engine ID, format 4 (text), under an example enterprise number (8072)."""
    return bytes((0x80, 0x00, 0x1F, 0x88, 0x04)) + name.encode()[:27]
