"""SNMPv3 User-based Security Model pieces for the lab agents (RFC 3414, 3826, 7860).

One user, authPriv with HMAC-SHA-256 (usmHMAC192SHA256AuthProtocol: 24-byte MAC) and
AES-128-CFB. Keys: password-to-key with SHA-256 over 1 MiB of the repeated password,
then localized per engine ID. The 16-byte AES key is the first half of the SHA-256
localized privacy key (what net-snmp and pysnmp do for AES-128 with a SHA-2 user).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to the "decrepit" module in cryptography 47+
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

LAB_V3_USER = "labv3"
LAB_V3_AUTH_PASS = "lab-auth-pass"  # noqa: S105 - the lab's published demo credential
LAB_V3_PRIV_PASS = "lab-priv-pass"  # noqa: S105 - the lab's published demo credential
AUTH_PARAM_LEN = 24  # HMAC-SHA-256 truncated to 192 bits (RFC 7860)
TIME_WINDOW_S = 150

# usmStats counters (1.3.6.1.6.3.15.1.1.N.0), used as Report PDU varbinds
USM_STATS = {
    "unsupported_sec_levels": (1, 3, 6, 1, 6, 3, 15, 1, 1, 1, 0),
    "not_in_time_windows": (1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0),
    "unknown_user_names": (1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0),
    "unknown_engine_ids": (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0),
    "wrong_digests": (1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0),
    "decryption_errors": (1, 3, 6, 1, 6, 3, 15, 1, 1, 6, 0),
}


@lru_cache(maxsize=8)
def password_to_key(password: str) -> bytes:
    pw = password.encode()
    if not pw:
        raise ValueError("empty SNMPv3 password")
    reps = (1048576 // len(pw)) + 1
    return hashlib.sha256((pw * reps)[:1048576]).digest()


def localize(ku: bytes, engine_id: bytes) -> bytes:
    return hashlib.sha256(ku + engine_id + ku).digest()


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


def auth_digest(auth_key: bytes, whole_msg: bytes) -> bytes:
    return hmac.new(auth_key, whole_msg, hashlib.sha256).digest()[:AUTH_PARAM_LEN]


def _cipher(priv_key: bytes, boots: int, etime: int, salt: bytes) -> Cipher:
    iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + salt
    return Cipher(algorithms.AES(priv_key), CFB(iv))


def encrypt(priv_key: bytes, boots: int, etime: int, salt: bytes, plain: bytes) -> bytes:
    enc = _cipher(priv_key, boots, etime, salt).encryptor()
    return enc.update(plain) + enc.finalize()


def decrypt(priv_key: bytes, boots: int, etime: int, salt: bytes, data: bytes) -> bytes:
    dec = _cipher(priv_key, boots, etime, salt).decryptor()
    return dec.update(data) + dec.finalize()


def engine_id_for(name: str) -> bytes:
    """RFC 3411 engine ID, format 4 (text), under an example enterprise number (8072)."""
    return bytes((0x80, 0x00, 0x1F, 0x88, 0x04)) + name.encode()[:27]
