"""`faultloop demo`: the lab network and the service in one process, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

import lab as lab_package
from faultloop.cmd.demo_loop import CUSTOMERS, CustomerLoop, DemoCrew
from faultloop.runtime import Runtime
from faultloop.worker import stop_task
from inventory import files
from inventory.schemas import InventoryDoc

DEMO_SCENARIO = Path(lab_package.__file__).parent / "data" / "scenario-demo.yaml"
SCENARIO_PAUSE_S = 60.0


async def _replay_forever(lab: Any) -> None:
    """The gentle background scenario: faults come and go so the service has something to show."""
    scenario = lab.faults.load_scenario(DEMO_SCENARIO)
    while True:
        await lab.faults.run_scenario(scenario)
        await asyncio.sleep(SCENARIO_PAUSE_S)


async def run_demo(
    rt: Runtime,
    *,
    password: str | None,
    token: str,
    generate: int,
    console: Console,
    import_inventory: Callable[[InventoryDoc], dict[str, int]],
    snmp_port: int,
    ssh_port: int,
    control_port: int,
    crew: DemoCrew | None = None,
) -> None:
    from faultloop.cmd.app import run_service
    from lab.network import LabNetwork
    from lab.topology import default_demo_topology, generate_topology

    settings = rt.settings
    topology = generate_topology(generate, snmp_port=snmp_port, ssh_port=ssh_port) if generate else None
    if topology is None:
        topology = default_demo_topology()
        for device in topology.devices:  # every lab device listens on its own address, on these ports
            device.snmp_port, device.ssh_port = snmp_port, ssh_port
    trap_receiver = ("127.0.0.1", settings.trap_port)
    # the lab's SSH host key is kept in the data directory, as `faultloop lab up` keeps it: the service
    # pins host keys (TOFU), and a new key on every run would refuse every SSH session of a second run
    lab = LabNetwork(topology, trap_receivers=[trap_receiver], control_port=control_port,
                     host_key_path=Path(settings.data_dir) / "lab-ssh-host-key")  # fmt: skip
    await lab.start()
    background = loop_task = None
    url = f"http://{settings.host}:{settings.port}"
    say = functools.partial(console.print, soft_wrap=True, highlight=False, markup=False)
    try:
        if not generate:
            background = asyncio.get_running_loop().create_task(_replay_forever(lab))
            if crew is not None:
                customer_loop = CustomerLoop(
                    base_url=f"http://127.0.0.1:{settings.port}" if settings.host in ("0.0.0.0", "::") else url,
                    admin_token=token, crew=crew, lab=lab, say=lambda line: say(f"loop:        {line}"),
                )  # fmt: skip
                loop_task = asyncio.get_running_loop().create_task(customer_loop.run())
        inventory_path = Path(settings.data_dir) / "lab-inventory.yaml"
        lab.write_inventory(inventory_path)
        doc = files.parse_file(inventory_path)
        counts = import_inventory(doc)

        def announce() -> None:
            console.rule("faultloop demo")
            say(f"lab network: {len(lab.devices)} devices, inventory written to {inventory_path}")
            say(f"imported: {counts['devices_created']} new, {counts['devices_updated']} updated devices")
            say(f"service:     {url}   (API docs {url}/docs, health {url}/healthz)")
            say(f"lab control: http://127.0.0.1:{control_port}   (faultloop lab fault --help)")
            if background is not None:
                say(f"scenario:    {DEMO_SCENARIO.name} replays in the background (faults come and go)")
            if password:
                say(f"log in:      user admin, password {password} (shown once)")
            else:
                say("log in:      user admin (password unchanged from the first demo run)")
            if loop_task is not None and crew is not None:
                for name, secret in crew.passwords.items():
                    if secret:
                        say(f"technician:  user {name}, password {secret} (shown once; phone view /ui/my/tickets)")
                    else:
                        say(f"technician:  user {name} (password unchanged from the first demo run)")
                names = " and ".join(c.name for c in CUSTOMERS)
                say(f"the loop:    services for {names} are ordered on the lab; then, one customer at a time,"
                    " a fault on their port -> alarm with impact -> ticket with their SLA priority ->"
                    " dispatch -> technician steps -> resolved -> verified (lines below, tickets at"
                    f" {url}/ui/tickets)")  # fmt: skip
            say(f"API token:   {token}")
            say(f"try:         curl -H 'Authorization: Bearer {token}' {url}/api/v1/devices")
            say("stop:        Ctrl-C")

        await run_service(rt, announce=announce)
    finally:
        if loop_task is not None:
            await stop_task(loop_task)
        if background is not None:
            await stop_task(background)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(lab.stop(), timeout=10)
        console.print("demo stopped")
