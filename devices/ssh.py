"""A device session: one netmiko connection to an inventory device, host key enforced.

    with device_session(rt, device_id, sink=sink) as conn:
        conn.send_command("show version")

Used by CLI collection and config backup here, and by provisioning to push configuration.
What it guarantees:

- credentials are decrypted from the vault only here, right before connecting, and
  never logged or put into events or exceptions;
- the SSH host key is checked against ``ssh_host_keys`` before authentication
  (``devices.hostkeys``); a changed key aborts the connection, is stored as pending
  and raises a ``host_key_changed`` event (severity major) after the record commits;
- one session per device at a time in this process (a per-device lock), so a backup
  and a provisioning push never interleave on one box;
- every network step is bounded by ``FAULTLOOP_SSH_TIMEOUT_S`` (TCP connect, SSH banner,
  authentication, each command's read);
- every command's output is bounded by ``FAULTLOOP_SSH_MAX_OUTPUT_BYTES``: a (hostile) device
  that sends more ends the session with ``OutputTooLarge`` (nothing of that output is kept),
  counted in ``faultloop_ssh_output_capped_total`` and raised as one ``ssh_output_capped``
  warning on the device, cleared by its next session that ends normally.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import paramiko
from netmiko.channel import SSHChannel
from netmiko.exceptions import NetmikoTimeoutException, ReadException
from netmiko.ssh_dispatcher import CLASS_MAPPER
from paramiko.ssh_exception import AuthenticationException, SSHException
from prometheus_client import Counter, Histogram
from sqlalchemy.orm import Session

from devices import hostkeys
from devices.conn import DeviceConn
from devices.hostkeys import HostKeyChanged, HostKeyError, OfferedKey, PinnedHostKeyPolicy
from faultloop import clock
from faultloop.db import transaction
from faultloop.db import write_transaction as db_write_transaction
from faultloop.errors import Conflict, DomainError, InvalidInput, NotFound
from faultloop.events import Event, ObservationSink, Source
from faultloop.metrics import REGISTRY
from faultloop.runtime import Runtime
from faultloop.vault import Vault
from inventory import queries
from inventory.queries import DeviceRecord

log = logging.getLogger("faultloop.devices.ssh")

SSH_SESSIONS = Counter(
    "faultloop_ssh_sessions_total",
    "SSH device sessions opened, by result",
    ["result"],
    registry=REGISTRY,
)
SSH_CONNECT_SECONDS = Histogram(
    "faultloop_ssh_connect_seconds",
    "Time to open an SSH device session (TCP, key exchange, authentication, prompt)",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)


EVENTS_REFUSED = Counter(
    "faultloop_ssh_events_refused_total",
    "config_changed / host_key_changed events the sink refused (alarm queue full)",
    registry=REGISTRY,
)


def emit(sink: ObservationSink | None, events: list[Event]) -> None:
    """Hand events to the sink (after the commit that made them); a refusal is counted, never raised."""
    if sink is None or not events:
        return
    if not sink.submit_events(events):
        EVENTS_REFUSED.inc(len(events))
        log.warning("sink refused %d event(s) (%s)", len(events), ", ".join(e.event_type for e in events))


SSH_OUTPUT_CAPPED = Counter(
    "faultloop_ssh_output_capped_total",
    "SSH commands whose output passed FAULTLOOP_SSH_MAX_OUTPUT_BYTES (session closed, output dropped)",
    ["source"],
    registry=REGISTRY,
)
_RECV_BYTES = 65535


class OutputTooLarge(DomainError):
    """A command's output passed FAULTLOOP_SSH_MAX_OUTPUT_BYTES; the session was closed."""

    status = 502
    title = "Device output too large"


