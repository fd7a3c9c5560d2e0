"""SSH host key policy against the lab's SSH servers: TOFU, changed key, strict, off, accept."""

from __future__ import annotations

import asyncssh
import pytest
from sqlalchemy import select

from collectors.backup import backup_device
from collectors.backup_models import ConfigBackup
from devices import hostkeys
from devices.hostkeys import HostKeyChanged, HostKeyUnknown, PinnedHostKeyPolicy, fingerprint
from devices.models import SshHostKey
from devices.ssh import device_session
from faultloop.audit.models import AuditEntry
from inventory import queries
from lab.ssh import LAB_SSH_USERNAME
from tests.collectors import cli_lab
from tests.collectors.cli_lab import add_to_inventory

bg, host_key, lab_ssh, sink = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.sink


def _fp(key: asyncssh.SSHKey) -> str:
    public = key.export_public_key("openssh").decode().split()[1]
    return fingerprint(public)


def _row(session, device_id: int) -> SshHostKey:
    session.expire_all()
    row = session.scalar(select(SshHostKey).where(SshHostKey.device_id == device_id))
    assert row is not None
    return row


def test_tofu_stores_first_key_then_changed_key_aborts_before_auth(lab_ssh, host_key, sink, runtime, session, vault):
    lab = lab_ssh.new_device("cisco_ios", "hk-ios1")
    device_id = add_to_inventory(session, vault, lab)  # policy tofu (the default)

    with device_session(runtime, device_id, sink=sink) as conn:
        assert conn.find_prompt() == "hk-ios1>"
    row = _row(session, device_id)
    assert (row.key_type, row.fingerprint, row.trusted_by) == ("ssh-ed25519", _fp(host_key), "tofu")
    assert lab_ssh.auth_attempts["hk-ios1"] == [LAB_SSH_USERNAME, f"password for {LAB_SSH_USERNAME}"]

    # the same box comes back with another host key (re-imaged, or someone in the middle)
    lab_ssh.stop("hk-ios1")
    lab_ssh.auth_attempts["hk-ios1"].clear()
    other = asyncssh.generate_private_key("ssh-ed25519")
    lab_ssh.start(lab, other)

    with pytest.raises(HostKeyChanged) as caught:
        backup_device(runtime, device_id, sink=sink)
    assert f"trusted {_fp(host_key)}, offered {_fp(other)}" in str(caught.value)
    # nothing reached authentication: no username, no password
    assert lab_ssh.auth_attempts["hk-ios1"] == []

    row = _row(session, device_id)
    assert row.fingerprint == _fp(host_key)  # still the trusted one
    assert row.pending_fingerprint == _fp(other)
    assert session.scalars(select(ConfigBackup).where(ConfigBackup.device_id == device_id)).all() == []

    [event] = sink.events
    assert (event.event_type, event.severity, event.source, event.device) == (
        "host_key_changed",
        "major",
        "backup",
        "hk-ios1",
    )
    assert event.raw["offered_fingerprint"] == _fp(other) and event.raw["trusted_fingerprint"] == _fp(host_key)
    assert "lab-admin" not in repr(event)

    # an admin accepts the new key (audited); the next session works
    device = queries.device(session, device_id)
    with pytest.raises(Exception) as wrong:
        hostkeys.accept_pending(session, device=device, actor="root", expected_fingerprint="SHA256:nope")
    assert f"fingerprint: the pending key is {_fp(other)}, not SHA256:nope" in str(wrong.value)
    assert _row(session, device_id).fingerprint == _fp(host_key)  # nothing changed

    hostkeys.accept_pending(session, device=device, actor="root", expected_fingerprint=_fp(other))
    session.commit()
    row = _row(session, device_id)
    assert (row.fingerprint, row.trusted_by, row.pending_fingerprint) == (_fp(other), "root", None)
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "ssh_host_key.accept")).one()
    assert entry.before == {"fingerprint": _fp(host_key)} and entry.after["fingerprint"] == _fp(other)
    assert backup_device(runtime, device_id, sink=sink).status == "first_version"


def test_strict_without_stored_key_refuses_before_auth(lab_ssh, sink, runtime, session, vault):
    lab = lab_ssh.new_device("juniper_junos", "hk-jnp1")
    device_id = add_to_inventory(session, vault, lab, policy="strict")
    with pytest.raises(HostKeyUnknown, match="no trusted SSH host key and policy is strict"):
        with device_session(runtime, device_id, sink=sink):
            pass
    assert lab_ssh.auth_attempts["hk-jnp1"] == []
    row = _row(session, device_id)
    assert row.fingerprint is None and row.pending_fingerprint is not None
    assert sink.events == []  # no key ever trusted: nothing "changed"

    hostkeys.accept_pending(session, device=queries.device(session, device_id), actor="root", expected_fingerprint=None)
    session.commit()
    with device_session(runtime, device_id, sink=sink) as conn:
        assert conn.find_prompt() == "admin@hk-jnp1>"


def test_policy_off_connects_and_stores_nothing(lab_ssh, sink, runtime, session, vault, caplog):
    lab = lab_ssh.new_device("cisco_ios", "hk-off1")
    device_id = add_to_inventory(session, vault, lab, policy="off")
    with device_session(runtime, device_id, sink=sink) as conn:
        assert conn.find_prompt() == "hk-off1>"
    assert session.scalar(select(SshHostKey).where(SshHostKey.device_id == device_id)) is None
    assert "SSH host key not verified (policy off)" in caplog.text


def test_accept_without_pending_key_is_a_conflict(session, vault):
    lab = cli_lab.make_lab_device("cisco_ios", "hk-none1")
    device_id = add_to_inventory(session, vault, lab)
    with pytest.raises(Exception, match="device 'hk-none1' has no pending SSH host key to accept"):
        hostkeys.accept_pending(
            session, device=queries.device(session, device_id), actor="root", expected_fingerprint=None
        )
    assert session.scalar(select(SshHostKey).where(SshHostKey.device_id == device_id)) is None


def test_policy_rejects_unknown_policy_name():
    with pytest.raises(ValueError, match="host key policy must be one of strict, tofu, off, not 'auto'"):
        PinnedHostKeyPolicy(policy="auto", trusted=None, device="x")
