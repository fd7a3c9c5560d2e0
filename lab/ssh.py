"""The lab network's SSH servers: one asyncssh listener per simulated device.

Each listener serves the vendor CLI for its device (``lab.shell``), reading and
changing the same LabDevice the SNMP agent serves. netmiko's ``cisco_ios`` and
``juniper_junos`` drivers work against it unmodified.

Cost per idle device is one listening socket plus asyncssh's per-listener options; a
shell object exists only while a session is open. One host key serves the whole lab.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncssh

from lab.model import Clock, LabDevice
from lab.shell.base import Shell
from lab.shell.cisco_ios import CiscoIosShell
from lab.shell.juniper_junos import JunosShell

log = logging.getLogger(__name__)

LAB_SSH_USERNAME = "admin"
LAB_SSH_PASSWORD = "lab-admin"  # noqa: S105 - the lab's documented, fake credential

# how often an open session checks whether fault injection crashed its device
CRASH_CHECK_INTERVAL_S = 0.5

SHELLS: dict[str, type[Shell]] = {
    "cisco_ios": CiscoIosShell,
    "cisco_xe": CiscoIosShell,
    "juniper_junos": JunosShell,
    "juniper": JunosShell,
}

_memory_host_key: asyncssh.SSHKey | None = None


def lab_host_key(path: Path | None = None) -> asyncssh.SSHKey:
    """The lab's single ed25519 host key.

    With ``path`` the key is created once (mode 0600) and reused across runs, so
    collectors that pin host keys keep trusting the lab; without, it lives in memory
    for this process.
    """
    global _memory_host_key
    if path is None:
        if _memory_host_key is None:
            _memory_host_key = asyncssh.generate_private_key("ssh-ed25519")
        return _memory_host_key
    path = Path(path)
    if path.exists():
        return asyncssh.read_private_key(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="faultloop-lab")
    data = key.export_private_key("openssh")
    # O_EXCL: two processes racing to create the key must not interleave writes
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return asyncssh.read_private_key(str(path))
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return key


class _DeviceContext:
    """What every connection to one device shares."""

    __slots__ = ("device", "username", "password", "on_change", "shell_cls", "clock", "shared")

    def __init__(
        self,
        device: LabDevice,
        username: str,
        password: str,
        on_change: Callable[[LabDevice, str], None] | None,
        shell_cls: type[Shell],
        clock: Clock,
    ) -> None:
        self.device = device
        self.username = username
        self.password = password
        self.on_change = on_change
        self.shell_cls = shell_cls
        self.clock = clock
        self.shared: dict[str, Any] = {}


class _LabServer(asyncssh.SSHServer):
    def __init__(self, ctx: _DeviceContext) -> None:
        self._ctx = ctx
        self._conn: asyncssh.SSHServerConnection | None = None
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        if self._ctx.device.crashed:
            # a crashed box answers nothing: drop before the SSH handshake completes
            conn.abort()
            return
        self._watch = asyncio.get_running_loop().call_later(CRASH_CHECK_INTERVAL_S, self._check_crashed)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._conn = None

    def _check_crashed(self) -> None:
        if self._conn is None:
            return
        if self._ctx.device.crashed:
            self._conn.abort()
            return
        self._watch = asyncio.get_running_loop().call_later(CRASH_CHECK_INTERVAL_S, self._check_crashed)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        ok_user = hmac.compare_digest(username.encode(), self._ctx.username.encode())
        ok_pass = hmac.compare_digest(password.encode(), self._ctx.password.encode())
        return ok_user and ok_pass

    def session_requested(self) -> asyncssh.SSHServerSession:
        assert self._conn is not None
        return _LabSession(self._ctx, self._conn)


class _LabSession(asyncssh.SSHServerSession):
    def __init__(self, ctx: _DeviceContext, conn: asyncssh.SSHServerConnection) -> None:
        self._ctx = ctx
        self._conn = conn
        self._chan: asyncssh.SSHServerChannel | None = None
        self._exec: str | None = None
        self._shell = ctx.shell_cls(
            ctx.device,
            username=conn.get_extra_info("username") or ctx.username,
            password=ctx.password,
            on_change=ctx.on_change,
            clock=ctx.clock,
            shared=ctx.shared,
        )

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:  # type: ignore[override]
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: Any, term_modes: Any) -> bool:
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._exec = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return False  # no sftp / netconf on the lab boxes

    def session_started(self) -> None:
        assert self._chan is not None
        if self._exec is not None:
            self._chan.write(self._shell.run_exec(self._exec))
            self._chan.exit(0)
            return
        self._chan.write(self._shell.greeting())

    def data_received(self, data: str, datatype: Any) -> None:
        assert self._chan is not None
        if self._ctx.device.crashed:
            self._conn.abort()
            return
        out = self._shell.feed(data)
        if out:
            self._chan.write(out)
        if self._shell.closed:
            self._chan.exit(0)

    def eof_received(self) -> bool:
        return False

    def break_received(self, msec: int) -> bool:
        return True


async def start_ssh_server(
    device: LabDevice,
    *,
    host_keys: asyncssh.SSHKey | Sequence[asyncssh.SSHKey],
    username: str = LAB_SSH_USERNAME,
    password: str = LAB_SSH_PASSWORD,
    on_change: Callable[[LabDevice, str], None] | None = None,
    clock: Clock = time.time,
) -> asyncssh.SSHAcceptor:
    """Listen on ``device.address:device.ssh_port`` with the device's vendor CLI.

    ``on_change(device, interface_name)`` runs after a CLI change to an interface's
    admin state, description or IP address. Close the returned acceptor to stop.
    """
    shell_cls = SHELLS.get(device.device_type)
    if shell_cls is None:
        shell_cls = JunosShell if device.vendor == "juniper" else CiscoIosShell
    ctx = _DeviceContext(device, username, password, on_change, shell_cls, clock)
    keys = [host_keys] if isinstance(host_keys, asyncssh.SSHKey) else list(host_keys)
    return await asyncssh.listen(
        device.address,
        device.ssh_port,
        server_host_keys=keys,
        server_factory=lambda: _LabServer(ctx),
        line_editor=False,  # the shells do their own echo, as a router's CLI does
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        reuse_address=True,
        keepalive_interval=0,
        login_timeout=30,
    )
