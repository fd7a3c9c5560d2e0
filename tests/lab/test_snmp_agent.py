"""The lab SNMP agent against Debian's net-snmp tools over real UDP (v1, v2c, v3)."""

from __future__ import annotations

import asyncio
import os
import socket

from lab.network import LabNetwork
from snmpwire import ber

from .conftest import V3, FakeClock, needs_netsnmp, parse_vars, run_tool, target

pytestmark = needs_netsnmp

SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_IN_OCTETS_1 = "1.3.6.1.2.1.2.2.1.10.1"
IF_HC_IN_OCTETS_1 = "1.3.6.1.2.1.31.1.1.1.6.1"


async def test_v1_v2c_v3_get_sysname(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["dist1"]
    for args in (["-v1", "-c", "public"], ["-v2c", "-c", "public"], V3):
        rc, out, err = await run_tool(snmp_env, "snmpget", *args, target(d), SYS_NAME, "1.3.6.1.2.1.1.2.0")
        assert rc == 0, (args, err)
        values = parse_vars(out)
        assert values[SYS_NAME] == 'STRING: "dist1"'
        assert values["1.3.6.1.2.1.1.2.0"] == "OID: .1.3.6.1.4.1.9.1.1208"


async def test_v3_bulkwalk_iftable_and_ifxtable(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["core1"]
    # the first request this device ever sees is a GETBULK (after v3 discovery): it must be
    # answered at once, not after the client's 1 s retry
    rc, out, err = await run_tool(snmp_env, "snmpbulkwalk", *V3, "-t", "0.5", "-r", "0", target(d), "1.3.6.1.2.1.2.2")
    assert rc == 0, err
    assert lab.agents["core1"].stats.malformed == 0
    values = parse_vars(out)
    assert len(values) == 22 * 2  # 22 ifTable columns x 2 interfaces
    assert values["1.3.6.1.2.1.2.2.1.2.1"] == 'STRING: "GigabitEthernet0/1"'
    assert values["1.3.6.1.2.1.2.2.1.5.2"] == "Gauge32: 1000000000"
    assert values["1.3.6.1.2.1.2.2.1.8.1"] == "INTEGER: 1"
    rc, out, err = await run_tool(snmp_env, "snmpbulkwalk", "-v2c", "-c", "public", target(d), "1.3.6.1.2.1.31.1.1.1")
    assert rc == 0, err
    values = parse_vars(out)
    assert values["1.3.6.1.2.1.31.1.1.1.18.1"] == 'STRING: "to dist1"'  # ifAlias
    assert values["1.3.6.1.2.1.31.1.1.1.15.1"] == "Gauge32: 10000"  # ifHighSpeed
    assert values["1.3.6.1.2.1.31.1.1.1.1.2"] == 'STRING: "GigabitEthernet0/2"'  # ifName


async def test_lldp_neighbours_match_links(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["dist1"]
    rc, out, err = await run_tool(snmp_env, "snmpwalk", "-v2c", "-c", "public", target(d), "1.0.8802.1.1.2.1.4.1.1")
    assert rc == 0, err
    values = parse_vars(out)
    # lldpRemSysName / lldpRemPortId indexed by timemark.localPort.remIndex
    assert values["1.0.8802.1.1.2.1.4.1.1.9.0.1.1"] == 'STRING: "core1"'
    assert values["1.0.8802.1.1.2.1.4.1.1.7.0.1.1"] == 'STRING: "GigabitEthernet0/1"'
    assert values["1.0.8802.1.1.2.1.4.1.1.9.0.2.1"] == 'STRING: "acc1"'
    assert values["1.0.8802.1.1.2.1.4.1.1.7.0.2.1"] == 'STRING: "ge-0/0/0"'
    assert values["1.0.8802.1.1.2.1.4.1.1.8.0.2.1"] == 'STRING: "uplink dist1"'
    rc, out, _ = await run_tool(snmp_env, "snmpwalk", "-v2c", "-c", "public", target(d), "1.0.8802.1.1.2.1.3.7.1.3")
    assert parse_vars(out)["1.0.8802.1.1.2.1.3.7.1.3.2"] == 'STRING: "GigabitEthernet0/2"'


async def test_host_resources_and_sensor(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["acc1"]
    d.cpu_load = 77
    d.temperature_c = 51
    rc, out, err = await run_tool(
        snmp_env,
        "snmpget",
        "-v2c",
        "-c",
        "public",
        target(d),
        "1.3.6.1.2.1.25.3.3.1.2.768",
        "1.3.6.1.2.1.99.1.1.1.4.2",
        "1.3.6.1.2.1.25.2.3.1.3.1",
    )
    assert rc == 0, err
    values = parse_vars(out)
    assert values["1.3.6.1.2.1.25.3.3.1.2.768"] == "INTEGER: 77"
    assert values["1.3.6.1.2.1.99.1.1.1.4.2"] == "INTEGER: 51"
    assert values["1.3.6.1.2.1.25.2.3.1.3.1"] == 'STRING: "Physical memory"'


async def test_counter32_wraps_counter64_does_not(lab: LabNetwork, clock: FakeClock, snmp_env: dict) -> None:
    d = lab.devices["core1"]
    itf = d.interface("GigabitEthernet0/1")
    assert itf is not None and itf.in_rate_bps == 8e8  # 100 MB/s
    clock.advance(50)  # 5e9 octets: past 2**32
    rc, out, err = await run_tool(
        snmp_env, "snmpget", "-v2c", "-c", "public", target(d), IF_IN_OCTETS_1, IF_HC_IN_OCTETS_1
    )
    assert rc == 0, err
    values = parse_vars(out)
    assert values[IF_HC_IN_OCTETS_1] == "Counter64: 5000000000"
    assert values[IF_IN_OCTETS_1] == f"Counter32: {5_000_000_000 % 2**32}"
    # sysUpTime follows the same clock (fresh boot at start)
    rc, out, _ = await run_tool(snmp_env, "snmpget", "-v2c", "-c", "public", target(d), SYS_UPTIME)
    assert "(5000)" in parse_vars(out)[SYS_UPTIME]


async def test_v1_errors_and_no_counter64(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["core1"]
    rc, out, err = await run_tool(snmp_env, "snmpget", "-v1", "-c", "public", target(d), IF_HC_IN_OCTETS_1)
    assert rc != 0 and "noSuchName" in err + out
    rc, out, err = await run_tool(snmp_env, "snmpget", "-v1", "-c", "public", target(d), "1.3.6.1.2.1.1.99.0")
    assert "noSuchName" in err + out
    # a v1 walk of ifXTable skips every Counter64 column
    rc, out, err = await run_tool(snmp_env, "snmpwalk", "-v1", "-c", "public", target(d), "1.3.6.1.2.1.31.1.1.1")
    assert rc == 0, err
    values = parse_vars(out)
    assert values and not any(v.startswith("Counter64") for v in values.values())
    assert "1.3.6.1.2.1.31.1.1.1.18.1" in values


async def test_v2c_exceptions(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["core1"]
    rc, out, err = await run_tool(
        snmp_env,
        "snmpget",
        "-v2c",
        "-c",
        "public",
        target(d),
        "1.3.6.1.2.1.1.99.0",
        "1.3.6.1.2.1.2.2.1.10.99",
    )
    values = parse_vars(out)
    assert values["1.3.6.1.2.1.1.99.0"].startswith("No Such Object")
    assert values["1.3.6.1.2.1.2.2.1.10.99"].startswith("No Such Instance")
    rc, out, err = await run_tool(snmp_env, "snmpgetnext", "-v2c", "-c", "public", target(d), "1.3.6.1.6.3.10.2.1.4.0")
    assert "No more variables left in this MIB View" in out + err


async def test_full_walk_is_ordered_and_complete(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["dist1"]
    rc, out, err = await run_tool(snmp_env, "snmpbulkwalk", "-v2c", "-c", "public", "-Cr25", target(d), ".1")
    rc2, out2, err2 = await run_tool(snmp_env, "snmpwalk", "-v2c", "-c", "public", target(d), ".1")
    assert rc == 0 and rc2 == 0, err + err2
    bulk = list(parse_vars(out))
    walk = list(parse_vars(out2))
    assert len(bulk) == len(lab.agents["dist1"].mib.oids) > 100
    assert [o for o in bulk if not o.startswith("1.3.6.1.2.1.1.3.")] == [
        o for o in walk if not o.startswith("1.3.6.1.2.1.1.3.")
    ]
    keys = [tuple(int(x) for x in o.split(".")) for o in bulk]
    assert keys == sorted(keys)


def _udp_request(addr: tuple[str, int], data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, addr)


async def test_malformed_packets_counted_and_agent_survives(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["acc1"]
    agent = lab.agents["acc1"]
    good = ber.enc_seq(
        ber.enc_int(1),
        ber.enc_octets(b"public"),
        ber.tlv(
            0xA0,
            ber.enc_int(7)
            + ber.enc_int(0)
            + ber.enc_int(0)
            + ber.enc_seq(ber.enc_seq(ber.enc_oid((1, 3, 6, 1, 2, 1, 1, 5, 0)), b"\x05\x00")),
        ),
    )
    bad = [
        os.urandom(64),
        good[:-3],  # truncated
        b"\x30\x84\xff\xff\xff\xff\x02\x01\x01",  # huge length
        b"\x30" + b"\x80" + good[2:],  # indefinite length
        b"\x30\x82" + bytes(2) + b"\x30" * 4000,  # deep nesting attempt
        good[:2] + b"\x02\x01\x05" + good[5:],  # unknown version 5 (counted separately)
        b"",
        b"\x30\x03\x02\x01",  # inner TLV overruns outer
    ]
    for pkt in bad:
        _udp_request((d.address, d.snmp_port), pkt)
    rc, out, err = await run_tool(snmp_env, "snmpget", "-v2c", "-c", "public", target(d), SYS_NAME)
    assert rc == 0, err
    assert parse_vars(out)[SYS_NAME] == 'STRING: "acc1"'
    assert agent.stats.malformed == len(bad) - 1
    assert agent.stats.bad_version == 1


async def test_wrong_community_and_wrong_v3_key(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["core1"]
    agent = lab.agents["core1"]
    rc, out, err = await run_tool(
        snmp_env, "snmpget", "-v2c", "-c", "private", "-t", "0.3", "-r", "0", target(d), SYS_NAME
    )
    assert rc != 0 and "Timeout" in err
    assert agent.stats.bad_community == 1
    bad_v3 = [a if a != "lab-auth-pass" else "wrong-auth-pass" for a in V3]
    rc, out, err = await run_tool(snmp_env, "snmpget", *bad_v3, "-t", "0.5", "-r", "0", target(d), SYS_NAME)
    assert rc != 0
    assert agent.stats.usm["wrong_digests"] >= 1
    bad_user = [a if a != "labv3" else "nobody" for a in V3]
    rc, out, err = await run_tool(snmp_env, "snmpget", *bad_user, "-t", "0.5", "-r", "0", target(d), SYS_NAME)
    assert rc != 0 and "Unknown user name" in err
    assert agent.stats.usm["unknown_user_names"] == 1


async def test_crash_no_answer_then_reboot(lab: LabNetwork, clock: FakeClock, snmp_env: dict) -> None:
    d = lab.devices["dist1"]
    clock.advance(1000)
    lab.faults.apply("crash", {"device": "dist1"})
    rc, out, err = await run_tool(
        snmp_env, "snmpget", "-v2c", "-c", "public", "-t", "0.3", "-r", "0", target(d), SYS_NAME
    )
    assert rc != 0 and "Timeout" in err
    assert lab.agents["dist1"].stats.ignored_crashed == 1
    # neighbours saw their links go down
    assert not lab.devices["core1"].interface("GigabitEthernet0/1").oper_up
    clock.advance(5)
    lab.faults.apply("reboot", {"device": "dist1"})
    clock.advance(2)
    rc, out, err = await run_tool(
        snmp_env, "snmpget", *V3, target(d), SYS_UPTIME, "1.3.6.1.2.1.31.1.1.1.19.1", "1.3.6.1.6.3.10.2.1.2.0"
    )
    assert rc == 0, err
    values = parse_vars(out)
    assert "(200)" in values[SYS_UPTIME]
    assert "(0)" in values["1.3.6.1.2.1.31.1.1.1.19.1"]  # ifCounterDiscontinuityTime = boot
    assert values["1.3.6.1.6.3.10.2.1.2.0"] == "INTEGER: 2"  # snmpEngineBoots
    assert lab.devices["core1"].interface("GigabitEthernet0/1").oper_up


async def test_snmp_drop_and_delay(lab: LabNetwork, snmp_env: dict) -> None:
    d = lab.devices["acc1"]
    lab.faults.apply("snmp_drop", {"device": "acc1", "pct": 100})
    rc, _, err = await run_tool(
        snmp_env, "snmpget", "-v2c", "-c", "public", "-t", "0.3", "-r", "1", target(d), SYS_NAME
    )
    assert rc != 0 and "Timeout" in err
    assert lab.agents["acc1"].stats.dropped_fault == 2
    lab.faults.apply("snmp_drop", {"device": "acc1", "pct": 0})
    lab.faults.apply("snmp_delay", {"device": "acc1", "seconds": 0.6})
    rc, _, err = await run_tool(
        snmp_env, "snmpget", "-v2c", "-c", "public", "-t", "0.3", "-r", "0", target(d), SYS_NAME
    )
    assert rc != 0 and "Timeout" in err  # the answer comes after the client gave up
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    rc, out, err = await run_tool(
        snmp_env, "snmpget", "-v2c", "-c", "public", "-t", "2", "-r", "0", target(d), SYS_NAME
    )
    assert rc == 0, err
    assert loop.time() - t0 >= 0.6


async def test_link_down_flips_oper_status_on_both_ends(lab: LabNetwork, snmp_env: dict) -> None:
    lab.faults.apply("link_down", {"device": "dist1", "interface": "GigabitEthernet0/2"})
    for name, idx in (("dist1", 2), ("acc1", 1)):
        rc, out, err = await run_tool(
            snmp_env,
            "snmpget",
            "-v2c",
            "-c",
            "public",
            target(lab.devices[name]),
            f"1.3.6.1.2.1.2.2.1.8.{idx}",
            f"1.3.6.1.2.1.2.2.1.7.{idx}",
        )
        values = parse_vars(out)
        assert values[f"1.3.6.1.2.1.2.2.1.8.{idx}"] == "INTEGER: 2", name  # oper down
        assert values[f"1.3.6.1.2.1.2.2.1.7.{idx}"] == "INTEGER: 1", name  # admin still up
    # the LLDP neighbour disappears with the link
    rc, out, _ = await run_tool(
        snmp_env, "snmpwalk", "-v2c", "-c", "public", target(lab.devices["dist1"]), "1.0.8802.1.1.2.1.4.1.1.9"
    )
    assert list(parse_vars(out).values()) == ['STRING: "core1"']


async def test_pysnmp_client_v2c_and_v3(lab: LabNetwork) -> None:
    """The second real client: pysnmp 7 (what a Python poller would use), v2c and v3 authPriv."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        bulk_walk_cmd,
        get_cmd,
        usmAesCfb128Protocol,
        usmHMAC192SHA256AuthProtocol,
    )

    d = lab.devices["dist1"]
    engine = SnmpEngine()
    target_ = await UdpTransportTarget.create((d.address, d.snmp_port), timeout=1, retries=0)
    v3 = UsmUserData(
        "labv3",
        "lab-auth-pass",
        "lab-priv-pass",
        authProtocol=usmHMAC192SHA256AuthProtocol,
        privProtocol=usmAesCfb128Protocol,
    )
    for auth in (CommunityData("public", mpModel=1), v3):
        err, status, _, vbs = await get_cmd(
            engine, auth, target_, ContextData(), ObjectType(ObjectIdentity(SYS_NAME)), lookupMib=False
        )
        assert err is None and int(status) == 0, err
        assert str(vbs[0][1]) == "dist1"
        names = []
        async for err, status, _, vbs in bulk_walk_cmd(
            engine,
            auth,
            target_,
            ContextData(),
            0,
            25,
            ObjectType(ObjectIdentity("1.3.6.1.2.1.31.1.1.1.1")),
            lookupMib=False,
            lexicographicMode=False,
        ):
            assert err is None and int(status) == 0, err
            names += [str(v) for _, v in vbs]
        assert names == ["GigabitEthernet0/1", "GigabitEthernet0/2"]
    engine.close_dispatcher()
