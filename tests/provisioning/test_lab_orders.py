"""Orders against lab devices over real SSH (netmiko) with SNMP agents on the same devices."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from alarms.maintenance import Window, covering
from alarms.models import MaintenanceWindow
from collectors.backup import backup_device, normalize_config
from collectors.backup import backup_text as stored_text  # the text is stored encrypted
from collectors.backup_models import ConfigBackup
from faultloop import clock
from faultloop.db import transaction
from faultloop.errors import Conflict
from faultloop.runtime import Runtime
from lab.model import LabDevice
from lab.snmp_agent import LAB_COMMUNITY
from lab.ssh import LAB_SSH_PASSWORD
from provisioning import service as orders
from provisioning.executor import execute_order
from provisioning.models import ServiceInstance, ServiceResource, VlanAllocation
from tests.collectors import cli_lab
from tests.provisioning.lab import add_device, lab_device, running_config

bg, host_key, lab_ssh, file_runtime = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.file_runtime


@pytest.fixture
def rt(file_runtime: Runtime) -> Iterator[Runtime]:
    file_runtime.settings = file_runtime.settings.model_copy(
        update={"ssh_timeout_s": 15, "provisioning_check_timeout_s": 2, "poll_timeout_s": 1}
    )
    yield file_runtime


@pytest.fixture
def transports() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for t in started:
        t.close()


def _device(rt: Runtime, lab_ssh: Any, bg: Any, transports: list[Any], name: str) -> tuple[LabDevice, int]:
    lab, transport = lab_device(lab_ssh, bg, name)
    transports.append(transport)
    with transaction(rt.sessions) as session:
        device_id = add_device(session, rt.vault, lab)
    return lab, device_id


def snmpget(lab: LabDevice, oid: str) -> str:
    out = subprocess.run(
        ["snmpget", "-v2c", "-c", LAB_COMMUNITY, "-Oqv", "-t", "2", "-r", "1", f"{lab.address}:{lab.snmp_port}", oid],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return out.stdout.strip()


def run(rt: Runtime, body: dict[str, Any]) -> Any:
    with transaction(rt.sessions) as session:
        order_id = orders.create_order(session, orders.parse_order(body), actor="pat").id
    with transaction(rt.sessions) as session:
        orders.act(session, order_id, "plan", actor="pat", role="provisioner", four_eyes=True, vault=rt.vault)
    with transaction(rt.sessions) as session:
        orders.act(session, order_id, "approve", actor="nina", role="noc", four_eyes=True, vault=rt.vault)
    return execute_order(rt, order_id, actor="nina", role="noc")


def test_activation_changes_running_config_and_snmp_then_terminate_removes_it(rt, lab_ssh, bg, transports) -> None:
    lab, device_id = _device(rt, lab_ssh, bg, transports, "pv-act1")
    itf = lab.interfaces[1]
    before = running_config(lab)
    assert snmpget(lab, f".1.3.6.1.2.1.31.1.1.1.18.{itf.if_index}") == '""'

    outcome = run(
        rt,
        {
            "service_type": "business_internet",
            "customer": "ACME",
            "params": {"vlan": 120, "description": "ACME-42 BIA"},
            "targets": [{"device": lab.name, "params": {"interface": itf.name}}],
        },
    )
    assert outcome.state == "completed", outcome.message

    after = running_config(lab)
    assert " description ACME-42 BIA" in after and " switchport access vlan 120" in after and "vlan 120" in after
    assert snmpget(lab, f".1.3.6.1.2.1.31.1.1.1.18.{itf.if_index}") == '"ACME-42 BIA"'
    assert snmpget(lab, f".1.3.6.1.2.1.2.2.1.8.{itf.if_index}") == "1"  # up
    assert lab.saved_config is not None and "description ACME-42 BIA" in lab.saved_config  # saved after success

    with transaction(rt.sessions) as session:
        order = orders.get_order(session, outcome.order_id)
        assert order.state == "completed" and order.service_id is not None
        service = session.get(ServiceInstance, order.service_id)
        assert service is not None and service.state == "active"
        res = session.scalars(select(ServiceResource).where(ServiceResource.service_id == service.id)).all()
        assert [(r.device_id, r.interface, r.vlan) for r in res] == [(device_id, itf.name, 120)]
        window = session.get(MaintenanceWindow, order.maintenance_window_id)
        assert window is not None and window.interfaces == [f"{lab.name}:{itf.name}"]
        assert window.ends_at is not None and window.ends_at > window.starts_at
        # the alarm engine's predicate: the expected linkDown/linkUp of this port is muted, others are not
        muted = Window(
            id=window.id,
            name=window.name,
            starts_at=window.starts_at,
            ends_at=window.ends_at,
            rrule=None,
            cron=None,
            duration_s=None,
            devices=frozenset(window.devices),
            sites=frozenset(),
            tags=frozenset(),
            interfaces=frozenset(window.interfaces),
        )
        at = clock.now()
        assert covering([muted], at, device=lab.name, managed_object=f"interface:{itf.name}", site=None, tags=())
        assert not covering(
            [muted], at, device=lab.name, managed_object="interface:GigabitEthernet0/0", site=None, tags=()
        )
        assert not covering(
            [muted],
            window.ends_at + timedelta(seconds=1),
            device=lab.name,
            managed_object=f"interface:{itf.name}",
            site=None,
            tags=(),
        )
        steps = [e.action for e in orders.timeline(session, order.id)]
        assert steps == [
            "order.create",
            "order.plan",
            "order.approve",
            "order.execute",
            "order.pushed",
            "order.complete",
        ]
        # pre-change and post-change backups were stored; no secret in the order record
        backups = session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)).all()
        assert len(backups) == 2
        assert LAB_SSH_PASSWORD not in str(orders.order_out(session, order, vault=rt.vault).model_dump())
        service_id = service.id

    outcome = run(
        rt, {"action": "terminate", "service_type": "business_internet", "customer": "ACME", "service_id": service_id}
    )
    assert outcome.state == "completed", outcome.message
    gone = running_config(lab)
    assert "ACME-42" not in gone and "vlan 120" not in gone
    # what the activation changed is gone; the port is left shut (the remove template's choice)
    assert [ln for ln in gone.splitlines() if ln not in before.splitlines()] == [" shutdown"]
    with transaction(rt.sessions) as session:
        assert session.get(ServiceInstance, service_id).state == "terminated"  # type: ignore[union-attr]


def test_failing_snmp_post_check_rolls_back_to_the_backup_line_by_line(rt, lab_ssh, bg, transports) -> None:
    lab, device_id = _device(rt, lab_ssh, bg, transports, "pv-rb1")
    itf = lab.interfaces[2]
    push = cli_lab.push_config(lab, ["interface " + itf.name, "description old-customer", "shutdown"])
    assert "Invalid" not in push
    itf.link_up = False  # no light on the port: ifOperStatus stays down after "no shutdown"
    before = running_config(lab)

    outcome = run(
        rt,
        {
            "service_type": "business_internet",
            "customer": "ACME",
            "params": {"vlan": 300, "description": "NEW-1"},
            "targets": [{"device": lab.name, "params": {"interface": itf.name}}],
        },
    )
    assert outcome.state == "rolled_back", outcome.message
    assert "ifOperStatus" in outcome.message or "oper_status" in outcome.message

    after = running_config(lab)
    with transaction(rt.sessions) as session:
        item = orders.items(session, outcome.order_id)[0]
        assert item.status == "rolled_back"
        backup = session.get(ConfigBackup, item.backup_id)
        assert backup is not None
        assert normalize_config(stored_text(rt.vault, backup)).splitlines() == after.splitlines()  # line by line
        # the VLAN went back to the pool and the service never became active
        assert session.scalars(select(VlanAllocation)).all() == []
    assert after.splitlines() == before.splitlines()
    assert lab.saved_config is None  # nothing saved on failure


@pytest.mark.parametrize("workers", [64, 2], ids=["sessions-held-to-verdict", "pool-smaller-than-order"])
def test_three_device_order_third_rejects_leaves_all_three_as_they_were(rt, lab_ssh, bg, transports, workers) -> None:
    rt.settings = rt.settings.model_copy(update={"provisioning_workers": workers})
    labs = [_device(rt, lab_ssh, bg, transports, f"pv-3dev{workers}-{i}")[0] for i in range(3)]
    before = [running_config(lab) for lab in labs]
    targets = [
        {"device": labs[0].name, "params": {"interface": labs[0].interfaces[1].name}},
        {"device": labs[1].name, "params": {"interface": labs[1].interfaces[1].name}},
        {"device": labs[2].name, "params": {"interface": "GigabitEthernet0/9"}},
    ]  # no such port
    outcome = run(
        rt,
        {
            "service_type": "l2_vlan",
            "customer": "ACME",
            "params": {"vlan": 410, "vlan_name": "ACME-L2", "description": "ACME L2 410"},
            "targets": targets,
        },
    )
    assert outcome.state == "rolled_back", outcome.message
    assert labs[2].name in outcome.message and "Invalid input" in outcome.message
    for lab, old in zip(labs, before, strict=True):
        assert running_config(lab).splitlines() == old.splitlines(), lab.name
        assert lab.saved_config is None
    with transaction(rt.sessions) as session:
        statuses = sorted(i.status for i in orders.items(session, outcome.order_id))
        assert statuses == ["rolled_back", "rolled_back", "rolled_back"]


def test_plan_is_a_dry_run_and_a_device_in_another_order_is_busy(rt, lab_ssh, bg, transports) -> None:
    lab, device_id = _device(rt, lab_ssh, bg, transports, "pv-dry1")
    backup_device(rt, device_id, sink=None)
    before = running_config(lab)
    attempts = len(lab_ssh.auth_attempts[lab.name])
    body = {
        "service_type": "interface_state",
        "customer": "ACME",
        "params": {"state": "down"},
        "targets": [{"device": lab.name, "params": {"interface": lab.interfaces[1].name}}],
    }
    with transaction(rt.sessions) as session:
        first = orders.create_order(session, orders.parse_order(body), actor="pat").id
        second = orders.create_order(session, orders.parse_order(body), actor="pat").id
    for oid in (first, second):
        with transaction(rt.sessions) as session:
            order = orders.act(session, oid, "plan", actor="pat", role="provisioner", four_eyes=True, vault=rt.vault)
            diff = orders.item_diff(rt.vault, orders.items(session, order.id)[0])
            assert "+ shutdown" in diff and f" interface {lab.interfaces[1].name}" in diff
        with transaction(rt.sessions) as session:
            orders.act(session, oid, "approve", actor="nina", role="noc", four_eyes=True, vault=rt.vault)
    assert len(lab_ssh.auth_attempts[lab.name]) == attempts  # planning opened no SSH session
    assert running_config(lab) == before
    with transaction(rt.sessions) as session:
        orders.get_order(session, first).state = "executing"  # as if another worker were pushing it
    with pytest.raises(Conflict, match="being changed by another order"):
        execute_order(rt, second, actor="nina", role="noc")
    with transaction(rt.sessions) as session:
        assert orders.get_order(session, second).state == "approved"  # nothing moved


def test_junos_activation_commits_and_a_rejected_order_leaves_the_config_unchanged(rt, lab_ssh, bg, transports) -> None:
    lab, transport = lab_device(lab_ssh, bg, "pv-junos1", device_type="juniper_junos")
    transports.append(transport)
    with transaction(rt.sessions) as session:
        add_device(session, rt.vault, lab)
    itf = lab.interfaces[1]
    outcome = run(
        rt,
        {
            "service_type": "l2_vlan",
            "customer": "ACME",
            "params": {"vlan": 220, "vlan_name": "ACME-220", "description": "ACME L2 220"},
            "targets": [{"device": lab.name, "params": {"interface": itf.name}}],
        },
    )
    assert outcome.state == "completed", outcome.message
    assert itf.alias == "ACME L2 220"
    assert snmpget(lab, f".1.3.6.1.2.1.31.1.1.1.18.{itf.if_index}") == '"ACME L2 220"'

    with transaction(rt.sessions) as session:
        before = normalize_config(backup_text(rt, session, lab.name))
    outcome = run(
        rt,
        {
            "service_type": "l2_vlan",
            "customer": "ACME",
            "params": {"vlan": 221, "vlan_name": "ACME-221", "description": "ACME L2 221"},
            "targets": [{"device": lab.name, "params": {"interface": "ge-0/0/9"}}],
        },
    )
    assert outcome.state == "rolled_back", outcome.message
    with transaction(rt.sessions) as session:
        item = orders.items(session, outcome.order_id)[0]
        pre = session.get(ConfigBackup, item.backup_id)
        assert pre is not None and normalize_config(stored_text(rt.vault, pre)) == before
    assert itf.alias == "ACME L2 220"


def backup_text(rt: Runtime, session: Any, hostname: str) -> str:
    from collectors.backup import latest_backup
    from inventory.models import Device

    device = session.scalar(select(Device).where(Device.hostname == hostname))
    row = latest_backup(session, device.id)
    assert row is not None
    return stored_text(rt.vault, row)


def test_modify_replaces_the_description_and_vlan_and_updates_the_service(rt, lab_ssh, bg, transports) -> None:
    lab, device_id = _device(rt, lab_ssh, bg, transports, "pv-mod1")
    itf = lab.interfaces[1]
    first = run(
        rt,
        {
            "service_type": "business_internet",
            "customer": "ACME",
            "params": {"vlan": 140, "description": "ACME old"},
            "targets": [{"device": lab.name, "params": {"interface": itf.name}}],
        },
    )
    assert first.state == "completed", first.message
    with transaction(rt.sessions) as session:
        service_id = orders.get_order(session, first.order_id).service_id
    second = run(
        rt,
        {
            "action": "modify",
            "service_type": "business_internet",
            "customer": "ACME",
            "service_id": service_id,
            "params": {"vlan": 141, "description": "ACME new"},
            "targets": [{"device": lab.name, "params": {}}],  # the interface is kept from the active service
        },
    )
    assert second.state == "completed", second.message
    config = running_config(lab)
    assert " description ACME new" in config and " switchport access vlan 141" in config
    assert "vlan 140" not in config and "ACME old" not in config
    assert snmpget(lab, f".1.3.6.1.2.1.31.1.1.1.18.{itf.if_index}") == '"ACME new"'
    with transaction(rt.sessions) as session:
        service = session.get(ServiceInstance, service_id)
        assert service is not None and service.state == "active"
        assert service.params["devices"][str(device_id)]["vlan"] == 141
        res = session.scalars(select(ServiceResource).where(ServiceResource.service_id == service_id)).all()
        assert [(r.interface, r.vlan) for r in res] == [(itf.name, 141)]
