"""500 generated devices in one process: all bound, any of them answers."""

from __future__ import annotations

import random

from lab.network import LabNetwork
from lab.topology import generate_topology

from .conftest import needs_netsnmp, parse_vars, run_tool


@needs_netsnmp
async def test_500_devices_start_and_answer(snmp_env: dict) -> None:
    base = f"127.32.{random.randint(0, 200)}.1"
    topo = generate_topology(500, base_address=base, snmp_port=16163)
    net = LabNetwork(topo, ssh=False)
    await net.start()
    try:
        assert len(net.agents) == 500
        for d in random.sample(topo.devices, 4) + [topo.devices[-1]]:
            rc, out, err = await run_tool(
                snmp_env,
                "snmpbulkwalk",
                "-v2c",
                "-c",
                "public",
                "-t",
                "1",
                "-r",
                "0",
                f"{d.address}:16163",
                "1.3.6.1.2.1.31.1.1.1.1",
            )
            assert rc == 0, err
            assert list(parse_vars(out).values()) == [f'STRING: "{i.name}"' for i in d.interfaces]
    finally:
        await net.stop()
