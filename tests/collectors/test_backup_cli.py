"""`faultloop backup DEVICE`, `faultloop backup diff DEVICE [A B]`, `faultloop hostkey show|accept DEVICE`
as subprocesses against a lab SSH device and a SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncssh
import pytest
from sqlalchemy import select

from alarms.models import EventRecord
from faultloop.cmd.app import build_runtime
from faultloop.db import transaction
from faultloop.settings import Settings
from tests.collectors import cli_lab
from tests.collectors.cli_lab import add_to_inventory, push_config

bg, host_key, lab_ssh = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh


def run(args, env, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "faultloop.cmd", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    e["FAULTLOOP_DATA_DIR"] = str(tmp_path / "var")
    e["FAULTLOOP_CONFIG"] = str(tmp_path / "none.toml")
    e["FAULTLOOP_SSH_TIMEOUT_S"] = "10"
    e["COLUMNS"] = "200"
    run(["db", "upgrade"], e)
    return e


def test_backup_diff_and_hostkey_accept(env, tmp_path, lab_ssh):
    rt = build_runtime(Settings(data_dir=tmp_path / "var"))
    lab = lab_ssh.new_device("cisco_ios", "cli-ios1")
    with transaction(rt.sessions) as session:
        add_to_inventory(session, rt.vault, lab)
    rt.engine.dispose()

    first = run(["backup", "cli-ios1"], env)
    assert "cli-ios1: first backup stored as version 1" in first.stderr
    assert "configuration unchanged since backup 1" in run(["backup", "cli-ios1"], env).stderr

    push_config(lab, ["interface GigabitEthernet0/2", "description CLI-CHANGE"])
    changed = run(["backup", "cli-ios1"], env)
    assert "configuration changed, +1 -0 lines; stored as version 2 (previous 1)" in changed.stderr
    assert "+ description CLI-CHANGE" in changed.stdout.splitlines()

    assert "+ description CLI-CHANGE" in run(["backup", "diff", "cli-ios1"], env).stdout.splitlines()
    reverse = run(["backup", "diff", "cli-ios1", "2", "1"], env).stdout.splitlines()
    assert "- description CLI-CHANGE" in reverse

    bad = run(["backup", "diff", "cli-ios1", "x"], env, check=False)
    assert bad.returncode == 2 and "A: expected a backup id (a number), got 'x'" in bad.stderr
    unknown = run(["backup", "nope-1"], env, check=False)
    assert unknown.returncode == 2 and "nope-1" in unknown.stderr

    # the device comes back with a new host key: refused, then accepted by an operator at the console
    lab_ssh.stop("cli-ios1")
    lab_ssh.start(lab, asyncssh.generate_private_key("ssh-ed25519"))
    refused = run(["backup", "cli-ios1"], env, check=False)
    assert refused.returncode == 2 and "SSH host key changed" in refused.stderr
    shown = run(["hostkey", "show", "cli-ios1"], env).stdout
    [line] = [line for line in shown.splitlines() if "pending_fingerprint" in line]
    [pending] = [word for word in line.split() if word.startswith("SHA256:")]
    assert pending.startswith("SHA256:")
    wrong = run(["hostkey", "accept", "cli-ios1", "--fingerprint", "SHA256:x"], env, check=False)
    assert wrong.returncode == 2 and f"the pending key is {pending}, not SHA256:x" in wrong.stderr
    accepted = run(["hostkey", "accept", "cli-ios1", "--fingerprint", pending], env)
    assert f"now trusting ssh-ed25519 {pending}" in accepted.stderr
    assert "configuration unchanged since backup 2" in run(["backup", "cli-ios1"], env).stderr

    # no alarm engine in a CLI process: its events wait in the engine's durable queue
    with transaction(rt.sessions) as session:
        queued = session.execute(
            select(EventRecord.source, EventRecord.event_type, EventRecord.severity, EventRecord.processed)
            .where(EventRecord.device == "cli-ios1")
            .order_by(EventRecord.id)
        ).all()
    rt.engine.dispose()
    assert [tuple(r) for r in queued] == [
        ("backup", "config_changed", "warning", False),
        ("backup", "host_key_changed", "major", False),
        ("api", "host_key_changed", "cleared", False),
    ]


def test_backup_of_a_collector_groups_device_is_refused_naming_the_group(env, tmp_path, lab_ssh):
    """With collectors (a broker and a collector key) a group other than default is theirs: the CLI
    opens no SSH session to it and says where a backup comes from."""
    from cryptography.fernet import Fernet

    from inventory import service as inventory
    from inventory.schemas import DeviceIn
    from lab.ssh import LAB_SSH_PASSWORD, LAB_SSH_USERNAME

    rt = build_runtime(Settings(data_dir=tmp_path / "var"))
    lab = lab_ssh.new_device("cisco_ios", "cli-east1")
    with transaction(rt.sessions) as session:
        row = inventory.create_device(session, rt.vault, DeviceIn.model_validate({
            "hostname": lab.name, "address": lab.address, "role": "access", "platform": "ios",
            "device_type": "cisco_ios", "collector_group": "east",
            "ssh": {"port": lab.ssh_port, "username": LAB_SSH_USERNAME, "password": LAB_SSH_PASSWORD},
        }), actor="test")  # fmt: skip
        device_id = row.id
    rt.engine.dispose()
    key = Fernet.generate_key().decode()
    remote = {**env, "FAULTLOOP_NATS_URL": "nats://127.0.0.1:4222", "FAULTLOOP_COLLECTOR_KEY": key}
    proc = run(["backup", "cli-east1"], remote, check=False)
    assert proc.returncode != 0
    assert (
        f"cli-east1: in collector group 'east', whose collectors take its backups; ask for one through the API "
        f"(POST /api/v1/devices/{device_id}/config-backups)" in proc.stderr
    )
    assert lab_ssh.auth_attempts["cli-east1"] == []  # no session was opened
    # without collectors the same device is backed up here, as before
    assert "cli-east1: first backup stored as version 1" in run(["backup", "cli-east1"], env).stderr
