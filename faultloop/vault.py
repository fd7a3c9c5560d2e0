"""Secrets at rest: SNMP communities, USM keys, SSH passwords and keys, stored configurations.

Values are Fernet tokens (AES-128-CBC + HMAC-SHA256) under a key list, newest first.
The key comes from ``FAULTLOOP_SECRET_KEY`` or from ``<data_dir>/secret.key``, created
with mode 0600 on first use. Plaintext leaves this module only through ``decrypt`` and
only to the code that talks to a device.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from faultloop.db import make_private_dir
from faultloop.settings import Settings


class VaultError(Exception):
    pass


class Vault:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise VaultError("no secret key configured")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise VaultError("secret key is not a valid Fernet key (32 url-safe base64-encoded bytes)") from None
        self.keys = keys

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise VaultError("stored secret cannot be decrypted with the configured key(s)") from None

    def digest(self, text: str) -> str:
        """HMAC-SHA256 of ``text`` under a key derived from the newest key (hex).

        Equal texts give equal digests under one key, so stored copies can be compared without
        decrypting them, and unlike a plain hash it does not let whoever holds the database
        confirm a guessed configuration (or brute-force a short secret in a known template)."""
        return self._digest(self.keys[0], text)

    def digests(self, text: str) -> set[str]:
        """``text``'s digest under every configured key: a row digested before a new key was put
        in front (and ``secrets rotate`` re-digested it) still compares equal."""
        return {self._digest(k, text) for k in self.keys}

    @staticmethod
    def _digest(key: bytes, text: str) -> str:
        sub = hmac.new(base64.urlsafe_b64decode(key), b"faultloop-digest-v1", hashlib.sha256).digest()
        return hmac.new(sub, text.encode(), hashlib.sha256).hexdigest()

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the newest key (no plaintext is returned)."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise VaultError("stored secret cannot be decrypted with the configured key(s)") from None


def _write_private(path: Path, data: bytes) -> None:
    make_private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_keys(settings: Settings) -> list[bytes]:
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        return [k.strip().encode() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
    path = settings.secret_key_file
    if not path.exists():
        _write_private(path, Fernet.generate_key() + b"\n")
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


def open_vault(settings: Settings) -> Vault:
    return Vault(load_keys(settings))


def key_from_env(settings: Settings) -> bool:
    return settings.secret_key is not None and bool(settings.secret_key.get_secret_value().strip())


def prepend_key_file(settings: Settings) -> list[bytes]:
    """Start a rotation on the key file: a new primary key in front of the old ones."""
    keys = [Fernet.generate_key(), *load_keys(settings)]
    _write_private(settings.secret_key_file, b"\n".join(keys) + b"\n")
    return keys


def finish_key_file(settings: Settings, keys: list[bytes]) -> None:
    """After every row is re-encrypted: keep only the new primary key."""
    _write_private(settings.secret_key_file, keys[0] + b"\n")
