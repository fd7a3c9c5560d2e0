"""The config backup, CLI result and host key routes: roles, bad inputs, on-demand backup."""

from __future__ import annotations

import asyncssh
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_api
from api.services import one_shot
from collectors.backup import store_backup
from collectors.backup_models import ConfigBackup
from devices.models import SshHostKey
from faultloop.audit.models import AuditEntry
from faultloop.db import transaction
from inventory import queries
from inventory.models import Device
from tests.collectors import cli_lab
from tests.collectors.cli_lab import add_to_inventory, push_config
from tests.conftest import make_token

bg, host_key, lab_ssh, sink = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.sink
file_runtime = cli_lab.file_runtime

IOS_A = (
    "!\n! Last configuration change at 10:00:00 UTC Mon Jan 5 2026 by a\nhostname r1\nsnmp-server community s3cret RO\n"
)
IOS_B = (
    "!\n! Last configuration change at 11:00:00 UTC Mon Jan 5 2026 by a\nhostname r1\nsnmp-server community n3w RO\n"
)


@pytest.fixture
def app_client(runtime, sink):
    app = create_api(runtime, services=one_shot(runtime, sink=sink))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _stored(session, vault, name: str) -> tuple[int, list[int]]:
    device_id = add_to_inventory(session, vault, cli_lab.make_lab_device("cisco_ios", name))
    device = queries.device(session, device_id)
    ids = []
    for text in (IOS_A, IOS_B):
        row, _prev, _created = store_backup(session, vault, device=device, text=text, trigger="schedule", actor="t")
        ids.append(row.id)
    session.commit()
    return device_id, ids


