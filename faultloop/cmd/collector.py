"""The collector role (issue 14): a process at a remote site without a database of its own.

Central publishes, per collector group, the group's device directory (address -> hostname,
ifIndex -> interface name) into the JetStream KV bucket ``<PREFIX>_DIRECTORY``, encrypted with
``FAULTLOOP_COLLECTOR_KEY`` (Fernet): no plaintext on the wire or at rest in JetStream. A collector
reads its group's entry with the same key, runs the trap and syslog receivers against it, and
publishes their events through the on-disk spool (``faultloop.broker``). Its name is claimed in
the KV bucket ``<PREFIX>_MEMBERS`` (``<group>.<name>``, kept alive by heartbeats, expiring after
three missed ones): a second collector with the same name is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from typing import Any

import nats.js.errors
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session, sessionmaker

from collectors.receiver import DeviceDirectory
from faultloop.broker import BrokerError, BrokerLink
from faultloop.settings import Settings
from inventory import queries

log = logging.getLogger("faultloop.collector")

MISSED_HEARTBEATS = 3


def directory_cipher(settings: Settings) -> Fernet:
    key = settings.collector_key.get_secret_value().strip() if settings.collector_key is not None else ""
    if not key:
        raise BrokerError("FAULTLOOP_COLLECTOR_KEY: empty; central and the group's collectors need the same key")
    try:
        return Fernet(key.encode())
    except ValueError:
        raise BrokerError(
            "FAULTLOOP_COLLECTOR_KEY: not a valid Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def collector_name(settings: Settings) -> str:
    return settings.collector_name or socket.gethostname().split(".")[0].replace(".", "_")


def _bucket(settings: Settings, what: str) -> str:
    return f"{settings.nats_stream_prefix}_{what}".upper().replace("-", "_")


async def _kv(link: BrokerLink, bucket: str, *, ttl: float | None = None) -> Any:
    js = link.jetstream()
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(bucket=bucket, history=1, ttl=ttl)


def encode_directory(cipher: Fernet, devices: list[tuple[str, str]], interfaces: list[tuple[str, int, str]]) -> bytes:
    doc = {"devices": sorted(devices), "interfaces": sorted(interfaces)}
    return cipher.encrypt(json.dumps(doc, separators=(",", ":")).encode())


class DirectoryPublisher:
    """Central: each group's directory into the KV bucket, at start and every refresh interval."""

    name = "collector directory"

    def __init__(self, link: BrokerLink, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.link = link
        self.sessions = sessions
        self.settings = settings
        self.cipher = directory_cipher(settings)
        self.published: dict[str, bytes] = {}  # group -> plaintext last put (to skip unchanged ones)
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, int, str]]]]:
        with self.sessions() as session:
            return {
                g: (
                    queries.device_addresses(session, collector_group=g),
                    queries.interface_names(session, collector_group=g),
                )
                for g in queries.collector_groups(session)
            }

    async def publish_once(self) -> int:
        groups = await asyncio.to_thread(self._load)
        kv = await _kv(self.link, _bucket(self.settings, "directory"))
        changed = 0
        for group, (devices, interfaces) in groups.items():
            plain = json.dumps([sorted(devices), sorted(interfaces)]).encode()
            if self.published.get(group) == plain:
                continue
            await kv.put(group, encode_directory(self.cipher, devices, interfaces))
            self.published[group] = plain
            changed += 1
        return changed

    async def _run(self) -> None:
        while True:
            try:
                if await self.link.wait_connected(self.settings.receiver_directory_refresh_s):
                    await self.publish_once()
            except Exception as exc:
                log.warning("collector directory not published: %s", type(exc).__name__)
            await asyncio.sleep(self.settings.receiver_directory_refresh_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="collector-directory")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class RemoteDirectory(DeviceDirectory):
    """The collector's directory: central's encrypted entry for this group, refreshed."""

    name = "device directory (from central)"

    def __init__(self, link: BrokerLink, settings: Settings) -> None:
        super().__init__(None, refresh_s=settings.receiver_directory_refresh_s)
        self.link = link
        self.settings = settings
        self.cipher = directory_cipher(settings)
        self._revision: int | None = None

    async def fetch(self) -> bool:
        """Read and apply the group's entry; False when central has published none yet.
        A wrong key is a ``BrokerError`` naming FAULTLOOP_COLLECTOR_KEY."""
        kv = await _kv(self.link, _bucket(self.settings, "directory"))
        try:
            entry = await kv.get(self.settings.collector_group)
        except nats.js.errors.KeyNotFoundError:
            return False
        if entry.revision == self._revision or entry.value is None:
            return True
        try:
            doc = json.loads(self.cipher.decrypt(entry.value))
        except InvalidToken:
            raise BrokerError(
                f"FAULTLOOP_COLLECTOR_KEY: cannot decrypt the device directory central published for group "
                f"{self.settings.collector_group!r}: not the key central uses"
            ) from None
        by_address: dict[str, str] = {}
        for hostname, address in doc["devices"]:
            by_address.setdefault(address, hostname)
        self.by_address = by_address
        self.hostnames = {h for h, _a in doc["devices"]}
        self.interfaces = {(h, int(i)): n for h, i, n in doc["interfaces"]}
        self._revision = entry.revision
        log.info("device directory of group %s: %d devices", self.settings.collector_group, len(self.hostnames))
        return True

    async def start(self) -> None:
        if self.link.connected:
            await self.fetch()  # a wrong key stops the start here
        self._task = asyncio.create_task(self._follow(), name="remote directory")

    async def _follow(self) -> None:
        while True:
            try:
                if await self.link.wait_connected(self.refresh_s):
                    await self.fetch()
            except BrokerError as exc:
                log.error("%s", exc)
            except Exception as exc:
                log.warning("device directory refresh failed: %s", type(exc).__name__)
            await asyncio.sleep(self.refresh_s)


