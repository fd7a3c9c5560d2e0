"""SNMPv3 User-based Security Model pieces for the lab agents (RFC 3414, 3826, 7860).

One user, authPriv with HMAC-SHA-256 (usmHMAC192SHA256AuthProtocol: 24-byte MAC) and
AES-128-CFB. Keys: password-to-key with SHA-256 over 1 MiB of the repeated password,
then localized per engine ID. The 16-byte AES key is the first half of the SHA-256
localized privacy key (what net-snmp and pysnmp do for AES-128 with a SHA-2 user).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snmpwire.usm import TIME_WINDOW_S, aes_decrypt, localize, password_to_key  # noqa: F401
from snmpwire.v3 import USM_STATS  # noqa: F401 - the agent's counters are these

LAB_V3_USER = "labv3"
LAB_V3_AUTH_PASS = "lab-auth-pass"  # noqa: S105 - the lab's published demo credential
LAB_V3_PRIV_PASS = "lab-priv-pass"  # noqa: S105 - the lab's published demo credential
AUTH_PROTOCOL = "SHA-256"  # usmHMAC192SHA256AuthProtocol: a 24-byte MAC (RFC 7860)


@dataclass
class UsmUser:
    name: str = LAB_V3_USER
    auth_pass: str = LAB_V3_AUTH_PASS
    priv_pass: str = LAB_V3_PRIV_PASS
    _keys: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)

    def keys(self, engine_id: bytes) -> tuple[bytes, bytes]:
        """(auth key, 16-byte AES key) localized to ``engine_id``; cached."""
        k = self._keys.get(engine_id)
        if k is None:
            auth = localize(password_to_key(self.auth_pass), engine_id)
            priv = localize(password_to_key(self.priv_pass), engine_id)[:16]
            k = self._keys[engine_id] = (auth, priv)
        return k


def engine_id_for(name: str) -> bytes:
    """RFC 3411 engine ID, format 4 (text), under an example enterprise number (8072)."""
    return bytes((0x80, 0x00, 0x1F, 0x88, 0x04)) + name.encode()[:27]
