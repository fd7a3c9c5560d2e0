"""The trap receiver's SNMPv3 users (RFC 3414): the users file and the table the
notification decoder (``snmpwire.pdu``) looks users up in.

Traps are unacknowledged notifications: the sender is the authoritative engine, so each
user's keys are localized to the sending engine's ID (``snmpwire.usm.UsmUser``). A user
configured without an engine ID is accepted from any engine (keys localized on first
sight, then cached); with an engine ID, only from that engine. Passwords and keys never
leave the user objects: they are not logged, not put in events, and ``repr`` hides them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from faultloop.errors import ConfigError
from snmpwire.usm import AUTH_PROTOCOLS, PRIV_PROTOCOLS, TIME_WINDOW_S, UsmUser

log = logging.getLogger(__name__)

MAX_BOOTS = 2147483647


class UsmConfigError(ConfigError):
    """The users file is invalid; the message names the file, the entry and the field."""


class UsmUsers:
    """The configured users, looked up by (engine ID, user name) then by user name alone,
    and the receiver's view of each sending engine's boots/time (RFC 3414 3.2 step 7b)."""

    def __init__(self, users: list[UsmUser] | None = None) -> None:
        self._exact: dict[tuple[bytes, bytes], UsmUser] = {}
        self._any: dict[bytes, UsmUser] = {}
        # engine ID -> (latest boots, latest engine time, local time it was received)
        self._engine_time: dict[bytes, tuple[int, int, float]] = {}
        for u in users or []:
            if u.engine_id is None:
                self._any[u.name.encode()] = u
            else:
                self._exact[(u.engine_id, u.name.encode())] = u

    def __len__(self) -> int:
        return len(self._exact) + len(self._any)

    def find(self, engine_id: bytes, user: bytes) -> UsmUser | None:
        return self._exact.get((engine_id, user)) or self._any.get(user)

    def timely(self, engine_id: bytes, boots: int, etime: int, local_s: float) -> bool:
        """Replay protection for authenticated notifications: False when the message is older
        than the engine's boots/time already seen (beyond the 150 s window). Call only after
        the digest checked out, so a forged message cannot move the clock."""
        seen = self._engine_time.get(engine_id)
        if seen is None or boots > seen[0] or (boots == seen[0] and etime > seen[1]):
            if seen is None and len(self._engine_time) >= 65536:
                self._engine_time.clear()
            self._engine_time[engine_id] = (boots, etime, local_s)
            return True
        latest_boots, latest_time, at = seen
        if latest_boots >= MAX_BOOTS or boots < latest_boots:
            return False
        estimated = latest_time + (local_s - at)
        return etime >= estimated - TIME_WINDOW_S


def _engine_id(text: Any) -> bytes:
    s = str(text).strip().lower().removeprefix("0x").replace(":", "")
    raw = bytes.fromhex(s)
    if not 5 <= len(raw) <= 32:
        raise ValueError("an engine ID is 5 to 32 octets")
    return raw


_FIELDS = {"user", "engine_id", "auth_protocol", "auth_password", "priv_protocol", "priv_password"}


def load_users(path: Path) -> UsmUsers:
    """Read a YAML users file: ``users: [{user, engine_id?, auth_protocol, auth_password, priv_protocol?,
    priv_password?}]``. Errors name the file, the entry and the field, never a password."""
    try:
        doc = yaml.safe_load(path.read_text())
        if path.stat().st_mode & 0o077:
            log.warning("%s holds SNMPv3 passwords and is readable by group or others; chmod 600 it", path)
    except OSError as exc:
        raise UsmConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # the YAML error's "problem" line names a position, never the text of the file
        raise UsmConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("users"), list):
        found = type(doc).__name__ if not isinstance(doc, dict) else f"a mapping with keys {sorted(map(str, doc))}"
        raise UsmConfigError(
            f"{path}: expected a mapping with a 'users' list (users: [{{user: ..., auth_protocol: ..., "
            f"auth_password: ...}}]), found {found}"
        )
    users = []
    for i, entry in enumerate(doc["users"], start=1):
        where = f"{path}: users entry {i}"
        if not isinstance(entry, dict):
            raise UsmConfigError(f"{where}: expected a mapping")
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise UsmConfigError(f"{where}: field '{unknown[0]}': unknown field; expected one of {sorted(_FIELDS)}")
        name = entry.get("user")
        if not isinstance(name, str) or not name or len(name) > 32:
            raise UsmConfigError(f"{where}: field 'user': expected a name of 1 to 32 characters")
        where = f"{path}: users entry {i} ({name})"
        engine = None
        if entry.get("engine_id") not in (None, ""):
            try:
                engine = _engine_id(entry["engine_id"])
            except ValueError as exc:
                raise UsmConfigError(f"{where}: field 'engine_id': expected hex octets ({exc})") from None
        auth = entry.get("auth_protocol")
        auth = None if auth in (None, "", "none") else str(auth).upper()
        if auth is not None and auth not in AUTH_PROTOCOLS:
            raise UsmConfigError(f"{where}: field 'auth_protocol': expected one of {', '.join(AUTH_PROTOCOLS)}")
        priv = entry.get("priv_protocol")
        priv = None if priv in (None, "", "none") else str(priv).upper()
        if priv is not None and priv not in PRIV_PROTOCOLS:
            raise UsmConfigError(f"{where}: field 'priv_protocol': expected AES or none")
        if priv and not auth:
            raise UsmConfigError(f"{where}: field 'priv_protocol': privacy needs an auth_protocol")
        secrets = {}
        for kind, enabled in (("auth", auth), ("priv", priv)):
            secret = entry.get(f"{kind}_password")
            if enabled:
                if not isinstance(secret, str) or len(secret) < 8:
                    raise UsmConfigError(f"{where}: field '{kind}_password': expected at least 8 characters")
                secrets[kind] = secret
        user = UsmUser.from_passwords(name, auth, secrets.get("auth", ""), priv, secrets.get("priv", ""), engine)
        users.append(user)
    return UsmUsers(users)
