"""Config backup against the lab's SSH CLIs (real SSH on loopback, netmiko, real DB)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text

from collectors import backup
from collectors.backup import backup_device, normalize_config
from collectors.backup_models import ConfigBackup
from faultloop import migrate
from faultloop.db import checkpoint_wal, transaction
from faultloop.runtime import build_runtime
from faultloop.settings import Settings
from faultloop.vault import Vault, VaultError
from inventory import queries
from tests.collectors import cli_lab
from tests.collectors.cli_lab import add_to_inventory, push_config

bg, host_key, lab_ssh, sink = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.sink
file_runtime = cli_lab.file_runtime


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


def test_a_device_flooding_its_output_is_cut_at_the_cap_counted_and_alarmed_once(
    lab_ssh, sink, runtime, session, vault
) -> None:
    """A hostile device (thousands of ports, long descriptions) answers ``show running-config``
    with more than FAULTLOOP_SSH_MAX_OUTPUT_BYTES: the read stops there, the session is closed,
    nothing is stored, the cut is counted and one ssh_output_capped warning is raised on the
    device; its next normal session clears it."""
    import pytest

    from collectors.cli_collect import CliResult, collect_device
    from devices.ssh import SSH_OUTPUT_CAPPED, OutputTooLarge
    from lab.model import LabInterface

    lab = lab_ssh.new_device("cisco_ios", "bk-flood1")
    device_id = add_to_inventory(session, vault, lab)
    runtime.settings.ssh_max_output_bytes = 16 * 1024
    lab.interfaces += [
        LabInterface(if_index=100 + i, name=f"GigabitEthernet1/{i}", alias="hostile " * 8) for i in range(400)
    ]
    before = SSH_OUTPUT_CAPPED.labels(source="backup")._value.get()
    with pytest.raises(OutputTooLarge) as exc:
        backup_device(runtime, device_id, sink=sink)
    assert str(exc.value) == (
        "bk-flood1: the output of 'show running-config' passed 16384 bytes (FAULTLOOP_SSH_MAX_OUTPUT_BYTES); "
        "session closed, nothing of it kept"
    )
    assert _versions(session, device_id) == 0
    assert SSH_OUTPUT_CAPPED.labels(source="backup")._value.get() == before + 1
    [event] = sink.events
    assert (event.event_type, event.device, event.severity, event.source) == (
        "ssh_output_capped",
        "bk-flood1",
        "warning",
        "backup",
    )
    assert "FAULTLOOP_SSH_MAX_OUTPUT_BYTES" in event.description

    # CLI collection reads through the same session: capped too, nothing stored
    with pytest.raises(OutputTooLarge):
        collect_device(runtime, device_id, sink=sink)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(CliResult).where(CliResult.device_id == device_id)) == 0
    assert [e.severity for e in sink.events] == ["warning", "warning"]  # one alarm: the engine deduplicates

    del lab.interfaces[3:]  # the device behaves again
    assert backup_device(runtime, device_id, sink=sink).status == "first_version"
    assert [(e.event_type, e.severity) for e in sink.events][-1] == ("ssh_output_capped", "cleared")
    assert backup_device(runtime, device_id, sink=sink).status == "unchanged"
    assert len(sink.events) == 3  # cleared once


def test_a_caller_that_catches_the_cap_cannot_go_on_and_the_cap_is_still_reported(
    lab_ssh, sink, runtime, session, vault
) -> None:
    """Provisioning turns errors into results inside the session: the cap is judged from the
    session, so it is counted and raised all the same, and the session sends nothing more."""

    from devices.ssh import SSH_OUTPUT_CAPPED, OutputTooLarge, device_session
    from lab.model import LabInterface

    lab = lab_ssh.new_device("cisco_ios", "pv-flood1")
    device_id = add_to_inventory(session, vault, lab)
    runtime.settings.ssh_max_output_bytes = 8 * 1024
    lab.interfaces += [LabInterface(if_index=100 + i, name=f"GigabitEthernet1/{i}") for i in range(300)]
    before = SSH_OUTPUT_CAPPED.labels(source="provisioning")._value.get()
    errors = []
    with device_session(runtime, device_id, sink=sink, source="provisioning") as conn:
        conn.enable()
        for command in ("show running-config", "show clock"):
            try:
                conn.send_command(command)
            except OutputTooLarge as exc:
                errors.append(str(exc))
    assert len(errors) == 2 and errors[0] == errors[1]
    assert errors[0].startswith("pv-flood1: the output of 'show running-config' passed 8192 bytes")
    assert SSH_OUTPUT_CAPPED.labels(source="provisioning")._value.get() == before + 1
    assert [(e.event_type, e.severity, e.source) for e in sink.events] == [
        ("ssh_output_capped", "warning", "provisioning")
    ]


MARKER = "MARKER-cfgsecret-4b7e"


def _db_bytes(rt) -> bytes:
    path = Path(rt.engine.url.database)
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_backup_text_is_encrypted_at_rest_and_dedup_still_works(lab_ssh, host_key, file_runtime) -> None:
    """Issue 15 item 6: a secret in a device's running config never reaches the database file."""
    rt = file_runtime
    lab = lab_ssh.new_device("cisco_ios", "bk-enc1")
    with transaction(rt.sessions) as session:
        device_id = add_to_inventory(session, rt.vault, lab)
    out = push_config(lab, ["interface GigabitEthernet0/2", f"description {MARKER}"])
    assert "Invalid input" not in out
    first = backup_device(rt, device_id, sink=None)
    again = backup_device(rt, device_id, sink=None)
    assert first.status == "first_version"
    assert (again.status, again.backup_id) == ("unchanged", first.backup_id)  # equal digests, not ciphertexts
    with transaction(rt.sessions) as session:
        row = backup.get_backup(session, device_id=device_id, backup_id=first.backup_id)
        assert row.text is None and row.text_encrypted is not None and row.digest is not None
        assert f" description {MARKER}" in backup.backup_text(rt.vault, row)
        assert MARKER.encode() not in row.text_encrypted
    checkpoint_wal(rt.engine)
    stored = _db_bytes(rt)
    assert MARKER.encode() not in stored and b"hostname bk-enc1" not in stored
    # a wrong key reads nothing: one error naming what failed, never the ciphertext
    with transaction(rt.sessions) as session, pytest.raises(VaultError, match="cannot be decrypted"):
        backup.backup_text(Vault([Fernet.generate_key()]), backup.latest_backup(session, device_id))


