"""Provisioning's device work goes through ``devices.conn.DeviceConn`` and nothing else of netmiko.

The executor's stages (backup, push, show post-checks, save, rollback) are handed the real
netmiko session of a lab SSH device seen through ``ProtocolOnly``: it forwards exactly the
Protocol's members, so a stage that called anything else of the driver would fail here with
AttributeError, and every call reaches the real device over SSH.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from collectors.backup import backup_text as stored_text  # the text is stored encrypted
from collectors.backup import normalize_config
from collectors.backup_models import ConfigBackup
from devices.conn import DeviceConn
from devices.ssh import device_session
from lab.model import LabDevice
from provisioning.executor import DeviceJob, DeviceResult, _push_in, _rollback_in, _save_in
from provisioning.render import service_type
from tests.collectors import cli_lab
from tests.provisioning.lab import add_device, running_config

bg, host_key, lab_ssh = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh

MEMBERS = frozenset(name for name in vars(DeviceConn) if not name.startswith("_"))


class ProtocolOnly:
    """The real session, narrowed at run time to what ``DeviceConn`` declares."""

    def __init__(self, conn: DeviceConn) -> None:
        self._conn = conn
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name not in MEMBERS:
            raise AttributeError(f"{name!r} is not part of DeviceConn")
        self.calls.append(name)
        return getattr(self._conn, name)


def _job(device_id: int, lab: LabDevice, description: str) -> DeviceJob:
    st = service_type("business_internet")
    params = st.validate_params({"vlan": 130, "description": description, "interface": lab.interfaces[1].name})
    shows, _snmp = st.checks(lab.device_type, params)
    return DeviceJob(
        item_id=0,
        device_id=device_id,
        hostname=lab.name,
        platform=lab.device_type,
        commands=tuple(st.render(lab.device_type, params)),
        inverse=tuple(st.render(lab.device_type, params, remove=True)),
        shows=tuple(shows),
        snmps=(),
    )


def test_the_protocol_lists_the_calls_the_issue_names():
    assert MEMBERS >= {
        "send_command",
        "send_config_set",
        "save_config",
        "check_enable_mode",
        "check_config_mode",
        "disconnect",
    }


@pytest.mark.parametrize("device_type", ["cisco_ios", "juniper_junos"])
def test_push_then_rollback_through_the_protocol_restores_the_backup(lab_ssh, runtime, session, vault, device_type):
    lab = lab_ssh.new_device(device_type, f"dc-rb-{device_type[:3]}")
    device_id = add_device(session, vault, lab, snmp=False)
    before = running_config(lab)
    job = _job(device_id, lab, "DC-ROLLBACK")
    pushed = DeviceResult(device_id, lab.name, ok=False, stage="connect")

    with device_session(runtime, device_id, source="provisioning") as real:
        conn = ProtocolOnly(real)
        _push_in(conn, runtime, job, 7, pushed)
        assert (pushed.ok, pushed.stage, pushed.touched) == (True, "pushed", True), pushed.message
        assert "DC-ROLLBACK" in running_config(lab)
        restored = _rollback_in(conn, runtime, job, pushed.backup_text or "", order_id=7)

    assert restored.ok, restored.message
    assert restored.message == "restored: running configuration equals the pre-change backup"
    assert running_config(lab) == before
    assert {"send_config_set", "send_command", "check_config_mode"} <= set(conn.calls)
    # the pre-change backup went through collectors.backup's store, attributed to the order
    backup = session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)).one()
    assert backup.id == pushed.backup_id and backup.actor == "order 7"
    assert normalize_config(stored_text(runtime.vault, backup)) == before


def test_push_then_save_through_the_protocol_writes_memory_and_stores_the_new_config(lab_ssh, runtime, session, vault):
    lab = lab_ssh.new_device("cisco_ios", "dc-save-ios")
    device_id = add_device(session, vault, lab, snmp=False)
    job = _job(device_id, lab, "DC-SAVED")
    pushed = DeviceResult(device_id, lab.name, ok=False, stage="connect")

    with device_session(runtime, device_id, source="provisioning") as real:
        conn = ProtocolOnly(real)
        _push_in(conn, runtime, job, 8, pushed)
        assert pushed.ok, pushed.message
        saved = _save_in(conn, runtime, job, 8)

    assert (saved.ok, saved.stage) == (True, "done"), saved.message
    assert "save_config" in conn.calls
    assert lab.saved_config is not None and "description DC-SAVED" in lab.saved_config
    pre, post = session.scalars(
        select(ConfigBackup).where(ConfigBackup.device_id == device_id).order_by(ConfigBackup.id)
    ).all()
    pre_text, post_text = stored_text(runtime.vault, pre), stored_text(runtime.vault, post)
    assert "DC-SAVED" not in pre_text and " description DC-SAVED" in normalize_config(post_text)


def test_an_incomplete_rollback_names_counts_and_a_backup_never_config_lines(lab_ssh, runtime, session, vault):
    """Issue 15 item 6: an item's message is shown to every role and stored in clear, so the lines a
    rollback could not restore are kept in an (encrypted) backup of the configuration after it."""
    lab = lab_ssh.new_device("cisco_ios", "dc-rb-left")
    device_id = add_device(session, vault, lab, snmp=False)
    job = _job(device_id, lab, "DC-LEFT")
    # a pre-change backup the device cannot return to: it has no GigabitEthernet0/99 and refuses the section
    unreachable = running_config(lab) + "interface GigabitEthernet0/99\n description Rb-Secret-5e1c\n"
    with device_session(runtime, device_id, source="provisioning") as real:
        left = _rollback_in(ProtocolOnly(real), runtime, job, unreachable, order_id=9)

    assert (left.ok, left.stage) == (False, "rollback")
    after = session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)).one()
    assert left.message == (
        "rollback left 2 line(s) different from the pre-change backup; "
        f"the configuration after the rollback is backup #{after.id}"
    )
    assert "Rb-Secret" not in left.message and "GigabitEthernet0/99" not in left.message
    assert after.actor == "order 9" and normalize_config(stored_text(runtime.vault, after)) == running_config(lab)
