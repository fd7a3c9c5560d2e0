"""The collector role (issue 14): a process at a remote site without a database of its own.

Central publishes, per collector group, the group's device directory (address -> hostname,
ifIndex -> interface name, the SNMP poll entries, the SSH entries with their pinned host keys;
secrets as tokens under the collector key) into the JetStream KV bucket ``<PREFIX>_DIRECTORY``, encrypted with
``FAULTLOOP_COLLECTOR_KEY`` (Fernet): no plaintext on the wire or at rest in JetStream. A collector
reads its group's entry with the same key, runs the trap and syslog receivers against it, and
publishes their events through the on-disk spool (``faultloop.broker``). Its name is claimed in
the KV bucket ``<PREFIX>_MEMBERS`` (``<group>.<name>``, kept alive by heartbeats, expiring after
three missed ones): a second collector with the same name is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import nats.errors
import nats.js.errors
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session, sessionmaker

from collectors.jobs import PolledDevice, polled_devices
from collectors.receiver import DeviceDirectory
from collectors.remote_ssh import SshDevice, ssh_device, ssh_entry, ssh_records
from devices.hostkeys import OfferedKey
from faultloop.broker import BrokerError, BrokerLink
from faultloop.settings import Settings
from faultloop.vault import Vault, VaultError
from faultloop.worker import stop_task
from inventory import queries
from inventory.queries import DeviceRecord

log = logging.getLogger("faultloop.collector")

READ_QUIET_S = 2.0  # a member list read ends after this long without an entry (see read_members)

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


def collector_secrets(settings: Settings) -> Vault:
    """The collector's decryptor of the SNMP secrets in its directory (the collector key)."""
    directory_cipher(settings)  # names the setting when it is empty or not a key
    assert settings.collector_key is not None
    return Vault([settings.collector_key.get_secret_value().strip().encode()])


def served_by_collectors(settings: Settings) -> Callable[[str], bool] | None:
    """Which collector groups' SSH work (config backups, CLI collection, on-demand backups) the
    collectors do, so central never opens SSH sessions to them: with a broker and a collector key
    (central publishes the group directories), every group but ``default``. The ``default`` group
    stays with the process of role ``all``; role ``central`` schedules no SSH work at all. None:
    no collectors, everything is local."""
    if not settings.nats_url or settings.collector_key is None:
        return None
    return lambda group: group != "default"


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


_GroupData = tuple[
    list[tuple[str, str]], list[tuple[str, int, str]], list[PolledDevice], list[tuple[DeviceRecord, OfferedKey | None]]
]

SECRET_FIELDS = ("snmp_community_enc", "snmp_auth_key_enc", "snmp_priv_key_enc")
POLL_FIELDS = (
    "id", "hostname", "site", "interval_s", "timeout_s", "retries", "address", "snmp_version", "snmp_port",
    "snmp_user", "snmp_auth_protocol", "snmp_priv_protocol", "snmp_allow_weak", *SECRET_FIELDS,
)  # fmt: skip


def encode_directory(
    cipher: Fernet,
    devices: list[tuple[str, str]],
    interfaces: list[tuple[str, int, str]],
    poll: list[dict[str, Any]] | None = None,
    ssh: list[dict[str, Any]] | None = None,
) -> bytes:
    """The group's entry: sorted JSON encrypted with the collector key. ``poll`` entries carry
    their SNMP secrets, ``ssh`` entries their SSH password / private key (and central's pinned host
    key) as Fernet tokens under that key too (decrypted only right before a request or session)."""
    doc = {"devices": sorted(devices), "interfaces": sorted(interfaces), "poll": poll or [], "ssh": ssh or []}
    return cipher.encrypt(json.dumps(doc, separators=(",", ":")).encode())


# A group's entry larger than one message (NATS's max_payload, 1 MB by default: a few thousand
# devices) is split: its chunks go under ``<group>.<n>`` and the key ``<group>`` holds a manifest
# (plain JSON: chunk count, size and SHA-256 of the whole encrypted entry; no secret in it). A
# reader assembles the chunks and checks the digest, so a set read while central rewrites it is
# refused and read again, never applied half old, half new. A group that fits keeps one value.
MANIFEST_VERSION = 2
PAYLOAD_HEADROOM = 4096  # of max_payload, for the subject and headers of a KV put
MANIFEST_RETRIES = 3


