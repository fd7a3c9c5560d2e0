"""The SNMP adapter: one long-lived pysnmp 7 engine, numeric OIDs, GETBULK walks.

pysnmp's high-level API resolves every varbind through the MIB layer (ObjectType /
ObjectIdentity) and re-runs the local configuration per call. Here the engine, its UDP
transport and each target's configuration are made once; requests go straight to the
rfc3413 command generators with numeric OIDs and ``Null`` values, and responses are
turned into plain Python values (int, bytes, OID tuple) without MIB lookups. Several
table columns are walked in one GETBULK (one repeater per column), which cuts the
number of round trips for a collection set to a handful per device.

Credentials are passed in already decrypted, right before the request; they are kept
only inside pysnmp's engine configuration and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyasn1.type.univ import Null, ObjectIdentifier
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio import auth as hl_auth
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.hlapi.v3arch.asyncio.transport import UdpTransportTarget
from pysnmp.proto import rfc1902, rfc1905

Oid = tuple[int, ...]
Value = int | bytes | Oid | None  # None: noSuchObject / noSuchInstance


class SnmpError(Exception):
    """A request failed as a whole (timeout, authentication, agent error)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class SnmpConfigError(ValueError):
    """The device's SNMP settings cannot be used (unknown or refused weak protocol)."""


