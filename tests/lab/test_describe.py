"""The `describe` fault: a lab device reports hostile or odd strings (sysName, sysDescr,
sysLocation, ifAlias) over real SNMP, as a misconfigured or malicious device would."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.faults import FaultError, UnknownTarget
from lab.network import LabNetwork

from .conftest import FakeClock, needs_netsnmp, parse_vars, run_tool, small_topology, target

SYS_DESCR, SYS_NAME, SYS_LOCATION = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0"
IF_ALIAS_2 = "1.3.6.1.2.1.31.1.1.1.18.2"  # acc1 ge-0/0/1 has ifIndex 2
LLDP_LOC_SYS_NAME = "1.0.8802.1.1.2.1.3.3.0"


@needs_netsnmp
async def test_describe_sets_what_snmp_reports(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["acc1"]
    result = lab.faults.apply(
        "describe",
        {
            "device": "acc1",
            "sys_name": "<svg onload=alert(1)>",
            "sys_descr": "<script>window.__xss=1</script>",
            "sys_location": "rack <b>7</b>",
            "interface": "ge-0/0/1",
            "alias": "<img src=x onerror=alert(1)>",
        },
    )
    assert result["sys_name"] == "<svg onload=alert(1)>" and result["alias"] == "<img src=x onerror=alert(1)>"
    oids = [SYS_DESCR, SYS_NAME, SYS_LOCATION, IF_ALIAS_2, LLDP_LOC_SYS_NAME]
    _, out, err = await run_tool(snmp_env, "snmpget", "-v2c", "-c", "public", target(d), *oids)
    got = parse_vars(out)
    assert got[SYS_DESCR] == 'STRING: "<script>window.__xss=1</script>"', (out, err)
    assert got[SYS_NAME] == 'STRING: "<svg onload=alert(1)>"'
    assert got[SYS_LOCATION] == 'STRING: "rack <b>7</b>"'
    assert got[IF_ALIAS_2] == 'STRING: "<img src=x onerror=alert(1)>"'
    # LLDP keeps the device name, so links discovered from LLDP still resolve to the device
    assert got[LLDP_LOC_SYS_NAME] == 'STRING: "acc1"'
    # an empty sysName means the device name again
    lab.faults.apply("describe", {"device": "acc1", "sys_name": ""})
    _, out, _ = await run_tool(snmp_env, "snmpget", "-v2c", "-c", "public", target(d), SYS_NAME)
    assert parse_vars(out)[SYS_NAME] == 'STRING: "acc1"'


async def test_bad_describe_requests_name_the_field_and_change_nothing(lab: LabNetwork) -> None:
    d = lab.devices["acc1"]
    itf = d.interface("ge-0/0/1")
    assert itf is not None
    before = (d.sys_name, d.sys_descr, d.sys_location, itf.alias)
    cases = [
        ({"device": "acc1", "sys_descr": 42}, FaultError, "field 'sys_descr': expected a string, got 42"),
        ({"device": "acc1", "sys_name": "x" * 256}, FaultError, "field 'sys_name': expected at most 255 bytes"),
        ({"device": "acc1", "sys_descr": "é" * 128}, FaultError, "field 'sys_descr': expected at most 255 bytes"),
        ({"device": "acc1", "sys_descr": "ok", "alias": "a"}, FaultError, "field 'interface': required with 'alias'"),
        ({"device": "acc1", "sys_descr": "ok", "interface": "ge-0/0/1"}, FaultError, "field 'interface': required"),
        ({"device": "acc1", "alias": "a", "interface": "ge-9/9/9"}, UnknownTarget, "has no interface 'ge-9/9/9'"),
        ({"device": "acc1"}, FaultError, "expected at least one of sys_name, sys_descr, sys_location, alias"),
        ({"device": "acc1", "sys_descr": "ok", "colour": "red"}, FaultError, "field 'colour': unknown field"),
        ({"device": "ghost", "sys_descr": "ok"}, UnknownTarget, "field 'device': unknown device 'ghost'"),
    ]
    for params, error, message in cases:
        with pytest.raises(error, match=message.replace("(", r"\(")):
            lab.faults.apply("describe", params)
    assert (d.sys_name, d.sys_descr, d.sys_location, itf.alias) == before


async def test_describe_through_the_control_api_and_cli(clock: FakeClock) -> None:
    net = LabNetwork(small_topology(), ssh=False, now=clock, fresh_boot=True, control_port=0)
    await net.start()
    try:
        url = net.control.url
        args = ["fault", "describe", "core1", "--sys-descr", '"><img src=x onerror="window.__xss=1">']
        args += ["--interface", "GigabitEthernet0/2", "--alias", "javascript:window.__xss=1", "--control", url]
        res = await asyncio.to_thread(CliRunner().invoke, app, args)
        assert res.exit_code == 0, res.output
        core1 = net.devices["core1"]
        assert core1.sys_descr == '"><img src=x onerror="window.__xss=1">'
        itf = core1.interface("GigabitEthernet0/2")
        assert itf is not None and itf.alias == "javascript:window.__xss=1"
        res = await asyncio.to_thread(
            CliRunner().invoke, app, ["fault", "describe", "core1", "--alias", "x", "--control", url]
        )
        assert res.exit_code == 1 and "field 'interface': required with 'alias'" in res.output
    finally:
        await net.stop()