class _CappedChannel(SSHChannel):
    """netmiko's SSH channel, counting the bytes of the current command's output: past the cap it
    raises instead of reading on (netmiko would otherwise keep all a device sends in memory)."""

    def __init__(self, conn: Any, encoding: str, max_bytes: int, hostname: str) -> None:
        super().__init__(conn, encoding)
        self.max_bytes = max_bytes
        self.hostname = hostname
        self.read_bytes = 0
        self.command = ""
        self.capped = ""  # the error, once a command passed the cap: the session is done

    def start(self, command: str) -> None:
        self.read_bytes = 0
        self.command = command

    def read_buffer(self) -> str:
        if self.remote_conn is None:
            raise ReadException("Attempt to read, but there is no active channel.")
        if not self.remote_conn.recv_ready():
            return ""
        data = self.remote_conn.recv(_RECV_BYTES)
        if len(data) == 0:
            raise ReadException("Channel stream closed by remote device.")
        self.read_bytes += len(data)
        if self.read_bytes > self.max_bytes:
            self.capped = (
                f"{self.hostname}: the output of {self.command[:80]!r} passed {self.max_bytes} bytes "
                "(FAULTLOOP_SSH_MAX_OUTPUT_BYTES); session closed, nothing of it kept"
            )
            self.remote_conn.close()  # the device may go on sending: stop receiving it
            raise OutputTooLarge(self.capped)
        return str(data.decode(self.encoding, "ignore"))


class DeviceBusy(Conflict):
    """Another job holds this device's session lock."""


class DeviceUnreachable(DomainError):
    """The SSH session could not be opened or broke (timeout, refused, authentication failed)."""

    status = 502
    title = "Device unreachable"


def _describe(exc: BaseException, target: SshTarget) -> str:
    """A short reason without driver text (which may repeat connection parameters)."""
    where = f"{target.hostname} ({target.address}:{target.port})"
    if isinstance(exc, AuthenticationException):
        return f"{where}: SSH authentication failed"
    if isinstance(exc, NetmikoTimeoutException | TimeoutError | socket.timeout):
        return f"{where}: SSH timed out (connect, banner or read)"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: SSH connection refused"
    if isinstance(exc, OSError | EOFError | SSHException | ReadException):
        return f"{where}: SSH session failed ({type(exc).__name__})"
    return f"{where}: SSH session failed ({type(exc).__name__})"


@dataclass(frozen=True)
class SshTarget:
    """What one connection needs, read in a short transaction before any network I/O."""

    device_id: int
    hostname: str
    device_type: str
    address: str
    port: int
    username: str
    host_key_policy: str
    trusted_key: OfferedKey | None
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)


def netmiko_device_type(device: DeviceRecord) -> str:
    """The netmiko driver name of a device: its device_type, else its platform."""
    for candidate in (device.device_type, device.platform):
        if candidate and candidate in CLASS_MAPPER:
            return candidate
    return ""


def load_target(session: Session, vault: Vault, device_id: int) -> SshTarget:
    device = queries.device(session, device_id)
    if device is None:
        raise NotFound(f"device {device_id} not found")
    if not device.ssh_username or not (device.ssh_password_enc or device.ssh_private_key_enc):
        raise InvalidInput(f"device {device.hostname!r} has no SSH credentials", field="ssh")
    device_type = netmiko_device_type(device)
    if not device_type:
        raise InvalidInput(
            f"device {device.hostname!r}: device_type {device.device_type!r} has no SSH driver "
            "(expected a netmiko device type such as cisco_ios or juniper_junos)",
            field="device_type",
        )
    return SshTarget(
        device_id=device.id,
        hostname=device.hostname,
        device_type=device_type,
        address=device.address,
        port=device.ssh_port,
        username=device.ssh_username,
        host_key_policy=device.ssh_host_key_policy,
        trusted_key=hostkeys.trusted_key(hostkeys.get_host_key(session, device.id)),
        password=vault.decrypt(device.ssh_password_enc) if device.ssh_password_enc else None,
        private_key=vault.decrypt(device.ssh_private_key_enc) if device.ssh_private_key_enc else None,
    )


@contextmanager
def write_transaction(rt: Runtime) -> Iterator[Session]:
    """A write transaction taken in turn by the SSH pool's threads (faultloop.db.write_transaction:
    on SQLite a deferred transaction that has read before another connection committed fails at
    its first write; found by bench/config_backup.py with 8 workers)."""
    with db_write_transaction(rt.sessions) as session:
        yield session


_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def device_lock(device_id: int) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(device_id, threading.Lock())


def _load_pkey(text: str) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise InvalidInput("stored SSH private key is not an OpenSSH/PEM ed25519, ECDSA or RSA key", field="ssh")


