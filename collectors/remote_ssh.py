"""SSH work in the collector role (issue 14): config backups and CLI collection for the devices
of a remote collector group, which central cannot reach.

Central's directory entry for the group carries each SSH device (``SshDevice``): address, port,
user, platform, host key policy, the host key central has pinned, and the password / private key
re-encrypted from central's key to ``FAULTLOOP_COLLECTOR_KEY``. A collector runs the backups and
the show commands of its share of them (the rendezvous share of the SNMP poller) on the same
schedule as ``CliCollectorService`` and on demand (a core NATS request from central's API to the
group, answered by the owner only), and publishes what it read as one ``SshRecord`` per session on
``<prefix>.ssh.<group>.<device id>`` through the on-disk spool. The whole record is Fernet-encrypted
with the collector key (a configuration is a secret: never in plaintext on the wire or in
JetStream). Central's ``SshIntake`` decrypts it and stores it as the single process does
(``store_backup`` seals the text with the vault), exactly once (``broker_inbox``, same
transaction); its events (``config_changed``, ``host_key_changed``) go to the sink after the commit.

Host keys (TOFU): the collector checks the key during key exchange against central's pin, or the
key it trusted itself first (kept in memory until the directory carries central's pin). Each record
carries the key of its session; central pins a first key, and refuses a result whose key is not the
one it trusts (kept pending, ``host_key_changed`` raised, nothing stored): two collectors that each
trusted a different first key, or a directory older than an admin's decision, cannot slip a key past
central. A key the collector refused is sent as a ``hostkey`` record and kept pending by central.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography.fernet import Fernet, InvalidToken
from prometheus_client import Counter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from collectors.backup import BACKUPS, BackupOutcome, backup_out, config_changed_event, fetch_config, store_backup
from collectors.backup_models import ConfigBackup
from collectors.cli_collect import CLI_COMMANDS, DeviceResult, parse, run_cycle, store_result
from collectors.cli_commands import command_table
from devices import hostkeys
from devices.hostkeys import HostKeyError, OfferedKey
from devices.ssh import SshTarget, device_lock, emit, host_key_event, netmiko_device_type, target_session
from faultloop import clock, inbox
from faultloop.broker import BrokerLink, Delivery, Publisher, PullConsumer, stream_name, subject
from faultloop.db import write_transaction
from faultloop.errors import DomainError, InvalidInput
from faultloop.events import Event, ObservationSink
from faultloop.metrics import REGISTRY
from faultloop.settings import Settings
from faultloop.vault import Vault, VaultError
from faultloop.worker import stop_task
from inventory import queries
from inventory.queries import DeviceRecord

log = logging.getLogger("faultloop.collector.ssh")

WIRE_VERSION = 1
REQUEST_TIMEOUT_S = 2.0  # how long central's API waits for the owning collector to take a request
STOP_WAIT_S = 30.0

REMOTE_SSH = Counter(
    "faultloop_remote_ssh_results_total",
    "SSH results from collectors applied by central, by outcome (stored, duplicate, unknown_device, "
    "host_key_refused, failed)",
    ["outcome"],
    registry=REGISTRY,
)


# ---- the directory entry ------------------------------------------------------------------------


class SshDevice(BaseModel):
    """One SSH device of a group as the directory carries it (secrets: collector-key tokens)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int = Field(ge=1)
    hostname: str = Field(min_length=1, max_length=255)
    device_type: str = Field(min_length=1, max_length=64)  # the netmiko driver
    address: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    username: str = Field(min_length=1, max_length=255)
    host_key_policy: Literal["strict", "tofu", "off"]
    key_type: str | None = None  # central's pin
    key_base64: str | None = None
    fingerprint: str | None = None
    password_enc: str | None = Field(None, repr=False)
    private_key_enc: str | None = Field(None, repr=False)

    def pinned(self) -> OfferedKey | None:
        if self.key_type and self.key_base64 and self.fingerprint:
            return OfferedKey(self.key_type, self.key_base64, self.fingerprint)
        return None

    def target(self, secrets: Vault, trusted: OfferedKey | None) -> SshTarget:
        """The session target, secrets decrypted with the collector key (right before connecting)."""
        return SshTarget(
            device_id=self.id, hostname=self.hostname, device_type=self.device_type, address=self.address,
            port=self.port, username=self.username, host_key_policy=self.host_key_policy, trusted_key=trusted,
            password=secrets.decrypt(self.password_enc.encode()) if self.password_enc else None,
            private_key=secrets.decrypt(self.private_key_enc.encode()) if self.private_key_enc else None,
        )  # fmt: skip


