"""Helpers for the SSH/CLI collector tests: lab SSH devices in a background loop that
record authentication attempts, inventory rows pointing at them, a recording sink."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from cryptography.fernet import Fernet
from netmiko import ConnectHandler
from sqlalchemy.orm import Session

from faultloop import migrate
from faultloop.db import make_engine, make_sessionmaker
from faultloop.events import Event, Sample
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from faultloop.vault import Vault
from inventory import service as inventory
from inventory.schemas import DeviceIn
from lab.model import LabDevice, LabInterface
from lab.ssh import LAB_SSH_PASSWORD, LAB_SSH_USERNAME, SHELLS, _DeviceContext, _LabServer
from tests.support import BackgroundLoop


@dataclass
class RecordingSink:
    events: list[Event] = field(default_factory=list)

    def submit_events(self, events: Sequence[Event]) -> bool:
        self.events.extend(events)
        return True

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        return True


def _address() -> str:
    return f"127.33.{random.randint(1, 254)}.{random.randint(1, 254)}"


def make_lab_device(device_type: str, name: str) -> LabDevice:
    cisco = device_type == "cisco_ios"
    names = [f"GigabitEthernet0/{i}" if cisco else f"ge-0/0/{i}" for i in range(3)]
    interfaces = [
        LabInterface(
            if_index=i + 1, name=n, mac=f"52:54:00:00:01:{i:02x}", ip_address="10.1.0.1/30" if i == 0 else None
        )
        for i, n in enumerate(names)
    ]
    return LabDevice(
        name=name,
        address=_address(),
        role="access",
        vendor="cisco" if cisco else "juniper",
        platform="ios" if cisco else "junos",
        device_type=device_type,
        site="lab-1",
        interfaces=interfaces,
        ssh_port=random.randint(20_000, 60_000),
        boot_time=time.time() - 86400,
    )


class LabSsh:
    """Starts lab SSH devices; each listener records the usernames that tried to authenticate."""

    def __init__(self, bg: BackgroundLoop, host_key: asyncssh.SSHKey) -> None:
        self.bg = bg
        self.host_key = host_key
        self.acceptors: dict[str, asyncssh.SSHAcceptor] = {}
        self.auth_attempts: dict[str, list[str]] = {}

    def start(self, device: LabDevice, host_key: asyncssh.SSHKey, password: str = LAB_SSH_PASSWORD) -> None:
        ctx = _DeviceContext(device, LAB_SSH_USERNAME, password, None, SHELLS[device.device_type], time.time)
        attempts = self.auth_attempts.setdefault(device.name, [])

        class Recording(_LabServer):
            def begin_auth(self, username: str) -> bool:
                attempts.append(username)
                return True

            def validate_password(self, username: str, password: str) -> bool:
                attempts.append(f"password for {username}")
                return super().validate_password(username, password)

        async def listen() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen(
                device.address,
                device.ssh_port,
                server_host_keys=[host_key],
                server_factory=lambda: Recording(ctx),
                line_editor=False,
                allow_scp=False,
                reuse_address=True,
                keepalive_interval=0,
                login_timeout=30,
            )

        self.acceptors[device.name] = self.bg.run(listen())

    def new_device(
        self, device_type: str, name: str, host_key: asyncssh.SSHKey | None = None, password: str = LAB_SSH_PASSWORD
    ) -> LabDevice:
        for _ in range(5):  # a random port may be taken by a parallel run
            device = make_lab_device(device_type, name)
            try:
                self.start(device, host_key or self.host_key, password)
            except OSError:
                continue
            return device
        raise RuntimeError("no free port")

    def stop(self, name: str) -> None:
        acceptor = self.acceptors.pop(name)

        async def close() -> None:
            acceptor.close()
            await acceptor.wait_closed()

        self.bg.run(close())

    def stop_all(self) -> None:
        for name in list(self.acceptors):
            self.stop(name)


def push_config(device: LabDevice, commands: list[str]) -> str:
    """Change the device's configuration through its CLI, as an engineer would (netmiko, no host key pinning)."""
    params: dict[str, Any] = {
        "device_type": device.device_type,
        "host": device.address,
        "port": device.ssh_port,
        "username": LAB_SSH_USERNAME,
        "password": LAB_SSH_PASSWORD,
        "secret": LAB_SSH_PASSWORD,
        "conn_timeout": 10,
        "system_host_keys": False,
        "alt_host_keys": False,
    }
    with ConnectHandler(**params) as conn:
        if device.device_type == "cisco_ios":
            conn.enable()
            return str(conn.send_config_set(commands))
        out = str(conn.send_config_set(commands, exit_config_mode=False))
        out += str(conn.commit(and_quit=True))
        return out


def add_to_inventory(
    session: Session, vault: Vault, device: LabDevice, *, policy: str = "tofu", password: str = LAB_SSH_PASSWORD
) -> int:
    row = inventory.create_device(
        session,
        vault,
        DeviceIn.model_validate(
            {
                "hostname": device.name,
                "address": device.address,
                "role": "access",
                "vendor": device.vendor,
                "platform": device.platform,
                "device_type": device.device_type,
                "ssh": {
                    "port": device.ssh_port,
                    "username": LAB_SSH_USERNAME,
                    "password": password,
                    "host_key_policy": policy,
                },
            }
        ),
        actor="test",
    )
    session.commit()
    return row.id


class HungServer:
    """Accepts TCP connections and never sends an SSH banner."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.address = _address()
        self.sock.bind((self.address, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture(scope="module")
def bg() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture
def host_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def lab_ssh(bg: BackgroundLoop, host_key: asyncssh.SSHKey) -> Iterator[LabSsh]:
    lab = LabSsh(bg, host_key)
    yield lab
    lab.stop_all()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def file_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on its own SQLite file with real commits.

    The shared ``runtime`` fixture runs everything on one connection inside savepoints, so
    a request's rollback also undoes what a nested job committed; threads of the SSH pool
    and "commit, then fail the request" paths need independent connections, as in production.
    """
    key = Fernet.generate_key().decode()
    settings = Settings(data_dir=tmp_path / "var", secret_key=key, ssh_workers=2, ssh_timeout_s=2)
    engine = make_engine(f"sqlite:///{tmp_path / 'own.db'}")
    migrate.upgrade(engine)
    rt = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=Vault([key.encode()]))
    yield rt
    engine.dispose()