AUTH_PROTOCOLS: dict[str, Any] = {
    "MD5": hl_auth.USM_AUTH_HMAC96_MD5,
    "SHA": hl_auth.USM_AUTH_HMAC96_SHA,
    "SHA-1": hl_auth.USM_AUTH_HMAC96_SHA,
    "SHA-224": hl_auth.USM_AUTH_HMAC128_SHA224,
    "SHA-256": hl_auth.USM_AUTH_HMAC192_SHA256,
    "SHA-384": hl_auth.USM_AUTH_HMAC256_SHA384,
    "SHA-512": hl_auth.USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS: dict[str, Any] = {
    "DES": hl_auth.USM_PRIV_CBC56_DES,
    "AES": hl_auth.USM_PRIV_CFB128_AES,
    "AES-128": hl_auth.USM_PRIV_CFB128_AES,
    "AES128": hl_auth.USM_PRIV_CFB128_AES,
    "AES-192": hl_auth.USM_PRIV_CFB192_AES,
    "AES192": hl_auth.USM_PRIV_CFB192_AES,
    "AES-256": hl_auth.USM_PRIV_CFB256_AES,
    "AES256": hl_auth.USM_PRIV_CFB256_AES,
}
WEAK = {"MD5", "DES"}


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    """Where and how to ask one device. Secrets are plaintext here: build it right before use."""

    host: str
    port: int = 161
    version: str = "v2c"  # v1 | v2c | v3
    community: str = ""
    user: str = ""
    auth_protocol: str | None = None
    auth_key: str = ""
    priv_protocol: str | None = None
    priv_key: str = ""
    allow_weak: bool = False
    timeout_s: float = 2.0
    retries: int = 1

    def __repr__(self) -> str:  # never show a secret
        return f"SnmpTarget({self.host}:{self.port} {self.version})"


def _auth_data(t: SnmpTarget) -> Any:
    if t.version in ("v1", "v2c"):
        # A community index per secret (hashed, so the secret never becomes a name).
        index = "c" + hashlib.sha256(f"{t.version}:{t.community}".encode()).hexdigest()[:16]
        return hl_auth.CommunityData(index, t.community, mpModel=0 if t.version == "v1" else 1)
    if t.version != "v3":
        raise SnmpConfigError(f"snmp_version: expected v1, v2c or v3, got {t.version!r}")
    if not t.user:
        raise SnmpConfigError("snmp_user: required for SNMPv3")
    auth = (t.auth_protocol or "").upper() or None
    priv = (t.priv_protocol or "").upper() or None
    for proto in (auth, priv):
        if proto in WEAK and not t.allow_weak:
            raise SnmpConfigError(f"{proto} is refused unless the device has snmp_allow_weak")
    if auth is not None and auth not in AUTH_PROTOCOLS:
        raise SnmpConfigError(f"snmp_auth_protocol: unknown {auth!r}")
    if priv is not None and priv not in PRIV_PROTOCOLS:
        raise SnmpConfigError(f"snmp_priv_protocol: unknown {priv!r}")
    kwargs: dict[str, Any] = {}
    if auth:
        kwargs["authKey"] = t.auth_key
        kwargs["authProtocol"] = AUTH_PROTOCOLS[auth]
    if priv:
        kwargs["privKey"] = t.priv_key
        kwargs["privProtocol"] = PRIV_PROTOCOLS[priv]
    return hl_auth.UsmUserData(t.user, **kwargs)  # noqa: S509 - the security level is the inventory's choice


_NO_VALUE = (rfc1905.NoSuchObject.tagSet, rfc1905.NoSuchInstance.tagSet)
_END = rfc1905.EndOfMibView.tagSet
_OCTETS = (rfc1902.OctetString.tagSet, rfc1902.IpAddress.tagSet, rfc1902.Opaque.tagSet)
_OID = ObjectIdentifier.tagSet


class EndOfMib:
    pass


END_OF_MIB = EndOfMib()


def to_python(value: Any) -> Value | EndOfMib:
    tag = value.tagSet
    if tag in _OCTETS:
        return bytes(value.asOctets())
    if tag == _OID:
        return tuple(value.asTuple())
    if tag == _END:
        return END_OF_MIB
    if tag in _NO_VALUE:
        return None
    return int(value)


def parse_oid(text: str) -> Oid:
    return tuple(int(x) for x in text.strip(".").split("."))


def oid_str(oid: Oid) -> str:
    return ".".join(map(str, oid))


class SnmpClient:
    """One pysnmp engine for the whole process; every request goes through it."""

    def __init__(self) -> None:
        self.engine = SnmpEngine()
        self._lcd = CommandGeneratorLcdConfigurator()
        self._targets: dict[tuple[Any, ...], str] = {}
        self._get = cmdgen.GetCommandGenerator()
        self._bulk = cmdgen.BulkCommandGenerator()
        self._next = cmdgen.NextCommandGenerator()

    async def _target_name(self, t: SnmpTarget) -> str:
        key = (
            t.host,
            t.port,
            t.version,
            hashlib.sha256(
                "\0".join(
                    [t.community, t.user, t.auth_protocol or "", t.auth_key, t.priv_protocol or "", t.priv_key]
                ).encode()
            ).digest(),
            t.timeout_s,
            t.retries,
        )
        name = self._targets.get(key)
        if name is None:
            auth = _auth_data(t)
            transport = await UdpTransportTarget.create((t.host, t.port), timeout=t.timeout_s, retries=t.retries)
            name, _params = self._lcd.configure(self.engine, auth, transport, b"")
            self._targets[key] = name
        return name

    def close(self) -> None:
        self.engine.close_dispatcher()

    async def _request(self, gen: Any, t: SnmpTarget, *args: Any) -> list[tuple[Oid, Value | EndOfMib]]:
        name = await self._target_name(t)
        future: asyncio.Future[list[tuple[Oid, Value | EndOfMib]]] = asyncio.get_running_loop().create_future()

        def done(_engine: Any, _handle: Any, error: Any, status: Any, index: Any, var_binds: Any, _ctx: Any) -> None:
            if future.done():
                return
            if error:
                text = str(error)
                future.set_exception(SnmpError(text, timeout="timeout" in text.lower()))
                return
            if status and int(status):
                future.set_exception(SnmpError(f"agent error {status.prettyPrint()} at index {int(index)}"))
                return
            try:
                future.set_result([(tuple(n.asTuple()), to_python(v)) for n, v in var_binds])
            except Exception as exc:  # a value pyasn1 could not turn into Python
                future.set_exception(SnmpError(f"bad response: {type(exc).__name__}"))

        gen.send_varbinds(self.engine, name, None, b"", *args, done, None)
        return await future

    async def get(self, t: SnmpTarget, oids: Sequence[Oid]) -> dict[Oid, Value]:
        rows = await self._request(self._get, t, [(ObjectIdentifier(o), Null("")) for o in oids])
        return {oid: (None if isinstance(v, EndOfMib) else v) for oid, v in rows}

    async def walk(self, t: SnmpTarget, roots: Sequence[Oid], *, max_repetitions: int = 25) -> dict[Oid, Value]:
        """Walk every subtree in ``roots`` at once: one repeater per still-open subtree."""
        result: dict[Oid, Value] = {}
        cursor = {root: root for root in roots}
        if t.version == "v1":
            for root in roots:
                result.update(await self._walk_v1(t, root))
            return result
        while cursor:
            active = list(cursor)
            varbinds = [(ObjectIdentifier(cursor[r]), Null("")) for r in active]
            reps = max(1, max_repetitions // len(active)) if len(active) > 1 else max_repetitions
            rows = await self._request(self._bulk, t, 0, reps, varbinds)
            if not rows:
                break
            closed: set[Oid] = set()
            progressed = False
            for i, (oid, value) in enumerate(rows):
                root = active[i % len(active)]
                if root in closed:
                    continue
                n = len(root)
                if isinstance(value, EndOfMib) or oid[:n] != root or oid <= cursor[root]:
                    closed.add(root)
                    continue
                result[oid] = value
                cursor[root] = oid
                progressed = True
            for root in closed:
                cursor.pop(root, None)
            if not progressed and not closed:
                break
        return result

    async def _walk_v1(self, t: SnmpTarget, root: Oid) -> dict[Oid, Value]:
        # SNMPv1 has no GETBULK and ends a walk with a noSuchName error: one GETNEXT per step.
        result: dict[Oid, Value] = {}
        cursor = root
        while True:
            try:
                rows = await self._request(self._next, t, [(ObjectIdentifier(cursor), Null(""))])
            except SnmpError as exc:
                if exc.timeout or "noSuchName" not in str(exc):
                    raise
                return result
            if not rows:
                return result
            oid, value = rows[0]
            if isinstance(value, EndOfMib) or oid[: len(root)] != root or oid <= cursor:
                return result
            result[oid] = value
            cursor = oid