def _pinned_driver(
    device_type: str, policy: PinnedHostKeyPolicy, max_output_bytes: int, hostname: str = ""
) -> type[Any]:
    """The netmiko driver with a paramiko client that has no known-hosts and only our policy, and
    a channel that caps each command's output at ``max_output_bytes``."""
    base: type[Any] = CLASS_MAPPER[device_type]

    def _build_ssh_client(self: Any) -> paramiko.SSHClient:
        client = paramiko.SSHClient()  # nothing loaded: every offered key reaches the policy
        client.set_missing_host_key_policy(policy)
        return client

    def establish_connection(self: Any, *args: Any, **kwargs: Any) -> None:
        base.establish_connection(self, *args, **kwargs)
        self.channel = _CappedChannel(self.remote_conn, self.encoding, max_output_bytes, hostname)

    def counted(name: str) -> Any:
        method = getattr(base, name)

        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(self.channel, _CappedChannel):  # one budget per command (or config set)
                if self.channel.capped:  # a caller that went on after the cap: nothing more is sent
                    raise OutputTooLarge(self.channel.capped)
                command = args[0] if args else kwargs.get("command_string", name)
                self.channel.start(command if isinstance(command, str) else name)
            return method(self, *args, **kwargs)

        return run

    return type(
        f"Pinned{base.__name__}",
        (base,),
        {
            "_build_ssh_client": _build_ssh_client,
            "establish_connection": establish_connection,
            "send_command": counted("send_command"),
            "send_command_timing": counted("send_command_timing"),
            "send_config_set": counted("send_config_set"),
        },
    )


def connect(
    target: SshTarget, policy: PinnedHostKeyPolicy, *, timeout_s: float, max_output_bytes: int = 16 * 1024 * 1024
) -> DeviceConn:
    driver = _pinned_driver(target.device_type, policy, max_output_bytes, target.hostname)
    params: dict[str, Any] = {
        "host": target.address,
        "port": target.port,
        "username": target.username,
        "password": target.password or "",
        # no separate enable secret in inventory yet: the login password serves (AAA-style)
        "secret": target.password or "",
        "pkey": _load_pkey(target.private_key) if target.private_key else None,
        "use_keys": bool(target.private_key),
        "allow_agent": False,
        "ssh_strict": True,
        "system_host_keys": False,
        "alt_host_keys": False,
        "ssh_config_file": None,
        "conn_timeout": timeout_s,
        "auth_timeout": timeout_s,
        "banner_timeout": timeout_s,
        "blocking_timeout": timeout_s,
        "read_timeout_override": timeout_s,
        "session_log": None,
    }
    conn: DeviceConn = driver(device_type=target.device_type, **params)
    return conn


def host_key_event(target: SshTarget, exc: HostKeyChanged, source: Source) -> Event:
    return Event(
        source=source,
        device=target.hostname,
        event_type="host_key_changed",
        severity="major",
        time=clock.now(),
        probable_cause="unauthorizedAccessAttempt",
        specific_problem="SSH host key changed",
        description=(
            f"SSH host key of {target.hostname} changed (trusted {exc.trusted.fingerprint}, "
            f"offered {exc.offered.fingerprint}); connection aborted before authentication"
        ),
        raw={
            "trusted_fingerprint": exc.trusted.fingerprint,
            "offered_fingerprint": exc.offered.fingerprint,
            "offered_key_type": exc.offered.key_type,
            "address": f"{target.address}:{target.port}",
        },
    )


@contextmanager
def device_session(
    rt: Runtime,
    device_id: int,
    *,
    sink: ObservationSink | None = None,
    source: Source = "poll",
    lock_timeout_s: float | None = None,
) -> Iterator[DeviceConn]:
    """Open a netmiko connection to the device; yields it and disconnects on exit.

    Raises NotFound / InvalidInput (inventory), DeviceBusy (lock), HostKeyError (key not
    trusted; nothing was sent) or DeviceUnreachable (timeout, refused, login failed). Errors
    raised inside the ``with`` block by the caller's own commands pass through unchanged.
    """
    timeout_s = rt.settings.ssh_timeout_s
    lock = device_lock(device_id)
    wait = lock_timeout_s if lock_timeout_s is not None else 3 * timeout_s
    if not lock.acquire(timeout=wait):
        raise DeviceBusy(f"device {device_id} is busy with another SSH session")
    try:
        with transaction(rt.sessions) as session:
            target = load_target(session, rt.vault, device_id)

        def refused(offered: OfferedKey) -> None:
            with write_transaction(rt) as session:
                hostkeys.record_pending(session, device_id=device_id, offered=offered)

        def seen(offered: OfferedKey, trust: bool) -> None:
            with write_transaction(rt) as session:
                hostkeys.record_seen(session, device_id=device_id, offered=offered, trust=trust)

        with target_session(
            target, timeout_s=timeout_s, max_output_bytes=rt.settings.ssh_max_output_bytes, sink=sink,
            source=source, key_seen=seen, key_refused=refused,
        ) as conn:  # fmt: skip
            yield conn
    finally:
        lock.release()