def chunk_size(max_payload: int) -> int:
    return max(1024, max_payload - PAYLOAD_HEADROOM)


def _manifest(value: bytes | None) -> dict[str, Any] | None:
    """The manifest of a chunked entry; None for a one-value entry (a Fernet token)."""
    if not value or not value.startswith(b"{"):
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("v") != MANIFEST_VERSION:
        return None
    if not isinstance(doc.get("chunks"), int) or not isinstance(doc.get("sha256"), str):
        return None
    return doc


async def _chunk_count(kv: Any, group: str) -> int:
    try:
        entry = await kv.get(group)
    except nats.js.errors.KeyNotFoundError:
        return 0
    manifest = _manifest(entry.value)
    return int(manifest["chunks"]) if manifest is not None else 0


async def put_group_entry(kv: Any, group: str, blob: bytes, *, max_payload: int) -> int:
    """Put a group's encrypted entry, chunked when it is larger than one message may be (the server's
    ``max_payload``); returns the number of chunks (0: one value). Chunks are written before the
    manifest naming them; chunks the new entry no longer uses are purged after it."""
    size = chunk_size(max_payload)
    before = await _chunk_count(kv, group)
    if len(blob) <= size:
        await kv.put(group, blob)
        count = 0
    else:
        parts = [blob[i : i + size] for i in range(0, len(blob), size)]
        for n, part in enumerate(parts):
            await kv.put(f"{group}.{n}", part)
        count = len(parts)
        manifest = {
            "v": MANIFEST_VERSION, "chunks": count, "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()
        }  # fmt: skip
        await kv.put(group, json.dumps(manifest, separators=(",", ":")).encode())
    for n in range(count, before):
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await kv.purge(f"{group}.{n}")
    return count


class DirectoryChanging(Exception):
    """The chunks read do not match the manifest (central rewrote the entry meanwhile)."""


async def get_group_entry(kv: Any, group: str, *, known: int | None = None) -> tuple[int, bytes | None] | None:
    """(manifest or value revision, the whole encrypted entry) of a group; None when there is none,
    (``known``, None) when its revision is still ``known`` (its chunks are not read again).
    A chunked entry is assembled and checked against its manifest's digest, read again when central
    rewrote it meanwhile; ``DirectoryChanging`` when it kept changing."""
    for _attempt in range(MANIFEST_RETRIES):
        try:
            entry = await kv.get(group)
        except nats.js.errors.KeyNotFoundError:
            return None
        manifest = _manifest(entry.value)
        if manifest is None:
            return entry.revision, entry.value
        if entry.revision == known:
            return entry.revision, None
        chunks = []
        try:
            for n in range(int(manifest["chunks"])):
                chunks.append((await kv.get(f"{group}.{n}")).value or b"")
        except nats.js.errors.KeyNotFoundError:
            continue
        blob = b"".join(chunks)
        if len(blob) == manifest.get("size") and hashlib.sha256(blob).hexdigest() == manifest["sha256"]:
            return entry.revision, blob
    raise DirectoryChanging(f"group {group}'s directory kept changing while it was read")


def poll_entry(device: PolledDevice, *, vault: Vault, cipher: Fernet) -> dict[str, Any]:
    """One device's poll settings for the directory: secrets moved from central's key to the
    collector key (plaintext only in memory, for the time of the re-encryption)."""
    entry: dict[str, Any] = {name: getattr(device, name) for name in POLL_FIELDS}
    for name in SECRET_FIELDS:
        token = entry[name]
        entry[name] = cipher.encrypt(vault.decrypt(token).encode()).decode() if token else None
    return entry


def polled_device(entry: Any) -> PolledDevice:
    """A directory poll entry as the poller keeps it; ``ValueError`` naming a bad field."""
    if not isinstance(entry, dict):
        raise ValueError(f"poll entry: expected an object, got {type(entry).__name__}")
    missing = [name for name in POLL_FIELDS if name not in entry]
    if missing:
        raise ValueError(f"poll entry: missing field {missing[0]!r}")
    values = {name: entry[name] for name in POLL_FIELDS}
    for name in SECRET_FIELDS:
        values[name] = values[name].encode() if isinstance(values[name], str) else None
    if not isinstance(values["id"], int) or not isinstance(values["hostname"], str):
        raise ValueError("poll entry: field 'id' or 'hostname' has the wrong type")
    return PolledDevice(**values)