class Membership:
    """This collector's name in its group: claimed once, kept by heartbeats, released on stop."""

    name = "collector membership"

    def __init__(self, link: BrokerLink, settings: Settings) -> None:
        self.link = link
        self.settings = settings
        self.key = f"{settings.collector_group}.{collector_name(settings)}"
        self.instance = uuid.uuid4().hex.encode()
        self.claimed = False
        self._revision = 0
        self._task: asyncio.Task[None] | None = None

    def _ttl(self) -> float:
        return self.settings.collector_heartbeat_s * MISSED_HEARTBEATS

    async def claim(self) -> None:
        kv = await _kv(self.link, _bucket(self.settings, "members"), ttl=self._ttl())
        try:
            self._revision = await kv.create(self.key, self.instance)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise BrokerError(
                f"FAULTLOOP_COLLECTOR_NAME: a collector named {collector_name(self.settings)!r} is already "
                f"running in group {self.settings.collector_group!r}"
            ) from None
        self.claimed = True

    async def start(self) -> None:
        if self.link.connected:
            await self.claim()  # a name already taken stops the start here
        self._task = asyncio.create_task(self._beat(), name="collector heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.collector_heartbeat_s)
            try:
                if not self.link.connected:
                    continue
                if not self.claimed:
                    await self.claim()
                    continue
                kv = await _kv(self.link, _bucket(self.settings, "members"), ttl=self._ttl())
                self._revision = await kv.update(self.key, self.instance, last=self._revision)
            except BrokerError as exc:
                log.error("%s", exc)
            except Exception as exc:  # our entry expired (a long outage): claim it again
                log.warning("collector heartbeat failed: %s", type(exc).__name__)
                self.claimed = False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.claimed and self.link.connected:
            with contextlib.suppress(Exception):
                kv = await _kv(self.link, _bucket(self.settings, "members"), ttl=self._ttl())
                await kv.delete(self.key)
        self.claimed = False