@contextmanager
def target_session(
    target: SshTarget,
    *,
    timeout_s: float,
    max_output_bytes: int,
    sink: ObservationSink | None,
    source: Source,
    key_seen: Callable[[OfferedKey, bool], None],
    key_refused: Callable[[OfferedKey], None],
) -> Iterator[DeviceConn]:
    """The session itself, without a database: what ``device_session`` does after reading the
    target, and what a collector does with a target from its group's directory. ``key_seen``
    records a verified key (trust: a first key under TOFU), ``key_refused`` a refused one (kept
    pending); a changed key also raises ``host_key_changed`` to ``sink``."""
    policy = PinnedHostKeyPolicy(policy=target.host_key_policy, trusted=target.trusted_key, device=target.hostname)
    started = time.monotonic()
    try:
        conn = connect(target, policy, timeout_s=timeout_s, max_output_bytes=max_output_bytes)
    except HostKeyError as exc:
        SSH_SESSIONS.labels(result="host_key_refused").inc()
        key_refused(exc.offered)
        if isinstance(exc, HostKeyChanged):
            emit(sink, [host_key_event(target, exc, source)])
        raise
    except (OSError, EOFError, SSHException, ReadException, ValueError) as exc:
        SSH_SESSIONS.labels(result="failed").inc()
        _remember_key(target, policy, key_seen)  # a key verified before a failed login is still a key seen
        raise DeviceUnreachable(_describe(exc, target)) from None
    SSH_CONNECT_SECONDS.observe(time.monotonic() - started)
    SSH_SESSIONS.labels(result="ok").inc()
    _remember_key(target, policy, key_seen)
    try:
        yield conn
    finally:
        # judged from the channel, not from the exception: a caller may have caught it
        channel = getattr(conn, "channel", None)
        capped = channel.capped if isinstance(channel, _CappedChannel) else ""
        try:
            conn.disconnect()
        except Exception:
            if not capped:  # a session closed at the cap has nothing to say on the way out
                raise
        finally:
            _output_capped(sink, target, source, capped)


# devices whose last session ended on the output cap: their next whole session clears the warning
# hostnames whose last session stopped at the cap (alarms are keyed by hostname; this process only:
# after a restart the next capped session raises it again, a normal one sends no clear)
_capped: set[str] = set()
_capped_guard = threading.Lock()


def _output_capped(sink: ObservationSink | None, target: SshTarget, source: Source, capped: str) -> None:
    with _capped_guard:
        was_capped = target.hostname in _capped
        if capped:
            _capped.add(target.hostname)
        else:
            _capped.discard(target.hostname)
    if capped:
        SSH_OUTPUT_CAPPED.labels(source=source).inc()
        emit(sink, [_output_capped_event(target, source, capped)])
    elif was_capped:
        emit(sink, [_output_capped_event(target, source, "")])



def _output_capped_event(target: SshTarget, source: Source, detail: str) -> Event:
    return Event(
        source=source,
        device=target.hostname,
        event_type="ssh_output_capped",
        severity="warning" if detail else "cleared",
        time=clock.now(),
        probable_cause="resourceAtOrNearingCapacity" if detail else "",
        specific_problem="SSH output over FAULTLOOP_SSH_MAX_OUTPUT_BYTES" if detail else "",
        description=detail or "SSH session ended normally again",
    )


def _remember_key(target: SshTarget, policy: PinnedHostKeyPolicy, key_seen: Callable[[OfferedKey, bool], None]) -> None:
    if policy.offered is None or target.host_key_policy == "off":
        return
    key_seen(policy.offered, policy.trusted_now)
