"""Fault injection and scenarios on a running lab (model-level checks plus SNMP where it matters)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lab.faults import FaultError, UnknownTarget, parse_duration
from lab.network import LabNetwork

from .conftest import FakeClock, needs_netsnmp, parse_vars, run_tool, target


def test_parse_duration() -> None:
    assert parse_duration("10s") == 10
    assert parse_duration("1m30s") == 90
    assert parse_duration("2m") == 120
    assert parse_duration("500ms") == 0.5
    assert parse_duration(3) == 3
    with pytest.raises(FaultError, match="expected a duration"):
        parse_duration("soon")


async def test_bad_fault_requests_name_the_field(lab: LabNetwork) -> None:
    with pytest.raises(UnknownTarget, match="field 'device': unknown device 'ghost'"):
        lab.faults.apply("crash", {"device": "ghost"})
    with pytest.raises(UnknownTarget, match="field 'interface': device 'core1' has no interface 'Gi7'"):
        lab.faults.apply("link_down", {"device": "core1", "interface": "Gi7"})
    with pytest.raises(FaultError, match="field 'load': expected a number in 0"):
        lab.faults.apply("cpu", {"device": "core1", "load": 150})
    with pytest.raises(FaultError, match="fault errors: field 'rate': required"):
        lab.faults.apply("errors", {"device": "core1", "interface": "GigabitEthernet0/1"})
    with pytest.raises(FaultError, match="field 'fault': expected one of"):
        lab.faults.apply("meteor", {"device": "core1"})
    assert lab.devices["core1"].cpu_load != 150


async def test_error_burst_and_traffic_rate(lab: LabNetwork, clock: FakeClock) -> None:
    itf = lab.devices["dist1"].interface("GigabitEthernet0/2")
    clock.advance(10)
    lab.faults.apply("errors", {"device": "dist1", "interface": "GigabitEthernet0/2", "rate": 25})
    clock.advance(4)
    assert itf.in_errors(clock()) == 100
    before = itf.in_octets(clock())
    lab.faults.apply("traffic", {"device": "dist1", "interface": "GigabitEthernet0/2", "in_bps": 8000})
    clock.advance(10)
    assert itf.in_octets(clock()) == before + 10_000
    # no traffic is counted while the link is down
    lab.faults.apply("link_down", {"device": "dist1", "interface": "GigabitEthernet0/2"})
    frozen = itf.in_octets(clock())
    clock.advance(100)
    assert itf.in_octets(clock()) == frozen and itf.in_errors(clock()) == 100 + 25 * 10


@needs_netsnmp
async def test_reboot_resets_uptime_and_counters_over_snmp(lab: LabNetwork, clock: FakeClock, snmp_env: dict) -> None:
    d = lab.devices["core1"]
    clock.advance(3600)
    oids = ["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.31.1.1.1.6.1", "1.3.6.1.2.1.31.1.1.1.19.1"]
    _, out, _ = await run_tool(snmp_env, "snmpget", "-v2c", "-c", "public", target(d), *oids)
    before = parse_vars(out)
    assert "(360000)" in before[oids[0]]
    assert before[oids[1]] == f"Counter64: {int(8e8 / 8 * 3600)}"
    lab.faults.apply("reboot", {"device": "core1"})
    clock.advance(10)
    _, out, _ = await run_tool(snmp_env, "snmpget", "-v2c", "-c", "public", target(d), *oids)
    after = parse_vars(out)
    assert "(1000)" in after[oids[0]]
    assert after[oids[1]] == f"Counter64: {int(8e8 / 8 * 10)}"
    assert "(0)" in after[oids[2]]


async def test_flap_runs_and_stops(lab: LabNetwork) -> None:
    itf = lab.devices["core1"].interface("GigabitEthernet0/1")
    peer = lab.devices["dist1"].interface("GigabitEthernet0/1")
    seen = []
    lab.faults.apply("flap", {"device": "core1", "interface": "GigabitEthernet0/1", "per_minute": 1200})  # 50 ms
    for _ in range(12):
        seen.append((itf.oper_up, peer.oper_up))
        await asyncio.sleep(0.025)
    assert (False, False) in seen and (True, True) in seen
    assert all(a == b for a, b in seen)
    result = lab.faults.apply("flap", {"device": "core1", "interface": "GigabitEthernet0/1", "stop": True})
    assert result["was_flapping"] is True
    await asyncio.sleep(0.12)
    assert itf.oper_up and peer.oper_up
    assert not lab.faults.flaps


async def test_scenario_timeline(lab: LabNetwork, tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        """
name: dist1 uplink loss
steps:
  - {at: 2s, fault: link_down, device: dist1, interface: GigabitEthernet0/1}
  - {at: 0s, fault: cpu, device: core1, load: 97}
  - {at: 4s, fault: crash, device: acc1}
  - {at: 6s, fault: link-up, device: dist1, interface: GigabitEthernet0/1}
"""
    )
    scenario = lab.faults.load_scenario(path)
    assert [s[0] for s in scenario.steps] == [0, 2, 4, 6]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:  # between 2s and 4s
            assert not lab.devices["dist1"].interface("GigabitEthernet0/1").oper_up
            assert not lab.devices["acc1"].crashed

    results = await lab.faults.run_scenario(scenario, sleep=fake_sleep)
    assert slept == [2, 2, 2]
    assert [r["fault"] for r in results] == ["cpu", "link_down", "crash", "link_up"]
    assert lab.devices["core1"].cpu_load == 97 and lab.devices["acc1"].crashed
    assert lab.devices["dist1"].interface("GigabitEthernet0/1").oper_up


async def test_scenario_validation_names_step_and_field(lab: LabNetwork, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("steps:\n  - {at: 1s, fault: link_down, device: dist1, interface: nope}\n")
    with pytest.raises(UnknownTarget, match=r"steps\[0\]: field 'interface': device 'dist1' has no interface 'nope'"):
        lab.faults.load_scenario(path)
    path.write_text("steps:\n  - {at: later, fault: crash, device: dist1}\n")
    with pytest.raises(FaultError, match=r"steps\[0\]: field 'at': expected a duration"):
        lab.faults.load_scenario(path)
    path.write_text("steps:\n  - {at: 1s, device: dist1}\n")
    with pytest.raises(FaultError, match=r"steps\[0\]: field 'fault': required"):
        lab.faults.load_scenario(path)


async def test_bundled_demo_scenario_is_valid(tmp_path: Path) -> None:
    from importlib import resources

    from lab.topology import default_demo_topology

    net = LabNetwork(default_demo_topology(), ssh=False)  # not started: validation only
    ref = resources.files("lab").joinpath("data/scenario-demo.yaml")
    with resources.as_file(ref) as p:
        scenario = net.faults.load_scenario(Path(p))
    assert len(scenario.steps) >= 4