def ssh_device(entry: Any) -> SshDevice:
    """A directory SSH entry, or ``ValueError`` naming the bad field."""
    try:
        return SshDevice.model_validate(entry)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "entry"
        raise ValueError(f"ssh entry: field {where!r}: {first['msg']}") from None


def ssh_records(session: Session, *, collector_group: str) -> list[tuple[DeviceRecord, OfferedKey | None]]:
    """Central: the group's devices with SSH credentials and a platform in the command table, each
    with its pinned host key."""
    table = command_table()
    out = []
    for d in queries.devices(session, with_ssh=True, collector_group=collector_group):
        if (d.ssh_password_enc or d.ssh_private_key_enc) and netmiko_device_type(d) in table:
            out.append((d, hostkeys.trusted_key(hostkeys.get_host_key(session, d.id))))
    return out


def ssh_entry(device: DeviceRecord, pinned: OfferedKey | None, *, vault: Vault, cipher: Fernet) -> dict[str, Any]:
    """One device's directory entry: its SSH secrets moved from central's key to the collector key."""

    def move(token: bytes | None) -> str | None:
        return cipher.encrypt(vault.decrypt(token).encode()).decode() if token else None

    assert device.ssh_username is not None
    return SshDevice(
        id=device.id, hostname=device.hostname, device_type=netmiko_device_type(device), address=device.address,
        port=device.ssh_port, username=device.ssh_username,
        host_key_policy=device.ssh_host_key_policy,  # type: ignore[arg-type]
        key_type=pinned.key_type if pinned else None, key_base64=pinned.key_base64 if pinned else None,
        fingerprint=pinned.fingerprint if pinned else None,
        password_enc=move(device.ssh_password_enc), private_key_enc=move(device.ssh_private_key_enc),
    ).model_dump()  # fmt: skip


# ---- the wire record ----------------------------------------------------------------------------


