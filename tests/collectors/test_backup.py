"""Config backup against the lab's SSH CLIs (real SSH on loopback, netmiko, real DB)."""

from __future__ import annotations

from sqlalchemy import func, select

from collectors import backup
from collectors.backup import backup_device, normalize_config
from collectors.backup_models import ConfigBackup
from tests.collectors import cli_lab
from tests.collectors.cli_lab import add_to_inventory, push_config

bg, host_key, lab_ssh, sink = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.sink


def _versions(session, device_id: int) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(ConfigBackup).where(ConfigBackup.device_id == device_id))


def test_normalize_drops_volatile_lines_only() -> None:
    a = "!\n! Last configuration change at 10:00:01 UTC Mon Jan 1 2026 by adm\nntp clock-period 17179\nhostname r1\r\n"
    b = "!\n! Last configuration change at 11:30:00 UTC Tue Jan 2 2026 by bo\nntp clock-period 1718\nhostname r1  \n"
    assert normalize_config(a) == normalize_config(b) == "!\nhostname r1\n"
    junos = "## Last commit: 2026-01-01 10:00:00 UTC by admin\nversion 21.4R3.15;\n"
    assert normalize_config(junos) == "version 21.4R3.15;\n"
    assert normalize_config("hostname r1\n") != normalize_config("hostname r2\n")


def test_ios_backup_first_version_then_unchanged_then_change_with_diff_and_event(
    lab_ssh, host_key, sink, runtime, session, vault
) -> None:
    lab = lab_ssh.new_device("cisco_ios", "bk-ios1")
    device_id = add_to_inventory(session, vault, lab)

    first = backup_device(runtime, device_id, sink=sink)
    assert first.status == "first_version" and first.previous_id is None
    text = backup.backup_text(vault, backup.get_backup(session, device_id=device_id, backup_id=first.backup_id))
    assert "hostname bk-ios1" in text and "interface GigabitEthernet0/1" in text
    assert "! Last configuration change at" in text  # stored raw
    assert sink.events == []  # a first version changed nothing

    again = backup_device(runtime, device_id, sink=sink)
    assert (again.status, again.backup_id) == ("unchanged", first.backup_id)
    assert _versions(session, device_id) == 1 and sink.events == []

    out = push_config(lab, ["interface GigabitEthernet0/2", "description CUST-42"])
    assert "Invalid input" not in out
    changed = backup_device(runtime, device_id, sink=sink, trigger="on_demand", actor="alice")
    assert changed.status == "new_version" and changed.previous_id == first.backup_id
    assert (changed.lines_added, changed.lines_removed) == (1, 0)
    assert _versions(session, device_id) == 2

    diff = backup.diff_backups(session, vault, device_id=device_id, backup_id=changed.backup_id)
    plus = [line for line in diff.text.splitlines() if line.startswith("+") and not line.startswith("+++")]
    minus = [line for line in diff.text.splitlines() if line.startswith("-") and not line.startswith("---")]
    # the "Last configuration change" stamp moved too, but it is not a change
    assert (plus, minus) == (["+ description CUST-42"], [])
    assert diff.old is not None and diff.old.id == first.backup_id

    [event] = sink.events
    assert (event.source, event.event_type, event.device, event.severity) == (
        "backup",
        "config_changed",
        "bk-ios1",
        "warning",
    )
    assert event.raw["backup_id"] == changed.backup_id and event.raw["previous_backup_id"] == first.backup_id
    assert event.raw["actor"] == "alice" and "CUST-42" not in repr(event)  # no config text in events


def test_junos_backup_and_committed_change(lab_ssh, host_key, sink, runtime, session, vault) -> None:
    lab = lab_ssh.new_device("juniper_junos", "bk-jnp1")
    device_id = add_to_inventory(session, vault, lab)
    first = backup_device(runtime, device_id, sink=sink)
    text = backup.backup_text(vault, backup.get_backup(session, device_id=device_id, backup_id=first.backup_id))
    assert "ge-0/0/0 {" in text and "host-name bk-jnp1;" in text

    push_config(lab, ['set interfaces ge-0/0/1 description "CUST 7"'])
    changed = backup_device(runtime, device_id, sink=sink)
    assert changed.status == "new_version"
    diff = backup.diff_backups(
        session, vault, device_id=device_id, backup_id=changed.backup_id, against=first.backup_id
    )
    plus = [line for line in diff.text.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert any('description "CUST 7";' in line for line in plus)
    assert not any("Last commit" in line for line in diff.text.splitlines())
    assert [e.event_type for e in sink.events] == ["config_changed"]

    assert backup_device(runtime, device_id, sink=sink).status == "unchanged"
    assert _versions(session, device_id) == 2


class RefusingSink(cli_lab.RecordingSink):
    def submit_events(self, events) -> bool:
        return False


def test_a_full_alarm_queue_is_counted_and_the_backup_still_stored(lab_ssh, runtime, session, vault) -> None:
    from devices.ssh import EVENTS_REFUSED

    lab = lab_ssh.new_device("cisco_ios", "bk-full1")
    device_id = add_to_inventory(session, vault, lab)
    backup_device(runtime, device_id, sink=RefusingSink())
    push_config(lab, ["interface GigabitEthernet0/1", "description FULL"])
    before = EVENTS_REFUSED._value.get()
    assert backup_device(runtime, device_id, sink=RefusingSink()).status == "new_version"
    assert EVENTS_REFUSED._value.get() == before + 1
    assert _versions(session, device_id) == 2
