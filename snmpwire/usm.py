"""SNMPv3 User-based Security Model (RFC 3414, 3826, 7860): password-to-key, key
localization, truncated HMACs, AES-128-CFB and the user whose keys they make. The one
home of this cryptography for the poller, the trap receiver and the lab's agents.
Keys never appear in a repr, an exception message or a log line.

Supported: HMAC-MD5-96, HMAC-SHA-96, HMAC-SHA-2 (224/256/384/512, RFC 7860) and
AES-128-CFB (RFC 3826). DES and the non-standard AES-192/256 key extensions are not.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

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
PRIV_PROTOCOLS = ("AES",)  # AES-128-CFB
TIME_WINDOW_S = 150  # RFC 3414 3.2 step 7
MAX_LOCALIZED_ENGINES = 4096  # per user: bounds memory against engine-ID spraying


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


@dataclass(eq=False)
class UsmUser:
    """One USM user: its protocols and its keys (Ku, from the passwords), localized per engine
    on first use and cached. ``engine_id`` binds the user to one engine (None: any)."""

    name: str
    auth_protocol: str | None = None
    priv_protocol: str | None = None
    engine_id: bytes | None = None
    _auth_ku: bytes = field(default=b"", repr=False)
    _priv_ku: bytes = field(default=b"", repr=False)
    _localized: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_passwords(
        cls,
        name: str,
        auth_protocol: str | None,
        auth_password: str,
        priv_protocol: str | None = None,
        priv_password: str = "",
        engine_id: bytes | None = None,
    ) -> UsmUser:
        """``auth_protocol`` one of AUTH_PROTOCOLS, ``priv_protocol`` one of PRIV_PROTOCOLS (callers
        check their configuration first, naming its fields); ValueError for privacy without
        authentication or an empty password."""
        if priv_protocol is not None and auth_protocol is None:
            raise ValueError("privacy needs authentication")
        hash_name = AUTH_PROTOCOLS[auth_protocol][0] if auth_protocol else ""
        auth_ku = password_to_key(auth_password, hash_name) if auth_protocol else b""
        priv_ku = password_to_key(priv_password, hash_name) if priv_protocol else b""
        return cls(name, auth_protocol, priv_protocol, engine_id, auth_ku, priv_ku)

    @property
    def mac_length(self) -> int:
        return AUTH_PROTOCOLS[self.auth_protocol][1] if self.auth_protocol else 0

    def keys(self, engine_id: bytes) -> tuple[bytes, bytes]:
        """(auth key, 16-byte AES key) localized to ``engine_id`` (RFC 3414 2.6; AES-128 takes the
        first 16 octets of the localized privacy key, as net-snmp and pysnmp do); b"" when unused."""
        k = self._localized.get(engine_id)
        if k is None:
            auth = priv = b""
            if self.auth_protocol:
                hash_name = AUTH_PROTOCOLS[self.auth_protocol][0]
                auth = localize(self._auth_ku, engine_id, hash_name)
                if self._priv_ku:
                    priv = localize(self._priv_ku, engine_id, hash_name)[:16]
            if len(self._localized) >= MAX_LOCALIZED_ENGINES:
                self._localized.clear()
            k = self._localized[engine_id] = (auth, priv)
        return k


class UserTable(Protocol):
    """What a notification receiver knows of its users and of the engines sending to it."""

    def find(self, engine_id: bytes, user: bytes) -> UsmUser | None: ...

    def timely(self, engine_id: bytes, boots: int, etime: int, local_s: float) -> bool:
        """False when an authentic message is older than the sender's boots/time already seen
        (RFC 3414 3.2 step 7b)."""
        ...
