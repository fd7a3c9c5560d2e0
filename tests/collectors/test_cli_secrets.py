"""A marker SSH password never leaves the vault except towards the device: not in logs (DEBUG,
paramiko and netmiko included), events, exceptions, API output or the database file."""

from __future__ import annotations

import logging

import asyncssh
import pytest
from fastapi.testclient import TestClient

from api.main import create_api
from api.services import one_shot
from collectors.backup import backup_device
from collectors.cli_collect import collect_device
from devices.hostkeys import HostKeyChanged
from devices.ssh import DeviceUnreachable
from faultloop.db import transaction
from faultloop.metrics import exposition
from inventory.models import Device
from tests.collectors import cli_lab
from tests.collectors.cli_lab import add_to_inventory
from tests.conftest import make_token

bg, host_key, lab_ssh, sink, file_runtime = (
    cli_lab.bg,
    cli_lab.host_key,
    cli_lab.lab_ssh,
    cli_lab.sink,
    cli_lab.file_runtime,
)

MARKER = "MARKER-sshpass-c0ffee"
WRONG = "MARKER-wrongpass-beef"


def test_ssh_password_never_leaks(file_runtime, lab_ssh, sink, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    rt = file_runtime
    good = lab_ssh.new_device("cisco_ios", "leak-ios1", password=MARKER)
    bad = lab_ssh.new_device("juniper_junos", "leak-jnp1", password=MARKER)
    with transaction(rt.sessions) as session:
        good_id = add_to_inventory(session, rt.vault, good, password=MARKER)
        bad_id = add_to_inventory(session, rt.vault, bad, password=WRONG)
        token = make_token(session, "leak-admin", "admin")

    backup_device(rt, good_id, sink=sink)
    collect_device(rt, good_id, sink=sink)
    with pytest.raises(DeviceUnreachable) as failed:
        backup_device(rt, bad_id, sink=sink)
    assert str(failed.value) == f"leak-jnp1 ({bad.address}:{bad.ssh_port}): SSH authentication failed"
    assert MARKER not in repr(failed.value.__context__) and WRONG not in repr(failed.value.__context__)

    lab_ssh.stop("leak-ios1")
    lab_ssh.start(good, asyncssh.generate_private_key("ssh-ed25519"), MARKER)
    with pytest.raises(HostKeyChanged):
        backup_device(rt, good_id, sink=sink)

    app = create_api(rt, services=one_shot(rt, sink=sink))
    h = {"Authorization": f"Bearer {token}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        bodies = [
            client.get(f"/api/v1/devices/{good_id}/config-backups", headers=h).text,
            client.get(f"/api/v1/devices/{good_id}/config-backups/1", headers=h).text,
            client.get(f"/api/v1/devices/{good_id}/cli", headers=h).text,
            client.get(f"/api/v1/devices/{good_id}/ssh-host-key", headers=h).text,
            client.post(f"/api/v1/devices/{bad_id}/config-backups", headers=h).text,
            client.post(f"/api/v1/devices/{good_id}/config-backups", headers=h).text,
        ]
    assert "SSH authentication failed" in bodies[4] and "SSH host key changed" in bodies[5]

    with transaction(rt.sessions) as session:
        assert session.get(Device, good_id).ssh_password_enc is not None  # stored, encrypted
    rt.engine.dispose()
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("own.db*"))
    assert b"leak-ios1" in db_bytes  # the right file
    haystacks = {
        "logs": caplog.text,
        "events": repr(sink.events),
        "api": "\n".join(bodies),
        "metrics": exposition().decode(),
        "db": db_bytes.decode("latin-1"),
    }
    assert len(sink.events) == 2  # host_key_changed twice (job, then the API's backup)
    for where, text in haystacks.items():
        assert MARKER not in text, where
        assert WRONG not in text, where
