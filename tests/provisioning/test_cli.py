"""`faultloop catalog list`, `faultloop order plan FILE|approve|run|show` as subprocesses against a
lab SSH device and a SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from faultloop.cmd.app import build_runtime
from faultloop.db import transaction
from faultloop.settings import Settings
from tests.collectors import cli_lab
from tests.provisioning.lab import add_device

bg, host_key, lab_ssh = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh


def run(args, env, code=0):
    proc = subprocess.run(
        [sys.executable, "-m", "faultloop.cmd", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == code, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    e["FAULTLOOP_DATA_DIR"] = str(tmp_path / "var")
    e["FAULTLOOP_CONFIG"] = str(tmp_path / "none.toml")
    e["FAULTLOOP_SSH_TIMEOUT_S"] = "15"
    e["FAULTLOOP_PROVISIONING_CHECK_TIMEOUT_S"] = "5"
    e["COLUMNS"] = "200"
    run(["db", "upgrade"], e)
    return e


def test_catalog_list_and_order_plan_approve_run_show(env, tmp_path, lab_ssh) -> None:
    assert "business_internet" in run(["catalog", "list"], env).stdout
    rt = build_runtime(Settings(data_dir=tmp_path / "var"))
    lab = lab_ssh.new_device("cisco_ios", "cli-pv1")
    with transaction(rt.sessions) as session:
        add_device(session, rt.vault, lab, snmp=False)
    rt.engine.dispose()

    order = tmp_path / "order.yaml"
    body = {
        "service_type": "business_internet",
        "customer": "ACME",
        "params": {"vlan": 130, "description": "ACME CLI"},
        "targets": [{"device": lab.name, "params": {"interface": lab.interfaces[1].name}}],
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**body, "params": {"vlan": 130, "description": "x\nreload"}}))
    proc = run(["order", "plan", str(bad)], env, code=2)
    assert "params.description: control characters" in proc.stderr and "Traceback" not in proc.stderr

    order.write_text(yaml.safe_dump(body))
    proc = run(["order", "plan", str(order), "--actor", "pat"], env)
    assert "+ description ACME CLI" in proc.stdout and "order 1 planned" in proc.stderr
    assert lab.interfaces[1].alias == ""  # the plan sent nothing
    proc = run(["order", "approve", "1", "--actor", "pat"], env, code=2)
    assert "four-eyes" in proc.stderr
    run(["order", "approve", "1", "--actor", "nina"], env)
    proc = run(["order", "run", "1", "--actor", "nina"], env)
    assert "completed" in proc.stdout and lab.interfaces[1].alias == "ACME CLI"
    show = run(["order", "show", "1"], env).stdout
    for step in ("order.create", "order.plan", "order.approve", "order.execute", "order.pushed", "order.complete"):
        assert step in show
