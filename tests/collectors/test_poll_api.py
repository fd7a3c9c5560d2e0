"""Poller routes and CLI against net-snmp snmpd: poll now, status, samples, bad inputs."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from collectors.models import DevicePollState, InterfaceSample
from tests.collectors.snmpd import COMMUNITY, V3_AUTH, V3_PRIV, V3_USER

pytestmark = pytest.mark.skipif(shutil.which("/usr/sbin/snmpd") is None, reason="net-snmp snmpd not installed")



def make_device(client, auth, hostname: str, address: str, snmp: dict | None) -> int:
    body = {"hostname": hostname, "address": address, "role": "server", **({"snmp": snmp} if snmp else {})}
    r = client.post("/api/v1/devices", json=body, headers=auth("admin"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_poll_now_status_and_samples(client, auth, snmpd, session):
    v3 = {
        "version": "v3",
        "port": snmpd.port,
        "user": V3_USER,
        "auth_protocol": "SHA-256",
        "auth_key": V3_AUTH,
        "priv_protocol": "AES-128",
        "priv_key": V3_PRIV,
    }
    dev = make_device(client, auth, "snmpd-v3", snmpd.host, v3)
    r = client.post(f"/api/v1/devices/{dev}/poll", headers=auth("noc"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["reachable"] is True and body["sys_name"] == "fl-snmpd"
    assert body["sys_location"] == "loopback"  # snmpd.conf's sysLocation
    assert body["interfaces"] and {i["oper_status"] for i in body["interfaces"]} <= {"up", "down", "unknown"}
    assert V3_AUTH not in r.text and V3_PRIV not in r.text

    r = client.get(f"/api/v1/devices/{dev}/interfaces/status", headers=auth("viewer"))
    assert r.status_code == 200 and r.json()["sys_name"] == "fl-snmpd"
    names = {i["name"] for i in r.json()["interfaces"]}
    assert "lo" in names

    r = client.get(f"/api/v1/devices/{dev}/samples", params={"metric": "interface_oper_up"}, headers=auth("viewer"))
    assert r.status_code == 200
    assert {s["interface"] for s in r.json()} == names
    r = client.get(
        f"/api/v1/devices/{dev}/samples",
        params={"metric": "interface_oper_up", "interface": "lo", "since": "2000-01-01T00:00:00Z"},
        headers=auth("technician"),
    )
    assert [s["value"] for s in r.json()] == [1.0]


def test_v2c_device_that_does_not_answer_is_unreachable(client, auth, snmpd, session):
    snmp = {"version": "v2c", "port": snmpd.port, "community": "not-the-community"}
    dev = make_device(client, auth, "snmpd-wrong", snmpd.host, snmp)
    client.app.state.runtime.settings.poll_timeout_s = 0.2
    client.app.state.runtime.settings.poll_retries = 0
    r = client.post(f"/api/v1/devices/{dev}/poll", headers=auth("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False and body["reachable"] is False and body["events"] == ["device_unreachable"]
    assert "not-the-community" not in r.text
    row = session.get(DevicePollState, dev)
    assert row is not None and row.last_error and "not-the-community" not in repr(vars(row))
    assert "not-the-community" not in client.get("/metrics").text


def test_bad_inputs_name_the_field_and_write_nothing(client, auth, snmpd, session):
    dev = make_device(client, auth, "no-snmp", "127.0.0.9", None)
    r = client.post(f"/api/v1/devices/{dev}/poll", headers=auth("admin"))
    assert r.status_code == 422
    assert r.json()["detail"] == "device 'no-snmp' has no SNMP settings to poll with"
    assert session.scalar(select(func.count()).select_from(DevicePollState)) == 0

    r = client.get(f"/api/v1/devices/{dev}/samples", params={"metric": "bogus"}, headers=auth("viewer"))
    assert r.status_code == 422 and r.json()["detail"].startswith("metric: expected one of interface_in_bits")
    r = client.get(f"/api/v1/devices/{dev}/samples", params={"since": "2026-01-01T00:00:00"}, headers=auth("viewer"))
    assert r.status_code == 422 and "since: expected a timestamp with a timezone" in r.json()["detail"]
    for path in ("poll", "interfaces/status", "samples"):
        method = client.post if path == "poll" else client.get
        r = method(f"/api/v1/devices/424242/{path}", headers=auth("admin"))
        assert r.status_code == 404 and r.json()["detail"] == "device 424242 not found"
    assert session.scalar(select(func.count()).select_from(InterfaceSample)) == 0


def test_cli_poll_json(tmp_path, snmpd, monkeypatch):
    import json

    from typer.testing import CliRunner

    from faultloop import migrate
    from faultloop.cmd import cli
    from faultloop.cmd.app import build_runtime
    from faultloop.db import transaction
    from faultloop.settings import Settings
    from inventory import service as inventory
    from inventory.schemas import DeviceIn

    monkeypatch.setenv("FAULTLOOP_DATA_DIR", str(tmp_path / "var"))
    rt = build_runtime(Settings(data_dir=tmp_path / "var"))
    migrate.upgrade(rt.engine)
    with transaction(rt.sessions) as session:
        inventory.create_device(
            session,
            rt.vault,
            DeviceIn.model_validate(
                {
                    "hostname": "cli-snmpd",
                    "address": snmpd.host,
                    "role": "server",
                    "snmp": {"version": "v2c", "port": snmpd.port, "community": COMMUNITY},
                }
            ),
            actor="test",
        )
    result = CliRunner().invoke(cli.app, ["poll", "cli-snmpd", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["sys_name"] == "fl-snmpd"
    assert COMMUNITY not in result.output
    table = CliRunner().invoke(cli.app, ["poll", "cli-snmpd"])
    assert table.exit_code == 0 and "fl-snmpd" in table.stdout and "ifIndex" in table.stdout


def test_poll_settings_are_validated_audited_and_applied_by_the_poller(client, auth, session, runtime):
    import asyncio

    from collectors.jobs import PollerService
    from faultloop.audit.models import AuditEntry

    dev = make_device(client, auth, "tuned", "127.0.0.10", {"version": "v2c", "community": "c0mmunity"})
    r = client.put(f"/api/v1/devices/{dev}/poll-settings", json={"interval_s": 0.5}, headers=auth("noc"))
    assert r.status_code == 422 and "interval_s" in r.text and "greater than or equal to 1" in r.text
    r = client.put(f"/api/v1/devices/{dev}/poll-settings", json={"retries": 3, "colour": "red"}, headers=auth("admin"))
    assert r.status_code == 422 and "colour" in r.text
    assert session.scalar(select(func.count()).select_from(DevicePollState)) == 0  # nothing written
    r = client.put(f"/api/v1/devices/{dev}/poll-settings", json={"interval_s": 15, "retries": 3}, headers=auth("noc"))
    assert r.status_code == 200, r.text
    assert r.json() == {"device_id": dev, "interval_s": 15.0, "timeout_s": None, "retries": 3}
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "device.poll_settings"))
    assert entry is not None and entry.after == {"interval_s": 15.0, "timeout_s": None, "retries": 3}

    svc = PollerService(runtime)
    asyncio.run(svc.sync())
    polled = svc.devices[dev]
    assert (polled.interval_s, polled.timeout_s, polled.retries) == (15.0, runtime.settings.poll_timeout_s, 3)
    r = client.put("/api/v1/devices/424242/poll-settings", json={}, headers=auth("admin"))
    assert r.status_code == 404


def test_samples_older_than_the_retention_are_pruned(session, runtime):
    import asyncio
    from datetime import timedelta

    from collectors import service
    from collectors.jobs import PollerService
    from collectors.snmp_poll import PollResult
    from faultloop import clock
    from faultloop.events import Sample
    from inventory import service as inventory
    from inventory.schemas import DeviceIn

    device = inventory.create_device(
        session, runtime.vault, DeviceIn(hostname="old", address="127.0.0.11", role="server"), actor="t"
    )
    now = clock.now()
    for age_h in (1, 23, 25, 48):
        t = now - timedelta(hours=age_h)
        result = PollResult("old", True, t, 0.1, samples=[Sample("old", "device_cpu_percent", age_h, t)])
        service.add_samples(session, device_id=device.id, result=result)
    session.commit()
    runtime.settings.sample_retention_h = 24
    removed = asyncio.run(PollerService(runtime).prune())
    assert removed == 2
    left = service.list_samples(session, device_id=device.id)
    assert [s.value for s in left] == [23.0, 1.0]
