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
import contextlib
import hashlib
import random
import socket
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

from collectors import snmp_ber

Oid = tuple[int, ...]
Value = int | bytes | Oid | None  # None: noSuchObject / noSuchInstance
Rows = list[tuple[Oid, Any]]  # (oid, Value or END_OF_MIB)


RECV_BUFFER = 8 * 1024 * 1024


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


EndOfMib = snmp_ber.EndOfMibView
END_OF_MIB = snmp_ber.END_OF_MIB_VIEW_VALUE


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


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _CommunityProtocol(asyncio.DatagramProtocol):
    """Responses to community requests, matched by request id, source address and community."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[asyncio.Future[Any], tuple[str, int], bytes]] = {}
        self.dropped = 0  # malformed, unsolicited, late or spoofed datagrams

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            _version, community, request_id, status, index, varbinds = snmp_ber.decode_response(data)
        except (snmp_ber.BerError, ValueError):
            self.dropped += 1
            return
        entry = self.pending.get(request_id)
        if entry is None or entry[1] != (addr[0], addr[1]) or entry[2] != community or entry[0].done():
            self.dropped += 1
            return
        entry[0].set_result((status, index, varbinds))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.: the request times out
        pass


class SnmpClient:
    """One engine for the whole process: every request goes through it.

    v1/v2c: one UDP socket and the strict codec in ``snmp_ber`` (no pyasn1 on the hot
    path). v3: one long-lived pysnmp engine (USM discovery, auth, privacy). Pass
    ``community_fast_path=False`` to send community requests through pysnmp as well.
    """

    def __init__(self, *, community_fast_path: bool = True) -> None:
        self.engine = SnmpEngine()
        self.community_fast_path = community_fast_path
        self._lcd = CommandGeneratorLcdConfigurator()
        self._targets: dict[tuple[Any, ...], str] = {}
        self._gens = {
            "get": cmdgen.GetCommandGenerator(),
            "next": cmdgen.NextCommandGenerator(),
            "bulk": cmdgen.BulkCommandGenerator(),
        }
        self._udp: asyncio.DatagramTransport | None = None
        self._proto: _CommunityProtocol | None = None
        self._request_id = random.randint(1, 2**30)

    @property
    def dropped_datagrams(self) -> int:
        return self._proto.dropped if self._proto is not None else 0

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
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def _request(self, t: SnmpTarget, kind: str, oids: Sequence[Oid], a: int = 0, b: int = 0) -> Rows:
        if t.version in ("v1", "v2c") and self.community_fast_path:
            return await self._community_request(t, kind, oids, a, b)
        if t.version not in ("v1", "v2c", "v3"):
            raise SnmpConfigError(f"snmp_version: expected v1, v2c or v3, got {t.version!r}")
        return await self._pysnmp_request(t, kind, oids, a, b)

    async def _community_request(self, t: SnmpTarget, kind: str, oids: Sequence[Oid], a: int, b: int) -> Rows:
        loop = asyncio.get_running_loop()
        if self._udp is None or self._proto is None:
            self._udp, self._proto = await loop.create_datagram_endpoint(_CommunityProtocol, family=socket.AF_INET)
            # Hundreds of GETBULK answers (~10 kB each) can arrive at once on this one socket;
            # the default 208 kB buffer would drop them (seen as timeouts). The kernel caps this.
            with contextlib.suppress(OSError):
                self._udp.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        proto, udp = self._proto, self._udp
        tag = {"get": snmp_ber.GET, "next": snmp_ber.GETNEXT, "bulk": snmp_ber.GETBULK}[kind]
        version = 0 if t.version == "v1" else 1
        community = t.community.encode()
        addr = (t.host, t.port)
        for _attempt in range(t.retries + 1):
            self._request_id = self._request_id % (2**31 - 1) + 1
            request_id = self._request_id
            future: asyncio.Future[Any] = loop.create_future()
            proto.pending[request_id] = (future, addr, community)
            timer = loop.call_later(t.timeout_s, _expire, future)
            try:
                udp.sendto(snmp_ber.encode_request(version, community, tag, request_id, oids, a, b), addr)
                status, index, varbinds = await future
            except TimeoutError:
                continue
            finally:
                timer.cancel()
                proto.pending.pop(request_id, None)
            if status:
                name = snmp_ber.ERROR_STATUS.get(status, str(status))
                raise SnmpError(f"agent error {name} at index {index}")
            return varbinds
        raise SnmpError("No SNMP response received before timeout", timeout=True)

    async def _pysnmp_request(self, t: SnmpTarget, kind: str, oids: Sequence[Oid], a: int, b: int) -> Rows:
        name = await self._target_name(t)
        future: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()

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

        varbinds = [(ObjectIdentifier(o), Null("")) for o in oids]
        args: tuple[Any, ...] = (a, b, varbinds) if kind == "bulk" else (varbinds,)
        self._gens[kind].send_varbinds(self.engine, name, None, b"", *args, done, None)
        return await future

    async def get(self, t: SnmpTarget, oids: Sequence[Oid]) -> dict[Oid, Value]:
        rows = await self._request(t, "get", oids)
        return {oid: (None if isinstance(v, EndOfMib) else v) for oid, v in rows}

    async def walk(
        self, t: SnmpTarget, roots: Sequence[Oid], *, max_repetitions: int = 25, scalars: Sequence[Oid] = ()
    ) -> dict[Oid, Value]:
        """Walk every subtree in ``roots`` at once: one repeater per still-open subtree.

        ``max_repetitions`` is the varbind budget of one request, shared by the open
        subtrees (at least 2 rows each). ``scalars`` (instance OIDs such as sysUpTime.0)
        ride along as non-repeaters of the first request, so a small device answers a
        whole collection set in one round trip.
        """
        result: dict[Oid, Value] = {}
        cursor = {root: root for root in roots}
        if t.version == "v1":
            if scalars:
                result.update(await self.get(t, scalars))
            for root in roots:
                result.update(await self._walk_v1(t, root))
            return result
        pending_scalars = list(scalars)
        while cursor or pending_scalars:
            active = list(cursor)
            reps = max(2, max_repetitions // len(active)) if len(active) > 1 else max_repetitions
            non_rep = len(pending_scalars)
            # a non-repeater is a GETNEXT: ask for the object, get its .0 instance back
            request = [o[:-1] for o in pending_scalars] + [cursor[r] for r in active]
            rows = await self._request(t, "bulk", request, non_rep, reps)
            for want, (oid, value) in zip(pending_scalars, rows[:non_rep], strict=False):
                if oid == want and not isinstance(value, EndOfMib):
                    result[oid] = value
            pending_scalars = []
            rows = rows[non_rep:]
            if not rows or not active:
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
                rows = await self._request(t, "next", [cursor])
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