def test_list_text_and_diff_with_roles(client, auth, session, vault):
    device_id, (a, b) = _stored(session, vault, "api-r1")
    listed = client.get(f"/api/v1/devices/{device_id}/config-backups", headers=auth("viewer"))
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 2 and [i["id"] for i in body["items"]] == [b, a]
    assert body["items"][0]["lines_added"] == 1 and body["items"][0]["lines_removed"] == 1
    assert "s3cret" not in listed.text  # metadata only

    # config text may hold secrets: not for viewers or technicians
    for role in ("viewer", "technician"):
        assert client.get(f"/api/v1/devices/{device_id}/config-backups/{a}", headers=auth(role)).status_code == 403
    text = client.get(f"/api/v1/devices/{device_id}/config-backups/{a}", headers=auth("provisioner"))
    assert text.status_code == 200 and text.text == IOS_A

    diff = client.get(f"/api/v1/devices/{device_id}/config-backups/{b}/diff", headers=auth("noc"))
    assert diff.status_code == 200 and diff.headers["x-diff-from"] == str(a)
    changed = [line for line in diff.text.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["-snmp-server community s3cret RO", "+snmp-server community n3w RO"]
    reverse = client.get(f"/api/v1/devices/{device_id}/config-backups/{a}/diff?against={b}", headers=auth("admin"))
    assert "+snmp-server community s3cret RO" in reverse.text


def test_bad_inputs(client, auth, session, vault):
    device_id, (a, _b) = _stored(session, vault, "api-r2")
    other_id, (other_a, _) = _stored(session, vault, "api-r3")
    h = auth("admin")

    r = client.get("/api/v1/devices/999999/config-backups", headers=h)
    assert r.status_code == 404 and r.json()["detail"] == "device 999999 not found"
    r = client.get(f"/api/v1/devices/{device_id}/config-backups/{other_a}", headers=h)
    assert r.status_code == 404 and r.json()["detail"] == f"device 'api-r2' has no config backup {other_a}"
    r = client.get(f"/api/v1/devices/{device_id}/config-backups/{a}/diff?against={other_a}", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "against"
    assert r.json()["detail"] == (
        f"against: expected the id of another config backup of device 'api-r2', got {other_a}"
    )
    r = client.get(f"/api/v1/devices/{device_id}/config-backups/{a}/diff?against=0", headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "against"
    r = client.get(f"/api/v1/devices/{device_id}/cli?command=show%20version", headers=h)
    assert r.status_code == 404 and r.json()["detail"] == "no result of 'show version' collected from 'api-r2' yet"
    r = client.post(f"/api/v1/devices/{device_id}/ssh-host-key/accept", json={}, headers=h)
    assert r.status_code == 409 and r.json()["detail"] == "device 'api-r2' has no pending SSH host key to accept"
    r = client.post(f"/api/v1/devices/{device_id}/ssh-host-key/accept", json={"key": "x"}, headers=h)
    assert r.status_code == 422
    session.expire_all()
    assert session.scalar(select(SshHostKey).where(SshHostKey.device_id == device_id)) is None


def test_backup_now_for_a_device_without_ssh_writes_nothing(client, auth, session, vault):
    device_id, _ = _stored(session, vault, "api-r4")
    device = session.get(Device, device_id)
    device.ssh_username, device.ssh_password_enc = None, None
    session.commit()
    r = client.post(f"/api/v1/devices/{device_id}/config-backups", headers=auth("noc"))
    assert r.status_code == 422 and r.json()["detail"] == "device 'api-r4' has no SSH credentials"
    session.expire_all()
    count = session.scalar(select(func.count()).select_from(ConfigBackup).where(ConfigBackup.device_id == device_id))
    assert count == 2
    r = client.post(f"/api/v1/devices/{device_id}/config-backups", headers=auth("provisioner"))
    assert r.status_code == 403


def test_backup_now_over_ssh_and_host_key_view(app_client, auth, lab_ssh, sink, session, vault):
    lab = lab_ssh.new_device("cisco_ios", "api-ios1")
    device_id = add_to_inventory(session, vault, lab)
    h = auth("noc")
    first = app_client.post(f"/api/v1/devices/{device_id}/config-backups", headers=h)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "first_version" and first.json()["backup"]["actor"] == "noc-user"

    push_config(lab, ["interface GigabitEthernet0/1", "description UPLINK-9"])
    second = app_client.post(f"/api/v1/devices/{device_id}/config-backups", headers=h)
    assert second.json()["status"] == "new_version"
    assert second.json()["previous_id"] == first.json()["backup"]["id"]
    assert [e.event_type for e in sink.events] == ["config_changed"]
    third = app_client.post(f"/api/v1/devices/{device_id}/config-backups", headers=h)
    assert third.json()["status"] == "unchanged"

    key = app_client.get(f"/api/v1/devices/{device_id}/ssh-host-key", headers=auth("viewer"))
    assert key.status_code == 200
    assert key.json()["policy"] == "tofu" and key.json()["fingerprint"].startswith("SHA256:")
    assert key.json()["pending_fingerprint"] is None
    assert "lab-admin" not in key.text


def test_backup_now_with_changed_host_key_is_409_and_accept_is_admin_only(file_runtime, lab_ssh, sink):
    # own database: the pending key is committed even though the request fails with 409
    rt = file_runtime
    lab = lab_ssh.new_device("juniper_junos", "api-jnp1")
    with transaction(rt.sessions) as session:
        device_id = add_to_inventory(session, rt.vault, lab)
        admin = {"Authorization": f"Bearer {make_token(session, 'root', 'admin')}"}
        noc = {"Authorization": f"Bearer {make_token(session, 'ops', 'noc')}"}
    app = create_api(rt, services=one_shot(rt, sink=sink))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post(f"/api/v1/devices/{device_id}/config-backups", headers=admin).status_code == 201
        lab_ssh.stop("api-jnp1")
        lab_ssh.start(lab, asyncssh.generate_private_key("ssh-ed25519"))

        r = client.post(f"/api/v1/devices/{device_id}/config-backups", headers=admin)
        assert r.status_code == 409 and "SSH host key changed" in r.json()["detail"]
        assert r.json()["field"] == "ssh_host_key"
        assert [e.event_type for e in sink.events] == ["host_key_changed"]
        pending = client.get(f"/api/v1/devices/{device_id}/ssh-host-key", headers=noc).json()
        fp = pending["pending_fingerprint"]
        assert fp.startswith("SHA256:") and fp != pending["fingerprint"]

        url = f"/api/v1/devices/{device_id}/ssh-host-key/accept"
        assert client.post(url, json={"fingerprint": fp}, headers=noc).status_code == 403
        ok = client.post(url, json={"fingerprint": fp}, headers=admin)
        assert ok.status_code == 200 and ok.json()["fingerprint"] == fp and ok.json()["trusted_by"] == "root"
        # the host_key_changed alarm is cleared once the accept committed
        assert [(e.event_type, e.severity) for e in sink.events] == [
            ("host_key_changed", "major"),
            ("host_key_changed", "cleared"),
        ]
        assert sink.events[-1].device == "api-jnp1" and sink.events[-1].raw == {"fingerprint": fp, "actor": "root"}
        again = client.post(f"/api/v1/devices/{device_id}/config-backups", headers=admin)
        assert again.json()["status"] == "unchanged"
    with transaction(rt.sessions) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "ssh_host_key.accept")).one()
        assert entry.actor == "root" and entry.after["fingerprint"] == fp