def test_rotation_re_encrypts_and_re_digests_backups(file_runtime) -> None:
    rt = file_runtime
    old = rt.vault
    with transaction(rt.sessions) as session:
        device_id = add_to_inventory(session, old, cli_lab.make_lab_device("cisco_ios", "bk-rot1"))
        device = queries.device(session, device_id)
        row, _prev, _new = backup.store_backup(
            session, old, device=device, text=f"hostname r\nsnmp-server community {MARKER} RO\n", trigger="schedule",
            actor="t",
        )  # fmt: skip
        first_id, old_digest = row.id, row.digest
    new = Vault([Fernet.generate_key(), *old.keys])
    # a key put in front without a rotation yet: the stored digest still matches (no spurious version)
    with transaction(rt.sessions) as session:
        device = queries.device(session, device_id)
        same, _prev, created = backup.store_backup(
            session, new, device=device, text=f"hostname r\nsnmp-server community {MARKER} RO\n", trigger="schedule",
            actor="t",
        )  # fmt: skip
        assert (same.id, created) == (first_id, False)
    with transaction(rt.sessions) as session:
        assert backup.rotate_backups(session, new) == 1
    only_new = Vault(new.keys[:1])
    with transaction(rt.sessions) as session:
        row = backup.get_backup(session, device_id=device_id, backup_id=first_id)
        assert MARKER in backup.backup_text(only_new, row) and row.digest != old_digest
        with pytest.raises(VaultError):
            backup.backup_text(old, row)  # the old key alone opens nothing any more


def test_rows_stored_in_clear_before_the_migration_are_sealed(tmp_path) -> None:
    """The migration has no key: it carries plaintext rows over; `db upgrade` then encrypts them."""
    key = Fernet.generate_key().decode()
    rt = build_runtime(Settings(data_dir=tmp_path / "var", secret_key=key))
    migrate.upgrade(rt.engine, "0003_config_backup")  # a database as the release before this one left it
    with rt.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO devices (id, hostname, address, vendor, platform, device_type, role, tags, created_at, "
                "updated_at, snmp_port, snmp_allow_weak, ssh_port, ssh_host_key_policy) VALUES (1, 'old1', "
                "'127.0.0.9', 'cisco', 'ios', 'cisco_ios', 'core', '[]', '2026-01-01', '2026-01-01', 161, false, 22, "
                "'tofu')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO config_backups (device_id, taken_at, last_seen_at, sha256, size, lines_added, "
                "lines_removed, \"trigger\", actor, text) VALUES (1, '2026-01-01', '2026-01-01', 'x', 10, 0, 0, "
                "'schedule', 't', :t)"
            ),
            {"t": f"hostname old1\nsnmp-server community {MARKER} RO\n"},
        )
    migrate.upgrade(rt.engine)
    with transaction(rt.sessions) as session:  # carried over, readable before it is sealed
        legacy = backup.latest_backup(session, 1)
        assert legacy is not None and legacy.text_encrypted is None
        assert MARKER in backup.backup_text(rt.vault, legacy)
    rt.engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    env.update(FAULTLOOP_DATA_DIR=str(tmp_path / "var"), FAULTLOOP_SECRET_KEY=key,
               FAULTLOOP_CONFIG=str(tmp_path / "none.toml"))  # fmt: skip
    cmd = [sys.executable, "-m", "faultloop.cmd", "db", "upgrade"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "encrypted 1 stored config(s) kept in clear" in proc.stderr
    with transaction(rt.sessions) as session:
        row = backup.latest_backup(session, 1)
        assert row is not None and row.text is None and row.digest is not None
        assert MARKER in backup.backup_text(rt.vault, row)
    assert MARKER.encode() not in _db_bytes(rt)  # scrubbed from the file, not only unlinked from the row
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "encrypted" not in again.stderr  # nothing left in clear
