"""The API reaches running services only through the handles the composition root hands it
(api/services.py): poll-now, the poller's live interface rates, backup-now, the event sink and
the order executor. A pipeline built with its own sink (a recorder, as the tests build it) must
see everything the API starts report there; before the handles, orders started from the API
reported to nobody."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import asyncssh
import pytest
from fastapi.testclient import TestClient

from api.main import create_api
from collectors.backup import backup_device
from collectors.jobs import PollerService
from faultloop.cmd.app import build_pipeline, create_app, service_handles
from faultloop.db import transaction
from faultloop.runtime import Runtime
from tests.collectors import cli_lab
from tests.collectors import conftest as collectors_fixtures
from tests.collectors.cli_lab import RecordingSink, add_to_inventory, push_config
from tests.collectors.snmpd import COMMUNITY, Snmpd
from tests.conftest import make_token
from tests.provisioning.lab import add_device, lab_device

bg, host_key, lab_ssh, file_runtime, sink = (
    cli_lab.bg,
    cli_lab.host_key,
    cli_lab.lab_ssh,
    cli_lab.file_runtime,
    cli_lab.sink,
)
snmpd = collectors_fixtures.snmpd

needs_snmpd = pytest.mark.skipif(shutil.which("/usr/sbin/snmpd") is None, reason="net-snmp snmpd not installed")


def _pipeline_client(rt: Runtime, sink: RecordingSink) -> TestClient:
    # the services are not started: the handles must work for the API on their own
    return TestClient(create_app(rt, build_pipeline(rt, sink=sink), own_pipeline=False), raise_server_exceptions=False)


def _tokens(rt: Runtime, *roles: str) -> list[dict[str, str]]:
    with transaction(rt.sessions) as session:
        return [{"Authorization": f"Bearer {make_token(session, f'{role}-svc', role)}"} for role in roles]


def test_orders_started_from_the_api_report_to_the_pipelines_own_sink(file_runtime, lab_ssh, bg, sink) -> None:
    rt = file_runtime
    lab, transport = lab_device(lab_ssh, bg, "svc-ord1")
    try:
        with transaction(rt.sessions) as session:
            device_id = add_device(session, rt.vault, lab)
        backup_device(rt, device_id, sink=None)  # trusts the device's first key (TOFU)
        lab_ssh.stop(lab.name)
        lab_ssh.start(lab, asyncssh.generate_private_key("ssh-ed25519"))
        prov, noc = _tokens(rt, "provisioner", "noc")
        body = {
            "service_type": "interface_state",
            "customer": "ACME",
            "params": {"state": "down"},
            "targets": [{"device": lab.name, "params": {"interface": lab.interfaces[1].name}}],
        }
        with _pipeline_client(rt, sink) as client:
            order_id = client.post("/api/v1/orders", json=body, headers=prov).json()["id"]
            assert client.post(f"/api/v1/orders/{order_id}/plan", headers=prov).status_code == 200
            assert client.post(f"/api/v1/orders/{order_id}/approve", headers=noc).status_code == 200
            r = client.post(f"/api/v1/orders/{order_id}/execute", headers=prov)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "rolled_back", r.json()["result"]
        assert lab.interfaces[1].admin_up is True  # nothing was sent
        assert [(e.event_type, e.severity, e.source, e.device) for e in sink.events] == [
            ("host_key_changed", "major", "provisioning", lab.name)
        ]
    finally:
        transport.close()


def test_backups_and_host_key_accepts_from_the_api_report_like_the_cli_collector(file_runtime, lab_ssh, sink) -> None:
    """The backup handle is the CLI collector's: a change no order explains is also an unplanned change."""
    rt = file_runtime
    lab = lab_ssh.new_device("cisco_ios", "svc-bk1")
    with transaction(rt.sessions) as session:
        device_id = add_to_inventory(session, rt.vault, lab)
    (admin,) = _tokens(rt, "admin")
    url = f"/api/v1/devices/{device_id}/config-backups"
    with _pipeline_client(rt, sink) as client:
        assert client.post(url, headers=admin).json()["status"] == "first_version"
        push_config(lab, ["interface GigabitEthernet0/1", "description NOT-ORDERED"])
        assert client.post(url, headers=admin).json()["status"] == "new_version"
        assert [e.event_type for e in sink.events] == ["config_changed", "unplanned_change"]

        lab_ssh.stop(lab.name)
        lab_ssh.start(lab, asyncssh.generate_private_key("ssh-ed25519"))
        assert client.post(url, headers=admin).status_code == 409
        fingerprint = client.get(f"/api/v1/devices/{device_id}/ssh-host-key", headers=admin).json()[
            "pending_fingerprint"
        ]
        accept = f"/api/v1/devices/{device_id}/ssh-host-key/accept"
        assert client.post(accept, json={"fingerprint": fingerprint}, headers=admin).status_code == 200
    assert [(e.event_type, e.severity) for e in sink.events[2:]] == [
        ("host_key_changed", "major"),
        ("host_key_changed", "cleared"),
    ]


def _snmp_device(
    client: TestClient, auth: Callable[[str], dict[str, str]], name: str, snmpd: Snmpd, **snmp: Any
) -> int:
    body = {
        "hostname": name,
        "address": snmpd.host,
        "role": "server",
        "snmp": {"version": "v2c", "port": snmpd.port, **snmp},
    }
    r = client.post("/api/v1/devices", json=body, headers=auth("admin"))
    assert r.status_code == 201, r.text
    device_id: int = r.json()["id"]
    return device_id


@needs_snmpd
def test_poll_now_findings_go_to_the_pipelines_sink(runtime, auth, snmpd) -> None:
    recorder = RecordingSink()
    runtime.settings.poll_timeout_s, runtime.settings.poll_retries = 0.2, 0
    with _pipeline_client(runtime, recorder) as client:
        dev = _snmp_device(client, auth, "svc-wrong", snmpd, community="not-the-community")
        r = client.post(f"/api/v1/devices/{dev}/poll", headers=auth("noc"))
    assert r.status_code == 200 and r.json()["events"] == ["device_unreachable"]
    assert [(e.event_type, e.device) for e in recorder.events] == [("device_unreachable", "svc-wrong")]


@needs_snmpd
async def test_interface_rates_come_from_the_handed_in_poller(runtime, auth, snmpd) -> None:
    recorder = RecordingSink()
    poller = PollerService(runtime, recorder)
    with TestClient(create_api(runtime), raise_server_exceptions=False) as alone:
        dev = _snmp_device(alone, auth, "svc-live", snmpd, community=COMMUNITY)
    await poller.open()  # the poller's engine and inventory, without its schedule
    try:
        handles = service_handles(runtime, poller=poller, sink=recorder, backup_sink=recorder)
        for _ in range(2):  # a rate needs two polls
            result, _tracker = await handles.poll_now(dev)
            assert result.ok
        status = f"/api/v1/devices/{dev}/interfaces/status"
        with TestClient(create_api(runtime, services=handles), raise_server_exceptions=False) as client:
            live = {i["name"]: i["in_bps"] for i in client.get(status, headers=auth("viewer")).json()["interfaces"]}
        with TestClient(create_api(runtime), raise_server_exceptions=False) as alone:
            stored = {i["name"]: i["in_bps"] for i in alone.get(status, headers=auth("viewer")).json()["interfaces"]}
    finally:
        await poller.stop()
    assert live["lo"] is not None  # our own SNMP traffic moves the loopback counters
    assert set(stored) == set(live) and set(stored.values()) == {None}  # without a poller: no rates