def rendezvous_owner(key: str, members: Iterable[str]) -> str | None:
    """Highest-random-weight (rendezvous) hashing: the member that owns ``key``. Every member
    computes the same answer from the same member set; a member leaving moves only its own keys,
    one joining takes about 1/n of everyone's."""
    best: tuple[int, str] | None = None
    for member in members:
        digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
        weight = (int.from_bytes(digest, "big"), member)
        if best is None or weight > best:
            best = weight
    return best[1] if best is not None else None


class DirectoryPublisher:
    """Central: each group's directory into the KV bucket, at start and every refresh interval."""

    name = "collector directory"

    def __init__(self, link: BrokerLink, sessions: sessionmaker[Session], settings: Settings, *, vault: Vault) -> None:
        self.link = link
        self.sessions = sessions
        self.settings = settings
        self.vault = vault
        self.cipher = directory_cipher(settings)
        # group -> digest of what was last put (central's tokens, no plaintext): unchanged ones are skipped
        self.published: dict[str, bytes] = {}
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> dict[str, _GroupData]:
        with self.sessions() as session:
            return {
                g: (
                    queries.device_addresses(session, collector_group=g),
                    queries.interface_names(session, collector_group=g),
                    list(polled_devices(session, self.settings, collector_group=g).values()),
                    ssh_records(session, collector_group=g),
                )
                for g in queries.collector_groups(session)
            }

    def _ssh_entries(self, group: str, devices: list[tuple[DeviceRecord, OfferedKey | None]]) -> list[dict[str, Any]]:
        entries = []
        for device, pinned in devices:
            try:
                entries.append(ssh_entry(device, pinned, vault=self.vault, cipher=self.cipher))
            except VaultError as exc:  # one unreadable secret never keeps the group's others from their backups
                log.error("device %s left out of group %s's SSH directory: %s", device.hostname, group, exc)
        return entries

    def _poll_entries(self, group: str, devices: list[PolledDevice]) -> list[dict[str, Any]]:
        entries = []
        for device in devices:
            try:
                entries.append(poll_entry(device, vault=self.vault, cipher=self.cipher))
            except VaultError as exc:  # one unreadable secret never keeps the group's others from polling
                log.error("device %s left out of group %s's poll directory: %s", device.hostname, group, exc)
        return entries

    async def publish_once(self) -> int:
        groups = await asyncio.to_thread(self._load)
        kv = await _kv(self.link, _bucket(self.settings, "directory"))
        changed = 0
        for group, (devices, interfaces, polled, ssh) in groups.items():
            digest = hashlib.sha256(
                json.dumps([sorted(devices), sorted(interfaces), [repr(d) for d in polled], [repr(x) for x in ssh]])
                .encode()
            ).digest()  # fmt: skip
            if self.published.get(group) == digest:
                continue
            entries = await asyncio.to_thread(self._poll_entries, group, polled)
            ssh_entries = await asyncio.to_thread(self._ssh_entries, group, ssh)
            blob = encode_directory(self.cipher, devices, interfaces, entries, ssh_entries)
            # every message under the server's max_payload (1 MB by default): a large group is chunked
            max_payload = self.link.nc.max_payload if self.link.nc is not None else 1024 * 1024
            await put_group_entry(kv, group, blob, max_payload=max_payload)
            self.published[group] = digest
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
            await stop_task(self._task)


