"""A marker SSH password never shows up in logs, order records, the API, metrics or the DB file."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_api
from faultloop.db import transaction
from provisioning import service as orders
from provisioning.executor import execute_order
from tests.collectors import cli_lab
from tests.conftest import make_token
from tests.provisioning.lab import add_device

bg, host_key, lab_ssh, file_runtime = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.file_runtime
MARKER = "Marker-Secret-7f3a9c"


def test_marker_password_never_leaks_from_a_rolled_back_order(file_runtime, lab_ssh, caplog, tmp_path) -> None:
    rt = file_runtime
    rt.settings = rt.settings.model_copy(update={"ssh_timeout_s": 15, "provisioning_check_timeout_s": 2})
    lab = lab_ssh.new_device("cisco_ios", "pv-secret1", password=MARKER)
    caplog.set_level(logging.DEBUG)
    with transaction(rt.sessions) as session:
        add_device(session, rt.vault, lab, snmp=False, password=MARKER)
        body = {
            "service_type": "business_internet",
            "customer": "ACME",
            "params": {"vlan": 150, "description": "S"},
            "targets": [{"device": lab.name, "params": {"interface": "GigabitEthernet0/7"}}],
        }  # rejected
        order = orders.create_order(session, orders.parse_order(body), actor="pat")
        orders.act(session, order.id, "plan", actor="pat", role="provisioner", four_eyes=True, vault=rt.vault)
        orders.act(session, order.id, "approve", actor="nina", role="noc", four_eyes=True, vault=rt.vault)
        token = make_token(session, "viewer1", "viewer")
    outcome = execute_order(rt, order.id, actor="nina", role="noc")
    assert outcome.state == "rolled_back", outcome.message
    assert MARKER not in repr(outcome)
    assert all(MARKER not in r.getMessage() and MARKER not in str(r.args) for r in caplog.records)
    with TestClient(create_api(rt)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for path in (
            f"/api/v1/orders/{order.id}",
            f"/api/v1/orders/{order.id}/timeline",
            "/api/v1/services",
            "/metrics",
        ):
            r = client.get(path, headers=headers)
            assert r.status_code == 200 and MARKER not in r.text, path
    rt.engine.dispose()
    db_files = list(Path(tmp_path).glob("own.db*"))
    assert db_files
    for db_file in db_files:
        assert MARKER.encode() not in db_file.read_bytes()
