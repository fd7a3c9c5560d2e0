"""End to end with the real alarm engine as the sink: a changed SSH host key raises a major
alarm, the admin's accept clears it; a pushed config change raises config_changed."""

from __future__ import annotations

import asyncssh
from fastapi.testclient import TestClient

from alarms import service as alarms
from alarms.bus import AlarmBus
from alarms.runner import AlarmEngine
from api.main import create_api
from api.services import one_shot
from faultloop.db import transaction
from tests.collectors import cli_lab
from tests.collectors.cli_lab import add_to_inventory, push_config
from tests.conftest import make_token

bg, host_key, lab_ssh, file_runtime = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.file_runtime


def _active(rt, device: str) -> list[tuple[str, str]]:
    with transaction(rt.sessions) as session:
        rows, _total = alarms.list_alarms(session, limit=50, offset=0, device=device)
        return sorted((a.alarm_type, a.severity) for a in rows)


def test_host_key_change_raises_and_accept_clears_the_alarm(file_runtime, lab_ssh):
    rt = file_runtime
    engine = AlarmEngine(rt, AlarmBus())  # not started: run_once() drains what the collectors submitted
    lab = lab_ssh.new_device("cisco_ios", "alm-ios1")
    with transaction(rt.sessions) as session:
        device_id = add_to_inventory(session, rt.vault, lab)
        admin = {"Authorization": f"Bearer {make_token(session, 'root', 'admin')}"}
    app = create_api(rt, services=one_shot(rt, sink=engine))
    url = f"/api/v1/devices/{device_id}/config-backups"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post(url, headers=admin).status_code == 201
        push_config(lab, ["interface GigabitEthernet0/1", "description ALARM-TEST"])
        assert client.post(url, headers=admin).json()["status"] == "new_version"
        engine.run_once()
        assert _active(rt, "alm-ios1") == [("config_changed", "warning")]

        lab_ssh.stop("alm-ios1")
        lab_ssh.start(lab, asyncssh.generate_private_key("ssh-ed25519"))
        assert client.post(url, headers=admin).status_code == 409
        engine.run_once()
        assert _active(rt, "alm-ios1") == [("config_changed", "warning"), ("host_key_changed", "major")]

        accepted = client.post(f"/api/v1/devices/{device_id}/ssh-host-key/accept", json={}, headers=admin)
        assert accepted.status_code == 200
        engine.run_once()
        assert _active(rt, "alm-ios1") == [("config_changed", "warning")]
