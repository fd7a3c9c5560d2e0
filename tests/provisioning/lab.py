"""Lab devices for provisioning tests: real SSH CLIs (netmiko) plus an SNMP agent on the same
LabDevice, so a pushed description shows up as ifAlias and a shutdown as ifOperStatus."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from netmiko import ConnectHandler
from sqlalchemy.orm import Session

from collectors.backup import normalize_config
from faultloop.vault import Vault
from inventory import service as inventory
from inventory.schemas import DeviceIn
from lab.model import LabDevice
from lab.snmp_agent import LAB_COMMUNITY, SnmpAgent
from lab.ssh import LAB_SSH_PASSWORD, LAB_SSH_USERNAME
from tests.collectors.cli_lab import BackgroundLoop, LabSsh


def start_snmp(bg: BackgroundLoop, device: LabDevice) -> Any:
    async def listen() -> Any:
        loop = asyncio.get_running_loop()
        for _ in range(10):
            port = random.randint(20_000, 60_000)
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: SnmpAgent(device, now=time.time), local_addr=(device.address, port)
                )
            except OSError:
                continue
            device.snmp_port = port
            return transport
        raise RuntimeError("no free UDP port")

    return bg.run(listen())


def lab_device(lab_ssh: LabSsh, bg: BackgroundLoop, name: str, device_type: str = "cisco_ios") -> tuple[LabDevice, Any]:
    device = lab_ssh.new_device(device_type, name)
    transport = start_snmp(bg, device)
    return device, transport


def add_device(
    session: Session, vault: Vault, device: LabDevice, *, snmp: bool = True, password: str = LAB_SSH_PASSWORD
) -> int:
    body: dict[str, Any] = {
        "hostname": device.name,
        "address": device.address,
        "role": "access",
        "vendor": device.vendor,
        "platform": device.platform,
        "device_type": device.device_type,
        "ssh": {
            "port": device.ssh_port,
            "username": LAB_SSH_USERNAME,
            "password": password,
            "host_key_policy": "tofu",
        },
    }
    if snmp:
        body["snmp"] = {"version": "v2c", "port": device.snmp_port, "community": LAB_COMMUNITY}
    row = inventory.create_device(session, vault, DeviceIn.model_validate(body), actor="test")
    session.commit()
    return row.id


def running_config(lab: LabDevice) -> str:
    """What the device runs, read by an independent netmiko session (not the one under test)."""
    with ConnectHandler(
        device_type=lab.device_type,
        host=lab.address,
        port=lab.ssh_port,
        username=LAB_SSH_USERNAME,
        password=LAB_SSH_PASSWORD,
        secret=LAB_SSH_PASSWORD,
        system_host_keys=False,
        alt_host_keys=False,
        conn_timeout=15,
    ) as conn:
        if lab.device_type == "cisco_ios":
            conn.enable()
        command = "show running-config" if lab.device_type == "cisco_ios" else "show configuration"
        return normalize_config(str(conn.send_command(command)))
