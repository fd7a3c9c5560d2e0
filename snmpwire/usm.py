"""SNMPv3 User-based Security Model primitives (RFC 3414, 3826, 7860), shared by the lab's
agents and the trap receiver: password-to-key, key localization, truncated HMACs and
AES-128-CFB. Callers keep keys out of logs, events and reprs."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to the "decrepit" module in cryptography 47+
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB  # type: ignore[no-redef,attr-defined]

# protocol name -> (hash name, length of the truncated MAC in msgAuthenticationParameters)
AUTH_PROTOCOLS: dict[str, tuple[str, int]] = {
    "MD5": ("md5", 12),
    "SHA": ("sha1", 12),
    "SHA-224": ("sha224", 16),
    "SHA-256": ("sha256", 24),
    "SHA-384": ("sha384", 32),
    "SHA-512": ("sha512", 48),
}
TIME_WINDOW_S = 150  # RFC 3414 3.2 step 7


@lru_cache(maxsize=64)
def password_to_key(password: str, hash_name: str = "sha256") -> bytes:
    """RFC 3414 A.2: hash 1 MiB of the repeated password (cached: it costs milliseconds)."""
    pw = password.encode()
    if not pw:
        raise ValueError("empty SNMPv3 password")
    reps = (1048576 // len(pw)) + 1
    return hashlib.new(hash_name, (pw * reps)[:1048576]).digest()


def localize(ku: bytes, engine_id: bytes, hash_name: str = "sha256") -> bytes:
    return hashlib.new(hash_name, ku + engine_id + ku).digest()


def mac(auth_key: bytes, whole_msg: bytes, protocol: str) -> bytes:
    hash_name, length = AUTH_PROTOCOLS[protocol]
    return hmac.new(auth_key, whole_msg, hash_name).digest()[:length]


def _aes_cfb(priv_key: bytes, boots: int, etime: int, salt: bytes) -> Cipher:
    iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + salt  # RFC 3826 3.1.2.1
    return Cipher(algorithms.AES(priv_key), CFB(iv))


def aes_encrypt(priv_key: bytes, boots: int, etime: int, salt: bytes, plain: bytes) -> bytes:
    enc = _aes_cfb(priv_key, boots, etime, salt).encryptor()
    return enc.update(plain) + enc.finalize()


def aes_decrypt(priv_key: bytes, boots: int, etime: int, salt: bytes, data: bytes) -> bytes:
    dec = _aes_cfb(priv_key, boots, etime, salt).decryptor()
    return dec.update(data) + dec.finalize()