class RemoteDirectory(DeviceDirectory):
    """The collector's directory: central's encrypted entry for this group, refreshed."""

    name = "device directory (from central)"

    def __init__(self, link: BrokerLink, settings: Settings) -> None:
        super().__init__(None, refresh_s=settings.receiver_directory_refresh_s)
        self.link = link
        self.settings = settings
        self.cipher = directory_cipher(settings)
        self.poll: dict[int, PolledDevice] = {}  # the group's devices to poll (secrets: collector-key tokens)
        self.ssh: dict[int, SshDevice] = {}  # the group's SSH devices (secrets: collector-key tokens)
        self._revision: int | None = None

    @property
    def loaded(self) -> bool:
        """Whether central's entry for the group has been read and applied (at least once)."""
        return self._revision is not None

    async def fetch(self) -> bool:
        """Read and apply the group's entry; False when central has published none yet.
        A wrong key is a ``BrokerError`` naming FAULTLOOP_COLLECTOR_KEY."""
        kv = await _kv(self.link, _bucket(self.settings, "directory"))
        try:
            got = await get_group_entry(kv, self.settings.collector_group, known=self._revision)
        except DirectoryChanging as exc:
            log.warning("%s; read again at the next refresh", exc)
            return self._revision is not None
        if got is None:
            return False
        revision, value = got
        if revision == self._revision or value is None:
            return True
        try:
            doc = json.loads(self.cipher.decrypt(value))
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
        poll: dict[int, PolledDevice] = {}
        for raw in doc.get("poll", []):
            try:
                device = polled_device(raw)
            except (ValueError, TypeError) as exc:
                log.error("group %s's directory: %s", self.settings.collector_group, exc)
                continue
            poll[device.id] = device
        self.poll = poll
        ssh: dict[int, SshDevice] = {}
        for raw in doc.get("ssh", []):
            try:
                ssh_dev = ssh_device(raw)
            except ValueError as exc:
                log.error("group %s's directory: %s", self.settings.collector_group, exc)
                continue
            ssh[ssh_dev.id] = ssh_dev
        self.ssh = ssh
        self._revision = revision
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
    """This collector's name in its group: claimed once, kept by heartbeats, released on stop.

    Its entry's value says which member set this collector's poller has *settled* on
    (``{"instance": ..., "sees": [names]}``): after a change of the live members it re-shares (the
    ``on_change`` callbacks), then waits for the ``settle`` hook (polls of the devices it gave up
    have ended and their results are out of its spool) before it writes the new set. A member that
    takes a device over from a live one polls it only once that one's entry names it
    (``GroupShare.released_by``): the hand-back is fenced per device, not timed."""

    name = "collector membership"

    def __init__(self, link: BrokerLink, settings: Settings) -> None:
        self.link = link
        self.settings = settings
        self.key = f"{settings.collector_group}.{collector_name(settings)}"
        self.instance = uuid.uuid4().hex
        self.me = collector_name(settings)
        self.claimed = False
        self.members: frozenset[str] = frozenset()  # live names in this group, as last read
        self.views: dict[str, frozenset[str] | None] = {}  # each live member's settled set (None: unknown)
        self.settled: frozenset[str] = frozenset()  # the set this collector's entry says it settled on
        self._shared: frozenset[str] = frozenset()  # the set the last re-share (on_change) ran with
        self._revision = 0
        self._lease_from: float | None = None  # monotonic time the last entry write was sent
        self._read_from: float | None = None  # monotonic time the last complete member read began
        self._reading: asyncio.Task[None] | None = None  # the member read callers of ``fresh_members`` share
        self._task: asyncio.Task[None] | None = None
        self._settling: asyncio.Task[None] | None = None
        self._refresh_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._on_change: list[Callable[[], Awaitable[Any]]] = []
        self._settle: Callable[[], Awaitable[bool]] | None = None

    def on_change(self, callback: Callable[[], Awaitable[Any]]) -> None:
        """An async callable run when the set of live members changes (the poller's re-share)."""
        self._on_change.append(callback)

    def on_settle(self, settle: Callable[[], Awaitable[bool]]) -> None:
        """An async callable saying (True) that the devices given up at the last re-share are no
        longer polled and their last results are published; False: not yet, asked again later."""
        self._settle = settle

    def _value(self) -> bytes:
        return json.dumps({"instance": self.instance, "sees": sorted(self.settled)}).encode()

    async def read_members(self) -> dict[str, frozenset[str] | None]:
        """The names alive in this group now, each with the member set it has settled on (None
        when its entry does not say: an older collector). Entries expire three heartbeats after
        the last one (JetStream max age) and are deleted on a clean stop."""
        kv = await _kv(self.link, _bucket(self.settings, "members"), ttl=self._ttl())
        group = self.settings.collector_group
        watcher = await kv.watch(f"{group}.*", ignore_deletes=True)
        views: dict[str, frozenset[str] | None] = {}
        try:
            while True:
                # nats-py ends the initial values with None, but never when the last pending entry
                # expires (max age) before it is delivered: a quiet moment ends the read instead,
                # and the next heartbeat reads again
                try:
                    entry = await watcher.updates(timeout=READ_QUIET_S)
                except nats.errors.TimeoutError:
                    log.warning("member list of %s read without its end marker", group)
                    break
                if entry is None:  # the end of what the bucket holds now
                    break
                views[entry.key[len(group) + 1 :]] = _settled_set(entry.value)
        finally:
            await watcher.stop()
        return views

    async def fresh_members(self) -> None:
        """The member list read at most one heartbeat ago: answered from memory when it is, else one
        read shared by every caller waiting meanwhile. Each read is a JetStream consumer (a KV watch):
        a device's first turn asks this, and thousands of devices must not make thousands of reads."""
        if self._read_from is not None and time.monotonic() - self._read_from < self.settings.collector_heartbeat_s:
            return
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self.refresh_members(), name="collector member read")
        await asyncio.shield(self._reading)

    async def refresh_members(self) -> None:
        async with self._refresh_lock:  # one re-share at a time, in the order the lists were read
            began = time.monotonic()
            views = await self.read_members()
            self._read_from = began
            members = frozenset(views)
            if self.claimed:
                members |= {self.me}
            self.views = views
            if members != self.members:
                log.info("collector group %s: members %s", self.settings.collector_group, ", ".join(sorted(members)))
                self.members = members
                for callback in self._on_change:
                    try:
                        await callback()
                    except Exception as exc:
                        log.error("after a membership change: %s: %s", type(exc).__name__, exc)
            self._shared = members
        if self.claimed and self.settled != self._shared and (self._settling is None or self._settling.done()):
            self._settling = asyncio.create_task(self._settle_and_say(), name="collector settle")

    async def _settle_and_say(self) -> None:
        """Once the poller has let go of what the last re-share gave away, say so in the entry."""
        while self.claimed and self.settled != self._shared:
            target = self._shared
            try:
                done = await self._settle() if self._settle is not None else True
            except Exception as exc:
                log.error("settling the collector's share failed: %s: %s", type(exc).__name__, exc)
                done = False
            if not done:
                return  # the next heartbeat's refresh asks again
            if self._shared != target:
                continue  # another re-share ran meanwhile: settle that one too
            self.settled = target
            try:
                await self._write()
            except Exception as exc:  # the heartbeat writes it (or claims the name again) next
                log.warning("collector entry update failed: %s", type(exc).__name__)
            return

    async def _write(self) -> None:
        async with self._write_lock:
            kv = await _kv(self.link, _bucket(self.settings, "members"), ttl=self._ttl())
            sent = time.monotonic()
            self._revision = await kv.update(self.key, self._value(), last=self._revision)
            self._lease_from = sent

    def lease_valid(self) -> bool:
        """Whether this collector's entry is surely still alive in the bucket: its last write was sent
        less than the heartbeat timeout minus one heartbeat ago. A collector whose event loop stalled
        past that may already be taken for dead by the others, who poll its devices then: it polls
        nothing until its heartbeat has run again. While NATS is unreachable it keeps its share (the
        others cannot see it, and it cannot tell; double polling in a partition, better than none)."""
        if not self.link.connected:
            return self.claimed
        if not self.claimed or self._lease_from is None:
            return False
        return time.monotonic() < self._lease_from + self._ttl() - self.settings.collector_heartbeat_s

    def _ttl(self) -> float:
        return self.settings.collector_heartbeat_s * MISSED_HEARTBEATS

    async def claim(self) -> None:
        kv = await _kv(self.link, _bucket(self.settings, "members"), ttl=self._ttl())
        async with self._write_lock:
            sent = time.monotonic()
            try:
                self._revision = await kv.create(self.key, self._value())
            except nats.js.errors.KeyWrongLastSequenceError:
                raise BrokerError(
                    f"FAULTLOOP_COLLECTOR_NAME: a collector named {collector_name(self.settings)!r} is already "
                    f"running in group {self.settings.collector_group!r}"
                ) from None
            self._lease_from = sent
        self.claimed = True

    async def start(self) -> None:
        if self.link.connected:
            await self.claim()  # a name already taken stops the start here
            await self.refresh_members()
        self._task = asyncio.create_task(self._beat(), name="collector heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.collector_heartbeat_s)
            try:
                if not self.link.connected:
                    continue
                if not self.claimed:
                    await self.claim()
                else:
                    await self._write()
            except BrokerError as exc:
                log.error("%s", exc)
            except Exception as exc:  # our entry expired (an outage, a stalled loop): claim it again now
                log.warning("collector heartbeat failed: %s", type(exc).__name__)
                self.claimed = False
                with contextlib.suppress(Exception):
                    await self.claim()
            with contextlib.suppress(Exception):
                if self.link.connected:
                    await self.refresh_members()

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
        if self._settling is not None:
            await stop_task(self._settling)
        if self._reading is not None:
            await stop_task(self._reading)
        if self.claimed and self.link.connected:
            with contextlib.suppress(Exception):
                kv = await _kv(self.link, _bucket(self.settings, "members"), ttl=self._ttl())
                await kv.delete(self.key)
        self.claimed = False


def _settled_set(value: bytes | None) -> frozenset[str] | None:
    """The member set a member's entry says it settled on; None when it does not say."""
    try:
        doc = json.loads(value or b"")
    except ValueError:
        return None
    sees = doc.get("sees") if isinstance(doc, dict) else None
    if not isinstance(sees, list) or not all(isinstance(name, str) for name in sees):
        return None
    return frozenset(sees)


class GroupShare:
    """This collector's share of its group's devices: rendezvous hashing of device ids over the
    live members (``Membership.members``). Until its name is claimed it polls nothing (the others
    hold its share); while NATS is unreachable the last member set, and so the share, holds."""

    def __init__(self, directory: RemoteDirectory, membership: Membership) -> None:
        self.directory = directory
        self.membership = membership
        self._previous: frozenset[str] | None = None

    def assign(self) -> tuple[dict[int, PolledDevice], dict[int, str]]:
        me = self.membership.me
        if not self.membership.claimed:
            # its name lost (an expired entry): the others may have taken its devices; when it is
            # claimed again, each is handed back like at a first share
            self._previous = None
            return {}, {}
        if not self.directory.loaded:
            # nothing to share yet (the membership's first read re-shares before the directory is
            # read): the first real share must still count its devices as the others' until now
            return {}, {}
        members = self.membership.members | {me}
        # Who polled each device until now: the owner under the member set of the last share. A
        # live one lets go first; a dead one's devices go at once. At the first share it is the
        # owner among the others: members starting together may not have seen each other yet.
        before = self._previous if self._previous is not None else members - {me}
        self._previous = members
        mine: dict[int, PolledDevice] = {}
        from_member: dict[int, str] = {}
        for device_id, device in self.directory.poll.items():
            key = str(device_id)
            if rendezvous_owner(key, members) != me:
                continue
            mine[device_id] = device
            previous = rendezvous_owner(key, before)
            if previous is not None and previous != me:
                from_member[device_id] = previous  # alive: it lets go first; dead: at once
        return mine, from_member

    def released_by(self, member: str) -> bool:
        """Whether ``member`` has let go of what it polled of this collector's share: it is no longer
        alive, or its entry says it settled on a member set with this collector in it."""
        if member not in self.membership.members:
            return True
        view = self.membership.views.get(member)
        return view is not None and self.membership.me in view

    def may_poll(self) -> bool:
        return self.membership.lease_valid()

    def owns(self, device_id: int) -> bool:
        """Whether this member serves the device now (the SSH work's share: the poller's hashing,
        over the member list as last read; nothing before the name is claimed)."""
        if not self.membership.claimed:
            return False
        members = self.membership.members | {self.membership.me}
        return rendezvous_owner(str(device_id), members) == self.membership.me

    async def still_mine(self, device_id: int) -> bool:
        if not self.membership.link.connected:
            return self.membership.claimed  # no fresher view to be had: keep the share
        # at most one member read per heartbeat for all devices (a change re-shares: the poller's sync)
        await self.membership.fresh_members()
        members = self.membership.members | {self.membership.me}
        return self.membership.claimed and rendezvous_owner(str(device_id), members) == self.membership.me