class WireKey(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    key_type: str = Field(min_length=1, max_length=64)
    key_base64: str = Field(min_length=1, max_length=16384)
    fingerprint: str = Field(min_length=1, max_length=128)

    def offered(self) -> OfferedKey:
        return OfferedKey(self.key_type, self.key_base64, self.fingerprint)


class CliOutput(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    command: str = Field(min_length=1, max_length=255)
    output: str
    parsed: list[dict[str, Any]] | None = None


class SshRecord(BaseModel):
    """One SSH session's result as it travels from a collector to central (encrypted JSON)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    kind: Literal["backup", "cli", "hostkey"]
    device_id: int = Field(ge=1)
    device: str = Field(min_length=1, max_length=255)
    collector: str = Field(default="", max_length=64)
    time: AwareDatetime
    # the session's host key; ``trust``: the collector trusted it as a first key (TOFU);
    # ``refused``: the collector refused it before authentication (kind hostkey)
    key: WireKey | None = None
    trust: bool = False
    refused: bool = False
    trigger: Literal["schedule", "on_demand"] = "schedule"
    actor: str = Field(default="scheduler", max_length=255)
    text: str = ""  # kind backup: the running configuration as read
    outputs: list[CliOutput] = Field(default_factory=list)  # kind cli


def encode_ssh(cipher: Fernet, record: SshRecord) -> bytes:
    return cipher.encrypt(record.model_dump_json().encode())


def ssh_decoder(cipher: Fernet) -> Callable[[bytes], SshRecord]:
    """The consumer's decoder: ``ValueError`` naming what is wrong (the message is dropped, counted)."""

    def decode(data: bytes) -> SshRecord:
        try:
            plain = cipher.decrypt(data)
        except InvalidToken:
            raise ValueError(
                "ssh result: not encrypted with FAULTLOOP_COLLECTOR_KEY (or altered on the way)"
            ) from None
        try:
            return SshRecord.model_validate_json(plain)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "message"
            raise ValueError(f"ssh result: field {where!r}: {first['msg']}") from None

    return decode


def ssh_subject(settings: Settings, group: str, device_id: int) -> str:
    return subject(settings.nats_stream_prefix, "ssh", group, str(device_id))


def request_subject(settings: Settings, group: str) -> str:
    """Core NATS (not a stream): central's on-demand requests to a group's collectors."""
    return f"{settings.nats_stream_prefix}.sshreq.{group}"


# ---- central --------------------------------------------------------------------------------------


class SshIntake:
    """Central's durable consumer of the ssh stream: each result applied exactly once."""

    name = "nats ssh results intake"

    def __init__(
        self, link: BrokerLink, sessions: sessionmaker[Session], sink: ObservationSink | None, settings: Settings,
        *, vault: Vault, cipher: Fernet, durable: str = "central",
        store_events: Callable[[Session, list[Event]], None] | None = None,
        events_stored: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.link = link
        # with ``store_events`` (the alarm engine's durable queue) the events a result raises are
        # stored in the transaction that stores the result (exactly once), ``events_stored`` wakes
        # the engine after the commit; without it they go to ``sink`` after the commit
        self.store_events = store_events
        self.events_stored = events_stored
        self.loop: asyncio.AbstractEventLoop | None = None  # the link's loop (on-demand requests go through it)
        self.sessions = sessions
        self.sink = sink
        self.vault = vault
        self.applied = 0
        self.duplicates = 0
        self.unknown = 0
        self.refused = 0  # results dropped because their session's host key is not the one central trusts
        prefix = settings.nats_stream_prefix
        self.consumer: PullConsumer[SshRecord] = PullConsumer(
            link, stream=stream_name(prefix, "ssh"), durable=f"{durable}-ssh", filter_subject=f"{prefix}.ssh.>",
            decode=ssh_decoder(cipher), handle=self.apply, batch_size=min(settings.nats_batch_size, 50),
        )  # fmt: skip

    def apply(self, deliveries: list[Delivery[SshRecord]]) -> None:
        """Claim the ids and store the new results in one transaction (then the consumer acks);
        the events they raise go to the sink after the commit."""
        events: list[Event] = []
        outcomes = {"stored": 0, "unknown_device": 0, "host_key_refused": 0, "failed": 0}
        with write_transaction(self.sessions) as session:
            new = inbox.claim(session, (d.msg_id for d in deliveries), now=clock.now())
            records = []
            for d in deliveries:
                key = d.msg_id[: inbox.MSG_ID_MAX]
                if key in new:
                    new.discard(key)  # a second copy inside the same batch is a duplicate too
                    records.append(d.value)
            devices = {r.id: r for r in queries.devices(session, ids={r.device_id for r in records})}
            for record in records:
                device = devices.get(record.device_id)
                if device is None or device.hostname != record.device:
                    outcomes["unknown_device"] += 1
                    continue
                try:
                    with session.begin_nested():  # one bad result never loses the rest of the batch
                        outcome, raised = self._apply_one(session, device, record)
                except (SQLAlchemyError, InvalidInput, ValueError, VaultError) as exc:
                    log.error("storing the %s result of %s failed: %s", record.kind, record.device, type(exc).__name__)
                    outcomes["failed"] += 1
                    continue
                outcomes[outcome] += 1
                events.extend(raised)
            if events and self.store_events is not None:
                self.store_events(session, events)
        for outcome, n in outcomes.items():
            if n:
                REMOTE_SSH.labels(outcome=outcome).inc(n)
        self.applied += outcomes["stored"]
        self.unknown += outcomes["unknown_device"]
        self.refused += outcomes["host_key_refused"]
        self.duplicates += len(deliveries) - len(records)
        if len(deliveries) - len(records):
            REMOTE_SSH.labels(outcome="duplicate").inc(len(deliveries) - len(records))
        if self.store_events is None:
            emit(self.sink, events)
        elif events and self.events_stored is not None:
            self.events_stored()

    def _apply_one(self, session: Session, device: DeviceRecord, record: SshRecord) -> tuple[str, list[Event]]:
        if record.kind == "hostkey" or record.refused:
            trusted = hostkeys.trusted_key(hostkeys.get_host_key(session, device.id))
            offered = record.key.offered() if record.key is not None else None
            # refused by the collector: kept pending for an admin (unless central trusts it by now:
            # the collector's directory predates an admin's acceptance)
            if offered is not None and not (trusted is not None and trusted.same_key(offered)):
                hostkeys.record_pending(session, device_id=device.id, offered=offered)
            return "stored", []
        refusal = self._check_key(session, device, record)
        if refusal is not None:
            return "host_key_refused", [refusal]
        if record.kind == "cli":
            for out in record.outputs:
                store_result(session, device_id=device.id, command=out.command, output=out.output, parsed=out.parsed,
                             taken_at=record.time)  # fmt: skip
            return "stored", []
        row, previous, created = store_backup(
            session, self.vault, device=device, text=record.text, trigger=record.trigger, actor=record.actor,
            taken_at=record.time,
        )  # fmt: skip
        status = "unchanged" if not created else ("new_version" if previous is not None else "first_version")
        BACKUPS.labels(result="unchanged" if status == "unchanged" else "new_version").inc()
        if status != "new_version":
            return "stored", []
        outcome = BackupOutcome(
            device_id=device.id, hostname=device.hostname, status="new_version", backup_id=row.id,
            previous_id=previous.id if previous else None, lines_added=row.lines_added,
            lines_removed=row.lines_removed, summary=backup_out(row),
        )  # fmt: skip
        return "stored", [config_changed_event(outcome, trigger=record.trigger, actor=record.actor)]

    def _check_key(self, session: Session, device: DeviceRecord, record: SshRecord) -> Event | None:
        """Central's pin decides: a first key is pinned (TOFU, or a collector's key under off is only
        noted), the pinned key is noted as seen, any other key is kept pending and its result refused."""
        if device.ssh_host_key_policy == "off" or record.key is None:
            return None
        offered = record.key.offered()
        trusted = hostkeys.trusted_key(hostkeys.get_host_key(session, device.id))
        if trusted is None and device.ssh_host_key_policy == "tofu":
            hostkeys.record_seen(session, device_id=device.id, offered=offered, trust=True)
            return None
        if trusted is not None and trusted.same_key(offered):
            hostkeys.record_seen(session, device_id=device.id, offered=offered, trust=False)
            return None
        hostkeys.record_pending(session, device_id=device.id, offered=offered)
        log.error(
            "%s: %s result from collector %s refused: its session's SSH host key %s is not the trusted %s",
            device.hostname, record.kind, record.collector or "?", offered.fingerprint,
            trusted.fingerprint if trusted else "(none, policy strict)",
        )  # fmt: skip
        if trusted is None:
            return None  # strict without a pin: pending for an admin, as a refused first key is locally
        target = SshTarget(
            device_id=device.id, hostname=device.hostname, device_type="", address=device.address,
            port=device.ssh_port, username="", host_key_policy=device.ssh_host_key_policy, trusted_key=trusted,
        )  # fmt: skip
        return host_key_event(target, hostkeys.HostKeyChanged("", offered=offered, trusted=trusted), "backup")

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()


class RemoteBackupError(DomainError):
    """The group's collectors did not take or could not do an on-demand backup."""

    status = 502
    title = "Collector backup failed"


class RemoteHostKeyError(HostKeyError):
    """The owning collector refused the device's SSH host key (the message is the collector's)."""


def remote_backup_now(
    link: BrokerLink,
    loop: asyncio.AbstractEventLoop,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    device_id: int,
    hostname: str,
    group: str,
    actor: str,
    wait_s: float,
) -> BackupOutcome:
    """Central's API, for a device of a group served by collectors: ask the group (the owner answers
    once it has read the configuration and spooled it), then wait until this central's intake (or
    another instance's) has stored it, and report as ``backup_device`` does. Blocking: call it from
    a worker thread, never from ``loop``."""
    payload = json.dumps({"device_id": device_id, "device": hostname, "actor": actor}).encode()

    async def ask() -> dict[str, Any]:
        if link.nc is None or not link.connected:
            raise RemoteBackupError(f"device {hostname!r} is in collector group {group!r}: NATS is not connected")
        try:
            msg = await link.nc.request(request_subject(settings, group), payload, timeout=wait_s)
        except Exception as exc:  # timeout, no responders
            raise RemoteBackupError(
                f"device {hostname!r} is in collector group {group!r}: no collector of the group answered "
                f"within {wait_s:.0f} s ({type(exc).__name__})"
            ) from None
        answer: dict[str, Any] = json.loads(msg.data)
        return answer

    answer = asyncio.run_coroutine_threadsafe(ask(), loop).result(timeout=wait_s + 5)
    if answer.get("host_key"):
        raise RemoteHostKeyError(str(answer.get("error", "host key refused")), offered=OfferedKey("", "", ""))
    if answer.get("error"):
        raise RemoteBackupError(f"collector {answer.get('collector', '?')}: {answer['error']}")
    msg_id = str(answer.get("msg_id", ""))[: inbox.MSG_ID_MAX]
    try:
        captured = datetime.fromisoformat(str(answer["time"]))
    except (KeyError, ValueError):
        who = answer.get("collector", "?")
        raise RemoteBackupError(f"collector {who}: an answer without the capture time") from None
    deadline = time.monotonic() + wait_s
    while True:  # central's intake stores it (a few hundred ms; longer while the stream is busy)
        with sessions() as session:
            if session.get(inbox.InboxEntry, msg_id) is not None:
                rows = list(session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)
                                            .order_by(ConfigBackup.id.desc()).limit(2)))  # fmt: skip
                break
        if time.monotonic() > deadline:
            raise RemoteBackupError(
                f"device {hostname!r}: collector {answer.get('collector', '?')} read the configuration, but "
                f"central has not stored it within {wait_s:.0f} s (it will be, from the stream)"
            )
        time.sleep(0.1)
    # The capture time (the collector's clock) is what the intake stored: taken_at of a new version,
    # last_seen_at of an unchanged one. A millisecond of slack for the database's precision.
    slack = timedelta(milliseconds=1)
    if not rows or abs(rows[0].last_seen_at - captured) > slack:
        raise RemoteBackupError(f"device {hostname!r}: the collector's backup was not stored (see central's log)")
    latest = rows[0]
    created = abs(latest.taken_at - captured) <= slack
    previous = rows[1] if len(rows) > 1 else None
    status: Literal["new_version", "unchanged", "first_version"]
    status = "unchanged" if not created else ("new_version" if previous is not None else "first_version")
    return BackupOutcome(
        device_id=device_id, hostname=hostname, status=status, backup_id=latest.id,
        previous_id=previous.id if created and previous else None,
        lines_added=latest.lines_added if created else 0, lines_removed=latest.lines_removed if created else 0,
        summary=backup_out(latest),
    )  # fmt: skip


# ---- the collector --------------------------------------------------------------------------------


class RemoteSshWork:
    """The collector's SSH work: backups every ``backup_interval_s`` and show commands every
    ``cli_interval_s`` for its share of the group's SSH devices, in ``ssh_workers`` threads, and
    on-demand backups asked by central; every result into the spool, encrypted."""

    name = "ssh collection (collector)"

    def __init__(
        self,
        settings: Settings,
        secrets: Vault,
        *,
        link: BrokerLink,
        publisher: Publisher,
        sink: ObservationSink,
        cipher: Fernet,
        devices: Callable[[], dict[int, SshDevice]],
        owns: Callable[[int], bool],
        collector: str,
        tick_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.link = link
        self.publisher = publisher
        self.sink = sink
        self.cipher = cipher
        self.devices = devices
        self.owns = owns
        self.collector = collector
        self.group = settings.collector_group
        self.tick_s = tick_s
        # first keys this collector trusted (TOFU) until central's pin comes back in the directory:
        # device id -> (address, key); a new address forgets it, as central forgets its pin
        self.learned: dict[int, tuple[str, OfferedKey]] = {}
        self._learned_guard = threading.Lock()
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self._next: dict[str, datetime] = {}
        self.published = 0
        self.requests = 0
        self._requests: set[asyncio.Task[None]] = set()

    # -- one session ---------------------------------------------------------------------------

    def _trusted(self, dev: SshDevice) -> OfferedKey | None:
        pinned = dev.pinned()
        with self._learned_guard:
            if pinned is not None:  # central's pin is the authority (an admin may have accepted a new key)
                self.learned.pop(dev.id, None)
                return pinned
            learned = self.learned.get(dev.id)
            if learned is not None and learned[0] != dev.address:
                self.learned.pop(dev.id, None)
                return None
            return learned[1] if learned else None

    def _session(self, dev: SshDevice, source: Literal["backup", "poll"], work: Callable[[Any], Any]) -> tuple[
        Any, WireKey | None, bool
    ]:  # fmt: skip
        """Run ``work(conn)`` in a session to ``dev``; (its value, the session's key, trusted first now)."""
        seen: list[tuple[OfferedKey, bool]] = []

        def key_seen(offered: OfferedKey, trust: bool) -> None:
            seen.append((offered, trust))
            if trust:
                with self._learned_guard:
                    self.learned[dev.id] = (dev.address, offered)

        def key_refused(offered: OfferedKey) -> None:
            self._submit(SshRecord(kind="hostkey", device_id=dev.id, device=dev.hostname, collector=self.collector,
                                   time=clock.now(), key=_wire(offered), refused=True))  # fmt: skip

        lock = device_lock(dev.id)
        if not lock.acquire(timeout=3 * self.settings.ssh_timeout_s):
            raise RemoteBackupError(f"device {dev.hostname!r} is busy with another SSH session")
        try:
            target = dev.target(self.secrets, self._trusted(dev))
            with target_session(
                target, timeout_s=self.settings.ssh_timeout_s, max_output_bytes=self.settings.ssh_max_output_bytes,
                sink=self.sink, source=source, key_seen=key_seen, key_refused=key_refused,
            ) as conn:  # fmt: skip
                value = work(conn)
        finally:
            lock.release()
        offered, trust = seen[-1] if seen else (None, False)
        return value, _wire(offered) if offered else None, trust

    def _submit(self, record: SshRecord) -> str:
        [msg_id] = self.publisher.submit([(ssh_subject(self.settings, self.group, record.device_id),
                                           encode_ssh(self.cipher, record))])  # fmt: skip
        self.published += 1
        return msg_id

    def backup(self, dev: SshDevice, *, trigger: Literal["schedule", "on_demand"] = "schedule",
               actor: str = "scheduler") -> tuple[str, datetime]:  # fmt: skip
        """Read the running configuration and spool it; the message id and the capture time."""
        text, key, trust = self._session(dev, "backup", lambda conn: fetch_config(conn, conn.device_type))
        if not str(text).strip():
            raise InvalidInput(f"device {dev.hostname!r} returned an empty configuration", field="text")
        captured = clock.now()
        msg_id = self._submit(SshRecord(
            kind="backup", device_id=dev.id, device=dev.hostname, collector=self.collector, time=captured,
            key=key, trust=trust, trigger=trigger, actor=actor, text=str(text),
        ))  # fmt: skip
        return msg_id, captured

    def collect(self, dev: SshDevice) -> str | None:
        """Run the platform's show commands and spool their outputs; the message id (None: no commands)."""
        spec = command_table().get(dev.device_type)
        if spec is None or not spec.commands:
            return None

        def run(conn: Any) -> list[CliOutput]:
            outputs = []
            for command in spec.commands:
                output = str(conn.send_command(command))
                rows = parse(conn.device_type, command, output)
                CLI_COMMANDS.labels(result="parsed" if rows is not None else "raw").inc()
                outputs.append(CliOutput(command=command, output=output, parsed=rows))
            return outputs

        outputs, key, trust = self._session(dev, "poll", run)
        return self._submit(SshRecord(
            kind="cli", device_id=dev.id, device=dev.hostname, collector=self.collector, time=clock.now(),
            key=key, trust=trust, outputs=outputs,
        ))  # fmt: skip

    # -- the schedule --------------------------------------------------------------------------

    def mine(self) -> list[SshDevice]:
        return [d for device_id, d in sorted(self.devices().items()) if self.owns(device_id)]

    def deadline_s(self) -> float:
        return self.settings.ssh_timeout_s * 10 + 60

    def run_backups(self) -> list[DeviceResult]:
        assert self.pool is not None, "service not started"
        devices = {d.id: d for d in self.mine()}
        return run_cycle(self.pool, list(devices), lambda i: self.backup(devices[i]), kind="backup",
                         deadline_s=self.deadline_s())  # fmt: skip

    def run_cli(self) -> list[DeviceResult]:
        assert self.pool is not None, "service not started"
        devices = {d.id: d for d in self.mine()}
        return run_cycle(self.pool, list(devices), lambda i: self.collect(devices[i]), kind="cli",
                         deadline_s=self.deadline_s())  # fmt: skip

    def due(self) -> list[str]:
        now = clock.now()
        intervals = {"backup": self.settings.backup_interval_s, "cli": self.settings.cli_interval_s}
        kinds = [k for k, at in self._next.items() if at <= now]
        for kind in kinds:
            self._next[kind] = now + timedelta(seconds=intervals[kind])
        return kinds

    async def tick(self) -> dict[str, list[DeviceResult]]:
        loop = asyncio.get_running_loop()
        ran: dict[str, list[DeviceResult]] = {}
        for kind in self.due():
            work = self.run_backups if kind == "backup" else self.run_cli
            try:
                ran[kind] = await loop.run_in_executor(None, work)
            except Exception as exc:
                log.error("%s cycle failed: %s", kind, type(exc).__name__)
        return ran

    async def _loop(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.tick_s)

    # -- on demand -----------------------------------------------------------------------------

    async def _on_request(self, msg: Any) -> None:
        # nats-py runs one subscription's callbacks one after the other: a backup (seconds) must
        # not hold up the requests behind it
        task = asyncio.create_task(self._answer(msg), name="ssh request")
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _answer(self, msg: Any) -> None:
        try:
            doc = json.loads(msg.data)
            device_id = int(doc["device_id"])
            actor = str(doc.get("actor") or "api")[:255]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.error("dropped an on-demand request on %s that does not parse", msg.subject)
            error = "request: expected a JSON object with an integer 'device_id' (and 'actor')"
            with contextlib.suppress(Exception):
                await msg.respond(json.dumps({"collector": self.collector, "error": error}).encode())
            return
        dev = self.devices().get(device_id)
        if dev is None or not self.owns(device_id):
            return  # another member's (or unknown to this group): the owner answers
        self.requests += 1
        answer: dict[str, Any] = {"collector": self.collector}
        loop = asyncio.get_running_loop()
        try:
            msg_id, captured = await loop.run_in_executor(
                self.pool, lambda: self.backup(dev, trigger="on_demand", actor=actor)
            )
            answer.update(msg_id=msg_id, time=captured.isoformat())
        except HostKeyError as exc:
            answer.update(error=str(exc), host_key=True)
        except DomainError as exc:
            answer["error"] = str(exc)
        except Exception as exc:
            answer["error"] = f"{dev.hostname}: backup failed ({type(exc).__name__})"
        with contextlib.suppress(Exception):
            await msg.respond(json.dumps(answer).encode())

    async def _subscribe(self) -> None:
        if self.link.nc is not None:
            self._sub = await self.link.nc.subscribe(
                request_subject(self.settings, self.group), cb=self._on_request
            )
            # answer requests from the moment start returns: the server registers the subscription
            # when it reads the SUB, which this flush's PONG confirms
            with contextlib.suppress(Exception):
                await self.link.nc.flush(timeout=5)

    async def start(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.settings.ssh_workers,
                                                          thread_name_prefix="ssh")  # fmt: skip
        now = clock.now()
        s = self.settings
        self._next = {
            "backup": now + timedelta(seconds=random.uniform(0, min(60.0, s.backup_interval_s))),
            "cli": now + timedelta(seconds=random.uniform(0, min(60.0, s.cli_interval_s))),
        }
        await self._subscribe()  # nats-py keeps the subscription through reconnects
        if self._sub is None:
            self.link.on_connect(self._subscribe_once)
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _subscribe_once(self) -> None:
        if self._sub is None:
            await self._subscribe()

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        for task in list(self._requests):
            await stop_task(task)
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(pool.shutdown, wait=True), timeout=STOP_WAIT_S)


def _wire(key: OfferedKey) -> WireKey:
    return WireKey(key_type=key.key_type, key_base64=key.key_base64, fingerprint=key.fingerprint)
