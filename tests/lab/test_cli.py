"""`faultloop lab` CLI: fault commands against a running control API, and `lab up` end to end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from lab.cli import app
from lab.network import LabNetwork

from .conftest import FakeClock, needs_netsnmp, parse_vars, random_base, run_tool, small_topology

runner = CliRunner()


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def controlled_lab(clock: FakeClock):
    net = LabNetwork(small_topology(), ssh=False, now=clock, fresh_boot=True, control_port=0)
    await net.start()
    yield net
    await net.stop()


async def _cli(*args: str):
    return await asyncio.to_thread(runner.invoke, app, list(args))


async def test_fault_commands_through_control_api(controlled_lab: LabNetwork) -> None:
    url = controlled_lab.control.url
    res = await _cli("fault", "link-down", "dist1", "GigabitEthernet0/2", "--control", url)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["changed"] is True
    assert not controlled_lab.devices["acc1"].interface("ge-0/0/0").oper_up

    res = await _cli("fault", "cpu", "core1", "--load", "88", "--control", url)
    assert res.exit_code == 0 and controlled_lab.devices["core1"].cpu_load == 88
    res = await _cli("fault", "errors", "core1", "GigabitEthernet0/1", "--rate", "12.5", "--control", url)
    assert res.exit_code == 0 and controlled_lab.devices["core1"].interface("GigabitEthernet0/1").error_rate_pps == 12.5
    res = await _cli("fault", "snmp-drop", "acc1", "--pct", "30", "--control", url)
    assert res.exit_code == 0 and controlled_lab.devices["acc1"].snmp_drop_pct == 30
    res = await _cli("fault", "crash", "acc1", "--control", url)
    assert res.exit_code == 0 and controlled_lab.devices["acc1"].crashed
    res = await _cli("fault", "reboot", "acc1", "--control", url)
    assert res.exit_code == 0 and not controlled_lab.devices["acc1"].crashed
    assert controlled_lab.devices["acc1"].engine_boots == 2
    res = await _cli("fault", "flap", "core1", "GigabitEthernet0/2", "--per-minute", "30", "--control", url)
    assert res.exit_code == 0 and ("core1", "GigabitEthernet0/2") in controlled_lab.faults.flaps
    res = await _cli("fault", "flap", "core1", "GigabitEthernet0/2", "--stop", "--control", url)
    assert res.exit_code == 0 and not controlled_lab.faults.flaps


async def test_fault_commands_reject_bad_input(controlled_lab: LabNetwork) -> None:
    url = controlled_lab.control.url
    res = await _cli("fault", "link-down", "ghost", "Gi0/1", "--control", url)
    assert res.exit_code == 1
    assert "unknown device 'ghost'" in res.output
    res = await _cli("fault", "link-down", "core1", "Gi9/9", "--control", url)
    assert res.exit_code == 1 and "has no interface 'Gi9/9'" in res.output
    res = await _cli("fault", "cpu", "core1", "--load", "500", "--control", url)
    assert res.exit_code == 1 and "field 'load'" in res.output
    res = await _cli("fault", "crash", "core1", "--control", "http://127.0.0.1:9")
    assert res.exit_code == 2 and "cannot reach the lab control API" in res.output
    assert not controlled_lab.devices["core1"].crashed


async def test_scenario_command_and_http_errors(controlled_lab: LabNetwork, tmp_path: Path) -> None:
    url = controlled_lab.control.url
    sc = tmp_path / "s.yaml"
    sc.write_text("name: quick\nsteps:\n  - {at: 0s, fault: crash, device: acc1}\n")
    res = await _cli("fault", "scenario", str(sc), "--control", url)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["steps"] == 1
    for _ in range(1000):  # the scenario runs as a task: wait up to 10 s for its first step
        if controlled_lab.devices["acc1"].crashed:
            break
        await asyncio.sleep(0.01)
    assert controlled_lab.devices["acc1"].crashed
    sc.write_text("steps:\n  - {at: 0s, fault: crash, device: nobody}\n")
    res = await _cli("fault", "scenario", str(sc), "--control", url)
    assert res.exit_code == 1 and "steps[0]: field 'device': unknown device 'nobody'" in res.output

    async with httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/faults/crash", content=b"{not json")
        assert r.status_code == 400 and "JSON" in r.json()["error"]
        r = await client.post("/faults/teleport", json={"device": "core1"})
        assert r.status_code == 404
        r = await client.get("/devices/dist1")
        assert r.status_code == 200 and r.json()["interfaces"][0]["neighbor"] == ["core1", "GigabitEthernet0/1"]
        r = await client.get("/stats")
        assert r.status_code == 200 and r.json()["devices"] == 3


@needs_netsnmp
async def test_lab_up_runs_until_interrupted(tmp_path: Path, snmp_env: dict) -> None:
    base = random_base()
    inventory = tmp_path / "inv.yaml"
    control_port = _free_tcp_port()
    env = dict(os.environ)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from lab.cli import app; app()",
        "up",
        "--generate",
        "12",
        "--base-address",
        base,
        "--snmp-port",
        "16162",
        "--no-ssh",
        "--control-port",
        str(control_port),
        "--inventory-out",
        str(inventory),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert b"lab up: 12 devices" in line, line
        data = yaml.safe_load(inventory.read_text())
        first = data["devices"][0]
        assert first["address"] == base and first["snmp"] == {"version": "v2c", "port": 16162, "community": "public"}
        rc, out, err = await run_tool(snmp_env, "snmpget", "-v2c", "-c", "public", f"{base}:16162", "1.3.6.1.2.1.1.5.0")
        assert rc == 0, err
        assert parse_vars(out)["1.3.6.1.2.1.1.5.0"] == 'STRING: "core1"'
        res = await _cli(
            "fault", "link-down", "core1", "GigabitEthernet0/1", "--control", f"http://127.0.0.1:{control_port}"
        )
        assert res.exit_code == 0, res.output
    finally:
        proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.stdout.read(), 20)
        rc = await proc.wait()
    assert rc == 0, rest
    assert b"lab stopped" in rest


async def test_lab_up_rejects_bad_topology(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "devices:\n  - {name: x, address: 127.0.0.1, role: edge, device_type: cisco_ios, interfaces: [{name: a}]}\n"
    )
    res = await _cli("up", "--topology", str(bad), "--no-ssh")
    assert res.exit_code == 2
    assert "devices[0] (x): field 'role'" in res.output
